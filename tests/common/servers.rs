//! Servers served by this process, as the binary serves them: the real
//! server, `lab proxy`, `lab naive` and `lab forward` on 127.0.0.1 port 0;
//! and a port nothing listens on.

use std::net::SocketAddr;
use std::time::Duration;

use lab::cli::launch::RunningProxy;
use lab::proxy::forward::{self, ForwardConfig};
use lab::proxy::naive;
use lab::realserver::{Config, RunningServer};
use lab::server::Background;
use tokio::net::TcpListener;

use super::STEP;

/// The article's real server (`Config::default()`) on a free port.
pub async fn real_server() -> RunningServer {
    real_server_with(Config::default()).await
}

/// A real server configured by `config`, on a free port.
pub async fn real_server_with(config: Config) -> RunningServer {
    RunningServer::start_on_free_port(config)
        .await
        .expect("a real server starts on 127.0.0.1:0")
}

/// The upstream URL of the real server at `addr`, as `--upstream` names it.
pub fn base(addr: SocketAddr) -> String {
    format!("http://{addr}/base")
}

/// `n` real servers on free ports.
pub async fn real_servers(n: usize) -> Vec<RunningServer> {
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        servers.push(real_server().await);
    }
    servers
}

/// `lab proxy --listen 127.0.0.1:0 FLAGS`, the flags parsed by clap as the
/// binary parses them.
pub async fn proxy(flags: &[&str]) -> RunningProxy {
    RunningProxy::start(flags)
        .await
        .unwrap_or_else(|err| panic!("lab proxy {flags:?}: {err:#}"))
}

/// `lab naive --target TARGET` on a free port.
pub async fn naive_proxy(target: &str) -> Background {
    let target: naive::Target = target.parse().expect("a valid target");
    Background::spawn_on_free_port(|listener, stop| naive::serve(listener, target, stop))
        .await
        .expect("the naive proxy starts")
}

/// `lab naive --target http://SERVER` on a free port.
pub async fn naive_to(server: SocketAddr) -> Background {
    naive_proxy(&format!("http://{server}")).await
}

/// `lab forward` configured by `config`, on a free port.
pub async fn forward_proxy(config: ForwardConfig) -> Background {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    forward_proxy_on(listener, config)
}

/// `lab forward` on `listener` (bound by the caller, so a test can know the
/// address before the proxy exists).
pub fn forward_proxy_on(listener: TcpListener, config: ForwardConfig) -> Background {
    Background::spawn(listener, |listener, stop| {
        forward::serve(listener, config, stop)
    })
    .expect("the forward proxy starts")
}

/// Stops a server of this process: it must finish within [`STEP`], cleanly.
pub async fn stop(server: Background) {
    tokio::time::timeout(STEP, server.shutdown())
        .await
        .expect("the server stops within the step timeout")
        .expect("the server stops cleanly");
}

/// A loopback address nothing listens on (bound, then released).
pub fn dead_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local address")
}

/// An upstream that answers one request per connection, keeps the
/// connection open without `Connection: close`, and closes it `linger` later:
/// the next request sent on that pooled connection gets no byte back, only
/// the close (an idle-timeout race, seen from the proxy). Counts the
/// requests it read.
pub struct OneShotUpstream {
    pub addr: SocketAddr,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OneShotUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OneShotUpstream {
    pub async fn start(linger: Duration) -> OneShotUpstream {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local address");
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    // Whatever comes next is read and never answered.
                    let _ = tokio::time::timeout(linger, async {
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    })
                    .await;
                });
            }
        });
        OneShotUpstream {
            addr,
            requests,
            task,
        }
    }

    /// The requests it read and answered.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A keep-alive upstream that counts the connections it accepted and the
/// ones that were closed from the other side: what a connection pool did,
/// seen from the upstream. `GET /big` answers a head announcing 1 MB and
/// sends 64 KiB of it, then waits (a response a client can abandon);
/// anything else answers `ok`.
pub struct CountingUpstream {
    pub addr: SocketAddr,
    counts: std::sync::Arc<ConnectionCounts>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ConnectionCounts {
    accepted: std::sync::atomic::AtomicUsize,
    closed: std::sync::atomic::AtomicUsize,
    requests: std::sync::atomic::AtomicUsize,
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingUpstream {
    pub async fn start() -> CountingUpstream {
        use std::sync::atomic::Ordering::SeqCst;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let counts = std::sync::Arc::new(ConnectionCounts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                shared.accepted.fetch_add(1, SeqCst);
                let counts = shared.clone();
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        // One request head (the pool sends GETs without a body).
                        let end = loop {
                            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => {
                                    counts.closed.fetch_add(1, SeqCst);
                                    return;
                                }
                                Ok(n) => pending.extend_from_slice(&buf[..n]),
                            }
                        };
                        let head: Vec<u8> = pending.drain(..end).collect();
                        counts.requests.fetch_add(1, SeqCst);
                        if head.starts_with(b"GET /big ") {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                                .await;
                            let _ = stream.write_all(&[b'x'; 65536]).await;
                            // The rest never comes; the peer closing ends it.
                            while let Ok(n) = stream.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                            }
                            counts.closed.fetch_add(1, SeqCst);
                            return;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            counts.closed.fetch_add(1, SeqCst);
                            return;
                        }
                    }
                });
            }
        });
        CountingUpstream { addr, counts, task }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections the other side closed so far.
    pub fn closed(&self) -> usize {
        self.counts.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Request heads read so far.
    pub fn requests(&self) -> usize {
        self.counts
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

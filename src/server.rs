//! The accept loop every listener of the lab shares: real servers and proxies.
//!
//! One task per connection, HTTP/1.1 with upgrades (WebSocket, CONNECT), and a
//! graceful shutdown: stop accepting (the port closes, so new connections are
//! refused), ask every connection to finish its request in flight and close,
//! then wait up to [`DRAIN_TIMEOUT`] for them and for any task they spawned
//! (a tunnel or a WebSocket outlives its HTTP exchange).
//!
//! [`serve_tls`] is the same loop over TLS (HTTPS): each connection's
//! handshake runs in its own task, bounded by [`crate::tls::HANDSHAKE_TIMEOUT`];
//! one that fails is logged at debug and closed, and the server goes on. A
//! plain-HTTP request on a TLS port gets Go's answer: `400 Bad Request`,
//! "Client sent an HTTP request to an HTTPS server." [`serve`] does no TLS
//! work at all: the stream goes straight to HTTP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a shutdown waits for requests in flight before closing them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every listener refuses, whatever it serves: the flags `--max-body`
/// and `--header-timeout` of `lab realserver`, `naive`, `forward` and `proxy`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body, in bytes (413 Content Too Large past it;
    /// `u64::MAX` is no limit). A declared Content-Length is refused before
    /// any byte is read; the proxies also stop a chunked body that grows
    /// past it.
    pub max_body: u64,
    /// How long a request head may take from its first byte (408 after):
    /// slowloris protection. `None`: no limit (Go's `http.Server` without a
    /// `ReadHeaderTimeout`).
    pub header_timeout: Option<Duration>,
    /// How long a proxy waits for the next bytes of a request body it is
    /// streaming upstream before it answers 408 (see
    /// [`crate::body::stall`]). `None`: no limit (Go's `http.Server`
    /// without a `ReadTimeout`).
    pub body_timeout: Option<Duration>,
    /// The largest request head, request line and headers together
    /// (`--max-header-size`): 431 past it. A proxy also refuses an
    /// upstream's response head past it (502).
    pub max_header_size: usize,
    /// Not a limit, but the listener's too: write response header names in
    /// Go's canonical case (`Content-Type`), as `lab proxy --like-go` does;
    /// otherwise hyper's lower case (`content-type`). The same header
    /// either way (RFC 9110 §5.1).
    pub go_header_case: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 64 << 20,
            header_timeout: Some(Duration::from_secs(10)),
            body_timeout: Some(Duration::from_secs(10)),
            max_header_size: crate::framing::DEFAULT_MAX_HEADER_SIZE,
            go_header_case: false,
        }
    }
}

/// The `Allow` header of a 405 to CONNECT from a server that is not a
/// forward proxy (the real server, `lab naive`, `lab proxy`): every method
/// but the tunnel.
pub const ALLOW_ALL_BUT_CONNECT: http::HeaderValue =
    http::HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");

/// What a service knows about the connection it serves.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The address this listener is bound to.
    pub local: SocketAddr,
    /// The TCP peer: Go's `req.RemoteAddr`.
    pub peer: SocketAddr,
    /// The peer's IP as header text, written on first use ([`Conn::peer_ip`]).
    peer_ip: OnceLock<HeaderValue>,
    /// Cancelled at shutdown; long-lived work (tunnels, WebSockets) ends on it.
    pub stop: CancellationToken,
    /// Tracked tasks: spawn work that outlives the exchange here, so that
    /// shutdown waits for it.
    pub tasks: TaskTracker,
    /// Set by whoever turns this connection into a tunnel (a WebSocket after
    /// 101, a CONNECT after 200): from then on its bytes are not HTTP, and
    /// the framing guard passes them on without judging them.
    pub tunneled: Arc<AtomicBool>,
}

impl Conn {
    /// The peer's IP as header text, written once per connection, on first
    /// use: a proxy puts it in X-Forwarded-For and X-Real-IP of every
    /// request, and formatting an address costs more than the rest of those
    /// headers; a server that never asks never formats it.
    pub fn peer_ip(&self) -> &HeaderValue {
        self.peer_ip.get_or_init(|| {
            HeaderValue::try_from(self.peer.ip().to_string())
                .expect("an IP address is a valid header value")
        })
    }

    /// This connection is a tunnel from now on (see [`Conn::tunneled`]).
    pub fn mark_tunnel(flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves; `make_service`
/// builds the service of each new connection.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    make_service: F,
) -> anyhow::Result<()>
where
    F: Fn(Conn) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(
        listener,
        Plain,
        limits,
        shutdown,
        move |conn, _: &TcpStream| make_service(conn),
    )
    .await
}

/// [`serve`], where building a connection's service also looks at its
/// socket: what `lab transparent` needs to ask the kernel where an
/// intercepted connection was going.
pub async fn serve_inspecting<F, S, B>(
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    make_service: F,
) -> anyhow::Result<()>
where
    F: Fn(Conn, &TcpStream) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(listener, Plain, limits, shutdown, make_service).await
}

/// Serves HTTPS (HTTP/1.1 over TLS) on `listener` until `shutdown`
/// resolves: [`serve`], with a TLS handshake through `acceptor` first.
pub async fn serve_tls<F, S, B>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    make_service: F,
) -> anyhow::Result<()>
where
    F: Fn(Conn) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(
        listener,
        Tls(acceptor),
        limits,
        shutdown,
        move |conn, _: &TcpStream| make_service(conn),
    )
    .await
}

/// What turns an accepted TCP stream into the stream HTTP is spoken on.
trait Handshake: Clone + Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain HTTP: the TCP stream itself, at once.
#[derive(Clone)]
struct Plain;

impl Handshake for Plain {
    type Stream = TcpStream;
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        std::future::ready(Ok(tcp))
    }
}

/// HTTPS: a TLS handshake, bounded.
#[derive(Clone)]
struct Tls(TlsAcceptor);

impl Handshake for Tls {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;
    async fn handshake(&self, tcp: TcpStream) -> io::Result<Self::Stream> {
        let timeout = crate::tls::HANDSHAKE_TIMEOUT;
        let handshake = async {
            let mut tcp = tcp;
            refuse_plain_http(&mut tcp).await?;
            self.0.accept(tcp).await
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no TLS handshake within {timeout:?}"),
                ))
            })
    }
}

/// Go's answer to a plain-HTTP request on a TLS port (net/http, server.go).
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\n\
Client sent an HTTP request to an HTTPS server.\n";

/// A TLS connection opens with a handshake record (first byte 0x16); one
/// that opens with a letter is a plain-HTTP request line. Answers that one
/// as Go does, and fails so the connection closes.
async fn refuse_plain_http(tcp: &mut TcpStream) -> io::Result<()> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before the TLS handshake",
        ));
    }
    if !first[0].is_ascii_uppercase() {
        return Ok(());
    }
    tcp.write_all(PLAIN_HTTP_ON_TLS_PORT).await?;
    tcp.shutdown().await?;
    // Read what the client sent (briefly) before closing: closing with unread
    // bytes would reset the connection, and the client might lose the answer.
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "a plain-HTTP request on the TLS port; answered 400",
    ))
}

async fn serve_with<H, F, S, B>(
    listener: TcpListener,
    handshake: H,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    make_service: F,
) -> anyhow::Result<()>
where
    H: Handshake,
    F: Fn(Conn, &TcpStream) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let local = listener
        .local_addr()
        .context("listener has no local address")?;
    let tasks = TaskTracker::new();
    // `stop` asks connections to finish their request in flight and close;
    // `abort`, after the drain timeout, closes whatever is still open.
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("{local}: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small requests and responses should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        // Every request first passes the smuggling guard (see crate::framing).
        let tunneled = Arc::new(AtomicBool::new(false));
        let service = crate::framing::Guarded::new(
            make_service(
                Conn {
                    local,
                    peer,
                    peer_ip: OnceLock::new(),
                    stop: stop.clone(),
                    tasks: tasks.clone(),
                    tunneled: tunneled.clone(),
                },
                &stream,
            ),
            limits.max_body,
            limits.max_header_size,
        );
        let stop = stop.clone();
        let abort = abort.clone();
        let handshake = handshake.clone();
        let open = OpenConnection::counted();
        tasks.spawn(async move {
            let _open = open;
            // Plain: ready at once (biased: polled first, nothing else is).
            // TLS: a handshake in progress is abandoned at shutdown.
            let stream = tokio::select! {
                biased;
                result = handshake.handshake(stream) => match result {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::debug!("{local}: TLS handshake with {peer} failed: {err}");
                        return;
                    }
                },
                () = stop.cancelled() => return,
            };
            let conn = http1::Builder::new()
                .timer(crate::timer::HyperTimer)
                // The guard answers a trickled head with 408 at the timeout;
                // hyper's own timer, a second later, closes a connection
                // that sent nothing at all (or bytes the guard passed on).
                .header_read_timeout(limits.header_timeout.map(|t| t + Duration::from_secs(1)))
                .title_case_headers(limits.go_header_case)
                .serve_connection(
                    TokioIo::new(
                        crate::framing::FramingGuard::with_head_timeout(
                            stream,
                            limits.header_timeout,
                        )
                        .max_head(limits.max_header_size)
                        .until_tunneled(tunneled),
                    ),
                    service,
                )
                .with_upgrades();
            tokio::pin!(conn);
            // The connection first; the shutdown watch costs two atomics
            // per wake-up (see crate::shutdown_watch).
            let mut stopped = crate::shutdown_watch::ShutdownWatch::new(stop);
            let result = tokio::select! {
                biased;
                result = conn.as_mut() => result,
                () = &mut stopped => {
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        result = conn.as_mut() => result,
                        // Dropping the connection closes its socket.
                        () = abort.cancelled() => return,
                    }
                }
            };
            if let Err(err) = result {
                tracing::debug!("{local}: connection from {peer} ended: {err}");
            }
        });
    }

    // Dropping the listener closes the port: from here new connections are refused.
    drop(listener);
    stop.cancel();
    tasks.close();
    if !tasks.is_empty() {
        tracing::debug!("{local}: waiting for {} task(s) to finish", tasks.len());
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{local}: {} connection(s) still busy after {DRAIN_TIMEOUT:?}; closing them",
            tasks.len()
        );
        abort.cancel();
        // Tunnels and WebSockets already ended on `stop`; connections end now.
        let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
    }
    tracing::debug!("{local}: stopped");
    Ok(())
}

/// Client connections open in this process, on every listener.
static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
/// The most open at once since [`take_peak_connections`] last asked.
static PEAK_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// How many client connections this process's listeners hold now (what
/// [`crate::memory`] watches to know when a load has passed).
pub fn open_connections() -> usize {
    OPEN_CONNECTIONS.load(Ordering::Relaxed)
}

/// The most client connections open at once since the last call (a load
/// shorter than the watcher's interval is seen too).
pub fn take_peak_connections() -> usize {
    PEAK_CONNECTIONS.swap(open_connections(), Ordering::Relaxed)
}

/// One open client connection, counted until dropped.
struct OpenConnection;

impl OpenConnection {
    fn counted() -> OpenConnection {
        let open = OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
        PEAK_CONNECTIONS.fetch_max(open, Ordering::Relaxed);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A listener served on a task of this process, stopped on demand: what the
/// labs and tests use to run real servers and proxies beside each other.
pub struct Background {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Background {
    /// Spawns `serve(listener, shutdown)`; `shutdown` resolves when
    /// [`Background::shutdown`] is called.
    pub fn spawn<F, Fut>(listener: TcpListener, serve: F) -> anyhow::Result<Background>
    where
        F: FnOnce(TcpListener, tokio_util::sync::WaitForCancellationFutureOwned) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let addr = listener
            .local_addr()
            .context("listener has no local address")?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, stop.clone().cancelled_owned()));
        Ok(Background { addr, stop, task })
    }

    /// Binds a free loopback port and spawns `serve` on it.
    pub async fn spawn_on_free_port<F, Fut>(serve: F) -> anyhow::Result<Background>
    where
        F: FnOnce(TcpListener, tokio_util::sync::WaitForCancellationFutureOwned) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = crate::net::bind(SocketAddr::from(([127, 0, 0, 1], 0)), "--listen").await?;
        Self::spawn(listener, serve)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("a background server panicked")?
    }
}

//! `lab proxy` (the ReverseProxy of `src/proxy/reverse.rs`) on real sockets:
//! every behaviour of the 13-step pipeline of Go's
//! `httputil.ReverseProxy.ServeHTTP`, checked on both sides of the proxy:
//! what the upstream received and what the client received. One file per
//! group of steps, in the pipeline's order:
//!
//! - [`before_the_director`]: steps 1 to 3, before an upstream is chosen:
//!   a client that leaves, CONNECT refused, the loop guard;
//! - [`director`]: step 4, the Director: path join, query, rewrites, body,
//!   Host;
//! - [`hop_by_hop`]: steps 5 and 9, hop-by-hop headers on the way up and
//!   back;
//! - [`forwarding_headers`]: step 6, X-Forwarded-For, X-Real-IP and Via;
//! - [`modify_and_errors`]: steps 7 and 10, the round trip's errors and
//!   timeouts (the ErrorHandler) and ModifyResponse;
//! - [`transport_pool`]: the Transport of step 7 and its connection pool;
//! - [`upgrade`]: step 8, a 101 and the WebSocket spliced through;
//! - [`trailers_and_flush`]: steps 11 to 13, trailers and a body streamed
//!   chunk by chunk;
//! - [`binary`]: the `lab proxy` binary with 50 MB bodies and bad input;
//! - [`like_go`]: `lab proxy --like-go` beside Go's own ReverseProxy (the
//!   article's `balancer` program), request for request.
//!
//! Three kinds of upstream:
//! - the real server (`lab::realserver`), whose JSON echo reports the request
//!   as it arrived (path, headers, body size, TCP peer);
//! - a *recording upstream* written here: raw TCP, it records the exact bytes
//!   of every request and answers with canned bytes chosen by the test (hop
//!   headers, a 101 for the wrong protocol, no answer at all, a cut body);
//! - nothing at all (a port that refuses connections).
//!
//! Most proxies are built in this process, as `lab proxy` builds its own:
//! flags parsed by clap into `ProxyArgs`, then `ReverseProxy::from_args` and
//! `serve`. The big-body and bad-input tests run the `lab` binary instead.
//!
//! Everything listens on 127.0.0.1 port 0. Every wait is bounded by
//! `common::STEP` and every test by `common::TEST_LIMIT`; the only timings
//! asserted are timeouts the proxy or the real server are meant to enforce,
//! with wide margins.
//!
//! Findings recorded here (hyper 1.x behaviour, not the proxy's code):
//! - a request with both Content-Length and Transfer-Encoding would be framed
//!   by hyper with the chunked coding alone (RFC 9112 §6.1 allows that); the
//!   lab's framing guard (`src/framing.rs`) refuses it with 400 instead;
//! - hyper's request head limit is about 400 KB (its read buffer), so a
//!   200 KB header is forwarded; far beyond it the answer is 431.

mod before_the_director;
mod binary;
mod director;
mod forwarding_headers;
mod hop_by_hop;
mod like_go;
mod modify_and_errors;
mod trailers_and_flush;
mod transport_pool;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::STEP;
use crate::common::client::header_of;
use crate::common::process::{LabProcess, proxy_process};
use crate::common::wire::{chunked_len, find, parse_header_lines, values_of};
use clap::Parser;
use lab::cli::{Cli, Command as LabCommand, ProxyArgs};
use lab::lab_headers::UPSTREAM_HEADER;
use lab::probe::Exchange;
use lab::proxy::reverse::ReverseProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Proxies in this process
// ---------------------------------------------------------------------------

/// `lab proxy --listen 127.0.0.1:0 --upstream UPSTREAM FLAGS…`, parsed by clap
/// exactly as the binary parses it.
fn proxy_args(upstream: &str, flags: &[&str]) -> ProxyArgs {
    let argv = [
        "lab",
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
    ]
    .into_iter()
    .chain(flags.iter().copied());
    let cli = Cli::try_parse_from(argv)
        .unwrap_or_else(|err| panic!("lab proxy --upstream {upstream} {flags:?}: {err}"));
    match cli.command {
        LabCommand::Proxy(args) => *args,
        other => panic!("expected a proxy command line, got {other:?}"),
    }
}

/// A ReverseProxy served by this process; it stops when this is dropped.
struct TestProxy {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_proxy(upstream: &str, flags: &[&str]) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_proxy(listener, &proxy_args(upstream, flags)).await
}

/// Serves a proxy built from `args` on `listener` (bound by the caller, so a
/// test can know the address before the proxy exists).
async fn serve_proxy(listener: TcpListener, args: &ProxyArgs) -> TestProxy {
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = Arc::new(ReverseProxy::start(args.config()).await.expect("proxy"));
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        proxy
            .serve(listener, shutdown)
            .await
            .expect("the proxy serves until stopped");
    });
    TestProxy { addr, _stop: stop }
}

fn assert_names_upstream(exchange: &Exchange, upstream: &str) {
    assert_eq!(
        header_of(exchange, UPSTREAM_HEADER.as_str()),
        upstream,
        "{UPSTREAM_HEADER} names the upstream ({} {})",
        exchange.status,
        exchange.text()
    );
}

// ---------------------------------------------------------------------------
// The recording upstream
// ---------------------------------------------------------------------------

/// A request exactly as the upstream received it.
#[derive(Debug, Clone)]
struct RawRequest {
    /// `GET /path HTTP/1.1`.
    request_line: String,
    /// Header lines in order, names as sent.
    headers: Vec<(String, String)>,
    /// The body bytes as framed on the wire (chunked stays chunked).
    body: Vec<u8>,
    /// Every byte of the request: head and body.
    raw: Vec<u8>,
}

impl RawRequest {
    fn values(&self, name: &str) -> Vec<&str> {
        values_of(&self.headers, name)
    }

    fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or_default()
    }

    fn names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }
}

/// How the recording upstream answers one request.
#[derive(Debug, Clone)]
enum Answer {
    /// These bytes, then wait for the next request on the connection.
    Bytes(Vec<u8>),
    /// These bytes, then a reset (RST) of the connection.
    BytesThenReset(Vec<u8>),
    /// Nothing, ever: wait for the peer to close.
    Silence,
}

/// What the recording upstream saw.
#[derive(Debug)]
enum Seen {
    Request(RawRequest),
    /// The peer closed the connection (read returned 0 or an error).
    Closed,
}

/// A raw-TCP upstream that records every request and answers as `answer` says.
struct RecordingUpstream {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingUpstream {
    async fn start(answer: fn(&RawRequest) -> Answer) -> RecordingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(record_connection(stream, answer, tx.clone()));
            }
        });
        RecordingUpstream { addr, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(STEP, self.seen.recv())
            .await
            .unwrap_or_else(|_| panic!("the upstream saw nothing within {STEP:?}"))
            .expect("the recording upstream is running")
    }

    /// The next request the upstream received (connections closing in
    /// between, e.g. without a pool, are passed over).
    async fn request(&mut self) -> RawRequest {
        loop {
            if let Seen::Request(request) = self.next().await {
                return request;
            }
        }
    }

    /// Nothing more has been seen so far.
    fn assert_nothing_more(&mut self, what: &str) {
        match self.seen.try_recv() {
            Err(mpsc::error::TryRecvError::Empty) => {}
            other => panic!("{what}: the upstream saw {other:?}"),
        }
    }
}

/// Serves one upstream connection: read a request, record it, answer; repeat.
async fn record_connection(
    mut stream: TcpStream,
    answer: fn(&RawRequest) -> Answer,
    seen: mpsc::UnboundedSender<Seen>,
) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            let _ = seen.send(Seen::Closed);
            return;
        };
        let reply = answer(&request);
        let _ = seen.send(Seen::Request(request));
        match reply {
            Answer::Bytes(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    let _ = seen.send(Seen::Closed);
                    return;
                }
            }
            Answer::BytesThenReset(bytes) => {
                let _ = stream.write_all(&bytes).await;
                // Let the bytes cross loopback before the reset overtakes them.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = stream.set_zero_linger();
                return;
            }
            Answer::Silence => {
                let mut sink = [0u8; 4096];
                loop {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => {
                            let _ = seen.send(Seen::Closed);
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
}

/// Reads one whole request (head, then a Content-Length or chunked body);
/// `None` when the connection ends first.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<RawRequest> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let (request_line, headers) = parse_header_lines(&head);
            let body_start = end + 4;
            let chunked = values_of(&headers, "transfer-encoding")
                .iter()
                .any(|v| v.eq_ignore_ascii_case("chunked"));
            let body_len = if chunked {
                chunked_len(&buffer[body_start..])
            } else {
                let length = values_of(&headers, "content-length")
                    .first()
                    .map_or(0, |v| v.parse::<usize>().expect("numeric Content-Length"));
                (buffer.len() >= body_start + length).then_some(length)
            };
            if let Some(body_len) = body_len {
                let raw: Vec<u8> = buffer.drain(..body_start + body_len).collect();
                return Some(RawRequest {
                    request_line,
                    headers,
                    body: raw[body_start..].to_vec(),
                    raw,
                });
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn answer_ok(_: &RawRequest) -> Answer {
    Answer::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
}

// ---------------------------------------------------------------------------
// The `lab` binary
// ---------------------------------------------------------------------------

/// `lab proxy --listen 127.0.0.1:0 ARGS` as a child process, its log line
/// `Starting ReverseProxy at ADDR → http://…` read: the process and ADDR.
async fn proxy_binary(args: &[&str]) -> (LabProcess, SocketAddr) {
    let (lab, addr) = proxy_process(args).await;
    let line = lab.lines().last().expect("the start line");
    assert!(
        line.contains(" → http://"),
        "the log line names the upstream: {line:?}"
    );
    (lab, addr)
}

/// A `VmXXX:` figure of /proc/PID/status, in kB.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

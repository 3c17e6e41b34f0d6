//! `lab proxy` (the ReverseProxy of `src/proxy/reverse.rs`) on real sockets:
//! every behaviour of the 13-step pipeline, checked on both sides of the
//! proxy: what the upstream received and what the client received.
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
//! Everything listens on 127.0.0.1 port 0. Every wait is bounded by [`STEP`]
//! and every test by [`TEST_LIMIT`]; the only timings asserted are timeouts
//! the proxy or the real server are meant to enforce, with wide margins.
//!
//! Findings recorded here (hyper 1.x behaviour, not the proxy's code):
//! - a request with both Content-Length and Transfer-Encoding would be framed
//!   by hyper with the chunked coding alone (RFC 9112 §6.1 allows that); the
//!   lab's framing guard (`src/framing.rs`) refuses it with 400 instead;
//! - hyper's request head limit is about 400 KB (its read buffer), so a
//!   200 KB header is forwarded; far beyond it the answer is 431.

use crate::common;
use crate::common::{LabProcess, decode_chunked, find};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use lab::cli::{Cli, Command as LabCommand, ProxyArgs};
use lab::probe::{Exchange, Probe};
use lab::proxy::reverse::{ReverseProxy, UPSTREAM_HEADER};
use lab::realserver::{Config, EchoReport, RunningServer, SERVER_HEADER, pattern_byte};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// The longest any single step of a test may take before it is a failure.
const STEP: Duration = Duration::from_secs(15);

/// The longest a whole test may take: a hang anywhere fails it by then.
const TEST_LIMIT: Duration = Duration::from_secs(28);

/// Runs a test's body under [`TEST_LIMIT`].
async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

// ---------------------------------------------------------------------------
// Helpers: real servers and proxies
// ---------------------------------------------------------------------------

async fn realserver() -> RunningServer {
    RunningServer::start_on_free_port(Config::default())
        .await
        .expect("a real server starts on 127.0.0.1:0")
}

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
    let proxy = Arc::new(ReverseProxy::from_args(args).await.expect("proxy"));
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

async fn send(addr: SocketAddr, probe: Probe) -> Exchange {
    let path = probe.path.clone();
    probe
        .send(addr)
        .await
        .unwrap_or_else(|err| panic!("{} {path} to {addr}: {err:#}", probe.method))
}

/// Sends `probe` asking for the real server's JSON echo; the echo must come back.
async fn json_echo(addr: SocketAddr, probe: Probe) -> (Exchange, EchoReport) {
    let exchange = send(addr, probe.header("Accept", "application/json")).await;
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    let report = exchange.json_echo().expect("the real server's JSON echo");
    (exchange, report)
}

/// The one value of a response header, as text.
fn header_of<'a>(exchange: &'a Exchange, name: &str) -> &'a str {
    let values: Vec<_> = exchange.headers.get_all(name).iter().collect();
    assert_eq!(
        values.len(),
        1,
        "expected exactly one {name} header, got {:?}",
        exchange.headers
    );
    values[0].to_str().expect("header value is text")
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

/// The address of a port nothing listens on (bound, then released).
fn dead_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local address")
}

// ---------------------------------------------------------------------------
// Helpers: raw HTTP/1.1 on the client side
// ---------------------------------------------------------------------------

fn contains_ignore_case(haystack: &[u8], needle: &str) -> bool {
    let haystack = String::from_utf8_lossy(haystack).to_ascii_lowercase();
    haystack.contains(&needle.to_ascii_lowercase())
}

/// Header lines of a head (everything after the first line), names as sent.
fn parse_header_lines(head: &str) -> (String, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            (name.to_string(), value.trim().to_string())
        })
        .collect();
    (first, headers)
}

fn values_of<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A response as it came off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    /// Header lines in order, names as sent.
    headers: Vec<(String, String)>,
    /// Everything after the blank line, undecoded.
    body: Vec<u8>,
    /// Whether the body was complete by its framing (Content-Length reached,
    /// last chunk seen, or a close-delimited body ended by a clean close).
    complete: bool,
}

impl RawResponse {
    /// Parses `bytes`; `None` while the head or the framed body is incomplete.
    /// `at_eof`: the connection ended after these bytes.
    fn parse(bytes: &[u8], at_eof: bool) -> Option<RawResponse> {
        let end = find(bytes, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).expect("response head is text");
        let (status_line, headers) = parse_header_lines(head);
        let mut parts = status_line.splitn(3, ' ');
        assert!(
            matches!(parts.next(), Some("HTTP/1.1" | "HTTP/1.0")),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let body = &bytes[end + 4..];
        let length = match values_of(&headers, "content-length").as_slice() {
            [] => None,
            [length] => Some(length.parse::<usize>().expect("a numeric Content-Length")),
            more => panic!("several Content-Length headers: {more:?}"),
        };
        let chunked = values_of(&headers, "transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        let complete = if matches!(status, 101 | 204 | 304) {
            true
        } else if chunked {
            chunked_len(body).is_some()
        } else if let Some(length) = length {
            assert!(body.len() <= length, "bytes after the body: {body:?}");
            body.len() == length
        } else {
            at_eof
        };
        if !complete && !at_eof {
            return None;
        }
        Some(RawResponse {
            status,
            headers,
            body: body.to_vec(),
            complete,
        })
    }

    /// Every value of header `name` (case-insensitive), in order.
    fn values(&self, name: &str) -> Vec<&str> {
        values_of(&self.headers, name)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `stream`: to the end of its framing, or to the
/// connection's end (a reset counts as the end; what arrived is returned).
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let read = async {
        let mut received = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(response) = RawResponse::parse(&received, false) {
                return response;
            }
            let n = match stream.read(&mut buf).await {
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(err) => panic!("reading a response: {err}"),
            };
            if n == 0 {
                return RawResponse::parse(&received, true).unwrap_or_else(|| {
                    panic!(
                        "connection closed without a response head: {:?}",
                        String::from_utf8_lossy(&received)
                    )
                });
            }
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(STEP, read)
        .await
        .unwrap_or_else(|_| panic!("no whole response within {STEP:?}"))
}

/// Writes `request` on a new connection to `addr` and reads one response.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (RawResponse, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write the request");
    let response = read_response(&mut stream).await;
    (response, stream)
}

/// Whether the peer has closed `stream` (EOF or reset) within [`STEP`],
/// sending no more bytes.
async fn assert_closed_without_more(stream: &mut TcpStream, what: &str) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection stays open"));
    match read {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("{what}: {err}"),
    }
    assert!(
        rest.is_empty(),
        "{what}: more bytes after the response: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Length of a complete chunked body at the start of `body` (last chunk and
/// trailer section included), or `None` if it is not complete yet.
fn chunked_len(body: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let line_end = pos + find(&body[pos..], b"\r\n")?;
        let size_line = std::str::from_utf8(&body[pos..line_end]).ok()?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            loop {
                let end = pos + find(&body[pos..], b"\r\n")?;
                let blank = end == pos;
                pos = end + 2;
                if blank {
                    return Some(pos);
                }
            }
        }
        if body.len() < pos + size + 2 {
            return None;
        }
        pos += size + 2;
    }
}

// ---------------------------------------------------------------------------
// Helpers: the recording upstream
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
// Helpers: the `lab` binary
// ---------------------------------------------------------------------------

/// `lab proxy` as a child process, stderr drained; killed when dropped.
struct ProxyProcess {
    lab: LabProcess,
    addr: SocketAddr,
}

impl ProxyProcess {
    /// Starts `lab proxy --listen 127.0.0.1:0 ARGS` and reads its address from
    /// the log line `Starting ReverseProxy at ADDR → …`.
    async fn spawn(args: &[&str]) -> ProxyProcess {
        let argv: Vec<&str> = ["proxy", "--listen", "127.0.0.1:0"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let mut lab = LabProcess::spawn(&argv);
        const MARK: &str = "Starting ReverseProxy at ";
        let line = lab.wait_for(MARK).await;
        assert!(
            line.contains(" → http://"),
            "the log line names the upstream: {line:?}"
        );
        let addr = common::addr_in(&line, MARK);
        ProxyProcess { lab, addr }
    }

    fn pid(&self) -> u32 {
        self.lab.pid()
    }
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

// ---------------------------------------------------------------------------
// 1. The Director
// ---------------------------------------------------------------------------

#[tokio::test]
async fn director_joins_the_base_path_and_merges_the_query() {
    bounded(async {
        let server = realserver().await;
        let upstream = format!("http://{}/base?name=123", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        let cases = [
            ("/xxx?x=1", "/base/xxx?name=123&x=1"),
            ("/xxx", "/base/xxx?name=123"),
            ("/", "/base/?name=123"),
            ("/a/b/c?x=1&y=2", "/base/a/b/c?name=123&x=1&y=2"),
        ];
        for (sent, arrived) in cases {
            let (exchange, report) = json_echo(proxy.addr, Probe::get(sent)).await;
            assert_eq!(report.uri, arrived, "{sent}");
            assert_eq!(report.method, "GET");
            // The upstream's answer comes back with its end-to-end headers...
            assert_eq!(
                header_of(&exchange, SERVER_HEADER),
                server.addr().to_string()
            );
            // ...and the proxy's note of who answered.
            assert_names_upstream(&exchange, &upstream);
            // The Host the client sent, untouched (Go's NewSingleHostReverseProxy).
            assert_eq!(report.header_values("host"), [proxy.addr.to_string()]);
            // The upstream's TCP peer is the proxy, never the client.
            assert_ne!(report.remote_addr, exchange.local_addr.to_string());
        }
    })
    .await;
}

#[tokio::test]
async fn director_without_a_base_path_keeps_the_path() {
    bounded(async {
        let server = realserver().await;
        for upstream in [
            format!("http://{}", server.addr()),
            format!("http://{}/", server.addr()),
        ] {
            let proxy = start_proxy(&upstream, &[]).await;
            for (sent, arrived) in [("/xxx?x=1", "/xxx?x=1"), ("/", "/"), ("/a/b", "/a/b")] {
                let (exchange, report) = json_echo(proxy.addr, Probe::get(sent)).await;
                assert_eq!(report.uri, arrived, "{upstream} {sent}");
                assert_names_upstream(&exchange, &upstream);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn director_keeps_an_encoded_path_encoded() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        for (sent, arrived) in [
            ("/a%2Fb", "/base/a%2Fb"),
            ("/sp%20ace/x%3Fy?q=%26", "/base/sp%20ace/x%3Fy?q=%26"),
        ] {
            let (_, report) = json_echo(proxy.addr, Probe::get(sent)).await;
            assert_eq!(report.uri, arrived, "{sent}");
        }
    })
    .await;
}

#[tokio::test]
async fn director_rewrites_the_path_before_the_join() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--rewrite", "^/dir(.*)=$1"],
        )
        .await;
        for (sent, arrived) in [
            ("/dir/abc", "/base/abc"),
            ("/dir/abc?q=1", "/base/abc?q=1"),
            ("/other/dir", "/base/other/dir"),
        ] {
            let (_, report) = json_echo(proxy.addr, Probe::get(sent)).await;
            assert_eq!(report.uri, arrived, "{sent}");
        }
    })
    .await;
}

#[tokio::test]
async fn director_sets_a_header_over_the_clients() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--set-header", "token:ssss"],
        )
        .await;
        let (_, report) = json_echo(proxy.addr, Probe::get("/abc")).await;
        assert_eq!(report.header_values("token"), ["ssss"]);
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/abc").header("Token", "from-the-client"),
        )
        .await;
        assert_eq!(report.header_values("token"), ["ssss"], "set, not added");
    })
    .await;
}

#[tokio::test]
async fn director_replaces_the_body_and_fixes_its_length() {
    bounded(async {
        let server = realserver().await;
        let json = r#"{"apple":2}"#;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--replace-body", json],
        )
        .await;
        let original = "x".repeat(10_000);
        let probe = Probe::get("/abc")
            .method(http::Method::POST)
            .body(original.clone());
        let (_, report) = json_echo(proxy.addr, probe).await;
        assert_eq!(report.body_bytes, json.len() as u64, "{report:?}");
        assert_eq!(
            report.header_values("content-length"),
            [json.len().to_string()]
        );
        assert!(report.header_values("transfer-encoding").is_empty());
    })
    .await;
}

#[tokio::test]
async fn replaced_body_is_exact_on_the_wire_even_for_a_chunked_request() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let json = r#"{"apple":2,"banana":3,"cherry":4}"#;
        let proxy = start_proxy(
            &upstream.url("/base"),
            // Spaces on purpose: the document is sent re-serialised, compactly.
            &[
                "--replace-body",
                r#"{"apple": 2, "banana": 3, "cherry": 4}"#,
            ],
        )
        .await;
        let request =
            b"POST /json HTTP/1.1\r\nHost: client.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.body, b"ok");

        let seen = upstream.request().await;
        assert_eq!(seen.request_line, "POST /base/json HTTP/1.1");
        assert_eq!(seen.body, json.as_bytes(), "{seen:?}");
        assert_eq!(seen.values("content-length"), [json.len().to_string()]);
        assert!(seen.values("transfer-encoding").is_empty(), "{seen:?}");
        assert!(!contains_ignore_case(&seen.raw, "hello"), "{seen:?}");
    })
    .await;
}

#[tokio::test]
async fn director_keeps_the_clients_host_and_sends_origin_form() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request = b"GET /h?x=1 HTTP/1.1\r\nHost: client.example:8080\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200, "{response:?}");

        let seen = upstream.request().await;
        // Origin-form, as a server expects it (absolute-form is for forward proxies).
        assert_eq!(seen.request_line, "GET /base/h?x=1 HTTP/1.1", "{seen:?}");
        assert_eq!(seen.values("host"), ["client.example:8080"], "{seen:?}");
        assert_eq!(
            seen.values("x-forwarded-host"),
            ["client.example:8080"],
            "{seen:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// 2. Forwarding headers
// ---------------------------------------------------------------------------

fn assert_via_is_this_proxy(via: &str) {
    let name = via
        .strip_prefix("1.1 lab-")
        .unwrap_or_else(|| panic!("Via {via:?} is `1.1 lab-…`"));
    assert!(
        name.len() == 8 && name.chars().all(|c| c.is_ascii_hexdigit()),
        "Via {via:?} ends in eight hex digits"
    );
}

#[tokio::test]
async fn forwarding_headers_by_default_append_and_overwrite() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;

        // No X-Forwarded-For from the client: just the client.
        let (_, report) = json_echo(proxy.addr, Probe::get("/f")).await;
        assert_eq!(report.header_values("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(report.header_values("x-real-ip"), ["127.0.0.1"]);
        assert_eq!(
            report.header_values("x-forwarded-host"),
            [proxy.addr.to_string()]
        );
        assert_eq!(report.header_values("x-forwarded-proto"), ["http"]);
        let via = report.header_values("via");
        assert_eq!(via.len(), 1, "{via:?}");
        assert_via_is_this_proxy(via[0]);

        // Claims from the client: X-Forwarded-For is appended to, the rest is
        // overwritten with what the proxy saw.
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X-Real-Ip", "6.6.6.6")
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "https"),
        )
        .await;
        assert_eq!(
            report.header_values("x-forwarded-for"),
            ["1.2.3.4, 127.0.0.1"]
        );
        assert_eq!(report.header_values("x-real-ip"), ["127.0.0.1"]);
        assert_eq!(
            report.header_values("x-forwarded-host"),
            [proxy.addr.to_string()]
        );
        assert_eq!(report.header_values("x-forwarded-proto"), ["http"]);

        // Two X-Forwarded-For lines become one line.
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.1.1.1")
                .header("X-Forwarded-For", "2.2.2.2, 3.3.3.3"),
        )
        .await;
        assert_eq!(
            report.header_values("x-forwarded-for"),
            ["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]
        );
    })
    .await;
}

#[tokio::test]
async fn forwarded_replace_erases_the_chain() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--forwarded", "replace"],
        )
        .await;
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X-Real-Ip", "6.6.6.6"),
        )
        .await;
        assert_eq!(report.header_values("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(report.header_values("x-real-ip"), ["127.0.0.1"]);
    })
    .await;
}

#[tokio::test]
async fn forwarded_trust_keeps_what_the_client_claimed() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--forwarded", "trust"],
        )
        .await;
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X-Real-Ip", "6.6.6.6")
                .header("X-Forwarded-Proto", "https"),
        )
        .await;
        assert_eq!(
            report.header_values("x-forwarded-for"),
            ["1.2.3.4, 127.0.0.1"]
        );
        assert_eq!(report.header_values("x-real-ip"), ["6.6.6.6"]);
        assert_eq!(report.header_values("x-forwarded-proto"), ["https"]);
        // Not claimed by the client: filled in as usual.
        assert_eq!(
            report.header_values("x-forwarded-host"),
            [proxy.addr.to_string()]
        );
    })
    .await;
}

#[tokio::test]
async fn via_adds_this_proxy_after_earlier_hops_with_the_clients_version() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;

        let request = b"GET /v HTTP/1.1\r\nHost: h\r\nVia: 1.0 squid\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200);
        let seen = upstream.request().await;
        let via = seen.values("via");
        assert_eq!(via.len(), 2, "{seen:?}");
        assert_eq!(via[0], "1.0 squid");
        assert_via_is_this_proxy(via[1]);
        let pseudonym = via[1].trim_start_matches("1.1 ").to_string();

        // An HTTP/1.0 client: the proxy says it received 1.0, and still talks
        // HTTP/1.1 to the upstream.
        let request = b"GET /v HTTP/1.0\r\nHost: h\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200);
        let seen = upstream.request().await;
        assert_eq!(seen.request_line, "GET /base/v HTTP/1.1");
        assert_eq!(seen.values("via"), [format!("1.0 {pseudonym}")], "{seen:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 3. Hop-by-hop headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hop_by_hop_request_headers_never_reach_the_upstream() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request = b"GET /hop HTTP/1.1\r\n\
        Host: h\r\n\
        Connection: keep-alive, X-Foo\r\n\
        X-Foo: foo-secret\r\n\
        Keep-Alive: timeout=77\r\n\
        Proxy-Connection: keep-alive\r\n\
        Proxy-Authorization: Basic cHJveHktc2VjcmV0\r\n\
        TE: gzip\r\n\
        Upgrade: websocket\r\n\
        X-End: end-to-end\r\n\
        \r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200, "{response:?}");

        let seen = upstream.request().await;
        let names = seen.names();
        for hop in [
            "connection",
            "x-foo",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "upgrade",
        ] {
            assert!(!names.iter().any(|n| n == hop), "{hop} reached: {seen:?}");
        }
        for secret in [
            "foo-secret",
            "timeout=77",
            "cHJveHktc2VjcmV0",
            "gzip",
            "websocket",
        ] {
            assert!(
                !contains_ignore_case(&seen.raw, secret),
                "{secret} reached the upstream: {seen:?}"
            );
        }
        assert_eq!(seen.values("x-end"), ["end-to-end"]);
        assert_eq!(seen.values("host"), ["h"]);
    })
    .await;
}

#[tokio::test]
async fn te_trailers_reaches_the_upstream() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        for te in ["trailers", "trailers, deflate", "gzip, trailers"] {
            let request = format!("GET /te HTTP/1.1\r\nHost: h\r\nTE: {te}\r\n\r\n");
            let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
            assert_eq!(response.status, 200);
            let seen = upstream.request().await;
            assert_eq!(seen.values("te"), ["trailers"], "TE: {te}: {seen:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_response_headers_of_the_real_server_never_reach_the_client() {
    bounded(async {
        let server = realserver().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        // Keep-alive, so that a `Connection` header could only come from upstream.
        let request = format!("GET /hop-headers HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr);
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.complete);
        for hop in ["connection", "x-hop", "keep-alive"] {
            assert!(response.values(hop).is_empty(), "{hop}: {response:?}");
        }
        // End-to-end headers do arrive.
        assert_eq!(
            response.values(SERVER_HEADER),
            [server.addr().to_string()],
            "{response:?}"
        );
        assert_eq!(
            response.values(UPSTREAM_HEADER.as_str()),
            [upstream.as_str()]
        );
        assert!(
            response.values("content-type")[0].starts_with("text/plain"),
            "{response:?}"
        );
        assert!(
            response.text().contains("/base/hop-headers"),
            "{}",
            response.text()
        );
    })
    .await;
}

fn answer_with_hop_headers(_: &RawRequest) -> Answer {
    Answer::Bytes(
        b"HTTP/1.1 200 OK\r\n\
        Connection: X-Hop\r\n\
        X-Hop: hop-secret\r\n\
        Keep-Alive: timeout=77\r\n\
        Proxy-Authenticate: Basic realm=\"upstream-secret\"\r\n\
        Upgrade: h2c\r\n\
        X-End: end-to-end\r\n\
        Content-Length: 2\r\n\
        \r\n\
        ok"
        .to_vec(),
    )
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed_on_the_wire() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_with_hop_headers).await;
        let proxy = start_proxy(&upstream.url(""), &[]).await;
        let request = b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        upstream.request().await;
        assert_eq!(response.status, 200, "{response:?}");
        for hop in [
            "connection",
            "x-hop",
            "keep-alive",
            "proxy-authenticate",
            "upgrade",
        ] {
            assert!(response.values(hop).is_empty(), "{hop}: {response:?}");
        }
        let head = format!("{:?}", response.headers);
        for secret in ["hop-secret", "timeout=77", "upstream-secret", "h2c"] {
            assert!(!head.contains(secret), "{secret}: {head}");
        }
        assert_eq!(response.values("x-end"), ["end-to-end"]);
        assert_eq!(response.values("content-length"), ["2"]);
        assert_eq!(response.body, b"ok");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 4. ModifyResponse and the ErrorHandler
// ---------------------------------------------------------------------------

#[tokio::test]
async fn prefix_response_prefixes_200_bodies_and_fixes_content_length() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--prefix-response", "hello "],
        )
        .await;

        // A Content-Length body: the length grows by the prefix, checked raw.
        let request = format!("GET /abc HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr);
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.complete, "{response:?}");
        let body = response.text();
        assert!(
            body.starts_with(&format!("hello http://{}/base/abc\n", server.addr())),
            "{body}"
        );
        assert_eq!(
            response.values("content-length"),
            [response.body.len().to_string()]
        );

        // A chunked body: the prefix comes first, the length stays unknown.
        let request = format!(
            "GET /stream?n=2&ms=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            proxy.addr
        );
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 200);
        assert!(response.values("content-length").is_empty(), "{response:?}");
        let text = decode_chunked(&response.body).text();
        assert!(text.starts_with("hello chunk 1/2 at "), "{text}");
        assert!(text.contains("chunk 2/2 at "), "{text}");

        // Not a 200: left alone.
        let exchange = send(proxy.addr, Probe::get("/error")).await;
        assert_eq!(exchange.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(exchange.text(), "error handler");
    })
    .await;
}

#[tokio::test]
async fn prefix_errors_prefixes_upstream_errors_only() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--prefix-errors"],
        )
        .await;
        let request = format!("GET /error HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr);
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 500, "{response:?}");
        assert_eq!(response.text(), "StatusCode error:error handler");
        assert_eq!(response.values("content-length"), ["30"]);

        let exchange = send(proxy.addr, Probe::get("/abc")).await;
        assert_eq!(exchange.status, StatusCode::OK);
        assert!(
            exchange.text().starts_with("http://"),
            "{}",
            exchange.text()
        );
    })
    .await;
}

#[tokio::test]
async fn upstream_down_is_a_502_that_says_what_to_do() {
    bounded(async {
        let upstream = format!("http://{}/base", dead_port());
        for flags in [&[][..], &["--prefix-errors"][..]] {
            let proxy = start_proxy(&upstream, flags).await;
            let exchange = send(proxy.addr, Probe::get("/abc")).await;
            assert_eq!(exchange.status, StatusCode::BAD_GATEWAY, "{flags:?}");
            let body = exchange.text();
            assert!(body.contains(&upstream), "{flags:?}: {body}");
            assert!(body.contains("lab realserver"), "{flags:?}: {body}");
            // The ErrorHandler's answer is not the upstream's: ModifyResponse
            // (here --prefix-errors) never sees it, as in Go.
            assert!(!body.starts_with("StatusCode error:"), "{flags:?}: {body}");
            assert_names_upstream(&exchange, &upstream);
        }
    })
    .await;
}

#[tokio::test]
async fn slow_upstream_is_a_504_at_the_response_timeout() {
    bounded(async {
        let server = realserver().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &["--response-timeout", "300ms"]).await;
        let started = Instant::now();
        let exchange = send(proxy.addr, Probe::get("/delay?ms=3000")).await;
        let elapsed = started.elapsed();
        assert_eq!(
            exchange.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{}",
            exchange.text()
        );
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(2_500),
            "504 at the 300 ms response timeout, not after {elapsed:?}"
        );
        assert!(
            exchange.text().contains("--response-timeout"),
            "{}",
            exchange.text()
        );
        assert_names_upstream(&exchange, &upstream);
        // A fast request through the same proxy is still answered.
        let (_, report) = json_echo(proxy.addr, Probe::get("/delay?ms=10")).await;
        assert_eq!(report.uri, "/base/delay?ms=10");
    })
    .await;
}

#[tokio::test]
async fn article_errors_answer_500_error_handler() {
    bounded(async {
        let dead = format!("http://{}/base", dead_port());
        let proxy = start_proxy(&dead, &["--article-errors"]).await;
        let exchange = send(proxy.addr, Probe::get("/abc")).await;
        assert_eq!(exchange.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = exchange.text();
        assert!(body.starts_with("ErrorHandler error:"), "{body}");
        assert!(body.contains("lab realserver"), "{body}");
        assert_names_upstream(&exchange, &dead);

        let server = realserver().await;
        let slow = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&slow, &["--article-errors", "--response-timeout", "300ms"]).await;
        let exchange = send(proxy.addr, Probe::get("/delay?ms=3000")).await;
        assert_eq!(exchange.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = exchange.text();
        assert!(body.starts_with("ErrorHandler error:"), "{body}");
        assert!(body.contains("--response-timeout"), "{body}");
        assert_names_upstream(&exchange, &slow);
    })
    .await;
}

#[tokio::test]
async fn the_articles_six_second_handler_is_a_502_after_three_seconds() {
    bounded(async {
        let server = realserver().await;
        let upstream = format!("http://{}", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        let started = Instant::now();
        let exchange = send(
            proxy.addr,
            Probe::get("/test_http_string/test_http_string/aaa"),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(
            exchange.status,
            StatusCode::BAD_GATEWAY,
            "{}",
            exchange.text()
        );
        // The real server's 3 s write timeout closes the upstream connection; the
        // proxy's own 30 s response timeout never comes into it.
        assert!(
            elapsed >= Duration::from_millis(2_500) && elapsed < Duration::from_millis(5_500),
            "502 when the real server gives up at 3 s, not after {elapsed:?}"
        );
        assert!(
            exchange.text().contains("closed the connection"),
            "{}",
            exchange.text()
        );
        assert_names_upstream(&exchange, &upstream);
    })
    .await;
}

fn answer_then_cut(request: &RawRequest) -> Answer {
    if request.target().ends_with("/cut") {
        Answer::BytesThenReset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial".to_vec())
    } else {
        answer_ok(request)
    }
}

#[tokio::test]
async fn upstream_cut_mid_body_cuts_the_client_short_too() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_then_cut).await;
        let proxy = start_proxy(&upstream.url(""), &[]).await;
        let (response, mut client) =
            raw_exchange(proxy.addr, b"GET /cut HTTP/1.1\r\nHost: h\r\n\r\n").await;
        // The head was already on its way: a 200 whose body never completes,
        // never a complete response that silently lies about its content.
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.values("content-length"), ["100"]);
        assert!(!response.complete, "{response:?}");
        assert_eq!(response.body, b"partial");
        assert_closed_without_more(&mut client, "the cut response").await;
        upstream.request().await;

        // The proxy still serves.
        let (response, _client) =
            raw_exchange(proxy.addr, b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"ok");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 5. Upgrades
// ---------------------------------------------------------------------------

#[tokio::test]
async fn websocket_round_trip_through_the_proxy() {
    bounded(async {
        let server = realserver().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        let url = format!("ws://{}/ws", proxy.addr);
        let (mut ws, response) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(&url))
            .await
            .expect("handshake within the step timeout")
            .unwrap_or_else(|err| panic!("WebSocket handshake through the proxy: {err}"));
        // tungstenite has checked Sec-WebSocket-Accept: the key went through.
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(header(SERVER_HEADER), Some(server.addr().to_string()));
        assert_eq!(header(UPSTREAM_HEADER.as_str()), Some(upstream.clone()));

        let messages = [
            Message::text("héllo through the proxy"),
            Message::binary(vec![0u8, 1, 2, 254, 255]),
            Message::text("x".repeat(100_000)),
        ];
        for message in messages {
            ws.send(message.clone()).await.expect("send");
            let back = tokio::time::timeout(STEP, ws.next())
                .await
                .expect("an echo within the step timeout")
                .expect("the stream is still open")
                .expect("a message, not an error");
            assert_eq!(back, message);
        }
        let rest = common::close_and_drain(&mut ws).await;
        assert!(
            matches!(rest.as_slice(), [Ok(Message::Close(_))]),
            "expected the server's close frame, then the end: {rest:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unprintable_upgrade_token_is_a_400_and_the_proxy_keeps_serving() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: caf\xc3\xa9\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 400, "{response:?}");
        assert!(
            response.text().contains("invalid protocol"),
            "{}",
            response.text()
        );

        let (response, _client) =
            raw_exchange(proxy.addr, b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(response.status, 200, "{response:?}");
        // The refused request never went upstream: the first one seen is the good one.
        let seen = upstream.request().await;
        assert_eq!(seen.target(), "/base/good", "{seen:?}");
        upstream.assert_nothing_more("after the good request");
    })
    .await;
}

fn answer_101_h2c(_: &RawRequest) -> Answer {
    Answer::Bytes(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec(),
    )
}

#[tokio::test]
async fn an_upstream_switching_to_another_protocol_is_a_502() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_101_h2c).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 502, "{response:?}");
        let body = response.text();
        assert!(body.contains("h2c") && body.contains("websocket"), "{body}");
        assert!(response.values("upgrade").is_empty(), "{response:?}");

        // The upgrade request itself was forwarded whole.
        let seen = upstream.request().await;
        assert_eq!(seen.values("connection"), ["Upgrade"], "{seen:?}");
        assert_eq!(seen.values("upgrade"), ["websocket"], "{seen:?}");
        assert_eq!(
            seen.values("sec-websocket-key"),
            ["dGhlIHNhbXBsZSBub25jZQ=="]
        );
        // And the connection that switched to the wrong protocol is dropped.
        assert!(
            matches!(upstream.next().await, Seen::Closed),
            "the proxy closes the mismatched upstream connection"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// 6. Trailers and streaming
// ---------------------------------------------------------------------------

#[tokio::test]
async fn trailers_pass_through_when_the_client_accepts_them() {
    bounded(async {
    let server = realserver().await;
    let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
    let request = format!(
        "GET /stream?n=3&ms=100 HTTP/1.1\r\nHost: {}\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.values("transfer-encoding"), ["chunked"]);
    assert_eq!(response.values("trailer"), ["X-Lab-Chunks"], "{response:?}");
    let chunked = decode_chunked(&response.body);
    assert_eq!(chunked.chunks.len(), 3, "{chunked:?}");
    for (i, chunk) in chunked.chunks.iter().enumerate() {
        let chunk = String::from_utf8_lossy(chunk);
        assert!(
            chunk.starts_with(&format!("chunk {}/3 at ", i + 1)),
            "{chunk}"
        );
    }
    assert_eq!(chunked.trailers.len(), 1, "{chunked:?}");
    let (name, value) = &chunked.trailers[0];
    assert!(name.eq_ignore_ascii_case("x-lab-chunks"), "{name}");
    assert_eq!(value, "3");

    // Without `TE: trailers` the upstream is not told either, and no
    // trailer fields are sent.
    let request = format!(
        "GET /stream?n=2&ms=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
    let chunked = decode_chunked(&response.body);
    assert_eq!(chunked.chunks.len(), 2, "{chunked:?}");
    assert!(chunked.trailers.is_empty(), "{chunked:?}");
    })
    .await;
}

#[tokio::test]
async fn a_stream_reaches_the_client_chunk_by_chunk() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        // Chunk 2 comes 20 s after chunk 1: a buffering proxy would show nothing
        // for 20 s, longer than this test waits.
        let request = format!(
            "GET /stream?n=2&ms=20000 HTTP/1.1\r\nHost: {}\r\n\r\n",
            proxy.addr
        );
        let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
        client.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(10), async {
            while find(&received, b"chunk 1/2").is_none() {
                let n = client.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "closed early: {:?}",
                    String::from_utf8_lossy(&received)
                );
                received.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the first chunk did not arrive while the upstream waited: {:?}",
                String::from_utf8_lossy(&received)
            )
        });
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            contains_ignore_case(&received, "transfer-encoding: chunked"),
            "{text}"
        );
        assert!(!text.contains("chunk 2/2"), "{text}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 7. Client abort
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_client_that_leaves_closes_the_upstream_request() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(|_| Answer::Silence).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
        client
            .write_all(b"GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let seen = upstream.request().await;
        assert_eq!(seen.target(), "/base/hang");

        drop(client);
        let closed = tokio::time::timeout(Duration::from_secs(5), upstream.seen.recv())
            .await
            .expect("the upstream connection closes within 5 s of the client leaving");
        assert!(matches!(closed, Some(Seen::Closed)), "{closed:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 8. The connection pool
// ---------------------------------------------------------------------------

/// The real server's view of five sequential requests, each from a new
/// client connection: the port the proxy's upstream connection came from.
async fn upstream_ports(proxy: SocketAddr) -> Vec<u16> {
    let mut ports = Vec::new();
    for _ in 0..5 {
        let (_, report) = json_echo(proxy, Probe::get("/pool")).await;
        let peer: SocketAddr = report.remote_addr.parse().expect("RemoteAddr");
        ports.push(peer.port());
        // Let the finished connection go back to the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ports
}

#[tokio::test]
async fn the_pool_reuses_one_upstream_connection() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        let ports = upstream_ports(proxy.addr).await;
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
    })
    .await;
}

#[tokio::test]
async fn max_idle_per_host_0_opens_a_connection_per_request() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--max-idle-per-host", "0"],
        )
        .await;
        let ports = upstream_ports(proxy.addr).await;
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 9. The loop guard
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_proxy_pointed_at_itself_answers_508() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let upstream = format!("http://{addr}/base");
        let _proxy = serve_proxy(listener, &proxy_args(&upstream, &[])).await;
        let exchange = send(addr, Probe::get("/abc")).await;
        assert_eq!(
            exchange.status,
            StatusCode::LOOP_DETECTED,
            "{}",
            exchange.text()
        );
        assert!(
            exchange.text().contains("--upstream"),
            "{}",
            exchange.text()
        );
        assert_names_upstream(&exchange, &upstream);
    })
    .await;
}

// ---------------------------------------------------------------------------
// 10. Big bodies through the binary
// ---------------------------------------------------------------------------

const BIG: u64 = 50 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_streams_50_mb_each_way_in_bounded_memory() {
    bounded(async {
    let server = realserver().await;
    let proxy =
        ProxyProcess::spawn(&["--upstream", &format!("http://{}/base", server.addr())]).await;
    let pid = proxy.pid();
    // reqwest's TLS needs a crypto provider even for http:// (the lab's is ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a reqwest client");
    let before_kb = proc_status_kb(pid, "VmHWM:");

    // Upload: 50 MB streamed from here, never held whole.
    const CHUNK: usize = 64 * 1024;
    let chunks = futures_util::stream::iter(
        (0..BIG as usize / CHUNK).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'u'; CHUNK]))),
    );
    let response = tokio::time::timeout(
        Duration::from_secs(25),
        client
            .post(format!("http://{}/upload", proxy.addr))
            .header("Accept", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    )
    .await
    .expect("the upload finishes")
    .expect("the upload is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let report: EchoReport = response.json().await.expect("the JSON echo");
    assert_eq!(report.body_bytes, BIG, "{report:?}");
    assert_eq!(report.uri, "/base/upload");
    // Streamed on: the proxy did not collect the body to give it a length.
    assert!(
        report.header_values("content-length").is_empty(),
        "{report:?}"
    );
    let after_upload_kb = proc_status_kb(pid, "VmHWM:");

    // Download: every byte checked as it arrives.
    let mut response = tokio::time::timeout(
        STEP,
        client
            .get(format!("http://{}/bytes?n={BIG}", proxy.addr))
            .send(),
    )
    .await
    .expect("the download starts")
    .expect("the download is answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(BIG));
    let mut offset = 0u64;
    tokio::time::timeout(Duration::from_secs(25), async {
        while let Some(chunk) = response.chunk().await.expect("the body keeps coming") {
            for (i, &byte) in chunk.iter().enumerate() {
                let at = offset + i as u64;
                assert_eq!(byte, pattern_byte(at), "byte {at} of the download");
            }
            offset += chunk.len() as u64;
        }
    })
    .await
    .expect("the download finishes");
    assert_eq!(offset, BIG);
    let after_download_kb = proc_status_kb(pid, "VmHWM:");

    eprintln!(
        "lab proxy (pid {pid}) peak RSS (VmHWM): {before_kb} kB at start, \
         {after_upload_kb} kB after the 50 MB upload, {after_download_kb} kB after the 50 MB download"
    );
    assert!(
        after_download_kb < 200 * 1024,
        "the proxy held the bodies: peak RSS {after_download_kb} kB"
    );
    })
    .await;
}

// ---------------------------------------------------------------------------
// 11. Bad input through the binary
// ---------------------------------------------------------------------------

/// A good request after a bad one: the proxy still forwards.
async fn assert_still_serves(proxy: SocketAddr, after: &str) {
    let (_, report) = json_echo(proxy, Probe::get("/still-here")).await;
    assert_eq!(report.uri, "/base/still-here", "after {after}");
}

#[tokio::test]
async fn binary_rejects_bad_requests_and_keeps_serving() {
    bounded(async {
        let server = realserver().await;
        let proxy =
            ProxyProcess::spawn(&["--upstream", &format!("http://{}/base", server.addr())]).await;
        assert_still_serves(proxy.addr, "start").await;

        // A malformed request line.
        let (response, mut client) = raw_exchange(proxy.addr, b"THIS IS NOT HTTP\r\n\r\n").await;
        assert_eq!(response.status, 400, "{response:?}");
        assert_closed_without_more(&mut client, "after the 400").await;
        assert_still_serves(proxy.addr, "a malformed request line").await;

        // A header far beyond hyper's request head limit (~400 KB; 200 KB still passes): 431.
        let mut request = b"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
        request.extend(std::iter::repeat_n(b'b', 2 * 1024 * 1024));
        request.extend_from_slice(b"\r\n\r\n");
        let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
        // The proxy stops reading at its limit: the write may fail, the answer is read anyway.
        let _ = tokio::time::timeout(STEP, client.write_all(&request)).await;
        let response = read_response(&mut client).await;
        assert_eq!(
            response.status, 431,
            "Request Header Fields Too Large: {response:?}"
        );
        assert_still_serves(proxy.addr, "an oversized header").await;
    })
    .await;
}

#[tokio::test]
async fn binary_refuses_a_request_with_both_lengths_400() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = ProxyProcess::spawn(&["--upstream", &upstream.url("/base")]).await;
        // A good request first, answered; then, on the same connection, the
        // classic smuggling shape: Content-Length says 3, the chunked body is
        // 5 bytes, and a second request hides behind it.
        let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
        let first = format!("GET /first HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr);
        client.write_all(first.as_bytes()).await.expect("write");
        let first = read_response(&mut client).await;
        assert_eq!(first.status, 200, "{first:?}");
        let request = format!(
            "POST /smuggle HTTP/1.1\r\nHost: {0}\r\n\
             Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n\
             GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            proxy.addr
        );
        client.write_all(request.as_bytes()).await.expect("write");
        let refused = read_response(&mut client).await;
        assert_eq!(refused.status, 400, "{refused:?}");
        let body = String::from_utf8_lossy(&refused.body);
        assert!(
            body.contains("both Content-Length and Transfer-Encoding"),
            "{body}"
        );
        // Nothing more is read: the hidden request is never served.
        assert_closed_without_more(&mut client, "the smuggled request").await;
        // Only the first request reached the upstream.
        assert_eq!(
            upstream.request().await.request_line,
            "GET /base/first HTTP/1.1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        upstream.assert_nothing_more("the refused and the smuggled requests");
        // The proxy still serves others.
        let after = send(proxy.addr, Probe::get("/after")).await;
        assert_eq!(after.status, StatusCode::OK);
        assert_eq!(
            upstream.request().await.request_line,
            "GET /base/after HTTP/1.1"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Review findings: bodiless responses, CONNECT, Host, client-side errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn head_responses_are_not_prefixed() {
    bounded(async {
        let server = realserver().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &["--prefix-response", "hello "]).await;
        let get = send(proxy.addr, Probe::get("/abc")).await;
        let head = send(proxy.addr, Probe::get("/abc").method(http::Method::HEAD)).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        let length = |e: &Exchange| header_of(e, "content-length").parse::<usize>().unwrap();
        // GET got the prefix; HEAD announces the upstream's own length.
        assert_eq!(length(&get), get.body.len());
        assert_eq!(length(&head) + "hello ".len(), length(&get));
        // The proxy is still fine afterwards.
        assert_eq!(
            send(proxy.addr, Probe::get("/abc")).await.status,
            StatusCode::OK
        );
    })
    .await;
}

#[tokio::test]
async fn connect_to_the_reverse_proxy_is_405_pointing_to_lab_forward() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(&format!("http://{}", server.addr()), &[]).await;
        let request = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", server.addr());
        let (response, _) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 405);
        assert!(!values_of(&response.headers, "allow").is_empty());
        assert!(String::from_utf8_lossy(&response.body).contains("lab forward"));
    })
    .await;
}

#[tokio::test]
async fn the_upstream_always_gets_a_host() {
    bounded(async {
        let server = realserver().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        // An HTTP/1.0 client that sends no Host at all.
        let (response, _) = raw_exchange(
            proxy.addr,
            b"GET /abc HTTP/1.0\r\nAccept: application/json\r\n\r\n",
        )
        .await;
        let echo: EchoReport = serde_json::from_slice(&response.body).expect("the JSON echo");
        assert_eq!(echo.header_values("host"), [server.addr().to_string()]);
        // A client that names Host in Connection, trying to strip it.
        let (_, echo) =
            json_echo(proxy.addr, Probe::get("/abc").header("Connection", "host")).await;
        assert_eq!(echo.header_values("host"), [proxy.addr.to_string()]);
    })
    .await;
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        let (response, _) = raw_exchange(
            proxy.addr,
            b"GET http://example.test:8000/abc HTTP/1.1\r\nHost: other.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 200);
        let echo: EchoReport = serde_json::from_slice(&response.body).expect("the JSON echo");
        assert_eq!(echo.uri, "/base/abc");
        assert_eq!(echo.header_values("host"), ["example.test:8000"]);
        assert_eq!(echo.header_values("x-forwarded-host"), ["example.test:8000"]);
    })
    .await;
}

#[tokio::test]
async fn a_broken_request_body_is_the_clients_fault_400() {
    bounded(async {
        let server = realserver().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        let (response, _) = raw_exchange(
            proxy.addr,
            b"POST /abc HTTP/1.1\r\nHost: lab\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 400, "{:?}", String::from_utf8_lossy(&response.body));
        // The proxy keeps serving.
        assert_eq!(send(proxy.addr, Probe::get("/abc")).await.status, StatusCode::OK);
    })
    .await;
}

//! `lab proxy --like-go` against Go's own ReverseProxy: the article's
//! `balancer` program (`labs/go/balancer`, `--plain`: Go's ReverseProxy as
//! it comes, NewSingleHostReverseProxy's rules, the article's Transport) and
//! `lab proxy --like-go`, in front of the same real servers, get the same
//! raw requests; the status, the headers the real server saw (its JSON
//! echo, in arrival order) and the headers and body the client got must be
//! the same, but for the Date, the ports, and a Content-Length of a body
//! that names ports. The scenarios are those of labs 05 to 11 and 12 to 16
//! (see `docs/go-differences.md` for what differs without `--like-go`).
//!
//! Without Go the tests print what they skipped (and how to install Go) and
//! pass, unless `LAB_REQUIRE_GO=1`.

use std::net::SocketAddr;
use std::time::Duration;

use lab::golang::{GoModule, GoProgram};
use lab::realserver::{EchoReport, RunningServer};

use super::{TestProxy, proxy_args, serve_proxy};
use crate::common::bounded_by;
use crate::common::go;
use crate::common::servers::{dead_port, real_servers};
use crate::common::wire::{RawResponse, raw_exchange};

/// The Go program and `lab proxy --like-go`, in front of the same upstreams.
struct Pair {
    go: GoProgram,
    lab: TestProxy,
}

/// How the article's balancer and `lab proxy` name the same algorithm.
#[derive(Clone, Copy)]
enum Lb {
    RoundRobin,
    Weighted,
    Random,
    ConsistentHash,
}

impl Lb {
    fn go(self) -> &'static str {
        match self {
            Lb::RoundRobin => "round-robin",
            Lb::Weighted => "weighted-round-robin",
            Lb::Random => "random",
            Lb::ConsistentHash => "consistent-hash",
        }
    }

    /// `lab proxy`'s flags for the article's balancer (the consistent hash
    /// keyed and placed as the article's is).
    fn lab(self) -> &'static [&'static str] {
        match self {
            Lb::RoundRobin => &["--lb", "round-robin"],
            Lb::Weighted => &["--lb", "weighted"],
            Lb::Random => &["--lb", "random"],
            Lb::ConsistentHash => &[
                "--lb",
                "consistent-hash",
                "--hash-key",
                "remote-addr",
                "--replicas",
                "10",
                "--ring",
                "article",
            ],
        }
    }
}

/// Starts both in front of `upstreams` (`URL[,WEIGHT]`); `None` when Go is
/// missing (and allowed to be).
async fn pair(upstreams: &[String], lb: Lb) -> Option<Pair> {
    if !go::available() {
        return None;
    }
    let mut go_args = vec!["--plain", "--listen", "127.0.0.1:0", "--lb", lb.go()];
    for upstream in upstreams {
        go_args.extend(["--upstream", upstream.as_str()]);
    }
    let go = GoProgram::start(&GoModule::built_in(), "balancer", &go_args, 1)
        .await
        .expect("the Go balancer starts");

    let mut flags = vec!["--like-go"];
    flags.extend_from_slice(lb.lab());
    for upstream in &upstreams[1..] {
        flags.extend(["--upstream", upstream.as_str()]);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let lab = serve_proxy(listener, &proxy_args(&upstreams[0], &flags)).await;
    Some(Pair { go, lab })
}

/// What one request came to through one proxy, with the proxy's port
/// written as `PORT`.
#[derive(Debug, PartialEq)]
struct Outcome {
    status: u16,
    /// The response's header lines, Date left out, sorted by name (the
    /// order of a name's values kept).
    headers: Vec<(String, String)>,
    /// The body, de-chunked, with the trailers after it; a JSON echo is
    /// compared through `echo` instead.
    body: String,
    /// The real server's view of the request, when it answered with its echo.
    echo: Option<Echo>,
}

/// The real server's JSON echo, with what differs by nature (the proxy's
/// ports, the upstream connection's port) made equal.
#[derive(Debug, PartialEq)]
struct Echo {
    server: String,
    method: String,
    uri: String,
    version: String,
    headers: Vec<(String, String)>,
    body_bytes: u64,
}

impl Pair {
    /// Sends `request` (`{host}` stands for the proxy's address) to both
    /// proxies at once, each on a new connection.
    async fn both(&self, request: &str) -> (Outcome, Outcome) {
        let (go, lab) = tokio::join!(
            exchange(self.go.addr(), request),
            exchange(self.lab.addr, request)
        );
        (go, lab)
    }

    /// Both must agree on `request`; returns Go's outcome.
    async fn agree(&self, what: &str, request: &str) -> Outcome {
        let (go, lab) = self.both(request).await;
        assert_eq!(
            go, lab,
            "{what}: left Go's ReverseProxy, right lab proxy --like-go"
        );
        go
    }
}

async fn exchange(proxy: SocketAddr, request: &str) -> Outcome {
    let host = proxy.to_string();
    let bytes = request.replace("{host}", &host);
    let (response, _stream) = raw_exchange(proxy, bytes.as_bytes()).await;
    outcome(response, proxy.port())
}

fn outcome(response: RawResponse, port: u16) -> Outcome {
    let port = port.to_string();
    let (body, trailers) = decoded(&response);
    let echo = serde_json::from_slice::<EchoReport>(&body)
        .ok()
        .map(|report| Echo {
            server: report.server,
            method: report.method,
            uri: report.uri,
            version: report.version,
            headers: report
                .headers
                .into_iter()
                .map(|(name, value)| (name, value.replace(&port, "PORT")))
                .collect(),
            body_bytes: report.body_bytes,
        });
    let mut text = if echo.is_some() {
        String::new()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    // The text echo names the proxy's port (Host) and its connection's.
    let address = regex_lite::Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let names_ports = echo.is_some() || address.is_match(&text);
    text = address.replace_all(&text, "127.0.0.1:PORT").into_owned();
    let mut headers: Vec<(String, String)> = response
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("date"))
        // An echo's length depends on the digits of the ports it names.
        .filter(|(name, _)| !(names_ports && name.eq_ignore_ascii_case("content-length")))
        .cloned()
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // The real server's stream says when each chunk left: a time.
    let timing = regex_lite::Regex::new(r" at \d+ ms").unwrap();
    text = timing.replace_all(&text, " at N ms").into_owned();
    let mut trailers: Vec<String> = trailers;
    trailers.sort();
    for trailer in trailers {
        text.push_str(&format!("\n[trailer] {trailer}"));
    }
    Outcome {
        status: response.status,
        headers,
        body: text,
        echo,
    }
}

/// The body without its chunked framing, and the trailer lines.
fn decoded(response: &RawResponse) -> (Vec<u8>, Vec<String>) {
    let chunked = response
        .values("transfer-encoding")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("chunked"));
    if !chunked {
        return (response.body.clone(), Vec::new());
    }
    let mut rest = response.body.as_slice();
    let mut body = Vec::new();
    loop {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, Vec::new());
        };
        let size_line = String::from_utf8_lossy(&rest[..end]).into_owned();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .expect("a chunk size");
        rest = &rest[end + 2..];
        if size == 0 {
            let text = String::from_utf8_lossy(rest);
            let trailers = text
                .split("\r\n")
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect();
            return (body, trailers);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn upstream(server: &RunningServer, path: &str, weight: u32) -> String {
    format!("http://{}{path},{weight}", server.addr())
}

/// The servers that answered, in order (the echo names its server).
async fn picks(pair: &Pair, n: usize) -> (Vec<String>, Vec<String>) {
    let request = "GET /pick HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n";
    let (mut go, mut lab) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (g, l) = pair.both(request).await;
        assert_eq!(g.status, 200);
        assert_eq!(l.status, 200);
        go.push(g.echo.expect("an echo").server);
        lab.push(l.echo.expect("an echo").server);
    }
    (go, lab)
}

/// Labs 05, 06, 08: one upstream, the requests of the ReverseProxy's steps.
#[tokio::test]
async fn the_reverse_proxy_steps_are_gos() {
    bounded_by(Duration::from_secs(60), async {
        let servers = real_servers(1).await;
        let Some(pair) = pair(&[upstream(&servers[0], "/base?name=123", 1)], Lb::RoundRobin).await
        else {
            return;
        };
        let json = "Accept: application/json\r\n";
        let scenarios: Vec<(&str, String)> = vec![
            (
                "a plain GET (lab 05)",
                format!("GET /abc HTTP/1.1\r\nHost: {{host}}\r\n{json}\r\n"),
            ),
            // Not a percent-encoded path: the article's Director joins the
            // decoded Path alone, so Go's balancer sends `/a%2Fb` as `/a/b`
            // where NewSingleHostReverseProxy (and lab) keep it
            // (docs/go-differences.md).
            (
                "path join and query merge (lab 06)",
                format!("GET /dir/x/y/?b=2&c HTTP/1.1\r\nHost: {{host}}\r\n{json}\r\n"),
            ),
            (
                "a POST with a body",
                format!(
                    "POST /form HTTP/1.1\r\nHost: {{host}}\r\n{json}Content-Type: text/plain\r\n\
                     Content-Length: 5\r\n\r\nhello"
                ),
            ),
            (
                "a header name with an underscore (lab drops it without --like-go)",
                format!("GET /u HTTP/1.1\r\nHost: {{host}}\r\n{json}X_Real_IP: 6.6.6.6\r\n\r\n"),
            ),
            (
                "a POST without a body",
                format!("POST /empty HTTP/1.1\r\nHost: {{host}}\r\n{json}\r\n"),
            ),
            (
                "a GET with Content-Length: 0",
                format!("GET /zero HTTP/1.1\r\nHost: {{host}}\r\n{json}Content-Length: 0\r\n\r\n"),
            ),
            (
                "a chunked POST with a trailer",
                format!(
                    "POST /chunked HTTP/1.1\r\nHost: {{host}}\r\n{json}Transfer-Encoding: chunked\r\n\
                     Trailer: x-sum\r\nTE: trailers\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 3\r\n\r\n"
                ),
            ),
            (
                "hop-by-hop and Connection-listed headers (lab 08)",
                format!(
                    "GET /hop HTTP/1.1\r\nHost: {{host}}\r\n{json}Connection: keep-alive, X-Hop\r\n\
                     X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
                     Proxy-Connection: keep-alive\r\nTE: gzip\r\nUpgrade: websocket\r\n\r\n"
                ),
            ),
            (
                "X-Forwarded-For appended to (lab 08), X-Real-IP passed as sent",
                format!(
                    "GET /xff HTTP/1.1\r\nHost: {{host}}\r\n{json}X-Forwarded-For: 1.2.3.4\r\n\
                     X-Forwarded-For: 5.6.7.8\r\nX-Real-IP: 9.9.9.9\r\n\r\n"
                ),
            ),
            (
                "User-Agent: two values, then none",
                format!(
                    "GET /ua HTTP/1.1\r\nHost: {{host}}\r\n{json}User-Agent: first\r\n\
                     User-Agent: second\r\n\r\n"
                ),
            ),
            (
                "an empty User-Agent",
                format!("GET /ua HTTP/1.1\r\nHost: {{host}}\r\n{json}User-Agent:\r\n\r\n"),
            ),
            (
                "the client's own Accept-Encoding and a Range",
                format!(
                    "GET /enc HTTP/1.1\r\nHost: {{host}}\r\n{json}Accept-Encoding: br\r\n\
                     Range: bytes=0-10\r\n\r\n"
                ),
            ),
            (
                "an HTTP/1.0 client without Host",
                format!("GET /old HTTP/1.0\r\n{json}\r\n"),
            ),
            (
                "an absolute-form target",
                format!(
                    "GET http://example.com/abs HTTP/1.1\r\nHost: {{host}}\r\n{json}\r\n"
                ),
            ),
            // Closed after the answer: a HEAD's Content-Length has no body.
            (
                "HEAD",
                format!(
                    "HEAD /head HTTP/1.1\r\nHost: {{host}}\r\n{json}Connection: close\r\n\r\n"
                ),
            ),
            (
                "DELETE",
                format!("DELETE /thing HTTP/1.1\r\nHost: {{host}}\r\n{json}\r\n"),
            ),
            (
                "hop-by-hop headers of the answer (lab 08)",
                "GET /hop-headers HTTP/1.1\r\nHost: {host}\r\n\r\n".to_string(),
            ),
            (
                "a streamed answer with a trailer the client accepts (lab 08)",
                "GET /stream?n=3&ms=10 HTTP/1.1\r\nHost: {host}\r\nTE: trailers\r\n\r\n"
                    .to_string(),
            ),
            (
                "a streamed answer, trailers not asked for",
                "GET /stream?n=2&ms=10 HTTP/1.1\r\nHost: {host}\r\n\r\n".to_string(),
            ),
            (
                "the real server's 500 (lab 07)",
                "GET /error HTTP/1.1\r\nHost: {host}\r\n\r\n".to_string(),
            ),
            (
                "OPTIONS * (answered by the proxy's server)",
                "OPTIONS * HTTP/1.1\r\nHost: {host}\r\n\r\n".to_string(),
            ),
            (
                "an Upgrade token that is not printable (lab 09)",
                "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n\
                 Upgrade: web\tsocket\r\n\r\n"
                    .to_string(),
            ),
            (
                "a WebSocket handshake (lab 09)",
                "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                    .to_string(),
            ),
        ];
        for (what, request) in &scenarios {
            eprintln!("{what}");
            let seen = pair.agree(what, request).await;
            assert!(seen.status < 600, "{what}");
        }
        // One of them, spelled out: what Go adds and what it leaves.
        let seen = pair.agree("a plain GET", &scenarios[0].1).await;
        let echo = seen.echo.expect("an echo");
        let names: Vec<&str> = echo.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["host", "accept", "x-forwarded-for", "accept-encoding"],
            "{echo:?}"
        );
    })
    .await;
}

/// Labs 07 and 11: an upstream that is down, and one slower than its own
/// WriteTimeout (the article's 6 s handler under a 3 s WriteTimeout): a
/// 502 with an empty body from both, after the same time.
#[tokio::test]
async fn failures_are_gos_empty_502() {
    bounded_by(Duration::from_secs(60), async {
        let down = format!("http://{},1", dead_port());
        let Some(to_nothing) = pair(&[down], Lb::RoundRobin).await else {
            return;
        };
        let outcome = to_nothing
            .agree(
                "upstream down (lab 07)",
                "GET /abc HTTP/1.1\r\nHost: {host}\r\n\r\n",
            )
            .await;
        assert_eq!(outcome.status, 502);
        assert_eq!(outcome.body, "");

        let servers = real_servers(1).await;
        let Some(to_slow) = pair(&[upstream(&servers[0], "", 1)], Lb::RoundRobin).await else {
            return;
        };
        let started = std::time::Instant::now();
        let outcome = to_slow
            .agree(
                "slower than the upstream's WriteTimeout (lab 11)",
                "GET /test_http_string/test_http_string/aaa HTTP/1.1\r\nHost: {host}\r\n\r\n",
            )
            .await;
        assert_eq!(outcome.status, 502);
        // The real server gives up at its 3 s WriteTimeout and closes the
        // connection; both proxies waited for it (no timeout of their own).
        assert!(
            started.elapsed() >= Duration::from_millis(2900),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

/// Labs 13, 14 and 16: the article's round robin and smooth weighted round
/// robin pick the same servers in the same order behind both proxies.
#[tokio::test]
async fn round_robin_and_weighted_pick_the_same_sequence() {
    bounded_by(Duration::from_secs(60), async {
        let servers = real_servers(3).await;
        let ups = [
            upstream(&servers[0], "/base", 4),
            upstream(&servers[1], "/base", 2),
            upstream(&servers[2], "/base", 1),
        ];
        for lb in [Lb::RoundRobin, Lb::Weighted] {
            let Some(both) = pair(&ups, lb).await else {
                return;
            };
            let (go, lab) = picks(&both, 14).await;
            assert_eq!(go, lab, "{}: left Go, right lab --like-go", lb.go());
        }
    })
    .await;
}

/// Labs 12, 15 and 16: random and the consistent hash cannot pick alike (a
/// different random source; a key with the client's port), but every
/// request is answered alike by whichever server was picked.
#[tokio::test]
async fn random_and_consistent_hash_answer_alike() {
    bounded_by(Duration::from_secs(60), async {
        let servers = real_servers(2).await;
        let ups = [
            upstream(&servers[0], "/base", 1),
            upstream(&servers[1], "/base", 2),
        ];
        for lb in [Lb::Random, Lb::ConsistentHash] {
            let Some(both) = pair(&ups, lb).await else {
                return;
            };
            for _ in 0..6 {
                let request =
                    "GET /any?x=1 HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n";
                let (mut go, mut lab) = both.both(request).await;
                for outcome in [&mut go, &mut lab] {
                    let echo = outcome.echo.as_mut().expect("an echo");
                    assert!(
                        servers.iter().any(|s| s.addr().to_string() == echo.server),
                        "{echo:?}"
                    );
                    echo.server = "SERVER".into();
                    for (name, value) in &mut outcome.headers {
                        if name.eq_ignore_ascii_case("x-lab-server") {
                            *value = "SERVER".into();
                        }
                    }
                }
                assert_eq!(go, lab, "{}", lb.go());
            }
        }
    })
    .await;
}

/// Without Go at hand too: what `--like-go` changes in `lab proxy`'s own
/// answers. A response timeout given beside it is Go's
/// ResponseHeaderTimeout: its error is Go's 502, empty, like every other.
#[tokio::test]
async fn like_go_answers_every_error_with_an_empty_502_and_names_nothing() {
    crate::common::bounded(async {
        let servers = real_servers(1).await;
        let upstream = format!("http://{}/base", servers[0].addr());
        let proxy =
            super::start_proxy(&upstream, &["--like-go", "--response-timeout", "300ms"]).await;
        for request in [
            "GET /delay?ms=3000 HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: web\tsocket\r\n\r\n",
        ] {
            let (response, _) = raw_exchange(proxy.addr, request.as_bytes()).await;
            assert_eq!(response.status, 502, "{request:?}: {}", response.text());
            assert!(response.body.is_empty(), "{}", response.text());
            assert_eq!(response.values("content-length"), ["0"]);
            assert!(response.values("content-type").is_empty());
            assert!(
                response
                    .headers
                    .iter()
                    .all(|(name, _)| !name.to_ascii_lowercase().starts_with("x-lab-")),
                "{:?}",
                response.headers
            );
        }
        let (response, _) = raw_exchange(
            proxy.addr,
            b"GET /abc HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 200);
        let names: Vec<&str> = response.headers.iter().map(|(n, _)| n.as_str()).collect();
        // Go's case and order (sorted; the real server's Date is one of
        // its headers); only the real server's own X-Lab-Server.
        assert_eq!(
            names,
            ["Content-Length", "Content-Type", "Date", "X-Lab-Server"],
            "{:?}",
            response.headers
        );
    })
    .await;
}

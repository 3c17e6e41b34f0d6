//! The client side of `lab trace`: send the same request N times, each on a
//! connection of its own, and collect one [`Record`] per request.
//!
//! A general HTTP client would hide what the trace shows: it adds headers of
//! its own, reuses connections, and rewrites an absolute-form request. So the
//! requests are made here on hyper's connection API, header lines exactly as
//! listed in [`Request::headers`] (which is what the header diff compares
//! against), and every connection's local address is kept: it is the
//! `RemoteAddr` the first hop saw.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use indicatif::ProgressBar;
use tokio::net::TcpStream;

use super::model::{Mode, Record, ResponseDetail, Sent, UpstreamSaw};
use crate::lab_headers::{
    EXPLAIN_HEADER, INTERCEPTED_HEADER, LAYER_HEADER, PICK_HEADER, SERVER_HEADER, SET_HEADER,
    UPSTREAM_HEADER,
};
use crate::net::Endpoint;
use crate::realserver::EchoReport;

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the check that something listens may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the requests go, and so what they look like.
#[derive(Debug, Clone)]
pub enum Route {
    /// To a reverse proxy: `GET /path`, Host the proxy.
    Reverse(Endpoint),
    /// To a forward proxy: `GET http://target/path`, Host the target.
    Forward { proxy: Endpoint, target: Endpoint },
    /// To the server itself: `GET /path`, Host the server.
    Direct(Endpoint),
}

impl Route {
    pub fn mode(&self) -> Mode {
        match self {
            Route::Reverse(_) => Mode::Reverse,
            Route::Forward { .. } => Mode::Forward,
            Route::Direct(_) => Mode::Direct,
        }
    }

    /// What the client connects to.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Route::Reverse(proxy) | Route::Forward { proxy, .. } => proxy,
            Route::Direct(server) => server,
        }
    }

    /// The server a forward proxy is asked for.
    pub fn target(&self) -> Option<&Endpoint> {
        match self {
            Route::Forward { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The request-target for `path`: absolute-form to a forward proxy.
    pub fn request_target(&self, path: &str) -> String {
        match self {
            Route::Forward { target, .. } => format!("{target}{path}"),
            _ => path.to_string(),
        }
    }

    /// The Host header a client writes: the server it wants.
    pub fn host(&self) -> &str {
        match self {
            Route::Forward { target, .. } => target.authority(),
            Route::Reverse(endpoint) | Route::Direct(endpoint) => endpoint.authority(),
        }
    }

    /// The command that starts what should be listening, for the hint.
    pub fn start_command(&self) -> String {
        let (command, flag, default) = match self {
            Route::Reverse(_) => ("lab proxy", "--listen", "127.0.0.1:2002"),
            Route::Forward { .. } => ("lab forward", "--listen", "127.0.0.1:8080"),
            Route::Direct(_) => ("lab realserver", "--addr", "127.0.0.1:2003"),
        };
        let at = self.endpoint().authority();
        if at == default {
            command.to_string()
        } else {
            format!("{command} {flag} {at}")
        }
    }
}

/// One request, exactly as it goes on the wire (bar the framing).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The request-target: a path, or an absolute URL for a forward proxy.
    pub target: String,
    /// Every header line in order, Host first; duplicates stay separate lines.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What the user asked to send, before a route gives it a Host and a target.
#[derive(Debug, Clone)]
pub struct Plan {
    pub method: Method,
    pub path: String,
    /// `-H` lines, in order.
    pub headers: Vec<(String, String)>,
    /// `--xff`: an X-Forwarded-For the client claims.
    pub xff: Option<String>,
    pub body: Bytes,
}

impl Plan {
    /// The request for `route`: Host (unless `-H` gave one), the `-H` lines,
    /// `--xff`, `Accept: application/json` for the echo (unless `-H` gave an
    /// Accept), `X-Lab-Explain: 1` for the pick, and Content-Length when
    /// there is a body (or the method usually has one).
    pub fn request_for(&self, route: &Route, host: Option<&str>) -> Request {
        let given = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let mut headers = Vec::new();
        if !given("host") {
            headers.push(("Host".to_string(), host.unwrap_or(route.host()).to_string()));
        }
        headers.extend(self.headers.iter().cloned());
        if let Some(xff) = &self.xff {
            headers.push(("X-Forwarded-For".to_string(), xff.clone()));
        }
        if !given("accept") {
            headers.push(("Accept".to_string(), "application/json".to_string()));
        }
        headers.push((canonical(EXPLAIN_HEADER.as_str()), "1".to_string()));
        let usually_has_body = [Method::POST, Method::PUT, Method::PATCH].contains(&self.method);
        if !given("content-length") && (!self.body.is_empty() || usually_has_body) {
            headers.push(("Content-Length".to_string(), self.body.len().to_string()));
        }
        Request {
            method: self.method.clone(),
            target: route.request_target(&self.path),
            headers,
            body: self.body.clone(),
        }
    }
}

impl Request {
    /// The request as the JSON output records it.
    pub fn sent(&self) -> Sent {
        Sent {
            method: self.method.to_string(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            body_bytes: self.body.len() as u64,
            body: String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

/// `X-Lab-Explain` as a person writes it.
fn canonical(name: &str) -> String {
    crate::realserver::canonical_header_key(name)
}

/// Fails with a one-line hint when nothing accepts connections at `addr`:
/// `what` should be there, `start` starts it, `elsewhere` says how to use
/// one running elsewhere ("point lab trace at a running one").
pub async fn check_listening(
    addr: SocketAddr,
    what: &str,
    start: &str,
    elsewhere: &str,
) -> anyhow::Result<()> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => anyhow::bail!(
            "nothing listens at {addr} for {what} ({}): start it with `{start}`, or {elsewhere}",
            err.kind()
        ),
        Err(_) => anyhow::bail!(
            "{addr} did not accept a connection within {CONNECT_TIMEOUT:?}: is `{start}` running there?"
        ),
    }
}

/// How the requests of one run are paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// At most this many in flight at once.
    pub concurrency: usize,
    /// Request N starts no sooner than (N-1) × this after the first
    /// (`--interval`): a slow trace, to watch the upstream set change.
    pub interval: Option<Duration>,
}

/// Sends `request` to `addr` `count` times, paced by `pace`, and returns the
/// records in sequence order; `done` sees each record as it completes.
pub async fn fire(
    addr: SocketAddr,
    request: &Request,
    count: u64,
    pace: Pace,
    progress: &ProgressBar,
    done: &(dyn Fn(&Record) + Sync),
) -> Vec<Record> {
    let start = tokio::time::Instant::now();
    let mut records: Vec<Record> = futures_util::stream::iter(1..=count)
        .map(|seq| async move {
            if let Some(interval) = pace.interval {
                let offset = interval.saturating_mul(u32::try_from(seq - 1).unwrap_or(u32::MAX));
                tokio::time::sleep_until(start + offset).await;
            }
            let record = send(seq, addr, request).await;
            progress.inc(1);
            record
        })
        .buffer_unordered(pace.concurrency.max(1))
        .inspect(|record| done(record))
        .collect()
        .await;
    records.sort_by_key(|r| r.seq);
    records
}

/// One request, as a record; a failure is a record with an `error`.
async fn send(seq: u64, addr: SocketAddr, request: &Request) -> Record {
    let started = Instant::now();
    // The head and the body each get REQUEST_TIMEOUT (see round_trip); this
    // outer bound only catches a connect that neither covers.
    let bound = CONNECT_TIMEOUT + REQUEST_TIMEOUT * 2;
    let result = tokio::time::timeout(bound, exchange(addr, request)).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let (client_addr, result) = match result {
        Ok((local, result)) => (local, result),
        Err(_) => (None, Err(anyhow::anyhow!("no answer within {bound:?}"))),
    };
    let mut record = match result {
        Ok(reply) => record_of(seq, reply),
        Err(err) => Record {
            seq,
            status: None,
            upstream: None,
            server: None,
            pick: None,
            upstream_saw: None,
            latency_ms: 0.0,
            client_addr: None,
            set: None,
            layer: None,
            passed_over: false,
            intercepted: None,
            error: Some(format!("{err:#}")),
            response: ResponseDetail::default(),
        },
    };
    record.latency_ms = latency_ms;
    record.client_addr = client_addr.map(|a| a.to_string());
    record
}

/// A response: its head, and its body as far as it came.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    /// Why the body stopped short, when it did.
    cut_off: Option<String>,
}

/// Connects, sends, reads the whole response; returns the local address
/// (once connected) beside the outcome.
async fn exchange(
    addr: SocketAddr,
    request: &Request,
) -> (Option<SocketAddr>, anyhow::Result<Reply>) {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(err) => {
            return (
                None,
                Err(anyhow::Error::new(err).context(format!("cannot connect to {addr}"))),
            );
        }
    };
    let local = stream.local_addr().ok();
    (local, round_trip(stream, addr, request).await)
}

async fn round_trip(
    stream: TcpStream,
    addr: SocketAddr,
    request: &Request,
) -> anyhow::Result<Reply> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake failed")?;
    // The connection future does the I/O; it ends with the exchange.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = http::Request::builder()
        .method(request.method.clone())
        .uri(request.target.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let outgoing = builder
        .body(Full::new(request.body.clone()))
        .context("cannot build the request")?;
    let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(outgoing))
        .await
        .map_err(|_| anyhow::anyhow!("no response within {REQUEST_TIMEOUT:?}"))?
        .with_context(|| format!("{addr} closed the connection without a response"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    // The head arrived: from here a slow or broken body is recorded beside
    // it, not instead of it.
    let mut body = response.into_body();
    let mut data = BytesMut::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(chunk) = frame.into_data() {
                        data.extend_from_slice(&chunk);
                    }
                }
                Err(err) => return Some(format!("the response body was cut off: {err}")),
            }
        }
        None
    };
    let cut_off = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(outcome) => outcome,
        Err(_) => Some(format!(
            "the response body did not finish within {REQUEST_TIMEOUT:?}"
        )),
    };
    Ok(Reply {
        status,
        headers,
        body: data.freeze(),
        cut_off,
    })
}

/// What a reply tells: the proxy's choice and explanation (headers), the
/// upstream's view (the JSON echo in the body).
fn record_of(seq: u64, reply: Reply) -> Record {
    let text = |name: &str| {
        reply
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let echo: Option<EchoReport> = serde_json::from_slice(&reply.body).ok();
    let server = text(SERVER_HEADER).or_else(|| echo.as_ref().map(|e| e.server.clone()));
    let upstream =
        text(UPSTREAM_HEADER.as_str()).or_else(|| server.as_ref().map(|s| format!("http://{s}")));
    let pick = text(PICK_HEADER.as_str())
        .map(|raw| serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw)));
    let response = ResponseDetail {
        headers: reply
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&reply.body).into_owned(),
    };
    Record {
        seq,
        status: Some(reply.status),
        upstream,
        server,
        pick,
        upstream_saw: echo.map(saw),
        latency_ms: 0.0,
        client_addr: None,
        set: text(SET_HEADER.as_str()).and_then(|g| g.trim().parse().ok()),
        layer: text(LAYER_HEADER.as_str()),
        passed_over: reply
            .headers
            .contains_key(crate::lab_headers::BREAKER_HEADER),
        intercepted: text(INTERCEPTED_HEADER.as_str()),
        error: reply.cut_off.clone(),
        response,
    }
}

/// The trace's view of an echo: the facts the article's handler prints.
fn saw(echo: EchoReport) -> UpstreamSaw {
    let joined = |name: &str| super::diff::joined(&echo.headers, name);
    UpstreamSaw {
        x_forwarded_for: joined("x-forwarded-for"),
        x_real_ip: joined("x-real-ip"),
        host: joined("host"),
        remote_addr: echo.remote_addr.clone(),
        uri: echo.uri.clone(),
        body_bytes: echo.body_bytes,
        headers: echo.headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        let e: Endpoint = "http://127.0.0.1:2002".parse().unwrap();
        assert_eq!(e.to_string(), "http://127.0.0.1:2002");
        assert_eq!(e.authority(), "127.0.0.1:2002");
        let bare: Endpoint = "localhost:8080/".parse().unwrap();
        assert_eq!(bare.authority(), "localhost:8080");
        let err = |s: &str| s.parse::<Endpoint>().unwrap_err();
        assert!(err("http://127.0.0.1:2002/base").contains("--path /base"));
        assert!(err("https://127.0.0.1:2002").contains("plain http"));
        assert!(err("http://127.0.0.1").contains("no port"));
    }

    fn plan(headers: &[(&str, &str)]) -> Plan {
        Plan {
            method: Method::GET,
            path: "/abc".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            xff: Some("1.2.3.4".into()),
            body: Bytes::new(),
        }
    }

    #[test]
    fn a_request_lists_every_line_it_sends() {
        let proxy: Endpoint = "127.0.0.1:2002".parse().unwrap();
        let request = plan(&[("Connection", "X-Foo"), ("X-Foo", "1")])
            .request_for(&Route::Reverse(proxy), None);
        let names: Vec<&str> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Host",
                "Connection",
                "X-Foo",
                "X-Forwarded-For",
                "Accept",
                "X-Lab-Explain"
            ]
        );
        assert_eq!(request.headers[0].1, "127.0.0.1:2002");
        assert_eq!(request.target, "/abc");
    }

    #[test]
    fn a_forward_request_is_absolute_and_names_the_target() {
        let route = Route::Forward {
            proxy: "127.0.0.1:8080".parse().unwrap(),
            target: "127.0.0.1:2003".parse().unwrap(),
        };
        let request = plan(&[("Accept", "text/plain")]).request_for(&route, None);
        assert_eq!(request.target, "http://127.0.0.1:2003/abc");
        assert_eq!(request.headers[0], ("Host".into(), "127.0.0.1:2003".into()));
        // The user's Accept replaces the lab's.
        let accepts = request
            .headers
            .iter()
            .filter(|(n, _)| n == "Accept")
            .count();
        assert_eq!(accepts, 1);
        assert_eq!(route.start_command(), "lab forward");
        let elsewhere = Route::Reverse("127.0.0.1:2012".parse().unwrap());
        assert_eq!(
            elsewhere.start_command(),
            "lab proxy --listen 127.0.0.1:2012"
        );
        let direct = Route::Direct("127.0.0.1:2003".parse().unwrap());
        assert_eq!(direct.start_command(), "lab realserver");
    }
}

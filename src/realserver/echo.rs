//! The article's HelloHandler: tell the client what its request looked like
//! when it arrived here, the hop after every proxy.
//!
//! Text (the article's three lines, in Go's formatting):
//!
//! ```text
//! http://127.0.0.1:2003/abc
//! RemoteAddr=127.0.0.1:51234,X-Forwarded-For=1.2.3.4,X-Real-Ip=
//! headers =map[Accept:[*/*] User-Agent:[curl/8.5.0] X-Forwarded-For:[1.2.3.4]]
//! ```
//!
//! Three details are Go's and kept on purpose, because the labs teach them:
//! `X-Forwarded-For=` shows `Header.Get`, the *first* line only when a header
//! is sent twice; header names are printed in Go's canonical form
//! (`X-Real-Ip`); and `headers =` prints `req.Header` as Go's server leaves
//! it, so without `Host` (Go moves it to `req.Host`) and without the framing
//! headers Go moves to `req.TransferEncoding` ([`go_request_header`]).
//!
//! With `Accept: application/json` the same facts come as an [`EchoReport`],
//! which lists every header line as it arrived, `Host` included: what a
//! proxy does to Host is part of the lessons.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::handler::{Body, Ctx, text};

/// What the real server saw, as JSON (`Accept: application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReport {
    /// The server that answered (its listening address).
    pub server: String,
    pub method: String,
    /// Path and query exactly as received.
    pub uri: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The TCP peer: Go's `req.RemoteAddr`. A header cannot change it.
    pub remote_addr: String,
    /// Every header line as `[name, value]`, in arrival order (lines of the
    /// same name grouped at the first one's place; names in lower case, as
    /// HTTP/1.1 treats them case-insensitively). Unlike the text echo's
    /// `headers =` (Go's `req.Header`), this keeps `Host` and the framing
    /// headers: it is the request as it arrived.
    pub headers: Vec<(String, String)>,
    /// How many body bytes arrived.
    pub body_bytes: u64,
}

impl EchoReport {
    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The article's three lines, parsed back (what a learner reads in curl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEcho {
    /// Line 1: `http://ADDR/PATH` (`https://` on a TLS server).
    pub url: String,
    pub remote_addr: String,
    pub x_forwarded_for: String,
    pub x_real_ip: String,
    /// Line 3 after `headers =`: Go's `map[...]` of `req.Header` (no Host).
    pub headers: String,
}

impl TextEcho {
    /// Parses the body of an echo; `None` when it is not one.
    pub fn parse(body: &str) -> Option<TextEcho> {
        let mut lines = body.lines();
        let url = lines.next()?.to_string();
        let facts = lines.next()?;
        let headers = lines.next()?.strip_prefix("headers =")?.to_string();
        // `RemoteAddr=…,X-Forwarded-For=…,X-Real-Ip=…`: split at the field
        // names, not at commas, because an X-Forwarded-For list has commas.
        let rest = facts.strip_prefix("RemoteAddr=")?;
        let (remote_addr, rest) = rest.split_once(",X-Forwarded-For=")?;
        let (xff, real_ip) = rest.rsplit_once(",X-Real-Ip=")?;
        Some(TextEcho {
            url,
            remote_addr: remote_addr.to_string(),
            x_forwarded_for: xff.to_string(),
            x_real_ip: real_ip.to_string(),
            headers,
        })
    }
}

/// Answers with the echo, as text or as JSON when the client accepts JSON.
pub async fn respond(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    let wants_json = accepts_json(req.headers());
    let (parts, body) = req.into_parts();
    let body_bytes = count_body(body).await;
    if wants_json {
        let report = EchoReport {
            server: ctx.server.to_string(),
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            version: format!("{:?}", parts.version),
            remote_addr: ctx.peer.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), lossy(v)))
                .collect(),
            body_bytes,
        };
        return json(&report);
    }
    let mut body = three_lines(
        ctx.scheme,
        ctx.server,
        ctx.peer,
        parts.uri.path(),
        &parts.headers,
    );
    if parts.uri.path() == "/" {
        body.push_str(EXPLORE);
    }
    text(StatusCode::OK, body)
}

/// Printed under the echo at `/`, so a learner can find the other endpoints.
const EXPLORE: &str = "explore: /base/error (500), /test_http_string/test_http_string/aaa (write timeout), \
/delay?ms=500, /stream?n=3&ms=300 (chunks and a trailer), /ws (WebSocket echo), /hop-headers, \
/bytes?n=1000000 (a big download); \
add -H 'Accept: application/json' for JSON; see `lab realserver --help`\n";

/// The article's HelloHandler output, in Go's formatting; `scheme` is
/// `http`, or `https` on a TLS server.
pub fn three_lines(
    scheme: &str,
    server: SocketAddr,
    peer: SocketAddr,
    path: &str,
    headers: &HeaderMap,
) -> String {
    // Go's Header.Get returns the first value only.
    let get = |name: &str| headers.get(name).map(lossy).unwrap_or_default();
    format!(
        "{scheme}://{server}{path}\nRemoteAddr={peer},X-Forwarded-For={},X-Real-Ip={}\nheaders ={}\n",
        get("x-forwarded-for"),
        get("x-real-ip"),
        go_header_map(headers),
    )
}

/// Formats the request's headers as the article's `fmt.Sprintf("%v",
/// req.Header)` prints them: `map[Key:[v1 v2] Other:[v]]`, keys canonical
/// and sorted, only the headers Go's server leaves in `req.Header`.
fn go_header_map(headers: &HeaderMap) -> String {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers
        .iter()
        .filter(|(name, _)| go_request_header(headers, name))
    {
        map.entry(canonical_header_key(name.as_str()))
            .or_default()
            .push(lossy(value));
    }
    let entries: Vec<String> = map
        .iter()
        .map(|(k, vs)| format!("{k}:[{}]", vs.join(" ")))
        .collect();
    format!("map[{}]", entries.join(" "))
}

/// Whether Go's server (net/http, Go 1.19) leaves header `name` of a request
/// in `req.Header`. It moves `Host` to `req.Host`, and `Transfer-Encoding`
/// to `req.TransferEncoding`; a chunked request also loses `Content-Length`
/// (the chunks frame the body) and `Trailer` (announced in `req.Trailer`).
fn go_request_header(headers: &HeaderMap, name: &http::HeaderName) -> bool {
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    match *name {
        http::header::HOST | http::header::TRANSFER_ENCODING => false,
        http::header::CONTENT_LENGTH | http::header::TRAILER => !chunked,
        _ => true,
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-real-ip` → `X-Real-Ip`.
pub fn canonical_header_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains("application/json")))
}

/// Reads the whole body, counting bytes without keeping them.
pub async fn count_body(mut body: Incoming) -> u64 {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    total += data.len() as u64;
                }
            }
            // The client went away mid-body: report what arrived.
            Err(_) => break,
        }
    }
    total
}

fn lossy(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

fn json(report: &EchoReport) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(report).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys_follow_go() {
        assert_eq!(canonical_header_key("x-real-ip"), "X-Real-Ip");
        assert_eq!(canonical_header_key("X-FORWARDED-FOR"), "X-Forwarded-For");
        assert_eq!(canonical_header_key("accept"), "Accept");
    }

    #[test]
    fn three_lines_use_gos_get_and_map_format() {
        let mut headers = HeaderMap::new();
        headers.append("host", HeaderValue::from_static("127.0.0.1:2003"));
        headers.append("user-agent", HeaderValue::from_static("curl/8"));
        headers.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        let server: SocketAddr = "127.0.0.1:2003".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let out = three_lines("http", server, peer, "/abc", &headers);
        assert_eq!(
            out,
            "http://127.0.0.1:2003/abc\n\
             RemoteAddr=127.0.0.1:50000,X-Forwarded-For=1.1.1.1,X-Real-Ip=\n\
             headers =map[User-Agent:[curl/8] X-Forwarded-For:[1.1.1.1 2.2.2.2]]\n"
        );
        let parsed = TextEcho::parse(&out).unwrap();
        assert_eq!(parsed.remote_addr, "127.0.0.1:50000");
        assert_eq!(parsed.x_forwarded_for, "1.1.1.1");
        assert_eq!(parsed.x_real_ip, "");
    }

    #[test]
    fn the_header_map_leaves_out_what_gos_server_moves_out_of_req_header() {
        let mut headers = HeaderMap::new();
        headers.append("host", HeaderValue::from_static("127.0.0.1:2003"));
        headers.append("content-length", HeaderValue::from_static("5"));
        assert_eq!(go_header_map(&headers), "map[Content-Length:[5]]");
        headers.remove("content-length");
        headers.append("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.append("trailer", HeaderValue::from_static("X-Sum"));
        headers.append("x-a", HeaderValue::from_static("1"));
        assert_eq!(go_header_map(&headers), "map[X-A:[1]]");
    }

    #[test]
    fn text_echo_parse_keeps_commas_of_a_list() {
        let body = "http://a/b\nRemoteAddr=1.1.1.1:1,X-Forwarded-For=1.2.3.4, 10.0.0.1,X-Real-Ip=9.9.9.9\nheaders =map[]\n";
        let parsed = TextEcho::parse(body).unwrap();
        assert_eq!(parsed.x_forwarded_for, "1.2.3.4, 10.0.0.1");
        assert_eq!(parsed.x_real_ip, "9.9.9.9");
        assert_eq!(TextEcho::parse("error handler"), None);
    }
}

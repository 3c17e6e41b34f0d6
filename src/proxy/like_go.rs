//! `lab proxy --like-go`: Go's own rules, where `lab proxy` chose others.
//!
//! `lab proxy` follows Go's `httputil.ReverseProxy` step by step, but in a
//! few places it does what nginx does or what an RFC recommends instead (a
//! 504 for a timeout, X-Real-IP and Via, a 400 for a bad Upgrade token…).
//! With `--like-go` every one of those places does what Go 1.19's
//! ReverseProxy, its `http.Transport` and its `http.Server` do, so a learner
//! can run the same request through both and see only the differences they
//! asked for. `docs/go-differences.md` lists each difference with its reason.
//!
//! The rules that are Go's alone live here, as small functions the pipeline
//! calls when [`Flavour::Go`] is chosen: the request headers Go's Transport
//! writes (User-Agent, Content-Length, `Accept-Encoding: gzip`, the Trailer
//! line), the gzip it then takes off the response, the Content-Type Go's
//! server sniffs, and which requests Go's Transport sends again when a
//! pooled connection turns out to be closed.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use std::future::Future;

use crate::body::Body;
use crate::header_list;

/// Whose behaviour the proxy follows where lab's and Go's differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// `lab proxy`'s own choices (nginx practice, the RFCs).
    #[default]
    Lab,
    /// Go 1.19's ReverseProxy, Transport and Server (`--like-go`).
    Go,
}

impl Flavour {
    pub fn is_go(self) -> bool {
        self == Flavour::Go
    }
}

/// Go's `http.DefaultMaxIdleConnsPerHost`: what `MaxIdleConnsPerHost: 0`
/// (the article's Transport leaves it unset) means.
pub const GO_IDLE_PER_HOST: usize = 2;

/// Go's canonical form of a header name (`textproto.CanonicalMIMEHeaderKey`):
/// the first letter and every letter after a hyphen upper case, the rest
/// lower case (`x-forwarded-for` → `X-Forwarded-For`, `te` → `Te`). A name
/// with a byte that is not a token character stays as it is.
pub fn canonical_key(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The request headers as Go's Transport writes them, from what the
/// ReverseProxy left in the request (`body_len`: the client's body length,
/// `None` when it is chunked):
///
/// - `User-Agent`: NewSingleHostReverseProxy's Director sets it to `""`
///   when the client sent none, and the Transport writes only the first
///   value, and nothing when that is empty;
/// - `Content-Length`: Go's server turned the client's into a number, and
///   the Transport writes it when it is above 0, or `0` for POST, PUT and
///   PATCH ("many servers expect a Content-Length for these methods"); a
///   `Content-Length: 0` on a GET is not sent on;
/// - `Trailer`: the announced trailer names, canonical, sorted, joined by
///   `,`, for a chunked body only (the values never follow: see
///   [`drop_request_trailers`]);
/// - `Accept-Encoding: gzip` when the client asked for no encoding and no
///   range and the method is not HEAD (`DisableCompression` is false): the
///   response is then un-gzipped for the client ([`gunzip_response`]).
///
/// Returns whether gzip was asked for on the client's behalf.
pub fn transport_request_headers(
    method: &Method,
    headers: &mut HeaderMap,
    body_len: Option<u64>,
) -> bool {
    let first_agent = headers.get(header::USER_AGENT).cloned();
    headers.remove(header::USER_AGENT);
    if let Some(agent) = first_agent.filter(|a| !a.as_bytes().trim_ascii().is_empty()) {
        headers.insert(header::USER_AGENT, agent);
    }

    headers.remove(header::CONTENT_LENGTH);
    match body_len {
        Some(0) if matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        }
        Some(0) => {}
        Some(length) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        None => {}
    }

    // Go's server reads a Trailer header only for a chunked body; the
    // header itself is hop-by-hop, so a body of known length loses it.
    if body_len.is_some() {
        headers.remove(header::TRAILER);
    }
    if headers.contains_key(header::TRAILER) {
        let names = trailer_names(headers.get_all(header::TRAILER));
        headers.remove(header::TRAILER);
        if let Ok(value) = HeaderValue::from_str(&names.join(",")) {
            headers.insert(header::TRAILER, value);
        }
    }

    let asks_gzip = !headers.contains_key(header::ACCEPT_ENCODING)
        && !headers.contains_key(header::RANGE)
        && *method != Method::HEAD;
    if asks_gzip {
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    asks_gzip
}

/// The names a `Trailer` header announces, as Go keeps them: canonical,
/// each once, sorted (Go's map order varies from run to run).
fn trailer_names<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Vec<String> {
    let mut names: Vec<String> = header_list::items_of(values).map(canonical_key).collect();
    names.sort();
    names.dedup();
    names
}

/// The `Trailer` header Go's ReverseProxy sends the client: the names the
/// upstream announced, canonical, joined by `, ` (in Go's map order, which
/// varies from run to run; sorted here).
pub fn go_trailer_announcement(announced: &[HeaderValue]) -> Vec<HeaderValue> {
    let names = trailer_names(announced);
    if names.is_empty() {
        return Vec::new();
    }
    HeaderValue::from_str(&names.join(", "))
        .map(|value| vec![value])
        .unwrap_or_default()
}

/// The order Go's Transport writes a request's header lines in: `Host`,
/// `User-Agent`, then `Content-Length` or `Transfer-Encoding` and
/// `Trailer`, then every other name sorted (Go's `Header.Write` sorts),
/// and the `Accept-Encoding: gzip` it added last. Rebuilt in that order
/// (hyper writes a map in its order) so that a raw upstream sees Go's bytes.
pub fn in_go_order(headers: &mut HeaderMap, added_gzip: bool) {
    let gzip = added_gzip
        .then(|| headers.remove(header::ACCEPT_ENCODING))
        .flatten();
    let rank = |name: &HeaderName| -> u8 {
        match *name {
            header::HOST => 0,
            header::USER_AGENT => 1,
            header::CONTENT_LENGTH | header::TRANSFER_ENCODING => 2,
            header::TRAILER => 3,
            _ => 4,
        }
    };
    let mut names: Vec<HeaderName> = headers.keys().cloned().collect();
    names.sort_by_cached_key(|name| (rank(name), canonical_key(name.as_str())));
    let mut sorted = HeaderMap::with_capacity(headers.len() + 1);
    for name in names {
        for value in headers.get_all(&name) {
            sorted.append(name.clone(), value.clone());
        }
    }
    if let Some(gzip) = gzip {
        sorted.insert(header::ACCEPT_ENCODING, gzip);
    }
    *headers = sorted;
}

/// Go's ReverseProxy forwards a request body but never its trailer values:
/// `req.Clone` copies the `Trailer` map while it is still empty (the server
/// fills it only when the body has been read), so the Transport writes the
/// announced names and an empty trailer section. Dropping the trailer
/// frames does the same here (an empty data frame instead, which hyper
/// skips).
pub fn drop_request_trailers(body: Body) -> Body {
    body.map_frame(|frame| {
        if frame.is_trailers() {
            Frame::data(Bytes::new())
        } else {
            frame
        }
    })
    .boxed()
}

/// Go's `Request.isReplayable` and the rest of `shouldRetryRequest`: after
/// a pooled connection failed before any byte of the response, Go's
/// Transport sends the request again when it has no body and either
/// nothing of it was written, or its method is GET, HEAD, OPTIONS or TRACE,
/// or it carries an `Idempotency-Key` or `X-Idempotency-Key` header.
pub fn go_may_resend(method: &Method, headers: &HeaderMap, unsent: bool) -> bool {
    unsent
        || matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        )
        || headers.contains_key("idempotency-key")
        || headers.contains_key("x-idempotency-key")
}

/// Go's Transport takes off the gzip it asked for: a response with
/// `Content-Encoding: gzip` (any case) loses that header and its
/// Content-Length, and its body is un-gzipped on the way (chunked to the
/// client, its length now unknown). A body that is not gzip after all
/// breaks off, as Go's copy fails and aborts the client's connection.
pub fn gunzip_response<B>(response: Response<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + Sync + Unpin + 'static,
{
    let gzipped = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !gzipped || response.body().is_end_stream() {
        return response.map(|body| body.boxed());
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = Gunzip {
        inner: body,
        decoder: Some(flate2::write::GzDecoder::new(Vec::new())),
        breaking: None,
    };
    Response::from_parts(parts, body.boxed())
}

/// How a body that cannot go on ends: with a hyper error (the only kind the
/// pipeline's bodies carry), made when needed.
type Breaking = Pin<Box<dyn Future<Output = Option<hyper::Error>> + Send>>;

/// A body un-gzipped as it streams (flate2's decoder, fed chunk by chunk).
struct Gunzip<B> {
    inner: B,
    decoder: Option<flate2::write::GzDecoder<Vec<u8>>>,
    /// A Mutex only to be `Sync`, as the pipeline's bodies are; never locked.
    breaking: Option<std::sync::Mutex<Breaking>>,
}

impl<B> Gunzip<B> {
    fn poll_break(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let breaking = self
            .breaking
            .get_or_insert_with(|| std::sync::Mutex::new(Box::pin(broken_body_error())));
        let future = match breaking.get_mut() {
            Ok(future) => future,
            Err(poisoned) => poisoned.into_inner(),
        };
        let error = std::task::ready!(future.as_mut().poll(cx));
        self.breaking = None;
        Poll::Ready(error.map(Err))
    }
}

impl<B> hyper::body::Body for Gunzip<B>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.breaking.is_some() {
            return self.poll_break(cx);
        }
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Poll::Ready(None);
            };
            let taken = std::mem::take(decoder.get_mut());
            if !taken.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(taken)))));
            }
            match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if let Some(decoder) = self.decoder.as_mut()
                            && let Err(err) = decoder.write_all(&data)
                        {
                            tracing::debug!("the upstream's gzip body is broken: {err}");
                            self.decoder = None;
                            return self.poll_break(cx);
                        }
                    }
                    // Trailers pass as they are.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    let Some(decoder) = self.decoder.take() else {
                        return Poll::Ready(None);
                    };
                    return match decoder.finish() {
                        Ok(rest) if rest.is_empty() => Poll::Ready(None),
                        Ok(rest) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest))))),
                        Err(err) => {
                            tracing::debug!("the upstream's gzip body is cut short: {err}");
                            self.poll_break(cx)
                        }
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_none() && self.breaking.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A `hyper::Error` for a body that breaks off ("error reading a body from
/// connection"). Only hyper makes them, so one is made the way hyper makes
/// it: an in-memory response whose body ends before its Content-Length. `None` (the body then just ends) only if
/// hyper would not even do that.
async fn broken_body_error() -> Option<hyper::Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client, mut server) = tokio::io::duplex(1024);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client))
            .await
            .ok()?;
    tokio::spawn(connection);
    let asked = sender.send_request(Request::new(http_body_util::Empty::<Bytes>::new()));
    let answer = async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        // Two bytes promised, none sent: the body breaks off.
        let _ = server
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
            .await;
    };
    let (response, ()) = tokio::join!(asked, answer);
    match response.ok()?.into_body().frame().await {
        Some(Err(err)) => Some(err),
        _ => None,
    }
}

/// Go's server gives an answer without a Content-Type one, guessed from
/// its first 512 bytes ([`super::sniff`]), when it sees them before the
/// head is sent: through Go's ReverseProxy, that is an upstream's answer of
/// a declared length (above 0) with no Content-Type and no Content-Encoding,
/// to a request other than HEAD, with a status that has a body.
pub async fn with_sniffed_type(method: &Method, response: Response<Body>) -> Response<Body> {
    let headers = response.headers();
    let status = response.status();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > 0);
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.is_empty());
    let has_body = !(status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED);
    if headers.contains_key(header::CONTENT_TYPE)
        || encoded
        || !declared
        || !has_body
        || *method == Method::HEAD
    {
        return response;
    }
    let (mut parts, mut body) = response.into_parts();
    let mut seen = Vec::new();
    let mut frames = std::collections::VecDeque::new();
    while seen.len() < super::sniff::SNIFF_LEN {
        let Some(frame) = body.frame().await else {
            break;
        };
        let go_on = matches!(&frame, Ok(frame) if frame.is_data());
        if let Ok(data) = frame.as_ref().map(Frame::data_ref)
            && let Some(data) = data
        {
            seen.extend_from_slice(data);
        }
        frames.push_back(frame);
        if !go_on {
            break;
        }
    }
    if !seen.is_empty() {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::sniff::detect_content_type(&seen)),
        );
    }
    let body = Replay { frames, rest: body };
    Response::from_parts(parts, body.boxed())
}

/// Frames already read, then the rest of the body.
struct Replay {
    frames: std::collections::VecDeque<Result<Frame<Bytes>, hyper::Error>>,
    rest: Body,
}

impl hyper::body::Body for Replay {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(frame));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|frame| frame.as_ref().ok()?.data_ref())
            .map(|data| data.len() as u64)
            .sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(buffered));
        if let Some(upper) = rest.upper().and_then(|u| u.checked_add(buffered)) {
            hint.set_upper(upper);
        }
        hint
    }
}

/// Go writes a response's header lines sorted by name (`Header.Write`);
/// hyper writes them in the map's order. Rebuilt sorted so that a client
/// reading the raw bytes sees Go's order (the server's own Date,
/// Content-Length, Connection and Transfer-Encoding come after, in hyper's
/// order).
pub fn sort_headers(headers: &mut HeaderMap) {
    let mut names: Vec<HeaderName> = headers.keys().cloned().collect();
    names.sort_by_cached_key(|name| canonical_key(name.as_str()));
    let mut sorted = HeaderMap::with_capacity(headers.len());
    for name in names {
        for value in headers.get_all(&name) {
            sorted.append(name.clone(), value.clone());
        }
    }
    *headers = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn lines(headers: &HeaderMap) -> Vec<String> {
        headers
            .iter()
            .map(|(n, v)| format!("{}: {}", canonical_key(n.as_str()), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn canonical_keys_are_gos() {
        assert_eq!(canonical_key("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical_key("te"), "Te");
        assert_eq!(canonical_key("sec-websocket-key"), "Sec-Websocket-Key");
        assert_eq!(canonical_key("www-authenticate"), "Www-Authenticate");
        assert_eq!(canonical_key("x_under"), "X_under");
        // Go leaves a name with other characters as it is.
        assert_eq!(canonical_key("x y"), "x y");
    }

    #[test]
    fn user_agent_first_value_only_and_never_empty() {
        let mut headers = map(&[("user-agent", "a"), ("user-agent", "b")]);
        transport_request_headers(&Method::GET, &mut headers, Some(0));
        assert_eq!(headers.get_all("user-agent").iter().count(), 1);
        assert_eq!(headers["user-agent"], "a");
        let mut headers = map(&[("user-agent", ""), ("user-agent", "b")]);
        transport_request_headers(&Method::GET, &mut headers, Some(0));
        assert!(!headers.contains_key("user-agent"));
    }

    #[test]
    fn content_length_zero_only_for_post_put_patch() {
        for (method, sent) in [
            (Method::GET, false),
            (Method::HEAD, false),
            (Method::DELETE, false),
            (Method::OPTIONS, false),
            (Method::POST, true),
            (Method::PUT, true),
            (Method::PATCH, true),
        ] {
            let mut headers = map(&[("content-length", "0")]);
            transport_request_headers(&method, &mut headers, Some(0));
            assert_eq!(headers.contains_key("content-length"), sent, "{method}");
        }
        let mut headers = map(&[("content-length", "5")]);
        transport_request_headers(&Method::DELETE, &mut headers, Some(5));
        assert_eq!(headers["content-length"], "5");
        let mut chunked = HeaderMap::new();
        transport_request_headers(&Method::POST, &mut chunked, None);
        assert!(!chunked.contains_key("content-length"));
    }

    #[test]
    fn gzip_is_asked_for_unless_the_client_chose_or_a_range_or_head() {
        let mut plain = HeaderMap::new();
        assert!(transport_request_headers(&Method::GET, &mut plain, Some(0)));
        assert_eq!(plain["accept-encoding"], "gzip");
        let mut chose = map(&[("accept-encoding", "br")]);
        assert!(!transport_request_headers(
            &Method::GET,
            &mut chose,
            Some(0)
        ));
        assert_eq!(chose["accept-encoding"], "br");
        let mut range = map(&[("range", "bytes=0-1")]);
        assert!(!transport_request_headers(
            &Method::GET,
            &mut range,
            Some(0)
        ));
        let mut head = HeaderMap::new();
        assert!(!transport_request_headers(
            &Method::HEAD,
            &mut head,
            Some(0)
        ));
    }

    #[test]
    fn the_trailer_line_is_canonical_sorted_and_comma_joined() {
        let mut headers = map(&[("trailer", "x-sum, b-first"), ("trailer", "X-Sum")]);
        transport_request_headers(&Method::POST, &mut headers, None);
        assert_eq!(headers["trailer"], "B-First,X-Sum");
        assert_eq!(
            go_trailer_announcement(&[HeaderValue::from_static("x-sum, X-Other")]),
            [HeaderValue::from_static("X-Other, X-Sum")]
        );
        assert!(go_trailer_announcement(&[]).is_empty());
        let mut known_length = map(&[("trailer", "x-sum")]);
        transport_request_headers(&Method::POST, &mut known_length, Some(3));
        assert!(!known_length.contains_key("trailer"));
    }

    /// Go's Transport: Host, User-Agent, the length, Trailer, the rest
    /// sorted, then the Accept-Encoding it added.
    #[test]
    fn headers_go_out_in_gos_order() {
        let mut headers = map(&[
            ("x-forwarded-for", "127.0.0.1"),
            ("accept", "*/*"),
            ("trailer", "X-Sum"),
            ("transfer-encoding", "chunked"),
            ("user-agent", "curl"),
            ("host", "x"),
            ("accept-encoding", "gzip"),
        ]);
        in_go_order(&mut headers, true);
        assert_eq!(
            lines(&headers),
            [
                "Host: x",
                "User-Agent: curl",
                "Transfer-Encoding: chunked",
                "Trailer: X-Sum",
                "Accept: */*",
                "X-Forwarded-For: 127.0.0.1",
                "Accept-Encoding: gzip",
            ]
        );
    }

    #[test]
    fn go_resends_replayable_requests_only() {
        let none = HeaderMap::new();
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(go_may_resend(&method, &none, false), "{method}");
        }
        // PUT and DELETE are idempotent (RFC 9110), but not in Go's list.
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(!go_may_resend(&method, &none, false), "{method}");
            assert!(go_may_resend(&method, &none, true), "unsent {method}");
        }
        let keyed = map(&[("idempotency-key", "k")]);
        assert!(go_may_resend(&Method::POST, &keyed, false));
        let x_keyed = map(&[("x-idempotency-key", "k")]);
        assert!(go_may_resend(&Method::POST, &x_keyed, false));
    }

    #[test]
    fn response_headers_are_sorted_by_name_keeping_each_names_order() {
        let mut headers = map(&[
            ("x-up", "1"),
            ("set-cookie", "b=2"),
            ("content-length", "5"),
            ("set-cookie", "a=1"),
        ]);
        sort_headers(&mut headers);
        assert_eq!(
            lines(&headers),
            [
                "Content-Length: 5",
                "Set-Cookie: b=2",
                "Set-Cookie: a=1",
                "X-Up: 1"
            ]
        );
    }

    #[tokio::test]
    async fn a_broken_body_error_is_a_hyper_error() {
        let err = broken_body_error().await.expect("hyper makes one");
        assert!(err.to_string().contains("body"), "{err}");
    }
}

//! [`Guarded`]: the service in front of a listener's own, which answers
//! the guard's stand-in requests (400 for both lengths, 505 for HTTP/2, 408
//! for a slow head) and, on the way, refuses a declared body larger than
//! `--max-body` (413).

use std::future::Ready;

use bytes::Bytes;
use futures_util::future::{Either, MapOk};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::Rejection;
use crate::lab_headers::REJECT_HEADER;

/// A service that answers the guard's stand-in requests with 400, a body
/// declared larger than `--max-body` with 413, and passes every other
/// request to `S`.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    service: S,
    max_body: u64,
    max_head: usize,
}

impl<S> Guarded<S> {
    /// `max_head` is only named in the 431's text: the guard on the
    /// connection enforces it.
    pub fn new(service: S, max_body: u64, max_head: usize) -> Guarded<S> {
        Guarded {
            service,
            max_body,
            max_head,
        }
    }
}

/// A small plain-text answer that closes the connection (what follows on it
/// cannot be trusted, or is a body nobody will read).
fn refusal<B>(status: StatusCode, text: String) -> Response<GuardedBody<B>> {
    let mut response = Response::new(http_body_util::Either::Right(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// The body of a [`Guarded`] response: the inner service's, or the 400's.
pub type GuardedBody<B> = http_body_util::Either<B, Full<Bytes>>;

/// A request [`Guarded`] passed on: the inner service's future, its
/// response's body made a [`GuardedBody`].
pub type Passed<F, B> = MapOk<F, fn(Response<B>) -> Response<GuardedBody<B>>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Guarded<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<GuardedBody<B>>;
    type Error = S::Error;
    /// No box: a refusal is ready at once, and a passed request is the
    /// service's own future (hyper keeps it in its connection's one box).
    type Future = Either<Ready<Result<Self::Response, S::Error>>, Passed<S::Future, B>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if let Some(reason) = req.headers().get(REJECT_HEADER) {
            let reason = String::from_utf8_lossy(reason.as_bytes()).into_owned();
            tracing::debug!("refused a request: {reason}");
            let (status, text) = match Rejection::of_reason(&reason) {
                Some(Rejection::Http2) => (
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    "505 HTTP Version Not Supported: this listener speaks HTTP/1.1; the client \
                     sent the HTTP/2 connection preface without negotiating HTTP/2 first.\n"
                        .to_string(),
                ),
                Some(Rejection::HeadTimeout) => (
                    StatusCode::REQUEST_TIMEOUT,
                    "408 Request Timeout: the request head did not arrive whole in time \
                     (--header-timeout); a client that trickles its headers holds a \
                     connection for nothing (slowloris).\n"
                        .to_string(),
                ),
                Some(Rejection::HeadTooLarge) => (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!(
                        "431 Request Header Fields Too Large: the request head (request line and \
                         headers) is larger than this listener accepts, {} bytes \
                         (--max-header-size).\n",
                        self.max_head
                    ),
                ),
                Some(Rejection::Smuggling) => (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "400 Bad Request: {reason}. A request must give its length one way only \
                         (RFC 9112 §6.1); sending both is how request smuggling starts.\n"
                    ),
                ),
                None => (
                    StatusCode::BAD_REQUEST,
                    format!("400 Bad Request: {reason}\n"),
                ),
            };
            return Either::Left(std::future::ready(Ok(refusal(status, text))));
        }
        // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
        // status code to any HTTP/1.1 request message that lacks a Host
        // header field" (hyper leaves this to the service).
        let hosts = req.headers().get_all(http::header::HOST).iter().count();
        if (req.version() == http::Version::HTTP_11 && hosts == 0) || hosts > 1 {
            return Either::Left(std::future::ready(Ok(refusal(
                StatusCode::BAD_REQUEST,
                format!(
                    "400 Bad Request: a request must carry one Host header (RFC 9112 §3.2); \
                     this one has {hosts}\n"
                ),
            ))));
        }
        // hyper has already refused a Content-Length that is not one number.
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
        if let Some(length) = declared.filter(|&length| length > self.max_body) {
            tracing::debug!(
                "refused a body of {length} bytes (--max-body {})",
                self.max_body
            );
            return Either::Left(std::future::ready(Ok(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "413 Content Too Large: this request declares a body of {length} bytes; \
                     this server accepts at most {} (--max-body).\n",
                    self.max_body
                ),
            ))));
        }
        // A combinator, not `async move { inner.await }`: an async block
        // keeps the captured future and the awaited one apart and copies
        // the (large) inner future from one to the other on its first poll.
        let passed: fn(Response<B>) -> Response<GuardedBody<B>> =
            |response| response.map(http_body_util::Either::Left);
        Either::Right(futures_util::TryFutureExt::map_ok(
            self.service.call(req),
            passed,
        ))
    }
}

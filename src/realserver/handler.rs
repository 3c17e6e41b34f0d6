//! What every handler of the real server shares: the body type, what a
//! handler knows besides the request ([`Ctx`]), a plain-text answer and a
//! query parameter.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every response body of the real server.
pub type Body = BoxBody<Bytes, Infallible>;

/// What a handler knows besides the request itself.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The address this server listens on (the article's `r.Addr`).
    pub server: SocketAddr,
    /// The TCP peer of this connection: Go's `req.RemoteAddr`.
    pub peer: SocketAddr,
    /// `http`, or `https` when the server speaks TLS (the echo's first line).
    pub scheme: &'static str,
    pub write_timeout: Duration,
    /// Cancelled at shutdown; long-lived WebSocket echoes close on it.
    pub stop: CancellationToken,
    /// The server's tracked tasks: a WebSocket echo outlives its HTTP
    /// connection, so it is tracked here for shutdown to wait for its close.
    pub tasks: TaskTracker,
    /// Set when the connection becomes a WebSocket (see `server::Conn`).
    pub tunneled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The value of `name` in the query string, if present (no percent-decoding:
/// the lab's parameters are numbers).
pub fn query_param<'a>(uri: &'a http::Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_by_name() {
        let uri: http::Uri = "/stream?n=3&ms=20&flag".parse().unwrap();
        assert_eq!(query_param(&uri, "n"), Some("3"));
        assert_eq!(query_param(&uri, "ms"), Some("20"));
        assert_eq!(query_param(&uri, "flag"), Some(""));
        assert_eq!(query_param(&uri, "m"), None);
        let bare: http::Uri = "/stream".parse().unwrap();
        assert_eq!(query_param(&bare, "n"), None);
    }
}

//! Which handler answers which path, and the write timeout around them all.
//!
//! The article's mux has three routes: `/`, `/base/error` and
//! `/test_http_string/test_http_string/aaa`. The lab's additions are matched
//! on the *last* path segment (`…/delay`, `…/stream`, `…/ws`, `…/hop-headers`)
//! so they also work behind a proxy that prefixes a base path: the article's
//! default upstream is `http://127.0.0.1:2003/base`, so a request for `/ws` at
//! the proxy arrives here as `/base/ws`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{SERVER_HEADER, echo, extras};

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

/// Returned instead of a response when the write timeout passes first;
/// hyper then closes the connection without writing anything.
#[derive(Debug, thiserror::Error)]
#[error("no response within the write timeout of {0:?}; closing the connection unanswered")]
pub struct WriteTimeout(Duration);

/// Routes one request, under the write timeout, and names the server in the answer.
pub async fn handle(ctx: Ctx, req: Request<Incoming>) -> Result<Response<Body>, WriteTimeout> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let routed = route(&ctx, req);
    let mut response = match tokio::time::timeout(ctx.write_timeout, routed).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                "{}: {method} {uri} from {}: not answered within the {:?} write timeout; connection closed",
                ctx.server,
                ctx.peer,
                ctx.write_timeout
            );
            return Err(WriteTimeout(ctx.write_timeout));
        }
    };
    if let Ok(value) = HeaderValue::from_str(&ctx.server.to_string()) {
        response.headers_mut().insert(SERVER_HEADER, value);
    }
    tracing::debug!(
        "{}: {method} {uri} from {} → {}",
        ctx.server,
        ctx.peer,
        response.status()
    );
    Ok(response)
}

async fn route(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    // A 2xx answer to CONNECT means "the tunnel is open" (RFC 9110 §9.3.6):
    // an origin server that is not a proxy must not give one.
    if req.method() == http::Method::CONNECT {
        let mut refused = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT opens a tunnel, which is a forward proxy's job (`lab forward`); \
             this is a real server\n",
        );
        refused
            .headers_mut()
            .insert(http::header::ALLOW, crate::server::ALLOW_ALL_BUT_CONNECT);
        return refused;
    }
    let path = req.uri().path();
    match path {
        // The article's ErrorHandler.
        "/base/error" => text(StatusCode::INTERNAL_SERVER_ERROR, "error handler"),
        // The article's TimeoutHandler: sleeps longer than the write timeout.
        "/test_http_string/test_http_string/aaa" => {
            tokio::time::sleep(Duration::from_secs(6)).await;
            text(StatusCode::OK, "timeout handler")
        }
        _ => match last_segment(path) {
            "delay" => extras::delay(ctx, req).await,
            "stream" => extras::stream(req),
            "ws" => extras::websocket(ctx, req),
            "hop-headers" => extras::hop_headers(ctx, req).await,
            "bytes" => extras::bytes(req),
            // The article's HelloHandler, for every other path.
            _ => echo::respond(ctx, req).await,
        },
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
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
    fn lab_endpoints_match_on_the_last_segment() {
        assert_eq!(last_segment("/base/ws"), "ws");
        assert_eq!(last_segment("/ws"), "ws");
        assert_eq!(last_segment("/a/b/stream"), "stream");
        assert_eq!(last_segment("/"), "");
        assert_eq!(last_segment("/ws/"), "");
    }

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

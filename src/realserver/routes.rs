//! Which handler answers which path, and the write timeout around them all.
//!
//! The article's mux has three routes: `/`, `/base/error` and
//! `/test_http_string/test_http_string/aaa`. The lab's additions are matched
//! on the *last* path segment (`…/delay`, `…/stream`, `…/ws`, `…/hop-headers`)
//! so they also work behind a proxy that prefixes a base path: the article's
//! default upstream is `http://127.0.0.1:2003/base`, so a request for `/ws` at
//! the proxy arrives here as `/base/ws`.

use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::handler::{Body, Ctx, text};
use super::{echo, extras};
use crate::lab_headers::SERVER_HEADER;

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
}

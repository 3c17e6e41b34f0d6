//! The lab's proxies: the article's naive reverse proxy ([`naive`]), the full
//! ReverseProxy pipeline ([`reverse`]), a forward proxy ([`forward`]) and,
//! for contrast, plain forwarding: a TCP relay ([`relay`]); over
//! shared header rules ([`headers`]) and one upstream [`transport`].
//!
//! The reverse proxy's parts, in the order a request meets them:
//! [`reverse`] (the 13 steps of `ServeHTTP`), [`director`] (where the request
//! goes), [`headers`] (hop-by-hop and forwarding headers), [`transport`] (the
//! connection pool), [`upgrade`] (101 and WebSocket), [`modify`]
//! (ModifyResponse and the ErrorHandler). Where `lab proxy --like-go` does
//! what Go does instead of what lab chose: [`like_go`], with Go's
//! Content-Type sniffing in [`sniff`]. Every proxy first copies the request
//! head out of hyper's read buffer ([`own_head`]), since it keeps the head
//! while the request is in flight.

pub mod admin;
pub mod chain;
pub mod director;
pub mod forward;
pub mod headers;
pub mod like_go;
pub mod modify;
pub mod naive;
pub mod own_head;
pub mod relay;
pub mod reverse;
pub mod sniff;
pub mod transport;
pub mod upgrade;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::body::{Body, full};
use crate::server::Conn;

/// What the three proxies differ in: how one request is answered.
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`, which arrived on `conn`.
    fn respond(
        &self,
        conn: &Conn,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// Called when a client connection opens; what it returns is kept until
    /// the connection closes (the statistics' open-connection gauge).
    fn connection_opened(&self) -> Option<crate::middleware::stats::ConnectionGuard> {
        None
    }

    /// What the listener refuses (`--max-body`, `--header-timeout`).
    fn limits(&self) -> crate::server::Limits {
        crate::server::Limits::default()
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains
/// (see [`crate::server::serve`]).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = handler.limits();
    crate::server::serve(listener, limits, shutdown, move |conn| {
        let handler = handler.clone();
        // Moved into the service, which lives as long as the connection;
        // an upgrade request carries a copy, so that a tunnel made of the
        // connection (a WebSocket after 101) can keep it open past hyper.
        let opened = handler.connection_opened().map(Arc::new);
        // Shared by the connection's requests: a reference count per
        // request, where a copy would take the shutdown token's lock.
        let conn = Arc::new(conn);
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // Only an upgrade can outlive the exchange; others need no copy.
            if let Some(opened) = &opened
                && req.headers().contains_key(header::UPGRADE)
            {
                req.extensions_mut().insert(opened.clone());
            }
            // Before hyper reads again: its read buffer is its own then.
            own_head::own_head(&mut req);
            let handler = handler.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(handler.respond(&conn, req).await) }
        })
    })
    .await
}

/// A one-line plain-text answer from the proxy itself: `message` and a newline.
pub fn explain(status: StatusCode, message: String) -> Response<Body> {
    text_response(status, message + "\n")
}

/// A plain-text answer from the proxy itself (an error, a refusal).
pub fn text_response(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

//! The lab's proxies: the article's naive reverse proxy ([`naive`]), the full
//! ReverseProxy pipeline ([`reverse`]), and a forward proxy ([`forward`]), over
//! shared header rules ([`headers`]) and one upstream [`transport`].
//!
//! The reverse proxy's parts, in the order a request meets them:
//! [`reverse`] (the 13 steps of `ServeHTTP`), [`director`] (where the request
//! goes), [`headers`] (hop-by-hop and forwarding headers), [`transport`] (the
//! connection pool), [`upgrade`] (101 and WebSocket), [`modify`]
//! (ModifyResponse and the ErrorHandler).

pub mod director;
pub mod flush;
pub mod forward;
pub mod headers;
pub mod modify;
pub mod naive;
pub mod reverse;
pub mod transport;
pub mod upgrade;

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

/// Every body a proxy sends or receives: streamed, never buffered whole.
pub type Body = transport::UpstreamBody;

/// A body the proxy made itself, all in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
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

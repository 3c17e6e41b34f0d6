//! Bodies: the types every proxy streams, and the wrappers that watch a body
//! go by without buffering it.
//!
//! A body is a stream of frames (data, then maybe trailers) that the proxy
//! passes on as they arrive; a wrapper sits in the stream and sees each frame
//! on its way:
//!
//! - [`counted`]: counts the bytes and says when the body is over (the
//!   statistics' `bytes_in`, `bytes_out` and latency);
//! - [`limit`]: `--max-body` for a body whose size was not declared (chunked);
//! - [`flush`]: `--flush-interval`, Go's `FlushInterval`;
//! - [`stall`]: `--body-timeout`, and whether a failure while the client's
//!   body stopped coming is the client's.
//!
//! A leaf: it depends on crates only, so the proxies and the middleware can
//! both use it.

pub mod counted;
pub mod flush;
pub mod limit;
pub mod stall;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub use counted::CountedBody;
pub use limit::{LimitedBody, TooLarge};

/// Every body a proxy sends or receives: streamed, never buffered whole.
/// The error is hyper's, as a client's body ([`hyper::body::Incoming`])
/// or an upstream's fails with it.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A request body as the connection pool sends it: any body, its errors
/// boxed, so that the proxy can end a body with an error of its own (a body
/// past `--max-body`, [`TooLarge`]): the upstream connection is then aborted
/// mid-body.
pub type RequestBody = BoxBody<Bytes, BoxError>;

/// Any error, boxed: what a [`RequestBody`] and a connector fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[tokio::test]
    async fn full_and_empty_are_known_sizes() {
        let body = full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        let body = empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}

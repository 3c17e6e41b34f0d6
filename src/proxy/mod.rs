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

/// Every body a proxy sends or receives: streamed, never buffered whole.
pub type Body = transport::UpstreamBody;

//! The lab's proxies: the article's naive reverse proxy ([`naive`]), the full
//! ReverseProxy pipeline, and a forward proxy ([`forward`]), over shared
//! header rules ([`headers`]).

pub mod headers;
pub mod transport;

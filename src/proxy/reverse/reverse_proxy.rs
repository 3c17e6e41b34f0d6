//! What a [`ReverseProxy`] is made of: the upstreams and their balancer,
//! the Director, ModifyResponse and the ErrorHandler's style, the
//! Transport, the layers and the limits. Each step of `serve_http` (in the
//! files beside this one) is a method on it.

use std::net::IpAddr;
use std::time::Duration;

use crate::balance::HashKey;
use crate::discovery::Upstreams;
use crate::middleware::Layers;
use crate::proxy::director::Director;
use crate::proxy::headers::ForwardedPolicy;
use crate::proxy::like_go::Flavour;
use crate::proxy::modify::{ErrorStyle, ModifyResponse};
use crate::proxy::transport::Transport;
use crate::server::{self, Conn};

/// A ReverseProxy: what to send where, and how to answer.
pub struct ReverseProxy {
    /// The upstreams and the pluggable step that picks one for each
    /// request (the article's load balancers; one upstream is
    /// NewSingleHostReverseProxy), rebuilt whenever the live set changes.
    pub upstreams: Upstreams,
    /// What consistent hashing hashes (unused by the other balancers).
    pub hash_key: HashKey,
    pub director: Director,
    pub modify: ModifyResponse,
    pub errors: ErrorStyle,
    pub forwarded: ForwardedPolicy,
    /// Pass request headers whose names have underscores (`--underscores-in-headers`).
    pub keep_underscores: bool,
    /// How long to wait for the upstream's response head (504 after, 502
    /// like Go); `None`: as long as it takes, as Go's Transport does.
    pub response_timeout: Option<Duration>,
    /// Lab's rules, or Go's where they differ (`--like-go`).
    pub flavour: Flavour,
    /// Go's FlushInterval for bodies that need not stream; `None` flushes
    /// every chunk at once.
    pub flush_interval: Option<Duration>,
    pub transport: Transport,
    /// Rate limit, circuit breakers, fallback, auth, statistics.
    pub layers: Layers,
    /// This proxy's name in `Via`; seeing it on an incoming request means a loop.
    pub pseudonym: crate::proxy::headers::Pseudonym,
    /// How many other upstreams an idempotent request without a body may
    /// try when the connection to one fails (`--retries`; 0: Go's
    /// ReverseProxy, one upstream per request).
    pub retries: usize,
    /// Peers whose X-Forwarded-For is believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// What the listener refuses (`--max-body`, `--header-timeout`).
    pub limits: server::Limits,
}

/// Who sent a request: the connection it came on, and the address the
/// proxy believes is the client's (the TCP peer, or behind a
/// `--trusted-proxy` the address that proxy vouches for).
#[derive(Clone, Copy)]
pub(super) struct Client<'a> {
    pub conn: &'a Conn,
    pub ip: IpAddr,
}

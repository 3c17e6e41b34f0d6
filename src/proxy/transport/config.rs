//! The pool's knobs: the article's `http.Transport` fields as `lab` flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::proxy::like_go::Flavour;
use crate::tls::{self, UpstreamTrust};

/// The pool's knobs (the article's `http.Transport` fields).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Idle keep-alive connections kept per upstream (Go's
    /// MaxIdleConnsPerHost); 0 turns pooling off: one connection per request.
    pub max_idle_per_host: usize,
    /// How long an idle pooled connection is kept (Go's IdleConnTimeout).
    pub idle_timeout: Duration,
    /// How long to wait for a TCP connection to an upstream (the Dialer's Timeout).
    pub connect_timeout: Duration,
    /// How long the TLS handshake with an https:// upstream may take (Go's
    /// TLSHandshakeTimeout).
    pub tls_handshake_timeout: Duration,
    /// Trust https:// upstreams whose certificate is in (or signed by one
    /// in) this PEM file.
    pub upstream_ca: Option<PathBuf>,
    /// Accept any certificate from https:// upstreams (a lab only).
    pub insecure_upstream: bool,
    /// Go's `http.Transport` instead of lab's where they differ
    /// (`--like-go`): header names in Go's canonical case, and a request
    /// the pool never started to write is resent only under Go's rule (see
    /// [`TransportError::Stale`]).
    pub flavour: Flavour,
}

impl TransportConfig {
    /// Which certificates https:// upstreams may present
    /// (`--insecure-upstream` wins if both are set).
    pub fn upstream_trust(&self) -> UpstreamTrust {
        match (&self.upstream_ca, self.insecure_upstream) {
            (_, true) => UpstreamTrust::Insecure,
            (Some(path), false) => UpstreamTrust::CaFile(path.clone()),
            (None, false) => UpstreamTrust::Unconfigured,
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_idle_per_host: 100,
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: tls::HANDSHAKE_TIMEOUT,
            upstream_ca: None,
            insecure_upstream: false,
            flavour: Flavour::Lab,
        }
    }
}

//! Flags several commands share: the listener limits of every server, and
//! the upstream Transport of the two proxies that dial out (`lab forward`,
//! `lab proxy`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::parse::{parse_duration, parse_positive_duration, parse_size};
use crate::proxy::transport::TransportConfig;
use crate::server::Limits;
use crate::tls::UpstreamTrust;

/// What every listener refuses, whatever it serves (`--max-body`,
/// `--header-timeout` on realserver, naive, forward and proxy).
#[derive(Debug, Clone, Args)]
pub struct LimitsArgs {
    /// Refuse a request whose body is larger, 413 Content Too Large: SIZE in
    /// bytes or with a unit (500kB, 64KiB, 10MB, 1GiB), or `none`. A declared
    /// Content-Length is refused before any byte of the body is read; the
    /// proxies (naive, forward, proxy) also stop a chunked body that grows
    /// past it. The real server only counts a body's bytes, keeping none. [default: 64MiB; none
    /// with `lab proxy --like-go`]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_body: Option<u64>,

    /// Answer 408 to a client whose request head is not whole this long after
    /// its first byte (slowloris: a client that trickles its headers to hold
    /// a connection); a connection that sends nothing is closed a second
    /// later, idle keep-alive connections included. [default: 10s; none with
    /// `lab proxy --like-go`]
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub header_timeout: Option<Duration>,

    /// A proxy answers 408 to a client that stops sending its request body
    /// for this long, and never counts it against the upstream: a client
    /// that stalls mid-body is the client's failure, even when the upstream
    /// gives up first (the real server's --write-timeout ends such a request
    /// sooner). [default: 10s; none with `lab proxy --like-go`]
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub body_timeout: Option<Duration>,

    /// Refuse a request head (request line and headers) larger than this
    /// with 431, and, in a proxy, an upstream's response head larger than
    /// this with 502. SIZE in bytes or with a unit (16KiB), from 1KiB to
    /// 256KiB. [default: 32KiB (nginx allows 8 KiB per line, Envoy 60 KiB
    /// in all); 256KiB with `lab proxy --like-go` (Go allows 1 MiB)]
    #[arg(long, value_name = "SIZE", value_parser = parse_header_size)]
    pub max_header_size: Option<usize>,
}

/// `--max-header-size`: a size within 1 KiB and the ceiling.
fn parse_header_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    let ceiling = crate::framing::MAX_HEADER_SIZE_CEILING;
    if size == u64::MAX {
        return Err(format!(
            "a request head needs a limit: at most {ceiling} bytes (256KiB)"
        ));
    }
    match usize::try_from(size) {
        Ok(size) if (1024..=ceiling).contains(&size) => Ok(size),
        _ => Err(format!("{text} is not between 1KiB and 256KiB")),
    }
}

impl LimitsArgs {
    pub fn config(&self) -> Limits {
        self.config_or(Limits::default())
    }

    /// The limits given, the rest from `defaults`.
    pub fn config_or(&self, defaults: Limits) -> Limits {
        Limits {
            max_body: self.max_body.unwrap_or(defaults.max_body),
            header_timeout: self.header_timeout.or(defaults.header_timeout),
            body_timeout: self.body_timeout.or(defaults.body_timeout),
            max_header_size: self.max_header_size.unwrap_or(defaults.max_header_size),
            ..defaults
        }
    }
}

/// The pool's knobs (the article's `http.Transport` fields), for `lab proxy`
/// and `lab forward`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Upstream connections (Transport)")]
pub struct TransportArgs {
    /// Idle keep-alive connections kept per upstream (Go's
    /// MaxIdleConnsPerHost); 0 turns pooling off: one connection per request.
    /// [default: 100; 2, Go's, with `lab proxy --like-go`]
    #[arg(long, value_name = "N")]
    pub max_idle_per_host: Option<usize>,

    /// How long an idle pooled connection is kept (Go's IdleConnTimeout).
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// How long to wait for a TCP connection to an upstream (the Dialer's
    /// Timeout). [default: 10s; 30s, the article's, with `lab proxy --like-go`]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// How long the TLS handshake with an https:// upstream may take (Go's
    /// TLSHandshakeTimeout).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// Trust https:// upstreams whose certificate is in (or signed by one in)
    /// this PEM file, e.g. the one `lab realserver --tls` writes. Without it
    /// (or --insecure-upstream) https:// upstreams are refused.
    #[arg(long, value_name = "FILE", value_parser = parse_ca_file)]
    pub upstream_ca: Option<PathBuf>,

    /// Accept ANY certificate from https:// upstreams: encrypted, but not
    /// authenticated. For a lab only; prefer --upstream-ca.
    #[arg(long, conflicts_with = "upstream_ca")]
    pub insecure_upstream: bool,
}

impl TransportArgs {
    pub fn config(&self) -> TransportConfig {
        TransportConfig {
            max_idle_per_host: self.max_idle_per_host.unwrap_or(100),
            idle_timeout: self.idle_timeout,
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(10)),
            tls_handshake_timeout: self.tls_handshake_timeout,
            upstream_ca: self.upstream_ca.clone(),
            insecure_upstream: self.insecure_upstream,
            flavour: Default::default(),
        }
    }
}

/// `--upstream-ca`: the file must hold at least one usable certificate, so a
/// wrong path is a usage error at once, not a failed request later.
fn parse_ca_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    crate::tls::client_config(&UpstreamTrust::CaFile(path.clone()))
        .map_err(|err| err.to_string())?;
    Ok(path)
}

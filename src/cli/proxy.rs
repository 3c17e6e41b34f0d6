//! The flags of `lab proxy` (balancing, Director, ModifyResponse, the
//! middleware, discovery and health checks, the Transport), and the
//! [`ProxyConfig`] they become.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;

use crate::discovery::Source;
use crate::middleware::breaker::BreakerConfig;
use crate::middleware::{Fallback, LayersConfig, RateLimitConfig};
use crate::parse::{parse_duration, parse_listen_addr, parse_positive_duration};
use crate::proxy::director::Director;
use crate::proxy::like_go::{Flavour, GO_IDLE_PER_HOST};
use crate::proxy::modify::{ErrorStyle, ModifyResponse};
use crate::proxy::reverse::ProxyConfig;
use crate::proxy::transport::TransportConfig;
use crate::server::Limits;

use super::shared::{LimitsArgs, TransportArgs};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on (the article's 127.0.0.1:2002).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002", env = "LAB_PROXY_LISTEN", value_parser = parse_listen_addr)]
    pub listen: SocketAddr,

    /// An upstream, URL[,WEIGHT] (repeatable): scheme, host, base path and
    /// weight (default 1). The defaults are the article's main().
    #[arg(
        long = "upstream",
        value_name = "URL[,WEIGHT]",
        default_values = ["http://127.0.0.1:2003/base,10", "http://127.0.0.1:2004/base,20"],
        env = "LAB_PROXY_UPSTREAMS",
        value_delimiter = ' ',
        value_parser = crate::balance::parse_upstream_spec,
        conflicts_with = "discovery"
    )]
    pub upstreams: Vec<crate::balance::Node>,

    /// The load balancer (负载均衡): random, round-robin (rr), weighted (wrr)
    /// or consistent-hash (hash).
    #[arg(long = "lb", value_enum, default_value_t = crate::balance::Algorithm::RoundRobin)]
    pub algorithm: crate::balance::Algorithm,

    /// The random balancer's seed, for a sequence you can repeat (drawn and
    /// logged when not given).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Consistent hash: virtual nodes per upstream per unit of weight (the
    /// article uses 10; nginx and ketama 160).
    #[arg(long, value_name = "N", default_value_t = crate::balance::DEFAULT_REPLICAS)]
    pub replicas: usize,

    /// Consistent hash: where virtual nodes land, the article's
    /// crc32("{i}{upstream}") or nginx's crc32 chain (evens out with replicas).
    #[arg(long, value_enum, default_value_t = crate::balance::RingPoints::Article)]
    pub ring: crate::balance::RingPoints,

    /// Consistent hash: what a request is hashed by: remote-ip,
    /// remote-addr (the article's, IP and port), header:NAME, path or query:NAME.
    #[arg(long, value_name = "KEY", default_value = "remote-ip")]
    pub hash_key: crate::balance::HashKey,

    /// Rewrite the request path before the join: REGEX=REPLACEMENT (repeatable).
    #[arg(long, value_name = "REGEX=REPLACEMENT")]
    pub rewrite: Vec<crate::proxy::director::Rewrite>,

    /// Set a request header: NAME:VALUE (repeatable), e.g. token:ssss.
    #[arg(long, value_name = "NAME:VALUE")]
    pub set_header: Vec<crate::proxy::director::SetHeader>,

    /// Replace every request body with this JSON document (Content-Length fixed).
    #[arg(long, value_name = "JSON")]
    pub replace_body: Option<crate::proxy::director::JsonBody>,

    /// ModifyResponse: prefix the body of 200 responses (Content-Length fixed).
    #[arg(long, value_name = "TEXT")]
    pub prefix_response: Option<String>,

    /// ModifyResponse, the multi-host rule: prefix non-200 bodies with "StatusCode error:".
    #[arg(long)]
    pub prefix_errors: bool,

    /// ErrorHandler as the article writes it: 500 "ErrorHandler error:…"
    /// instead of 502 Bad Gateway / 504 Gateway Timeout.
    #[arg(long)]
    pub article_errors: bool,

    /// Answer 504 when the upstream sends no response head within this time
    /// (502 with --like-go: Go's ResponseHeaderTimeout). [default: 30s; none
    /// with --like-go, as Go's Transport]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub response_timeout: Option<Duration>,

    /// Behave as Go's httputil.ReverseProxy does (Go 1.19, the article's
    /// Transport), wherever lab proxy differs, to compare the two: every
    /// error a 502 with an empty body (timeouts and a bad Upgrade token
    /// too), no response timeout, only X-Forwarded-For added (no X-Real-IP,
    /// X-Forwarded-Host/Proto, Via), no X-Lab-* headers in answers, 2 idle
    /// connections per upstream, Go's User-Agent, Content-Length and gzip
    /// rules, a Content-Type sniffed when the upstream sent none, header
    /// names in Go's case. A flag given beside it still counts. Every
    /// difference: docs/go-differences.md.
    /// Example: lab proxy --like-go --upstream http://127.0.0.1:2003/base
    #[arg(long, verbatim_doc_comment)]
    pub like_go: bool,

    /// Go's FlushInterval: send a body that need not stream (its length is
    /// known, it is not text/event-stream) in batches at most this often.
    /// Unset: every chunk goes out as it arrives.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub flush_interval: Option<Duration>,

    /// How to treat the X-Forwarded-* and X-Real-IP headers a client sends.
    #[arg(long, value_enum, default_value_t = crate::proxy::headers::ForwardedPolicy::Append)]
    pub forwarded: crate::proxy::headers::ForwardedPolicy,

    /// Pass on request headers whose names have an underscore (`X_Real_IP`),
    /// which are dropped by default, as nginx does: a CGI, WSGI or PHP
    /// backend reads `X_Real_IP` as X-Real-IP, so a client could spoof it.
    /// Go's ReverseProxy passes them (on with --like-go).
    #[arg(long)]
    pub underscores_in_headers: bool,

    /// When the connection to an upstream fails (refused, timed out, TLS
    /// handshake), try up to N other upstreams (nginx's proxy_next_upstream
    /// error), for idempotent requests without a body only: nothing was sent,
    /// so nothing happens twice. 0 is Go's ReverseProxy, the article's: one
    /// upstream per request, 502 when it is down. Each try counts against the
    /// failed upstream (health, breaker) and has its own --response-timeout;
    /// the answer names the failures in X-Lab-Retried.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,

    /// A proxy in front of this one (repeatable: an address or a range such
    /// as 10.0.0.0/8) whose X-Forwarded-For is believed: the client's address
    /// (for --rate-limit-by ip, --hash-key remote-ip, X-Real-IP) is then
    /// the last address in X-Forwarded-For that is not a trusted proxy. From
    /// any other peer the header is only passed on, never believed.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<crate::cidr::Cidr>,

    /// Worker threads, each with its own runtime, listener (SO_REUSEPORT)
    /// and upstream connection pool; the balancer and statistics are shared.
    /// [default: one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,

    #[command(flatten)]
    pub limits: LimitsArgs,

    #[command(flatten)]
    pub discovery: DiscoveryArgs,

    #[command(flatten)]
    pub middleware: MiddlewareArgs,

    #[command(flatten)]
    pub transport: TransportArgs,
}

/// The middleware layers of `lab proxy`, each off unless asked for (the
/// article's 限流 熔断 降级 权限 数据统计; statistics are always kept).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Middleware")]
#[command(group(clap::ArgGroup::new("breaker").args(["breaker_failures", "breaker_error_rate"]).multiple(true)))]
pub struct MiddlewareArgs {
    /// 权限 auth: require `Authorization: Bearer TOKEN` (401 otherwise); the
    /// header is never forwarded upstream.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LAB_AUTH_TOKEN",
        hide_env_values = true,
        value_parser = parse_bearer_token
    )]
    pub auth_token: Option<String>,

    /// 限流 rate limiting: at most RATE requests per client IP (10/s,
    /// 600/min, 5/100ms); the excess gets 429 with Retry-After.
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<crate::middleware::rate_limit::Rate>,

    /// Whose requests one limit counts: each client IP's, or everyone's together.
    #[arg(
        long,
        value_enum,
        value_name = "WHO",
        default_value_t,
        requires = "rate_limit"
    )]
    pub rate_limit_by: crate::middleware::rate_limit::LimitBy,

    /// How many requests may come at once before the rate applies [default: 1, a smooth rate].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000), requires = "rate_limit")]
    pub rate_burst: Option<u32>,

    /// 熔断 circuit breaking: open an upstream's breaker after N failures in
    /// a row (unreachable, too slow, or a 5xx); while open its requests go
    /// to the other upstreams, or fail fast with 503.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub breaker_failures: Option<u32>,

    /// …or when this share of the requests in --breaker-window failed (50%, 0.5).
    #[arg(long, value_name = "RATE", value_parser = crate::middleware::breaker::parse_error_rate)]
    pub breaker_error_rate: Option<f64>,

    /// The window of --breaker-error-rate.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration, requires = "breaker")]
    pub breaker_window: Duration,

    /// The fewest requests in the window for --breaker-error-rate to judge.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000), requires = "breaker")]
    pub breaker_min_requests: u32,

    /// How long an open breaker waits before one trial request (half-open).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration, requires = "breaker")]
    pub breaker_cooldown: Duration,

    /// 降级 degradation: instead of an error of the proxy's own (502, 503,
    /// 504: every upstream down, breakers open), answer this status…
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(200..=599))]
    pub fallback_status: Option<u16>,

    /// …with this body (text/plain) [default status with a body: 200].
    #[arg(long, value_name = "TEXT")]
    pub fallback_body: Option<String>,
}

/// Where `lab proxy` finds its upstreams and how it checks them (the
/// article's LoadBalanceZkConf and LoadBalanceCheckConf).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Discovery and health checks")]
pub struct DiscoveryArgs {
    /// Take the upstreams from ZooKeeper instead of --upstream: the children
    /// of PATH, as `lab realserver --register` creates them, watched while
    /// the proxy runs (服务发现).
    #[arg(long, value_name = "zk://HOST:PORT/PATH")]
    pub discovery: Option<crate::zk::ZkUrl>,

    /// Probe every upstream's PATH (e.g. / or /healthz) every
    /// --health-interval; a 2xx or 3xx answer is healthy (健康检查).
    #[arg(long, value_name = "PATH", value_parser = parse_health_path)]
    pub health_check: Option<String>,

    /// How often to probe.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration, requires = "health_check")]
    pub health_interval: Duration,

    /// How long one probe may take [default: the interval, at most 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, requires = "health_check")]
    pub health_timeout: Option<Duration>,

    /// Failures in a row (probes or proxied requests) that take an upstream out of the set.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100), requires = "health_check")]
    pub unhealthy_after: u32,

    /// Successful probes in a row that bring it back.
    #[arg(long, value_name = "M", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100), requires = "health_check")]
    pub healthy_after: u32,
}

impl DiscoveryArgs {
    /// The health-check settings, when `--health-check` is given.
    pub fn health(&self) -> Option<crate::discovery::HealthConfig> {
        let path = self.health_check.clone()?;
        Some(crate::discovery::HealthConfig {
            path,
            interval: self.health_interval,
            timeout: self
                .health_timeout
                .unwrap_or_else(|| self.health_interval.min(Duration::from_secs(1))),
            unhealthy_after: self.unhealthy_after,
            healthy_after: self.healthy_after,
        })
    }
}

/// A bearer token (RFC 6750 `b64token`): letters, digits and `-._~+/`, then
/// optional `=` padding; never empty.
fn parse_bearer_token(s: &str) -> Result<String, String> {
    let body = s.trim_end_matches('=');
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    if body.is_empty() || !body.chars().all(allowed) {
        return Err(format!(
            "{s:?} is not a bearer token: write letters, digits and -._~+/ (e.g. s3cret), not empty"
        ));
    }
    Ok(s.to_string())
}

fn parse_health_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!(
            "{s:?} does not start with '/'; write a path such as / or /healthz"
        ));
    }
    let path: http::uri::PathAndQuery = s
        .parse()
        .map_err(|_| format!("{s:?} is not a path; write one such as / or /healthz"))?;
    Ok(path.as_str().to_string())
}

impl ProxyArgs {
    /// The ReverseProxy these flags describe.
    pub fn config(&self) -> ProxyConfig {
        let flavour = if self.like_go {
            Flavour::Go
        } else {
            Flavour::Lab
        };
        ProxyConfig {
            listen: self.listen,
            source: match &self.discovery.discovery {
                Some(url) => Source::ZooKeeper(url.clone()),
                None => Source::Static(self.upstreams.clone()),
            },
            algorithm: self.algorithm,
            seed: self.seed,
            replicas: self.replicas,
            ring: self.ring,
            hash_key: self.hash_key.clone(),
            director: Director {
                rewrites: self.rewrite.clone(),
                set_headers: self.set_header.clone(),
                replace_body: self.replace_body.clone(),
            },
            modify: ModifyResponse {
                prefix_ok: self.prefix_response.clone().map(Bytes::from),
                prefix_errors: self.prefix_errors,
            },
            errors: if self.article_errors {
                ErrorStyle::Article
            } else if self.like_go {
                ErrorStyle::Go
            } else {
                ErrorStyle::Gateway
            },
            forwarded: self.forwarded,
            keep_underscores: self.underscores_in_headers,
            response_timeout: match self.response_timeout {
                Some(timeout) => Some(timeout),
                None if self.like_go => None,
                None => Some(Duration::from_secs(30)),
            },
            flavour,
            flush_interval: self.flush_interval,
            retries: self.retries as usize,
            trusted_proxies: self.trusted_proxies.clone(),
            limits: match flavour {
                // Go's http.Server, as http.ListenAndServe makes it: no
                // body limit, no ReadHeaderTimeout.
                Flavour::Go => self.limits.config_or(Limits {
                    max_body: u64::MAX,
                    header_timeout: None,
                    body_timeout: None,
                    // Go allows 1 MiB; lab's ceiling is lower (hyper's buffer).
                    max_header_size: crate::framing::MAX_HEADER_SIZE_CEILING,
                    go_header_case: true,
                }),
                Flavour::Lab => self.limits.config(),
            },
            health: self.discovery.health(),
            layers: self.middleware.config(),
            transport: TransportConfig {
                flavour,
                max_idle_per_host: match (self.transport.max_idle_per_host, flavour) {
                    (Some(n), _) => n,
                    (None, Flavour::Go) => GO_IDLE_PER_HOST,
                    (None, Flavour::Lab) => self.transport.config().max_idle_per_host,
                },
                // The article's Dialer (and Go's DefaultTransport): 30 s.
                connect_timeout: match (self.transport.connect_timeout, flavour) {
                    (Some(timeout), _) => timeout,
                    (None, Flavour::Go) => Duration::from_secs(30),
                    (None, Flavour::Lab) => self.transport.config().connect_timeout,
                },
                ..self.transport.config()
            },
            threads: self
                .threads
                .map_or_else(crate::workers::per_core, usize::from),
        }
    }
}

impl MiddlewareArgs {
    /// The layers these flags turn on.
    pub fn config(&self) -> LayersConfig {
        let breaker =
            (self.breaker_failures.is_some() || self.breaker_error_rate.is_some()).then(|| {
                BreakerConfig {
                    // Only an error rate asked for: no consecutive-failures rule.
                    failures: self.breaker_failures.unwrap_or(0),
                    error_rate: self.breaker_error_rate,
                    min_requests: self.breaker_min_requests,
                    window: self.breaker_window,
                    cooldown: self.breaker_cooldown,
                }
            });
        let fallback =
            (self.fallback_status.is_some() || self.fallback_body.is_some()).then(|| Fallback {
                status: self
                    .fallback_status
                    .and_then(|code| http::StatusCode::from_u16(code).ok())
                    .unwrap_or(http::StatusCode::OK),
                body: Bytes::from(self.fallback_body.clone().unwrap_or_default()),
            });
        LayersConfig {
            auth_token: self.auth_token.clone(),
            rate_limit: self.rate_limit.map(|rate| RateLimitConfig {
                rate,
                burst: self.rate_burst,
                by: self.rate_limit_by,
            }),
            breaker,
            fallback,
        }
    }
}

//! The middleware layers of `lab proxy` (限流 rate limiting, 熔断 circuit
//! breaking, 降级 degradation, 权限 auth, 数据统计 statistics): the article's
//! last section, what a gateway adds around the ReverseProxy. Each layer is
//! a module of its own that the proxy's pipeline calls in turn.

pub mod auth;
pub mod breaker;
pub mod chain;
pub mod rate_limit;
pub mod stats;

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;

use auth::BearerAuth;
use breaker::{BreakerConfig, Breakers};
use rate_limit::RateLimiter;
use stats::Stats;

/// The response header naming the layer that answered, when the upstream
/// did not: `auth`, `rate-limit`, `breaker`, `fallback`, or `proxy` (the
/// proxy's own 502/503/504). `lab trace` shows it beside the status.
pub const LAYER_HEADER: HeaderName = HeaderName::from_static("x-lab-layer");

/// On a fallback (降级): the status the proxy would have answered.
pub const DEGRADED_HEADER: HeaderName = HeaderName::from_static("x-lab-degraded-from");

/// Every layer of one proxy; `None` is a layer that is off.
pub struct Layers {
    pub auth: Option<BearerAuth>,
    pub limiter: Option<RateLimiter>,
    pub breakers: Option<Breakers>,
    pub fallback: Option<Fallback>,
    /// Always on: `/_lab/stats`, `/_lab/metrics`.
    pub stats: Arc<Stats>,
}

/// 降级: what the proxy answers instead of an error of its own.
#[derive(Debug, Clone)]
pub struct Fallback {
    pub status: http::StatusCode,
    pub body: Bytes,
}

impl Layers {
    /// The layers `lab proxy`'s flags ask for.
    pub fn from_args(args: &crate::cli::MiddlewareArgs) -> Layers {
        let breaker =
            (args.breaker_failures.is_some() || args.breaker_error_rate.is_some()).then(|| {
                BreakerConfig {
                    // Only an error rate asked for: no consecutive-failures rule.
                    failures: args.breaker_failures.unwrap_or(0),
                    error_rate: args.breaker_error_rate,
                    min_requests: args.breaker_min_requests,
                    window: args.breaker_window,
                    cooldown: args.breaker_cooldown,
                }
            });
        let fallback =
            (args.fallback_status.is_some() || args.fallback_body.is_some()).then(|| Fallback {
                status: args
                    .fallback_status
                    .and_then(|code| http::StatusCode::from_u16(code).ok())
                    .unwrap_or(http::StatusCode::OK),
                body: Bytes::from(args.fallback_body.clone().unwrap_or_default()),
            });
        Layers {
            auth: args.auth_token.as_deref().map(BearerAuth::new),
            limiter: args
                .rate_limit
                .map(|rate| RateLimiter::new(rate, args.rate_burst, args.rate_limit_by)),
            breakers: breaker.map(Breakers::new),
            fallback,
            stats: Arc::new(Stats::new()),
        }
    }

    /// One line per layer that is on, for the proxy's start-up log.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.auth.is_some() {
            lines.push("auth (权限): Authorization: Bearer … required".to_string());
        }
        if let Some(limiter) = &self.limiter {
            lines.push(format!(
                "rate limit (限流): {} {}, burst {}",
                limiter.rate(),
                limiter.by().describe(),
                limiter.burst()
            ));
        }
        if let Some(breakers) = &self.breakers {
            let config = breakers.config();
            lines.push(format!(
                "circuit breaker (熔断): open after {}{}, trial after {:?}",
                if config.failures > 0 {
                    format!("{} failures in a row", config.failures)
                } else {
                    String::new()
                },
                match config.error_rate {
                    Some(rate) => format!(
                        "{}{:.0}% failed over {:?} (at least {} requests)",
                        if config.failures > 0 { " or " } else { "" },
                        rate * 100.0,
                        config.window,
                        config.min_requests
                    ),
                    None => String::new(),
                },
                config.cooldown
            ));
        }
        if let Some(fallback) = &self.fallback {
            lines.push(format!(
                "fallback (降级): {} with {} bytes instead of the proxy's own errors",
                fallback.status,
                fallback.body.len()
            ));
        }
        lines
    }
}

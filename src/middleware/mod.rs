//! The middleware layers of `lab proxy` (限流 rate limiting, 熔断 circuit
//! breaking, 降级 degradation, 权限 auth, 数据统计 statistics): the article's
//! last section, what a gateway adds around the ReverseProxy. Each layer is
//! a module of its own that the proxy's pipeline calls in turn
//! ([`crate::proxy::chain`]). They are policies, a leaf below the proxy:
//! none of them knows the proxy that uses it.

pub mod auth;
pub mod breaker;
pub mod rate_limit;
pub mod stats;

use std::sync::Arc;

use bytes::Bytes;

use auth::BearerAuth;
use breaker::{BreakerConfig, Breakers};
use rate_limit::RateLimiter;
use stats::Stats;

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

/// Which layers are on, and how each is set (from `lab proxy`'s flags).
#[derive(Debug, Clone, Default)]
pub struct LayersConfig {
    /// 权限: the bearer token a request must carry.
    pub auth_token: Option<String>,
    /// 限流: the rate, the burst and whose requests one limit counts.
    pub rate_limit: Option<RateLimitConfig>,
    /// 熔断: when an upstream's breaker opens and when it tries again.
    pub breaker: Option<BreakerConfig>,
    /// 降级: the answer instead of the proxy's own errors.
    pub fallback: Option<Fallback>,
}

/// 限流: at most `rate` requests, `burst` at once, counted per `by`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    pub rate: rate_limit::Rate,
    /// How many may come at once before the rate applies (`None`: 1).
    pub burst: Option<u32>,
    pub by: rate_limit::LimitBy,
}

impl Layers {
    /// The layers `config` turns on; statistics are always kept.
    pub fn new(config: &LayersConfig) -> Layers {
        Layers {
            auth: config.auth_token.as_deref().map(BearerAuth::new),
            limiter: config
                .rate_limit
                .map(|limit| RateLimiter::new(limit.rate, limit.burst, limit.by)),
            breakers: config.breaker.clone().map(Breakers::new),
            fallback: config.fallback.clone(),
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

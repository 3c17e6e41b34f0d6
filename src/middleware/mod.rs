//! The middleware layers of `lab proxy` (限流 rate limiting, 熔断 circuit
//! breaking, 降级 degradation, 权限 auth, 数据统计 statistics): the article's
//! last section, what a gateway adds around the ReverseProxy. Each layer is
//! a module of its own that the proxy's pipeline calls in turn.

pub mod auth;
pub mod breaker;
pub mod rate_limit;
pub mod stats;
pub mod stats_table;

//! Lab 18, middleware (中间件: 权限 auth, 限流 rate limiting, 熔断 circuit
//! breaking, 降级 degradation, 数据统计 statistics), each layer driven in the
//! order `src/proxy/chain.rs` applies them: a 401 without the bearer
//! token, which never reaches the upstream; a 5/s limit with burst 1 that
//! lets exactly one of ten immediate requests through, per client IP or for
//! everyone; a breaker that opens after N failures, passes the dead upstream
//! over, lets one trial through after the cool-down and fails fast when every
//! breaker is open; a fallback for the proxy's own errors only; statistics
//! that count exactly what was sent, in JSON and in Prometheus' text.
//!
//! One file per layer, each section starting its own proxy: [`auth`],
//! [`rate_limit`], [`breaker`], [`fallback`], [`statistics`]; what they all
//! start (real servers, proxies, dead ports) is in [`started`], stopped
//! whatever the experiment returns.

mod auth;
mod breaker;
mod fallback;
mod rate_limit;
mod started;
mod statistics;

use futures_util::future::BoxFuture;

use crate::labs::findings::Findings;
use auth::auth;
use breaker::breaker;
use fallback::fallback;
use rate_limit::rate_limit;
use started::{Started, dead_port};
use statistics::statistics;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let mut lab = Started::default();
        let result = experiment(f, &mut lab).await;
        let stopped = lab.stop().await;
        result.and(stopped)
    })
}

async fn experiment(f: &mut Findings, lab: &mut Started) -> anyhow::Result<()> {
    let a = lab.serve().await?;
    let b = dead_port().await?;
    f.step(format!(
        "started real server a on {a}, as `lab realserver` does; nothing listens on b's port {b} (yet)"
    ));
    auth(f, lab, a).await?;
    rate_limit(f, lab, a).await?;
    breaker(f, lab, a, b).await?;
    fallback(f, lab, a).await?;
    statistics(f, lab, a, b).await
}

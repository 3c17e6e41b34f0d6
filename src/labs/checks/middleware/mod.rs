//! Lab 19, middleware (中间件: 权限 auth, 限流 rate limiting, 熔断 circuit
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
//!
//! First, on `lab proxy` and on Go's ReverseProxy (`labs/go/middleware`,
//! [`handlers`]): the bare proxy has no layer of its own, and a layer is a
//! handler around it that answers first.

mod auth;
mod breaker;
mod fallback;
mod handlers;
mod rate_limit;
mod started;
mod statistics;

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use crate::labs::findings::{Findings, Subject};
use auth::auth;
use breaker::breaker;
use fallback::fallback;
use rate_limit::rate_limit;
use started::{Started, dead_port};
use statistics::statistics;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let mut lab = Started::default();
        let result = async {
            let a = lab.serve().await?;
            if f.lab {
                f.measure_on(Subject::Lab);
                experiment(f, &mut lab, a).await?;
            } else {
                answer_by_the_rules(f);
            }
            if f.go.is_some() {
                f.measure_on(Subject::Go);
                let result = handlers::on_go(f, a).await;
                f.measure_on(Subject::Lab);
                result?;
            }
            anyhow::Ok(())
        }
        .await;
        let stopped = lab.stop().await;
        result.and(stopped)
    })
}

/// When `lab proxy` does not run (`--impl go`), the questions about its
/// layers are answered by their rules, the flags the check would give.
fn answer_by_the_rules(f: &mut Findings) {
    let why = "lab proxy did not run (--impl go); by its rule";
    f.observe(
        "passes-of-ten",
        1,
        format!("{why}: with burst 1 the first request passes and the next may come 200 ms later; ten requests on loopback take a few milliseconds"),
    );
    f.observe(
        "502s-before-open",
        3,
        format!("{why}: b's first 3 turns fail and the third opens its breaker; its later turns are passed over to a"),
    );
    f.observe(
        "own-500-replaced",
        "no",
        format!("{why}: the fallback stands in for the proxy's own 502, 503 and 504 only; an upstream's own 500 passes as it is"),
    );
}

async fn experiment(f: &mut Findings, lab: &mut Started, a: SocketAddr) -> anyhow::Result<()> {
    let b = dead_port().await?;
    f.step(format!(
        "started real server a on {a}, as `lab realserver` does; nothing listens on b's port {b} (yet)"
    ));
    handlers::on_lab(f, lab, a).await?;
    auth(f, lab, a).await?;
    rate_limit(f, lab, a).await?;
    breaker(f, lab, a, b).await?;
    fallback(f, lab, a).await?;
    statistics(f, lab, a, b).await
}

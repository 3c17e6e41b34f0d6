//! The labs' scenarios: one file per lab, registered by the lab's slug.
//!
//! A scenario starts what it needs in this process on free loopback ports,
//! runs the experiment the sheet describes with real sockets, and records in
//! [`Findings`] every claim (expected against actual) and the actual answer to
//! every prediction. It never decides pass or fail for predictions: the report
//! compares them with the learner's answers.

mod balancing;
mod choosing_a_balancer;
mod consistent_hash;
mod director;
mod forward_proxy;
mod health_checks;
mod middleware;
mod modify_and_errors;
mod naive_reverse_proxy;
mod proxy_basics;
mod proxy_pages;
mod random;
mod round_robin;
mod serve_http_internals;
mod special_headers;
mod timeouts;
mod transport_pool;
mod upgrade;
mod weighted_round_robin;
mod zookeeper_discovery;

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::findings::Findings;
use crate::realserver::{BASE_PATH, Config, RunningServer};

/// A lab's experiment.
pub type Scenario = for<'a> fn(&'a mut Findings) -> BoxFuture<'a, anyhow::Result<()>>;

/// The slugs that have a scenario, in lab order.
pub const SLUGS: &[&str] = &[
    "proxy-basics",
    "special-headers",
    "forward-proxy",
    "naive-reverse-proxy",
    "director",
    "modify-and-errors",
    "serve-http-internals",
    "upgrade",
    "transport-pool",
    "timeouts",
    "random",
    "round-robin",
    "weighted-round-robin",
    "consistent-hash",
    "choosing-a-balancer",
    "health-checks",
    "zookeeper-discovery",
    "middleware",
];

/// The scenario of the lab named `slug`.
pub fn scenario(slug: &str) -> Option<Scenario> {
    match slug {
        "proxy-basics" => Some(proxy_basics::run),
        "special-headers" => Some(special_headers::run),
        "forward-proxy" => Some(forward_proxy::run),
        "naive-reverse-proxy" => Some(naive_reverse_proxy::run),
        "director" => Some(director::run),
        "modify-and-errors" => Some(modify_and_errors::run),
        "serve-http-internals" => Some(serve_http_internals::run),
        "upgrade" => Some(upgrade::run),
        "transport-pool" => Some(transport_pool::run),
        "timeouts" => Some(timeouts::run),
        "random" => Some(random::run),
        "round-robin" => Some(round_robin::run),
        "weighted-round-robin" => Some(weighted_round_robin::run),
        "consistent-hash" => Some(consistent_hash::run),
        "choosing-a-balancer" => Some(choosing_a_balancer::run),
        "health-checks" => Some(health_checks::run),
        "zookeeper-discovery" => Some(zookeeper_discovery::run),
        "middleware" => Some(middleware::run),
        _ => None,
    }
}

/// Runs `experiment` with `n` real servers, started on free ports before it
/// and stopped after it, whatever it returned.
fn with_real_servers<'a, F, Fut>(
    f: &'a mut Findings,
    n: usize,
    experiment: F,
) -> BoxFuture<'a, anyhow::Result<()>>
where
    F: FnOnce(&'a mut Findings, Vec<SocketAddr>) -> Fut + Send + 'a,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'a,
{
    Box::pin(async move {
        let servers = start_real_servers(f, n).await?;
        let addrs = servers.iter().map(RunningServer::addr).collect();
        let result = experiment(f, addrs).await;
        stop_real_servers(servers, result).await
    })
}

/// Starts `n` real servers on free ports, as `lab realserver` would.
async fn start_real_servers(f: &mut Findings, n: usize) -> anyhow::Result<Vec<RunningServer>> {
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        start_real_server(&mut servers).await?;
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.addr().to_string()).collect();
    f.step(format!(
        "started {n} real server(s), as `lab realserver` does, on {}",
        addrs.join(" and ")
    ));
    Ok(servers)
}

/// A real server on a free port, as `lab realserver` runs it, kept in
/// `servers` (to be stopped with them); its address.
async fn start_real_server(servers: &mut Vec<RunningServer>) -> anyhow::Result<SocketAddr> {
    let server = RunningServer::start_on_free_port(Config::default()).await?;
    let addr = server.addr();
    servers.push(server);
    Ok(addr)
}

/// The upstream URL of a real server on `addr`, as `lab proxy --upstream`
/// takes it: `http://ADDR/base`.
fn upstream_url(addr: SocketAddr) -> String {
    format!("http://{addr}{BASE_PATH}")
}

/// Stops the servers; the experiment's own error, if any, wins over theirs.
async fn stop_real_servers(
    servers: Vec<RunningServer>,
    experiment: anyhow::Result<()>,
) -> anyhow::Result<()> {
    for server in servers {
        let stopped = server.shutdown().await;
        if experiment.is_ok() {
            stopped?;
        }
    }
    experiment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_folder_has_a_scenario_and_every_scenario_a_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
        let catalogue = crate::labs::Catalogue::load(&dir).unwrap();
        let slugs: Vec<&str> = catalogue.labs.iter().map(|l| l.slug.as_str()).collect();
        assert_eq!(slugs, SLUGS);
        for slug in SLUGS {
            assert!(scenario(slug).is_some(), "{slug} has no scenario");
        }
    }
}

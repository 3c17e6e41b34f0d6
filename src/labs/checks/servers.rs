//! The real servers a lab's experiment runs against: started on free ports
//! as `lab realserver` runs them, and stopped after the experiment whatever
//! it found.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use crate::labs::findings::Findings;
use crate::realserver::{BASE_PATH, Config, RunningServer};

/// Runs `experiment` with `n` real servers, started on free ports before it
/// and stopped after it, whatever it returned.
pub(super) fn with_real_servers<'a, F, Fut>(
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
pub(super) async fn start_real_servers(
    f: &mut Findings,
    n: usize,
) -> anyhow::Result<Vec<RunningServer>> {
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
pub(super) async fn start_real_server(
    servers: &mut Vec<RunningServer>,
) -> anyhow::Result<SocketAddr> {
    let server = RunningServer::start_on_free_port(Config::default()).await?;
    let addr = server.addr();
    servers.push(server);
    Ok(addr)
}

/// The upstream URL of a real server on `addr`, as `lab proxy --upstream`
/// takes it: `http://ADDR/base`.
pub(super) fn upstream_url(addr: SocketAddr) -> String {
    format!("http://{addr}{BASE_PATH}")
}

/// Stops the servers; the experiment's own error, if any, wins over theirs.
pub(super) async fn stop_real_servers(
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

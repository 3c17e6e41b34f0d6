//! Lab 09, the Transport's connection pool (连接池): with keep-alive reuse the
//! real server sees one RemoteAddr port for many requests; with pooling off,
//! a new port each time.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::servers::with_real_servers;
use crate::cli::launch::RunningProxy;
use crate::labs::findings::Findings;
use crate::probe::Probe;

const REQUESTS: usize = 5;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let upstream = format!("http://{server}/base");
    let pooled = RunningProxy::start(&["--upstream", &upstream]).await?;
    let unpooled =
        RunningProxy::start(&["--upstream", &upstream, "--max-idle-per-host", "0"]).await?;
    f.step(format!(
        "started `lab proxy` (pool on, --max-idle-per-host 100) on {} and `lab proxy --max-idle-per-host 0` on {}",
        pooled.addr(),
        unpooled.addr()
    ));
    let result = async {
        let with_pool = upstream_ports(f, pooled.addr(), "pooled").await?;
        let without_pool = upstream_ports(f, unpooled.addr(), "unpooled").await?;
        f.claim_eq(
            "pooled-reuses-one-connection",
            format!("{REQUESTS} requests, distinct ports: 1"),
            format!("{REQUESTS} requests, distinct ports: {}", with_pool.len()),
            "after each response the Transport keeps the upstream connection idle in its pool and the next request reuses it: no new TCP handshake",
        );
        f.observe(
            "ports-pooled",
            with_pool.len(),
            "one keep-alive connection carried all the requests",
        );
        f.claim_eq(
            "unpooled-connects-each-time",
            format!("{REQUESTS} requests, distinct ports: {REQUESTS}"),
            format!("{REQUESTS} requests, distinct ports: {}", without_pool.len()),
            "with MaxIdleConnsPerHost 0 nothing is kept: each request dials a new connection, from a new ephemeral port",
        );
        f.observe(
            "ports-unpooled",
            without_pool.len(),
            "a new connection, so a new ephemeral port, per request",
        );
        anyhow::Ok(())
    }
    .await;
    pooled.shutdown().await?;
    unpooled.shutdown().await?;
    result
}

/// Sends [`REQUESTS`] requests one after another, each on a new client
/// connection, and returns the ports the real server saw them come from.
async fn upstream_ports(
    f: &mut Findings,
    proxy: SocketAddr,
    label: &str,
) -> anyhow::Result<BTreeSet<u16>> {
    let mut ports = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let echo = Probe::get("/abc")
            .header("Accept", "application/json")
            .send(proxy)
            .await?
            .json_echo()?;
        let addr: SocketAddr = echo.remote_addr.parse()?;
        ports.push(addr.port());
    }
    f.step(format!(
        "{REQUESTS} requests through the {label} proxy: the real server saw RemoteAddr ports {ports:?}"
    ));
    Ok(ports.into_iter().collect())
}

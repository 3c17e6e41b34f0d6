//! Lab 10, the Transport's connection pool (连接池): with keep-alive reuse the
//! real server sees one RemoteAddr port for many requests; with pooling off,
//! a new port each time; and how many idle connections a pool keeps per
//! upstream (Go's `MaxIdleConnsPerHost`: 0 means its default, 2).
//!
//! Measured through `lab proxy` and through the article's two Transports in
//! Go: the 2.3 listing (`labs/go/transport`, `--max-idle-per-host` to vary
//! it) and main.go's (`labs/go/balancer`, MaxIdleConnsPerHost unset).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};

use super::fronts::{Front, subjects};
use super::servers::{upstream_url, with_real_servers};
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;

const REQUESTS: usize = 5;

/// Requests sent at once to see how many idle connections a pool keeps.
const AT_ONCE: usize = 3;

/// How long the real server holds each of them (`…/delay?ms=`), so that they
/// overlap and each needs a connection of its own.
const HOLD_MS: u64 = 300;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let mut result = Ok(());
    for subject in subjects(f) {
        f.measure_on(subject);
        result = on_one_program(f, server).await;
        if result.is_err() {
            break;
        }
    }
    f.measure_on(Subject::Lab);
    result
}

async fn on_one_program(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let upstream = upstream_url(server);
    // The 2.3 Director replaces the whole path with the target's: the
    // delay endpoint is named in --target, the request brings ?ms=.
    let delay_target = format!("{upstream}/delay");

    // Sequential requests, pool on.
    if let Some(ports) = sequential(
        f,
        &["--upstream", &upstream],
        "transport",
        &["--target", &upstream],
        "pooled",
    )
    .await?
    {
        f.claim_eq(
            "pooled-reuses-one-connection",
            format!("{REQUESTS} requests, distinct ports: 1"),
            format!("{REQUESTS} requests, distinct ports: {}", ports.len()),
            "after each response the Transport keeps the upstream connection idle in its pool and the next request reuses it: no new TCP handshake",
        );
        f.observe(
            "ports-pooled",
            ports.len(),
            "one keep-alive connection carried all the requests",
        );
    }

    // Sequential requests, no idle pool.
    if let Some(ports) = sequential(
        f,
        &["--upstream", &upstream, "--max-idle-per-host", "0"],
        "transport",
        &["--target", &upstream, "--max-idle-per-host", "-1"],
        "unpooled",
    )
    .await?
    {
        f.claim_eq(
            "unpooled-connects-each-time",
            format!("{REQUESTS} requests, distinct ports: {REQUESTS}"),
            format!("{REQUESTS} requests, distinct ports: {}", ports.len()),
            "with no idle connection kept (Go: MaxIdleConnsPerHost -1; lab: --max-idle-per-host 0) each request dials a new connection, from a new ephemeral port",
        );
        f.observe(
            "ports-unpooled",
            ports.len(),
            "a new connection, so a new ephemeral port, per request",
        );
    }

    // MaxIdleConnsPerHost 0: Go's default of 2; lab's --max-idle-per-host 0: none.
    if let Some(reused) = idle_kept(
        f,
        &["--upstream", &upstream, "--max-idle-per-host", "0"],
        "transport",
        &["--target", &delay_target, "--max-idle-per-host", "0"],
    )
    .await?
    {
        let actual = format!("{reused} of {AT_ONCE} reused");
        match f.subject() {
            Subject::Go => f.claim_eq(
                "zero-means-two",
                format!("2 of {AT_ONCE} reused"),
                actual,
                "MaxIdleConnsPerHost 0 means http.DefaultMaxIdleConnsPerHost, 2: of 3 connections, the pool keeps 2 idle and closes the third",
            ),
            Subject::Lab => f.claim_lab_choice(
                "zero-means-two",
                format!("0 of {AT_ONCE} reused"),
                actual,
                "lab proxy's --max-idle-per-host 0 keeps no idle connection (the pool is off), where Go's 0 means its default of 2; --max-idle-per-host 2 is Go's default (docs/go-differences.md)",
            ),
        }
    }

    // Go's default of 2, asked of lab explicitly (the prediction).
    if f.subject() == Subject::Lab {
        let flags = ["--upstream", &upstream, "--max-idle-per-host", "2"];
        if let Some(reused) = idle_kept(f, &flags, "", &[]).await? {
            f.observe(
                "reused-with-two-idle",
                reused,
                "two idle connections per upstream are kept: two of the second three reuse them, the third dials",
            );
        }
    }

    // The article's main.go Transport: MaxIdleConnsPerHost unset.
    let balancer_upstream = format!("{upstream},1");
    if let Some(reused) = idle_kept(
        f,
        &["--upstream", &upstream],
        "balancer",
        &["--upstream", &balancer_upstream],
    )
    .await?
    {
        let actual = format!("{reused} of {AT_ONCE} reused");
        match f.subject() {
            Subject::Go => {
                f.claim_eq(
                    "article-main-keeps-two",
                    format!("2 of {AT_ONCE} reused"),
                    actual,
                    "main.go's Transport sets MaxIdleConns 100 but not MaxIdleConnsPerHost, so Go keeps its default, 2, per upstream",
                );
                f.observe(
                    "reused-with-two-idle",
                    reused,
                    "two idle connections per upstream are kept: two of the second three reuse them, the third dials",
                );
            }
            Subject::Lab => f.claim_lab_choice(
                "article-main-keeps-two",
                format!("{AT_ONCE} of {AT_ONCE} reused"),
                actual,
                "lab proxy keeps up to 100 idle connections per upstream by default (--max-idle-per-host 100); `lab proxy --like-go` keeps Go's 2 (docs/go-differences.md)",
            ),
        }
    }
    Ok(())
}

/// [`REQUESTS`] requests one after another through a proxy, each on a new
/// client connection: the set of ports the real server saw them come from.
async fn sequential(
    f: &mut Findings,
    lab_flags: &[&str],
    go_name: &str,
    go_args: &[&str],
    label: &str,
) -> anyhow::Result<Option<BTreeSet<u16>>> {
    let Some(proxy) = Front::start(f, lab_flags, go_name, go_args).await? else {
        return Ok(None);
    };
    let result = async {
        let mut ports = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            ports.push(upstream_port(proxy.addr(), "/abc").await?);
        }
        anyhow::Ok(ports)
    }
    .await;
    proxy.shutdown().await?;
    let ports = result?;
    f.step(format!(
        "{REQUESTS} requests one after another through the {label} proxy: the real server saw RemoteAddr ports {ports:?}"
    ));
    Ok(Some(ports.into_iter().collect()))
}

/// [`AT_ONCE`] slow requests at once through a proxy, then [`AT_ONCE`]
/// more: how many of the second ones came on a connection of the first
/// (how many the pool kept idle in between).
async fn idle_kept(
    f: &mut Findings,
    lab_flags: &[&str],
    go_name: &str,
    go_args: &[&str],
) -> anyhow::Result<Option<usize>> {
    let Some(proxy) = Front::start(f, lab_flags, go_name, go_args).await? else {
        return Ok(None);
    };
    let result = async {
        let first = at_once(proxy.addr()).await?;
        // Let the finished connections go back to the pool (or be closed).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = at_once(proxy.addr()).await?;
        anyhow::Ok((first, second))
    }
    .await;
    proxy.shutdown().await?;
    let (first, second) = result?;
    let reused = second.iter().filter(|p| first.contains(p)).count();
    f.step(format!(
        "{AT_ONCE} requests at once (each held {HOLD_MS} ms by the real server) came from ports {first:?}; {AT_ONCE} more at once from {second:?}: {reused} reused"
    ));
    Ok(Some(reused))
}

/// [`AT_ONCE`] requests for `…/delay?ms=HOLD_MS` at once: the ports the real
/// server saw them come from.
async fn at_once(proxy: SocketAddr) -> anyhow::Result<Vec<u16>> {
    let path = format!("/delay?ms={HOLD_MS}");
    let ports = join_all((0..AT_ONCE).map(|_| upstream_port(proxy, &path))).await;
    let mut ports = ports.into_iter().collect::<anyhow::Result<Vec<u16>>>()?;
    ports.sort_unstable();
    Ok(ports)
}

/// The port the real server saw one request through `proxy` come from.
async fn upstream_port(proxy: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let echo = Probe::get(path)
        .header("Accept", "application/json")
        .send(proxy)
        .await?
        .json_echo()?;
    let addr: SocketAddr = echo.remote_addr.parse()?;
    Ok(addr.port())
}

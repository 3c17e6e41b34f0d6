//! Lab 16, health checks and the observer (健康检查, 观察者模式): a real
//! server stops and leaves the set within interval × N + 1 s, comes back
//! after M good checks, failed requests count as failed checks, and with
//! nothing live the proxy answers 503 at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;

use super::proxy_pages::{read_status, send, until_status};
use super::servers::upstream_url;
use crate::cli::launch::RunningProxy;
use crate::discovery::Status;
use crate::labs::findings::Findings;
use crate::probe::Probe;
use crate::realserver::{Config, RunningServer};

const INTERVAL: Duration = Duration::from_millis(200);
const UNHEALTHY_AFTER: u32 = 3;
const HEALTHY_AFTER: u32 = 2;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let a = RunningServer::start_on_free_port(Config::default()).await?;
        let b = RunningServer::start_on_free_port(Config::default()).await?;
        let (a_addr, b_addr) = (a.addr(), b.addr());
        f.step(format!(
            "started 2 real servers, as `lab realserver` does: a on {a_addr}, b on {b_addr}"
        ));
        let result = experiment(f, a_addr, b).await;
        let stopped = a.shutdown().await;
        result.and(stopped)
    })
}

async fn experiment(f: &mut Findings, a: SocketAddr, b: RunningServer) -> anyhow::Result<()> {
    let b_addr = b.addr();
    let (a_url, b_url) = (upstream_url(a), upstream_url(b_addr));
    let name = |url: Option<&str>| match url {
        Some(u) if u == a_url => "a".to_string(),
        Some(u) if u == b_url => "b".to_string(),
        other => other.unwrap_or("none").to_string(),
    };

    let interval = format!("{}ms", INTERVAL.as_millis());
    let (unhealthy, healthy) = (UNHEALTHY_AFTER.to_string(), HEALTHY_AFTER.to_string());
    let flags = [
        "--lb",
        "round-robin",
        "--upstream",
        &a_url,
        "--upstream",
        &b_url,
        "--health-check",
        "/",
        "--health-interval",
        &interval,
        "--unhealthy-after",
        &unhealthy,
        "--healthy-after",
        &healthy,
    ];
    let proxy = RunningProxy::start(&flags).await?;
    let p = proxy.addr();
    f.step(format!(
        "`lab proxy --lb round-robin --health-check / --health-interval {interval} --unhealthy-after {UNHEALTHY_AFTER} --healthy-after {HEALTHY_AFTER}` over a and b at {p}"
    ));

    let status = read_status(p).await?;
    let live: Vec<String> = status
        .upstreams
        .iter()
        .filter(|u| u.live)
        .map(|u| name(Some(&u.url)))
        .collect();
    f.claim_eq(
        "starts-with-both",
        "generation 1, live a b",
        format!("generation {}, live {}", status.generation, live.join(" ")),
        "every upstream is trusted until it fails, as in nginx",
    );

    // b stops; the clock runs from when its listener is closed.
    b.shutdown().await?;
    f.step("stopped b");
    let left_after = until_live(p, &b_url, false).await?;
    let bound = INTERVAL * UNHEALTHY_AFTER + Duration::from_secs(1);
    f.claim(
        "leaves-within-bound",
        left_after <= bound,
        format!("b out within {} ms", bound.as_millis()),
        format!("b out after {} ms", left_after.as_millis()),
        format!(
            "{UNHEALTHY_AFTER} probes, {} ms apart, must fail in a row",
            INTERVAL.as_millis()
        ),
    );
    let status = read_status(p).await?;
    let event = status
        .events
        .iter()
        .find(|e| e.upstream == b_url && e.change == "left");
    let reason = event.map_or("no 'left' event".to_string(), |e| e.reason.clone());
    f.claim(
        "reason-names-the-evidence",
        event.is_some()
            && reason.starts_with("3 failed checks in a row: ")
            && reason.contains("connect"),
        "left: 3 failed checks in a row: cannot connect…",
        format!("left: {reason}"),
        "the subject records why it changed the set; the proxy logs the same line",
    );

    let answers = send(p, 10).await?;
    let seen: Vec<String> = answers
        .iter()
        .map(|answer| {
            format!(
                "{} {} set {}",
                answer.status,
                name(answer.upstream.as_deref()),
                answer.set.unwrap_or(0)
            )
        })
        .collect();
    f.step(format!("10 requests after b left: {}", seen.join(", ")));
    let mut distinct: Vec<u16> = answers.iter().map(|a| a.status).collect();
    distinct.sort_unstable();
    distinct.dedup();
    f.observe(
        "status-after-leaving",
        distinct
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        "the rebuilt balancer holds only a: no request is sent to b",
    );
    f.claim_eq(
        "no-failure-after-leaving",
        ["200 a set 2"; 10].join(", "),
        seen.join(", "),
        "the observer rebuilt the balancer over the live set, generation 2",
    );

    // b starts again on its port.
    let b = RunningServer::start(TcpListener::bind(b_addr).await?, Config::default())?;
    f.step(format!("started b again on {b_addr}"));
    let back_after = until_live(p, &b_url, true).await?;
    let bound = INTERVAL * (HEALTHY_AFTER + 1) + Duration::from_secs(1);
    let status = read_status(p).await?;
    let joined = status
        .events
        .iter()
        .find(|e| e.upstream == b_url && e.change == "joined");
    f.claim(
        "returns-after-m-good-checks",
        back_after <= bound
            && joined.is_some_and(|e| e.reason.starts_with("2 good checks") && e.generation == 3),
        format!(
            "joined: 2 good checks in a row, generation 3, within {} ms",
            bound.as_millis()
        ),
        format!(
            "{}, after {} ms",
            joined.map_or("no 'joined' event".to_string(), |e| format!(
                "joined: {}, generation {}",
                e.reason, e.generation
            )),
            back_after.as_millis()
        ),
        "M good probes in a row readmit it; the observer builds generation 3",
    );
    let answers = send(p, 10).await?;
    let turns: Vec<String> = answers
        .iter()
        .map(|a| name(a.upstream.as_deref()))
        .collect();
    let alternates =
        turns.windows(2).all(|w| w[0] != w[1]) && turns.iter().all(|t| t == "a" || t == "b");
    f.claim(
        "shares-again",
        alternates,
        "a and b in turn",
        turns.join(" "),
        "a new round-robin balancer over both",
    );
    proxy.shutdown().await?;

    // Passive: probes once a minute, so only requests can notice.
    let passive = RunningProxy::start(&[
        "--lb",
        "round-robin",
        "--upstream",
        &a_url,
        "--upstream",
        &b_url,
        "--health-check",
        "/",
        "--health-interval",
        "60s",
        "--unhealthy-after",
        "2",
    ])
    .await?;
    // Its first probe round runs at start; wait until it has.
    until_checked(passive.addr()).await?;
    b.shutdown().await?;
    f.step("a second proxy probing once a minute (--unhealthy-after 2); stopped b");
    let answers = send(passive.addr(), 8).await?;
    let statuses: Vec<String> = answers.iter().map(|a| a.status.to_string()).collect();
    let failed = answers.iter().filter(|a| a.status == 502).count();
    f.observe(
        "passive-failures",
        failed,
        "b's first two turns fail; the second failure in a row takes it out",
    );
    let status = read_status(passive.addr()).await?;
    let reason = status
        .events
        .iter()
        .find(|e| e.upstream == b_url && e.change == "left")
        .map_or("no 'left' event".to_string(), |e| e.reason.clone());
    f.claim_eq(
        "two-failures-then-none",
        "502 on b's 2 turns then 200 (4 × 200 after); left: 2 failed checks and requests in a row",
        format!(
            "{}; left: {}",
            summarize(&statuses),
            reason.split(':').next().unwrap_or_default()
        ),
        "a failed request is a failed check: no probe was needed",
    );

    // Nothing left: a proxy over b alone, which is stopped.
    f.step("a third proxy over b alone, which is stopped (--unhealthy-after 1)");
    let all_down = RunningProxy::start(&[
        "--upstream",
        &b_url,
        "--health-check",
        "/",
        "--health-interval",
        &interval,
        "--unhealthy-after",
        "1",
    ])
    .await?;
    until_live(all_down.addr(), &b_url, false).await?;
    let started = Instant::now();
    let exchange = Probe::get("/abc").send(all_down.addr()).await?;
    let took = started.elapsed();
    let body = exchange.text();
    f.observe(
        "all-down-status",
        exchange.status.as_u16(),
        "Service Unavailable: there is no upstream to try",
    );
    f.claim(
        "all-down-503-at-once",
        exchange.status == 503
            && took < Duration::from_secs(1)
            && body.contains("no healthy upstream")
            && body.contains(&b_url),
        "503 within 1 s naming each upstream and its error",
        format!(
            "{} after {} ms: {}",
            exchange.status.as_u16(),
            took.as_millis(),
            body.lines().take(2).collect::<Vec<_>>().join(" / ")
        ),
        "the 503's body is the observer's reason for an empty set",
    );
    all_down.shutdown().await?;
    passive.shutdown().await?;
    Ok(())
}

/// `8 × …` statuses in the check's words: "502 on b's 2 turns then 200 (4 × 200 after)".
fn summarize(statuses: &[String]) -> String {
    let failed = statuses.iter().filter(|s| *s == "502").count();
    let last_failure = statuses
        .iter()
        .rposition(|s| s == "502")
        .map_or(0, |i| i + 1);
    let after = &statuses[last_failure..];
    if after.iter().all(|s| s == "200") {
        format!(
            "502 on b's {failed} turns then 200 ({} × 200 after)",
            after.len()
        )
    } else {
        statuses.join(" ")
    }
}

/// How long the status page is polled before a wait fails.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Polls the status page until `upstream` is live (or not); how long it took.
async fn until_live(proxy: SocketAddr, upstream: &str, live: bool) -> anyhow::Result<Duration> {
    let is_it = |status: &Status| {
        status
            .upstreams
            .iter()
            .any(|u| u.url == upstream && u.live == live)
    };
    let (took, status) = until_status(proxy, GIVE_UP, is_it).await?;
    if !is_it(&status) {
        anyhow::bail!(
            "{upstream} did not become live={live} within {} s",
            GIVE_UP.as_secs()
        );
    }
    Ok(took)
}

/// Waits until the first probe round has counted a success for every upstream.
async fn until_checked(proxy: SocketAddr) -> anyhow::Result<()> {
    let checked = |status: &Status| status.upstreams.iter().all(|u| u.successes > 0);
    let (_, status) = until_status(proxy, GIVE_UP, checked).await?;
    if !checked(&status) {
        anyhow::bail!(
            "the first health checks did not finish within {} s",
            GIVE_UP.as_secs()
        );
    }
    Ok(())
}

//! Lab 19's 熔断 (circuit breaking) section: a breaker opens after N failures
//! in a row, its upstream is passed over, one trial goes through after the
//! cool-down and its answer closes the breaker; with every breaker open the
//! proxy fails fast.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::started::{Started, dead_port};
use super::statistics::{GIVE_UP, poll_stats};
use crate::lab_headers::{BREAKER_HEADER, LAYER_HEADER, UPSTREAM_HEADER};
use crate::labs::checks::proxy_pages::header;
use crate::labs::checks::servers::upstream_url as base;
use crate::labs::findings::Findings;
use crate::middleware::stats::StatsSnapshot;
use crate::probe::{Exchange, Probe};

/// The breaker's settings: open after this many failures in a row…
const BREAKER_FAILURES: u32 = 3;
/// …and wait this long before the one trial request.
const COOLDOWN: Duration = Duration::from_secs(1);
/// How long the trial request is held at b (its `/delay?ms=`), so that
/// another request for b arrives while the trial is out.
const TRIAL_HELD: Duration = Duration::from_millis(500);

/// 熔断: a and a dead b in turn; b's breaker opens, b is passed over, comes
/// back through one trial; then every breaker open.
pub(super) async fn breaker(
    f: &mut Findings,
    lab: &mut Started,
    a: SocketAddr,
    b: SocketAddr,
) -> anyhow::Result<()> {
    let names = Names::new(&[('a', a), ('b', b)]);
    let failures = BREAKER_FAILURES.to_string();
    let cooldown = format!("{}s", COOLDOWN.as_secs());
    let p = lab
        .round_robin(
            a,
            b,
            &[
                "--breaker-failures",
                &failures,
                "--breaker-cooldown",
                &cooldown,
            ],
        )
        .await?;
    f.step(format!(
        "`lab proxy --lb round-robin --upstream {} --upstream {} --breaker-failures {failures} \
         --breaker-cooldown {cooldown}` at {p}: a is live, b is not",
        base(a),
        base(b)
    ));
    let mut answers = Vec::with_capacity(10);
    for _ in 0..10 {
        answers.push(Probe::get("/abc").send(p).await?);
    }
    let turns: Vec<String> = answers.iter().map(|e| names.turn(e)).collect();
    f.step(format!("10 requests: {}", turns.join(", ")));
    let bad_gateways = answers.iter().filter(|e| e.status == 502).count();
    f.observe(
        "502s-before-open",
        bad_gateways,
        "b's first three turns fail; the third failure in a row opens its breaker, \
         and no request is sent to b after that",
    );
    f.claim_eq(
        "breaker-opens-after-n",
        "a 200, b 502, a 200, b 502, a 200, b 502, a 200, a 200 (b passed over), a 200, a 200 (b passed over)",
        turns.join(", "),
        "3 failures in a row open b's breaker; round robin still chooses b every other \
         request, and the breaker passes that choice over to the next upstream (X-Lab-Breaker)",
    );

    // b comes up on its port; after the cool-down its next turn is the trial.
    lab.serve_on(b).await?;
    f.step(format!("started real server b on {b}"));
    tokio::time::sleep(COOLDOWN + Duration::from_millis(100)).await;
    f.step(format!(
        "waited {} ms, past the {} s cool-down",
        (COOLDOWN + Duration::from_millis(100)).as_millis(),
        COOLDOWN.as_secs()
    ));
    let mut turns = vec![names.turn(&Probe::get("/abc").send(p).await?)];
    // b's turn: the trial, held at b so that the next b turn comes while it is out.
    let trial_path = format!("/delay?ms={}", TRIAL_HELD.as_millis());
    let trial = tokio::spawn(async move { Probe::get(&trial_path).send(p).await });
    // Run what follows before awaiting the trial, and only then use `?`, so
    // the trial is never left running when this returns.
    let during = async {
        wait_in_flight(p).await?;
        let mut during = Vec::new();
        for _ in 0..2 {
            during.push(names.turn(&Probe::get("/abc").send(p).await?));
        }
        anyhow::Ok(during)
    }
    .await;
    let trial = trial.await.context("the trial request's task failed")?;
    let during = during?;
    let trial = trial?;
    turns.push(format!(
        "{} (the trial, held {} ms)",
        names.turn(&trial),
        TRIAL_HELD.as_millis()
    ));
    let during = format!("while it was out: {}", during.join(", "));
    for _ in 0..2 {
        turns.push(names.turn(&Probe::get("/abc").send(p).await?));
    }
    f.step(format!("6 requests: {}; {during}", turns.join(", ")));
    f.claim_eq(
        "breaker-half-open-trial",
        "a 200, b 200 (the trial, held 500 ms), a 200, b 200; \
         while it was out: a 200, a 200 (b passed over)",
        format!("{}; {during}", turns.join(", ")),
        "after the cool-down b's next turn is the one trial (half-open); the others wait \
         for its verdict, and its 200 closes the breaker: b has its turns again",
    );

    // Every upstream dead: after their breakers open, no upstream is tried.
    let (x, y) = (dead_port().await?, dead_port().await?);
    let names = Names::new(&[('x', x), ('y', y)]);
    let p = lab
        .round_robin(
            x,
            y,
            &["--breaker-failures", "2", "--breaker-cooldown", "30s"],
        )
        .await?;
    f.step(format!(
        "`lab proxy --lb round-robin --upstream {} --upstream {} --breaker-failures 2 \
         --breaker-cooldown 30s` at {p}: nothing listens on x or y",
        base(x),
        base(y)
    ));
    let mut turns = Vec::new();
    for _ in 0..4 {
        turns.push(names.turn(&Probe::get("/abc").send(p).await?));
    }
    let started = Instant::now();
    let refused = Probe::get("/abc").send(p).await?;
    let took = started.elapsed();
    let retry_after: Option<u64> = header(&refused, "retry-after").and_then(|s| s.parse().ok());
    let actual = format!(
        "{}; then {} ({}), Retry-After {}, in {} ms",
        turns.join(", "),
        refused.status.as_u16(),
        header(&refused, LAYER_HEADER.as_str()).unwrap_or("no layer"),
        retry_after.map_or("missing".to_string(), |s| s.to_string()),
        took.as_millis()
    );
    f.claim(
        "fail-fast-when-all-open",
        actual.starts_with("x 502, y 502, x 502, y 502; then 503 (breaker), ")
            && retry_after.is_some_and(|s| (25..=30).contains(&s))
            && took < Duration::from_millis(500)
            && refused.text().contains("circuit breaker is open"),
        "x 502, y 502, x 502, y 502; then 503 (breaker), Retry-After 30, in under 500 ms",
        actual,
        "with every breaker open there is no upstream to pass to: the proxy answers at once, \
         and Retry-After says when the first trial may go",
    );
    Ok(())
}

/// The real servers by letter.
struct Names(Vec<(char, String)>);

impl Names {
    fn new(servers: &[(char, SocketAddr)]) -> Names {
        Names(servers.iter().map(|&(l, addr)| (l, base(addr))).collect())
    }

    /// `a 200`, `b 502`, `a 200 (b passed over)`: who answered, and whether
    /// the breaker passed the balancer's choice over.
    fn turn(&self, exchange: &Exchange) -> String {
        let upstream = header(exchange, UPSTREAM_HEADER.as_str());
        let letter = |url: &str| {
            self.0
                .iter()
                .find(|(_, u)| u == url)
                .map_or_else(|| url.to_string(), |(l, _)| l.to_string())
        };
        let name = upstream.map_or_else(|| "none".to_string(), letter);
        let mut turn = format!("{name} {}", exchange.status.as_u16());
        if header(exchange, BREAKER_HEADER.as_str()).is_some() {
            // With two upstreams, the one passed over is the other one.
            let other = self
                .0
                .iter()
                .find(|(_, u)| Some(u.as_str()) != upstream)
                .map_or('?', |(l, _)| *l);
            turn.push_str(&format!(" ({other} passed over)"));
        }
        turn
    }
}

/// Waits until the proxy has a request in flight (the trial, on its way to
/// b), and a moment more for its pick, which follows without a pause.
async fn wait_in_flight(proxy: SocketAddr) -> anyhow::Result<()> {
    let in_flight = |stats: &StatsSnapshot| stats.overall.in_flight > 0;
    let (_, stats) = poll_stats(proxy, Duration::from_millis(5), in_flight).await?;
    if !in_flight(&stats) {
        anyhow::bail!("the trial request did not reach the proxy within {GIVE_UP:?}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

//! Lab 17, health checks and the observer (健康检查, 观察者模式): a real
//! server stops and leaves the set within interval × N + 1 s, comes back
//! after M good checks, failed requests count as failed checks, and with
//! nothing live the proxy answers 503 at once.
//!
//! The same through the article's observer in Go (`labs/go/healthcheck`:
//! `LoadBanlanceFactorWithConf` over a `LoadBalanceCheckConf`): the stopped
//! server leaves the balancer and comes back without a restart; but a failed
//! request tells it nothing, an empty list fails in the Transport with 500,
//! and with `--lb consistent-hash` the proxy never starts (the article's
//! `Update` takes its own lock twice).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;

use super::proxy_pages::{header, read_status, send, until_status};
use super::servers::upstream_url;
use crate::cli::launch::RunningProxy;
use crate::discovery::Status;
use crate::golang::GoProgram;
use crate::lab_headers::SERVER_HEADER;
use crate::labs::findings::{Findings, Subject};
use crate::probe::{Exchange, Probe};
use crate::realserver::{Config, RunningServer};

const INTERVAL: Duration = Duration::from_millis(200);
const UNHEALTHY_AFTER: u32 = 3;
const HEALTHY_AFTER: u32 = 2;
/// How long the Go proxy with the consistent hash is given to start.
const HANG: Duration = Duration::from_secs(3);

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let a = RunningServer::start_on_free_port(Config::default()).await?;
        let b = RunningServer::start_on_free_port(Config::default()).await?;
        let (a_addr, b_addr) = (a.addr(), b.addr());
        f.step(format!(
            "started 2 real servers, as `lab realserver` does: a on {a_addr}, b on {b_addr}"
        ));
        let result = async {
            let b = if f.lab {
                f.measure_on(Subject::Lab);
                experiment(f, a_addr, b).await?;
                None
            } else {
                answer_by_the_rules(f);
                Some(b)
            };
            if f.go.is_some() {
                f.measure_on(Subject::Go);
                let result = the_articles(f, a_addr, b_addr, b).await;
                f.measure_on(Subject::Lab);
                result?;
            } else if let Some(b) = b {
                b.shutdown().await?;
            }
            anyhow::Ok(())
        }
        .await;
        let stopped = a.shutdown().await;
        result.and(stopped)
    })
}

/// When `lab proxy` does not run (`--impl go`), the questions about it are
/// answered by its rules, the flags the check would have given it.
fn answer_by_the_rules(f: &mut Findings) {
    f.observe(
        "passive-failures",
        2,
        "lab proxy did not run (--impl go); by its rule a failed request is a failed check, so with --unhealthy-after 2 b's first two turns fail and take it out",
    );
    f.observe(
        "all-down-status",
        503,
        "lab proxy did not run (--impl go); by its rule an empty set is answered 503 Service Unavailable at once",
    );
}

/// An answer of the Go proxy in a word: `200 a`, `200 b`, or the status and
/// body of an error.
fn who(exchange: &Exchange, a: SocketAddr, b: SocketAddr) -> String {
    let server = header(exchange, SERVER_HEADER);
    match server {
        Some(s) if s == a.to_string() => format!("{} a", exchange.status.as_u16()),
        Some(s) if s == b.to_string() => format!("{} b", exchange.status.as_u16()),
        _ => format!(
            "{} {}",
            exchange.status.as_u16(),
            exchange
                .text()
                .trim()
                .replace(&a.to_string(), "A")
                .replace(&b.to_string(), "B")
        ),
    }
}

/// `n` requests, one after another, each in a word (see [`who`]).
async fn words(
    proxy: SocketAddr,
    n: usize,
    a: SocketAddr,
    b: SocketAddr,
) -> anyhow::Result<Vec<String>> {
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(who(&Probe::get("/abc").send(proxy).await?, a, b));
    }
    Ok(seen)
}

/// Sends a request every 50 ms until `done` holds for the answers so far
/// (at most [`GIVE_UP`]); the answers.
async fn until_answers(
    proxy: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
    done: impl Fn(&[String]) -> bool,
) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let mut seen = Vec::new();
    while !done(&seen) {
        if started.elapsed() > GIVE_UP {
            anyhow::bail!(
                "the Go proxy's answers did not change as expected within {} s: {}",
                GIVE_UP.as_secs(),
                seen.join(", ")
            );
        }
        seen.push(who(&Probe::get("/abc").send(proxy).await?, a, b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(seen)
}

/// `labs/go/healthcheck` over `upstreams` with `flags`.
async fn healthcheck(
    f: &mut Findings,
    upstreams: &[&str],
    flags: &[&str],
) -> anyhow::Result<GoProgram> {
    let mut args = vec!["--listen", "127.0.0.1:0", "--lb", "round-robin"];
    for upstream in upstreams {
        args.extend(["--upstream", upstream]);
    }
    args.extend_from_slice(flags);
    f.start_go("healthcheck", &args)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Go does not run in this check"))
}

/// The article's observer in Go: the same server stops and comes back, then
/// probes once a minute, then nothing left, then the consistent hash.
async fn the_articles(
    f: &mut Findings,
    a: SocketAddr,
    b_addr: SocketAddr,
    b: Option<RunningServer>,
) -> anyhow::Result<()> {
    let (a_url, b_url) = (upstream_url(a), upstream_url(b_addr));
    let mut b = match b {
        Some(b) => Some(b),
        None => Some(RunningServer::start(
            TcpListener::bind(b_addr).await?,
            Config::default(),
        )?),
    };
    let interval = format!("{}ms", INTERVAL.as_millis());
    let unhealthy = UNHEALTHY_AFTER.to_string();
    let go = healthcheck(
        f,
        &[&a_url, &b_url],
        &[
            "--check-interval",
            &interval,
            "--fail-threshold",
            &unhealthy,
        ],
    )
    .await?;
    let p = go.addr();
    let result = async {
        let first = words(p, 4, a, b_addr).await?;
        f.step(format!("4 requests with a and b up: {}", first.join(", ")));

        if let Some(b) = b.take() {
            b.shutdown().await?;
        }
        let started = Instant::now();
        // Two answers from a in a row: b is no longer in the round.
        let polled = until_answers(p, a, b_addr, |seen| {
            seen.len() >= 2 && seen[seen.len() - 2..].iter().all(|w| w == "200 a")
        })
        .await?;
        let failed = polled.iter().filter(|w| !w.starts_with("200")).count();
        f.step(format!(
            "stopped b; requests every 50 ms until a answered twice in a row, after {} ms: {} of {} failed meanwhile ({})",
            started.elapsed().as_millis(),
            failed,
            polled.len(),
            polled.iter().find(|w| !w.starts_with("200")).map_or("none", String::as_str)
        ));
        let after = words(p, 10, a, b_addr).await?;
        f.step(format!("10 requests after b left: {}", after.join(", ")));
        f.claim_eq(
            "no-failure-after-leaving",
            ["200 a"; 10].join(", "),
            after.join(", "),
            "the probes failed 3 times in a row: LoadBalanceCheckConf called UpdateConf, and the balancer's Update rebuilt it from GetConf() without b",
        );
        let mut distinct: Vec<&str> = after.iter().map(|w| &w[..3]).collect();
        distinct.sort_unstable();
        distinct.dedup();
        f.observe(
            "status-after-leaving",
            distinct.join(" "),
            "the rebuilt balancer holds only a: no request is sent to b",
        );

        b = Some(RunningServer::start(TcpListener::bind(b_addr).await?, Config::default())?);
        let polled = until_answers(p, a, b_addr, |seen| seen.iter().any(|w| w == "200 b")).await?;
        f.step(format!(
            "started b again on {b_addr}: it answered after {} request(s)",
            polled.len()
        ));
        let turns: Vec<String> = words(p, 10, a, b_addr)
            .await?
            .into_iter()
            .map(|w| w.trim_start_matches("200 ").to_string())
            .collect();
        let alternates =
            turns.windows(2).all(|w| w[0] != w[1]) && turns.iter().all(|t| t == "a" || t == "b");
        f.claim(
            "shares-again",
            alternates,
            "a and b in turn",
            turns.join(" "),
            "a good probe put b back in the list; UpdateConf called Update, and round robin has both again, without a restart",
        );
        anyhow::Ok(())
    }
    .await;
    go.shutdown().await?;
    result?;

    // Probes once a minute: only a request could notice, and none does.
    let go = healthcheck(
        f,
        &[&a_url, &b_url],
        &["--check-interval", "60s", "--fail-threshold", "2"],
    )
    .await?;
    if let Some(b) = b.take() {
        b.shutdown().await?;
    }
    let answers = words(go.addr(), 8, a, b_addr).await;
    go.shutdown().await?;
    let answers = answers?;
    f.step(format!(
        "probes once a minute (--fail-threshold 2); stopped b; 8 requests: {}",
        answers.join(", ")
    ));
    let failed = answers.iter().filter(|w| !w.starts_with("200")).count();
    let describe = |failed: usize, status: &str| format!("{failed} of 8 fail with {status}");
    f.claim_eq(
        "failed-requests-not-counted",
        describe(4, "500"),
        describe(
            failed,
            answers
                .iter()
                .find(|w| !w.starts_with("200"))
                .map_or("nothing", |w| &w[..3]),
        ),
        "the article's errFunc answers 500 and tells no one: only a probe can take b out, and the next is a minute away, so every one of b's turns fails",
    );

    // Nothing left: the list is empty. b is up when the proxy starts and
    // stops once it answered: the probes start before the balancer is built
    // (as in the article), and a first round that took b out while the
    // factory was filling the balancer would race with it (the article's
    // round robin has no lock), leaving b in for good.
    let b_again = RunningServer::start(TcpListener::bind(b_addr).await?, Config::default())?;
    let go = healthcheck(
        f,
        &[&b_url],
        &["--check-interval", &interval, "--fail-threshold", "1"],
    )
    .await?;
    let polled = async {
        until_answers(go.addr(), a, b_addr, |seen| {
            seen.last().is_some_and(|w| w == "200 b")
        })
        .await?;
        b_again.shutdown().await?;
        until_answers(go.addr(), a, b_addr, |seen| {
            seen.last()
                .is_some_and(|w| !w.contains("dial tcp") && !w.ends_with(" b"))
        })
        .await
    }
    .await;
    go.shutdown().await?;
    let polled = polled?;
    let last = polled.last().cloned().unwrap_or_default();
    f.step(format!(
        "over b alone (--fail-threshold 1), b answered, then stopped: {}",
        polled.join(", ")
    ));
    f.claim_eq(
        "empty-list-500",
        "500 ErrorHandler error:unsupported protocol scheme \"\"",
        &last,
        "with no server left the balancer's Next returns \"\", url.Parse(\"\") is an empty URL, and the Transport refuses it: the article's errFunc answers 500",
    );

    // The consistent hash: Update takes its own lock twice.
    hash_hangs(f, &a_url).await
}

/// `labs/go/healthcheck --lb consistent-hash`: does it start within [`HANG`]?
async fn hash_hangs(f: &mut Findings, a_url: &str) -> anyhow::Result<()> {
    let Some(module) = f.go.clone() else {
        return Ok(());
    };
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--lb",
        "consistent-hash",
        "--upstream",
        a_url,
    ];
    // Built first, so that the time allowed is the program's alone.
    crate::golang::build::program(&module, "healthcheck").await?;
    let started =
        tokio::time::timeout(HANG, GoProgram::start(&module, "healthcheck", &args, 1)).await;
    let actual = match started {
        // Dropping the start kills the process.
        Err(_) => format!("no `listening on` within {} s", HANG.as_secs()),
        Ok(Ok(program)) => {
            let addr = program.addr();
            program.shutdown().await?;
            format!("listening on {addr}")
        }
        Ok(Err(err)) => format!("stopped: {err:#}"),
    };
    f.step(format!("labs/go/healthcheck {}: {actual}", args.join(" ")));
    f.claim_eq(
        "hash-update-deadlocks",
        format!("no `listening on` within {} s", HANG.as_secs()),
        actual,
        "LoadBanlanceFactorWithConf calls Update at once; ConsistentHashBanlance.Update holds c.mux and calls Add, which locks c.mux again: Go's mutexes are not reentrant, so it waits for itself forever",
    );
    Ok(())
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
    f.claim_lab_choice(
        "failed-requests-not-counted",
        "2 of 8 fail with 502",
        format!("{failed} of 8 fail with 502"),
        "lab proxy counts a request it could not deliver as a failed check (a passive health check, as nginx's max_fails does): b's second failure in a row takes it out, no probe needed",
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
    f.claim_lab_choice(
        "empty-list-500",
        "503, naming b and its last error",
        if exchange.status == 503 && body.contains(&b_url) {
            "503, naming b and its last error".to_string()
        } else {
            format!("{} {}", exchange.status.as_u16(), body.trim())
        },
        "lab proxy answers an empty set itself: 503 Service Unavailable, with each upstream and why it left; nothing is sent to the Transport",
    );
    all_down.shutdown().await?;
    passive.shutdown().await?;

    // The consistent hash over a health-checked set starts and answers.
    let hashed = RunningProxy::start(&[
        "--lb",
        "consistent-hash",
        "--upstream",
        &a_url,
        "--health-check",
        "/",
        "--health-interval",
        &interval,
    ])
    .await?;
    let answer = Probe::get("/abc").send(hashed.addr()).await;
    hashed.shutdown().await?;
    let answer = answer?;
    f.step(format!(
        "`lab proxy --lb consistent-hash --health-check / --upstream a`: {}",
        answer.status
    ));
    f.claim_lab_choice(
        "hash-update-deadlocks",
        "starts, and answers 200",
        format!("starts, and answers {}", answer.status.as_u16()),
        "lab proxy's observer builds a new balancer from each set and swaps it in (lab 17's membership): no lock is held while a ring is built, so the consistent hash works with health checks",
    );
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

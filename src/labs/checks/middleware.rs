//! Lab 18, middleware (中间件: 权限 auth, 限流 rate limiting, 熔断 circuit
//! breaking, 降级 degradation, 数据统计 statistics), each layer driven in the
//! order `src/middleware/chain.rs` applies them: a 401 without the bearer
//! token, which never reaches the upstream; a 5/s limit with burst 1 that
//! lets exactly one of ten immediate requests through, per client IP or for
//! everyone; a breaker that opens after N failures, passes the dead upstream
//! over, lets one trial through after the cool-down and fails fast when every
//! breaker is open; a fallback for the proxy's own errors only; statistics
//! that count exactly what was sent, in JSON and in Prometheus' text.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::BoxFuture;
use tokio::net::{TcpListener, TcpSocket};

use super::proxy_pages::{header, poll_page};
use super::{start_real_server, upstream_url as base};
use crate::lab_headers::{BREAKER_HEADER, LAYER_HEADER, UPSTREAM_HEADER};
use crate::labs::findings::Findings;
use crate::launch::RunningProxy;
use crate::middleware::stats::{METRICS_PATH, STATS_PATH, StatsSnapshot};
use crate::probe::{Exchange, Probe};
use crate::realserver::{Config, RunningServer};

/// The token of the auth section (`--auth-token`).
const TOKEN: &str = "s3cret";

/// The breaker's settings: open after this many failures in a row…
const BREAKER_FAILURES: u32 = 3;
/// …and wait this long before the one trial request.
const COOLDOWN: Duration = Duration::from_secs(1);
/// How long the trial request is held at b (its `/delay?ms=`), so that
/// another request for b arrives while the trial is out.
const TRIAL_HELD: Duration = Duration::from_millis(500);

/// How long the statistics may take to count the last exchange.
const GIVE_UP: Duration = Duration::from_secs(2);

/// The fallback of the degradation section.
const FALLBACK_BODY: &str = "degraded: try again later";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let mut lab = Started::default();
        let result = experiment(f, &mut lab).await;
        let stopped = lab.stop().await;
        result.and(stopped)
    })
}

/// Everything the experiment started, stopped by [`Started::stop`] whatever
/// the experiment returned.
#[derive(Default)]
struct Started {
    proxies: Vec<RunningProxy>,
    servers: Vec<RunningServer>,
}

impl Started {
    /// A real server on a free port, as `lab realserver` runs it.
    async fn serve(&mut self) -> anyhow::Result<SocketAddr> {
        start_real_server(&mut self.servers).await
    }

    /// A real server on `addr`, a port that was dead until now.
    async fn serve_on(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot start a real server on {addr} again"))?;
        self.servers
            .push(RunningServer::start(listener, Config::default())?);
        Ok(())
    }

    /// `lab proxy FLAGS` on a free port.
    async fn proxy(&mut self, flags: &[&str]) -> anyhow::Result<SocketAddr> {
        let proxy = RunningProxy::start(flags).await?;
        let addr = proxy.addr();
        self.proxies.push(proxy);
        Ok(addr)
    }

    /// `lab proxy --lb round-robin --upstream A --upstream B FLAGS` over the
    /// real servers (or dead ports) `a` and `b`, on a free port.
    async fn round_robin(
        &mut self,
        a: SocketAddr,
        b: SocketAddr,
        flags: &[&str],
    ) -> anyhow::Result<SocketAddr> {
        let (a, b) = (base(a), base(b));
        let mut all = vec!["--lb", "round-robin", "--upstream", &a, "--upstream", &b];
        all.extend_from_slice(flags);
        self.proxy(&all).await
    }

    /// Stops the proxies, then the servers; the first error is returned,
    /// after everything stopped.
    async fn stop(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for proxy in self.proxies {
            if let Err(err) = proxy.shutdown().await {
                first_error.get_or_insert(err);
            }
        }
        for server in self.servers {
            if let Err(err) = server.shutdown().await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
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

/// 权限: no token, 401; the right token passes and is not forwarded.
async fn auth(f: &mut Findings, lab: &mut Started, a: SocketAddr) -> anyhow::Result<()> {
    let p = lab
        .proxy(&["--upstream", &base(a), "--auth-token", TOKEN])
        .await?;
    f.step(format!(
        "`lab proxy --upstream {} --auth-token {TOKEN}` at {p}",
        base(a)
    ));

    let missing = Probe::get("/abc").send(p).await?;
    let wrong = Probe::get("/abc")
        .header("Authorization", "Bearer s3cre")
        .send(p)
        .await?;
    let refusal = |e: &Exchange| {
        format!(
            "{} {} ({}{})",
            e.status.as_u16(),
            header(e, "www-authenticate").unwrap_or("no WWW-Authenticate"),
            header(e, LAYER_HEADER.as_str()).unwrap_or("no layer"),
            if header(e, UPSTREAM_HEADER.as_str()).is_some() {
                ", an upstream was asked"
            } else {
                ", no upstream asked"
            }
        )
    };
    f.claim_eq(
        "auth-401-without-token",
        "no token: 401 Bearer realm=\"lab\" (auth, no upstream asked); \
         a wrong token: 401 Bearer realm=\"lab\", error=\"invalid_token\" (auth, no upstream asked)",
        format!(
            "no token: {}; a wrong token: {}",
            refusal(&missing),
            refusal(&wrong)
        ),
        "auth runs before the balancer: a refused request costs no upstream anything, \
         and the challenge says which scheme to use (RFC 6750 §3)",
    );

    let right = Probe::get("/abc")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Accept", "application/json")
        .send(p)
        .await?;
    let seen = match right.json_echo() {
        Ok(echo) => {
            let leaked: Vec<String> = echo
                .headers
                .iter()
                .filter(|(name, value)| {
                    name.eq_ignore_ascii_case("authorization") || value.contains(TOKEN)
                })
                .map(|(name, value)| format!("{name}: {value}"))
                .collect();
            if leaked.is_empty() {
                "no Authorization header, no token".to_string()
            } else {
                leaked.join(", ")
            }
        }
        Err(err) => format!("no echo ({err})"),
    };
    f.claim_eq(
        "token-never-forwarded",
        "200; the upstream saw no Authorization header, no token",
        format!("{}; the upstream saw {seen}", right.status.as_u16()),
        "the credential is the proxy's: it is removed before the request goes on, \
         so the upstream (and its logs) never see it",
    );
    Ok(())
}

/// 限流: 5/s for everyone with burst 1, then 1/min per client IP.
async fn rate_limit(f: &mut Findings, lab: &mut Started, a: SocketAddr) -> anyhow::Result<()> {
    let p = lab
        .proxy(&[
            "--upstream",
            &base(a),
            "--rate-limit",
            "5/s",
            "--rate-limit-by",
            "global",
        ])
        .await?;
    f.step(format!(
        "`lab proxy --upstream {} --rate-limit 5/s --rate-limit-by global` at {p}",
        base(a)
    ));
    let started = Instant::now();
    let mut answers = Vec::with_capacity(10);
    for _ in 0..10 {
        answers.push(Probe::get("/abc").send(p).await?);
    }
    let took = started.elapsed();
    let statuses: Vec<String> = answers
        .iter()
        .map(|e| e.status.as_u16().to_string())
        .collect();
    f.step(format!(
        "10 requests one after another, in {} ms: {}",
        took.as_millis(),
        statuses.join(" ")
    ));
    let passed = answers.iter().filter(|e| e.status == 200).count();
    f.observe(
        "passes-of-ten",
        passed,
        "burst 1: one request every 200 ms; the first finds the bucket full, \
         the other nine arrive within the same 200 ms",
    );
    let limited: Vec<&Exchange> = answers.iter().filter(|e| e.status == 429).collect();
    let retry_after: Vec<u64> = limited
        .iter()
        .filter_map(|e| header(e, "retry-after")?.parse().ok())
        .collect();
    let all_marked = limited
        .iter()
        .all(|e| header(e, LAYER_HEADER.as_str()) == Some("rate-limit"));
    let mut distinct = retry_after.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let actual = format!(
        "{passed} × 200, {} × 429{}; Retry-After on {} of them ({})",
        limited.len(),
        if all_marked {
            " (rate-limit)"
        } else {
            " (not all marked rate-limit)"
        },
        retry_after.len(),
        distinct
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    f.claim(
        "rate-limit-429-with-retry-after",
        passed == 1
            && limited.len() == 9
            && all_marked
            && retry_after.len() == 9
            && retry_after.iter().all(|&s| s >= 1),
        "1 × 200, 9 × 429 (rate-limit); Retry-After on 9 of them, each ≥ 1 s",
        actual,
        "GCRA with burst 1 lets one request through per 200 ms; Retry-After is the wait, \
         rounded up to whole seconds (RFC 9110 allows no fractions)",
    );

    let p = lab
        .proxy(&["--upstream", &base(a), "--rate-limit", "1/min"])
        .await?;
    f.step(format!(
        "`lab proxy --upstream {} --rate-limit 1/min` (per client IP, the default) at {p}",
        base(a)
    ));
    let mut seen = Vec::new();
    for source in [
        [127, 0, 0, 1],
        [127, 0, 0, 1],
        [127, 0, 0, 2],
        [127, 0, 0, 2],
    ] {
        let answer = get_from(source, p).await?;
        seen.push((source, answer));
    }
    let line = |source: [u8; 4]| {
        let statuses: Vec<String> = seen
            .iter()
            .filter(|(s, _)| *s == source)
            .map(|(_, e)| e.status.as_u16().to_string())
            .collect();
        format!(
            "{}: {}",
            std::net::Ipv4Addr::from(source),
            statuses.join(" ")
        )
    };
    f.claim_eq(
        "per-ip-buckets",
        "127.0.0.1: 200 429 · 127.0.0.2: 200 429",
        format!("{} · {}", line([127, 0, 0, 1]), line([127, 0, 0, 2])),
        "one bucket per client IP (the TCP peer; X-Forwarded-For only from a --trusted-proxy): \
         127.0.0.1 using up its allowance leaves 127.0.0.2's untouched",
    );
    Ok(())
}

/// 熔断: a and a dead b in turn; b's breaker opens, b is passed over, comes
/// back through one trial; then every breaker open.
async fn breaker(
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

/// 降级: the fallback replaces the proxy's own 502, not an upstream's 500.
async fn fallback(f: &mut Findings, lab: &mut Started, a: SocketAddr) -> anyhow::Result<()> {
    let dead = dead_port().await?;
    let p = lab
        .round_robin(
            a,
            dead,
            &["--fallback-status", "200", "--fallback-body", FALLBACK_BODY],
        )
        .await?;
    f.step(format!(
        "`lab proxy --lb round-robin --upstream {} --upstream {} --fallback-status 200 \
         --fallback-body '{FALLBACK_BODY}'` at {p}: a is live, nothing listens on {dead}",
        base(a),
        base(dead)
    ));
    // Round robin: the first goes to a (its /base/error answers 500), the
    // second to the dead upstream (the proxy's own 502).
    let own = Probe::get("/error").send(p).await?;
    let ours = Probe::get("/error").send(p).await?;
    let describe = |e: &Exchange| {
        format!(
            "{} \"{}\" ({}{})",
            e.status.as_u16(),
            e.text().trim_end(),
            header(e, LAYER_HEADER.as_str()).unwrap_or("the upstream's"),
            header(e, crate::lab_headers::DEGRADED_HEADER.as_str())
                .map(|s| format!(", degraded from {s}"))
                .unwrap_or_default()
        )
    };
    f.step(format!(
        "GET /error twice: a answered {}; the dead upstream's turn: {}",
        describe(&own),
        describe(&ours)
    ));
    f.observe(
        "own-500-replaced",
        if own.status == 500 && own.text() == "error handler" {
            "no"
        } else {
            "yes"
        },
        "the upstream answered: its 500 is the truth about the request, and the client gets it",
    );
    f.claim_eq(
        "fallback-for-proxy-errors-only",
        format!(
            "a's own: 500 \"error handler\" (the upstream's); \
             the proxy's own: 200 \"{FALLBACK_BODY}\" (fallback, degraded from 502)"
        ),
        format!(
            "a's own: {}; the proxy's own: {}",
            describe(&own),
            describe(&ours)
        ),
        "degradation replaces only the 502/503/504 the proxy makes itself \
         (upstream unreachable, nothing live, breakers open), never an upstream's answer",
    );
    Ok(())
}

/// 数据统计: a known mix, then `/_lab/stats` and `/_lab/metrics`.
async fn statistics(
    f: &mut Findings,
    lab: &mut Started,
    a: SocketAddr,
    b: SocketAddr,
) -> anyhow::Result<()> {
    let p = lab.round_robin(a, b, &["--auth-token", TOKEN]).await?;
    f.step(format!(
        "`lab proxy --lb round-robin --upstream {} --upstream {} --auth-token {TOKEN}` at {p}",
        base(a),
        base(b)
    ));
    let bearer = format!("Bearer {TOKEN}");
    for _ in 0..6 {
        Probe::get("/abc")
            .method(http::Method::POST)
            .header("Authorization", &bearer)
            .body(vec![b'x'; 100])
            .send(p)
            .await?;
    }
    for _ in 0..2 {
        Probe::get("/error")
            .header("Authorization", &bearer)
            .send(p)
            .await?;
    }
    for _ in 0..2 {
        Probe::get("/abc").send(p).await?;
    }
    f.step(
        "sent 6 POST /abc with 100-byte bodies and 2 GET /error with the token, \
         2 GET /abc without it",
    );

    // An exchange is counted when its body has gone: poll briefly.
    let (_, stats) = poll_stats(p, Duration::from_millis(10), |stats| {
        stats.overall.requests >= 10
    })
    .await?;
    let overall = &stats.overall;
    let layers: Vec<String> = overall
        .layers
        .iter()
        .map(|(layer, n)| format!("{layer} {n}"))
        .collect();
    let count = |url: String| stats.upstreams.get(&url).map_or(0, |c| c.requests);
    f.claim_eq(
        "stats-count-what-was-sent",
        "10 requests: 2xx 6 · 4xx 2 · 5xx 2; a 4 · b 4 · the proxy's own 2; \
         answered by auth 2 · upstream 8; 600 bytes in",
        format!(
            "{} requests: 2xx {} · 4xx {} · 5xx {}; a {} · b {} · the proxy's own {}; \
             answered by {}; {} bytes in",
            overall.requests,
            overall.status.success,
            overall.status.client_error,
            overall.status.server_error,
            count(base(a)),
            count(base(b)),
            stats.proxy.requests,
            layers.join(" · "),
            overall.bytes_in
        ),
        "every exchange is counted once, when its response body has gone: by upstream \
         (the 401s are the proxy's own), by status class and by the layer that answered",
    );

    let metrics = Probe::get(METRICS_PATH).send(p).await?;
    let text = metrics.text();
    let (total, classes) = requests_total(&text);
    let class = |name: &str| {
        classes
            .iter()
            .filter(|(c, _)| c == name)
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    f.claim_eq(
        "metrics-agree",
        "sum of lab_requests_total: 10 (2xx 6 · 4xx 2 · 5xx 2)",
        format!(
            "sum of lab_requests_total: {total} (2xx {} · 4xx {} · 5xx {})",
            class("2xx"),
            class("4xx"),
            class("5xx")
        ),
        "/_lab/metrics reads the same counters as /_lab/stats, in Prometheus' text format: \
         two views of one set of numbers",
    );
    Ok(())
}

/// A loopback port nothing listens on (bound, then released).
async fn dead_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    Ok(listener.local_addr()?)
}

/// A GET from a chosen loopback source address (127.0.0.2, …): another client.
async fn get_from(source: [u8; 4], proxy: SocketAddr) -> anyhow::Result<Exchange> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .with_context(|| format!("cannot send from {}", std::net::Ipv4Addr::from(source)))?;
    let stream = socket
        .connect(proxy)
        .await
        .with_context(|| format!("cannot connect to {proxy}"))?;
    Probe::get("/abc").send_on(stream, proxy).await
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

/// Polls `/_lab/stats` every `every` until `done` holds or [`GIVE_UP`]
/// passes: how long it took and the last statistics read.
async fn poll_stats(
    proxy: SocketAddr,
    every: Duration,
    done: impl Fn(&StatsSnapshot) -> bool,
) -> anyhow::Result<(Duration, StatsSnapshot)> {
    poll_page(
        proxy,
        STATS_PATH,
        "the statistics JSON",
        every,
        GIVE_UP,
        done,
    )
    .await
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

/// The `lab_requests_total` samples of a Prometheus text page: their sum, and
/// each sample's `class` label with its value. Read simply, line by line:
/// `lab_requests_total{upstream="…",class="2xx"} 6`.
fn requests_total(text: &str) -> (f64, Vec<(String, f64)>) {
    let samples: Vec<(String, f64)> = text
        .lines()
        .filter_map(|line| {
            let labels = line.strip_prefix("lab_requests_total{")?;
            let (labels, value) = labels.rsplit_once("} ")?;
            let class = labels
                .split(',')
                .find_map(|label| label.strip_prefix("class=\""))?
                .trim_end_matches('"');
            Some((class.to_string(), value.trim().parse().ok()?))
        })
        .collect();
    (samples.iter().map(|(_, v)| v).sum(), samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_requests_total_samples() {
        let text = "# HELP lab_requests_total Requests.\n\
            # TYPE lab_requests_total counter\n\
            lab_requests_total{upstream=\"http://127.0.0.1:1/base\",class=\"2xx\"} 6\n\
            lab_requests_total{upstream=\"(proxy)\",class=\"4xx\"} 2\n\
            lab_requests_total_other{class=\"2xx\"} 9\n\
            lab_bytes_total{upstream=\"(proxy)\",direction=\"in\"} 100\n";
        let (total, classes) = requests_total(text);
        assert_eq!(total, 8.0);
        assert_eq!(
            classes,
            [("2xx".to_string(), 6.0), ("4xx".to_string(), 2.0)]
        );
    }
}

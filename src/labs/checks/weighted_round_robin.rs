//! Lab 14, weighted round robin (加权负载均衡): nginx's smooth weighted round
//! robin over three real servers with weights 5, 1, 1, read from the real
//! proxy's X-Lab-Pick (currentWeight, effectiveWeight, totalWeight); then a
//! failed request drops the upstream's effectiveWeight to 0 and each pick
//! earns one back.
//!
//! The same requests go through the article's balancer in Go
//! (`labs/go/balancer --lb weighted-round-robin`): the same smooth sequence;
//! its ErrorHandler answers the failure 500 and, as its `//todo` says,
//! tells the balancer nothing, so the failed upstream keeps its full
//! weight.

use std::net::SocketAddr;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::StatusCode;

use super::balancing::{self, Answer, Upstreams, letter, letters, nodes_of};
use super::servers::{start_real_servers, stop_real_servers};
use crate::balance::{Balancer, Explanation, PickInput, WeightedBalancer, smooth_wrr_sequence};
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;
use crate::realserver::{Config, RunningServer};

/// nginx's example weights: a=5, b=1, c=1.
const WEIGHTS: [u32; 3] = [5, 1, 1];
/// Two full cycles of 5 + 1 + 1.
const PICKS: usize = 14;
/// Picks watched after the failure: a climbs 0 → 5 and stays.
const RECOVERY: usize = 7;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let mut servers = start_real_servers(f, 3).await?;
        let experiment = experiment(f, &mut servers).await;
        stop_real_servers(servers, experiment).await
    }
    .boxed()
}

async fn experiment(f: &mut Findings, servers: &mut Vec<RunningServer>) -> anyhow::Result<()> {
    let addrs: Vec<_> = servers.iter().map(RunningServer::addr).collect();
    let upstreams = Upstreams::of(&addrs)?;
    f.step(format!("upstreams: {}", upstreams.legend()));
    if f.lab {
        f.measure_on(Subject::Lab);
        through_lab(f, servers, &upstreams).await?;
    } else {
        answer_from_the_balancer(f, &upstreams)?;
    }
    if f.go.is_none() {
        // The article's code, modelled: nothing ever lowers effectiveWeight.
        let (_, article) = after_failure(&upstreams, 0)?;
        f.observe(
            "article-request-16",
            letter(article[0]),
            "Go did not run; the article's code modelled (no failure lowers effectiveWeight): pick 16 goes on with the third cycle, a a b a c a a, at its second place",
        );
    }
    if let Some(go) =
        balancing::go_balancer(f, "weighted-round-robin", &upstreams, &WEIGHTS, &[]).await?
    {
        f.measure_on(Subject::Go);
        let result = the_articles(f, servers, &upstreams, go.addr()).await;
        go.shutdown().await?;
        f.measure_on(Subject::Lab);
        result?;
    }
    Ok(())
}

/// Picks 16–22 of a balancer with weights 5, 1, 1 whose first pick 15 (a)
/// failed and was reported, for nginx's `max_fails` (0: the report changes
/// nothing, as in the article's code): a's effectiveWeight at each pick and
/// the upstreams chosen.
fn after_failure(upstreams: &Upstreams, max_fails: u32) -> anyhow::Result<(Vec<i64>, Vec<usize>)> {
    let balancer = WeightedBalancer::with_max_fails(upstreams.nodes(&WEIGHTS)?, max_fails);
    for _ in 0..PICKS + 1 {
        balancer.pick(&PickInput::default());
    }
    balancer.report_failure(0);
    let mut effective = Vec::new();
    let mut chosen = Vec::new();
    for _ in 0..RECOVERY {
        let input = PickInput {
            key: None,
            explain: true,
        };
        let Some(pick) = balancer.pick(&input) else {
            anyhow::bail!("the weighted balancer chose nothing");
        };
        if let Some(Explanation::Weighted { before, .. }) = &pick.explanation {
            effective.push(before[0].effective);
        }
        chosen.push(pick.index);
    }
    Ok((effective, chosen))
}

/// When `lab proxy` does not run (`--impl go`), the questions about it are
/// answered by its balancer, `WeightedBalancer`, the code `lab proxy` runs.
fn answer_from_the_balancer(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let key = smooth_wrr_sequence(&WEIGHTS, PICKS);
    let pick4: Vec<String> = key[3]
        .before
        .iter()
        .map(|s| s.current.to_string())
        .collect();
    f.observe(
        "pick4-currents",
        pick4.join(","),
        "lab proxy did not run (--impl go); the table computed by its balancer: after pick 3 the currentWeights are 1,-4,3, step a adds 5,1,1: 6,-3,4",
    );
    let (effective, chosen) = after_failure(upstreams, 1)?;
    f.observe(
        "effective-after-failure",
        effective[0],
        "lab proxy did not run (--impl go); its balancer, nginx's rule with max_fails 1: 5 - 5/1 = 0",
    );
    f.observe(
        "picks-before-a-returns",
        chosen.iter().take_while(|&&n| n != 0).count(),
        format!(
            "lab proxy did not run (--impl go); its balancer after the failure: {}",
            letters(&chosen)
        ),
    );
    Ok(())
}

/// The experiment through `lab proxy`.
async fn through_lab(
    f: &mut Findings,
    servers: &mut Vec<RunningServer>,
    upstreams: &Upstreams,
) -> anyhow::Result<()> {
    let mut flags = vec!["--lb".to_string(), "wrr".to_string()];
    flags.extend(upstreams.flags(&WEIGHTS));
    let proxy = balancing::proxy(&flags).await?;
    f.step(format!(
        "started `lab proxy --lb wrr --upstream a,5 --upstream b,1 --upstream c,1` on {}",
        proxy.addr()
    ));
    let result = async {
        let cycle = balancing::send_many(proxy.addr(), upstreams, PICKS, true).await?;
        table(f, &cycle)?;
        failure(f, servers, upstreams, proxy.addr()).await
    }
    .await;
    proxy.shutdown().await?;
    result
}

/// The currents of a `before`/`after` list, `6,-3,4`.
fn currents(row: &[(i64, i64)]) -> String {
    row.iter()
        .map(|(_, current)| current.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The effectives of a list, `0,1,1`.
fn effectives(row: &[(i64, i64)]) -> String {
    row.iter()
        .map(|(effective, _)| effective.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Two cycles, held against the article's table (computed by
/// `smooth_wrr_sequence`, the answer key for a table filled in by hand).
fn table(f: &mut Findings, cycle: &[Answer]) -> anyhow::Result<()> {
    let nodes = nodes_of(cycle);
    let key = smooth_wrr_sequence(&WEIGHTS, PICKS);

    let mut rows = Vec::new();
    let mut totals = Vec::new();
    let mut mismatch = None;
    for (i, (answer, expected)) in cycle.iter().zip(&key).enumerate() {
        let before = answer.weights("before")?;
        let after = answer.weights("after")?;
        let total = answer.field("total")?.as_i64().unwrap_or(-1);
        totals.push(total);
        let want_before: Vec<(i64, i64)> = expected
            .before
            .iter()
            .map(|s| (s.effective, s.current))
            .collect();
        let want_after: Vec<(i64, i64)> = expected
            .after
            .iter()
            .map(|s| (s.effective, s.current))
            .collect();
        if mismatch.is_none()
            && (before != want_before
                || after != want_after
                || answer.node != expected.chosen
                || total != expected.total)
        {
            mismatch = Some(format!(
                "pick {}: {} → {} → {} (expected {} → {} → {})",
                i + 1,
                currents(&before),
                letter(answer.node),
                currents(&after),
                currents(&want_before),
                letter(expected.chosen),
                currents(&want_after)
            ));
        }
        if i < 7 {
            rows.push(format!(
                "{}: [{}] → {} → [{}]",
                i + 1,
                currents(&before),
                letter(answer.node),
                currents(&after)
            ));
        }
    }
    f.step(format!(
        "{PICKS} requests → {}; X-Lab-Pick, currentWeight after step a → chosen → after step c: {}",
        letters(&nodes),
        rows.join(" · ")
    ));

    smooth(f, &nodes);

    f.claim_eq(
        "table-matches",
        format!("all {PICKS} rows as computed by hand"),
        match &mismatch {
            None => format!("all {PICKS} rows as computed by hand"),
            Some(row) => row.clone(),
        },
        "each X-Lab-Pick is one row of the article's table: currentWeight += effectiveWeight, the largest is chosen, it loses totalWeight",
    );
    let pick4 = cycle[3].weights("before")?;
    f.observe(
        "pick4-currents",
        currents(&pick4),
        "after pick 3 the currentWeights are 1,-4,3; step a adds 5,1,1: 6,-3,4, and a (6) wins",
    );
    let sevens: Vec<String> = totals.iter().map(i64::to_string).collect();
    f.claim_eq(
        "total-is-seven",
        vec!["7"; PICKS].join(" "),
        sevens.join(" "),
        "totalWeight is the sum of effectiveWeights, 5 + 1 + 1, while every upstream answers",
    );
    let seventh = cycle[6].weights("after")?;
    f.claim_eq(
        "cycle-returns-to-zero",
        "after pick 7: 0,0,0; picks 8–14: a a b a c a a",
        format!(
            "after pick 7: {}; picks 8–14: {}",
            currents(&seventh),
            letters(&nodes[7..])
        ),
        "each pick adds totalWeight in step a and takes it away in step c, so after 7 picks the currentWeights are back at 0 and the cycle repeats",
    );
    Ok(())
}

/// The first seven picks: the smooth sequence, through either proxy.
fn smooth(f: &mut Findings, nodes: &[usize]) {
    f.claim_eq(
        "smooth-sequence",
        "a a b a c a a",
        letters(&nodes[..7]),
        "the largest currentWeight wins and pays totalWeight 7: a five times in seven, b and c spread between, not a a a a a b c",
    );
    f.observe(
        "next-seven",
        letters(&nodes[..7]),
        "currentWeights (after step a) 5,1,1 → a · 3,2,2 → a · 1,3,3 → b · 6,-3,4 → a · 4,-2,5 → c · 9,-1,-1 → a · 7,0,0 → a",
    );
}

/// Stops a's real server (the first of `servers`) and sends request 15
/// through `proxy`; then starts a again on its port at once.
async fn fail_once(
    f: &mut Findings,
    servers: &mut Vec<RunningServer>,
    upstreams: &Upstreams,
    proxy: SocketAddr,
) -> anyhow::Result<Answer> {
    let a_addr = servers[0].addr();
    servers.remove(0).shutdown().await?;
    f.step(format!("stopped a's real server ({a_addr})"));
    // Pick 15 starts the third cycle: a.
    let explain = f.subject() == Subject::Lab;
    let failed = balancing::send(proxy, upstreams, Probe::get("/abc"), explain).await;
    // The server comes straight back on the same port; the balancer is not told.
    let listener = crate::net::bind(a_addr, "--addr").await?;
    servers.insert(0, RunningServer::start(listener, Config::default())?);
    let failed = failed?;
    f.step(format!(
        "request 15 → {} → {}{}; restarted a's real server on {a_addr}",
        letter(failed.node),
        failed.status,
        match failed.body.trim() {
            "" => String::new(),
            body => format!(" {body:?}"),
        }
    ));
    Ok(failed)
}

/// The article's balancer in Go at `proxy`: two cycles, a failure of a, and
/// the seven picks after it.
async fn the_articles(
    f: &mut Findings,
    servers: &mut Vec<RunningServer>,
    upstreams: &Upstreams,
    proxy: SocketAddr,
) -> anyhow::Result<()> {
    let cycle = balancing::send_many(proxy, upstreams, PICKS, false).await?;
    let nodes = nodes_of(&cycle);
    f.step(format!("{PICKS} requests → {}", letters(&nodes)));
    smooth(f, &nodes);

    let failed = fail_once(f, servers, upstreams, proxy).await?;
    let dial_error = failed.body.starts_with("ErrorHandler error:dial tcp ");
    f.claim_eq(
        "down-upstream-fails",
        format!(
            "a → {}, ErrorHandler error:dial tcp …",
            StatusCode::INTERNAL_SERVER_ERROR
        ),
        format!(
            "{} → {}, {}",
            letter(failed.node),
            failed.status,
            if dial_error {
                "ErrorHandler error:dial tcp …".to_string()
            } else {
                format!("{:?}", failed.body.trim())
            }
        ),
        "the third cycle starts with a, whose server is gone: the Transport cannot connect, and the article's errFunc answers http.Error(w, \"ErrorHandler error:\"+err.Error(), 500)",
    );

    let after = balancing::send_many(proxy, upstreams, RECOVERY, false).await?;
    let nodes = nodes_of(&after);
    let statuses: Vec<u16> = after.iter().map(|a| a.status.as_u16()).collect();
    f.step(format!(
        "requests 16–{}: {} ({})",
        15 + RECOVERY,
        letters(&nodes),
        statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let (_, article) = after_failure(upstreams, 0)?;
    f.claim_eq(
        "article-keeps-full-weight",
        format!("{}, all 200", letters(&article)),
        format!(
            "{}, {}",
            letters(&nodes),
            if statuses.iter().all(|&s| s == 200) {
                "all 200".to_string()
            } else {
                format!(
                    "statuses {}",
                    statuses
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        ),
        "nothing in the article's code lowers effectiveWeight (the ErrorHandler's todo, 调整临时权重, is never done): the third cycle a a b a c a a goes on as if request 15 had not failed",
    );
    f.observe(
        "article-request-16",
        letter(nodes[0]),
        "the article's balancer never hears of the failure: request 16 is the second pick of the third cycle, a a b a c a a",
    );
    Ok(())
}

/// a goes down: one 502, effectiveWeight 0, then one back per pick.
async fn failure(
    f: &mut Findings,
    servers: &mut Vec<RunningServer>,
    upstreams: &Upstreams,
    proxy: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let failed = fail_once(f, servers, upstreams, proxy).await?;
    f.claim_lab_choice(
        "down-upstream-fails",
        format!("a → {}", StatusCode::BAD_GATEWAY),
        format!("{} → {}", letter(failed.node), failed.status),
        "lab proxy answers an upstream it cannot reach as Go's default ErrorHandler does, 502 Bad Gateway (lab 07), and tells the balancer first; the article's errFunc answers 500",
    );

    let after = balancing::send_many(proxy, upstreams, RECOVERY, true).await?;
    let mut climb = Vec::new();
    let mut rows = Vec::new();
    for answer in &after {
        let before = answer.weights("before")?;
        climb.push(before[0].0.to_string());
        rows.push(format!(
            "effective [{}] current [{}] → {} ({})",
            effectives(&before),
            currents(&before),
            letter(answer.node),
            answer.status.as_u16()
        ));
    }
    f.step(format!(
        "requests 16–{}: {}",
        15 + RECOVERY,
        rows.join(" · ")
    ));

    f.claim_eq(
        "failure-drops-effective-to-0",
        "a's effectiveWeight 0 of 5",
        format!("a's effectiveWeight {} of 5", climb[0]),
        "one failure with max_fails 1 (nginx's default): effective -= weight / max_fails, 5 - 5 = 0, so a adds nothing to its currentWeight",
    );
    f.observe(
        "effective-after-failure",
        &climb[0],
        "5 - 5/1 = 0: lab proxy follows nginx's rule with max_fails 1, so one failure takes all of a's weight away. The article's text (effectiveWeight = weight − 1, nginx with max_fails = weight) would give 4, and its code, which never lowers it, 5",
    );
    f.claim_eq(
        "effective-climbs-back",
        "0 1 2 3 4 5 5",
        climb.join(" "),
        "every pick, an effectiveWeight below its weight grows by one (the article's 通讯成功+1，直到恢复到weight大小), whoever is chosen",
    );
    let nodes = nodes_of(&after);
    let away = nodes.iter().take_while(|&&n| n != 0).count();
    f.observe(
        "picks-before-a-returns",
        away,
        format!(
            "{}: with effectiveWeights 0,1,1 · 1,1,1 · 2,1,1 a cannot outscore b and c; at 3,1,1 its currentWeight 4 wins",
            letters(&nodes)
        ),
    );
    f.claim_lab_choice(
        "article-keeps-full-weight",
        "b c b a a c a, all 200",
        format!(
            "{}, {}",
            letters(&nodes),
            if after.iter().all(|a| a.status == StatusCode::OK) {
                "all 200"
            } else {
                "not all 200"
            }
        ),
        "lab proxy does what the article's text describes and its code leaves as a todo: the failure lowers a's effectiveWeight (by weight / max_fails, nginx's rule, max_fails 1), and a wins its turns back pick by pick",
    );
    let statuses: Vec<String> = after
        .iter()
        .map(|a| a.status.as_u16().to_string())
        .collect();
    f.claim_eq(
        "recovered-upstream-serves",
        format!("a chosen after 3 picks, all {RECOVERY} answered 200"),
        format!(
            "a chosen after {away} picks, {}",
            if statuses.iter().all(|s| s == "200") {
                format!("all {RECOVERY} answered 200")
            } else {
                format!("statuses {}", statuses.join(" "))
            }
        ),
        "a comes back at effectiveWeight 3, less often than its weight, and gains trust pick by pick: a passive health check",
    );
    Ok(())
}

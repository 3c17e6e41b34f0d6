//! Lab 16, choosing a balancer (the article's `LoadBanlanceFactory`): the
//! same 12 requests from one client through each `--lb` over the article's
//! upstreams (weights 10 and 20), the aliases, the default, and a name the
//! factory does not know.
//!
//! The same 12 requests go through the article's `main.go` in Go
//! (`labs/go/balancer --lb …`, and without `--lb`): random, round robin and
//! weighted as in `lab proxy`; its consistent hash keys on `RemoteAddr`, so
//! the 12 connections are 12 keys, where `lab proxy` hashes the client's IP.

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;

use super::balancing::{
    self, Answer, Upstreams, counts, letter, letters, nodes_of, plural, show_counts,
};
use super::servers::with_real_servers;
use crate::balance::{
    Balancer, ConsistentHashBalancer, DEFAULT_REPLICAS, PickInput, RandomBalancer, RingPoints,
};
use crate::cli::launch::RunningProxy;
use crate::labs::findings::{Findings, Subject};

/// The article's `main()`: `rb.Add(":2003/base", "10")`, `rb.Add(":2004/base", "20")`.
const WEIGHTS: [u32; 2] = [10, 20];
const REQUESTS: usize = 12;
/// Picks drawn straight from the random balancer for its long-run split.
const LONG_RUN: usize = 10_000;
/// Requests through the Go balancer for its random split: 40%–60% is over
/// six standard deviations either side of 50%.
const GO_LONG_RUN: usize = 1_000;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 2, |f, servers| async move {
        let upstreams = Upstreams::of(&servers)?;
        f.step(format!(
            "upstreams: {}; weights 10 and 20 as in the article's main()",
            upstreams.legend()
        ));
        if f.lab {
            f.measure_on(Subject::Lab);
            experiment(f, &upstreams).await?;
        } else {
            f.observe(
                "hash-upstreams",
                1,
                "lab proxy did not run (--impl go); by its default key, remote-ip, the 12 requests are one key, 127.0.0.1: one upstream",
            );
        }
        if f.go.is_some() {
            f.measure_on(Subject::Go);
            let result = the_articles(f, &upstreams).await;
            f.measure_on(Subject::Lab);
            result?;
        }
        Ok(())
    })
}

/// The 12 requests through the article's `main.go` in Go, `--lb LB` (none:
/// the article's own choice), each on a new connection; `None` when Go
/// does not run. With `long_run`, that many more requests after the 12.
async fn go_twelve(
    f: &mut Findings,
    upstreams: &Upstreams,
    lb: Option<&str>,
    long_run: usize,
) -> anyhow::Result<Option<Vec<Answer>>> {
    let mut args: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into()];
    if let Some(lb) = lb {
        args.extend(["--lb".to_string(), lb.to_string()]);
    }
    args.extend(upstreams.flags(&WEIGHTS));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(go) = f.start_go("balancer", &args).await? else {
        return Ok(None);
    };
    let answers = balancing::send_many(go.addr(), upstreams, REQUESTS + long_run, false).await;
    go.shutdown().await?;
    let answers = answers?;
    let nodes = nodes_of(&answers[..REQUESTS]);
    f.step(format!(
        "{}: {REQUESTS} requests → {} ({})",
        match lb {
            Some(lb) => format!("--lb {lb}"),
            None => "no --lb".to_string(),
        },
        letters(&nodes),
        show_counts(&counts(&nodes, 2))
    ));
    Ok(Some(answers))
}

/// The factory's four types and its default, through the article's
/// balancer in Go.
async fn the_articles(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let Some(random) = go_twelve(f, upstreams, Some("random"), GO_LONG_RUN).await? else {
        return Ok(());
    };
    let long_run = counts(&nodes_of(&random), 2);
    let total = REQUESTS + GO_LONG_RUN;
    let share = long_run[1] as f64 / total as f64;
    f.step(format!(
        "--lb random, all {total} requests: {}",
        show_counts(&long_run)
    ));
    f.claim(
        "random-ignores-weights",
        (0.40..=0.60).contains(&share),
        format!("b's share 40%–60% of {total} requests, not the 67% weight 20 of 30 asks for"),
        format!("b's share {:.1}% ({})", share * 100.0, show_counts(&long_run)),
        "RandomBalance.Add drops the weight and Next is rand.Intn(2): in the long run each upstream gets half",
    );

    if let Some(round_robin) = go_twelve(f, upstreams, Some("round-robin"), 0).await? {
        round_robin_claims(f, &nodes_of(&round_robin));
    }
    if let Some(weighted) = go_twelve(f, upstreams, Some("weighted-round-robin"), 0).await? {
        weighted_claims(f, &nodes_of(&weighted));
    }
    if let Some(hashed) = go_twelve(f, upstreams, Some("consistent-hash"), 0).await? {
        let ring = ConsistentHashBalancer::with_points(
            upstreams.nodes(&[1, 1])?,
            DEFAULT_REPLICAS,
            RingPoints::Article,
        );
        let keys: BTreeSet<String> = hashed.iter().map(|a| a.local.to_string()).collect();
        let wrong = hashed.iter().enumerate().find_map(|(i, answer)| {
            let key = answer.local.to_string();
            let owner = ring
                .pick(&PickInput {
                    key: Some(&key),
                    explain: false,
                })?
                .index;
            (owner != answer.node).then(|| {
                format!(
                    "request {}: key {key} → {}, the ring says {}",
                    i + 1,
                    letter(answer.node),
                    letter(owner)
                )
            })
        });
        let expected = format!(
            "{REQUESTS} keys, one per connection (127.0.0.1:PORT), each request on its key's upstream"
        );
        f.claim_eq(
            "hash-key-per-connection",
            &expected,
            match wrong {
                None if keys.len() == REQUESTS => expected.clone(),
                None => format!("{} keys for {REQUESTS} connections", keys.len()),
                Some(wrong) => wrong,
            },
            "the Director calls lb.Get(req.RemoteAddr): each new connection has its own port, so its own key and its own place on the article's ring (10 points per upstream)",
        );
    }
    if let Some(default) = go_twelve(f, upstreams, None, 0).await? {
        let nodes = nodes_of(&default);
        let alternation: Vec<usize> = (0..REQUESTS).map(|i| i % 2).collect();
        f.claim_eq(
            "default-is-round-robin",
            "round-robin",
            if nodes == alternation {
                "round-robin".to_string()
            } else {
                format!("not round robin: {}", letters(&nodes))
            },
            "the article's main() builds LoadBanlanceFactory(loadBalance.LbRoundRobin): a b a b …",
        );
    }
    Ok(())
}

/// Round robin's 12, through either proxy.
fn round_robin_claims(f: &mut Findings, nodes: &[usize]) {
    let split = counts(nodes, 2);
    f.claim_eq(
        "round-robin-ignores-weights",
        show_counts(&[6, 6]),
        show_counts(&split),
        "each in turn, whatever the weights: 12 / 2",
    );
    f.observe(
        "round-robin-b",
        split[1],
        "a b a b …: six each; weight 20 buys b nothing",
    );
}

/// Weighted round robin's 12, through either proxy.
fn weighted_claims(f: &mut Findings, nodes: &[usize]) {
    let split = counts(nodes, 2);
    f.claim_eq(
        "weighted-follows-weights",
        format!(
            "{} ({})",
            letters(&[1, 0, 1].repeat(4)),
            show_counts(&[4, 8])
        ),
        format!("{} ({})", letters(nodes), show_counts(&split)),
        "smooth WRR with 10 and 20 repeats b a b: 1 : 2, the ratio of the weights, spread out",
    );
    f.observe(
        "weighted-b",
        split[1],
        "weight 20 of 30: two requests in three, 8 of 12",
    );
}

/// Sends the 12 requests through `lab proxy --lb LB --seed S` (plus the
/// article's upstreams) and returns the upstreams chosen, the algorithm
/// X-Lab-Pick names and the keys it hashed (consistent hash only).
async fn twelve(
    f: &mut Findings,
    upstreams: &Upstreams,
    lb: Option<&str>,
) -> anyhow::Result<(Vec<usize>, String, BTreeSet<String>)> {
    let mut flags = Vec::new();
    if let Some(lb) = lb {
        flags.extend(["--lb".to_string(), lb.to_string()]);
    }
    flags.extend(["--seed".to_string(), f.seed.to_string()]);
    flags.extend(upstreams.flags(&WEIGHTS));
    let proxy = balancing::proxy(&flags).await?;
    let answers = balancing::send_many(proxy.addr(), upstreams, REQUESTS, true).await;
    proxy.shutdown().await?;
    let answers = answers?;
    let algorithm = answers[0]
        .field("algorithm")?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let keys: BTreeSet<String> = answers
        .iter()
        .filter_map(|a| a.field("key").ok()?.as_str().map(str::to_string))
        .collect();
    let nodes = nodes_of(&answers);
    f.step(format!(
        "`lab proxy {}` (X-Lab-Pick: {algorithm}): {REQUESTS} requests → {} ({})",
        match lb {
            Some(lb) => format!("--lb {lb}"),
            None => "(no --lb)".to_string(),
        },
        letters(&nodes),
        show_counts(&counts(&nodes, 2))
    ));
    Ok((nodes, algorithm, keys))
}

async fn experiment(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let seed = f.seed;

    let (random, _, _) = twelve(f, upstreams, Some("random")).await?;
    let balancer = RandomBalancer::new(upstreams.nodes(&WEIGHTS)?, seed);
    let predicted: Vec<usize> = (0..LONG_RUN)
        .filter_map(|_| balancer.pick(&PickInput::default()).map(|p| p.index))
        .collect();
    f.claim_eq(
        "random-follows-its-seed",
        letters(&predicted[..REQUESTS]),
        letters(&random),
        format!("seed {seed}: the proxy's picks are RandomBalancer's, drawn before any request"),
    );
    let long_run = counts(&predicted, 2);
    let share = long_run[1] as f64 / LONG_RUN as f64;
    f.claim(
        "random-ignores-weights",
        (0.45..=0.55).contains(&share),
        "b's share 45%–55%, not the 67% weight 20 of 30 asks for",
        format!(
            "b's share {:.1}% ({} over {LONG_RUN} picks)",
            share * 100.0,
            show_counts(&long_run)
        ),
        "RandomBalance never reads a weight: in the long run each upstream gets 1/n",
    );

    let (round_robin, _, _) = twelve(f, upstreams, Some("round-robin")).await?;
    round_robin_claims(f, &round_robin);

    let (weighted, _, _) = twelve(f, upstreams, Some("weighted")).await?;
    weighted_claims(f, &weighted);

    let (hashed, _, keys) = twelve(f, upstreams, Some("consistent-hash")).await?;
    let distinct: BTreeSet<usize> = hashed.iter().copied().collect();
    f.claim_eq(
        "hash-sticks-to-one",
        "1 upstream for 12 requests",
        format!("{} for 12 requests", plural(distinct.len(), "upstream")),
        "one client, one key (its IP, 127.0.0.1, by default): every request goes where the key lands on the ring",
    );
    f.observe(
        "hash-upstreams",
        distinct.len(),
        "--hash-key remote-ip (the default) hashes 127.0.0.1 each time, whatever the port",
    );
    f.claim_lab_choice(
        "hash-key-per-connection",
        "1 key (127.0.0.1) for the 12 connections: 1 upstream",
        format!(
            "{} ({}) for the 12 connections: {}",
            plural(keys.len(), "key"),
            keys.iter().cloned().collect::<Vec<_>>().join(", "),
            plural(distinct.len(), "upstream")
        ),
        "lab proxy's default --hash-key is remote-ip, the client's IP without the port (nginx's ip_hash): one client sticks to one upstream across connections; --hash-key remote-addr is the article's key (lab 15)",
    );

    // The aliases and the default.
    let mut named = Vec::new();
    for alias in ["rr", "wrr", "hash"] {
        let (_, algorithm, _) = twelve(f, upstreams, Some(alias)).await?;
        named.push(format!("{alias} → {algorithm}"));
    }
    f.claim_eq(
        "aliases-accepted",
        "rr → round-robin, wrr → weighted, hash → consistent-hash",
        named.join(", "),
        "short names for the factory's LbRoundRobin, LbWeightRoundRobin, LbConsistentHash",
    );
    let (_, default, _) = twelve(f, upstreams, None).await?;
    f.claim_eq(
        "default-is-round-robin",
        "round-robin",
        &default,
        "the article's main() builds LoadBanlanceFactory(loadBalance.LbRoundRobin); so does `lab proxy` without --lb",
    );

    // A name the factory does not know.
    let unknown = RunningProxy::start(&["--lb", "fastest"]).await;
    let refused = match unknown {
        Ok(proxy) => {
            proxy.shutdown().await?;
            "started".to_string()
        }
        Err(err) => {
            let text = format!("{err:#}");
            if text.contains("possible values") {
                "refused, listing the possible values".to_string()
            } else {
                format!("refused: {text}")
            }
        }
    };
    f.step(format!("`lab proxy --lb fastest`: {refused}"));
    f.claim_eq(
        "unknown-lb-refused",
        "refused, listing the possible values",
        &refused,
        "the article's factory falls through `default:` to RandomBalance, so a typo silently changes the algorithm; here it is an error at start",
    );
    Ok(())
}

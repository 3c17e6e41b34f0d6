//! Lab 15, choosing a balancer (the article's `LoadBanlanceFactory`): the
//! same 12 requests from one client through each `--lb` over the article's
//! upstreams (weights 10 and 20), the aliases, the default, and a name the
//! factory does not know.

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;

use super::balancing::{self, Upstreams, counts, letters, nodes_of, plural, show_counts};
use super::servers::with_real_servers;
use crate::balance::{Balancer, PickInput, RandomBalancer};
use crate::cli::launch::RunningProxy;
use crate::labs::findings::Findings;

/// The article's `main()`: `rb.Add(":2003/base", "10")`, `rb.Add(":2004/base", "20")`.
const WEIGHTS: [u32; 2] = [10, 20];
const REQUESTS: usize = 12;
/// Picks drawn straight from the random balancer for its long-run split.
const LONG_RUN: usize = 10_000;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 2, |f, servers| async move {
        experiment(f, &Upstreams::of(&servers)?).await
    })
}

/// Sends the 12 requests through `lab proxy --lb LB --seed S` (plus the
/// article's upstreams) and returns the upstreams chosen and the algorithm
/// X-Lab-Pick names.
async fn twelve(
    f: &mut Findings,
    upstreams: &Upstreams,
    lb: Option<&str>,
) -> anyhow::Result<(Vec<usize>, String)> {
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
    Ok((nodes, algorithm))
}

async fn experiment(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    f.step(format!(
        "upstreams: {}; weights 10 and 20 as in the article's main()",
        upstreams.legend()
    ));
    let seed = f.seed;

    let (random, _) = twelve(f, upstreams, Some("random")).await?;
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

    let (round_robin, _) = twelve(f, upstreams, Some("round-robin")).await?;
    let split = counts(&round_robin, 2);
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

    let (weighted, _) = twelve(f, upstreams, Some("weighted")).await?;
    let split = counts(&weighted, 2);
    f.claim_eq(
        "weighted-follows-weights",
        format!(
            "{} ({})",
            letters(&[1, 0, 1].repeat(4)),
            show_counts(&[4, 8])
        ),
        format!("{} ({})", letters(&weighted), show_counts(&split)),
        "smooth WRR with 10 and 20 repeats b a b: 1 : 2, the ratio of the weights, spread out",
    );
    f.observe(
        "weighted-b",
        split[1],
        "weight 20 of 30: two requests in three, 8 of 12",
    );

    let (hashed, _) = twelve(f, upstreams, Some("consistent-hash")).await?;
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

    // The aliases and the default.
    let mut named = Vec::new();
    for alias in ["rr", "wrr", "hash"] {
        let (_, algorithm) = twelve(f, upstreams, Some(alias)).await?;
        named.push(format!("{alias} → {algorithm}"));
    }
    f.claim_eq(
        "aliases-accepted",
        "rr → round-robin, wrr → weighted, hash → consistent-hash",
        named.join(", "),
        "short names for the factory's LbRoundRobin, LbWeightRoundRobin, LbConsistentHash",
    );
    let (_, default) = twelve(f, upstreams, None).await?;
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

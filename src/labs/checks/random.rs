//! Lab 11, random (随机负载均衡): a seeded random balancer through a real
//! `lab proxy`. The same seed replays the same sequence, another seed gives
//! another, each pick is `draw % nodes`, and the weights change nothing.

use futures_util::future::BoxFuture;

use super::balancing::{self, Answer, Upstreams, counts, letter, letters, nodes_of, show_counts};
use super::servers::with_real_servers;
use crate::balance::{Balancer, PickInput, RandomBalancer};
use crate::labs::findings::Findings;

/// Requests compared between proxies: two sequences of 20 coincide by
/// chance once in a million.
const SEQUENCE: usize = 20;
/// Requests counted for the split: 35%–65% is over four standard deviations
/// either side of 50%.
const SPLIT: usize = 200;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 2, |f, servers| async move {
        experiment(f, &Upstreams::of(&servers)?).await
    })
}

async fn experiment(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let seed = f.seed;
    let other = seed.wrapping_add(1);
    f.step(format!("upstreams: {}", upstreams.legend()));

    // What the balancer itself says seed S gives, before any request.
    let predicted = predict(upstreams, &[1, 1], seed, SPLIT)?;

    let first = run_proxy(f, upstreams, seed, &[1, 1], SEQUENCE).await?;
    let first_nodes = nodes_of(&first);
    f.claim_eq(
        "sequence-is-predicted",
        letters(&predicted[..SEQUENCE]),
        letters(&first_nodes),
        format!(
            "pick n draws splitmix64(seed {seed}, n) and takes it % 2: known before the first request, the same in the proxy as in RandomBalancer"
        ),
    );

    let again = run_proxy(f, upstreams, seed, &[1, 1], SEQUENCE).await?;
    let again_nodes = nodes_of(&again);
    f.claim_eq(
        "same-seed-replays",
        letters(&first_nodes),
        letters(&again_nodes),
        "a fresh proxy with the same --seed starts its counter at 0 and draws the same numbers",
    );
    f.observe(
        "same-seed-same-sequence",
        if first_nodes == again_nodes {
            "yes"
        } else {
            "no"
        },
        format!(
            "seed {seed}, twice: {} · {}",
            letters(&first_nodes),
            letters(&again_nodes)
        ),
    );

    let different = run_proxy(f, upstreams, other, &[1, 1], SEQUENCE).await?;
    let different_nodes = nodes_of(&different);
    f.claim(
        "other-seed-differs",
        different_nodes != first_nodes,
        format!("not {}", letters(&first_nodes)),
        letters(&different_nodes),
        format!("seed {other} draws other numbers: the seed is the whole sequence"),
    );

    draws(f, &first)?;

    // Weights 1 and 9: a weighted balancer would send 90% to b.
    let weighted = run_proxy(f, upstreams, seed, &[1, 9], SPLIT).await?;
    let weighted_nodes = nodes_of(&weighted);
    let split = counts(&weighted_nodes, 2);
    let summary = |nodes: &[usize]| {
        format!(
            "{} … ({})",
            letters(&nodes[..SEQUENCE.min(nodes.len())]),
            show_counts(&counts(nodes, 2))
        )
    };
    let expected = format!("all {SPLIT} picks of weights 1,1: {}", summary(&predicted));
    let actual = match predicted
        .iter()
        .zip(&weighted_nodes)
        .position(|(p, w)| p != w)
    {
        None if predicted.len() == weighted_nodes.len() => expected.clone(),
        None => format!("{} picks", weighted_nodes.len()),
        Some(i) => format!(
            "pick {} differs: {} instead of {}",
            i + 1,
            letter(weighted_nodes[i]),
            letter(predicted[i])
        ),
    };
    f.claim_eq(
        "weights-change-nothing",
        expected,
        actual,
        "RandomBalance.Next() is rand.Intn(len(rss)): the weight given to Add is never read, so weights 1,9 draw exactly what 1,1 draws",
    );
    f.observe(
        "weights-matter",
        if weighted_nodes == predicted {
            "no"
        } else {
            "yes"
        },
        format!(
            "with weights 1 and 9 the {SPLIT} picks are the very picks of weights 1 and 1 ({})",
            show_counts(&split)
        ),
    );
    let low = SPLIT * 35 / 100;
    let high = SPLIT * 65 / 100;
    f.claim(
        "split-near-half",
        (low..=high).contains(&split[0]),
        format!("a between {low} and {high} of {SPLIT}"),
        show_counts(&split),
        "each pick is a fair coin, so a gets about half: far from the 10% weight 1 of 10 would give it",
    );
    Ok(())
}

/// Starts `lab proxy --lb random --seed SEED` over the upstreams, sends `n`
/// requests (each explained) and stops it.
async fn run_proxy(
    f: &mut Findings,
    upstreams: &Upstreams,
    seed: u64,
    weights: &[u32],
    n: usize,
) -> anyhow::Result<Vec<Answer>> {
    let mut flags = vec![
        "--lb".to_string(),
        "random".to_string(),
        "--seed".to_string(),
        seed.to_string(),
    ];
    flags.extend(upstreams.flags(weights));
    let proxy = balancing::proxy(&flags).await?;
    let answers = balancing::send_many(proxy.addr(), upstreams, n, true).await;
    proxy.shutdown().await?;
    let answers = answers?;
    let nodes = nodes_of(&answers);
    let shown = if n <= SEQUENCE {
        letters(&nodes)
    } else {
        format!(
            "{} … ({})",
            letters(&nodes[..SEQUENCE]),
            show_counts(&counts(&nodes, upstreams.len()))
        )
    };
    f.step(format!(
        "`lab proxy --lb random --seed {seed}`, weights {}: {n} requests → {shown}",
        weights
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    Ok(answers)
}

/// The picks RandomBalancer makes for `seed`, without a proxy.
fn predict(
    upstreams: &Upstreams,
    weights: &[u32],
    seed: u64,
    n: usize,
) -> anyhow::Result<Vec<usize>> {
    let balancer = RandomBalancer::new(upstreams.nodes(weights)?, seed);
    Ok((0..n)
        .filter_map(|_| balancer.pick(&PickInput::default()).map(|p| p.index))
        .collect())
}

/// Each explained pick: the node is `draw % nodes`. Records the claim and
/// which upstream odd draws went to.
fn draws(f: &mut Findings, answers: &[Answer]) -> anyhow::Result<()> {
    let mut rule_holds = true;
    let mut odd_nodes = std::collections::BTreeSet::new();
    let mut shown = Vec::new();
    for answer in answers {
        let draw = answer.u64_field("draw")?;
        let nodes = answer.u64_field("nodes")?;
        let sequence = answer.u64_field("sequence")?;
        rule_holds &= nodes > 0 && (draw % nodes) as usize == answer.node;
        if draw % 2 == 1 {
            odd_nodes.insert(letter(answer.node));
        }
        if shown.len() < 3 {
            shown.push(format!(
                "#{sequence} draw {draw} % {nodes} = {} → {}",
                draw % nodes.max(1),
                letter(answer.node)
            ));
        }
    }
    f.step(format!(
        "X-Lab-Pick of the first picks: {}",
        shown.join("; ")
    ));
    f.claim(
        "node-is-draw-mod-nodes",
        rule_holds,
        "every pick: node = draw % 2",
        if rule_holds {
            format!("all {} picks", answers.len())
        } else {
            "a pick broke the rule".to_string()
        },
        "the article's rand.Intn(len(r.rss)), with the draw made visible in X-Lab-Pick",
    );
    let odd: Vec<String> = odd_nodes.iter().map(char::to_string).collect();
    f.observe(
        "odd-draw-node",
        if odd.is_empty() {
            "(no odd draw)".to_string()
        } else {
            odd.join(",")
        },
        "an odd draw % 2 is 1, the second upstream: b",
    );
    Ok(())
}

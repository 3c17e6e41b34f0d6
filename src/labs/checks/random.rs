//! Lab 12, random (随机负载均衡): a seeded random balancer through a real
//! `lab proxy`. The same seed replays the same sequence, another seed gives
//! another, each pick is `draw % nodes`, and the weights change nothing.
//!
//! Then the article's own balancer, in Go (`labs/go/balancer --lb random`):
//! its `rand.Intn` ignores the weights too, and Go 1.19's `math/rand`, never
//! seeded by the article, draws the same sequence at every start.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::balancing::{
    self, Answer, Upstreams, counts, go_minor_version, letter, letters, nodes_of, show_counts,
};
use super::servers::with_real_servers;
use crate::balance::{Balancer, Explanation, PickInput, RandomBalancer};
use crate::labs::findings::{Findings, Subject};

/// Requests compared between proxies: two sequences of 20 coincide by
/// chance once in a million.
const SEQUENCE: usize = 20;
/// Requests counted for the split: 35%–65% is over four standard deviations
/// either side of 50%.
const SPLIT: usize = 200;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 2, |f, servers| async move {
        let upstreams = Upstreams::of(&servers)?;
        f.step(format!("upstreams: {}", upstreams.legend()));
        if f.lab {
            f.measure_on(Subject::Lab);
            experiment(f, &upstreams).await?;
        } else {
            answer_from_the_balancer(f, &upstreams)?;
        }
        if let Some(go) = balancing::go_balancer(f, "random", &upstreams, &[1, 1], &[]).await? {
            f.measure_on(Subject::Go);
            let result = the_articles(f, &upstreams, go.addr()).await;
            go.shutdown().await?;
            f.measure_on(Subject::Lab);
            result?;
        }
        Ok(())
    })
}

/// Whether the article's unseeded `math/rand` starts from seed 1: Go 1.19
/// (the oldest the lab takes) does; Go 1.20 and later seed it at random.
/// Without Go, the lab's minimum, 1.19, is assumed.
fn go_starts_at_seed_1() -> bool {
    go_minor_version().is_none_or(|minor| minor <= 19)
}

/// The expected outcome of two starts of an unseeded random balancer.
fn restarts(same: bool) -> &'static str {
    if same {
        "the same 20 picks at both starts"
    } else {
        "different picks at the two starts"
    }
}

/// When `lab proxy` does not run (`--impl go`), the questions about it are
/// answered by its balancer, `RandomBalancer`, the code `lab proxy` runs.
fn answer_from_the_balancer(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let seed = f.seed;
    let once = predict(upstreams, &[1, 1], seed, SEQUENCE)?;
    let twice = predict(upstreams, &[1, 1], seed, SEQUENCE)?;
    f.observe(
        "same-seed-same-sequence",
        if once == twice { "yes" } else { "no" },
        format!(
            "lab proxy did not run (--impl go); its balancer, RandomBalancer with seed {seed}, made twice: {} · {}",
            letters(&once),
            letters(&twice)
        ),
    );
    let balancer = RandomBalancer::new(upstreams.nodes(&[1, 1])?, seed);
    let mut odd = std::collections::BTreeSet::new();
    for _ in 0..SEQUENCE {
        let input = PickInput {
            key: None,
            explain: true,
        };
        if let Some(pick) = balancer.pick(&input)
            && let Some(Explanation::Random { draw, .. }) = pick.explanation
            && draw % 2 == 1
        {
            odd.insert(letter(pick.index).to_string());
        }
    }
    f.observe(
        "odd-draw-node",
        odd.into_iter().collect::<Vec<_>>().join(","),
        "lab proxy did not run (--impl go); by its balancer's rule an odd draw % 2 is 1, the second upstream: b",
    );
    Ok(())
}

async fn experiment(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let seed = f.seed;
    let other = seed.wrapping_add(1);

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

    // Without --seed, twice: lab chooses a fresh seed at every start.
    let mut starts = Vec::new();
    for _ in 0..2 {
        let mut flags = vec!["--lb".to_string(), "random".to_string()];
        flags.extend(upstreams.flags(&[1, 1]));
        let proxy = balancing::proxy(&flags).await?;
        let answers = balancing::send_many(proxy.addr(), upstreams, SEQUENCE, true).await;
        proxy.shutdown().await?;
        let answers = answers?;
        let seed = answers[0].u64_field("seed")?;
        starts.push((seed, nodes_of(&answers)));
    }
    f.step(format!(
        "`lab proxy --lb random` without --seed, started twice: seed {} → {} · seed {} → {}",
        starts[0].0,
        letters(&starts[0].1),
        starts[1].0,
        letters(&starts[1].1)
    ));
    let actual = restarts(starts[0].1 == starts[1].1);
    let lab_rule = "lab proxy without --seed draws a fresh seed at every start and logs it, so two starts differ and either can be replayed with --seed (as Go's math/rand is seeded at random since Go 1.20)";
    if go_starts_at_seed_1() {
        f.claim_lab_choice("go-rand-seed", restarts(false), actual, lab_rule);
    } else {
        f.claim_eq("go-rand-seed", restarts(false), actual, lab_rule);
    }
    Ok(())
}

/// The article's balancer in Go, `--lb random` over a and b: started three
/// times (weights 1,1 twice, then 1,9), the picks read from which real server
/// answered.
async fn the_articles(
    f: &mut Findings,
    upstreams: &Upstreams,
    first: SocketAddr,
) -> anyhow::Result<()> {
    let even = balancing::send_many(first, upstreams, SPLIT, false).await?;
    let even = nodes_of(&even);
    f.step(format!(
        "weights 1,1: {SPLIT} requests → {} … ({})",
        letters(&even[..SEQUENCE]),
        show_counts(&counts(&even, 2))
    ));
    let again = go_run(f, upstreams, &[1, 1], SEQUENCE).await?;
    let weighted = go_run(f, upstreams, &[1, 9], SPLIT).await?;

    let seeded_with_1 = go_starts_at_seed_1();
    f.claim_eq(
        "go-rand-seed",
        restarts(seeded_with_1),
        restarts(even[..SEQUENCE] == again[..]),
        if seeded_with_1 {
            "Go 1.19: math/rand's global source starts from seed 1 unless the program calls rand.Seed, and the article never does: every start of its balancer draws the same numbers"
        } else {
            "since Go 1.20 math/rand's global source is seeded at random: two starts draw different numbers"
        },
    );

    let split = counts(&weighted, 2);
    if seeded_with_1 {
        // Both starts draw the same numbers: only the weights differ.
        let expected = format!("weights 1,9: the same {SPLIT} picks as weights 1,1");
        let actual = match even.iter().zip(&weighted).position(|(e, w)| e != w) {
            None if even.len() == weighted.len() => expected.clone(),
            None => format!("{} picks", weighted.len()),
            Some(i) => format!(
                "pick {} differs: {} with weights 1,9, {} with 1,1",
                i + 1,
                letter(weighted[i]),
                letter(even[i])
            ),
        };
        f.claim_eq(
            "weights-change-nothing",
            expected,
            actual,
            "RandomBalance.Add keeps params[0] and Next is rand.Intn(len(r.rss)): started from the same seed, weights 1,9 draw exactly what 1,1 draws",
        );
        f.observe(
            "weights-matter",
            if weighted == even { "no" } else { "yes" },
            format!(
                "the article's balancer in Go: weights 1,9 and 1,1 give the very same {SPLIT} picks ({})",
                show_counts(&split)
            ),
        );
    } else {
        let low = SPLIT * 35 / 100;
        let high = SPLIT * 65 / 100;
        f.claim(
            "weights-change-nothing",
            (low..=high).contains(&split[0]),
            format!("weights 1,9: a between {low} and {high} of {SPLIT}, as with 1,1"),
            format!("weights 1,9: {}", show_counts(&split)),
            "RandomBalance.Add keeps params[0] and Next is rand.Intn(len(r.rss)): the weights are never read (Go 1.20+ seeds at random, so the two runs' picks differ; their split does not)",
        );
    }
    let low = SPLIT * 35 / 100;
    let high = SPLIT * 65 / 100;
    f.claim(
        "split-near-half",
        (low..=high).contains(&split[0]),
        format!("a between {low} and {high} of {SPLIT}"),
        show_counts(&split),
        "rand.Intn(2) is a fair coin: a gets about half, far from the 10% weight 1 of 10 would give it",
    );
    Ok(())
}

/// Starts the Go balancer `--lb random` with `weights`, sends `n` requests
/// and stops it; the upstreams that answered.
async fn go_run(
    f: &mut Findings,
    upstreams: &Upstreams,
    weights: &[u32],
    n: usize,
) -> anyhow::Result<Vec<usize>> {
    let Some(go) = balancing::go_balancer(f, "random", upstreams, weights, &[]).await? else {
        anyhow::bail!("the Go balancer did not start");
    };
    let answers = balancing::send_many(go.addr(), upstreams, n, false).await;
    go.shutdown().await?;
    let nodes = nodes_of(&answers?);
    f.step(format!(
        "weights {}: {n} requests → {}{}",
        weights
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        letters(&nodes[..SEQUENCE.min(n)]),
        if n > SEQUENCE {
            format!(" … ({})", show_counts(&counts(&nodes, 2)))
        } else {
            String::new()
        }
    ));
    Ok(nodes)
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

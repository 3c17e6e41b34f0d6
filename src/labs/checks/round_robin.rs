//! Lab 13, round robin (轮询负载均衡): each upstream in turn, a b a b, with
//! the article's weights 10 and 20 ignored; the counter (the article's
//! `curIndex`) in X-Lab-Pick; and 40 requests at once split exactly 20/20.
//!
//! The same requests go through the article's balancer in Go
//! (`labs/go/balancer --lb round-robin`): a b a b, weights ignored; its 40
//! concurrent requests are shown, not judged (its `curIndex` is not
//! synchronised, and the race is rare).

use std::net::SocketAddr;

use futures_util::future::{BoxFuture, join_all};

use super::balancing::{self, Answer, Upstreams, counts, letter, letters, nodes_of, show_counts};
use super::servers::with_real_servers;
use crate::balance::{Balancer, PickInput, RoundRobinBalancer};
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;

/// The article's weights, `rb.Add("…:2003/base", "10")`, `rb.Add("…:2004/base", "20")`.
const WEIGHTS: [u32; 2] = [10, 20];
const SEQUENTIAL: usize = 10;
const CONCURRENT: usize = 40;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 2, |f, servers| async move {
        let upstreams = Upstreams::of(&servers)?;
        f.step(format!("upstreams: {}", upstreams.legend()));
        if f.lab {
            f.measure_on(Subject::Lab);
            experiment(f, &upstreams).await?;
        } else {
            let balancer = RoundRobinBalancer::new(upstreams.nodes(&WEIGHTS)?);
            let picks: Vec<usize> = (0..CONCURRENT)
                .filter_map(|_| balancer.pick(&PickInput::default()).map(|p| p.index))
                .collect();
            f.observe(
                "a-of-40-at-once",
                counts(&picks, 2)[0],
                "lab proxy did not run (--impl go); its balancer's atomic counter hands out 0..39 once each, 20 even: a",
            );
        }
        if let Some(go) =
            balancing::go_balancer(f, "round-robin", &upstreams, &WEIGHTS, &[]).await?
        {
            f.measure_on(Subject::Go);
            let result = the_articles(f, &upstreams, go.addr()).await;
            go.shutdown().await?;
            f.measure_on(Subject::Lab);
            result?;
        }
        Ok(())
    })
}

/// Each in turn, weights ignored: the claims both proxies are held to.
fn in_turn(f: &mut Findings, answers: &[Answer]) {
    let nodes = nodes_of(answers);
    let alternation: Vec<usize> = (0..SEQUENTIAL).map(|i| i % 2).collect();
    f.claim_eq(
        "strict-alternation",
        letters(&alternation),
        letters(&nodes),
        "curIndex walks 0, 1, 0, 1: rss[curIndex], then curIndex = (curIndex + 1) % 2",
    );
    f.observe(
        "request-5",
        letter(nodes[4]),
        "request 5 reads the counter 4, and 4 % 2 = 0: the first upstream, a",
    );
    let split = counts(&nodes, 2);
    f.claim_eq(
        "weights-ignored",
        show_counts(&[SEQUENTIAL / 2, SEQUENTIAL / 2]),
        show_counts(&split),
        "RoundRobinBalance.Add keeps params[0] only: weight 20 counts no more than weight 10",
    );
    f.observe(
        "b-of-10",
        split[1],
        "one in two, whatever the weights: 5 of 10",
    );
}

/// The article's balancer in Go at `first`, then a fresh one for 40
/// requests at once.
async fn the_articles(
    f: &mut Findings,
    upstreams: &Upstreams,
    first: SocketAddr,
) -> anyhow::Result<()> {
    let answers = balancing::send_many(first, upstreams, SEQUENTIAL, false).await?;
    f.step(format!(
        "{SEQUENTIAL} requests, one after another → {}",
        letters(&nodes_of(&answers))
    ));
    in_turn(f, &answers);

    let Some(go) = balancing::go_balancer(f, "round-robin", upstreams, &WEIGHTS, &[]).await? else {
        anyhow::bail!("the Go balancer did not start");
    };
    let at_once = all_at_once(go.addr(), upstreams).await;
    go.shutdown().await?;
    let split = counts(&at_once?, 2);
    f.step(format!(
        "{CONCURRENT} requests at once, on {CONCURRENT} connections: {} (not judged: the article's curIndex is read and written without a lock, so two requests can take one turn, but the window is a few instructions wide and a lost turn is rare)",
        show_counts(&split)
    ));
    Ok(())
}

/// `CONCURRENT` requests at once, each on its own connection; the
/// upstreams that answered.
async fn all_at_once(proxy: SocketAddr, upstreams: &Upstreams) -> anyhow::Result<Vec<usize>> {
    let at_once = join_all(
        (0..CONCURRENT).map(|_| balancing::send(proxy, upstreams, Probe::get("/abc"), false)),
    )
    .await;
    let mut nodes = Vec::with_capacity(CONCURRENT);
    for answer in at_once {
        nodes.push(answer?.node);
    }
    Ok(nodes)
}

async fn experiment(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let mut flags = vec!["--lb".to_string(), "round-robin".to_string()];
    flags.extend(upstreams.flags(&WEIGHTS));

    let proxy = balancing::proxy(&flags).await?;
    let answers = balancing::send_many(proxy.addr(), upstreams, SEQUENTIAL, true).await;
    proxy.shutdown().await?;
    let answers = answers?;
    f.step(format!(
        "`lab proxy --lb round-robin --upstream a,10 --upstream b,20`: {SEQUENTIAL} requests, one after another → {}",
        letters(&nodes_of(&answers))
    ));
    in_turn(f, &answers);

    let mut counters = Vec::new();
    let mut rule_holds = true;
    for answer in &answers {
        let counter = answer.u64_field("counter")?;
        let of = answer.u64_field("nodes")?;
        rule_holds &= of > 0 && (counter % of) as usize == answer.node;
        counters.push(counter.to_string());
    }
    let expected_counters: Vec<String> = (0..SEQUENTIAL).map(|i| i.to_string()).collect();
    f.claim_eq(
        "counter-picks-the-node",
        format!("counters {}, node = counter % 2", expected_counters.join(" ")),
        format!(
            "counters {}, {}",
            counters.join(" "),
            if rule_holds {
                "node = counter % 2"
            } else {
                "a node that is not counter % 2"
            }
        ),
        "X-Lab-Pick shows the counter each pick read: one more per request, the node is counter % nodes",
    );

    // Many requests at once: every pick still gets its own counter value.
    let proxy = balancing::proxy(&flags).await?;
    let at_once = all_at_once(proxy.addr(), upstreams).await;
    proxy.shutdown().await?;
    let split = counts(&at_once?, 2);
    f.step(format!(
        "a new proxy, {CONCURRENT} requests at once, on {CONCURRENT} connections: {}",
        show_counts(&split)
    ));
    f.claim_eq(
        "concurrent-split-exact",
        show_counts(&[CONCURRENT / 2, CONCURRENT / 2]),
        show_counts(&split),
        "the counter is one atomic fetch_add, so no two requests read the same value: exactly half each (the article's plain curIndex can lose turns under concurrent requests)",
    );
    f.observe(
        "a-of-40-at-once",
        split[0],
        "40 counter values 0..39, each handed out once: 20 even, 20 odd",
    );
    Ok(())
}

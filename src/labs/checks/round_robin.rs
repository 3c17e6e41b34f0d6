//! Lab 12, round robin (轮询负载均衡): each upstream in turn, a b a b, with
//! the article's weights 10 and 20 ignored; the counter (the article's
//! `curIndex`) in X-Lab-Pick; and 40 requests at once split exactly 20/20.

use futures_util::future::{BoxFuture, join_all};

use super::balancing::{self, Upstreams, counts, letter, letters, nodes_of, show_counts};
use super::servers::with_real_servers;
use crate::labs::findings::Findings;
use crate::probe::Probe;

/// The article's weights, `rb.Add("…:2003/base", "10")`, `rb.Add("…:2004/base", "20")`.
const WEIGHTS: [u32; 2] = [10, 20];
const SEQUENTIAL: usize = 10;
const CONCURRENT: usize = 40;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 2, |f, servers| async move {
        experiment(f, &Upstreams::of(&servers)?).await
    })
}

async fn experiment(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    f.step(format!("upstreams: {}", upstreams.legend()));
    let mut flags = vec!["--lb".to_string(), "round-robin".to_string()];
    flags.extend(upstreams.flags(&WEIGHTS));

    let proxy = balancing::proxy(&flags).await?;
    let answers = balancing::send_many(proxy.addr(), upstreams, SEQUENTIAL, true).await;
    proxy.shutdown().await?;
    let answers = answers?;
    let nodes = nodes_of(&answers);
    f.step(format!(
        "`lab proxy --lb round-robin --upstream a,10 --upstream b,20`: {SEQUENTIAL} requests, one after another → {}",
        letters(&nodes)
    ));

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

    // Many requests at once: every pick still gets its own counter value.
    let proxy = balancing::proxy(&flags).await?;
    let at_once = join_all(
        (0..CONCURRENT)
            .map(|_| balancing::send(proxy.addr(), upstreams, Probe::get("/abc"), false)),
    )
    .await;
    proxy.shutdown().await?;
    let mut concurrent = Vec::with_capacity(CONCURRENT);
    for answer in at_once {
        concurrent.push(answer?.node);
    }
    let split = counts(&concurrent, 2);
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

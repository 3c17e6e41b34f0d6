//! Lab 15, consistent hash (一致性hash负载): a key sticks to one upstream
//! through the real proxy; the article's key, RemoteAddr (IP:port), does not
//! stick because every connection has a new port; adding a node moves about
//! 1/(N+1) of the keys; and replicas even out nginx's ring but not the
//! article's, whose crc32 points are one pattern XOR-ed per node.
//!
//! The article's balancer in Go (`labs/go/balancer --lb consistent-hash`)
//! keys on `req.RemoteAddr`: requests on one keep-alive connection stick,
//! new connections scatter, and every pick is where `lab`'s copy of the
//! article's ring (`--ring article`, 10 replicas) puts `127.0.0.1:PORT`.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::balancing::{self, Answer, Upstreams, letter, letters, nodes_of, plural};
use super::servers::with_real_servers;
use crate::balance::{
    Balancer, ConsistentHashBalancer, DEFAULT_REPLICAS, Node, PickInput, RingPoints,
    parse_upstream_spec,
};
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;

/// Requests from one client, each on a new connection.
const CONNECTIONS: usize = 30;
/// At most this many connections to the Go balancer, waiting for both
/// upstreams to answer (the article's ring can give one upstream 98%).
const MAX_CONNECTIONS: usize = 2000;
/// Requests on one keep-alive connection.
const KEEP_ALIVE: usize = 10;
/// Keys for the add-a-node count.
const KEYS: usize = 1000;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 2, |f, servers| async move {
        let upstreams = Upstreams::of(&servers)?;
        f.step(format!("upstreams: {}", upstreams.legend()));
        if f.lab {
            f.measure_on(Subject::Lab);
            through_the_proxy(f, &upstreams).await?;
            default_key(f, &upstreams).await?;
        } else {
            f.observe(
                "alice-upstreams",
                1,
                "lab proxy did not run (--impl go); by its ring: one key, one hash, one virtual node, one upstream",
            );
        }
        if let Some(go) =
            balancing::go_balancer(f, "consistent-hash", &upstreams, &[1, 1], &[]).await?
        {
            f.measure_on(Subject::Go);
            let result = the_articles(f, &upstreams, go.addr()).await;
            go.shutdown().await?;
            f.measure_on(Subject::Lab);
            result?;
        }
        adding_a_node(f)?;
        replicas(f)
    })
}

/// The article's ring over the upstreams, as `lab proxy --ring article
/// --replicas 10` builds it (weight 1: the article ignores weights).
fn articles_ring(upstreams: &Upstreams) -> anyhow::Result<ConsistentHashBalancer> {
    Ok(ConsistentHashBalancer::with_points(
        upstreams.nodes(&[1, 1])?,
        DEFAULT_REPLICAS,
        RingPoints::Article,
    ))
}

/// What the article's Director hashes: `req.RemoteAddr`, the client's IP
/// and port, `127.0.0.1:54321`.
fn remote_addr(local: SocketAddr) -> String {
    local.to_string()
}

/// The article's balancer in Go at `proxy`: one keep-alive connection, then
/// new connections until both upstreams have answered.
async fn the_articles(
    f: &mut Findings,
    upstreams: &Upstreams,
    proxy: SocketAddr,
) -> anyhow::Result<()> {
    let ring = articles_ring(upstreams)?;
    let shares = ring.shares();
    f.step(format!(
        "the article's ring, 10 points each: a owns {:.1}% of it, b {:.1}%",
        shares[0] * 100.0,
        shares[1] * 100.0
    ));

    let kept = balancing::send_on_one_connection(proxy, upstreams, KEEP_ALIVE).await?;
    let kept_nodes = nodes_of(&kept);
    let distinct: BTreeSet<usize> = kept_nodes.iter().copied().collect();
    f.step(format!(
        "{KEEP_ALIVE} requests on one keep-alive connection from {} → {}",
        kept[0].local,
        letters(&kept_nodes)
    ));
    f.claim_eq(
        "same-key-same-upstream",
        format!("1 upstream for {KEEP_ALIVE} requests"),
        format!(
            "{} for {KEEP_ALIVE} requests",
            plural(distinct.len(), "upstream")
        ),
        "one connection, one RemoteAddr, one crc32, one virtual node: the article's key sticks while the connection lasts",
    );

    // New connections until both upstreams have answered (at least 30).
    let mut answers = Vec::new();
    while answers.len() < MAX_CONNECTIONS {
        answers.push(balancing::send(proxy, upstreams, Probe::get("/abc"), false).await?);
        let seen: BTreeSet<usize> = answers.iter().map(|a| a.node).collect();
        if answers.len() >= CONNECTIONS && seen.len() == upstreams.len() {
            break;
        }
    }
    let nodes = nodes_of(&answers);
    let spread: BTreeSet<usize> = nodes.iter().copied().collect();
    let keys: BTreeSet<String> = answers.iter().map(|a| remote_addr(a.local)).collect();
    f.step(format!(
        "{} requests from 127.0.0.1, each on a new connection (RemoteAddr {}, {} …) → {}{}",
        answers.len(),
        remote_addr(answers[0].local),
        remote_addr(answers[1].local),
        letters(&nodes[..CONNECTIONS.min(nodes.len())]),
        if nodes.len() > CONNECTIONS {
            " …"
        } else {
            ""
        }
    ));
    f.claim(
        "remote-addr-does-not-stick",
        spread.len() > 1,
        "more than 1 upstream for the requests from 127.0.0.1",
        format!(
            "{} for {} requests, {} different keys",
            plural(spread.len(), "upstream"),
            answers.len(),
            keys.len()
        ),
        "the article's Director calls lb.Get(req.RemoteAddr): IP:port, and every new TCP connection gets a new ephemeral port, a new key, a new place on the ring",
    );
    f.observe(
        "remote-addr-sticks",
        if spread.len() == 1 { "yes" } else { "no" },
        format!(
            "the article's balancer in Go: {} connections from one client, {} keys",
            answers.len(),
            keys.len()
        ),
    );

    let wrong = answers.iter().enumerate().find_map(|(i, answer)| {
        let key = remote_addr(answer.local);
        let owner = owner(&ring, &key)?;
        (owner != answer.node).then(|| {
            format!(
                "request {}: key {key} → {}, the ring says {}",
                i + 1,
                letter(answer.node),
                letter(owner)
            )
        })
    });
    let all = format!(
        "all {} picks: the ring's owner of crc32(127.0.0.1:PORT of its connection)",
        answers.len()
    );
    f.claim_eq(
        "key-is-remote-addr",
        &all,
        wrong.unwrap_or_else(|| all.clone()),
        "Get hashes the key it is given, and the Director gives it req.RemoteAddr: lab's copy of the article's ring, searched for 127.0.0.1:PORT, names the upstream of every request",
    );
    Ok(())
}

/// `lab proxy --lb hash` as it starts: the article's ring at 10 replicas, but
/// keyed on the client's IP without the port (lab's default).
async fn default_key(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    let mut flags = vec!["--lb".to_string(), "hash".to_string()];
    flags.extend(upstreams.flags(&[1, 1]));
    let proxy = balancing::proxy(&flags).await?;
    let answers = balancing::send_many(proxy.addr(), upstreams, 12, true).await;
    proxy.shutdown().await?;
    let answers = answers?;
    let keys: BTreeSet<String> = answers
        .iter()
        .filter_map(|a| a.field("key").ok()?.as_str().map(str::to_string))
        .collect();
    f.step(format!(
        "`lab proxy --lb hash` (no --hash-key, no --ring: the article's ring, 10 replicas): 12 requests, each on a new connection, keys {} → {}",
        keys.iter().cloned().collect::<Vec<_>>().join(", "),
        letters(&nodes_of(&answers))
    ));
    f.claim_lab_choice(
        "key-is-remote-addr",
        "every key 127.0.0.1",
        format!(
            "every key {}",
            keys.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        "lab proxy's default --hash-key is remote-ip, the client's IP without the port (nginx's ip_hash), so one client sticks across connections; --hash-key remote-addr is the article's key",
    );
    Ok(())
}

/// `--lb hash` with nginx's ring at 160 points: about half the ring each,
/// so a key that does not stick shows it.
fn hash_flags(upstreams: &Upstreams, key: &str) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--lb",
        "hash",
        "--ring",
        "nginx",
        "--replicas",
        "160",
        "--hash-key",
        key,
    ]
    .map(String::from)
    .to_vec();
    flags.extend(upstreams.flags(&[1, 1]));
    flags
}

async fn through_the_proxy(f: &mut Findings, upstreams: &Upstreams) -> anyhow::Result<()> {
    // A header key: alice, ten times, on ten connections.
    let proxy = balancing::proxy(&hash_flags(upstreams, "header:X-User")).await?;
    let sent = async {
        let mut alice = Vec::new();
        for _ in 0..10 {
            let probe = Probe::get("/abc").header("X-User", "alice");
            alice.push(balancing::send(proxy.addr(), upstreams, probe, true).await?);
        }
        let mut users = Vec::new();
        for user in USERS {
            let probe = Probe::get("/abc").header("X-User", user);
            users.push(balancing::send(proxy.addr(), upstreams, probe, false).await?);
        }
        anyhow::Ok((alice, users))
    }
    .await;
    proxy.shutdown().await?;
    let (alice, users) = sent?;

    let alice_nodes = nodes_of(&alice);
    let distinct: BTreeSet<usize> = alice_nodes.iter().copied().collect();
    f.step(format!(
        "`lab proxy --lb hash --hash-key header:X-User --ring nginx --replicas 160`: 10 requests with X-User: alice, each on a new connection → {}",
        letters(&alice_nodes)
    ));
    f.claim_eq(
        "same-key-same-upstream",
        "1 upstream for 10 requests",
        format!("{} for 10 requests", plural(distinct.len(), "upstream")),
        "crc32(\"alice\") is the same every time, so the walk round the ring ends at the same virtual node: stickiness (会话保持)",
    );
    f.observe(
        "alice-upstreams",
        distinct.len(),
        "one key, one hash, one virtual node, one upstream",
    );

    ring_lookup(f, upstreams, &alice[0])?;

    let user_nodes = nodes_of(&users);
    let spread: BTreeSet<usize> = user_nodes.iter().copied().collect();
    f.step(format!(
        "{} users ({} …) → {}",
        USERS.len(),
        USERS[..3].join(", "),
        letters(&user_nodes)
    ));
    f.claim_eq(
        "users-spread",
        "a and b serve some users",
        format!(
            "{} serve{} some users",
            spread
                .iter()
                .map(|&n| letter(n).to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            if spread.len() == 1 { "s" } else { "" }
        ),
        "different keys hash to different places on the ring: each user sticks to one upstream, and the users share them",
    );

    // The article's key, req.RemoteAddr, against the client's IP alone.
    let by_addr = from_one_client(f, upstreams, "remote-addr").await?;
    let by_ip = from_one_client(f, upstreams, "remote-ip").await?;
    let addr_nodes: BTreeSet<usize> = nodes_of(&by_addr).into_iter().collect();
    let ip_nodes: BTreeSet<usize> = nodes_of(&by_ip).into_iter().collect();
    let keys: BTreeSet<String> = by_addr
        .iter()
        .filter_map(|a| a.field("key").ok()?.as_str().map(str::to_string))
        .collect();
    f.claim(
        "remote-addr-does-not-stick",
        addr_nodes.len() > 1,
        format!("more than 1 upstream for {CONNECTIONS} requests from 127.0.0.1"),
        format!(
            "{}, {} different keys",
            plural(addr_nodes.len(), "upstream"),
            keys.len()
        ),
        "RemoteAddr is IP:port, and every new TCP connection gets a new ephemeral port: a new key, a new place on the ring",
    );
    f.observe(
        "remote-addr-sticks",
        if addr_nodes.len() == 1 { "yes" } else { "no" },
        format!(
            "keys such as {}: one client, {} keys",
            keys.iter().take(2).cloned().collect::<Vec<_>>().join(", "),
            keys.len()
        ),
    );
    f.claim_eq(
        "remote-ip-sticks",
        format!("1 upstream for {CONNECTIONS} requests from 127.0.0.1"),
        format!(
            "{} for {CONNECTIONS} requests from 127.0.0.1",
            plural(ip_nodes.len(), "upstream")
        ),
        "without the port the key is 127.0.0.1 on every connection (nginx's ip_hash drops the port too)",
    );
    Ok(())
}

/// Twenty user names for the spread.
const USERS: [&str; 20] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe",
];

/// The explained pick for alice is the ring lookup done by hand.
fn ring_lookup(f: &mut Findings, upstreams: &Upstreams, answer: &Answer) -> anyhow::Result<()> {
    let hash = answer.u64_field("hash")?;
    let point = answer.u64_field("virtual_node_hash")?;
    let virtual_node = answer
        .field("virtual_node")?
        .as_str()
        .unwrap_or_default()
        .to_string();
    f.step(format!(
        "X-Lab-Pick for alice: crc32 {hash}, first virtual node clockwise {point} ({virtual_node})"
    ));

    // The same lookup by hand: nginx's points for both upstreams (point j =
    // crc32(upstream ‖ point j−1, little endian), from 0), sorted, searched.
    let mut points: Vec<(u32, usize)> = Vec::new();
    for node in 0..upstreams.len() {
        let mut previous = 0u32;
        for _ in 0..160 {
            let mut input = upstreams.url(node).as_bytes().to_vec();
            input.extend_from_slice(&previous.to_le_bytes());
            previous = crc32fast::hash(&input);
            points.push((previous, node));
        }
    }
    points.sort_unstable();
    let crc = crc32fast::hash(b"alice");
    let index = points.partition_point(|&(p, _)| p < crc) % points.len();
    let (own_point, own) = points[index];
    f.claim_eq(
        "pick-is-a-ring-lookup",
        format!(
            "crc32(\"alice\") = {crc}, first point ≥ it {own_point}, → {}",
            letter(own)
        ),
        format!(
            "crc32(\"alice\") = {hash}, first point ≥ it {point}, → {}",
            letter(answer.node)
        ),
        format!(
            "the article's Get: hash the key, sort.Search the {} sorted points for the first ≥ it (past the last, wrap to the first); its upstream serves",
            points.len()
        ),
    );
    Ok(())
}

/// `CONNECTIONS` requests from 127.0.0.1, each on a new connection, through
/// `--hash-key key`.
async fn from_one_client(
    f: &mut Findings,
    upstreams: &Upstreams,
    key: &str,
) -> anyhow::Result<Vec<Answer>> {
    let proxy = balancing::proxy(&hash_flags(upstreams, key)).await?;
    let answers = balancing::send_many(proxy.addr(), upstreams, CONNECTIONS, true).await;
    proxy.shutdown().await?;
    let answers = answers?;
    let first_keys: Vec<String> = answers
        .iter()
        .take(3)
        .filter_map(|a| a.field("key").ok()?.as_str().map(str::to_string))
        .collect();
    f.step(format!(
        "`--hash-key {key}`: {CONNECTIONS} requests from 127.0.0.1, each on a new connection (keys {} …) → {}",
        first_keys.join(", "),
        letters(&nodes_of(&answers))
    ));
    Ok(answers)
}

/// The article's upstreams `http://127.0.0.1:2003/base`, `…:2004/base`, … (weight 1).
fn article_nodes(n: usize) -> anyhow::Result<Vec<Node>> {
    (0..n)
        .map(|i| {
            parse_upstream_spec(&format!("http://127.0.0.1:{}/base", 2003 + i))
                .map_err(anyhow::Error::msg)
        })
        .collect()
}

fn owner(ring: &ConsistentHashBalancer, key: &str) -> Option<usize> {
    ring.pick(&PickInput {
        key: Some(key),
        explain: false,
    })
    .map(|p| p.index)
}

/// Client IPs 192.168.x.y, as the default remote-ip key makes them.
fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("192.168.{}.{}", i / 256, i % 256))
        .collect()
}

/// :2003 and :2004, then :2005 joins: which keys move, and where.
fn adding_a_node(f: &mut Findings) -> anyhow::Result<()> {
    let before = ConsistentHashBalancer::with_points(article_nodes(2)?, 160, RingPoints::Nginx);
    let after = ConsistentHashBalancer::with_points(article_nodes(3)?, 160, RingPoints::Nginx);
    let keys = keys();
    let mut moved = 0;
    let mut moved_elsewhere = 0;
    let mut modulo_moved = 0;
    for key in &keys {
        let (old, new) = (owner(&before, key), owner(&after, key));
        if old != new {
            moved += 1;
            if new != Some(2) {
                moved_elsewhere += 1;
            }
        }
        let hash = crc32fast::hash(key.as_bytes());
        if hash % 2 != hash % 3 {
            modulo_moved += 1;
        }
    }
    f.step(format!(
        "{KEYS} client IPs (192.168.0.0 …) on nginx's ring at 160 replicas, :2003 + :2004, then :2005 joins: {moved} keys move, {moved_elsewhere} of them between the old two; crc32 % 2 → % 3 would move {modulo_moved}"
    ));
    f.observe(
        "moved-fraction",
        format!("1/{}", (KEYS as f64 / moved.max(1) as f64).round()),
        format!("{moved} of {KEYS} keys moved, about 1/(N+1) with N = 2"),
    );
    if !f.lab {
        return Ok(());
    }
    let ideal = KEYS / 3;
    let (low, high) = (ideal * 7 / 10, ideal * 13 / 10);
    f.claim(
        "adding-a-node-moves-a-third",
        (low..=high).contains(&moved),
        format!("{low}–{high} of {KEYS} (1/3 ± 30%)"),
        format!("{moved} of {KEYS}"),
        "the new node's virtual nodes take over only the arcs just before them: about 1/(N+1) of the ring, for N = 2",
    );
    f.claim_eq(
        "moved-keys-go-to-the-new-node",
        "every moved key now on :2005",
        if moved_elsewhere == 0 {
            "every moved key now on :2005".to_string()
        } else {
            format!("{moved_elsewhere} moved between :2003 and :2004")
        },
        "the old virtual nodes did not move, so a key changes owner only if a new virtual node now comes first",
    );
    let (mod_low, mod_high) = (KEYS * 6 / 10, KEYS * 73 / 100);
    f.claim(
        "modulo-moves-two-thirds",
        (mod_low..=mod_high).contains(&modulo_moved),
        format!("{mod_low}–{mod_high} of {KEYS} (about 2/3)"),
        format!("{modulo_moved} of {KEYS}"),
        "with hash % N a key stays only if hash % 2 = hash % 3, one hash in three: the reason for a ring",
    );
    Ok(())
}

/// The busiest node's share over the fair share (1.00 is perfectly even).
fn busiest(ring: &ConsistentHashBalancer) -> f64 {
    let shares = ring.shares();
    let fair = 1.0 / shares.len() as f64;
    shares.iter().copied().fold(0.0, f64::max) / fair
}

/// Four upstreams at 1, 10 and 160 replicas on both rings.
fn replicas(f: &mut Findings) -> anyhow::Result<()> {
    const REPLICAS: [usize; 3] = [1, 10, 160];
    let spread = |points| -> anyhow::Result<[f64; 3]> {
        let mut values = [0.0; 3];
        for (value, replicas) in values.iter_mut().zip(REPLICAS) {
            *value = busiest(&ConsistentHashBalancer::with_points(
                article_nodes(4)?,
                replicas,
                points,
            ));
        }
        Ok(values)
    };
    let row = |values: &[f64; 3]| {
        REPLICAS
            .iter()
            .zip(values)
            .map(|(replicas, value)| format!("{replicas} → {value:.2}×"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let nginx = spread(RingPoints::Nginx)?;
    let article = spread(RingPoints::Article)?;
    f.step(format!(
        "four upstreams :2003–:2006, the busiest one's share of the ring over the fair 25%, by replicas: --ring nginx {} · --ring article {}",
        row(&nginx),
        row(&article)
    ));
    f.observe(
        "article-160-even",
        if article[2] < article[1] && article[2] < 1.2 {
            "yes"
        } else {
            "no"
        },
        format!(
            "busiest upstream {:.2}× its fair share at 160 replicas, {:.2}× at 10",
            article[2], article[1]
        ),
    );
    if !f.lab {
        return Ok(());
    }
    f.claim(
        "nginx-ring-evens-out",
        nginx[2] < nginx[1] && nginx[2] < 1.2,
        "160 replicas below 10 replicas, and under 1.20×",
        format!("10: {:.2}× → 160: {:.2}×", nginx[1], nginx[2]),
        "independent points: more of them average the arcs out (spread about 1/√points), which is why ketama and nginx put 160 per unit of weight",
    );
    f.claim(
        "article-ring-does-not-even-out",
        article[2] >= article[1],
        "160 replicas no better than 10",
        format!("10: {:.2}× → 160: {:.2}×", article[1], article[2]),
        "the article's points crc32(\"{i}\" + addr) are not independent: more replicas add more copies of one pattern, not more averaging",
    );

    // Why: crc32 is linear. For inputs of one length, crc32(x) ^ crc32(y)
    // depends only on x ^ y, and "{r}" + :2003 and "{r}" + :2004 differ in
    // the same bytes for every one-digit r.
    let names = ["http://127.0.0.1:2003/base", "http://127.0.0.1:2004/base"];
    let xors: BTreeSet<u32> = (0..10)
        .map(|r| {
            crc32fast::hash(format!("{r}{}", names[0]).as_bytes())
                ^ crc32fast::hash(format!("{r}{}", names[1]).as_bytes())
        })
        .collect();
    let shown: Vec<String> = xors.iter().take(3).map(|x| format!("{x:#010x}")).collect();
    f.claim(
        "article-points-are-one-pattern",
        xors.len() == 1,
        "1 distinct value",
        format!(
            "{}: {}",
            plural(xors.len(), "distinct value"),
            shown.join(", ")
        ),
        "for r = 0…9, crc32(\"{r}…:2003/base\") XOR crc32(\"{r}…:2004/base\") is one constant: :2004's points are :2003's XOR-ed with it",
    );
    Ok(())
}

//! Consistent hash (一致性hash负载): the same key always goes to the same
//! node, and adding or removing a node moves only the keys it takes or gives.
//!
//! Picture the 32-bit hash values as a ring (环, 0 … 2³²−1 and round again).
//! Every node is put on it at several points, its *virtual nodes* (虚拟节点):
//! replica `r` of `http://127.0.0.1:2003/base` sits at
//! `crc32("{r}http://127.0.0.1:2003/base")`, exactly the article's
//! `hash([]byte(strconv.Itoa(i) + addr))` with `crc32.ChecksumIEEE`. A
//! request's key (by default the client's IP, see [`super::hash_key`]) is
//! hashed the same way and walks clockwise to the first virtual node at or
//! after it; past the last one it wraps to the first. That node serves it.
//!
//! ```text
//!  key "10.0.0.1" → crc32 654229907
//!                        │
//!     … 590941900 ───────┼─── 754220744 … 837897840 …
//!        3…:2003         ▼      6…:2003      6…:2004
//!                   first virtual node ≥ 654229907: 6http://127.0.0.1:2003/base
//! ```
//!
//! The ring is a sorted `Vec<u32>` built once; a pick is one crc32 and one
//! binary search ([`slice::partition_point`], the article's `sort.Search`).
//! Nothing changes after construction, so there is no lock at all: the
//! article's `sync.RWMutex` guarded `Add` racing with `Get`, and here adding
//! a node means building a new balancer.
//!
//! # Why adding a node moves only ~1/(N+1) of the keys
//!
//! A new node's virtual nodes land between existing ones and take over only
//! the arcs just before them. Every other key still walks to the same
//! virtual node as before. With `hash(key) % N` instead, going from 4 to 5
//! nodes would move four keys in five.
//!
//! # Replicas (复制因子) — and why they only help with a good hash
//!
//! Each node owns the arcs in front of its virtual nodes, and arcs between
//! random points vary wildly in length. With few points a node's share is
//! luck: the article's two upstreams with 10 replicas each own 28.9% and
//! 71.1% of the ring. More points average the arcs out: nginx's `hash …
//! consistent` and libmemcached's ketama put 160 points per unit of weight.
//! The default here is the article's 10 (`--replicas` raises it).
//!
//! But averaging only works if the points are *independent*, and the
//! article's are not. crc32 is linear: `crc32(x ⊕ y) = crc32(x) ⊕ crc32(y) ⊕
//! c` for inputs of one length. The article's names `"{r}{addr}"` differ
//! only in the leading digits, so every node's points are the *same
//! pattern* XOR-ed with a per-node constant, and adding replicas adds more
//! copies of that pattern instead of averaging anything out. Measured on
//! four weight-1 upstreams (`:2003` … `:2006`), the largest node's share
//! over the fair 25%:
//!
//! ```text
//!                       10 replicas   160 replicas
//!   --ring article         1.69×          2.00×     ← worse: one node has half the keys
//!   --ring nginx           1.32×          1.13×     ← what replicas are for
//! ```
//!
//! [`RingPoints::Nginx`] is nginx's own answer, still with crc32 (its
//! `ngx_http_upstream_init_chash`): point `j` of a node is
//! `crc32(name ‖ point j−1 as 4 little-endian bytes)`, a chain in which every
//! point's input differs from the last in 32 bits instead of one digit.
//! (nginx's `name` is `host\0port`; ours is the upstream URL.) The factory
//! defaults to the article's points so the lab reproduces the article; the
//! lesson is to switch.
//!
//! # Weights: replicas × weight
//!
//! The article's consistent hash ignores the weight it was given. Here a
//! node gets `replicas × weight` virtual nodes (replica numbers `0 …
//! replicas×weight−1`), as nginx does, so a node of weight 2 owns about
//! twice the keys — given a good ring ([`RingPoints::Nginx`]). With weight
//! 1 and [`RingPoints::Article`] the ring is exactly the article's. (The
//! lab's default upstreams have weights 10 and 20: their ring has 100 + 200
//! points.)
//!
//! # Keys
//!
//! A pick without a key (`PickInput::key == None`) hashes the empty string;
//! `crc32("") = 0`, so all of them go to the first virtual node on the ring.
//! If two virtual nodes hash to the same value (crc32 collisions happen in
//! rings of thousands of points), the one of the lower node index, then
//! replica, is first and serves the keys; the article's `hashMap` would keep
//! the one added last.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Balancer, Explanation, Node, Pick, PickInput};

/// The article's replication factor (`NewConsistentHashBalance(10, nil)`).
pub const DEFAULT_REPLICAS: usize = 10;

/// Where a node's virtual nodes go on the ring (`--ring`). Both use crc32
/// (IEEE); they differ in what they hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RingPoints {
    /// The article's: replica `r` at `crc32("{r}{upstream}")`. Uneven,
    /// whatever the number of replicas (see the module doc).
    #[default]
    Article,
    /// nginx's chain: point `j` at `crc32(upstream ‖ point j−1)` (little
    /// endian, point −1 = 0). Evens out as replicas grow.
    Nginx,
}

/// A consistent-hash ring over a fixed list of nodes; lock-free picks.
#[derive(Debug)]
pub struct ConsistentHashBalancer {
    nodes: Vec<Node>,
    replicas: usize,
    points: RingPoints,
    /// The ring: every virtual node's hash, sorted. Kept apart from
    /// `owners` so that the binary search walks a dense array of `u32`s.
    hashes: Vec<u32>,
    /// `owners[i]` is the virtual node at `hashes[i]`.
    owners: Vec<VirtualNode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct VirtualNode {
    /// Index into `nodes`.
    node: u32,
    replica: u32,
}

impl ConsistentHashBalancer {
    /// The article's ring with `replicas × weight` virtual nodes per node.
    /// `replicas` 0 is taken as 1 (a node must be somewhere on the ring).
    pub fn new(nodes: Vec<Node>, replicas: usize) -> ConsistentHashBalancer {
        ConsistentHashBalancer::with_points(nodes, replicas, RingPoints::Article)
    }

    /// A ring whose virtual nodes are placed by `points`.
    pub fn with_points(
        nodes: Vec<Node>,
        replicas: usize,
        points: RingPoints,
    ) -> ConsistentHashBalancer {
        let replicas = replicas.max(1);
        let mut ring: Vec<(u32, VirtualNode)> = Vec::new();
        let mut name = String::new();
        for (index, node) in nodes.iter().enumerate() {
            let upstream = node.upstream.to_string();
            let count = replicas.saturating_mul(node.weight.max(1) as usize);
            ring.reserve(count);
            // nginx's chain starts from the crc state after the name.
            let mut chain_base = crc32fast::Hasher::new();
            chain_base.update(upstream.as_bytes());
            let mut previous: u32 = 0;
            for replica in 0..count {
                let hash = match points {
                    RingPoints::Article => {
                        // strconv.Itoa(i) + addr, in one reused buffer.
                        name.clear();
                        let _ = write!(name, "{replica}{upstream}");
                        crc32fast::hash(name.as_bytes())
                    }
                    RingPoints::Nginx => {
                        let mut hasher = chain_base.clone();
                        hasher.update(&previous.to_le_bytes());
                        previous = hasher.finalize();
                        previous
                    }
                };
                let virtual_node = VirtualNode {
                    node: index as u32,
                    replica: replica as u32,
                };
                ring.push((hash, virtual_node));
            }
        }
        // Sorting by the whole tuple makes colliding hashes deterministic.
        ring.sort_unstable();
        let (hashes, owners) = ring.into_iter().unzip();
        ConsistentHashBalancer {
            nodes,
            replicas,
            points,
            hashes,
            owners,
        }
    }

    /// How the virtual nodes were placed.
    pub fn points(&self) -> RingPoints {
        self.points
    }

    /// Virtual nodes per unit of weight.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Bytes the ring itself takes (hashes and owners; not the node list).
    pub fn ring_bytes(&self) -> usize {
        self.hashes.capacity() * std::mem::size_of::<u32>()
            + self.owners.capacity() * std::mem::size_of::<VirtualNode>()
    }

    /// The number of virtual nodes on the ring.
    pub fn ring_len(&self) -> usize {
        self.hashes.len()
    }

    /// The fraction of the ring (of all possible key hashes) each node
    /// owns, in the nodes' order. Virtual node `i` owns the arc
    /// `(hashes[i−1], hashes[i]]`; the first also owns the wrap-around past
    /// the last. With evenly spread points every weight-1 node would own
    /// `1/N`: how far from that they are is the unevenness of few replicas.
    pub fn shares(&self) -> Vec<f64> {
        let mut owned = vec![0u64; self.nodes.len()];
        let Some(&last) = self.hashes.last() else {
            return Vec::new();
        };
        let mut previous = i64::from(last) - (1i64 << 32);
        for (&hash, owner) in self.hashes.iter().zip(&self.owners) {
            owned[owner.node as usize] += (i64::from(hash) - previous) as u64;
            previous = i64::from(hash);
        }
        owned
            .into_iter()
            .map(|arc| arc as f64 / (1u64 << 32) as f64)
            .collect()
    }

    /// The ring index serving `hash`: the first virtual node at or after it,
    /// wrapping to 0 past the end. `None` only for an empty ring.
    fn ring_index(&self, hash: u32) -> Option<usize> {
        if self.hashes.is_empty() {
            return None;
        }
        // The article's sort.Search(len(keys), func(i) bool { return keys[i] >= hash }).
        let index = self.hashes.partition_point(|&h| h < hash);
        Some(if index == self.hashes.len() { 0 } else { index })
    }
}

impl Balancer for ConsistentHashBalancer {
    fn name(&self) -> &'static str {
        "consistent-hash"
    }

    fn hashes_key(&self) -> bool {
        true
    }

    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn pick(&self, input: &PickInput<'_>) -> Option<Pick> {
        let key = input.key.unwrap_or("");
        let hash = crc32fast::hash(key.as_bytes());
        let ring_index = self.ring_index(hash)?;
        let owner = self.owners[ring_index];
        let index = owner.node as usize;
        let explanation = input.explain.then(|| Explanation::ConsistentHash {
            key: key.to_string(),
            hash,
            virtual_node_hash: self.hashes[ring_index],
            ring_index,
            virtual_node: match self.points {
                RingPoints::Article => format!("{}{}", owner.replica, self.nodes[index].upstream),
                RingPoints::Nginx => format!("{}#{}", self.nodes[index].upstream, owner.replica),
            },
        });
        Some(Pick { index, explanation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::nodes;

    fn pick(balancer: &ConsistentHashBalancer, key: &str) -> usize {
        balancer
            .pick(&PickInput {
                key: Some(key),
                explain: false,
            })
            .unwrap()
            .index
    }

    fn explain(balancer: &ConsistentHashBalancer, key: Option<&str>) -> Explanation {
        balancer
            .pick(&PickInput { key, explain: true })
            .unwrap()
            .explanation
            .unwrap()
    }

    /// Client IPs 10.{i/65536}.{i/256}.{i%256}, as the default `remote-ip` key makes them.
    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff))
            .collect()
    }

    /// The largest share over the mean share: 1.0 is perfectly even.
    fn max_over_mean(shares: &[f64]) -> f64 {
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        shares.iter().cloned().fold(0.0, f64::max) / mean
    }

    #[test]
    fn the_articles_ring() {
        // :2003 and :2004, weight 1, 10 replicas: the article's ring, 20
        // points (values from Python's zlib.crc32, an independent crc32):
        //
        //  ring  hash        virtual node
        //   0     564584060  9http://127.0.0.1:2004/base   ← crc32("") = 0 lands here
        //   1     590941900  3http://127.0.0.1:2003/base
        //   2     754220744  6http://127.0.0.1:2003/base   ← "10.0.0.1"  (654229907)
        //   …
        //  12    2187682739  5http://127.0.0.1:2004/base   ← "192.168.1.7" (1629902442)
        //   …
        //  16    3810789622  1http://127.0.0.1:2004/base   ← "127.0.0.1" (3619153832)
        //   …
        //  19    4263589966  1http://127.0.0.1:2003/base
        //        (wrap)                                    ← "10.0.0.54" (4277854723) → ring 0
        let balancer = ConsistentHashBalancer::new(nodes(&[1, 1]), DEFAULT_REPLICAS);
        assert_eq!(balancer.ring_len(), 20);
        let cases = [
            (
                Some("10.0.0.1"),
                654229907,
                2,
                754220744,
                "6http://127.0.0.1:2003/base",
            ),
            (
                Some("192.168.1.7"),
                1629902442,
                12,
                2187682739,
                "5http://127.0.0.1:2004/base",
            ),
            (
                Some("127.0.0.1"),
                3619153832,
                16,
                3810789622,
                "1http://127.0.0.1:2004/base",
            ),
            (
                Some("10.0.0.54"),
                4277854723,
                0,
                564584060,
                "9http://127.0.0.1:2004/base",
            ),
            (None, 0, 0, 564584060, "9http://127.0.0.1:2004/base"),
        ];
        for (key, hash, ring_index, virtual_node_hash, virtual_node) in cases {
            assert_eq!(
                explain(&balancer, key),
                Explanation::ConsistentHash {
                    key: key.unwrap_or("").to_string(),
                    hash,
                    virtual_node_hash,
                    ring_index,
                    virtual_node: virtual_node.to_string(),
                },
                "{key:?}"
            );
            // And the explanation's name really hashes to its point.
            assert_eq!(crc32fast::hash(virtual_node.as_bytes()), virtual_node_hash);
        }
        // 10 replicas are uneven: 28.9% / 71.1% of all keys.
        let shares = balancer.shares();
        assert!((shares[0] - 0.2887).abs() < 1e-3, "{shares:?}");
        assert!((shares[0] + shares[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn nginx_points_are_a_crc32_chain() {
        // Point j of a node: crc32(upstream ‖ point j−1, little endian), from 0.
        // For :2003 and :2004 at 10 replicas, "10.0.0.1" (654229907) lands on
        // :2003's first point, 678782311 = crc32("http://127.0.0.1:2003/base" ‖ 00 00 00 00).
        let balancer = ConsistentHashBalancer::with_points(
            nodes(&[1, 1]),
            DEFAULT_REPLICAS,
            RingPoints::Nginx,
        );
        let mut input = b"http://127.0.0.1:2003/base".to_vec();
        input.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(crc32fast::hash(&input), 678782311);
        let Explanation::ConsistentHash {
            virtual_node_hash,
            virtual_node,
            ..
        } = explain(&balancer, Some("10.0.0.1"))
        else {
            panic!("not a consistent-hash explanation");
        };
        assert_eq!(virtual_node_hash, 678782311);
        assert_eq!(virtual_node, "http://127.0.0.1:2003/base#0");
    }

    #[test]
    fn a_key_sticks_to_its_node() {
        for points in [RingPoints::Article, RingPoints::Nginx] {
            let balancer = ConsistentHashBalancer::with_points(nodes(&[1, 1, 1]), 160, points);
            let rebuilt = ConsistentHashBalancer::with_points(nodes(&[1, 1, 1]), 160, points);
            let mut used = [false; 3];
            for key in keys(100) {
                let first = pick(&balancer, &key);
                for _ in 0..5 {
                    assert_eq!(pick(&balancer, &key), first);
                }
                assert_eq!(pick(&rebuilt, &key), first, "same nodes, same ring");
                used[first] = true;
            }
            assert_eq!(
                used, [true; 3],
                "{points:?}: 100 keys should reach all three nodes"
            );
        }
    }

    #[test]
    fn adding_a_node_moves_about_one_in_n_plus_1_keys_and_only_to_it() {
        // N = 4 → 5 nodes, 160 replicas, 10,000 keys. Ideal: 1/5 = 2,000 keys
        // move, every one of them to the new node; accept ±30% (1,400..2,600).
        // (Measured: 2,398 on the article's ring, 2,126 on nginx's.)
        for points in [RingPoints::Article, RingPoints::Nginx] {
            let before = ConsistentHashBalancer::with_points(nodes(&[1; 4]), 160, points);
            let after = ConsistentHashBalancer::with_points(nodes(&[1; 5]), 160, points);
            let mut moved = 0;
            for key in keys(10_000) {
                let (old, new) = (pick(&before, &key), pick(&after, &key));
                if old != new {
                    assert_eq!(new, 4, "{points:?}: {key} moved between old nodes");
                    moved += 1;
                }
            }
            assert!(
                (1_400..=2_600).contains(&moved),
                "{points:?}: moved {moved} of 10,000"
            );
        }
    }

    #[test]
    fn more_replicas_spread_more_evenly_on_nginx_points() {
        // Four weight-1 nodes; the fair share is 25% (max/mean = 1.0).
        //
        //                  10 replicas   160 replicas
        //   nginx             1.32×          1.13×
        let spread = |replicas, points| {
            max_over_mean(
                &ConsistentHashBalancer::with_points(nodes(&[1; 4]), replicas, points).shares(),
            )
        };
        let (few, many) = (
            spread(10, RingPoints::Nginx),
            spread(160, RingPoints::Nginx),
        );
        assert!(many < few, "160 replicas {many:.2} vs 10 replicas {few:.2}");
        assert!(
            many < 1.2,
            "160 replicas: the busiest node has {many:.2}× its share"
        );

        // The same, counted with 10,000 real keys over ten nodes
        // (busiest node: 1.51× at 10 replicas, 1.10× at 160).
        let count = |replicas| {
            let balancer =
                ConsistentHashBalancer::with_points(nodes(&[1; 10]), replicas, RingPoints::Nginx);
            let mut counts = [0usize; 10];
            for key in keys(10_000) {
                counts[pick(&balancer, &key)] += 1;
            }
            *counts.iter().max().unwrap() as f64 / 1_000.0
        };
        let (few, many) = (count(10), count(160));
        assert!(many < few && many < 1.2, "keys: {many:.2} vs {few:.2}");
    }

    #[test]
    fn more_replicas_do_not_help_the_articles_points() {
        // crc32 is linear, and "{r}{addr}" varies only the leading digits:
        // every node's points are one pattern XOR-ed with a constant. More
        // replicas, more copies of the pattern; on four nodes it gets worse.
        //
        //                  10 replicas   160 replicas
        //   article           1.69×          2.00×   (one node: 49.9% of the ring)
        let shares = |replicas| ConsistentHashBalancer::new(nodes(&[1; 4]), replicas).shares();
        let (few, many) = (max_over_mean(&shares(10)), max_over_mean(&shares(160)));
        assert!(
            many > few,
            "article: 160 replicas {many:.2} vs 10 replicas {few:.2}"
        );
        assert!(many > 1.9, "{many:.2}");
    }

    #[test]
    fn weight_multiplies_the_virtual_nodes() {
        // Weights 1 and 3 at 160 replicas: 160 + 480 points, shares near ¼
        // and ¾ on nginx's ring (the article's gives 10.7% / 89.3%).
        let balancer = ConsistentHashBalancer::with_points(nodes(&[1, 3]), 160, RingPoints::Nginx);
        assert_eq!(balancer.ring_len(), 640);
        let shares = balancer.shares();
        assert!((shares[0] - 0.25).abs() < 0.03, "{shares:?}");

        // Weight 1 keeps the article's ring (checked above); the lab's
        // default upstreams, weights 10 and 20, get 100 + 200 points.
        let weighted = ConsistentHashBalancer::new(nodes(&[10, 20]), DEFAULT_REPLICAS);
        assert_eq!(weighted.ring_len(), 300);
    }

    #[test]
    fn zero_replicas_still_places_every_node() {
        let balancer = ConsistentHashBalancer::new(nodes(&[1, 1]), 0);
        assert_eq!(balancer.replicas(), 1);
        assert_eq!(balancer.ring_len(), 2);
    }

    #[test]
    fn no_nodes_no_pick() {
        let balancer = ConsistentHashBalancer::new(Vec::new(), 10);
        assert!(balancer.pick(&PickInput::default()).is_none());
        assert!(balancer.shares().is_empty());
    }

    #[test]
    fn a_key_hashing_exactly_onto_a_point_is_served_by_that_point() {
        // The article's search is `keys[i] >= hash`: a point serves the
        // hashes up to and including its own. A virtual node's own name is
        // a key whose crc32 is that point; on the article's ring (see
        // `the_articles_ring`):
        //
        //   ring  hash        virtual node
        //    2     754220744  6http://127.0.0.1:2003/base   ← "6http://127.0.0.1:2003/base"
        //    3     …                                        (754220745 and on)
        //    …
        //   19    4263589966  1http://127.0.0.1:2003/base   ← "1http://127.0.0.1:2003/base"
        //         (wrap → ring 0)                           (4263589967 and on)
        let balancer = ConsistentHashBalancer::new(nodes(&[1, 1]), DEFAULT_REPLICAS);
        for (name, hash, ring_index) in [
            ("6http://127.0.0.1:2003/base", 754220744, 2),
            ("1http://127.0.0.1:2003/base", 4263589966, 19),
        ] {
            assert_eq!(crc32fast::hash(name.as_bytes()), hash);
            assert_eq!(
                explain(&balancer, Some(name)),
                Explanation::ConsistentHash {
                    key: name.to_string(),
                    hash,
                    virtual_node_hash: hash,
                    ring_index,
                    virtual_node: name.to_string(),
                },
            );
        }
        // Every point of bigger rings: its own hash lands on it, the next
        // hash on the next point (past the last one, on the first).
        for points in [RingPoints::Article, RingPoints::Nginx] {
            let balancer = ConsistentHashBalancer::with_points(nodes(&[1, 1, 1]), 160, points);
            let hashes = &balancer.hashes;
            assert!(
                hashes.windows(2).all(|pair| pair[0] < pair[1]),
                "{points:?}: no two points collide on this ring"
            );
            for (index, &hash) in hashes.iter().enumerate() {
                assert_eq!(balancer.ring_index(hash), Some(index), "{points:?} {hash}");
                assert_eq!(
                    balancer.ring_index(hash.wrapping_add(1)),
                    Some((index + 1) % hashes.len()),
                    "{points:?} {hash} + 1"
                );
            }
        }
    }
}

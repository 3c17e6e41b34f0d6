//! The load balancers (负载均衡) of the article: random, round robin,
//! weighted round robin and consistent hash, one file each behind one trait.
//!
//! A [`Balancer`] is built from a fixed list of [`Node`]s and never changes
//! its list: when the set of upstreams changes (health checks, ZooKeeper),
//! a new balancer is built and swapped in, as the article's observers rebuild
//! theirs in `Update()`. What may change inside one is only the algorithm's
//! own state (a round-robin counter, the smooth-WRR weights).
//!
//! Every [`Pick`] can explain itself ([`Explanation`]): the state that decided
//! it. Explanations are made only when asked for ([`PickInput::explain`]), so
//! an ordinary request pays nothing for them.

use std::sync::Arc;

use serde::Serialize;

use crate::proxy::director::Upstream;

/// One upstream the balancer may choose, with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub upstream: Arc<Upstream>,
    /// The article's `weight` (权重); at least 1.
    pub weight: u32,
}

/// What a pick may look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput<'a> {
    /// The request's key for consistent hashing (see `HashKey`); ignored by
    /// the other algorithms.
    pub key: Option<&'a str>,
    /// Whether to return an [`Explanation`] with the pick.
    pub explain: bool,
}

/// The chosen node and, when asked for, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// Index into the balancer's nodes.
    pub index: usize,
    pub explanation: Option<Explanation>,
}

/// The state that decided a pick, per algorithm (serialised for `lab trace`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "algorithm", rename_all = "kebab-case")]
pub enum Explanation {
    Random {
        /// The seed of the whole sequence.
        seed: u64,
        /// This pick's number in the sequence (0, 1, 2, …).
        sequence: u64,
        /// The random number drawn, and the node it chose: `draw % nodes`.
        draw: u64,
        nodes: usize,
    },
    RoundRobin {
        /// The counter's value for this pick; the node is `counter % nodes`.
        counter: u64,
        nodes: usize,
    },
    Weighted {
        /// Every node's weights before this pick (the article's table row).
        before: Vec<WeightState>,
        /// …and after: the chosen node's currentWeight lowered by `total`.
        after: Vec<WeightState>,
        /// The sum of effective weights this round.
        total: i64,
    },
    ConsistentHash {
        /// The request's key, as derived by `--hash-key`.
        key: String,
        /// crc32 (IEEE) of the key.
        hash: u32,
        /// The first virtual node clockwise from `hash` on the ring…
        virtual_node_hash: u32,
        /// …its index in the sorted ring…
        ring_index: usize,
        /// …and its name, `UPSTREAM#REPLICA` hashed to `virtual_node_hash`.
        virtual_node: String,
    },
}

/// One node's smooth weighted round-robin state (nginx's
/// `ngx_http_upstream_rr_peer_t`: weight, effective_weight, current_weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeightState {
    pub weight: i64,
    pub effective: i64,
    pub current: i64,
}

/// A load-balancing algorithm over a fixed list of nodes.
pub trait Balancer: Send + Sync + 'static {
    /// The algorithm's name, as `--lb` spells it.
    fn name(&self) -> &'static str;

    /// The nodes, in the order they were given.
    fn nodes(&self) -> &[Node];

    /// Chooses a node; `None` only when there are no nodes.
    fn pick(&self, input: &PickInput<'_>) -> Option<Pick>;

    /// A request to node `index` failed (passive health check). Weighted
    /// round robin lowers that node's effective weight; others ignore it.
    fn report_failure(&self, _index: usize) {}
}

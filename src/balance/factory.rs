//! The article's `LoadBanlanceFactory` (负载均衡工厂): a balancer of the
//! kind `--lb` names, over a list of nodes. Kept apart from the trait in
//! `mod.rs` so that the algorithms depend on the trait and the factory on
//! the algorithms, never round a circle.

use std::sync::Arc;

use super::consistent_hash::{ConsistentHashBalancer, DEFAULT_REPLICAS, RingPoints};
use super::random::RandomBalancer;
use super::round_robin::RoundRobinBalancer;
use super::weighted::WeightedBalancer;
use super::{Algorithm, Balancer, Node};

/// What [`build`] needs besides the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancerConfig {
    pub algorithm: Algorithm,
    /// The seed of `random`'s sequence; the others ignore it.
    pub seed: u64,
    /// Virtual nodes per unit of weight for `consistent-hash` (the article's
    /// 复制因子, 10); the others ignore it.
    pub replicas: usize,
    /// How `consistent-hash` places its virtual nodes: the article's
    /// `crc32("{r}{addr}")` (default) or nginx's crc32 chain, which is the
    /// one that evens out as `replicas` grows; the others ignore it.
    pub ring: RingPoints,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            algorithm: Algorithm::default(),
            seed: 0,
            replicas: DEFAULT_REPLICAS,
            ring: RingPoints::default(),
        }
    }
}

/// The article's `LoadBanlanceFactory`: one balancer of the chosen kind over
/// `nodes`. It is built once per set of upstreams; when the set changes,
/// build a new one (the article's observers do the same in `Update()`).
pub fn build(nodes: Vec<Node>, config: &BalancerConfig) -> Arc<dyn Balancer> {
    match config.algorithm {
        Algorithm::Random => Arc::new(RandomBalancer::new(nodes, config.seed)),
        Algorithm::RoundRobin => Arc::new(RoundRobinBalancer::new(nodes)),
        Algorithm::Weighted => Arc::new(WeightedBalancer::new(nodes)),
        Algorithm::ConsistentHash => Arc::new(ConsistentHashBalancer::with_points(
            nodes,
            config.replicas,
            config.ring,
        )),
    }
}

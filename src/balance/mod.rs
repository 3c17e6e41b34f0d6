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
//!
//! | `--lb` | file | the article's type |
//! |---|---|---|
//! | `random` | [`random`] | `RandomBalance` (随机负载均衡) |
//! | `round-robin`, `rr` | [`round_robin`] | `RoundRobinBalance` (轮询负载均衡) |
//! | `weighted`, `wrr` | [`weighted`] | `WeightRoundRobinBalance` (加权负载均衡) |
//! | `consistent-hash`, `hash` | [`consistent_hash`] | `ConsistentHashBanlance` (一致性hash负载) |
//!
//! [`build`] ([`factory`]) is the article's factory, `LoadBanlanceFactory`; [`hash_key`]
//! decides what a consistent-hash pick hashes (the article hashes
//! `req.RemoteAddr`).

pub mod candidates;
pub mod consistent_hash;
pub mod factory;
pub mod hash_key;
pub mod random;
pub mod round_robin;
pub mod weighted;

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::upstream::Upstream;

pub use candidates::Candidates;
pub use consistent_hash::{ConsistentHashBalancer, DEFAULT_REPLICAS, RingPoints};
pub use factory::{BalancerConfig, build};
pub use hash_key::HashKey;
pub use random::RandomBalancer;
pub use round_robin::RoundRobinBalancer;
pub use weighted::{WeightedBalancer, WrrRound, smooth_wrr_sequence};

/// One upstream the balancer may choose, with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub upstream: Arc<Upstream>,
    /// The article's `weight` (权重); at least 1.
    pub weight: u32,
    /// `upstream` as text, made once: the name the statistics, the circuit
    /// breakers and `X-Lab-Upstream` know it by, read on every request.
    pub url: Arc<str>,
    /// `url` as a header value, made once (`X-Lab-Upstream` on every answer).
    pub url_header: http::HeaderValue,
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

impl Pick {
    /// The pick, then the nodes after it: where a request goes when it
    /// cannot use the pick (see [`Candidates`]).
    pub fn candidates(&self, nodes: usize) -> Candidates {
        Candidates::after(self.index, nodes)
    }
}

/// The state that decided a pick, per algorithm (serialised for `lab trace`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        /// …and its name. On the article's ring (`--ring article`) it is the
        /// very string hashed to `virtual_node_hash`, replica number then
        /// upstream (`3http://127.0.0.1:2003/base`, the article's
        /// `strconv.Itoa(i) + addr`); on nginx's, `UPSTREAM#N`, the N-th
        /// point of the upstream's crc32 chain.
        virtual_node: String,
    },
}

/// One node's smooth weighted round-robin state (nginx's
/// `ngx_http_upstream_rr_peer_t`: weight, effective_weight, current_weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Whether a pick hashes the request's key ([`PickInput::key`]): only
    /// then does the proxy derive one (`--hash-key`).
    fn hashes_key(&self) -> bool {
        false
    }

    /// A request to node `index` failed (passive health check). Weighted
    /// round robin lowers that node's effective weight; others ignore it.
    fn report_failure(&self, _index: usize) {}
}

impl Node {
    /// A node for `upstream` with `weight`.
    pub fn new(upstream: Upstream, weight: u32) -> Node {
        let url = upstream.to_string();
        Node {
            url_header: http::HeaderValue::from_str(&url)
                .unwrap_or_else(|_| http::HeaderValue::from_static("(unprintable)")),
            url: Arc::from(url),
            upstream: Arc::new(upstream),
            weight,
        }
    }
}

/// The largest weight [`parse_upstream_spec`] accepts. Weights are only
/// relative, and consistent hashing makes `replicas × weight` virtual nodes
/// per upstream, so a typo such as `,100000000` should be an error, not a
/// ring of a billion points.
pub const MAX_WEIGHT: u32 = 10_000;

/// Parses `--upstream URL[,WEIGHT]`, the article's `rb.Add(addr, weight)`:
/// `http://127.0.0.1:2003/base,10`. The weight defaults to 1.
///
/// The weight is what follows the *last* comma, so a URL whose query has a
/// comma in it needs an explicit weight: `http://h/?ids=1,2,1`.
pub fn parse_upstream_spec(s: &str) -> Result<Node, String> {
    let s = s.trim();
    let (url, weight) = match s.rsplit_once(',') {
        // Anything URL-like after the comma (`/`, `?`, `=`, …) is part of the
        // URL's query, not a weight.
        Some((url, tail)) if !tail.contains(['/', '?', '=', '&', '#', ':']) => {
            (url, Some(tail.trim()))
        }
        _ => (s, None),
    };
    let weight = match weight {
        None => 1,
        Some("") => {
            return Err(format!(
                "{s:?} ends with ',' but no weight; write URL or URL,WEIGHT, \
                 e.g. http://127.0.0.1:2003/base,10"
            ));
        }
        Some(w) => parse_weight(w).map_err(|why| format!("{s:?}: {why}"))?,
    };
    let upstream = Upstream::from_str(url)?;
    Ok(Node::new(upstream, weight))
}

fn parse_weight(w: &str) -> Result<u32, String> {
    let hint = "a weight is a whole number from 1 to 10000, e.g. ,10";
    if !w.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("weight {w:?} is not a whole number; {hint}"));
    }
    match w.parse::<u32>() {
        Ok(0) => Err(format!(
            "weight 0 would never be chosen; {hint} (to take an upstream out, leave it off)"
        )),
        Ok(w) if w <= MAX_WEIGHT => Ok(w),
        _ => Err(format!("weight {w} is too large; {hint}")),
    }
}

/// The four algorithms, as `--lb` spells them (the article's `LbType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// 随机: a seeded random node each request.
    Random,
    /// 轮询: each node in turn (the default, as in the article's `main()`).
    #[default]
    #[value(alias = "rr")]
    RoundRobin,
    /// 加权轮询: nginx's smooth weighted round robin.
    #[value(alias = "wrr")]
    Weighted,
    /// 一致性hash: the same key goes to the same node.
    #[value(alias = "hash")]
    ConsistentHash,
}

impl Algorithm {
    /// The canonical `--lb` name, as [`Balancer::name`] returns it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Random => "random",
            Algorithm::RoundRobin => "round-robin",
            Algorithm::Weighted => "weighted",
            Algorithm::ConsistentHash => "consistent-hash",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::ValueEnum;

    /// Nodes `http://127.0.0.1:{2003+i}/base` with these weights.
    pub(crate) fn nodes(weights: &[u32]) -> Vec<Node> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                parse_upstream_spec(&format!("http://127.0.0.1:{}/base,{w}", 2003 + i)).unwrap()
            })
            .collect()
    }

    #[test]
    fn only_consistent_hash_hashes_a_key() {
        for algorithm in Algorithm::value_variants() {
            let config = BalancerConfig {
                algorithm: *algorithm,
                seed: 1,
                replicas: DEFAULT_REPLICAS,
                ring: RingPoints::Article,
            };
            let balancer = build(nodes(&[1, 2]), &config);
            assert_eq!(
                balancer.hashes_key(),
                *algorithm == Algorithm::ConsistentHash,
                "{algorithm}"
            );
        }
    }

    #[test]
    fn upstream_spec_with_and_without_weight() {
        let node = parse_upstream_spec("http://127.0.0.1:2003/base,10").unwrap();
        assert_eq!(node.upstream.to_string(), "http://127.0.0.1:2003/base");
        assert_eq!(node.weight, 10);

        let node = parse_upstream_spec("http://127.0.0.1:2004/base").unwrap();
        assert_eq!(node.weight, 1);

        // The last comma is the weight's; after it, anything URL-like is the URL's.
        let spec = |s| {
            let node = parse_upstream_spec(s).unwrap();
            (node.upstream.to_string(), node.weight)
        };
        assert_eq!(
            spec("http://h/base?ids=1,2,3"),
            ("http://h/base?ids=1,2".into(), 3)
        );
        assert_eq!(
            spec("http://h/base?a=1,b=2"),
            ("http://h/base?a=1,b=2".into(), 1)
        );
        // The documented trap: a query's last comma is read as the weight's,
        // so such a URL needs an explicit weight.
        assert!(parse_upstream_spec("http://h/base?ids=a,b").is_err());
        assert_eq!(
            spec("http://h/base?ids=1,2"),
            ("http://h/base?ids=1".into(), 2)
        );
        assert_eq!(spec(" http://h/base , 7 "), ("http://h/base".into(), 7));
    }

    #[test]
    fn upstream_spec_errors_say_what_to_write() {
        let err = |s| parse_upstream_spec(s).unwrap_err();
        assert!(err("http://h:2003/base,0").contains("never be chosen"));
        assert!(err("http://h:2003/base,ten").contains("not a whole number"));
        assert!(err("http://h:2003/base,-1").contains("not a whole number"));
        assert!(err("http://h:2003/base,99999999999").contains("too large"));
        assert!(err("http://h:2003/base,").contains("no weight"));
        assert!(err("127.0.0.1:2003,5").contains("http://127.0.0.1:2003/base"));
    }

    #[test]
    fn algorithm_names_and_aliases() {
        for (input, algorithm) in [
            ("random", Algorithm::Random),
            ("round-robin", Algorithm::RoundRobin),
            ("rr", Algorithm::RoundRobin),
            ("weighted", Algorithm::Weighted),
            ("wrr", Algorithm::Weighted),
            ("consistent-hash", Algorithm::ConsistentHash),
            ("hash", Algorithm::ConsistentHash),
        ] {
            assert_eq!(Algorithm::from_str(input, false), Ok(algorithm), "{input}");
        }
        // The factory's balancer answers to the name `--lb` printed.
        for algorithm in Algorithm::value_variants() {
            let config = BalancerConfig {
                algorithm: *algorithm,
                ..BalancerConfig::default()
            };
            let balancer = build(nodes(&[1, 2]), &config);
            assert_eq!(balancer.name(), algorithm.name());
            assert_eq!(
                algorithm.to_possible_value().unwrap().get_name(),
                algorithm.name()
            );
            assert_eq!(balancer.nodes().len(), 2);
            assert!(balancer.pick(&PickInput::default()).is_some());
            assert!(
                build(Vec::new(), &config)
                    .pick(&PickInput::default())
                    .is_none()
            );
        }
    }
}

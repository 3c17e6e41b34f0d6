//! Random (随机负载均衡): each pick chooses a node at random.
//!
//! The article's `RandomBalance.Next()` calls `rand.Intn(len(r.rss))`. Over
//! many requests every node gets about `1/n` of them, but any one run is
//! different from the last, and that is bad for a lab: a learner who reads
//! "the third request went to :2004" should see the same thing again.
//!
//! So the randomness here is *seeded* and *counter-based*. Pick number `n`
//! (0, 1, 2, …, from an atomic counter) draws
//!
//! ```text
//! draw = splitmix64(seed, n)        node = draw % nodes
//! ```
//!
//! [`splitmix64`] is the `n`-th output of the SplitMix64 generator started
//! at `seed` — but computed straight from `n`, with no state to carry from
//! one draw to the next. That is what makes it lock-free: the only shared
//! state is the counter, and an atomic `fetch_add` hands each pick its own
//! `n`. A `StdRng` behind a `Mutex` would give the same sequence, but every
//! request would queue for the lock just to roll a die.
//!
//! Reproducible means: the same seed gives the same sequence of draws. When
//! several connections pick at once, which request gets draw 5 and which
//! gets draw 6 is up to the scheduler; the draws themselves are not.
//!
//! `draw % nodes` is very slightly biased towards the low nodes (by at most
//! `nodes / 2^64`), far below anything a lab can measure.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Balancer, Explanation, Node, Pick, PickInput};

/// Picks a seeded, reproducible random node, without a lock.
#[derive(Debug)]
pub struct RandomBalancer {
    nodes: Vec<Node>,
    seed: u64,
    /// How many picks have been made: the next pick's sequence number.
    sequence: AtomicU64,
}

impl RandomBalancer {
    pub fn new(nodes: Vec<Node>, seed: u64) -> RandomBalancer {
        RandomBalancer {
            nodes,
            seed,
            sequence: AtomicU64::new(0),
        }
    }
}

impl Balancer for RandomBalancer {
    fn name(&self) -> &'static str {
        "random"
    }

    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn pick(&self, input: &PickInput<'_>) -> Option<Pick> {
        if self.nodes.is_empty() {
            return None;
        }
        // `Relaxed` is enough: the counter publishes no other memory, it only
        // has to hand every pick a different number, and `fetch_add` does
        // that under any ordering.
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let draw = splitmix64(self.seed, sequence);
        let nodes = self.nodes.len();
        let index = (draw % nodes as u64) as usize;
        let explanation = input.explain.then_some(Explanation::Random {
            seed: self.seed,
            sequence,
            draw,
            nodes,
        });
        Some(Pick { index, explanation })
    }
}

/// The `n`-th output (from 0) of SplitMix64 seeded with `seed`.
///
/// SplitMix64 (Steele, Lea & Flood, 2014; the seeder of Java's
/// `SplittableRandom` and of xoshiro) walks a state through
/// `seed + γ, seed + 2γ, …` with γ the odd "golden ratio" constant, and
/// scrambles each state with two multiply-xorshift rounds. Because the
/// `n`-th state is simply `seed + (n + 1)·γ`, any draw can be computed on
/// its own.
pub fn splitmix64(seed: u64, n: u64) -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::nodes;

    fn sequence(balancer: &RandomBalancer, picks: usize) -> Vec<usize> {
        (0..picks)
            .map(|_| balancer.pick(&PickInput::default()).unwrap().index)
            .collect()
    }

    #[test]
    fn splitmix64_matches_the_reference_generator() {
        // The reference C code (`x = 0; next()` three times) prints these.
        assert_eq!(splitmix64(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0, 1), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(0, 2), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn same_seed_same_sequence() {
        // Seed 7 over three nodes, draw % 3 for picks 0..12. A second
        // balancer with the same seed replays it exactly.
        let first = sequence(&RandomBalancer::new(nodes(&[1, 1, 1]), 7), 12);
        let again = sequence(&RandomBalancer::new(nodes(&[1, 1, 1]), 7), 12);
        assert_eq!(first, again);
        let expected: Vec<usize> = (0..12).map(|n| (splitmix64(7, n) % 3) as usize).collect();
        assert_eq!(first, expected);
    }

    #[test]
    fn different_seeds_differ() {
        let one = sequence(&RandomBalancer::new(nodes(&[1; 10]), 1), 20);
        let two = sequence(&RandomBalancer::new(nodes(&[1; 10]), 2), 20);
        assert_ne!(one, two);
    }

    #[test]
    fn roughly_uniform_over_10k_picks() {
        // 4 nodes × 2,500 expected each; one standard deviation is about 43,
        // so ±10% (250) is nearly six of them.
        let balancer = RandomBalancer::new(nodes(&[1, 1, 1, 1]), 2021);
        let mut counts = [0usize; 4];
        for index in sequence(&balancer, 10_000) {
            counts[index] += 1;
        }
        for count in counts {
            assert!((2_250..=2_750).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn weights_do_not_matter() {
        // The article's RandomBalance ignores the weight; so does this one.
        let plain = sequence(&RandomBalancer::new(nodes(&[1, 1, 1]), 3), 30);
        let weighted = sequence(&RandomBalancer::new(nodes(&[5, 1, 1]), 3), 30);
        assert_eq!(plain, weighted);
    }

    #[test]
    fn explanation_names_the_draw() {
        let balancer = RandomBalancer::new(nodes(&[1, 1, 1]), 7);
        balancer.pick(&PickInput::default());
        let pick = balancer
            .pick(&PickInput {
                explain: true,
                ..PickInput::default()
            })
            .unwrap();
        let draw = splitmix64(7, 1);
        assert_eq!(pick.index, (draw % 3) as usize);
        assert_eq!(
            pick.explanation,
            Some(Explanation::Random {
                seed: 7,
                sequence: 1,
                draw,
                nodes: 3
            })
        );
    }

    #[test]
    fn no_nodes_no_pick() {
        assert!(
            RandomBalancer::new(Vec::new(), 1)
                .pick(&PickInput::default())
                .is_none()
        );
    }
}

//! Round robin (轮询负载均衡): each node in turn, 0, 1, 2, 0, 1, 2, …
//!
//! The article's `RoundRobinBalance` keeps `curIndex`, returns
//! `rss[curIndex]` and moves it on with `(curIndex + 1) % len`. In Go's
//! `ReverseProxy` the Director runs on every request's own goroutine, so two
//! requests can read the same `curIndex` at once: both go to the same
//! upstream and one turn is lost (a data race, which `go test -race` would
//! report).
//!
//! Here the index is an [`AtomicU64`] counter that only ever grows, and the
//! node is `counter % nodes`. `fetch_add` is one indivisible
//! read-and-increment, so every pick gets its own number even when a
//! thousand connections pick at once, and with `n` picks over `k` nodes each
//! node gets exactly `n / k` (± 1). No lock: a request never waits for
//! another to finish choosing.
//!
//! Why not wrap the counter with `% len` as the article does? Storing the
//! wrapped value back would be a second step that another thread could
//! interleave with. A `u64` that grows by one per request overflows after
//! 584 years at a billion requests a second, so it is simply left to grow.
//!
//! Weights are ignored, as in the article: see [`super::weighted`] for that.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Balancer, Explanation, Node, Pick, PickInput};

/// Each node in turn, without a lock.
#[derive(Debug)]
pub struct RoundRobinBalancer {
    nodes: Vec<Node>,
    /// The article's `curIndex`, never wrapped: the node is `counter % len`.
    counter: AtomicU64,
}

impl RoundRobinBalancer {
    pub fn new(nodes: Vec<Node>) -> RoundRobinBalancer {
        RoundRobinBalancer {
            nodes,
            counter: AtomicU64::new(0),
        }
    }
}

impl Balancer for RoundRobinBalancer {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn pick(&self, input: &PickInput<'_>) -> Option<Pick> {
        if self.nodes.is_empty() {
            return None;
        }
        // `Relaxed`: we need each pick to get a distinct number, not to order
        // any other memory around it; `fetch_add` is atomic under any ordering.
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let nodes = self.nodes.len();
        let index = (counter % nodes as u64) as usize;
        let explanation = input
            .explain
            .then_some(Explanation::RoundRobin { counter, nodes });
        Some(Pick { index, explanation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::nodes;

    #[test]
    fn cycles_through_the_nodes_in_order() {
        // counter: 0 1 2 3 4 5 6
        // node:    a b c a b c a      (counter % 3)
        let balancer = RoundRobinBalancer::new(nodes(&[1, 1, 1]));
        let picks: Vec<usize> = (0..7)
            .map(|_| balancer.pick(&PickInput::default()).unwrap().index)
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn weights_do_not_matter() {
        let balancer = RoundRobinBalancer::new(nodes(&[10, 20]));
        let picks: Vec<usize> = (0..4)
            .map(|_| balancer.pick(&PickInput::default()).unwrap().index)
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn explanation_shows_the_counter() {
        let balancer = RoundRobinBalancer::new(nodes(&[1, 1, 1]));
        let explain = PickInput {
            explain: true,
            ..PickInput::default()
        };
        for counter in 0..4 {
            let pick = balancer.pick(&explain).unwrap();
            assert_eq!(
                pick.explanation,
                Some(Explanation::RoundRobin { counter, nodes: 3 })
            );
        }
        // Not asked, not made.
        assert_eq!(
            balancer.pick(&PickInput::default()).unwrap().explanation,
            None
        );
    }

    #[test]
    fn two_threads_get_exactly_equal_shares() {
        // 2 threads × 10,000 picks over 4 nodes: the counter hands out
        // 0..20,000 exactly once each, so every node gets exactly 5,000, however
        // the threads interleave. (The article's unsynchronised curIndex
        // would not promise that.)
        let balancer = RoundRobinBalancer::new(nodes(&[1, 1, 1, 1]));
        let counts = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut counts = [0usize; 4];
                        for _ in 0..10_000 {
                            counts[balancer.pick(&PickInput::default()).unwrap().index] += 1;
                        }
                        counts
                    })
                })
                .collect();
            let mut total = [0usize; 4];
            for worker in workers {
                for (t, c) in total.iter_mut().zip(worker.join().unwrap()) {
                    *t += c;
                }
            }
            total
        });
        assert_eq!(counts, [5_000; 4]);
    }
}

//! Weighted round robin (加权负载均衡): nginx's *smooth* weighted round
//! robin, the article's `WeightRoundRobinBalance`.
//!
//! Every node carries three numbers (a [`WeightState`]):
//!
//! - `weight` (权重): the weight it was configured with;
//! - `effective` (effectiveWeight, 有效权重): the weight it is trusted with
//!   now; equal to `weight` until the node fails (see below);
//! - `current` (currentWeight, 节点当前权重): a running score, 0 at the start.
//!
//! Each pick (算法流程):
//!
//! 1. every node: `current += effective`; `total = Σ effective`
//!    (totalWeight, 有效权重之和);
//! 2. the node with the largest `current` is chosen (on a tie, the first);
//! 3. the chosen node pays for it: `current -= total`.
//!
//! With weights a=5, b=1, c=1 (total 7), starting from 0, 0, 0:
//!
//! ```text
//! pick  current after step 1   chosen   after step 3
//!  1       5   1   1             a       -2   1   1
//!  2       3   2   2             a       -4   2   2
//!  3       1   3   3             b        1  -4   3
//!  4       6  -3   4             a       -1  -3   4
//!  5       4  -2   5             c        4  -2  -2
//!  6       9  -1  -1             a        2  -1  -1
//!  7       7   0   0             a        0   0   0   ← back to the start
//! ```
//!
//! a a b a c a a: a gets 5 of every 7, b and c one each, and — the
//! "smooth" — they are spread through the cycle instead of a a a a a b c.
//! Because the currents always sum to 0 again after a full cycle (each pick
//! adds `total` and takes `total` away), the pattern repeats for ever.
//! [`smooth_wrr_sequence`] computes this table for any weights.
//!
//! # Failures: effectiveWeight (passive health check)
//!
//! When a request to a node fails, [`Balancer::report_failure`] lowers its
//! `effective`, so it is chosen less, and each pick then wins a little of it
//! back. The rule is nginx's (`ngx_http_upstream_free_round_robin_peer` and
//! `ngx_http_upstream_get_peer`):
//!
//! - on a failure: `effective -= weight / max_fails`, never below 0. With
//!   nginx's default `max_fails = 1` one failure drops `effective` to 0; with
//!   `max_fails = weight` it is the article's "故障时 -1"; `max_fails = 0`
//!   turns the lowering off. See [`WeightedBalancer::with_max_fails`].
//! - on every pick, for every node, *after* its `effective` was added in
//!   step 1: `if effective < weight { effective += 1 }` (the article's step 3,
//!   "通讯成功+1，直到恢复到weight大小").
//!
//! A node at `effective` 0 adds 0 a round, so it is not chosen while the
//! others have weight, and it is back to full weight `weight` picks later.
//! (nginx also takes a node out for `fail_timeout` after `max_fails`
//! failures; that is health checking, not balancing, and is left to the
//! health-check lab.)
//!
//! # Why a lock here, when round robin has none
//!
//! A pick reads and writes *every* node's `current` and must see them all
//! at one moment: two picks interleaving would both add their `effective`s,
//! both choose the same node and the cycle's proportions would drift. No
//! single atomic covers a whole vector, so the state sits behind a
//! [`Mutex`], held only for the few additions of one pick — no allocation,
//! no I/O, no logging inside it. The explanation (when asked for) is copied
//! out under the lock and formatted after it is released.

use std::sync::{Mutex, PoisonError};

use super::{Balancer, Explanation, Node, Pick, PickInput, WeightState};

impl WeightState {
    /// A node's state before its first pick: trusted with its full weight,
    /// current 0. A weight of 0 is treated as 1 (nodes have weight ≥ 1).
    pub fn new(weight: u32) -> WeightState {
        let weight = i64::from(weight.max(1));
        WeightState {
            weight,
            effective: weight,
            current: 0,
        }
    }
}

/// nginx's smooth weighted round robin over a fixed list of nodes.
#[derive(Debug)]
pub struct WeightedBalancer {
    nodes: Vec<Node>,
    max_fails: u32,
    /// One [`WeightState`] per node, in the nodes' order.
    state: Mutex<Vec<WeightState>>,
}

impl WeightedBalancer {
    /// A balancer with nginx's default `max_fails = 1`: one failure drops a
    /// node's effective weight to 0.
    pub fn new(nodes: Vec<Node>) -> WeightedBalancer {
        WeightedBalancer::with_max_fails(nodes, 1)
    }

    /// A balancer whose failures lower effective weight by
    /// `weight / max_fails` (0 = failures change nothing).
    pub fn with_max_fails(nodes: Vec<Node>, max_fails: u32) -> WeightedBalancer {
        let state = nodes.iter().map(|n| WeightState::new(n.weight)).collect();
        WeightedBalancer {
            nodes,
            max_fails,
            state: Mutex::new(state),
        }
    }

    /// A copy of every node's state now (for `lab trace` and the labs).
    pub fn states(&self) -> Vec<WeightState> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<WeightState>> {
        // A panic while the lock was held (there is none in this arithmetic)
        // would leave plain integers behind, every one of them a valid state:
        // carrying on is safe, so a poisoned lock is simply taken over.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Balancer for WeightedBalancer {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn pick(&self, input: &PickInput<'_>) -> Option<Pick> {
        if !input.explain {
            // The common path: lock, add, unlock. Nothing else.
            let (index, _total) = smooth_wrr_step(&mut self.lock())?;
            return Some(Pick {
                index,
                explanation: None,
            });
        }
        let (index, total, start, after) = {
            let mut state = self.lock();
            let start = state.clone();
            let (index, total) = smooth_wrr_step(&mut state)?;
            (index, total, start, state.clone())
        };
        let before = table_row(&start);
        Some(Pick {
            index,
            explanation: Some(Explanation::Weighted {
                before,
                after,
                total,
            }),
        })
    }

    fn report_failure(&self, index: usize) {
        if let Some(state) = self.lock().get_mut(index) {
            lower_effective(state, self.max_fails);
        }
    }
}

/// One pick of smooth weighted round robin over `states`: steps 1–3 and the
/// recovery of effective weights. Returns the chosen index and the total of
/// effective weights, or `None` when there are no nodes.
///
/// This is the whole algorithm; [`WeightedBalancer`] only puts a lock around
/// it. It follows the article's `Next()` (and nginx's
/// `ngx_http_upstream_get_peer`) line by line.
pub fn smooth_wrr_step(states: &mut [WeightState]) -> Option<(usize, i64)> {
    let mut total = 0;
    let mut best: Option<(usize, i64)> = None;
    for (i, node) in states.iter_mut().enumerate() {
        // step 1: currentWeight += effectiveWeight; totalWeight += effectiveWeight
        node.current += node.effective;
        total += node.effective;
        // recovery: a node lowered by a failure earns one back per pick.
        if node.effective < node.weight {
            node.effective += 1;
        }
        // step 2: the largest currentWeight; `>` keeps the first on a tie.
        if best.is_none_or(|(_, current)| node.current > current) {
            best = Some((i, node.current));
        }
    }
    let (chosen, _) = best?;
    // step 3: the chosen node's currentWeight -= totalWeight
    states[chosen].current -= total;
    Some((chosen, total))
}

/// A failure of the node with `state`: nginx's `effective -= weight /
/// max_fails`, never below 0; `max_fails == 0` changes nothing.
pub fn lower_effective(state: &mut WeightState, max_fails: u32) {
    if max_fails == 0 {
        return;
    }
    state.effective = (state.effective - state.weight / i64::from(max_fails)).max(0);
}

/// The table row the article draws for a pick, from the state just before
/// it: each node's `current` after step 1, with the `effective` that was
/// added. (`total` is the sum of those `effective`s.)
fn table_row(start: &[WeightState]) -> Vec<WeightState> {
    start
        .iter()
        .map(|s| WeightState {
            current: s.current + s.effective,
            ..*s
        })
        .collect()
}

/// One row of the smooth-WRR table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrrRound {
    /// The chosen node's index.
    pub chosen: usize,
    /// Every node after step 1 (`current += effective`): what was compared.
    pub before: Vec<WeightState>,
    /// Every node after step 3 (the chosen one's `current -= total`).
    pub after: Vec<WeightState>,
    /// Σ effective of this pick.
    pub total: i64,
}

/// The first `picks` rows of the smooth-WRR table for fresh nodes with
/// `weights`, as [`Explanation::Weighted`] reports them pick by pick: the
/// answer key for a learner who fills in the article's table by hand.
pub fn smooth_wrr_sequence(weights: &[u32], picks: usize) -> Vec<WrrRound> {
    let mut states: Vec<WeightState> = weights.iter().map(|&w| WeightState::new(w)).collect();
    let mut rounds = Vec::with_capacity(picks);
    for _ in 0..picks {
        let before = table_row(&states);
        let Some((chosen, total)) = smooth_wrr_step(&mut states) else {
            break;
        };
        rounds.push(WrrRound {
            chosen,
            before,
            after: states.clone(),
            total,
        });
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::nodes;

    const A: usize = 0;
    const B: usize = 1;
    const C: usize = 2;

    fn picks(balancer: &WeightedBalancer, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| balancer.pick(&PickInput::default()).unwrap().index)
            .collect()
    }

    fn currents(states: &[WeightState]) -> Vec<i64> {
        states.iter().map(|s| s.current).collect()
    }

    fn effectives(states: &[WeightState]) -> Vec<i64> {
        states.iter().map(|s| s.effective).collect()
    }

    #[test]
    fn nginx_5_1_1_table() {
        // The module doc's table; total is 7 every pick.
        //
        // pick  after step 1   chosen   after step 3
        //  1      5  1  1        a       -2  1  1
        //  2      3  2  2        a       -4  2  2
        //  3      1  3  3        b        1 -4  3
        //  4      6 -3  4        a       -1 -3  4
        //  5      4 -2  5        c        4 -2 -2
        //  6      9 -1 -1        a        2 -1 -1
        //  7      7  0  0        a        0  0  0
        let expected: [(usize, [i64; 3], [i64; 3]); 7] = [
            (A, [5, 1, 1], [-2, 1, 1]),
            (A, [3, 2, 2], [-4, 2, 2]),
            (B, [1, 3, 3], [1, -4, 3]),
            (A, [6, -3, 4], [-1, -3, 4]),
            (C, [4, -2, 5], [4, -2, -2]),
            (A, [9, -1, -1], [2, -1, -1]),
            (A, [7, 0, 0], [0, 0, 0]),
        ];
        let rounds = smooth_wrr_sequence(&[5, 1, 1], 7);
        for (round, (chosen, before, after)) in rounds.iter().zip(expected) {
            assert_eq!(round.chosen, chosen);
            assert_eq!(currents(&round.before), before);
            assert_eq!(currents(&round.after), after);
            assert_eq!(round.total, 7);
            assert_eq!(effectives(&round.after), [5, 1, 1]);
        }

        // The balancer gives the same, and repeats it: a a b a c a a | a a b a c a a
        let balancer = WeightedBalancer::new(nodes(&[5, 1, 1]));
        assert_eq!(
            picks(&balancer, 14),
            [A, A, B, A, C, A, A, A, A, B, A, C, A, A]
        );
    }

    #[test]
    fn explanation_is_the_table_row() {
        let balancer = WeightedBalancer::new(nodes(&[5, 1, 1]));
        let explain = PickInput {
            explain: true,
            ..PickInput::default()
        };
        for round in smooth_wrr_sequence(&[5, 1, 1], 7) {
            let pick = balancer.pick(&explain).unwrap();
            assert_eq!(pick.index, round.chosen);
            assert_eq!(
                pick.explanation,
                Some(Explanation::Weighted {
                    before: round.before,
                    after: round.after,
                    total: round.total,
                })
            );
        }
    }

    #[test]
    fn rows_chain_into_each_other() {
        // The next row's "after step 1" is this row's "after step 3" plus
        // each node's effective: nothing happens between picks.
        let rounds = smooth_wrr_sequence(&[4, 3, 2], 18);
        for pair in rounds.windows(2) {
            let predicted: Vec<i64> = pair[0]
                .after
                .iter()
                .map(|s| s.current + s.effective)
                .collect();
            assert_eq!(currents(&pair[1].before), predicted);
        }
        // The article's 4+3+2=9: a b c a b a c b a — 4, 3 and 2 of every 9.
        let chosen: Vec<usize> = rounds.iter().map(|r| r.chosen).collect();
        assert_eq!(chosen[..9], [A, B, C, A, B, A, C, B, A][..]);
        assert_eq!(chosen[..9], chosen[9..]);
    }

    #[test]
    fn one_failure_drops_effective_to_0_then_it_recovers_one_per_pick() {
        // max_fails = 1 (nginx's default): a fails once, effective 5 - 5/1 = 0.
        //
        // Each row: effective added in step 1 | current after step 1 | chosen
        // (total = sum of the effectives added), then every effective below its
        // weight goes up by one.
        //
        // pick  effective   current after 1   total  chosen  current after 3
        //  1     0 1 1       0  1  1            2      b        0 -1  1
        //  2     1 1 1       1  0  2            3      c        1  0 -1
        //  3     2 1 1       3  1  0            4      a       -1  1  0
        //  4     3 1 1       2  2  1            5      a (tie) -3  2  1
        //  5     4 1 1       1  3  2            6      b        1 -3  2
        //  6     5 1 1       6 -2  3            7      a       -1 -2  3
        //  7     5 1 1       4 -1  4            7      a (tie) -3 -1  4
        //
        // a is left alone for two picks, then comes back as its weight does.
        let balancer = WeightedBalancer::new(nodes(&[5, 1, 1]));
        balancer.report_failure(A);
        assert_eq!(effectives(&balancer.states()), [0, 1, 1]);

        let explain = PickInput {
            explain: true,
            ..PickInput::default()
        };
        // (effective added, current after step 1, total, chosen, current after step 3)
        type Row = ([i64; 3], [i64; 3], i64, usize, [i64; 3]);
        let expected: [Row; 7] = [
            ([0, 1, 1], [0, 1, 1], 2, B, [0, -1, 1]),
            ([1, 1, 1], [1, 0, 2], 3, C, [1, 0, -1]),
            ([2, 1, 1], [3, 1, 0], 4, A, [-1, 1, 0]),
            ([3, 1, 1], [2, 2, 1], 5, A, [-3, 2, 1]),
            ([4, 1, 1], [1, 3, 2], 6, B, [1, -3, 2]),
            ([5, 1, 1], [6, -2, 3], 7, A, [-1, -2, 3]),
            ([5, 1, 1], [4, -1, 4], 7, A, [-3, -1, 4]),
        ];
        for (effective, before, total, chosen, after) in expected {
            let pick = balancer.pick(&explain).unwrap();
            let Some(Explanation::Weighted {
                before: b,
                after: a,
                total: t,
            }) = pick.explanation
            else {
                panic!("no weighted explanation");
            };
            assert_eq!(effectives(&b), effective);
            assert_eq!(currents(&b), before);
            assert_eq!(t, total);
            assert_eq!(pick.index, chosen);
            assert_eq!(currents(&a), after);
        }
        assert_eq!(effectives(&balancer.states()), [5, 1, 1]);
    }

    #[test]
    fn max_fails_sets_the_step_and_effective_never_goes_below_0() {
        // max_fails = weight: the article's "故障时 -1".
        let balancer = WeightedBalancer::with_max_fails(nodes(&[5, 1, 1]), 5);
        balancer.report_failure(A);
        assert_eq!(effectives(&balancer.states()), [4, 1, 1]);
        balancer.report_failure(A);
        assert_eq!(effectives(&balancer.states()), [3, 1, 1]);
        for _ in 0..10 {
            balancer.report_failure(A);
        }
        assert_eq!(effectives(&balancer.states()), [0, 1, 1]);

        // max_fails = 2: 5 / 2 = 2 per failure: 5 → 3 → 1 → 0.
        let balancer = WeightedBalancer::with_max_fails(nodes(&[5, 1, 1]), 2);
        let mut seen = Vec::new();
        for _ in 0..3 {
            balancer.report_failure(A);
            seen.push(balancer.states()[A].effective);
        }
        assert_eq!(seen, [3, 1, 0]);

        // max_fails = 0: failures are not counted.
        let balancer = WeightedBalancer::with_max_fails(nodes(&[5, 1, 1]), 0);
        balancer.report_failure(A);
        assert_eq!(effectives(&balancer.states()), [5, 1, 1]);

        // An index past the end is ignored.
        WeightedBalancer::new(nodes(&[1])).report_failure(7);
    }

    #[test]
    fn two_threads_get_exact_proportions() {
        // Weights 2, 3, 5: every 10 consecutive picks (whoever makes them)
        // are one full cycle, because the lock puts all picks in one order.
        // 2 threads × 10,000 = 2,000 cycles: exactly 4,000, 6,000, 10,000.
        let balancer = WeightedBalancer::new(nodes(&[2, 3, 5]));
        let counts = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut counts = [0usize; 3];
                        for _ in 0..10_000 {
                            counts[balancer.pick(&PickInput::default()).unwrap().index] += 1;
                        }
                        counts
                    })
                })
                .collect();
            let mut total = [0usize; 3];
            for worker in workers {
                for (t, c) in total.iter_mut().zip(worker.join().unwrap()) {
                    *t += c;
                }
            }
            total
        });
        assert_eq!(counts, [4_000, 6_000, 10_000]);
        assert_eq!(currents(&balancer.states()), [0, 0, 0]);
    }

    #[test]
    fn no_nodes_no_pick() {
        assert!(
            WeightedBalancer::new(Vec::new())
                .pick(&PickInput::default())
                .is_none()
        );
        assert!(smooth_wrr_sequence(&[], 3).is_empty());
    }
}

//! The balancer's explanation (`X-Lab-Pick`) read back by the client: which
//! node it chose, what the weights were, and the compact one-cell form the
//! trace table shows.
//!
//! The proxy serialises `lab::balance::Explanation` into the header; this
//! reads the same type back and adds what the trace needs from it.
//! Nodes are named a, b, c … in the proxy's `--upstream` order ([`letter`]).

use serde_json::Value;

use crate::balance::{Explanation, WeightState};

/// The reading side of the balancer's explanation: the same type the proxy
/// serialises, so there is one definition of what `X-Lab-Pick` carries.
impl Explanation {
    /// Reads an `X-Lab-Pick` value; `None` for anything else.
    pub fn read(pick: &Value) -> Option<Explanation> {
        serde_json::from_value(pick.clone()).ok()
    }

    /// The algorithm's `--lb` name.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Explanation::Random { .. } => "random",
            Explanation::RoundRobin { .. } => "round-robin",
            Explanation::Weighted { .. } => "weighted",
            Explanation::ConsistentHash { .. } => "consistent-hash",
        }
    }

    /// How many nodes the balancer had, when the explanation says.
    pub fn nodes(&self) -> Option<usize> {
        match self {
            Explanation::Random { nodes, .. } | Explanation::RoundRobin { nodes, .. } => {
                Some(*nodes)
            }
            Explanation::Weighted { before, .. } => Some(before.len()),
            Explanation::ConsistentHash { .. } => None,
        }
    }

    /// The chosen node's index in the proxy's `--upstream` order, when the
    /// explanation determines it (a hash names its virtual node instead).
    pub fn chosen(&self) -> Option<usize> {
        match self {
            Explanation::Random { draw, nodes, .. } => index(*draw, *nodes),
            Explanation::RoundRobin { counter, nodes } => index(*counter, *nodes),
            Explanation::Weighted {
                before,
                after,
                total,
            } => weighted_choice(before, after, *total),
            Explanation::ConsistentHash { .. } => None,
        }
    }

    /// The configured weights, in node order (weighted round robin only).
    pub fn weights(&self) -> Option<Vec<i64>> {
        match self {
            Explanation::Weighted { before, .. } => Some(before.iter().map(|w| w.weight).collect()),
            _ => None,
        }
    }

    /// The compact cell: `a 10→10 b 20→-10*` (weighted: every node's
    /// currentWeight after step 1 → after the pick, `*` on the chosen one),
    /// `#4 % 2` (round robin), `1234 % 2` (random: draw % nodes),
    /// `KEY → crc32 → virtual node` (consistent hash).
    pub fn cell(&self) -> String {
        self.cell_naming(letter)
    }

    /// [`Explanation::cell`] with nodes named by `name` (their index in the
    /// balancer): letters within one upstream set, `#0`, `#1` across sets,
    /// where an index means a different upstream in each set.
    pub fn cell_naming(&self, name: impl Fn(usize) -> String) -> String {
        match self {
            Explanation::Random { draw, nodes, .. } => format!("{draw} % {nodes}"),
            Explanation::RoundRobin { counter, nodes } => format!("#{counter} % {nodes}"),
            Explanation::Weighted { before, after, .. } => {
                let chosen = self.chosen();
                before
                    .iter()
                    .zip(after)
                    .enumerate()
                    .map(|(i, (b, a))| {
                        let mark = if chosen == Some(i) { "*" } else { "" };
                        format!("{} {}→{}{mark}", name(i), b.current, a.current)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Explanation::ConsistentHash {
                key,
                hash,
                virtual_node,
                ..
            } => format!("{key} → {hash} → {virtual_node}"),
        }
    }
}

/// `value % nodes`, or `None` with no nodes.
fn index(value: u64, nodes: usize) -> Option<usize> {
    let nodes = u64::try_from(nodes).ok().filter(|&n| n > 0)?;
    usize::try_from(value % nodes).ok()
}

/// The node that paid `total` (the only `current` that went down by it);
/// failing that, the largest `current` of step 2, first on a tie.
fn weighted_choice(before: &[WeightState], after: &[WeightState], total: i64) -> Option<usize> {
    let paid: Vec<usize> = before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (b, a))| total != 0 && b.current.checked_sub(total) == Some(a.current))
        .map(|(i, _)| i)
        .collect();
    if let [only] = paid[..] {
        return Some(only);
    }
    let mut best: Option<(usize, i64)> = None;
    for (i, b) in before.iter().enumerate() {
        if best.is_none_or(|(_, current)| b.current > current) {
            best = Some((i, b.current));
        }
    }
    best.map(|(i, _)| i)
}

/// The short name of node `i`: a, b, … z, then n26, n27, ….
pub fn letter(i: usize) -> String {
    match u8::try_from(i) {
        Ok(i) if i < 26 => char::from(b'a' + i).to_string(),
        _ => format!("n{i}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weights(pairs: &[(i64, i64)]) -> Vec<Value> {
        pairs
            .iter()
            .map(|&(weight, current)| json!({"weight": weight, "effective": weight, "current": current}))
            .collect()
    }

    #[test]
    fn weighted_cell_marks_the_node_that_paid() {
        // Weights 10 and 20, first pick: step 1 gives 10, 20; b pays 30.
        let pick = json!({
            "algorithm": "weighted",
            "before": weights(&[(10, 10), (20, 20)]),
            "after": weights(&[(10, 10), (20, -10)]),
            "total": 30,
        });
        let explained = Explanation::read(&pick).unwrap();
        assert_eq!(explained.chosen(), Some(1));
        assert_eq!(explained.cell(), "a 10→10 b 20→-10*");
        assert_eq!(explained.weights(), Some(vec![10, 20]));
        assert_eq!(explained.nodes(), Some(2));
        assert_eq!(explained.algorithm(), "weighted");
    }

    #[test]
    fn a_hostile_pick_does_not_overflow() {
        let pick = json!({
            "algorithm": "weighted",
            "before": weights(&[(i64::MAX, i64::MIN), (1, 1)]),
            "after": weights(&[(i64::MAX, i64::MAX), (1, 1)]),
            "total": 1,
        });
        let explained = Explanation::read(&pick).unwrap();
        // No panic; the largest current wins when no node visibly paid.
        assert_eq!(explained.chosen(), Some(1));
    }

    #[test]
    fn counters_and_draws_choose_by_remainder() {
        let rr = Explanation::read(&json!({"algorithm": "round-robin", "counter": 5, "nodes": 2}));
        let rr = rr.unwrap();
        assert_eq!((rr.chosen(), rr.cell()), (Some(1), "#5 % 2".to_string()));
        let random = Explanation::read(&json!({
            "algorithm": "random", "seed": 7, "sequence": 0, "draw": 12, "nodes": 3
        }))
        .unwrap();
        assert_eq!(
            (random.chosen(), random.cell()),
            (Some(0), "12 % 3".to_string())
        );
        let none =
            Explanation::read(&json!({"algorithm": "round-robin", "counter": 5, "nodes": 0}));
        assert_eq!(none.unwrap().chosen(), None);
    }

    #[test]
    fn hash_cell_shows_key_crc_and_virtual_node() {
        let pick = json!({
            "algorithm": "consistent-hash", "key": "127.0.0.1", "hash": 42,
            "virtual_node_hash": 50, "ring_index": 3, "virtual_node": "3http://h/base"
        });
        let explained = Explanation::read(&pick).unwrap();
        assert_eq!(explained.cell(), "127.0.0.1 → 42 → 3http://h/base");
        assert_eq!(explained.chosen(), None);
        assert_eq!(Explanation::read(&json!({"algorithm": "psychic"})), None);
    }

    #[test]
    fn letters_run_a_to_z_then_numbers() {
        assert_eq!(letter(0), "a");
        assert_eq!(letter(25), "z");
        assert_eq!(letter(26), "n26");
    }
}

//! The report's names for the upstreams: `a = http://…`, `b = …`, in the
//! balancer's node order when every pick says which node it chose (so a
//! pick's explanation can use the same letters), else in the order first
//! seen; and the dash every table shows for an absent value.

use crate::balance::Explanation;
use crate::trace::model::Record;
use crate::trace::pick::letter;

/// What an absent value looks like in a cell.
pub(super) const ABSENT: &str = "—";

/// Short names for the upstreams: a, b, c … in the balancer's node order when
/// every explanation says which node it chose, else in the order first seen.
pub(super) struct Names {
    algorithm: Option<&'static str>,
    /// The letters are the balancer's node indexes (a = node 0, …), so a
    /// pick's explanation may use them too; otherwise (first-seen order,
    /// or a trace across upstream sets) picks number their nodes.
    pub(super) by_index: bool,
    /// One row per name, in order.
    pub(super) rows: Vec<NameRow>,
}

pub(super) struct NameRow {
    pub(super) letter: String,
    pub(super) url: Option<String>,
    /// The share the balancer should give it, when its algorithm says.
    pub(super) expected: Option<f64>,
}

impl Names {
    pub(super) fn of(records: &[Record]) -> Names {
        let explained: Vec<Option<Explanation>> = records
            .iter()
            .map(|r| r.pick.as_ref().and_then(Explanation::read))
            .collect();
        let first = explained.iter().flatten().next();
        let algorithm = first.map(Explanation::algorithm);
        // Node indexes name upstreams only within one set: when the set
        // changed during the trace, name them by URL instead.
        let one_set = records
            .iter()
            .filter_map(|r| r.set)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            <= 1;
        // …and when a circuit breaker passed a choice over, the chosen
        // index is not the upstream that answered.
        let by_index = !explained.is_empty()
            && one_set
            && records
                .iter()
                .zip(&explained)
                .filter(|(r, _)| r.upstream.is_some())
                .all(|(r, e)| !r.passed_over && e.as_ref().and_then(Explanation::chosen).is_some());
        // A proxy names at most a few upstreams; a larger count is not one to
        // lay out a row for each (and may come from a hostile server).
        const MAX_NODES: usize = 1024;
        let nodes = explained
            .iter()
            .flatten()
            .filter_map(Explanation::nodes)
            .max()
            .filter(|&n| n <= MAX_NODES);
        let (Some(first), Some(nodes), true) = (first, nodes, by_index) else {
            return Names::first_seen(records, algorithm);
        };
        let expected: Vec<Option<f64>> = match (first.weights(), first) {
            (Some(weights), _) => {
                let total: f64 = weights.iter().map(|&w| w as f64).sum();
                weights
                    .iter()
                    .map(|&w| (total > 0.0).then(|| w as f64 / total))
                    .collect()
            }
            (None, Explanation::RoundRobin { .. } | Explanation::Random { .. }) => {
                vec![Some(1.0 / nodes as f64); nodes]
            }
            _ => vec![None; nodes],
        };
        let rows = (0..nodes)
            .map(|i| NameRow {
                letter: letter(i),
                url: records
                    .iter()
                    .zip(&explained)
                    .find(|(_, e)| e.as_ref().and_then(Explanation::chosen) == Some(i))
                    .and_then(|(r, _)| r.upstream.clone()),
                expected: expected.get(i).copied().flatten(),
            })
            .collect();
        Names {
            algorithm,
            by_index: true,
            rows,
        }
    }

    fn first_seen(records: &[Record], algorithm: Option<&'static str>) -> Names {
        let mut rows: Vec<NameRow> = Vec::new();
        for url in records.iter().filter_map(|r| r.upstream.as_ref()) {
            if !rows.iter().any(|row| row.url.as_ref() == Some(url)) {
                rows.push(NameRow {
                    letter: letter(rows.len()),
                    url: Some(url.clone()),
                    expected: None,
                });
            }
        }
        Names {
            algorithm,
            by_index: false,
            rows,
        }
    }

    pub(super) fn letter_of(&self, url: Option<&String>) -> String {
        url.and_then(|url| self.rows.iter().find(|row| row.url.as_ref() == Some(url)))
            .map_or_else(|| ABSENT.to_string(), |row| row.letter.clone())
    }

    /// The legend, one upstream a line (a URL is never split), each cut
    /// to `width` with `…`: `upstreams (balanced by weighted):`, then
    /// `  a = http://…`. A node no request went to is named by its place in
    /// the balancer (its weights are in the pick column; its URL only the
    /// proxy knows: `/_lab/upstreams`).
    pub(super) fn legend(&self, width: usize) -> String {
        let balancer = match self.algorithm {
            Some(algorithm) => format!("balanced by {algorithm}"),
            None => "no balancer in the path: the upstream is the server that answered".to_string(),
        };
        if self.rows.is_empty() {
            return format!("upstreams: none answered ({balancer})\n");
        }
        let mut out = format!("upstreams ({balancer}):\n");
        for (i, row) in self.rows.iter().enumerate() {
            let url = match &row.url {
                Some(url) => url.clone(),
                None => format!(
                    "node {i} of the balancer, which no request went to (its URL: the proxy's /_lab/upstreams)"
                ),
            };
            let line = format!("  {} = {url}", row.letter);
            out.push_str(&crate::output::ellipsize(&line, width));
            out.push('\n');
        }
        out
    }
}

//! The summary: one bar per upstream with its share against the share its
//! balancer should give it, the statuses (with the first reason for each
//! error status), the latency percentiles and the seeds to repeat the run.

use std::fmt::Write;

use super::names::{ABSENT, Names};
use crate::balance::Explanation;
use crate::output;
use crate::trace::model::{Record, Trace};

/// The width of a summary bar, in characters.
const BAR_WIDTH: usize = 20;

pub(super) fn summary(out: &mut String, trace: &Trace, names: &Names, width: usize) {
    let summary = &trace.summary;
    let _ = writeln!(
        out,
        "{}",
        output::heading(&format!("Summary: {} requests", summary.requests))
    );
    let answered: u64 = summary.per_upstream.values().sum();
    let not_chosen = "(not chosen)";
    // Room for the URL beside the letter, the bar and the expectation.
    let fixed = "  a ".len() + 2 + BAR_WIDTH + " 9999 (100%)".len() + "  expected 100%".len();
    let url_width = width_of(names, not_chosen).min(width.saturating_sub(fixed).max(12));
    for row in &names.rows {
        let count = row
            .url
            .as_ref()
            .and_then(|url| summary.per_upstream.get(url))
            .copied()
            .unwrap_or(0);
        let expected = row.expected.map_or_else(
            || format!("expected {ABSENT}"),
            |e| format!("expected {:.0}%", e * 100.0),
        );
        let url = output::ellipsize(row.url.as_deref().unwrap_or(not_chosen), url_width);
        let pad = " ".repeat(url_width.saturating_sub(output::text_width(&url)));
        let _ = writeln!(
            out,
            "  {} {url}{pad}  {}  {expected}",
            row.letter,
            bar(count, answered)
        );
    }
    for line in output::wrap(&statuses(trace), width, "  status: ", "    ") {
        let _ = writeln!(out, "{line}");
    }
    for (status, first) in error_examples(&trace.requests) {
        let head = format!("    {status}: ");
        for line in output::wrap(&first, width, &head, "         ") {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(
        out,
        "  latency: p50 {:.1} ms, p99 {:.1} ms",
        summary.latency_ms.p50, summary.latency_ms.p99
    );
    seeds(out, trace, width);
}

/// The widest URL among the names.
fn width_of(names: &Names, not_chosen: &str) -> usize {
    names
        .rows
        .iter()
        .map(|row| output::text_width(row.url.as_deref().unwrap_or(not_chosen)))
        .max()
        .unwrap_or(0)
}

/// `████████░░ 20 (67%)`: plain-text, readable without colour.
pub fn bar(count: u64, total: u64) -> String {
    let share = if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    };
    let filled = ((share * BAR_WIDTH as f64).round() as usize).min(BAR_WIDTH);
    format!(
        "{}{} {count} ({:.0}%)",
        "█".repeat(filled),
        "░".repeat(BAR_WIDTH - filled),
        share * 100.0
    )
}

/// `200 ×28, 502 ×2, ✗ no response ×1`.
fn statuses(trace: &Trace) -> String {
    let mut parts: Vec<String> = trace
        .summary
        .per_status
        .iter()
        .map(|(status, count)| format!("{status} ×{count}"))
        .collect();
    if trace.summary.failed > 0 {
        parts.push(format!("✗ no response ×{}", trace.summary.failed));
    }
    if parts.is_empty() {
        ABSENT.to_string()
    } else {
        parts.join(", ")
    }
}

/// For each error status, the first line of its first body (the proxy's
/// reason, e.g. "cannot reach the upstream …").
fn error_examples(records: &[Record]) -> Vec<(u16, String)> {
    let mut examples: Vec<(u16, String)> = Vec::new();
    for record in records {
        if let Some(status) = record.status.filter(|&s| s >= 400)
            && !examples.iter().any(|(s, _)| *s == status)
        {
            let first = record.response.body.lines().next().unwrap_or("").trim();
            examples.push((status, first.to_string()));
        }
    }
    examples
}

/// The seeds: `--seed` as given, and the random balancer's, which is the proxy's.
fn seeds(out: &mut String, trace: &Trace, width: usize) {
    let proxy_seed = trace
        .requests
        .iter()
        .filter_map(|r| r.pick.as_ref().and_then(Explanation::read))
        .find_map(|e| match e {
            Explanation::Random { seed, .. } => Some(seed),
            _ => None,
        });
    if let Some(seed) = proxy_seed {
        let text = format!(
            "the proxy's random balancer seed: {seed} (repeat this sequence with `lab proxy --lb random --seed {seed}`)"
        );
        for line in output::wrap(&text, width, "  ", "    ") {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(seed) = trace.seed {
        let note = match proxy_seed {
            Some(p) if p != seed => format!(
                "; the proxy drew with {p}, so restart it with `lab proxy --lb random --seed {seed}` to match"
            ),
            _ => String::new(),
        };
        let text = format!("seed: {seed} (from --seed, for your notes{note})");
        for line in output::wrap(&text, width, "  ", "    ") {
            let _ = writeln!(out, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_twenty_wide_with_count_and_share() {
        assert_eq!(
            bar(20, 30),
            format!("{}{} 20 (67%)", "█".repeat(13), "░".repeat(7))
        );
        assert_eq!(bar(0, 0), format!("{} 0 (0%)", "░".repeat(20)));
        assert_eq!(bar(5, 5), format!("{} 5 (100%)", "█".repeat(20)));
    }
}

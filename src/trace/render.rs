//! The human output of `lab trace`: the request table, the header diff of
//! the first request, the side-by-side comparison, and the summary bars.
//!
//! Everything is drawn from a [`Trace`] (the same value `--json` prints), as
//! one string, so it can be tested without a terminal. Tables come from
//! [`output::table`]; meaning is carried by words and symbols (`+ added`,
//! `≠ differs`, `✗ no response`), colour only repeats it.
//!
//! Detail levels, like mitmproxy's flow detail: by default the choice and the
//! status of each request; `-v` adds every request's headers (as the upstream
//! received them) and the response headers; `-vv` adds the bodies.

use std::fmt::Write;
use std::io::IsTerminal;

use colored::Colorize;
use comfy_table::{Cell, Color};

use super::diff::{self, Change};
use super::model::{Comparison, Mode, Record, Trace};
use super::pick::letter;
use crate::balance::Explanation;
use crate::output;

/// The width of a summary bar, in characters.
const BAR_WIDTH: usize = 20;

/// The width of the request table when stdout is not a terminal.
const REQUESTS_WIDTH: u16 = 150;

/// The most body text `-vv` shows per body.
const BODY_LIMIT: usize = 2000;

/// What an absent value looks like in a cell.
const ABSENT: &str = "—";

/// The whole human report.
pub fn render(trace: &Trace, verbose: u8) -> String {
    let names = Names::of(&trace.requests);
    let mut out = String::new();
    let _ = writeln!(out, "{}", output::heading(&title(trace)));
    let _ = writeln!(out, "{}", names.legend());
    let _ = writeln!(out, "{}", requests_table(&trace.requests, &names));
    failures(&mut out, &trace.requests);
    set_changes(&mut out, trace);
    if verbose > 0 {
        details(&mut out, trace, &names, verbose);
    }
    out.push('\n');
    header_diff(&mut out, trace);
    if let Some(compare) = &trace.compare {
        out.push('\n');
        comparison(&mut out, trace, compare, verbose);
    }
    out.push('\n');
    summary(&mut out, trace, &names);
    out
}

fn title(trace: &Trace) -> String {
    let what = format!(
        "{} × {} {}",
        trace.summary.requests, trace.sent.method, trace.sent.target
    );
    match trace.mode {
        Mode::Reverse => format!(
            "lab trace: {what} through the reverse proxy {}",
            trace.proxy
        ),
        Mode::Forward => format!(
            "lab trace: {what} through the forward proxy {}",
            trace.proxy
        ),
        Mode::Direct => format!("lab trace: {what} straight to {} (no proxy)", trace.proxy),
    }
}

/// Short names for the upstreams: a, b, c … in the balancer's node order when
/// every explanation says which node it chose, else in the order first seen.
struct Names {
    algorithm: Option<&'static str>,
    /// The letters are the balancer's node indexes (a = node 0, …), so a
    /// pick's explanation may use them too; otherwise (first-seen order,
    /// or a trace across upstream sets) picks number their nodes.
    by_index: bool,
    /// One row per name, in order.
    rows: Vec<NameRow>,
}

struct NameRow {
    letter: String,
    url: Option<String>,
    /// The share the balancer should give it, when its algorithm says.
    expected: Option<f64>,
}

impl Names {
    fn of(records: &[Record]) -> Names {
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

    fn letter_of(&self, url: Option<&String>) -> String {
        url.and_then(|url| self.rows.iter().find(|row| row.url.as_ref() == Some(url)))
            .map_or_else(|| ABSENT.to_string(), |row| row.letter.clone())
    }

    fn legend(&self) -> String {
        let balancer = match self.algorithm {
            Some(algorithm) => format!("balanced by {algorithm}"),
            None => "no balancer in the path: the upstream is the server that answered".to_string(),
        };
        let names: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let url = row.url.as_deref().unwrap_or("(not chosen in this run)");
                format!("{} = {url}", row.letter)
            })
            .collect();
        if names.is_empty() {
            format!("upstreams: none answered ({balancer})")
        } else {
            format!("upstreams ({balancer}): {}", names.join(", "))
        }
    }
}

fn requests_table(records: &[Record], names: &Names) -> comfy_table::Table {
    let mut table = output::table(&[
        "#",
        "upstream",
        "pick",
        "status",
        "ms",
        "RemoteAddr",
        "X-Forwarded-For",
        "X-Real-Ip",
        "Host",
        "URI",
    ]);
    // Ten columns: off a terminal, give them more room than the house width.
    if !std::io::stdout().is_terminal() {
        table.set_width(REQUESTS_WIDTH);
    }
    for record in records {
        let saw = record.upstream_saw.as_ref();
        let cell = |value: Option<&String>| Cell::new(value.map_or(ABSENT, String::as_str));
        table.add_row(vec![
            Cell::new(record.seq),
            Cell::new(names.letter_of(record.upstream.as_ref())),
            Cell::new(pick_cell(record, names.by_index)),
            status_cell(record.status, record.layer.as_deref()),
            Cell::new(format!("{:.1}", record.latency_ms)),
            cell(saw.map(|s| &s.remote_addr)),
            cell(saw.and_then(|s| s.x_forwarded_for.as_ref())),
            cell(saw.and_then(|s| s.x_real_ip.as_ref())),
            cell(saw.and_then(|s| s.host.as_ref())),
            cell(saw.map(|s| &s.uri)),
        ]);
    }
    table
}

fn pick_cell(record: &Record, by_index: bool) -> String {
    match &record.pick {
        None => ABSENT.to_string(),
        Some(pick) => {
            let cell = match Explanation::read(pick) {
                None => pick.to_string(),
                Some(e) if by_index => e.cell(),
                // The letters are not node indexes here (across upstream sets
                // an index is a different upstream in each): number the nodes.
                Some(e) => e.cell_naming(|i| format!("#{i}")),
            };
            if record.passed_over {
                format!("{cell} (breaker open: passed over)")
            } else {
                cell
            }
        }
    }
}

/// The status, and the proxy layer that answered when it was not an
/// upstream (`429 rate-limit`, `200 fallback`).
fn status_cell(status: Option<u16>, layer: Option<&str>) -> Cell {
    let text = |s: u16| match layer {
        Some(layer) => format!("{s} {layer}"),
        None => s.to_string(),
    };
    match status {
        None => Cell::new("✗ no response").fg(Color::Red),
        Some(s) if s >= 400 => Cell::new(text(s)).fg(Color::Red),
        Some(s) => Cell::new(text(s)),
    }
}

/// The upstream set's changes while the trace ran, each placed before the
/// first request balanced over the set it made.
fn set_changes(out: &mut String, trace: &Trace) {
    if trace.set_changes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nThe proxy's upstream set changed during the trace:");
    for event in &trace.set_changes {
        let from = trace
            .requests
            .iter()
            .find(|r| r.set.is_some_and(|g| g >= event.generation))
            .map_or_else(String::new, |r| format!("from #{}", r.seq));
        let mark = match event.change.as_str() {
            "left" | "deregistered" => "−".red().to_string(),
            "joined" | "registered" => "+".green().to_string(),
            _ => "~".to_string(),
        };
        let _ = writeln!(
            out,
            "  {mark} {from:<9} set {}: {} {} ({}) at {}",
            event.generation, event.upstream, event.change, event.reason, event.at
        );
    }
}

/// One line per request that got no response.
fn failures(out: &mut String, records: &[Record]) {
    for record in records {
        if let Some(error) = &record.error {
            let _ = writeln!(out, "{} #{}: {error}", "✗".red(), record.seq);
        }
    }
}

/// `-v`: each request's headers as the upstream received them, and the
/// response's; `-vv`: the bodies too.
fn details(out: &mut String, trace: &Trace, names: &Names, verbose: u8) {
    for record in &trace.requests {
        let status = record
            .status
            .map_or_else(|| "no response".to_string(), |s| s.to_string());
        let upstream = record.upstream.as_deref().unwrap_or(ABSENT);
        let _ = writeln!(
            out,
            "\n{}",
            output::heading(&format!(
                "#{} → {} {upstream}: {status}, {:.1} ms",
                record.seq,
                names.letter_of(record.upstream.as_ref()),
                record.latency_ms
            ))
        );
        if verbose > 1 {
            body(out, "request body sent", &trace.sent.body);
        }
        match &record.upstream_saw {
            Some(saw) => {
                let _ = writeln!(
                    out,
                    "  upstream received: {} {} from {} ({} body bytes)",
                    trace.sent.method, saw.uri, saw.remote_addr, saw.body_bytes
                );
                header_lines(out, &saw.headers);
            }
            None => {
                let _ = writeln!(
                    out,
                    "  upstream received: {ABSENT} (the answer was not an echo)"
                );
            }
        }
        if record.status.is_some() {
            let _ = writeln!(out, "  response headers:");
            header_lines(out, &record.response.headers);
            if verbose > 1 {
                body(out, "response body", &record.response.body);
            }
        }
    }
}

fn header_lines(out: &mut String, headers: &[(String, String)]) {
    for (name, value) in headers {
        let _ = writeln!(out, "    {name}: {value}");
    }
}

fn body(out: &mut String, what: &str, text: &str) {
    let _ = writeln!(out, "  {what} ({} bytes):", text.len());
    if text.is_empty() {
        return;
    }
    let shown = match text.char_indices().nth(BODY_LIMIT) {
        Some((cut, _)) => format!("{}\n… ({} more bytes)", &text[..cut], text.len() - cut),
        None => text.to_string(),
    };
    for line in shown.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

/// The first request that reached an echoing upstream: every header as the
/// client sent it against what the upstream received.
fn header_diff(out: &mut String, trace: &Trace) {
    let Some((seq, saw)) = trace
        .requests
        .iter()
        .find_map(|r| r.upstream_saw.as_ref().map(|saw| (r.seq, saw)))
    else {
        let _ = writeln!(
            out,
            "No header diff: no answer was the real server's echo (is the upstream `lab realserver`?)."
        );
        return;
    };
    let _ = writeln!(
        out,
        "{}",
        output::heading(&format!(
            "Headers of request #{seq}: what the client sent → what the upstream received"
        ))
    );
    let via_proxy = trace.mode != Mode::Direct;
    let mut table = output::table(&[
        "change",
        "header",
        "client sent",
        "upstream received",
        "why",
    ]);
    for row in diff::headers(&trace.sent.headers, &saw.headers, via_proxy) {
        let mark = Cell::new(row.change.label());
        let mark = match row.change {
            Change::Added => mark.fg(Color::Green),
            Change::Removed => mark.fg(Color::Red),
            Change::Changed => mark.fg(Color::Yellow),
            Change::Same => mark,
        };
        table.add_row(vec![
            mark,
            Cell::new(&row.name),
            Cell::new(row.sent.as_deref().unwrap_or(ABSENT)),
            Cell::new(row.received.as_deref().unwrap_or(ABSENT)),
            Cell::new(row.why.unwrap_or("")),
        ]);
    }
    let _ = writeln!(out, "{table}");
}

/// The same requests through two proxies, the upstream's views side by side.
fn comparison(out: &mut String, trace: &Trace, compare: &Comparison, verbose: u8) {
    let _ = writeln!(
        out,
        "{}",
        output::heading(&format!(
            "Compare: the same request through {} (left) and {} (right)",
            trace.proxy, compare.proxy
        ))
    );
    let shown = if verbose > 0 { usize::MAX } else { 1 };
    for (left, right) in trace
        .requests
        .iter()
        .filter_map(|l| {
            compare
                .requests
                .iter()
                .find(|r| r.seq == l.seq)
                .map(|r| (l, r))
        })
        .take(shown)
    {
        let mut table = output::table(&[
            "",
            &format!("request #{}", left.seq),
            &format!("left: {}", trace.proxy),
            &format!("right: {}", compare.proxy),
        ]);
        for pair in diff::pair(left, right) {
            let mark = if pair.differs() {
                Cell::new("≠ differs").fg(Color::Yellow)
            } else {
                Cell::new("= same")
            };
            table.add_row(vec![
                mark,
                Cell::new(&pair.label),
                Cell::new(pair.left.as_deref().unwrap_or(ABSENT)),
                Cell::new(pair.right.as_deref().unwrap_or(ABSENT)),
            ]);
        }
        let _ = writeln!(out, "{table}");
    }
    let pairs = trace
        .requests
        .iter()
        .filter(|l| compare.requests.iter().any(|r| r.seq == l.seq))
        .count();
    let mut fields: Vec<(&str, usize)> = Vec::new();
    for difference in &compare.differences {
        match fields.iter_mut().find(|(f, _)| *f == difference.field) {
            Some((_, count)) => *count += 1,
            None => fields.push((&difference.field, 1)),
        }
    }
    if fields.is_empty() {
        let _ = writeln!(
            out,
            "= the two upstreams saw the same facts in all {pairs} requests"
        );
    }
    for (field, count) in fields {
        let _ = writeln!(
            out,
            "{} {} in {count} of {pairs} requests",
            "≠ differs:".yellow(),
            field_label(field)
        );
    }
    let _ = writeln!(out, "right: {}", per_upstream_line(compare));
}

/// `x_forwarded_for` → `X-Forwarded-For`, `header:via` → `Via`.
fn field_label(field: &str) -> String {
    match field {
        "remote_ip" => "RemoteAddr (IP)".to_string(),
        "x_forwarded_for" => "X-Forwarded-For".to_string(),
        "x_real_ip" => "X-Real-Ip".to_string(),
        "host" => "Host".to_string(),
        "uri" => "URI".to_string(),
        other => other.strip_prefix("header:").map_or_else(
            || other.to_string(),
            crate::realserver::canonical_header_key,
        ),
    }
}

fn per_upstream_line(compare: &Comparison) -> String {
    let counts: Vec<String> = compare
        .summary
        .per_upstream
        .iter()
        .map(|(url, count)| format!("{url} ×{count}"))
        .collect();
    if counts.is_empty() {
        "no upstream answered".to_string()
    } else {
        counts.join(", ")
    }
}

fn summary(out: &mut String, trace: &Trace, names: &Names) {
    let summary = &trace.summary;
    let _ = writeln!(
        out,
        "{}",
        output::heading(&format!("Summary: {} requests", summary.requests))
    );
    let answered: u64 = summary.per_upstream.values().sum();
    let not_chosen = "(not chosen)";
    let width = names
        .rows
        .iter()
        .map(|row| row.url.as_deref().unwrap_or(not_chosen).chars().count())
        .max()
        .unwrap_or(0);
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
        let url = row.url.as_deref().unwrap_or(not_chosen);
        let _ = writeln!(
            out,
            "  {} {url:<width$}  {}  {expected}",
            row.letter,
            bar(count, answered)
        );
    }
    let _ = writeln!(out, "  status: {}", statuses(trace));
    for (status, first) in error_examples(&trace.requests) {
        let _ = writeln!(out, "    {status}: {first}");
    }
    let _ = writeln!(
        out,
        "  latency: p50 {:.1} ms, p99 {:.1} ms",
        summary.latency_ms.p50, summary.latency_ms.p99
    );
    seeds(out, trace);
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
fn seeds(out: &mut String, trace: &Trace) {
    let proxy_seed = trace
        .requests
        .iter()
        .filter_map(|r| r.pick.as_ref().and_then(Explanation::read))
        .find_map(|e| match e {
            Explanation::Random { seed, .. } => Some(seed),
            _ => None,
        });
    if let Some(seed) = proxy_seed {
        let _ = writeln!(
            out,
            "  the proxy's random balancer seed: {seed} (repeat this sequence with `lab proxy --lb random --seed {seed}`)"
        );
    }
    if let Some(seed) = trace.seed {
        let note = match proxy_seed {
            Some(p) if p != seed => format!(
                "; the proxy drew with {p}, so restart it with `lab proxy --lb random --seed {seed}` to match"
            ),
            _ => String::new(),
        };
        let _ = writeln!(out, "  seed: {seed} (from --seed, for your notes{note})");
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

    #[test]
    fn field_labels_read_like_headers() {
        assert_eq!(field_label("x_forwarded_for"), "X-Forwarded-For");
        assert_eq!(field_label("header:x-lab-explain"), "X-Lab-Explain");
        assert_eq!(field_label("status"), "status");
    }
}

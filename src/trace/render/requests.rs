//! The request table, one row per request: who was chosen and why, the
//! status, the latency and what the upstream saw; then one line per request
//! that got no response, and the upstream set's changes during the run.

use std::fmt::Write;
use std::io::IsTerminal;

use colored::Colorize;
use comfy_table::{Cell, Color};

use super::names::{ABSENT, Names};
use crate::balance::Explanation;
use crate::output;
use crate::trace::model::{Record, Trace};

/// The width of the request table when stdout is not a terminal.
const REQUESTS_WIDTH: u16 = 150;

pub(super) fn requests_table(records: &[Record], names: &Names) -> comfy_table::Table {
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
pub(super) fn set_changes(out: &mut String, trace: &Trace) {
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
pub(super) fn failures(out: &mut String, records: &[Record]) {
    for record in records {
        if let Some(error) = &record.error {
            let _ = writeln!(out, "{} #{}: {error}", "✗".red(), record.seq);
        }
    }
}

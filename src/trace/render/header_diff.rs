//! The header diff of the first request that reached an echoing upstream:
//! every header as the client sent it against what the upstream received,
//! marked added, removed, changed or the same, with the rule that explains it.

use std::fmt::Write;

use comfy_table::Color;

use super::names::ABSENT;
use crate::output::{self, Column, Text};
use crate::trace::diff::{self, Change};
use crate::trace::model::{Mode, Trace};

/// The first request that reached an echoing upstream: every header as the
/// client sent it against what the upstream received. Fitted to `width`:
/// the rule that explains a row is a wrapped column when there is room for
/// one, else a list under the table, so that no value is ever cut.
pub(super) fn header_diff(out: &mut String, trace: &Trace, width: usize) {
    let Some((seq, saw)) = trace
        .requests
        .iter()
        .find_map(|r| r.upstream_saw.as_ref().map(|saw| (r.seq, saw)))
    else {
        let text = "No header diff: no answer was the real server's echo (is the upstream `lab realserver`?).";
        for line in output::wrap(text, width, "", "") {
            let _ = writeln!(out, "{line}");
        }
        return;
    };
    let _ = writeln!(
        out,
        "{}",
        output::heading(&format!(
            "Headers of request #{seq}: what the client sent → what the upstream received"
        ))
    );
    // `--direct`, unless a transparent proxy took the connection anyway.
    let via_proxy =
        trace.mode != Mode::Direct || trace.requests.iter().any(|r| r.intercepted.is_some());
    let rows = diff::headers(&trace.sent.headers, &saw.headers, via_proxy);
    let cells: Vec<Vec<Text>> = rows
        .iter()
        .map(|row| {
            let colour = match row.change {
                Change::Added => Some(Color::Green),
                Change::Removed => Some(Color::Red),
                Change::Changed => Some(Color::Yellow),
                Change::Same => None,
            };
            vec![
                (row.change.label().to_string(), colour),
                (row.name.clone(), None),
                (row.sent.as_deref().unwrap_or(ABSENT).to_string(), None),
                (row.received.as_deref().unwrap_or(ABSENT).to_string(), None),
                (row.why.unwrap_or("").to_string(), None),
            ]
        })
        .collect();
    let values = [
        Column::keep("change"),
        Column::keep("header"),
        Column::cut("client sent", 12),
        Column::cut("upstream received", 12),
    ];
    let four: Vec<Vec<Text>> = cells.iter().map(|r| r[..4].to_vec()).collect();
    let natural = output::fit_widths(&values, &four, usize::MAX);
    /// The narrowest the rule column may be before it goes under the table.
    const WHY_MIN: usize = 32;
    if output::table_width(&natural) + WHY_MIN + 3 <= width {
        let mut columns = values.to_vec();
        columns.push(Column::wrap("why", WHY_MIN));
        let _ = writeln!(out, "{}", output::fitted(&columns, cells, width));
        return;
    }
    let _ = writeln!(out, "{}", output::fitted(&values, four, width));
    if rows.iter().all(|r| r.why.is_none()) {
        return;
    }
    let _ = writeln!(out, "why:");
    let name = rows
        .iter()
        .filter(|r| r.why.is_some())
        .map(|r| output::text_width(&r.name))
        .max()
        .unwrap_or(0);
    for row in rows.iter().filter(|r| r.why.is_some()) {
        let first = format!(
            "  {}:{} ",
            row.name,
            " ".repeat(name - output::text_width(&row.name))
        );
        let indent = " ".repeat(output::text_width(&first));
        for line in output::wrap(row.why.unwrap_or(""), width, &first, &indent) {
            let _ = writeln!(out, "{line}");
        }
    }
}

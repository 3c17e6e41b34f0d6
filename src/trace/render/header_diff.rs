//! The header diff of the first request that reached an echoing upstream:
//! every header as the client sent it against what the upstream received,
//! marked added, removed, changed or the same, with the rule that explains it.

use std::fmt::Write;

use comfy_table::{Cell, Color};

use super::names::ABSENT;
use crate::output;
use crate::trace::diff::{self, Change};
use crate::trace::model::{Mode, Trace};

/// The first request that reached an echoing upstream: every header as the
/// client sent it against what the upstream received.
pub(super) fn header_diff(out: &mut String, trace: &Trace) {
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

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
//!
//! One file per part of the report, in the order it is printed: `names`
//! (the upstreams' letters and their legend), `requests` (the request
//! table, the failures and the upstream set's changes under it), `details`
//! (`-v`, `-vv`), `header_diff`, `compare` (`--compare`) and `summary` (the
//! bars, statuses, latency and seeds); `live`: the rows printed as the
//! requests complete, before the rest ([`render_after_live`]).
//!
//! Everything is fitted to a width ([`output::width`]: `COLUMNS`, else the
//! terminal's, else 100): no line is wider, and no address, port, URL or
//! header value is split across lines; what was the same on every request
//! is printed once, above the rows.

mod compare;
mod details;
mod header_diff;
pub mod live;
mod names;
mod requests;
mod summary;

use std::fmt::Write;

use super::model::{Mode, Trace};
use crate::output;
use compare::comparison;
use details::details;
use header_diff::header_diff;
use names::Names;
use requests::{Layout, failures, requests_table, set_changes};
use summary::summary;

pub use summary::bar;

/// The whole human report, fitted to `width` columns (see
/// [`output::width`]): no line is wider, and no address, port, URL or
/// header value is split across lines (a long one is cut with `…`; `-v`
/// and `--json` show it whole).
pub fn render(trace: &Trace, verbose: u8, width: usize) -> String {
    let names = Names::of(&trace.requests);
    let layout = Layout::of(&trace.requests);
    let mut out = String::new();
    for line in output::wrap(&title(trace), width, "", "  ") {
        let _ = writeln!(out, "{}", output::heading(&line));
    }
    out.push_str(&intercepted(trace, width));
    out.push_str(&names.legend(width));
    out.push_str(&layout.same_lines(width));
    let _ = writeln!(
        out,
        "{}",
        requests_table(&trace.requests, &names, &layout, width)
    );
    failures(&mut out, &trace.requests, width);
    set_changes(&mut out, trace, width);
    if verbose > 0 {
        details(&mut out, trace, &names, verbose);
    }
    out.push('\n');
    header_diff(&mut out, trace, width);
    if let Some(compare) = &trace.compare {
        out.push('\n');
        comparison(&mut out, trace, compare, verbose, width);
    }
    out.push('\n');
    summary(&mut out, trace, &names, width);
    out
}

/// The report after the rows were printed as they came ([`live`]): the
/// legend, what the upstream saw (the same on every request, then a table
/// of what differed), and the rest as [`render`] has it.
pub fn render_after_live(trace: &Trace, verbose: u8, width: usize) -> String {
    let names = Names::of(&trace.requests);
    let layout = Layout::of(&trace.requests);
    let mut out = String::from("\n");
    out.push_str(&intercepted(trace, width));
    out.push_str(&names.legend(width));
    out.push_str(&layout.same_lines(width));
    if let Some(table) = requests::varying_table(&trace.requests, &layout, width) {
        let _ = writeln!(out, "What the upstream saw that differed:\n{table}");
    }
    failures(&mut out, &trace.requests, width);
    set_changes(&mut out, trace, width);
    if verbose > 0 {
        details(&mut out, trace, &names, verbose);
    }
    out.push('\n');
    header_diff(&mut out, trace, width);
    out.push('\n');
    summary(&mut out, trace, &names, width);
    out
}

/// What a transparent proxy on the way said (`lab transparent`), once per
/// distinct answer: the client sent its requests straight to the server,
/// and something else answered for it.
fn intercepted(trace: &Trace, width: usize) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for record in &trace.requests {
        if let Some(said) = record.intercepted.as_deref()
            && !seen.contains(&said)
        {
            seen.push(said);
        }
    }
    let mut out = String::new();
    for said in seen {
        let (mode, destination) = said.split_once(' ').unwrap_or((said, "?"));
        let text = format!(
            "Intercepted on the way: a transparent proxy ({mode}) took the connection and \
             recovered its original destination, {destination}; the client never named a proxy."
        );
        for line in output::wrap(&text, width, "", "  ") {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn title(trace: &Trace) -> String {
    title_of(
        trace.mode,
        &trace.sent,
        trace.summary.requests,
        &trace.proxy,
    )
}

/// `lab trace: 3 × GET / through the reverse proxy http://…`.
fn title_of(mode: Mode, sent: &super::model::Sent, requests: u64, proxy: &str) -> String {
    let what = format!("{requests} × {} {}", sent.method, sent.target);
    match mode {
        Mode::Reverse => format!("lab trace: {what} through the reverse proxy {proxy}"),
        Mode::Forward => format!("lab trace: {what} through the forward proxy {proxy}"),
        Mode::Direct => format!("lab trace: {what} straight to {proxy} (no proxy)"),
    }
}

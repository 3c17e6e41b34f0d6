//! The request table, one row per request: who was chosen and why, the
//! status, the latency and what the upstream saw; then one line per request
//! that got no response, and the upstream set's changes during the run.

use std::fmt::Write;

use colored::Colorize;
use comfy_table::Color;

use super::names::{ABSENT, Names};
use crate::balance::Explanation;
use crate::output::{self, Column, Text};
use crate::trace::model::{Record, Trace, UpstreamSaw};

/// The facts of what the upstream saw that a row can show: the label, and
/// the value of one echo.
type Fact = (&'static str, fn(&UpstreamSaw) -> Option<&String>);
const FACTS: [Fact; 5] = [
    ("RemoteAddr", |s| Some(&s.remote_addr)),
    ("X-Forwarded-For", |s| s.x_forwarded_for.as_ref()),
    ("X-Real-Ip", |s| s.x_real_ip.as_ref()),
    ("Host", |s| s.host.as_ref()),
    ("URI", |s| Some(&s.uri)),
];

/// What the upstreams saw: the facts that were the same on every request
/// (printed once, above the table) and those that differ (a column each).
/// RemoteAddr is split: its IP may be the same while the port (the proxy's
/// connection to the upstream) differs; then only the port is a column.
pub(super) struct Layout {
    /// `(label, value)` of every fact that never changed.
    same: Vec<(String, String)>,
    /// The facts that changed: an index into [`FACTS`].
    varying: Vec<usize>,
    /// The peer's port is a column, its IP above.
    port_column: bool,
}

impl Layout {
    pub(super) fn of(records: &[Record]) -> Layout {
        let saws: Vec<&UpstreamSaw> = records
            .iter()
            .filter_map(|r| r.upstream_saw.as_ref())
            .collect();
        let mut layout = Layout {
            same: Vec::new(),
            varying: Vec::new(),
            port_column: false,
        };
        if saws.is_empty() {
            return layout;
        }
        for (i, (label, value)) in FACTS.iter().enumerate() {
            let values: Vec<Option<&String>> = saws.iter().map(|s| value(s)).collect();
            if i == 0 {
                let ips: Vec<Option<&str>> = values
                    .iter()
                    .map(|v| v.and_then(|addr| addr.rsplit_once(':').map(|(ip, _)| ip)))
                    .collect();
                if ips.iter().all(|ip| ip.is_some() && *ip == ips[0]) {
                    let ip = ips[0].unwrap_or(ABSENT);
                    layout.same.push((
                        label.to_string(),
                        format!("{ip} (its port: the peer port column)"),
                    ));
                    layout.port_column = true;
                } else {
                    layout.varying.push(i);
                }
                continue;
            }
            if values.iter().all(|v| *v == values[0]) {
                layout
                    .same
                    .push((label.to_string(), shown(values[0]).to_string()));
            } else {
                layout.varying.push(i);
            }
        }
        layout
    }

    /// The facts that were the same on every request, one per line.
    pub(super) fn same_lines(&self, width: usize) -> String {
        if self.same.is_empty() {
            return String::new();
        }
        format!(
            "What the upstream saw, the same on every request:\n{}",
            output::aligned(&self.same, "  ", width)
        )
    }
}

fn shown(value: Option<&String>) -> &str {
    value.map_or(ABSENT, String::as_str)
}

/// One line per request: #, the upstream's letter, the pick, the status,
/// the milliseconds, the peer port; then any fact of what the upstream saw
/// that was not the same on every request. Fitted to `width`: the pick and
/// the varying facts are cut with `…` when they must be (whole with `-v`).
pub(super) fn requests_table(
    records: &[Record],
    names: &Names,
    layout: &Layout,
    width: usize,
) -> comfy_table::Table {
    let mut columns = vec![
        Column::keep("#").right(),
        Column::keep("upstream"),
        Column::cut("pick", 12),
        Column::keep("status"),
        Column::keep("ms").right(),
    ];
    if layout.port_column {
        columns.push(Column::keep("peer port").right());
    }
    columns.extend(layout.varying.iter().map(|&i| fact_column(i)));
    let rows: Vec<Vec<Text>> = records
        .iter()
        .map(|record| {
            let saw = record.upstream_saw.as_ref();
            let mut row: Vec<Text> = vec![
                (record.seq.to_string(), None),
                (names.letter_of(record.upstream.as_ref()), None),
                (pick_cell(record, names.by_index), None),
                status_cell(record.status, record.layer.as_deref()),
                (format!("{:.1}", record.latency_ms), None),
            ];
            if layout.port_column {
                let port = saw
                    .and_then(|s| s.remote_addr.rsplit_once(':'))
                    .map_or(ABSENT, |(_, port)| port);
                row.push((port.to_string(), None));
            }
            row.extend(fact_cells(saw, layout));
            row
        })
        .collect();
    output::fitted(&columns, rows, width)
}

/// The column of fact `i`: an address stays whole; the other facts may be cut.
fn fact_column(i: usize) -> Column<'static> {
    if i == 0 {
        Column::keep(FACTS[i].0)
    } else {
        Column::cut(FACTS[i].0, 8)
    }
}

/// The cells of the facts that varied, as one request's upstream saw them.
fn fact_cells<'a>(
    saw: Option<&'a UpstreamSaw>,
    layout: &'a Layout,
) -> impl Iterator<Item = Text> + 'a {
    layout
        .varying
        .iter()
        .map(move |&i| (shown(saw.and_then(|s| FACTS[i].1(s))).to_string(), None))
}

/// After rows printed as they came: `#` and each fact of what the upstream
/// saw that was not the same on every request; `None` when none differed.
pub(super) fn varying_table(
    records: &[Record],
    layout: &Layout,
    width: usize,
) -> Option<comfy_table::Table> {
    if layout.varying.is_empty() {
        return None;
    }
    let mut columns = vec![Column::keep("#").right()];
    columns.extend(layout.varying.iter().map(|&i| fact_column(i)));
    let rows: Vec<Vec<Text>> = records
        .iter()
        .map(|record| {
            let saw = record.upstream_saw.as_ref();
            let mut row: Vec<Text> = vec![(record.seq.to_string(), None)];
            row.extend(fact_cells(saw, layout));
            row
        })
        .collect();
    Some(output::fitted(&columns, rows, width))
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
fn status_cell(status: Option<u16>, layer: Option<&str>) -> Text {
    let text = |s: u16| match layer {
        Some(layer) => format!("{s} {layer}"),
        None => s.to_string(),
    };
    match status {
        None => ("✗ no response".to_string(), Some(Color::Red)),
        Some(s) if s >= 400 => (text(s), Some(Color::Red)),
        Some(s) => (text(s), None),
    }
}

/// The upstream set's changes while the trace ran, each placed before the
/// first request balanced over the set it made; wrapped to `width` at spaces.
pub(super) fn set_changes(out: &mut String, trace: &Trace, width: usize) {
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
        let (mark, coloured) = match event.change.as_str() {
            "left" | "deregistered" => ("−", "−".red().to_string()),
            "joined" | "registered" => ("+", "+".green().to_string()),
            _ => ("~", "~".to_string()),
        };
        let text = format!(
            "set {}: {} {} ({}) at {}",
            event.generation, event.upstream, event.change, event.reason, event.at
        );
        let first = format!("  {mark} {from:<9} ");
        for (i, line) in output::wrap(&text, width, &first, "              ")
            .into_iter()
            .enumerate()
        {
            let line = if i == 0 {
                line.replacen(mark, &coloured, 1)
            } else {
                line
            };
            let _ = writeln!(out, "{line}");
        }
    }
}

/// One line per request that got no response, wrapped to `width`.
pub(super) fn failures(out: &mut String, records: &[Record], width: usize) {
    for record in records {
        if let Some(error) = &record.error {
            let first = format!("✗ #{}: ", record.seq);
            for (i, line) in output::wrap(error, width, &first, "    ")
                .into_iter()
                .enumerate()
            {
                let line = if i == 0 {
                    line.replacen('✗', &"✗".red().to_string(), 1)
                } else {
                    line
                };
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

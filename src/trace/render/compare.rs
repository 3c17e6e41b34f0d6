//! `--compare`: the same requests through two proxies, what each upstream
//! saw side by side (`= same`, `≠ differs`), then how often each fact
//! differed and where the compared proxy's requests went.

use std::fmt::Write;

use colored::Colorize;
use comfy_table::Color;

use super::names::ABSENT;
use crate::output::{self, Column, Text};
use crate::trace::diff;
use crate::trace::model::{Comparison, Trace};

/// The same requests through two proxies, the upstream's views side by side.
pub(super) fn comparison(
    out: &mut String,
    trace: &Trace,
    compare: &Comparison,
    verbose: u8,
    width: usize,
) {
    let title = format!(
        "Compare: the same request through {} (left) and {} (right)",
        trace.proxy, compare.proxy
    );
    for line in output::wrap(&title, width, "", "  ") {
        let _ = writeln!(out, "{}", output::heading(&line));
    }
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
        let seq = format!("request #{}", left.seq);
        let columns = [
            Column::keep(""),
            Column::keep(&seq),
            Column::cut("left", 10),
            Column::cut("right", 10),
        ];
        let rows: Vec<Vec<Text>> = diff::pair(left, right)
            .into_iter()
            .map(|pair| {
                let mark = if pair.differs() {
                    ("≠ differs".to_string(), Some(Color::Yellow))
                } else {
                    ("= same".to_string(), None)
                };
                vec![
                    mark,
                    (pair.label.clone(), None),
                    (pair.left.as_deref().unwrap_or(ABSENT).to_string(), None),
                    (pair.right.as_deref().unwrap_or(ABSENT).to_string(), None),
                ]
            })
            .collect();
        let table = output::fitted(&columns, rows, width);
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
        let text = format!("{} in {count} of {pairs} requests", field_label(field));
        for (i, line) in output::wrap(&text, width, "≠ differs: ", "  ")
            .into_iter()
            .enumerate()
        {
            let line = if i == 0 {
                line.replacen("≠ differs:", &"≠ differs:".yellow().to_string(), 1)
            } else {
                line
            };
            let _ = writeln!(out, "{line}");
        }
    }
    for line in output::wrap(&per_upstream_line(compare), width, "right: ", "  ") {
        let _ = writeln!(out, "{line}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_labels_read_like_headers() {
        assert_eq!(field_label("x_forwarded_for"), "X-Forwarded-For");
        assert_eq!(field_label("header:x-lab-explain"), "X-Lab-Explain");
        assert_eq!(field_label("status"), "status");
    }
}

//! `--compare`: the same requests through two proxies, what each upstream
//! saw side by side (`= same`, `≠ differs`), then how often each fact
//! differed and where the compared proxy's requests went.

use std::fmt::Write;

use colored::Colorize;
use comfy_table::{Cell, Color};

use super::names::ABSENT;
use crate::output;
use crate::trace::diff;
use crate::trace::model::{Comparison, Trace};

/// The same requests through two proxies, the upstream's views side by side.
pub(super) fn comparison(out: &mut String, trace: &Trace, compare: &Comparison, verbose: u8) {
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

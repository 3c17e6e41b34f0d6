//! `lab stats`: the client side of 数据统计 statistics. It reads a running
//! `lab proxy`'s [`STATS_PATH`] and prints it as tables: one line for the
//! proxy (uptime, connections, requests), then one row per upstream
//! (requests by status class, p50/p99, body bytes, requests in flight, and
//! which layer answered), a row for the proxy's own answers, and the total.
//! `--json` prints the page as the proxy served it (its schema is in
//! [`crate::middleware::stats`]).
//!
//! Exit status: 0 when the statistics were read; 1 with a hint when nothing
//! listens at `--proxy` (start `lab proxy`) or what listens there keeps no
//! statistics (`lab naive`, `lab forward`, a real server).

use std::fmt::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::middleware::stats::{Counts, LAYERS, STATS_PATH, StatsSnapshot};
use crate::net::Endpoint;
use crate::output::{self, Column, Text};

/// How long reading the statistics may take (the proxy answers from
/// memory, at once).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What an absent value looks like in a cell.
const ABSENT: &str = "—";

/// `lab stats`: fetch `/_lab/stats` from the proxy at `proxy`, then print
/// tables or (`json`) the JSON as served.
pub async fn run(proxy: &Endpoint, json: bool) -> anyhow::Result<ExitCode> {
    let addr = proxy.resolve().await?;
    crate::trace::fire::check_listening(
        addr,
        "the lab proxy",
        "lab proxy",
        "give --proxy the URL of a running one",
    )
    .await?;
    let body = fetch(proxy, addr).await?;
    let snapshot: StatsSnapshot = serde_json::from_str(&body).with_context(|| {
        format!(
            "{}{STATS_PATH} is not lab proxy's statistics: is `lab proxy` listening there?",
            proxy
        )
    })?;
    if json {
        print!("{body}");
        if !body.ends_with('\n') {
            println!();
        }
    } else {
        let order = upstream_order(addr).await;
        print!(
            "{}",
            render(&proxy.to_string(), &snapshot, &order, output::width())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The proxy's upstreams in its `--upstream` order (its `/_lab/upstreams`),
/// so that the letters are the ones `lab trace` gives them; empty when the
/// proxy does not say (the letters then follow the URLs' order).
async fn upstream_order(addr: SocketAddr) -> Vec<String> {
    let status = crate::proxy::admin::fetch_upstreams(addr);
    match tokio::time::timeout(FETCH_TIMEOUT, status).await {
        Ok(Ok(status)) => status.upstreams.into_iter().map(|u| u.url).collect(),
        _ => Vec::new(),
    }
}

/// The body of the proxy's statistics page.
async fn fetch(proxy: &Endpoint, addr: SocketAddr) -> anyhow::Result<String> {
    let probe = crate::probe::Probe::get(STATS_PATH).header("Accept", "application/json");
    let exchange = tokio::time::timeout(FETCH_TIMEOUT, probe.send(addr))
        .await
        .with_context(|| format!("{proxy} sent no statistics within {FETCH_TIMEOUT:?}"))??;
    if !exchange.status.is_success() {
        anyhow::bail!(
            "{proxy} answered {} to {STATS_PATH}: it keeps no statistics (lab naive, lab forward \
             and the real servers do not); start `lab proxy`, or give --proxy the URL of one",
            exchange.status
        );
    }
    Ok(exchange.text())
}

/// The human report, fitted to `width` columns: the proxy's line, the
/// upstreams' letters (`a = http://…`, one a line: an upstream's URL is
/// never split), then the table, one row per upstream by its letter. The
/// letters follow `order`, the proxy's own (as `lab trace` names them),
/// then any other upstream counted, by URL.
pub fn render(proxy: &str, snapshot: &StatsSnapshot, order: &[String], width: usize) -> String {
    let mut out = String::new();
    let uptime = Duration::from_secs(snapshot.uptime_seconds as u64);
    let title = format!(
        "lab proxy at {proxy}: up {}",
        humantime::format_duration(uptime)
    );
    for line in output::wrap(&title, width, "", "  ") {
        let _ = writeln!(out, "{}", output::heading(&line));
    }
    let overall = &snapshot.overall;
    let facts = [
        format!(
            "connections: {} open, {} accepted;",
            snapshot.connections.open, snapshot.connections.total
        ),
        format!(
            "requests: {} finished, {} in flight;",
            overall.requests, overall.in_flight
        ),
        format!(
            "latency: p50 {}, p99 {}, mean {};",
            with_unit(overall.latency_ms.p50),
            with_unit(overall.latency_ms.p99),
            with_unit(mean(overall)),
        ),
        format!(
            "bodies: {} in, {} out",
            indicatif::HumanBytes(overall.bytes_in),
            indicatif::HumanBytes(overall.bytes_out)
        ),
    ];
    // Each fact whole on a line: a line breaks only between them.
    let mut line = String::new();
    for fact in facts {
        if !line.is_empty() && output::text_width(&line) + 1 + output::text_width(&fact) > width {
            let _ = writeln!(out, "{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&fact);
    }
    let _ = writeln!(out, "{line}");
    if overall.requests == 0 && overall.in_flight == 0 {
        let text = format!(
            "no requests yet: send some, e.g. `lab trace --proxy {proxy}` or `curl -s {proxy}/abc`"
        );
        for line in output::wrap(&text, width, "", "  ") {
            let _ = writeln!(out, "{line}");
        }
        return out;
    }

    let mut named: Vec<&str> = order.iter().map(String::as_str).collect();
    for upstream in snapshot.upstreams.keys() {
        if !named.contains(&upstream.as_str()) {
            named.push(upstream);
        }
    }
    if !named.is_empty() {
        let _ = writeln!(out, "upstreams:");
        for (i, upstream) in named.iter().enumerate() {
            let note = if snapshot.upstreams.contains_key(*upstream) {
                ""
            } else {
                " (no requests yet)"
            };
            let line = format!("  {} = {upstream}{note}", crate::trace::pick::letter(i));
            let _ = writeln!(out, "{}", output::ellipsize(&line, width));
        }
    }
    let columns = [
        Column::keep("upstream"),
        Column::keep("requests").right(),
        Column::keep("2xx").right(),
        Column::keep("3xx").right(),
        Column::keep("4xx").right(),
        Column::keep("5xx").right(),
        Column::keep("p50 ms").right(),
        Column::keep("p99 ms").right(),
        Column::keep("bytes in").right(),
        Column::keep("bytes out").right(),
        Column::keep("in flight").right(),
        Column::wrap("answered by", 12),
    ];
    let mut rows: Vec<Vec<Text>> = named
        .iter()
        .enumerate()
        .filter_map(|(i, upstream)| {
            let counts = snapshot.upstreams.get(*upstream)?;
            Some(row(&crate::trace::pick::letter(i), counts))
        })
        .collect();
    rows.push(row("proxy's own", &snapshot.proxy));
    rows.push(row("all", overall));
    let _ = writeln!(out, "{}", fit_columns(&columns, rows, width));
    if overall.status.other > 0 {
        let text = format!(
            "{} responses had a status of 600 or more (no class RFC 9110 defines)",
            overall.status.other
        );
        for line in output::wrap(&text, width, "", "  ") {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// The table at `width`: when it is too wide, the columns a reader can do
/// without go first (bytes, 3xx, in flight), then "answered by" wraps
/// between its layers; a number is never cut.
fn fit_columns(columns: &[Column<'_>], rows: Vec<Vec<Text>>, width: usize) -> comfy_table::Table {
    // Dropped in this order, as long as the table does not fit.
    const DROP: [&str; 4] = ["bytes in", "bytes out", "3xx", "in flight"];
    let mut keep: Vec<usize> = (0..columns.len()).collect();
    let choose = |keep: &[usize]| -> (Vec<Column<'_>>, Vec<Vec<Text>>) {
        (
            keep.iter().map(|&i| columns[i]).collect(),
            rows.iter()
                .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
                .collect(),
        )
    };
    for dropped in DROP {
        let (c, r) = choose(&keep);
        if output::table_width(&output::fit_widths(&c, &r, usize::MAX)) <= width {
            break;
        }
        keep.retain(|&i| columns[i].header != dropped);
    }
    let (c, r) = choose(&keep);
    output::fitted(&c, r, width)
}

/// One table row.
fn row(name: &str, counts: &Counts) -> Vec<Text> {
    let status = &counts.status;
    let text = |v: String| (v, None);
    vec![
        text(name.to_string()),
        text(counts.requests.to_string()),
        text(status.success.to_string()),
        text(status.redirection.to_string()),
        text(status.client_error.to_string()),
        text(status.server_error.to_string()),
        text(ms(counts.latency_ms.p50)),
        text(ms(counts.latency_ms.p99)),
        text(indicatif::HumanBytes(counts.bytes_in).to_string()),
        text(indicatif::HumanBytes(counts.bytes_out).to_string()),
        text(counts.in_flight.to_string()),
        text(answered_by(counts)),
    ]
}

/// The mean latency: the sum over the count; `None` without requests.
fn mean(counts: &Counts) -> Option<f64> {
    let latency = &counts.latency_ms;
    (latency.count > 0).then(|| latency.sum_ms / latency.count as f64)
}

/// `upstream 38, proxy 2`: the layers that answered, in pipeline order
/// (any layer this version does not know last); `—` for none.
fn answered_by(counts: &Counts) -> String {
    let known = LAYERS
        .iter()
        .filter_map(|layer| counts.layers.get_key_value(*layer));
    let unknown = counts
        .layers
        .iter()
        .filter(|(layer, _)| !LAYERS.contains(&layer.as_str()));
    let parts: Vec<String> = known
        .chain(unknown)
        .filter(|(_, count)| **count > 0)
        // A no-break space: a narrow table wraps between layers, not in one.
        .map(|(layer, count)| format!("{layer}\u{a0}{count}"))
        .collect();
    if parts.is_empty() {
        ABSENT.to_string()
    } else {
        parts.join(", ")
    }
}

/// A latency in a cell: `—` when there is none; else two significant
/// digits below 10 ms (`0.21`, `1.3`), whole milliseconds above.
fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| ABSENT.to_string(), short_ms)
}

fn short_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2}")
    } else if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// A latency in running text: `0.21 ms`, `1.6 ms`, `—`.
fn with_unit(value: Option<f64>) -> String {
    value.map_or_else(|| ABSENT.to_string(), |ms| format!("{} ms", short_ms(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::stats::{RequestRecord, Stats};

    #[test]
    fn a_row_per_upstream_then_the_proxy_and_all() {
        let stats = Stats::new();
        let record = |upstream, status, layer| RequestRecord {
            upstream,
            status,
            latency: Duration::from_millis(3),
            bytes_in: 0,
            bytes_out: 2048,
            layer,
        };
        stats.record(record(Some("http://127.0.0.1:2003/base"), 200, None));
        stats.record(record(
            Some("http://127.0.0.1:2003/base"),
            502,
            Some("proxy"),
        ));
        stats.record(record(None, 429, Some("rate-limit")));
        for width in [80, 120, 180] {
            // "answered by" joins a layer and its count with a no-break space.
            let text = render("http://127.0.0.1:2002", &stats.snapshot(), &[], width)
                .replace('\u{a0}', " ");
            assert!(
                text.starts_with("lab proxy at http://127.0.0.1:2002: up "),
                "{text}"
            );
            assert!(text.contains("3 finished, 0 in flight"), "{text}");
            for line in text.lines() {
                assert!(output::text_width(line) <= width, "{line:?} in\n{text}");
            }
            let line = |name: &str| {
                text.lines()
                    .find(|l| l.contains(name))
                    .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
                    .to_string()
            };
            // The upstream's URL is whole, once, in the legend; its row is its letter.
            assert_eq!(line("= http://").trim(), "a = http://127.0.0.1:2003/base");
            let upstream = line("│ a ");
            // At 80 columns "answered by" wraps between layers.
            let answered = if width >= 120 {
                "upstream 1, proxy 1"
            } else {
                "upstream 1,"
            };
            assert!(upstream.contains(answered), "{upstream}");
            // The bytes are the first columns to go when there is no room.
            assert_eq!(upstream.contains("4.00 KiB"), width >= 180, "{upstream}");
            let own = line("proxy's own");
            assert!(own.contains("rate-limit 1"), "{own}");
            let all = line("│ all");
            assert!(all.contains(answered), "{all}");
            // A sub-millisecond latency reads as one, not as a bucket's bound.
            assert!(text.contains("p50 3.0 ms"), "{text}");
        }
    }

    #[test]
    fn letters_follow_the_proxys_order_as_lab_trace_gives_them() {
        let stats = Stats::new();
        stats.record(RequestRecord {
            upstream: Some("http://127.0.0.1:2004/base"),
            status: 200,
            latency: Duration::from_micros(210),
            bytes_in: 0,
            bytes_out: 0,
            layer: None,
        });
        let order = [
            "http://127.0.0.1:2003/base".to_string(),
            "http://127.0.0.1:2004/base".to_string(),
        ];
        let text = render("http://127.0.0.1:2002", &stats.snapshot(), &order, 80);
        assert!(
            text.contains(
                "  a = http://127.0.0.1:2003/base (no requests yet)\n  b = http://127.0.0.1:2004/base\n"
            ),
            "{text}"
        );
        assert!(text.contains("│ b "), "{text}");
        assert!(!text.contains("│ a "), "{text}");
        // A loopback hop's latency, not the first bucket's bound.
        assert!(text.contains("p50 0.21 ms"), "{text}");
    }

    #[test]
    fn no_requests_says_how_to_send_some() {
        let text = render("http://127.0.0.1:2002", &Stats::new().snapshot(), &[], 80);
        assert!(text.contains("no requests yet"), "{text}");
        assert!(!text.contains("upstream"), "no table: {text}");
    }
}

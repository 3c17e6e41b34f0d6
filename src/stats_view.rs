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
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use comfy_table::{Cell, CellAlignment};

use crate::middleware::stats::{Counts, LAYERS, STATS_PATH, StatsSnapshot};
use crate::net::Endpoint;
use crate::output;

/// How long reading the statistics may take (the proxy answers from
/// memory, at once).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The width of the table when stdout is not a terminal: twelve columns
/// need more than the house width.
const TABLE_WIDTH: u16 = 180;

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
        print!("{}", render(&proxy.to_string(), &snapshot));
    }
    Ok(ExitCode::SUCCESS)
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

/// The human report: the proxy's line, then the table.
pub fn render(proxy: &str, snapshot: &StatsSnapshot) -> String {
    let mut out = String::new();
    let uptime = Duration::from_secs(snapshot.uptime_seconds as u64);
    let _ = writeln!(
        out,
        "{}",
        output::heading(&format!(
            "lab proxy at {proxy}: up {}",
            humantime::format_duration(uptime)
        ))
    );
    let overall = &snapshot.overall;
    let _ = writeln!(
        out,
        "connections: {} open, {} accepted; requests: {} finished, {} in flight; \
         latency p50 {}, p99 {}; bodies: {} in, {} out",
        snapshot.connections.open,
        snapshot.connections.total,
        overall.requests,
        overall.in_flight,
        with_unit(overall.latency_ms.p50),
        with_unit(overall.latency_ms.p99),
        indicatif::HumanBytes(overall.bytes_in),
        indicatif::HumanBytes(overall.bytes_out),
    );
    if overall.requests == 0 && overall.in_flight == 0 {
        let _ = writeln!(
            out,
            "no requests yet: send some, e.g. `lab trace --proxy {proxy}` or `curl -s {proxy}/abc`"
        );
        return out;
    }

    let mut table = output::table(&[
        "upstream",
        "requests",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "p50 ms",
        "p99 ms",
        "bytes in",
        "bytes out",
        "in flight",
        "answered by",
    ]);
    if !std::io::stdout().is_terminal() {
        table.set_width(TABLE_WIDTH);
    }
    for (upstream, counts) in &snapshot.upstreams {
        table.add_row(row(upstream, counts));
    }
    table.add_row(row("(proxy's own answers)", &snapshot.proxy));
    table.add_row(row("all", overall));
    for index in 1..=10 {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let _ = writeln!(out, "{table}");
    if overall.status.other > 0 {
        let _ = writeln!(
            out,
            "{} responses had a status of 600 or more (no class RFC 9110 defines)",
            overall.status.other
        );
    }
    out
}

/// One table row.
fn row(name: &str, counts: &Counts) -> Vec<Cell> {
    let status = &counts.status;
    vec![
        Cell::new(name),
        Cell::new(counts.requests),
        Cell::new(status.success),
        Cell::new(status.redirection),
        Cell::new(status.client_error),
        Cell::new(status.server_error),
        Cell::new(ms(counts.latency_ms.p50)),
        Cell::new(ms(counts.latency_ms.p99)),
        Cell::new(indicatif::HumanBytes(counts.bytes_in)),
        Cell::new(indicatif::HumanBytes(counts.bytes_out)),
        Cell::new(counts.in_flight),
        Cell::new(answered_by(counts)),
    ]
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
        .map(|(layer, count)| format!("{layer} {count}"))
        .collect();
    if parts.is_empty() {
        ABSENT.to_string()
    } else {
        parts.join(", ")
    }
}

/// A latency in a cell: one decimal, `—` when there is none.
fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| ABSENT.to_string(), |ms| format!("{ms:.1}"))
}

/// A latency in running text: `1.6 ms`, `—`.
fn with_unit(value: Option<f64>) -> String {
    value.map_or_else(|| ABSENT.to_string(), |ms| format!("{ms:.1} ms"))
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
        let text = render("http://127.0.0.1:2002", &stats.snapshot());
        assert!(
            text.starts_with("lab proxy at http://127.0.0.1:2002: up "),
            "{text}"
        );
        assert!(text.contains("3 finished, 0 in flight"), "{text}");
        let line = |name: &str| {
            text.lines()
                .find(|l| l.contains(name))
                .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
                .to_string()
        };
        let upstream = line("http://127.0.0.1:2003/base");
        assert!(upstream.contains("upstream 1, proxy 1"), "{upstream}");
        assert!(upstream.contains("4.00 KiB"), "{upstream}");
        let own = line("(proxy's own answers)");
        assert!(own.contains("rate-limit 1"), "{own}");
        let all = line("│ all");
        assert!(all.contains("upstream 1, proxy 1, rate-limit 1"), "{all}");
    }

    #[test]
    fn no_requests_says_how_to_send_some() {
        let text = render("http://127.0.0.1:2002", &Stats::new().snapshot());
        assert!(text.contains("no requests yet"), "{text}");
        assert!(!text.contains("upstream"), "no table: {text}");
    }
}

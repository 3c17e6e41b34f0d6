//! 数据统计 statistics: `lab::middleware::stats` seen from outside, and
//! `lab stats`, the binary, against a stand-in proxy.
//!
//! The metrics are read back with a Prometheus text-format parser
//! (`prometheus-parse`), not with string matching: what a scraper would
//! understand is what is checked. The expectations come from the records
//! the test makes, counted by hand, and the JSON and the metrics must tell
//! the same numbers. `lab stats` runs against a tiny server in the test
//! that serves a real `Stats` snapshot at `/_lab/stats` (the proxy's wiring
//! is tested with the proxy). Everything listens on 127.0.0.1 port 0; every
//! wait is bounded.

use crate::common::process::{Run, run_lab_captured};
use crate::common::screen::{WIDTHS, assert_fits, run_at_width};
use crate::common::servers::dead_port;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lab::middleware::stats::{
    METRICS_CONTENT_TYPE, PROXY_UPSTREAM, RequestRecord, STATS_PATH, Stats, StatsSnapshot,
};
use prometheus_parse::{Sample, Scrape, Value};
use tokio::net::TcpListener;

const A: &str = "http://127.0.0.1:2003/base";
const B: &str = "http://127.0.0.1:2004/base";

fn exchange(
    upstream: Option<&'static str>,
    status: u16,
    ms: u64,
    layer: Option<&'static str>,
) -> RequestRecord<'static> {
    RequestRecord {
        upstream,
        status,
        latency: Duration::from_millis(ms),
        bytes_in: 10,
        bytes_out: 100,
        layer,
    }
}

/// The known set of exchanges every test starts from:
///
/// | upstream | status | ms | layer | count |
/// |---|---|---|---|---|
/// | A | 200 | 1 | upstream | 3 |
/// | A | 502 | 30 | proxy | 1 |
/// | B | 200 | 300 | upstream | 2 |
/// | B | 404 | 3 | upstream | 1 |
/// | — | 429 | 0 | rate-limit | 2 |
/// | — | 401 | 0 | auth | 1 |
///
/// each with 10 bytes in and 100 out; and two connections opened, one
/// closed, one request in flight at B.
fn known_stats() -> (Arc<Stats>, Vec<Box<dyn std::any::Any>>) {
    let stats = Arc::new(Stats::new());
    for _ in 0..3 {
        stats.record(exchange(Some(A), 200, 1, None));
    }
    stats.record(exchange(Some(A), 502, 30, Some("proxy")));
    for _ in 0..2 {
        stats.record(exchange(Some(B), 200, 300, None));
    }
    stats.record(exchange(Some(B), 404, 3, None));
    for _ in 0..2 {
        stats.record(exchange(None, 429, 0, Some("rate-limit")));
    }
    stats.record(exchange(None, 401, 0, Some("auth")));
    let open = stats.connection_opened();
    drop(stats.connection_opened());
    let mut in_flight = stats.request_started();
    in_flight.sent_to(B);
    (stats, vec![Box::new(open), Box::new(in_flight)])
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("parse the metrics")
}

/// The one sample of `metric` with exactly these labels.
fn sample<'s>(scrape: &'s Scrape, metric: &str, labels: &[(&str, &str)]) -> &'s Sample {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one sample {metric}{labels:?}, found {found:#?}"
    );
    found[0]
}

/// The value of a counter, gauge or untyped sample.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{metric}{labels:?} is not a single value: {other:?}"),
    }
}

/// A histogram's cumulative buckets, `(le, count)`.
fn buckets(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    match &sample(scrape, metric, labels).value {
        Value::Histogram(counts) => counts.iter().map(|c| (c.less_than, c.count)).collect(),
        other => panic!("{metric}{labels:?} is not a histogram: {other:?}"),
    }
}

#[test]
fn the_metrics_parse_and_tell_what_was_recorded() {
    let (stats, _guards) = known_stats();
    let text = stats.prometheus_text();
    assert_eq!(
        METRICS_CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let scrape = parse(&text);
    let total = "lab_requests_total";
    let proxy = PROXY_UPSTREAM;
    assert_eq!(proxy, "(proxy)");

    // lab_requests_total{upstream, class}: every class 1xx…5xx is there.
    for (upstream, class, count) in [
        (A, "1xx", 0.0),
        (A, "2xx", 3.0),
        (A, "3xx", 0.0),
        (A, "4xx", 0.0),
        (A, "5xx", 1.0),
        (B, "2xx", 2.0),
        (B, "4xx", 1.0),
        (B, "5xx", 0.0),
        (proxy, "2xx", 0.0),
        (proxy, "4xx", 3.0),
    ] {
        let labels = [("upstream", upstream), ("class", class)];
        assert_eq!(value(&scrape, total, &labels), count, "{upstream} {class}");
        assert!(
            matches!(sample(&scrape, total, &labels).value, Value::Counter(_)),
            "a counter"
        );
    }
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.labels.get("class") == Some("other")),
        "no class other until a status of 600 or more"
    );

    // lab_responses_by_layer_total{upstream, layer}: the layers that answered.
    let by_layer = "lab_responses_by_layer_total";
    for (upstream, layer, count) in [
        (A, "upstream", 3.0),
        (A, "proxy", 1.0),
        (B, "upstream", 3.0),
        (proxy, "rate-limit", 2.0),
        (proxy, "auth", 1.0),
    ] {
        let labels = [("upstream", upstream), ("layer", layer)];
        assert_eq!(
            value(&scrape, by_layer, &labels),
            count,
            "{upstream} {layer}"
        );
    }
    let layer_samples = scrape
        .samples
        .iter()
        .filter(|s| s.metric == by_layer)
        .count();
    assert_eq!(layer_samples, 5, "layers that never answered are left out");

    // The latency histogram, in seconds: A had 3 × 1 ms and 1 × 30 ms.
    // Sub-millisecond buckets first: a loopback hop takes 0.1 to 0.3 ms.
    let duration = "lab_request_duration_seconds";
    let a = buckets(&scrape, duration, &[("upstream", A)]);
    let bounds: Vec<f64> = a.iter().map(|(le, _)| *le).collect();
    assert_eq!(
        bounds,
        [
            0.00005,
            0.0001,
            0.00025,
            0.0005,
            0.001,
            0.0025,
            0.005,
            0.01,
            0.025,
            0.05,
            0.1,
            0.25,
            0.5,
            1.0,
            2.5,
            5.0,
            10.0,
            f64::INFINITY
        ]
    );
    let counts: Vec<f64> = a.iter().map(|(_, count)| *count).collect();
    assert_eq!(
        counts,
        [
            0.0, 0.0, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0,
            4.0
        ]
    );
    let b = buckets(&scrape, duration, &[("upstream", B)]);
    assert_eq!(b[5], (0.0025, 0.0));
    assert_eq!(b[6], (0.005, 1.0), "the 3 ms 404");
    assert_eq!(b[12], (0.5, 3.0), "and the two 300 ms");
    let own = buckets(&scrape, duration, &[("upstream", proxy)]);
    assert_eq!(own[0], (0.00005, 3.0));
    let a_labels = [("upstream", A)];
    assert_eq!(
        value(&scrape, "lab_request_duration_seconds_count", &a_labels),
        4.0
    );
    let sum = value(&scrape, "lab_request_duration_seconds_sum", &a_labels);
    assert!((sum - 0.033).abs() < 1e-12, "3 × 1 ms + 30 ms, got {sum}");
    let sum = value(
        &scrape,
        "lab_request_duration_seconds_sum",
        &[("upstream", B)],
    );
    assert!((sum - 0.603).abs() < 1e-12, "{sum}");

    // Bytes, connections, requests in flight.
    let bytes = "lab_bytes_total";
    assert_eq!(
        value(&scrape, bytes, &[("upstream", A), ("direction", "in")]),
        40.0
    );
    assert_eq!(
        value(&scrape, bytes, &[("upstream", A), ("direction", "out")]),
        400.0
    );
    assert_eq!(
        value(&scrape, bytes, &[("upstream", proxy), ("direction", "out")]),
        300.0
    );
    assert_eq!(value(&scrape, "lab_open_connections", &[]), 1.0);
    assert_eq!(value(&scrape, "lab_connections_total", &[]), 2.0);
    assert_eq!(value(&scrape, "lab_in_flight_requests", &[]), 1.0);
    let at = "lab_upstream_in_flight_requests";
    assert_eq!(value(&scrape, at, &[("upstream", B)]), 1.0);
    assert_eq!(value(&scrape, at, &[("upstream", A)]), 0.0);
    assert_eq!(value(&scrape, at, &[("upstream", proxy)]), 0.0);
    let uptime = value(&scrape, "lab_uptime_seconds", &[]);
    assert!((0.0..60.0).contains(&uptime), "{uptime}");

    // Every family teaches: a HELP line and a TYPE line.
    for (family, kind) in [
        ("lab_uptime_seconds", "gauge"),
        ("lab_open_connections", "gauge"),
        ("lab_connections_total", "counter"),
        ("lab_in_flight_requests", "gauge"),
        ("lab_upstream_in_flight_requests", "gauge"),
        ("lab_requests_total", "counter"),
        ("lab_responses_by_layer_total", "counter"),
        ("lab_request_duration_seconds", "histogram"),
        ("lab_bytes_total", "counter"),
    ] {
        let help = scrape.docs.get(family).map_or("", String::as_str);
        assert!(
            help.len() > 40,
            "{family} has a HELP line that explains: {help:?}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "# TYPE {family} {kind} in\n{text}"
        );
    }
}

#[test]
fn json_and_metrics_agree_after_many_records() {
    let stats = Stats::new();
    // A spread of statuses, latencies, layers and upstreams, the same every
    // run: exchange i goes to upstream i mod 4 (3: the proxy's own answer).
    let upstreams = [
        "http://127.0.0.1:2003/base",
        "http://127.0.0.1:2004/base",
        "http://x:1",
    ];
    let statuses = [200, 200, 201, 304, 404, 429, 500, 502, 101, 200, 204];
    let layers = [
        None,
        None,
        Some("proxy"),
        Some("breaker"),
        None,
        Some("made-up"),
    ];
    for i in 0..997u64 {
        let upstream = upstreams.get((i % 4) as usize).copied();
        stats.record(RequestRecord {
            upstream,
            status: statuses[(i % statuses.len() as u64) as usize],
            latency: Duration::from_micros(i * i * 13 % 12_000_000),
            bytes_in: i % 7,
            bytes_out: i * 31,
            layer: layers[(i % layers.len() as u64) as usize],
        });
    }
    let snapshot = stats.snapshot();
    let scrape = parse(&stats.prometheus_text());
    assert_eq!(snapshot.overall.requests, 997);

    let mut series: Vec<(&str, &lab::middleware::stats::Counts)> = snapshot
        .upstreams
        .iter()
        .map(|(upstream, counts)| (upstream.as_str(), counts))
        .collect();
    series.push((PROXY_UPSTREAM, &snapshot.proxy));
    assert_eq!(series.len(), 4);
    let mut requests = 0.0;
    for (upstream, counts) in series {
        let status = &counts.status;
        for (class, count) in [
            ("1xx", status.informational),
            ("2xx", status.success),
            ("3xx", status.redirection),
            ("4xx", status.client_error),
            ("5xx", status.server_error),
        ] {
            let labels = [("upstream", upstream), ("class", class)];
            let metric = value(&scrape, "lab_requests_total", &labels);
            assert_eq!(metric, count as f64, "{upstream} {class}");
            requests += metric;
        }
        for (layer, &count) in &counts.layers {
            let labels = [("upstream", upstream), ("layer", layer.as_str())];
            let metric = value(&scrape, "lab_responses_by_layer_total", &labels);
            assert_eq!(metric, count as f64, "{upstream} {layer}");
        }
        let labels = [("upstream", upstream)];
        let histogram = buckets(&scrape, "lab_request_duration_seconds", &labels);
        assert_eq!(histogram.len(), counts.latency_ms.buckets.len());
        for ((le, metric), json) in histogram.iter().zip(&counts.latency_ms.buckets) {
            assert_eq!(*metric, json.count as f64, "{upstream} le {le}");
            assert_eq!(json.le_ms.map_or(f64::INFINITY, |ms| ms / 1e3), *le);
        }
        let count = value(&scrape, "lab_request_duration_seconds_count", &labels);
        assert_eq!(count, counts.latency_ms.count as f64);
        assert_eq!(counts.latency_ms.count, counts.requests);
        let sum = value(&scrape, "lab_request_duration_seconds_sum", &labels);
        assert!(
            (sum * 1e3 - counts.latency_ms.sum_ms).abs() < 1e-6,
            "{upstream}"
        );
        for (direction, bytes) in [("in", counts.bytes_in), ("out", counts.bytes_out)] {
            let labels = [("upstream", upstream), ("direction", direction)];
            assert_eq!(value(&scrape, "lab_bytes_total", &labels), bytes as f64);
        }
    }
    assert_eq!(requests, 997.0, "the series add up to every request");
    assert_eq!(
        snapshot.overall.layers.get("other"),
        Some(&166),
        "made-up, every 6th"
    );
}

#[test]
fn the_json_round_trips_and_keeps_its_field_names() {
    let (stats, _guards) = known_stats();
    let snapshot = stats.snapshot();
    let json = serde_json::to_string_pretty(&snapshot).unwrap();
    let back: StatsSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snapshot);

    // The documented names (the contract `lab stats --json` readers rely on).
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let at = |pointer: &str| {
        value
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no {pointer} in {json}"))
            .clone()
    };
    assert!(at("/uptime_seconds").is_f64());
    assert_eq!(at("/connections/open"), 1);
    assert_eq!(at("/connections/total"), 2);
    assert_eq!(at("/overall/requests"), 10);
    assert_eq!(at("/overall/in_flight"), 1);
    assert_eq!(at("/overall/status/2xx"), 5);
    assert_eq!(at("/overall/status/4xx"), 4);
    assert_eq!(at("/overall/status/other"), 0);
    assert_eq!(at("/overall/layers/upstream"), 6);
    assert_eq!(at("/overall/bytes_in"), 100);
    assert_eq!(at("/overall/bytes_out"), 1000);
    let a = format!("/upstreams/{}", A.replace('~', "~0").replace('/', "~1"));
    assert_eq!(at(&format!("{a}/requests")), 4);
    assert_eq!(at(&format!("{a}/layers/proxy")), 1);
    assert_eq!(at(&format!("{a}/latency_ms/count")), 4);
    assert_eq!(at(&format!("{a}/latency_ms/sum_ms")), 33.0);
    // From the HDR histogram: 1 ms and 30 ms, each to within 1 %.
    let p50 = at(&format!("{a}/latency_ms/p50")).as_f64().unwrap();
    assert!((0.99..=1.01).contains(&p50), "p50 {p50}");
    let p99 = at(&format!("{a}/latency_ms/p99")).as_f64().unwrap();
    assert!((29.7..=30.3).contains(&p99), "p99 {p99}");
    assert_eq!(at(&format!("{a}/latency_ms/buckets/0/le_ms")), 0.05);
    assert_eq!(
        at(&format!("{a}/latency_ms/buckets/17/le_ms")),
        serde_json::Value::Null
    );
    assert_eq!(at(&format!("{a}/latency_ms/buckets/17/count")), 4);
    assert_eq!(at("/proxy/requests"), 3);
    assert_eq!(at("/proxy/layers/rate-limit"), 2);
    assert_eq!(
        at("/proxy/layers").as_object().unwrap().len(),
        2,
        "zeros left out"
    );
    let empty = serde_json::to_value(Stats::new().snapshot()).unwrap();
    assert_eq!(
        empty.pointer("/overall/latency_ms/p50"),
        Some(&serde_json::Value::Null)
    );
}

// ---------------------------------------------------------------------------
// `lab stats`, the binary

/// A stand-in for `lab proxy`: answers `STATS_PATH` with `body` and `status`
/// (404 for any other path), until the test ends.
async fn stand_in(status: StatusCode, body: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    let (status, body) = if req.uri().path() == STATS_PATH {
                        (status, body.to_string())
                    } else {
                        (StatusCode::NOT_FOUND, "not here\n".to_string())
                    };
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// `lab stats ARGS` to completion (bounded), stdout and stderr captured.
async fn lab_stats(args: &[&str]) -> Run {
    let mut argv = vec!["stats"];
    argv.extend_from_slice(args);
    run_lab_captured(&argv).await
}

/// The line of the table that contains `name`.
fn row<'t>(table: &'t str, name: &str) -> &'t str {
    table
        .lines()
        .find(|line| line.contains(name))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{table}"))
}

/// The cells of a table row, trimmed.
fn cells(line: &str) -> Vec<&str> {
    line.split(['│', '┆'])
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect()
}

#[tokio::test]
async fn lab_stats_prints_a_row_per_upstream() {
    let (stats, _guards) = known_stats();
    let json = serde_json::to_string_pretty(&stats.snapshot()).unwrap();
    let addr = stand_in(StatusCode::OK, json).await;
    let proxy = format!("http://{addr}");
    // Wide enough for every column.
    let run = run_at_width(&["stats", "--proxy", &proxy], 200).await;
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    // "answered by" joins a layer and its count with a no-break space.
    let out = &run.stdout.replace('\u{a0}', " ");
    assert!(
        out.starts_with(&format!("lab proxy at {proxy}: up ")),
        "{out}"
    );
    assert!(
        out.contains("connections: 1 open, 2 accepted; requests: 10 finished, 1 in flight"),
        "{out}"
    );
    // The upstreams by letter, each URL whole on its line.
    assert!(out.contains(&format!("\n  a = {A}\n  b = {B}\n")), "{out}");
    let header = cells(row(out, "│ upstream"));
    assert_eq!(
        header,
        [
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
            "answered by"
        ]
    );
    // A: 3 × 1 ms and 1 × 30 ms: p50 1 ms, p99 30 ms (the HDR histogram's,
    // within 1 %: not a bucket's bound).
    assert_eq!(
        cells(row(out, "│ a ")),
        [
            "a",
            "4",
            "3",
            "0",
            "0",
            "1",
            "1.0",
            "30",
            "40 B",
            "400 B",
            "0",
            "upstream 3, proxy 1"
        ]
    );
    let b = cells(row(out, "│ b "));
    assert_eq!(b[1..6], ["3", "2", "0", "1", "0"], "{b:?}");
    assert_eq!(b[10], "1", "one request in flight at B");
    assert_eq!(b[11], "upstream 3");
    let own = cells(row(out, "proxy's own"));
    assert_eq!(own[1..6], ["3", "0", "0", "3", "0"], "{own:?}");
    assert_eq!(own[11], "auth 1, rate-limit 2");
    let all = cells(row(out, "│ all"));
    assert_eq!(all[1], "10");
    assert_eq!(all[11], "upstream 6, proxy 1, auth 1, rate-limit 2");
    // The rows come in order: upstreams by URL, the proxy's own, all.
    let position = |name: &str| out.find(name).unwrap();
    assert!(position("│ a ") < position("│ b "));
    assert!(position("│ b ") < position("proxy's own"));
    assert!(position("proxy's own") < position("│ all"));
}

/// At 80 and 120 columns: no line wider, no URL split, the numbers whole.
#[tokio::test]
async fn lab_stats_fits_80_and_120_columns() {
    let (stats, _guards) = known_stats();
    let json = serde_json::to_string_pretty(&stats.snapshot()).unwrap();
    let addr = stand_in(StatusCode::OK, json).await;
    let proxy = format!("http://{addr}");
    for width in WIDTHS {
        let run = run_at_width(&["stats", "--proxy", &proxy], width).await;
        assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
        assert_fits(&run.stdout, width, &[A, B, &proxy]);
        let a = cells(row(&run.stdout, "│ a "));
        assert_eq!(a[..3], ["a", "4", "3"], "{a:?}");
        assert!(a.contains(&"1.0") && a.contains(&"30"), "p50, p99: {a:?}");
    }
}

#[tokio::test]
async fn lab_stats_json_prints_the_page_as_served() {
    let (stats, _guards) = known_stats();
    let snapshot = stats.snapshot();
    let json = serde_json::to_string_pretty(&snapshot).unwrap();
    let addr = stand_in(StatusCode::OK, json.clone()).await;
    let run = lab_stats(&["--proxy", &addr.to_string(), "--json"]).await;
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout, json + "\n");
    let back: StatsSnapshot = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(back, snapshot);
}

#[tokio::test]
async fn lab_stats_with_no_requests_says_how_to_send_some() {
    let json = serde_json::to_string(&Stats::new().snapshot()).unwrap();
    let addr = stand_in(StatusCode::OK, json).await;
    let run = lab_stats(&["--proxy", &format!("http://{addr}")]).await;
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stdout.contains("no requests yet"), "{}", run.stdout);
}

#[tokio::test]
async fn lab_stats_with_nothing_listening_says_to_start_lab_proxy() {
    // A port that was free a moment ago: bound, then closed.
    let addr = dead_port();
    let run = lab_stats(&["--proxy", &format!("http://{addr}")]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("nothing listens at {addr}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("start it with `lab proxy`"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[tokio::test]
async fn lab_stats_against_something_without_statistics_fails_with_a_hint() {
    // lab naive forwards /_lab/stats to a real server, which echoes it: a
    // 200 that is not the statistics.
    let addr = stand_in(StatusCode::OK, "http://127.0.0.1:2003/_lab/stats\n".into()).await;
    let run = lab_stats(&["--proxy", &format!("http://{addr}")]).await;
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("is not lab proxy's statistics"),
        "{}",
        run.stderr
    );

    // A proxy without the page answers 404.
    let addr = stand_in(StatusCode::NOT_FOUND, String::new()).await;
    let run = lab_stats(&["--proxy", &format!("http://{addr}")]).await;
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("404 Not Found"), "{}", run.stderr);
    assert!(run.stderr.contains("keeps no statistics"), "{}", run.stderr);
}

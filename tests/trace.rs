//! `lab trace` on real sockets: the binary fires requests through real
//! proxies at real servers, and its output (tables or `--json`) must tell
//! what happened on the wire.
//!
//! Servers and proxies run in this process (`RunningServer`, `RunningProxy`,
//! `naive::serve`, `forward::serve`) except in the first test, where the
//! whole chain is the `lab` binary, as a learner runs it. The expectations
//! come from outside the trace: nginx's smooth weighted round robin by hand
//! (b a b for weights 10 and 20), the server's own address, the client's.
//! Everything listens on 127.0.0.1 port 0; every wait is bounded.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::bounded_by;
use crate::common::process::{LabProcess, REALSERVER_AT, Run, proxy_process, run_lab_captured};
use crate::common::screen::{WIDTHS, assert_fits, run_at_width};
use crate::common::servers::{dead_port, forward_proxy, naive_to, proxy, real_server};
use lab::proxy::forward::ForwardConfig;
use serde_json::Value;

/// The longest a whole test may take: a hang anywhere fails it by then.
const TEST_LIMIT: Duration = Duration::from_secs(40);

/// Runs a test's body under [`TEST_LIMIT`].
async fn bounded(test: impl std::future::Future<Output = ()>) {
    bounded_by(TEST_LIMIT, test).await;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `lab trace ARGS` to completion (bounded), stdout and stderr captured.
async fn trace(args: &[&str]) -> Run {
    let mut argv = vec!["trace"];
    argv.extend_from_slice(args);
    run_lab_captured(&argv).await
}

/// `lab trace ARGS --json`, which must succeed; its document.
async fn trace_json(args: &[&str]) -> Value {
    let mut argv = args.to_vec();
    argv.push("--json");
    let run = trace(&argv).await;
    assert!(
        run.status.success(),
        "lab trace {argv:?} failed: {}\n{}",
        run.status,
        run.stderr
    );
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("--json printed no JSON ({err}):\n{}", run.stdout))
}

/// `lab trace ARGS` (tables), which must succeed; its stdout.
async fn trace_text(args: &[&str]) -> String {
    let run = trace(args).await;
    assert!(
        run.status.success(),
        "lab trace {args:?} failed: {}\n{}",
        run.status,
        run.stderr
    );
    run.stdout
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn requests(doc: &Value) -> &Vec<Value> {
    doc["requests"].as_array().expect("requests is an array")
}

/// The cells of a table line (`│ a ┆ b │` → `["a", "b"]`), trimmed.
fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('│')
        .split('┆')
        .map(str::trim)
        .collect()
}

/// The first table row of `text` whose leading cells are `first`, all its cells.
fn row<'a>(text: &'a str, first: &[&str]) -> Option<Vec<&'a str>> {
    text.lines()
        .map(cells)
        .find(|cells| cells.len() >= first.len() && cells[..first.len()] == *first)
}

/// The line of `text` that contains every one of `parts`.
fn line_with<'a>(text: &'a str, parts: &[&str]) -> Option<&'a str> {
    text.lines()
        .find(|line| parts.iter().all(|p| line.contains(p)))
}

// ---------------------------------------------------------------------------
// The balancer's choice
// ---------------------------------------------------------------------------

/// The whole chain from the binary: `lab realserver` with two servers,
/// `lab proxy --lb wrr` with weights 10 and 20, `lab trace -n 30 --json`.
/// nginx's smooth WRR gives b a b, ten times: exactly 10 and 20.
#[tokio::test(flavor = "multi_thread")]
async fn weighted_proxy_gives_ten_and_twenty_in_the_smooth_order() {
    bounded(async {
        let mut servers = LabProcess::spawn(&[
            "realserver",
            "--addr",
            "127.0.0.1:0",
            "--addr",
            "127.0.0.1:0",
        ]);
        let addrs = servers.addrs_after(REALSERVER_AT, 2).await;
        let (a, b) = (
            format!("http://{}/base", addrs[0]),
            format!("http://{}/base", addrs[1]),
        );
        let (spec_a, spec_b) = (format!("{a},10"), format!("{b},20"));
        let (mut proxy, proxy_addr) =
            proxy_process(&["--lb", "wrr", "--upstream", &spec_a, "--upstream", &spec_b]).await;

        let doc = trace_json(&["--proxy", &url(proxy_addr), "-n", "30"]).await;
        let records = requests(&doc);
        assert_eq!(records.len(), 30);
        let order: Vec<&str> = records
            .iter()
            .map(|r| {
                r["upstream"]
                    .as_str()
                    .expect("every request has an upstream")
            })
            .collect();
        let expected: Vec<&str> = (0..10)
            .flat_map(|_| [&b, &a, &b])
            .map(String::as_str)
            .collect();
        assert_eq!(order, expected, "the smooth order b a b");
        assert_eq!(doc["summary"]["per_upstream"][&a], 10);
        assert_eq!(doc["summary"]["per_upstream"][&b], 20);
        assert_eq!(doc["summary"]["per_status"]["200"], 30);

        for (i, record) in records.iter().enumerate() {
            assert_eq!(record["seq"], i as u64 + 1);
            assert_eq!(record["status"], 200);
            assert_eq!(record["pick"]["algorithm"], "weighted", "{record}");
            assert_eq!(record["pick"]["total"], 30);
            let saw = &record["upstream_saw"];
            assert!(saw["uri"].as_str().unwrap().starts_with("/base"), "{saw}");
            assert_eq!(saw["x_forwarded_for"], "127.0.0.1");
            // The upstream named by the proxy is the server that answered.
            let server = record["server"].as_str().unwrap();
            assert!(record["upstream"].as_str().unwrap().contains(server));
        }
        // The first pick: step 1 gives a 10, b 20; b pays the total of 30.
        let first = &records[0]["pick"];
        assert_eq!(first["before"][0]["current"], 10);
        assert_eq!(first["before"][1]["current"], 20);
        assert_eq!(first["after"][1]["current"], -10);

        proxy.terminate().await;
        servers.terminate().await;
    })
    .await;
}

/// The human table names the nodes a and b, marks the chosen one's weights,
/// and the summary sets the counts against the weights' shares.
#[tokio::test(flavor = "multi_thread")]
async fn the_table_explains_each_pick_and_the_summary_expects_the_weights() {
    bounded(async {
        let (one, two) = (real_server().await, real_server().await);
        let a = format!("http://{}/base", one.addr());
        let b = format!("http://{}/base", two.addr());
        let proxy = proxy(&[
            "--lb",
            "wrr",
            "--upstream",
            &format!("{a},10"),
            "--upstream",
            &format!("{b},20"),
        ])
        .await;
        let out = trace_text(&["--proxy", &url(proxy.addr()), "-n", "3"]).await;
        assert!(out.contains(&format!("a = {a}")), "{out}");
        assert!(out.contains(&format!("b = {b}")), "{out}");
        // Pick 1: b chosen (20 → -10); pick 2: a chosen (20 → -10); pick 3: b (30 → 0).
        assert!(
            row(&out, &["1", "b", "a 10→10 b 20→-10*"]).is_some(),
            "{out}"
        );
        assert!(
            row(&out, &["2", "a", "a 20→-10* b 10→10"]).is_some(),
            "{out}"
        );
        assert!(row(&out, &["3", "b", "a 0→0 b 30→0*"]).is_some(), "{out}");
        let bar_a = line_with(&out, &["  a ", "expected"]).expect("a summary bar for a");
        assert!(
            bar_a.contains(" 1 (33%)") && bar_a.contains("expected 33%"),
            "{bar_a}"
        );
        let bar_b = line_with(&out, &["  b ", "expected"]).expect("a summary bar for b");
        assert!(
            bar_b.contains(" 2 (67%)") && bar_b.contains("expected 67%"),
            "{bar_b}"
        );
        assert!(out.contains("status: 200 ×3"), "{out}");
        assert!(out.contains("latency: p50 "), "{out}");
        proxy.shutdown().await.unwrap();
    })
    .await;
}

/// At 80 and 120 columns: one line per request (#, letter, pick, status,
/// ms, peer port), what was the same on every request printed once above,
/// no line wider than the screen, no address, port or URL split; a value
/// too long for the screen cut with `…` (and whole in `--json`).
#[tokio::test(flavor = "multi_thread")]
async fn the_trace_fits_80_and_120_columns() {
    bounded(async {
        let (one, two) = (real_server().await, real_server().await);
        let a = format!("http://{}/base", one.addr());
        let b = format!("http://{}/base", two.addr());
        let proxy = proxy(&[
            "--lb",
            "wrr",
            "--upstream",
            &format!("{a},10"),
            "--upstream",
            &format!("{b},20"),
        ])
        .await;
        let proxy_url = url(proxy.addr());
        let proxy_addr = proxy.addr().to_string();
        let args = [
            "trace",
            "--proxy",
            &proxy_url,
            "-n",
            "4",
            "--xff",
            "203.0.113.7",
            "-H",
            "Connection: X-Foo",
            "-H",
            "X-Foo: 1",
        ];
        for width in WIDTHS {
            let run = run_at_width(&args, width).await;
            assert!(run.status.success(), "{}", run.stderr);
            let out = &run.stdout;
            assert_fits(out, width, &[&a, &b, &proxy_url, &proxy_addr]);
            // The same on every request: once, above the table.
            assert_eq!(
                out.matches("203.0.113.7, 127.0.0.1").count(),
                2,
                "once above the table, once in the header diff:\n{out}"
            );
            let header = row(out, &["#", "upstream", "pick", "status", "ms", "peer port"]);
            assert!(header.is_some(), "{out}");
            // The proxy's smooth WRR goes on from run to run: any letter.
            for seq in ["1", "2", "3", "4"] {
                let cells = row(out, &[seq]).unwrap_or_else(|| panic!("row {seq}:\n{out}"));
                assert!(["a", "b"].contains(&cells[1]), "{cells:?}");
                let port = cells.last().unwrap();
                assert!(port.parse::<u16>().is_ok(), "a peer port: {cells:?}");
            }
        }

        // One request to a fresh proxy: b is chosen, a is not, yet a's
        // weights are in the pick column.
        let fresh = crate::common::servers::proxy(&[
            "--lb",
            "wrr",
            "--upstream",
            &format!("{a},10"),
            "--upstream",
            &format!("{b},20"),
        ])
        .await;
        let run = run_at_width(&["trace", "--proxy", &url(fresh.addr()), "-n", "1"], 80).await;
        assert!(
            !run.stdout.contains("(not chosen in this run)"),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("  a = node 0 of the balancer"),
            "{}",
            run.stdout
        );

        // A URI too long for the screen is cut there, whole in --json.
        let long = format!("/{}", "x".repeat(150));
        let run = run_at_width(
            &["trace", "--proxy", &proxy_url, "-n", "2", "--path", &long],
            80,
        )
        .await;
        assert_fits(&run.stdout, 80, &[&a, &b]);
        assert!(
            run.stdout.contains("/base/xxx") && run.stdout.contains('…'),
            "{}",
            run.stdout
        );
        let doc = trace_json(&["--proxy", &proxy_url, "-n", "1", "--path", &long]).await;
        assert!(
            doc["requests"][0]["upstream_saw"]["uri"]
                .as_str()
                .unwrap()
                .ends_with(&long)
        );
        fresh.shutdown().await.unwrap();
        proxy.shutdown().await.unwrap();
    })
    .await;
}

/// With `--interval` each row is printed as its request completes, before
/// the next one is sent: the first row is on stdout while the trace still
/// runs; the summary comes at the end, and every line fits the width.
#[tokio::test(flavor = "multi_thread")]
async fn paced_rows_are_printed_as_they_complete() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    bounded(async {
        let (one, two) = (real_server().await, real_server().await);
        let a = format!("http://{}/base", one.addr());
        let b = format!("http://{}/base", two.addr());
        let proxy = proxy(&["--lb", "rr", "--upstream", &a, "--upstream", &b]).await;
        let proxy_url = url(proxy.addr());
        let mut command = crate::common::process::lab_command(&[
            "trace",
            "--proxy",
            &proxy_url,
            "-n",
            "4",
            "--interval",
            "700ms",
        ]);
        command
            .env("COLUMNS", "80")
            .stdout(std::process::Stdio::piped());
        let mut child = command.spawn().expect("start lab trace");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = std::time::Instant::now();
        let mut text = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            text.push_str(&line);
            text.push('\n');
            if line.split_whitespace().next() == Some("1") {
                break;
            }
        }
        // Requests 2, 3 and 4 start 0.7, 1.4 and 2.1 s after the first.
        assert!(
            started.elapsed() < Duration::from_millis(1800),
            "the first row came only after {:?}:\n{text}",
            started.elapsed()
        );
        assert!(!text.contains("Summary"), "{text}");
        while let Some(line) = lines.next_line().await.unwrap() {
            text.push_str(&line);
            text.push('\n');
        }
        assert!(child.wait().await.unwrap().success(), "{text}");
        assert_fits(&text, 80, &[&a, &b, &proxy_url]);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.parse::<u64>().is_ok())
            })
            .collect();
        assert_eq!(rows.len(), 4, "one line per request:\n{text}");
        let summary = text.find("Summary: 4 requests").expect("a summary");
        assert!(text.find(rows[3]).unwrap() < summary, "{text}");
        assert!(text.contains(&format!("  a = {a}")), "{text}");
        proxy.shutdown().await.unwrap();
    })
    .await;
}

/// Round robin under concurrency: every sequence number once, the counter
/// values 0..20 once each, 10 per upstream, and a client's X-Forwarded-For
/// arrives with the client's IP appended. `--seed` is echoed.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_keep_their_numbers_and_the_xff_is_appended() {
    bounded(async {
        let (one, two) = (real_server().await, real_server().await);
        let a = format!("http://{}/base", one.addr());
        let b = format!("http://{}/base", two.addr());
        let proxy = proxy(&["--lb", "rr", "--upstream", &a, "--upstream", &b]).await;
        let doc = trace_json(&[
            "--proxy",
            &url(proxy.addr()),
            "-n",
            "20",
            "--concurrency",
            "4",
            "--xff",
            "1.2.3.4",
            "--seed",
            "7",
        ])
        .await;
        assert_eq!(doc["seed"], 7);
        let records = requests(&doc);
        let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        let counters: BTreeSet<u64> = records
            .iter()
            .map(|r| {
                r["pick"]["counter"]
                    .as_u64()
                    .expect("a round-robin counter")
            })
            .collect();
        assert_eq!(counters, (0..20).collect());
        assert_eq!(doc["summary"]["per_upstream"][&a], 10);
        assert_eq!(doc["summary"]["per_upstream"][&b], 10);
        for record in records {
            assert_eq!(
                record["upstream_saw"]["x_forwarded_for"],
                "1.2.3.4, 127.0.0.1"
            );
        }
        proxy.shutdown().await.unwrap();
    })
    .await;
}

/// An upstream that is down: the proxy's 502s are data, counted by status,
/// with the proxy's reason in the summary; the exit status is still 0.
#[tokio::test(flavor = "multi_thread")]
async fn bad_gateways_are_counted_with_the_proxys_reason() {
    bounded(async {
        let nowhere = dead_port();
        let upstream = format!("http://{nowhere}/base");
        let proxy = proxy(&["--upstream", &upstream]).await;
        let doc = trace_json(&["--proxy", &url(proxy.addr()), "-n", "2"]).await;
        assert_eq!(doc["summary"]["per_status"]["502"], 2);
        for record in requests(&doc) {
            assert_eq!(record["status"], 502);
            assert_eq!(record["upstream"], upstream.as_str());
            assert!(record["upstream_saw"].is_null(), "{record}");
        }
        let out = trace_text(&["--proxy", &url(proxy.addr()), "-n", "2"]).await;
        assert!(out.contains("status: 502 ×2"), "{out}");
        assert!(
            line_with(&out, &["502: ", "cannot reach the upstream"]).is_some(),
            "{out}"
        );
        assert!(out.contains("No header diff"), "{out}");
        proxy.shutdown().await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------------------
// What the upstream saw
// ---------------------------------------------------------------------------

/// Through `lab proxy`, the header diff of the first request shows
/// X-Forwarded-For added, and Connection and the header it names removed.
#[tokio::test(flavor = "multi_thread")]
async fn the_header_diff_shows_forwarding_added_and_hop_by_hop_removed() {
    bounded(async {
        let server = real_server().await;
        let proxy = proxy(&["--upstream", &format!("http://{}/base", server.addr())]).await;
        let out = trace_text(&[
            "--proxy",
            &url(proxy.addr()),
            "-n",
            "2",
            "-H",
            "Connection: X-Foo",
            "-H",
            "X-Foo: 1",
        ])
        .await;
        assert!(out.contains("Headers of request #1"), "{out}");
        // change | header | client sent | upstream received
        let xff = row(&out, &["+ added", "X-Forwarded-For"]).expect("X-Forwarded-For added");
        assert_eq!(xff[2..4], ["—", "127.0.0.1"], "{out}");
        let foo = row(&out, &["− removed", "X-Foo"]).expect("X-Foo removed");
        assert_eq!(foo[2..4], ["1", "—"], "{out}");
        // At 100 columns the reasons are listed under the table.
        assert!(
            out.contains("\n  X-Foo:             named in Connection"),
            "{out}"
        );
        let connection = row(&out, &["− removed", "Connection"]).expect("Connection removed");
        assert_eq!(connection[2], "X-Foo", "{out}");
        assert!(row(&out, &["+ added", "Via"]).is_some(), "{out}");
        assert!(row(&out, &["= same", "Accept"]).is_some(), "{out}");
        proxy.shutdown().await.unwrap();
    })
    .await;
}

/// `--direct`: no proxy, so nothing changes on the way, the server's peer is
/// the client's own socket, and no X-Forwarded-For appears.
#[tokio::test(flavor = "multi_thread")]
async fn direct_requests_arrive_unchanged_from_the_clients_own_socket() {
    bounded(async {
        let server = real_server().await;
        let direct = url(server.addr());
        let doc = trace_json(&["--direct", &direct, "-n", "2", "-H", "X-Foo: 1"]).await;
        assert_eq!(doc["mode"], "direct");
        for record in requests(&doc) {
            let saw = &record["upstream_saw"];
            assert_eq!(saw["remote_addr"], record["client_addr"], "{record}");
            assert!(saw["x_forwarded_for"].is_null(), "{saw}");
            assert_eq!(record["upstream"], direct.as_str());
            assert!(record["pick"].is_null());
        }
        let out = trace_text(&[
            "--direct",
            &direct,
            "-H",
            "Connection: X-Foo",
            "-H",
            "X-Foo: 1",
        ])
        .await;
        assert!(out.contains("(no proxy)"), "{out}");
        assert!(row(&out, &["= same", "X-Foo"]).is_some(), "{out}");
        for change in ["+ added", "− removed", "~ changed"] {
            assert!(!out.contains(change), "{change} without a proxy:\n{out}");
        }
        server.shutdown().await.unwrap();
    })
    .await;
}

/// `--forward --target`: absolute-form requests through `lab forward`; the
/// server sees the origin-form path, the forward proxy's X-Forwarded-For
/// and Via, and the target's Host.
#[tokio::test(flavor = "multi_thread")]
async fn forward_requests_go_through_lab_forward_to_the_target() {
    bounded(async {
        let server = real_server().await;
        let forward = forward_proxy(ForwardConfig::default()).await;
        let target = url(server.addr());
        let args = [
            "--forward",
            &url(forward.addr()),
            "--target",
            &target,
            "--path",
            "/abc?x=1",
            "-n",
            "2",
        ];
        let doc = trace_json(&args).await;
        assert_eq!(doc["mode"], "forward");
        assert_eq!(doc["sent"]["target"], format!("{target}/abc?x=1"));
        for record in requests(&doc) {
            assert_eq!(record["status"], 200);
            assert_eq!(record["server"], server.addr().to_string());
            let saw = &record["upstream_saw"];
            assert_eq!(saw["uri"], "/abc?x=1");
            assert_eq!(saw["x_forwarded_for"], "127.0.0.1");
            assert_eq!(saw["host"], server.addr().to_string());
            let via = saw["headers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h[0] == "via");
            assert!(via, "{saw}");
        }
        let out = trace_text(&args).await;
        assert!(out.contains("through the forward proxy"), "{out}");
        assert!(
            row(&out, &["+ added", "X-Forwarded-For"]).is_some(),
            "{out}"
        );
        forward.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
    })
    .await;
}

/// `--compare`: `lab naive` against `lab proxy`, the same requests. The
/// naive upstream gets no X-Forwarded-For, the proxy's does: marked as a
/// difference in every request, in the JSON and in the side-by-side table.
#[tokio::test(flavor = "multi_thread")]
async fn compare_marks_what_naive_and_proxy_forward_differently() {
    bounded(async {
        let server = real_server().await;
        let naive = naive_to(server.addr()).await;
        let proxy = proxy(&["--upstream", &format!("http://{}/base", server.addr())]).await;
        let args = [
            "--proxy",
            &url(naive.addr()),
            "--compare",
            &url(proxy.addr()),
            "-n",
            "3",
        ];
        let doc = trace_json(&args).await;
        let compare = &doc["compare"];
        assert_eq!(compare["proxy"], url(proxy.addr()));
        assert_eq!(compare["requests"].as_array().unwrap().len(), 3);
        let differences = compare["differences"].as_array().unwrap();
        let of = |field: &str| -> Vec<&Value> {
            differences.iter().filter(|d| d["field"] == field).collect()
        };
        let xff = of("x_forwarded_for");
        assert_eq!(xff.len(), 3, "{differences:#?}");
        for d in xff {
            assert!(d["left"].is_null(), "{d}");
            assert_eq!(d["right"], "127.0.0.1");
        }
        // naive keeps the path, the proxy joins /base; both connect from loopback.
        assert_eq!(of("uri").len(), 3);
        assert!(of("remote_ip").is_empty(), "{differences:#?}");
        assert!(of("status").is_empty(), "{differences:#?}");

        let out = trace_text(&args).await;
        let xff = row(&out, &["≠ differs", "X-Forwarded-For"]).expect("X-Forwarded-For differs");
        assert_eq!(xff[2..4], ["—", "127.0.0.1"], "{out}");
        assert!(row(&out, &["= same", "status"]).is_some(), "{out}");
        assert!(
            out.contains("≠ differs: X-Forwarded-For in 3 of 3 requests"),
            "{out}"
        );
        proxy.shutdown().await.unwrap();
        naive.shutdown().await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------------------
// Detail levels, errors, flags
// ---------------------------------------------------------------------------

/// Default: choice and status; `-v`: headers; `-vv`: bodies too.
#[tokio::test(flavor = "multi_thread")]
async fn verbose_levels_add_headers_then_bodies() {
    bounded(async {
        let server = real_server().await;
        let direct = url(server.addr());
        let base = [
            "--direct",
            direct.as_str(),
            "-n",
            "1",
            "--method",
            "POST",
            "--body",
            "hello",
        ];
        let plain = trace_text(&base).await;
        let mut v_args = base.to_vec();
        v_args.push("-v");
        let v = trace_text(&v_args).await;
        let mut vv_args = base.to_vec();
        vv_args.push("-vv");
        let vv = trace_text(&vv_args).await;

        assert!(!plain.contains("response headers:"), "{plain}");
        assert!(v.contains("response headers:"), "{v}");
        assert!(v.contains("x-lab-server: "), "{v}");
        assert!(v.contains("upstream received: POST / from"), "{v}");
        assert!(!v.contains("response body"), "{v}");
        assert!(vv.contains("request body sent (5 bytes):"), "{vv}");
        assert!(vv.contains("    hello"), "{vv}");
        assert!(vv.contains("response body ("), "{vv}");
        assert!(vv.contains("\"body_bytes\": 5"), "{vv}");
        server.shutdown().await.unwrap();
    })
    .await;
}

/// Nothing listening: exit non-zero with one line naming what to start.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_listening_gives_one_line_naming_the_command_to_start() {
    bounded(async {
        let nowhere = url(dead_port());
        let server = real_server().await;
        let direct = url(server.addr());
        let cases: [(Vec<&str>, &str); 4] = [
            (vec!["--proxy", &nowhere], "lab proxy --listen"),
            (
                vec!["--forward", &nowhere, "--target", "http://127.0.0.1:2003"],
                "lab forward --listen",
            ),
            (vec!["--direct", &nowhere], "lab realserver --addr"),
            (
                vec!["--direct", &direct, "--compare", &nowhere],
                "lab naive --listen",
            ),
        ];
        for (args, command) in cases {
            let run = trace(&args).await;
            assert!(!run.status.success(), "{args:?} succeeded");
            let lines: Vec<&str> = run.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{args:?}: not one line:\n{}", run.stderr);
            assert!(lines[0].contains("nothing listens at"), "{}", lines[0]);
            assert!(lines[0].contains(command), "{args:?}: {}", lines[0]);
            assert!(run.stdout.is_empty(), "{}", run.stdout);
        }
        server.shutdown().await.unwrap();
    })
    .await;
}

/// Usage errors say what to write; `--help` shows examples.
#[tokio::test(flavor = "multi_thread")]
async fn bad_flags_say_what_to_write_and_help_has_examples() {
    bounded(async {
        let run = trace(&["--proxy", "http://127.0.0.1:2002/base"]).await;
        assert!(!run.status.success());
        assert!(run.stderr.contains("--path /base"), "{}", run.stderr);
        let run = trace(&["--target", "http://127.0.0.1:2003"]).await;
        assert!(!run.status.success());
        assert!(run.stderr.contains("--forward"), "{}", run.stderr);
        let run = trace(&["--path", "abc"]).await;
        assert!(!run.status.success());
        assert!(run.stderr.contains("starts with /"), "{}", run.stderr);
        let run = trace(&["-H", "no colon"]).await;
        assert!(!run.status.success());
        assert!(run.stderr.contains("'Name: value'"), "{}", run.stderr);

        let help = trace(&["--help"]).await;
        assert!(help.status.success());
        for needle in ["Examples:", "--compare", "--forward", "--direct", "--json"] {
            assert!(
                help.stdout.contains(needle),
                "{needle} missing:\n{}",
                help.stdout
            );
        }
    })
    .await;
}

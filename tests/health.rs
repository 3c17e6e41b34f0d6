//! Health checks and the observer, with real processes: `lab realserver`s,
//! a `lab proxy --health-check`, and `lab trace` running while a real
//! server is stopped and started again.
//!
//! The bound the issue sets: a stopped server leaves the set within
//! interval × N + 1 s (N = `--unhealthy-after`), and no request fails after
//! that.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::STEP;
use crate::common::process::{LabProcess, lab_command, proxy_process, realserver_process, run_lab};
use lab::discovery::Status;
use lab::probe::Probe;
use lab::trace::model::Trace;

const INTERVAL: Duration = Duration::from_millis(200);
const UNHEALTHY_AFTER: u32 = 2;
const HEALTHY_AFTER: u32 = 2;

/// `lab proxy` over `upstreams`, round robin, health-checked every
/// `interval`, out after `unhealthy_after` failures.
async fn checked_proxy(
    upstreams: &[SocketAddr],
    interval: Duration,
    unhealthy_after: u32,
) -> (LabProcess, SocketAddr) {
    let interval = format!("{}ms", interval.as_millis());
    let unhealthy = unhealthy_after.to_string();
    let healthy = HEALTHY_AFTER.to_string();
    let specs: Vec<String> = upstreams
        .iter()
        .map(|a| format!("http://{a}/base"))
        .collect();
    let mut args = vec!["--lb", "round-robin"];
    for spec in &specs {
        args.extend(["--upstream", spec]);
    }
    args.extend([
        "--health-check",
        "/",
        "--health-interval",
        &interval,
        "--unhealthy-after",
        &unhealthy,
        "--healthy-after",
        &healthy,
    ]);
    proxy_process(&args).await
}

async fn status(proxy: SocketAddr) -> Status {
    let exchange = Probe::get("/_lab/upstreams")
        .send(proxy)
        .await
        .expect("the status page answers");
    assert_eq!(exchange.status, 200, "{}", exchange.text());
    serde_json::from_slice(&exchange.body).expect("the status page is JSON")
}

/// Polls the status page until `upstream`'s liveness is `live`; returns how
/// long that took.
async fn until_live(proxy: SocketAddr, upstream: &str, live: bool) -> Duration {
    let started = Instant::now();
    loop {
        let status = status(proxy).await;
        if status
            .upstreams
            .iter()
            .any(|u| u.url == upstream && u.live == live)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < STEP,
            "{upstream} never became live={live}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_leaves_under_a_running_trace_and_returns_after_a_restart() {
    let (mut a, a_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut b, b_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut proxy, proxy_addr) = checked_proxy(&[a_addr, b_addr], INTERVAL, UNHEALTHY_AFTER).await;
    let a_url = format!("http://{a_addr}/base");
    let b_url = format!("http://{b_addr}/base");

    // A trace of 40 requests, one every 100 ms, runs while B is stopped.
    let pace = Duration::from_millis(100);
    let proxy_url = format!("http://{proxy_addr}");
    let trace_started = Instant::now();
    let trace = lab_command(&[
        "trace",
        "--proxy",
        &proxy_url,
        "-n",
        "40",
        "--interval",
        "100ms",
        "--json",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn lab trace");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(b.terminate().await.success(), "{}", b.log());
    // Measured once B has exited: its listener is closed from here on.
    let stopped_at = trace_started.elapsed();

    let output = tokio::time::timeout(STEP, trace.wait_with_output())
        .await
        .expect("the trace ends")
        .expect("lab trace runs");
    assert!(output.status.success());
    let trace: Trace = serde_json::from_slice(&output.stdout).expect("trace JSON");

    // Every request started after the bound was answered by A. (The trace
    // process starts a little after `trace_started`, so request k starts
    // no sooner than (k-1) × pace after it: the estimate errs safe.)
    let bound = INTERVAL * UNHEALTHY_AFTER + Duration::from_secs(1);
    let settled = stopped_at + bound;
    let mut after_bound = 0;
    for record in &trace.requests {
        let starts = pace * (record.seq as u32 - 1);
        if starts < settled {
            continue;
        }
        after_bound += 1;
        assert_eq!(
            (record.status, record.upstream.as_deref()),
            (Some(200), Some(a_url.as_str())),
            "request {} started {starts:?} into the trace, B stopped at {stopped_at:?}: {record:#?}",
            record.seq
        );
    }
    assert!(after_bound >= 10, "the trace ran past the bound");
    // The trace says what happened: B left, and from which request on.
    let left = trace
        .set_changes
        .iter()
        .find(|e| e.upstream == b_url && e.change == "left")
        .unwrap_or_else(|| panic!("no 'left' event in {:#?}", trace.set_changes));
    assert!(left.reason.contains("in a row"), "{left:?}");
    assert!(
        trace
            .requests
            .iter()
            .any(|r| r.set == Some(left.generation))
    );

    // Restarted on the same port, B comes back after HEALTHY_AFTER good checks.
    let (mut b, _) = realserver_process(&b_addr.to_string(), &[]).await;
    let back_after = until_live(proxy_addr, &b_url, true).await;
    assert!(
        back_after < INTERVAL * (HEALTHY_AFTER + 1) + Duration::from_secs(1),
        "B took {back_after:?} to return"
    );
    // …and round robin gives it its share again.
    let (status, text) = run_lab(&["trace", "--proxy", &proxy_url, "-n", "4"]).await;
    assert!(status.success(), "{text}");
    let status = self::status(proxy_addr).await;
    let events: Vec<(&str, &str)> = status
        .events
        .iter()
        .map(|e| (e.upstream.as_str(), e.change.as_str()))
        .collect();
    assert_eq!(
        events,
        [(b_url.as_str(), "left"), (b_url.as_str(), "joined")]
    );

    // Every change was logged by the proxy too.
    for process in [&mut a, &mut b] {
        assert!(process.terminate().await.success());
    }
    assert!(proxy.terminate().await.success());
    let log = proxy.log();
    assert!(log.contains(&format!("upstream {b_url} left")), "{log}");
    assert!(log.contains(&format!("upstream {b_url} joined")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_upstream_down_the_proxy_answers_503_at_once() {
    let (mut a, a_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut proxy, proxy_addr) = checked_proxy(&[a_addr], INTERVAL, UNHEALTHY_AFTER).await;
    let a_url = format!("http://{a_addr}/base");
    assert!(a.terminate().await.success());
    until_live(proxy_addr, &a_url, false).await;

    let started = Instant::now();
    let exchange = Probe::get("/abc")
        .send(proxy_addr)
        .await
        .expect("an answer");
    assert!(started.elapsed() < Duration::from_secs(1), "no hang");
    assert_eq!(exchange.status, 503);
    let body = exchange.text();
    assert!(body.contains("no healthy upstream"), "{body}");
    assert!(body.contains(&a_url), "names the upstream: {body}");
    assert!(body.contains("lab realserver"), "says what to do: {body}");

    let status = status(proxy_addr).await;
    assert_eq!(status.upstreams.len(), 1);
    let a_status = &status.upstreams[0];
    assert!(!a_status.live);
    assert_eq!(a_status.health, Some(lab::discovery::State::Unhealthy));
    assert!(a_status.failures >= UNHEALTHY_AFTER);
    assert!(a_status.last_error.is_some());
    assert!(proxy.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_requests_count_as_failed_checks() {
    // Probes every minute: only the proxied requests can notice B is gone.
    let (mut a, a_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut b, b_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut proxy, proxy_addr) =
        checked_proxy(&[a_addr, b_addr], Duration::from_secs(60), 2).await;
    let b_url = format!("http://{b_addr}/base");
    // The first probe round runs at start: let it count B healthy first.
    let started = Instant::now();
    while !status(proxy_addr)
        .await
        .upstreams
        .iter()
        .all(|u| u.successes > 0)
    {
        assert!(started.elapsed() < STEP, "the first probes never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(b.terminate().await.success());

    // Round robin sends every other request to B: two 502s, then only A.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let exchange = Probe::get("/abc").send(proxy_addr).await.expect("answer");
        statuses.push(exchange.status);
    }
    let failures = statuses.iter().filter(|&&s| s == 502).count();
    assert_eq!(failures, 2, "{statuses:?}");
    assert!(statuses[4..].iter().all(|&s| s == 200), "{statuses:?}");
    let status = status(proxy_addr).await;
    let b_status = status.upstreams.iter().find(|u| u.url == b_url).unwrap();
    assert!(!b_status.live, "{status:#?}");
    let left = status.events.iter().find(|e| e.change == "left").unwrap();
    assert!(left.reason.contains("requests"), "{left:?}");

    assert!(a.terminate().await.success());
    assert!(proxy.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_is_the_proxys_own_and_flags_are_checked() {
    let (mut a, a_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut proxy, proxy_addr) = checked_proxy(&[a_addr], INTERVAL, UNHEALTHY_AFTER).await;
    let status = status(proxy_addr).await;
    assert_eq!(status.source, "static");
    assert_eq!(status.algorithm, "round-robin");
    let settings = status.health_check.expect("health checks are on");
    assert_eq!(settings.path, "/");
    assert_eq!(settings.interval_ms, INTERVAL.as_millis() as u64);
    assert_eq!(status.upstreams[0].url, format!("http://{a_addr}/base"));

    // Other /_lab/ paths are the proxy's too: a 404 of its own, never forwarded.
    let exchange = Probe::get("/_lab/nothing").send(proxy_addr).await.unwrap();
    assert_eq!(exchange.status, 404);
    assert!(exchange.headers.get("x-lab-server").is_none());
    assert!(proxy.terminate().await.success());
    assert!(a.terminate().await.success());

    // Bad values are refused with a hint, before anything starts.
    for (flags, hint) in [
        (vec!["--health-check", "healthz"], "start with '/'"),
        (
            vec!["--health-check", "/", "--health-interval", "1ms"],
            "at least 10ms",
        ),
        (
            vec!["--health-check", "/", "--unhealthy-after", "0"],
            "unhealthy-after",
        ),
        (vec!["--health-interval", "1s"], "--health-check"),
    ] {
        let mut args = vec!["proxy", "--listen", "127.0.0.1:0"];
        args.extend(flags);
        let (status, stderr) = run_lab(&args).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_does_not_delay_noticing_another_one_stop() {
    // C accepts connections and never answers: each of its probes takes
    // the whole (long) timeout. B's probes must not wait for C's.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c_addr = hung.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            held.push(stream);
        }
    });
    let (mut a, a_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut b, b_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let specs: Vec<String> = [a_addr, b_addr, c_addr]
        .iter()
        .map(|addr| format!("http://{addr}/base"))
        .collect();
    let mut args: Vec<&str> = Vec::new();
    for spec in &specs {
        args.extend(["--upstream", spec.as_str()]);
    }
    args.extend([
        "--health-check",
        "/",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "5s",
        "--unhealthy-after",
        "2",
    ]);
    let (mut proxy, proxy_addr) = proxy_process(&args).await;
    // Let the first probes go out (C's now hangs for 5 s).
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(b.terminate().await.success());
    let took = until_live(proxy_addr, &specs[1], false).await;
    assert!(
        took < INTERVAL * 2 + Duration::from_secs(1),
        "B left after {took:?}, held up by C's probe"
    );
    holder.abort();
    assert!(proxy.terminate().await.success());
    assert!(a.terminate().await.success());
}

//! `lab proxy --discovery zk://…` against a real ZooKeeper (`lab zk up` on a
//! free loopback port) and real `lab realserver --register` processes: what
//! registers reaches the proxy within 2 s, what deregisters or dies leaves
//! it, and while ZooKeeper is away the proxy keeps its last set.
//!
//! Without Debian's `zookeeper` package the tests print why and pass,
//! unless `LAB_REQUIRE_ZOOKEEPER=1` (CI).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::STEP;
use crate::common::process::{LabProcess, proxy_process, run_lab};
use crate::common::servers::dead_port;
use crate::common::zookeeper::{READY, Zk, registered_realserver};
use lab::discovery::Status;
use lab::probe::Probe;
use lab::zk::ZkUrl;

/// How soon a registration or deregistration must reach the proxy.
const PROMPTLY: Duration = Duration::from_secs(2);

async fn discovering_proxy(url: &ZkUrl, extra: &[&str]) -> (LabProcess, SocketAddr) {
    let url = url.to_string();
    let mut args = vec!["--discovery", url.as_str()];
    args.extend(extra);
    proxy_process(&args).await
}

async fn status(proxy: SocketAddr) -> Status {
    let exchange = Probe::get("/_lab/upstreams").send(proxy).await.unwrap();
    serde_json::from_slice(&exchange.body).expect("status JSON")
}

fn urls(status: &Status) -> Vec<String> {
    let mut urls: Vec<String> = status
        .upstreams
        .iter()
        .filter(|u| u.live)
        .map(|u| u.url.clone())
        .collect();
    urls.sort();
    urls
}

/// Polls until the proxy's live set is `want` (URLs, any order); how long it took.
async fn until_set(proxy: SocketAddr, want: &[&SocketAddr], within: Duration) -> Duration {
    let mut want: Vec<String> = want.iter().map(|a| format!("http://{a}/base")).collect();
    want.sort();
    let started = Instant::now();
    loop {
        let status = status(proxy).await;
        if urls(&status) == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the proxy's set is not {want:?} within {within:?}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` requests; the real servers that answered them, in order.
async fn servers(proxy: SocketAddr, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let exchange = Probe::get("/abc").send(proxy).await.unwrap();
        assert_eq!(exchange.status, 200, "{}", exchange.text());
        let server = exchange.headers.get("x-lab-server").unwrap();
        seen.push(server.to_str().unwrap().to_string());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_reach_the_proxy_and_leave_it() {
    let Some(zk) = Zk::start().await else { return };
    let url = zk.url("/discovery/realserver");
    // The proxy starts first: nothing registered yet is a 503 that says what to do.
    let (mut proxy, p) = discovering_proxy(&url, &["--lb", "round-robin"]).await;
    let empty = Probe::get("/abc").send(p).await.unwrap();
    assert_eq!(empty.status, 503);
    assert!(
        empty
            .text()
            .contains(&format!("lab realserver --register {url}")),
        "{}",
        empty.text()
    );
    assert_eq!(status(p).await.source, format!("zookeeper {url}"));

    // A registers: the proxy uses it within 2 s.
    let registered_at = Instant::now();
    let (mut a, a_addr) = registered_realserver(&url, &[]).await;
    until_set(p, &[&a_addr], PROMPTLY + registered_at.elapsed()).await;
    assert_eq!(
        servers(p, 2).await,
        [a_addr.to_string(), a_addr.to_string()]
    );

    // B too, without a restart: round robin alternates.
    let (mut b, b_addr) = registered_realserver(&url, &[]).await;
    until_set(p, &[&a_addr, &b_addr], PROMPTLY).await;
    let mut seen = servers(p, 4).await;
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2, "{seen:?}");

    // B stops cleanly: its node is deleted before it drains; gone within 2 s.
    assert!(b.terminate().await.success(), "{}", b.log());
    until_set(p, &[&a_addr], PROMPTLY).await;
    assert_eq!(servers(p, 3).await, vec![a_addr.to_string(); 3]);

    // A is killed: no goodbye, its ephemeral node goes when its session
    // expires (3 s), and the proxy follows.
    let killed_at = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let _ = a.exit().await;
    until_set(p, &[], STEP).await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");

    let status = status(p).await;
    let changes: Vec<(&str, &str)> = status
        .events
        .iter()
        .map(|e| (e.upstream.as_str(), e.change.as_str()))
        .collect();
    let (a_url, b_url) = (
        format!("http://{a_addr}/base"),
        format!("http://{b_addr}/base"),
    );
    assert_eq!(
        changes,
        [
            (a_url.as_str(), "registered"),
            (b_url.as_str(), "registered"),
            (b_url.as_str(), "deregistered"),
            (a_url.as_str(), "deregistered"),
        ]
    );
    assert!(proxy.terminate().await.success());
    let log = proxy.log();
    assert!(
        log.contains(&format!("upstream {b_url} deregistered")),
        "{log}"
    );
    assert!(zk.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_zookeeper_the_proxy_keeps_its_last_set_and_resyncs() {
    let Some(zk) = Zk::start().await else { return };
    let zk_addr = zk.addr;
    let url = zk.url("/outage/realserver");
    let (mut a, a_addr) = registered_realserver(&url, &[]).await;
    let (mut proxy, p) = discovering_proxy(&url, &[]).await;
    until_set(p, &[&a_addr], PROMPTLY).await;

    // From here to the end, a request every 50 ms: none may fail, not
    // while ZooKeeper is away nor while both sides open new sessions and A
    // registers again (the proxy keeps removals back meanwhile).
    let (stop_loop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let requests = tokio::spawn(async move {
        let mut answers = Vec::new();
        while stopped.try_recv().is_err() {
            let exchange = Probe::get("/abc").send(p).await.unwrap();
            answers.push(exchange.status.as_u16());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answers
    });

    // ZooKeeper stops: requests keep going to the last known set, past the
    // sessions' timeout.
    assert!(zk.stop().await.success());
    tokio::time::sleep(lab::zk::SESSION_TIMEOUT + Duration::from_millis(500)).await;
    assert_eq!(servers(p, 3).await, vec![a_addr.to_string(); 3]);

    // Once ZooKeeper is back, a fresh one on the same port, both sides
    // reconnect with new sessions: A registers again, the proxy re-reads,
    // and a server started now shows up too.
    let mut zk = LabProcess::spawn(&["zk", "up", "--listen", &zk_addr.to_string()]);
    zk.addr_after(READY).await;
    let (mut b, b_addr) = registered_realserver(&url, &[]).await;
    until_set(p, &[&a_addr, &b_addr], STEP).await;
    let mut answered = servers(p, 4).await;
    answered.sort();
    answered.dedup();
    let mut both = vec![a_addr.to_string(), b_addr.to_string()];
    both.sort();
    assert_eq!(answered, both);

    let _ = stop_loop.send(());
    let answers = requests.await.unwrap();
    assert!(answers.len() > 20, "{answers:?}");
    assert!(answers.iter().all(|&s| s == 200), "{answers:?}");

    for process in [&mut a, &mut b, &mut proxy, &mut zk] {
        assert!(process.terminate().await.success(), "{}", process.log());
    }
}

#[tokio::test]
async fn discovery_needs_a_reachable_zookeeper_and_excludes_upstream() {
    if !crate::common::zookeeper::available() {
        return;
    }
    // Nothing listens on this port (bound, then released).
    let port = dead_port().port();
    let url = format!("zk://127.0.0.1:{port}/lab/realserver");
    let (status, stderr) =
        run_lab(&["proxy", "--listen", "127.0.0.1:0", "--discovery", &url]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lab zk up"), "{stderr}");

    let (status, stderr) = run_lab(&[
        "proxy",
        "--discovery",
        &url,
        "--upstream",
        "http://127.0.0.1:2003/base",
    ])
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

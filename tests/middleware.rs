//! The middleware layers of `lab proxy` against real servers on loopback:
//! 限流 rate limiting, 熔断 circuit breaking, 降级 degradation, 权限 auth and
//! 数据统计 statistics (`/_lab/stats`, `/_lab/metrics`, `lab stats`).
//!
//! Proxies run in this process (`RunningProxy::start`, the flags parsed by
//! clap exactly as `lab proxy` parses them); real servers too.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::client::{get, send_from};
use crate::common::process::{lab_command, run_lab};
use crate::common::servers::{base, dead_port, proxy, real_server};
use lab::lab_headers::UPSTREAM_HEADER;
use lab::middleware::stats::StatsSnapshot;
use lab::probe::{Exchange, Probe};
use lab::realserver::{Config, RunningServer};
use tokio::net::TcpListener;

fn header<'e>(exchange: &'e Exchange, name: &str) -> Option<&'e str> {
    exchange.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A GET from a chosen loopback source address (127.0.0.2, …): another client.
async fn get_from(source: [u8; 4], proxy: SocketAddr) -> Exchange {
    send_from(SocketAddr::from((source, 0)), proxy, Probe::get("/abc"))
        .await
        .unwrap_or_else(|| panic!("a connection from {source:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_within_ten_percent_over_two_seconds() {
    let server = real_server().await;
    let upstream = base(server.addr());
    let proxy = proxy(&[
        "--upstream",
        &upstream,
        "--rate-limit",
        "20/s",
        "--rate-limit-by",
        "global",
        "--rate-burst",
        "2",
    ])
    .await;
    let p = proxy.addr();

    // Four clients as fast as they can for 2 s. (A burst of 2 lets one
    // late request keep its turn on a busy machine: at most 2 + 40.)
    let deadline = Instant::now() + Duration::from_secs(2);
    let clients = (0..4).map(|_| {
        tokio::spawn(async move {
            let (mut passed, mut limited) = (0u32, 0u32);
            while Instant::now() < deadline {
                let answer = get(p, "/abc").await;
                match answer.status.as_u16() {
                    200 => passed += 1,
                    429 => {
                        limited += 1;
                        assert_eq!(header(&answer, "x-lab-layer"), Some("rate-limit"));
                        let retry: u64 = header(&answer, "retry-after").unwrap().parse().unwrap();
                        assert!(retry >= 1);
                        assert!(answer.text().contains("20/s"), "{}", answer.text());
                    }
                    other => panic!("unexpected {other}: {}", answer.text()),
                }
            }
            (passed, limited)
        })
    });
    let (mut passed, mut limited) = (0, 0);
    for client in clients {
        let (p, l) = client.await.unwrap();
        passed += p;
        limited += l;
    }
    // 20/s for 2 s is 40, ±10%.
    assert!(
        (36..=44).contains(&passed),
        "{passed} passed, {limited} limited"
    );
    assert!(limited > 40, "the clients did try harder: {limited}");
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn per_ip_limits_are_separate() {
    let server = real_server().await;
    let proxy = proxy(&["--upstream", &base(server.addr()), "--rate-limit", "1/min"]).await;
    let p = proxy.addr();
    assert_eq!(get_from([127, 0, 0, 1], p).await.status, 200);
    assert_eq!(get_from([127, 0, 0, 1], p).await.status, 429);
    // Another client IP has its own allowance.
    assert_eq!(get_from([127, 0, 0, 2], p).await.status, 200);
    assert_eq!(get_from([127, 0, 0, 2], p).await.status, 429);
    let limited = get_from([127, 0, 0, 1], p).await;
    assert!(
        header(&limited, "retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 50
    );
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opens_passes_requests_to_the_others_and_recovers() {
    let a = real_server().await;
    let b_addr = dead_port();
    let proxy = proxy(&[
        "--lb",
        "round-robin",
        "--upstream",
        &base(a.addr()),
        "--upstream",
        &base(b_addr),
        "--breaker-failures",
        "3",
        "--breaker-cooldown",
        "1s",
    ])
    .await;
    let p = proxy.addr();

    // Round robin sends every other request to B: its first 3 fail (502),
    // then its breaker is open and its turns go to A.
    let mut statuses = Vec::new();
    let mut passed_over = 0;
    for _ in 0..12 {
        let answer = get(p, "/abc").await;
        statuses.push(answer.status.as_u16());
        if header(&answer, "x-lab-breaker").is_some() {
            passed_over += 1;
            assert_eq!(
                header(&answer, UPSTREAM_HEADER.as_str()),
                Some(base(a.addr()).as_str())
            );
        }
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 502).count(),
        3,
        "{statuses:?}"
    );
    assert!(statuses[6..].iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(passed_over, 3, "B's turns after it opened: {statuses:?}");

    // B comes up; after the cool-down one trial request reaches it and
    // closes the breaker: B has its turns again.
    let b =
        RunningServer::start(TcpListener::bind(b_addr).await.unwrap(), Config::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut served_by_b = 0;
    for _ in 0..6 {
        let answer = get(p, "/abc").await;
        assert_eq!(answer.status, 200);
        if header(&answer, UPSTREAM_HEADER.as_str()) == Some(base(b_addr).as_str()) {
            served_by_b += 1;
        }
    }
    assert!(served_by_b >= 2, "B is back in turn: {served_by_b} of 6");
    proxy.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_every_breaker_open_requests_fail_fast() {
    let dead = dead_port();
    let proxy = proxy(&[
        "--upstream",
        &base(dead),
        "--breaker-failures",
        "2",
        "--breaker-cooldown",
        "30s",
    ])
    .await;
    let p = proxy.addr();
    assert_eq!(get(p, "/abc").await.status, 502);
    assert_eq!(get(p, "/abc").await.status, 502);
    let started = Instant::now();
    let refused = get(p, "/abc").await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(refused.status, 503);
    assert_eq!(header(&refused, "x-lab-layer"), Some("breaker"));
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((25..=30).contains(&retry), "{retry}");
    assert!(
        refused.text().contains("circuit breaker"),
        "{}",
        refused.text()
    );
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_fallback_answers_when_both_upstreams_are_down() {
    let (one, two) = (dead_port(), dead_port());
    let proxy = proxy(&[
        "--upstream",
        &base(one),
        "--upstream",
        &base(two),
        "--fallback-status",
        "200",
        "--fallback-body",
        "degraded: try again later",
    ])
    .await;
    let p = proxy.addr();
    for _ in 0..4 {
        let answer = get(p, "/abc").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "degraded: try again later");
        assert_eq!(header(&answer, "x-lab-layer"), Some("fallback"));
        assert_eq!(header(&answer, "x-lab-degraded-from"), Some("502"));
    }
    proxy.shutdown().await.unwrap();

    // An upstream's own 500 is its answer, not the proxy's error: no fallback.
    let server = real_server().await;
    let proxy = self::proxy(&["--upstream", &base(server.addr()), "--fallback-body", "x"]).await;
    let answer = get(proxy.addr(), "/error").await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.text(), "error handler");
    assert!(header(&answer, "x-lab-layer").is_none());
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn auth_rejects_without_the_token_and_never_forwards_it() {
    let server = real_server().await;
    let proxy = proxy(&["--upstream", &base(server.addr()), "--auth-token", "s3cret"]).await;
    let p = proxy.addr();

    let missing = get(p, "/abc").await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        header(&missing, "www-authenticate"),
        Some("Bearer realm=\"lab\"")
    );
    assert_eq!(header(&missing, "x-lab-layer"), Some("auth"));
    assert!(
        header(&missing, UPSTREAM_HEADER.as_str()).is_none(),
        "no upstream was asked"
    );

    let wrong = Probe::get("/abc")
        .header("Authorization", "Bearer s3cre")
        .send(p)
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    assert!(
        header(&wrong, "www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    let right = Probe::get("/abc")
        .header("Authorization", "Bearer s3cret")
        .header("Accept", "application/json")
        .send(p)
        .await
        .unwrap();
    assert_eq!(right.status, 200);
    let echo = right.json_echo().unwrap();
    assert!(
        echo.headers
            .iter()
            .all(|(name, value)| name != "authorization" && !value.contains("s3cret")),
        "the upstream saw the token: {:?}",
        echo.headers
    );
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

async fn snapshot(proxy: SocketAddr) -> StatsSnapshot {
    let page = get(proxy, "/_lab/stats").await;
    assert_eq!(page.status, 200, "{}", page.text());
    serde_json::from_slice(&page.body).expect("the stats JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statistics_count_exactly_what_was_sent() {
    let (a, b) = (real_server().await, real_server().await);
    let (a_url, b_url) = (base(a.addr()), base(b.addr()));
    let proxy = proxy(&[
        "--lb",
        "round-robin",
        "--upstream",
        &a_url,
        "--upstream",
        &b_url,
        "--auth-token",
        "t",
    ])
    .await;
    let p = proxy.addr();

    // 20 POSTs of 100 bytes, 6 to /error (500), 3 without the token (401).
    for _ in 0..20 {
        let answer = Probe::get("/abc")
            .method(http::Method::POST)
            .header("Authorization", "Bearer t")
            .body(vec![b'x'; 100])
            .send(p)
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }
    for _ in 0..6 {
        let answer = Probe::get("/error")
            .header("Authorization", "Bearer t")
            .send(p)
            .await
            .unwrap();
        assert_eq!(answer.status, 500);
    }
    for _ in 0..3 {
        assert_eq!(get(p, "/abc").await.status, 401);
    }

    // Each exchange is counted when its body has gone: poll briefly.
    let deadline = Instant::now() + Duration::from_secs(2);
    let stats = loop {
        let stats = snapshot(p).await;
        if stats.overall.requests == 29 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let overall = &stats.overall;
    assert_eq!(overall.requests, 29, "{stats:#?}");
    assert_eq!(overall.status.success, 20);
    assert_eq!(overall.status.server_error, 6);
    assert_eq!(overall.status.client_error, 3);
    assert_eq!(overall.bytes_in, 2000);
    assert_eq!(overall.latency_ms.count, 29);
    assert_eq!(overall.layers.get("auth"), Some(&3));
    assert_eq!(overall.layers.get("upstream"), Some(&26));
    assert_eq!(stats.upstreams[&a_url].requests, 13);
    assert_eq!(stats.upstreams[&b_url].requests, 13);
    assert_eq!(stats.proxy.requests, 3, "the 401s are the proxy's own");
    assert!(stats.connections.total >= 29);

    // The same numbers in Prometheus' text format, read by a real parser.
    let metrics = get(p, "/_lab/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        header(&metrics, "content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let scrape =
        prometheus_parse::Scrape::parse(metrics.text().lines().map(|line| Ok(line.to_string())))
            .expect("the metrics parse");
    let total: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "lab_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total, 29.0);
    let a_5xx = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "lab_requests_total")
        .filter(|s| s.labels.get("class") == Some("5xx"))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum::<f64>();
    assert_eq!(a_5xx, 6.0);

    // `lab stats` prints the table from the running proxy.
    let (status, out) = {
        let output = lab_command(&["stats", "--proxy", &format!("http://{p}")])
            .stdout(std::process::Stdio::piped())
            .output()
            .await
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    assert!(status.success(), "{out}");
    assert!(out.contains(&a_url) && out.contains(&b_url), "{out}");
    proxy.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_trace_shows_which_layer_answered() {
    let server = real_server().await;
    let proxy = proxy(&[
        "--upstream",
        &base(server.addr()),
        "--rate-limit",
        "1/min",
        "--rate-limit-by",
        "global",
    ])
    .await;
    let output = lab_command(&[
        "trace",
        "--proxy",
        &format!("http://{}", proxy.addr()),
        "-n",
        "3",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .output()
    .await
    .unwrap();
    let trace: lab::trace::model::Trace = serde_json::from_slice(&output.stdout).unwrap();
    let seen: Vec<(Option<u16>, Option<&str>)> = trace
        .requests
        .iter()
        .map(|r| (r.status, r.layer.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some(200), None),
            (Some(429), Some("rate-limit")),
            (Some(429), Some("rate-limit"))
        ]
    );
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_upstream_cannot_pose_as_the_proxy() {
    // An upstream (or a proxy behind this one) that answers 502 with the
    // proxy's own layer header: the header is dropped, the 502 is the
    // upstream's, and no fallback replaces it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nX-Lab-Layer: proxy\r\nX-Lab-Pick: {}\r\n\
                      Content-Length: 4\r\n\r\nmine",
                )
                .await;
        }
    });
    let proxy = proxy(&["--upstream", &base(addr), "--fallback-body", "fallback"]).await;
    let answer = get(proxy.addr(), "/abc").await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.text(), "mine");
    assert!(header(&answer, "x-lab-layer").is_none());
    assert!(header(&answer, "x-lab-pick").is_none());
    proxy.shutdown().await.unwrap();
    upstream.abort();
}

#[tokio::test]
async fn without_auth_the_authorization_header_is_the_upstreams() {
    let server = real_server().await;
    let proxy = proxy(&["--upstream", &base(server.addr())]).await;
    let echo = Probe::get("/abc")
        .header("Authorization", "Bearer for-the-upstream")
        .header("Accept", "application/json")
        .send(proxy.addr())
        .await
        .unwrap()
        .json_echo()
        .unwrap();
    assert!(
        echo.headers
            .iter()
            .any(|(name, value)| name == "authorization" && value == "Bearer for-the-upstream"),
        "{:?}",
        echo.headers
    );
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_the_client_gave_up_on_is_counted_too() {
    let server = real_server().await;
    let proxy = proxy(&["--upstream", &base(server.addr())]).await;
    let p = proxy.addr();
    // The client leaves after 200 ms; the upstream would answer after 2 s.
    let gave_up = tokio::time::timeout(Duration::from_millis(200), get(p, "/delay?ms=2000")).await;
    assert!(gave_up.is_err());
    assert_eq!(get(p, "/abc").await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stats = snapshot(p).await;
        if stats.overall.requests == 2 {
            assert_eq!(stats.overall.status.client_error, 1, "{stats:#?}");
            assert_eq!(stats.overall.in_flight, 0);
            break;
        }
        assert!(Instant::now() < deadline, "{stats:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn middleware_flags_are_checked() {
    for (flags, hint) in [
        (vec!["--auth-token", ""], "not a bearer token"),
        (vec!["--auth-token", "has space"], "not a bearer token"),
        (vec!["--rate-limit", "ten/s"], "COUNT/UNIT"),
        (vec!["--breaker-cooldown", "1s"], "--breaker-failures"),
        (vec!["--fallback-status", "99"], "99"),
    ] {
        let mut args = vec!["proxy", "--listen", "127.0.0.1:0"];
        args.extend(flags);
        let (status, stderr) = run_lab(&args).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_websocket_counts_as_an_open_connection_until_it_closes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = real_server().await;
    let proxy = proxy(&["--upstream", &base(server.addr())]).await;
    let p = proxy.addr();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{p}/ws"))
        .await
        .expect("a WebSocket through the proxy");
    ws.send(Message::text("hello")).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello");
    // The tunnel, and the connection asking.
    assert_eq!(snapshot(p).await.connections.open, 2);
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(2);
    while snapshot(p).await.connections.open != 1 {
        assert!(Instant::now() < deadline, "the tunnel never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_breakers_page_shows_each_upstreams_state() {
    let dead = dead_port();
    let proxy = proxy(&["--upstream", &base(dead), "--breaker-failures", "1"]).await;
    let p = proxy.addr();
    assert_eq!(get(p, "/abc").await.status, 502);
    let page = get(p, "/_lab/breakers").await;
    assert_eq!(page.status, 200);
    let breakers: Vec<lab::middleware::breaker::BreakerStatus> =
        serde_json::from_slice(&page.body).unwrap();
    assert_eq!(breakers.len(), 1, "{breakers:?}");
    assert_eq!(breakers[0].upstream, base(dead));
    assert_eq!(
        breakers[0].state,
        lab::middleware::breaker::BreakerState::Open
    );
    proxy.shutdown().await.unwrap();
}

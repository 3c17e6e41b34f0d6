//! Blame the right side: what a misbehaving *client* does is never held
//! against a healthy upstream. The real binary on real sockets: clients
//! that stop sending their bodies get 408, no breaker opens, the next
//! ordinary request is served, and `/_lab/stats` counts the failures in
//! the `client` layer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::process::{proxy_process, realserver_process};
use lab::probe::Probe;

/// A client that declares 255 body bytes, sends 11 and then nothing,
/// holding its socket open; returns the status line it got, and when.
async fn stalling_client(proxy: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream
        .write_all(
            b"POST /abc HTTP/1.1\r\nHost: lab\r\nContent-Type: text/plain\r\n\
              Content-Length: 255\r\n\r\nhello world",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("an answer within 20 s");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .lines()
        .next()
        .unwrap_or("(closed, no answer)")
        .to_string();
    (status, started.elapsed())
}

async fn stats_of(proxy: SocketAddr) -> serde_json::Value {
    let page = Probe::get("/_lab/stats").send(proxy).await.unwrap();
    serde_json::from_slice(&page.body).unwrap()
}

#[tokio::test]
async fn stalled_bodies_get_408_and_open_no_healthy_upstreams_breaker() {
    // Two real servers (3 s write timeout: they give up on a body first).
    let (_a, a) = realserver_process("127.0.0.1:0", &[]).await;
    let (_b, b) = realserver_process("127.0.0.1:0", &[]).await;
    let (_proxy, proxy) = proxy_process(&[
        "--lb",
        "round-robin",
        "--upstream",
        &format!("http://{a}"),
        "--upstream",
        &format!("http://{b}"),
        "--breaker-failures",
        "3",
    ])
    .await;

    let clients: Vec<_> = (0..6)
        .map(|_| tokio::spawn(stalling_client(proxy)))
        .collect();
    for client in clients {
        let (status, after) = client.await.unwrap();
        assert_eq!(status, "HTTP/1.1 408 Request Timeout", "after {after:?}");
    }
    // Both upstreams still serve: no breaker opened.
    for _ in 0..4 {
        let ok = Probe::get("/abc").send(proxy).await.unwrap();
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert!(
            ok.headers.get("x-lab-breaker").is_none(),
            "{:?}",
            ok.headers
        );
    }
    let stats = stats_of(proxy).await;
    let layers = &stats["overall"]["layers"];
    assert_eq!(layers["client"], 6, "{stats:#}");
    assert!(layers.get("breaker").is_none(), "{stats:#}");
    assert!(layers.get("proxy").is_none(), "{stats:#}");
}

/// A raw upstream on a free port: every connection it accepts goes to
/// `serve`, on a task of its own.
async fn raw_upstream<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// An upstream that reads whatever it is sent and never answers.
async fn patient_upstream() -> SocketAddr {
    raw_upstream(|mut stream| async move {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
}

#[tokio::test]
async fn behind_a_patient_upstream_the_body_timeout_answers_408_not_504() {
    let upstream = patient_upstream().await;
    let (_proxy, proxy) = proxy_process(&[
        "--upstream",
        &format!("http://{upstream}"),
        "--body-timeout",
        "1s",
        "--breaker-failures",
        "1",
        "--response-timeout",
        "2s",
    ])
    .await;
    let (status, after) = stalling_client(proxy).await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    // At --body-timeout, not at --response-timeout (30 s).
    assert!(after < Duration::from_secs(5), "{after:?}");
    let stats = stats_of(proxy).await;
    assert_eq!(stats["overall"]["layers"]["client"], 1, "{stats:#}");
    // One failure opens this breaker (--breaker-failures 1): had the
    // stall counted, the next request would get the breaker's 503. It
    // reaches the upstream, which never answers: the proxy's own 504.
    let next = Probe::get("/abc").send(proxy).await.unwrap();
    assert_eq!(next.status, 504, "{}", next.text());
    assert_eq!(
        next.headers.get("x-lab-layer").map(|v| v.to_str().unwrap()),
        Some("proxy")
    );
}

/// An upstream that answers every request with a 40 000-byte header.
async fn big_headed_upstream() -> SocketAddr {
    raw_upstream(|mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let answer = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(40_000)
        );
        let _ = stream.write_all(answer.as_bytes()).await;
    })
    .await
}

#[tokio::test]
async fn heads_past_max_header_size_are_refused_both_ways_and_say_which_limit() {
    let (_server, server) = realserver_process("127.0.0.1:0", &[]).await;
    let (_proxy, proxy) = proxy_process(&["--upstream", &format!("http://{server}")]).await;
    // A request head past the default 32 KiB: 431, naming the limit.
    let refused = Probe::get("/abc")
        .header("X-Big", &"a".repeat(64 * 1024))
        .send(proxy)
        .await
        .unwrap();
    assert_eq!(refused.status, 431);
    assert!(
        refused.text().contains("32768 bytes (--max-header-size)"),
        "{}",
        refused.text()
    );
    // Under the limit it goes through.
    let passed = Probe::get("/abc")
        .header("X-Big", &"a".repeat(20_000))
        .send(proxy)
        .await
        .unwrap();
    assert_eq!(passed.status, 200, "{}", passed.text());

    // A response head past it: 502, saying why, from lab proxy and lab forward.
    let upstream = big_headed_upstream().await;
    let (_proxy, proxy) = proxy_process(&["--upstream", &format!("http://{upstream}")]).await;
    let answer = Probe::get("/abc").send(proxy).await.unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("--max-header-size"),
        "{}",
        answer.text()
    );
    let (_forward, forward) = crate::common::process::forward_process(&[]).await;
    let answer = Probe::get(&format!("http://{upstream}/abc"))
        .send(forward)
        .await
        .unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("--max-header-size"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn lab_forward_passes_trailers_to_a_client_that_asked_for_them() {
    let (_server, server) = realserver_process("127.0.0.1:0", &[]).await;
    let (_forward, forward) = crate::common::process::forward_process(&[]).await;
    let request = format!(
        "GET http://{server}/stream?n=2&ms=10 HTTP/1.1\r\nHost: {server}\r\nTE: trailers\r\n\
         Connection: close\r\n\r\n"
    );
    let (raw, _) = crate::common::wire::exchange_until_close(forward, request.as_bytes()).await;
    let response = crate::common::wire::RawResponse::parse(&raw, true).expect("a whole answer");
    assert_eq!(response.status, 200);
    let body = crate::common::wire::decode_chunked(&response.body);
    assert_eq!(
        body.trailers,
        [("x-lab-chunks".to_string(), "2".to_string())],
        "{}",
        body.text()
    );
}

#[tokio::test]
async fn header_names_with_underscores_are_dropped_unless_kept() {
    let (_server, server) = realserver_process("127.0.0.1:0", &[]).await;
    let upstream = format!("http://{server}");
    let spoof = |probe: Probe| {
        probe
            .header("Accept", "application/json")
            .header("X_Real_IP", "6.6.6.6")
            .header("Transfer_Encoding", "chunked")
    };
    let (_proxy, proxy) = proxy_process(&["--upstream", &upstream]).await;
    let echo = spoof(Probe::get("/abc"))
        .send(proxy)
        .await
        .unwrap()
        .json_echo()
        .unwrap();
    assert!(echo.header_values("x_real_ip").is_empty(), "{echo:?}");
    assert!(
        echo.header_values("transfer_encoding").is_empty(),
        "{echo:?}"
    );
    assert_eq!(echo.header_values("x-real-ip"), ["127.0.0.1"]);

    let (_forward, forward) = crate::common::process::forward_process(&[]).await;
    let echo = spoof(Probe::get(&format!("{upstream}/abc")))
        .send(forward)
        .await
        .unwrap()
        .json_echo()
        .unwrap();
    assert!(echo.header_values("x_real_ip").is_empty(), "{echo:?}");

    let (_keeping, keeping) =
        proxy_process(&["--upstream", &upstream, "--underscores-in-headers"]).await;
    let echo = spoof(Probe::get("/abc"))
        .send(keeping)
        .await
        .unwrap()
        .json_echo()
        .unwrap();
    assert_eq!(echo.header_values("x_real_ip"), ["6.6.6.6"]);

    // lab trace's header diff says why it went.
    let run = crate::common::process::run_lab_captured(&[
        "trace",
        "--proxy",
        &format!("http://{proxy}"),
        "-n",
        "1",
        "-H",
        "X_Real_IP: 6.6.6.6",
    ])
    .await;
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stdout.contains("underscore"), "{}", run.stdout);
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_costs_no_get_and_never_resends_a_post() {
    use crate::common::servers::OneShotUpstream;
    // One request per connection, kept open without `Connection: close`,
    // closed 100 ms after the answer: every GET after the first goes out on
    // a connection the upstream is about to close.
    let upstream = OneShotUpstream::start(Duration::from_millis(100)).await;
    // One worker, so one pool: the POST below must meet a pooled connection
    // (with two, its client connection may land on a worker with none).
    let upstream_url = format!("http://{}/", upstream.addr);
    let (_proxy, proxy) = proxy_process(&["--threads", "1", "--upstream", &upstream_url]).await;
    let mut statuses = Vec::new();
    for _ in 0..50 {
        statuses.push(
            Probe::get("/again")
                .send(proxy)
                .await
                .unwrap()
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200; 50]);
    assert_eq!(upstream.requests(), 50, "each GET answered once");
    let stats = stats_of(proxy).await;
    assert!(
        stats["overall"]["layers"].get("proxy").is_none(),
        "{stats:#}"
    );

    // A POST with a body went out on such a connection: never sent again.
    let post = Probe::get("/post")
        .method(http::Method::POST)
        .body("a body that is gone once sent");
    let answer = post.send(proxy).await.unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert_eq!(upstream.requests(), 50, "the POST was not sent again");
}

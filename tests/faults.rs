//! Faults, with real processes on loopback: an upstream killed under steady
//! load and started again, an upstream that accepts and never answers, one
//! that resets its connection in the middle of a body, and a SIGTERM with
//! requests in flight. What must hold: nothing is lost that could have been
//! saved, nothing hangs, nothing leaks, and a cut-off body never looks
//! complete. (ZooKeeper stopped and started under a running proxy is in
//! tests/zookeeper.rs.) Each test is bounded well under 30 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::STEP;
use crate::common::client::reqwest_builder;
use crate::common::process::{LabProcess, naive_process, proxy_process, realserver_process};
use crate::common::wire::find;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A reqwest client, every request bounded by [`STEP`].
fn client() -> reqwest::Client {
    reqwest_builder()
        .timeout(STEP)
        .build()
        .expect("a reqwest client")
}

/// The upstream URL an answer came from (X-Lab-Upstream), or the failure.
async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let upstream = response
        .headers()
        .get("x-lab-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(upstream)
}

#[tokio::test]
async fn an_upstream_killed_under_load_costs_no_request_and_comes_back() {
    let (a, a_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut b, b_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (_proxy, proxy_addr) = proxy_process(&[
        "--upstream",
        &format!("http://{a_addr}/base"),
        "--upstream",
        &format!("http://{b_addr}/base"),
        "--lb",
        "round-robin",
        "--retries",
        "1",
        "--health-check",
        "/base/health",
        "--health-interval",
        "100ms",
    ])
    .await;
    let url = format!("http://{proxy_addr}/base/load");
    let b_url = format!("http://{b_addr}/base");

    // Steady load: four clients, one request after another, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, url) = (stop.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            let mut log = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = started.elapsed();
                log.push((sent, get(&client, &url).await));
            }
            log
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed_at = started.elapsed();
    b.signal("KILL");
    let _ = b.exit().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Started again on the same port: the health checks bring it back.
    let (_b_again, _) = realserver_process(&b_addr.to_string(), &[]).await;
    let back_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut log = Vec::new();
    for client in clients {
        log.extend(client.await.expect("client task"));
    }
    // A request on b's connection at the instant it died may fail (its head
    // was sent: not retried). Every request started after that instant
    // succeeds: those that found b's port closed were tried on a.
    let grace = killed_at + Duration::from_millis(100);
    let failed_after: Vec<_> = log
        .iter()
        .filter(|(sent, result)| *sent > grace && result.is_err())
        .collect();
    assert!(
        failed_after.is_empty(),
        "{} of {} requests started after b was killed failed: {:?}",
        failed_after.len(),
        log.len(),
        &failed_after[..failed_after.len().min(3)]
    );
    let served_by_b = |from: Duration, to: Duration| {
        log.iter()
            .filter(|(sent, result)| {
                *sent >= from && *sent < to && result.as_ref().is_ok_and(|u| *u == b_url)
            })
            .count()
    };
    assert!(
        served_by_b(Duration::ZERO, killed_at) > 0,
        "b served before it died"
    );
    assert_eq!(
        served_by_b(grace, back_at),
        0,
        "nothing was served by a dead b"
    );
    assert!(
        served_by_b(back_at + Duration::from_millis(500), Duration::MAX) > 0,
        "b serves again after it came back (health interval 100 ms, 2 good checks)"
    );
    assert!(
        log.len() > 100,
        "the load was steady: {} requests",
        log.len()
    );
    drop(a);
}

/// An upstream that accepts connections, reads what it is sent and never
/// answers; it reports how many connections it holds open.
async fn silent_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // Until the proxy closes its side.
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open)
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_504_and_leaves_nothing_open() {
    let (upstream, open) = silent_upstream().await;
    let (_proxy, proxy_addr) = proxy_process(&[
        "--upstream",
        &format!("http://{upstream}"),
        "--response-timeout",
        "500ms",
    ])
    .await;
    let client = client();
    let started = Instant::now();
    let answers = futures_util::future::join_all(
        (0..5).map(|i| client.get(format!("http://{proxy_addr}/hang/{i}")).send()),
    )
    .await;
    let took = started.elapsed();
    for answer in answers {
        let answer = answer.expect("an answer, not a hang");
        assert_eq!(answer.status(), 504);
    }
    assert!(
        took < Duration::from_secs(3),
        "504 after the 500 ms timeout, not later: {took:?}"
    );
    // The proxy closed each upstream connection it gave up on.
    let deadline = Instant::now() + Duration::from_secs(3);
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        open.load(Ordering::SeqCst),
        0,
        "upstream connections the proxy gave up on are closed"
    );
    // And nothing is counted as still in flight.
    let stats: serde_json::Value = client
        .get(format!("http://{proxy_addr}/_lab/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON");
    assert_eq!(stats["overall"]["in_flight"], 0, "{stats}");
    assert_eq!(stats["overall"]["requests"], 5, "{stats}");
    assert_eq!(stats["overall"]["status"]["5xx"], 5, "{stats}");
}

/// An upstream that answers with `head` and the first 100 bytes of its body,
/// then resets the connection.
async fn resetting_upstream(head: &'static str, first_part: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while find(&seen, b"\r\n\r\n").is_none() {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(first_part).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                // SO_LINGER 0: close with a reset, as a crashing server does.
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    addr
}

/// Sends one GET through `proxy_addr` and reads until the connection ends.
async fn raw_get(proxy_addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy_addr).await.expect("connect");
    stream
        .write_all(b"GET /cut HTTP/1.1\r\nHost: lab\r\n\r\n")
        .await
        .expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("the proxy ends the client's connection when the upstream's ends");
    seen
}

#[tokio::test]
async fn an_upstream_reset_mid_body_is_never_a_complete_answer() {
    // Content-Length: the client gets fewer bytes than announced, then the end.
    let upstream = resetting_upstream(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        &[b'x'; 100],
    )
    .await;
    let (_proxy, proxy_addr) = proxy_process(&["--upstream", &format!("http://{upstream}")]).await;
    let seen = raw_get(proxy_addr).await;
    let head_end = find(&seen, b"\r\n\r\n").expect("the head was forwarded") + 4;
    let head = String::from_utf8_lossy(&seen[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 1000"), "{head}");
    let body = &seen[head_end..];
    assert!(
        body.len() < 1000,
        "a cut-off body must not arrive whole: {} bytes",
        body.len()
    );

    // Chunked: the client never sees the last chunk that would end the body.
    let upstream = resetting_upstream(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"64\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
    )
    .await;
    let (_proxy, proxy_addr) = proxy_process(&["--upstream", &format!("http://{upstream}")]).await;
    let seen = raw_get(proxy_addr).await;
    let text = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(
        find(&seen, b"\r\n0\r\n\r\n").is_none(),
        "the terminating chunk must not be sent for a body that was cut off: {text:?}"
    );
}

/// An upstream that answers 200 as soon as it has a request head, then
/// reads the request body (as Go and nginx servers do); it reports whether
/// a body ever ended with its last chunk.
async fn early_answering_upstream() -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let saw_last_chunk = Arc::new(AtomicBool::new(false));
    let flag = saw_last_chunk.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let flag = flag.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let mut answered = false;
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    if !answered && find(&seen, b"\r\n\r\n").is_some() {
                        answered = true;
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await;
                    }
                    if find(&seen, b"\r\n0\r\n\r\n").is_some() {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (addr, saw_last_chunk)
}

#[tokio::test]
async fn a_chunked_body_past_max_body_after_the_answer_is_cut_and_nothing_hangs() {
    for command in ["proxy", "naive"] {
        let (upstream, saw_last_chunk) = early_answering_upstream().await;
        let target = format!("http://{upstream}");
        let (_process, addr) = match command {
            "proxy" => proxy_process(&["--upstream", &target, "--max-body", "1000"]).await,
            _ => naive_process(&["--target", &target, "--max-body", "1000"]).await,
        };

        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(
                b"POST /up HTTP/1.1\r\nHost: lab\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
            )
            .await
            .expect("write");
        // The upstream's early answer arrives while the body is still coming.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while find(&seen, b"ok").is_none() {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("the early answer")
                .expect("read");
            assert!(n > 0, "{command}: closed before the answer");
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(
            String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"),
            "{command}"
        );
        // Then the body grows past the limit and ends; then another request.
        for _ in 0..4 {
            let mut chunk = b"1f4\r\n".to_vec();
            chunk.extend_from_slice(&[b'x'; 500]);
            chunk.extend_from_slice(b"\r\n");
            if client.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = client
            .write_all(b"0\r\n\r\nGET /next HTTP/1.1\r\nHost: lab\r\n\r\n")
            .await;
        // The connection answers or closes: it does not hang.
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return "closed",
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "{command}: the client's connection hung after the limit"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !saw_last_chunk.load(Ordering::SeqCst),
            "{command}: the upstream must never get a body past --max-body as if it were whole"
        );
    }
}

/// SIGTERM with requests in flight: they complete, new connections are
/// refused, the process exits 0.
async fn drains_on_sigterm(mut server: LabProcess, addr: SocketAddr, path: &str) {
    let url = format!("http://{addr}{path}");
    let base_fds = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("/proc/PID/fd")
        .count();
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let response = client().get(&url).send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                Ok::<_, String>((status, body.len()))
            })
        })
        .collect();
    // Until the server has accepted all five (its open descriptors show
    // them), then a moment for their heads to be read.
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", server.pid())).map_or(0, |d| d.count());
    let deadline = Instant::now() + STEP;
    while fds() < base_fds + 5 {
        assert!(Instant::now() < deadline, "the five requests never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = TcpStream::connect(addr).await;
    assert!(
        refused.is_err(),
        "a new connection after SIGTERM is refused (the port is closed)"
    );
    for request in in_flight {
        let (status, length) = request
            .await
            .expect("task")
            .expect("a request in flight completes, it is not reset");
        assert_eq!(status, 200);
        assert!(length > 0);
    }
    let status = server.exit().await;
    assert!(status.success(), "exit 0 after draining: {status:?}");
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_in_the_proxy_and_the_real_server() {
    // The proxy, in front of a real server that takes 1.5 s to answer.
    let (_upstream, up) = realserver_process("127.0.0.1:0", &[]).await;
    let (proxy, proxy_addr) = proxy_process(&["--upstream", &format!("http://{up}/base")]).await;
    drains_on_sigterm(proxy, proxy_addr, "/delay?ms=1500").await;
    // The real server itself.
    let (server, addr) = realserver_process("127.0.0.1:0", &[]).await;
    drains_on_sigterm(server, addr, "/base/delay?ms=1500").await;
}

//! `lab naive`, the article's hand-written reverse proxy (简单版反向代理), on
//! real sockets: in this process through `lab::proxy::naive::serve`, and as
//! the `lab naive` binary.
//!
//! These tests pin its *flaws* down as much as what it does right: the
//! upstream sees no X-Forwarded-For, the client's Host, and every hop-by-hop
//! header; the client sees the upstream's. Every server listens on
//! 127.0.0.1 port 0; every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::STEP;
use crate::common::client::{header_values, json_echo, send};
use crate::common::process::{naive_process, run_lab};
use crate::common::servers::{dead_port, naive_proxy, naive_to, real_server, stop};
use http::StatusCode;
use lab::lab_headers::SERVER_HEADER;
use lab::probe::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

// ---------------------------------------------------------------------------
// What the upstream sees
// ---------------------------------------------------------------------------

#[tokio::test]
async fn upstream_sees_no_forwarding_headers_and_the_clients_host() {
    let server = real_server().await;
    let proxy = naive_to(server.addr()).await;

    let (exchange, seen) = json_echo(proxy.addr(), Probe::get("/abc?x=1")).await;
    assert_eq!(seen.server, server.addr().to_string());
    assert_eq!(
        seen.uri, "/abc?x=1",
        "path and query as the client sent them"
    );
    for name in ["x-forwarded-for", "x-real-ip", "x-forwarded-host", "via"] {
        assert!(
            seen.header_values(name).is_empty(),
            "the naive proxy adds no {name}: {:?}",
            seen.headers
        );
    }
    // The Host the client wrote (the proxy's address), not the target's.
    assert_eq!(seen.header_values("host"), [proxy.addr().to_string()]);
    // RemoteAddr is a connection of the proxy's, not the client's.
    let remote: SocketAddr = seen.remote_addr.parse().expect("an address");
    assert_ne!(remote, exchange.local_addr, "the client's address is lost");
    assert!(remote.ip().is_loopback(), "{remote}");
    assert_ne!(remote.port(), proxy.addr().port(), "an outbound socket");

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn remote_addr_is_the_proxys_pooled_outbound_socket() {
    let server = real_server().await;
    let proxy = naive_to(server.addr()).await;

    // Two clients on two connections: the upstream sees the same peer both
    // times, the proxy's pooled connection (Go's DefaultTransport keeps it
    // too). The pool gets the connection back just after the first response
    // ends, so a second request is retried a few times before failing.
    let (first, seen_first) = json_echo(proxy.addr(), Probe::get("/one")).await;
    assert_ne!(seen_first.remote_addr, first.local_addr.to_string());
    let mut reused = false;
    let mut seen_later = Vec::new();
    for _ in 0..5 {
        let (later, seen) = json_echo(proxy.addr(), Probe::get("/two")).await;
        assert_ne!(
            later.local_addr, first.local_addr,
            "a second client connection"
        );
        assert_ne!(seen.remote_addr, later.local_addr.to_string());
        if seen.remote_addr == seen_first.remote_addr {
            reused = true;
            break;
        }
        seen_later.push(seen.remote_addr);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reused,
        "the upstream should see the proxy's pooled socket {} again, saw {seen_later:?}",
        seen_first.remote_addr
    );

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hop_by_hop_request_headers_reach_the_upstream() {
    let server = real_server().await;
    let proxy = naive_to(server.addr()).await;

    let probe = Probe::get("/abc")
        .header("Connection", "X-Foo")
        .header("X-Foo", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic dXNlcjpwdw==")
        .header("Proxy-Connection", "keep-alive")
        .header("TE", "trailers")
        .header("Upgrade", "nothing-really")
        .header("X-Forwarded-For", "1.2.3.4");
    let (_, seen) = json_echo(proxy.addr(), probe).await;
    // The flaw: `Connection: X-Foo` says X-Foo is for this hop only, and a
    // correct proxy drops both. The naive one passes them on.
    assert_eq!(
        seen.header_values("connection"),
        ["X-Foo"],
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header_values("x-foo"), ["1"]);
    assert_eq!(seen.header_values("keep-alive"), ["timeout=5"]);
    assert_eq!(
        seen.header_values("proxy-authorization"),
        ["Basic dXNlcjpwdw=="],
        "a credential meant for a proxy leaks upstream"
    );
    assert_eq!(seen.header_values("proxy-connection"), ["keep-alive"]);
    assert_eq!(seen.header_values("te"), ["trailers"]);
    assert_eq!(seen.header_values("upgrade"), ["nothing-really"]);
    // A client's X-Forwarded-For is passed on untouched: nothing appended.
    assert_eq!(seen.header_values("x-forwarded-for"), ["1.2.3.4"]);

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn path_is_not_joined_with_a_base_path_in_the_target() {
    let server = real_server().await;
    // `lab proxy` would send /abc to /base/abc; the article's naive code only
    // swaps scheme and host.
    let proxy = naive_proxy(&format!("http://{}/base", server.addr())).await;
    let (_, seen) = json_echo(proxy.addr(), Probe::get("/abc")).await;
    assert_eq!(seen.uri, "/abc");
    stop(proxy).await;
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// What the client sees
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hop_by_hop_response_headers_reach_the_client() {
    let server = real_server().await;
    let proxy = naive_to(server.addr()).await;

    let exchange = send(proxy.addr(), Probe::get("/hop-headers")).await;
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    assert_eq!(
        header_values(&exchange, SERVER_HEADER),
        [server.addr().to_string()]
    );
    assert_eq!(
        header_values(&exchange, "connection"),
        ["X-Hop"],
        "{:?}",
        exchange.headers
    );
    assert_eq!(
        header_values(&exchange, "x-hop").len(),
        1,
        "{:?}",
        exchange.headers
    );
    assert_eq!(
        header_values(&exchange, "keep-alive"),
        ["timeout=5, max=100"]
    );

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn chunked_framing_and_trailer_announcement_are_copied() {
    let server = real_server().await;
    let proxy = naive_to(server.addr()).await;

    let exchange = send(proxy.addr(), Probe::get("/stream?n=3&ms=0")).await;
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    // hyper honours the copied `Transfer-Encoding: chunked` (and re-cuts the
    // chunks itself); the `Trailer` announcement is passed on as well.
    assert_eq!(header_values(&exchange, "transfer-encoding"), ["chunked"]);
    assert_eq!(header_values(&exchange, "trailer"), ["X-Lab-Chunks"]);
    assert_eq!(exchange.text().lines().count(), 3, "{}", exchange.text());

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_error_loses_its_status_as_in_go_but_keeps_its_body() {
    let server = real_server().await;
    let proxy = naive_to(server.addr()).await;

    // Directly, the real server says 500 ...
    let direct = send(server.addr(), Probe::get("/base/error")).await;
    assert_eq!(direct.status, StatusCode::INTERNAL_SERVER_ERROR);
    // ... but the article's code never calls rw.WriteHeader: 200.
    let exchange = send(proxy.addr(), Probe::get("/base/error")).await;
    assert_eq!(exchange.status, StatusCode::OK);
    assert_eq!(exchange.text(), "error handler");
    assert_eq!(
        header_values(&exchange, SERVER_HEADER),
        [server.addr().to_string()]
    );

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn five_megabytes_arrive_intact() {
    const TOTAL: usize = 5 * 1024 * 1024;
    let server = real_server().await;
    let proxy = naive_to(server.addr()).await;

    let exchange = send(proxy.addr(), Probe::get(&format!("/bytes?n={TOTAL}"))).await;
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    assert_eq!(
        header_values(&exchange, "content-length"),
        [TOTAL.to_string()]
    );
    assert_eq!(exchange.body.len(), TOTAL);
    // Byte i of …/bytes is i % 251.
    let first_bad = exchange
        .body
        .iter()
        .enumerate()
        .position(|(i, &b)| b != (i % 251) as u8);
    assert_eq!(first_bad, None, "the body differs from the pattern");

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

/// An upstream that sends `first` bytes of a `total`-byte body, then waits
/// for `go` before sending the rest: a proxy that buffers whole bodies
/// never passes the first part on.
async fn gated_upstream(first: usize, total: usize) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (go, gate) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read request");
            assert!(n > 0, "the proxy closed before sending its request");
            head.extend_from_slice(&buf[..n]);
        }
        let body: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.write_all(&body[..first]).await.unwrap();
        if gate.await.is_ok() {
            let _ = stream.write_all(&body[first..]).await;
        }
    });
    (addr, go)
}

#[tokio::test]
async fn response_body_is_streamed_not_buffered() {
    const FIRST: usize = 1024 * 1024;
    const TOTAL: usize = 5 * 1024 * 1024;
    let (upstream, go) = gated_upstream(FIRST, TOTAL).await;
    let proxy = naive_proxy(&format!("http://{upstream}")).await;

    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = format!(
        "GET /big HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        proxy.addr()
    );
    client.write_all(request.as_bytes()).await.unwrap();

    // The first megabyte must arrive while the upstream is still holding
    // back the rest.
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let body_start = tokio::time::timeout(STEP, async {
        loop {
            let n = client.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed early: {:?}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buf[..n]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n")
                && received.len() >= end + 4 + FIRST
            {
                return end + 4;
            }
        }
    })
    .await
    .expect("the first part arrives before the upstream sends the rest: the proxy must stream");
    let head = String::from_utf8_lossy(&received[..body_start]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");

    go.send(()).expect("the upstream is waiting");
    tokio::time::timeout(STEP, client.read_to_end(&mut received))
        .await
        .expect("the rest arrives")
        .expect("read the rest");
    let body = &received[body_start..];
    assert_eq!(body.len(), TOTAL);
    assert!(
        body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "the body arrived intact"
    );
    stop(proxy).await;
}

#[tokio::test]
async fn upstream_down_is_a_502_that_says_what_to_start() {
    // A port that was free a moment ago: nothing listens there.
    let target = format!("http://{}", dead_port());
    let proxy = naive_proxy(&target).await;

    let exchange = send(proxy.addr(), Probe::get("/abc")).await;
    assert_eq!(exchange.status, StatusCode::BAD_GATEWAY);
    let text = exchange.text();
    assert!(text.contains(&target), "names the target: {text}");
    assert!(
        text.contains("lab realserver"),
        "says what to start: {text}"
    );
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");

    // The proxy is still serving after the failure.
    let again = send(proxy.addr(), Probe::get("/abc")).await;
    assert_eq!(again.status, StatusCode::BAD_GATEWAY);
    stop(proxy).await;
}

// ---------------------------------------------------------------------------
// The binary
#[tokio::test]
async fn binary_forwards_warns_about_the_ignored_base_path_and_stops_on_sigterm() {
    let server = real_server().await;
    let target = format!("http://{}/base", server.addr());
    let (mut lab, addr) = naive_process(&["--target", &target]).await;
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let (exchange, seen) = json_echo(addr, Probe::get("/abc")).await;
    assert_eq!(seen.server, server.addr().to_string());
    assert_eq!(seen.uri, "/abc", "the base path is ignored");
    assert!(seen.header_values("x-forwarded-for").is_empty());
    assert_ne!(seen.remote_addr, exchange.local_addr.to_string());

    let status = lab.terminate().await;
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{}", lab.log());
    let log = lab.log();
    assert!(log.contains("ignores \"/base\""), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn binary_rejects_a_target_without_a_scheme() {
    let (status, stderr) = run_lab(&["naive", "--target", "127.0.0.1:2003"]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--target"), "{stderr}");
    assert!(stderr.contains("http://HOST:PORT"), "{stderr}");
}

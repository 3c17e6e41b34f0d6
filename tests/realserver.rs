//! The real servers on real sockets: in this process through
//! `lab::realserver::RunningServer`, and as the `lab realserver` binary.
//!
//! Every server listens on 127.0.0.1 port 0. Every wait is bounded; the only
//! timings asserted are timeouts the server is meant to enforce, with wide
//! margins.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::STEP;
use crate::common::client::{get, header_of, send};
use crate::common::process::{LabProcess, REALSERVER_AT, realserver_process, run_lab};
use crate::common::servers::{real_server, real_server_with};
use crate::common::wire::{
    Chunked, RawResponse, close_and_drain, decode_chunked, exchange_until_close, raw_exchange,
};
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use lab::lab_headers::SERVER_HEADER;
use lab::probe::{Exchange, Probe};
use lab::realserver::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

// ---------------------------------------------------------------------------
// Helpers: servers, probes and raw HTTP/1.1
// ---------------------------------------------------------------------------

fn assert_names_server(exchange: &Exchange, addr: SocketAddr, what: &str) {
    assert_eq!(
        header_of(exchange, SERVER_HEADER),
        addr.to_string(),
        "{what}: {SERVER_HEADER} should name the server"
    );
}

/// A request written by hand: `Host` and `Connection: close` are added, so the
/// answer can be read to EOF.
fn raw_request(addr: SocketAddr, path: &str, extra_headers: &[(&str, &str)]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    request
}

/// A whole response read to the server's close; the real server speaks HTTP/1.1.
fn response_of(received: &[u8]) -> RawResponse {
    let response = RawResponse::parse(received, true).unwrap_or_else(|| {
        panic!(
            "no complete response head in {:?}",
            String::from_utf8_lossy(received)
        )
    });
    assert_eq!(response.version, "HTTP/1.1", "{response:?}");
    response
}

/// Writes `request` on a new connection and reads one response with a
/// `Content-Length` body, leaving the connection open.
async fn raw_keep_alive_exchange(addr: SocketAddr, request: &str) -> RawResponse {
    let (response, _open) = raw_exchange(addr, request.as_bytes()).await;
    assert_eq!(response.version, "HTTP/1.1", "{response:?}");
    assert_eq!(
        response.values("content-length").len(),
        1,
        "expected one Content-Length: {response:?}"
    );
    assert!(
        response.complete,
        "connection closed mid-response: {response:?}"
    );
    response
}

// ---------------------------------------------------------------------------
// In-process: the echo
// ---------------------------------------------------------------------------

#[tokio::test]
async fn text_echo_is_the_articles_three_lines() {
    let server = real_server().await;
    let addr = server.addr();
    let exchange = send(
        addr,
        Probe::get("/abc?x=1").header("X-Forwarded-For", "1.2.3.4"),
    )
    .await;
    assert_eq!(exchange.status, StatusCode::OK);
    assert!(
        header_of(&exchange, "content-type").starts_with("text/plain"),
        "{:?}",
        exchange.headers
    );
    let body = exchange.text();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "three lines, no explore line off `/`: {body}"
    );
    assert_eq!(lines[0], format!("http://{addr}/abc"), "{body}");
    assert_eq!(
        lines[1],
        format!(
            "RemoteAddr={},X-Forwarded-For=1.2.3.4,X-Real-Ip=",
            exchange.local_addr
        ),
        "{body}"
    );
    assert!(lines[2].starts_with("headers =map["), "{body}");
    assert!(lines[2].ends_with(']'), "{body}");
    assert!(lines[2].contains("X-Forwarded-For:[1.2.3.4]"), "{body}");
    // Go's server moves Host out of req.Header (into req.Host): the
    // article's map has no Host, and neither has the lab's.
    assert!(!lines[2].contains("Host:"), "{body}");

    // The library's parser agrees with what was read by hand.
    let echo = exchange.text_echo().expect("a text echo");
    assert_eq!(echo.remote_addr, exchange.local_addr.to_string());
    assert_eq!(echo.x_forwarded_for, "1.2.3.4");
    assert_eq!(echo.x_real_ip, "");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn json_echo_reports_the_request_as_it_arrived() {
    let server = real_server().await;
    let addr = server.addr();
    let body = "hello, real server";
    let probe = Probe {
        method: Method::POST,
        body: body.into(),
        ..Probe::get("/abc?x=1")
    }
    .header("Accept", "application/json")
    .header("X-Dup", "first")
    .header("X-Other", "between")
    .header("X-Dup", "second");
    let exchange = send(addr, probe).await;
    assert_eq!(exchange.status, StatusCode::OK);
    assert_eq!(header_of(&exchange, "content-type"), "application/json");

    // Valid JSON, with the documented shape.
    let value: serde_json::Value =
        serde_json::from_slice(&exchange.body).expect("the body is valid JSON");
    for field in ["server", "method", "uri", "version", "remote_addr"] {
        assert!(value[field].is_string(), "{field} in {value}");
    }
    assert!(value["body_bytes"].is_u64(), "{value}");
    let pairs = value["headers"].as_array().expect("headers is an array");
    assert!(
        pairs.iter().all(|pair| pair
            .as_array()
            .is_some_and(|p| p.len() == 2 && p.iter().all(|s| s.is_string()))),
        "headers are [name, value] pairs: {value}"
    );

    let report = exchange.json_echo().expect("an EchoReport");
    assert_eq!(report.server, addr.to_string());
    assert_eq!(report.method, "POST");
    assert_eq!(report.uri, "/abc?x=1");
    assert_eq!(report.version, "HTTP/1.1");
    assert_eq!(report.remote_addr, exchange.local_addr.to_string());
    assert_eq!(report.header_values("x-dup"), ["first", "second"]);
    assert_eq!(report.header_values("host"), [addr.to_string()]);
    assert_eq!(report.header_values("accept"), ["application/json"]);
    assert_eq!(report.body_bytes, body.len() as u64);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_response_names_the_server() {
    let server = real_server().await;
    let addr = server.addr();
    let cases = [
        ("/abc", StatusCode::OK),
        ("/", StatusCode::OK),
        ("/no/such/page.html", StatusCode::OK),
        ("/base/error", StatusCode::INTERNAL_SERVER_ERROR),
        ("/delay?ms=1", StatusCode::OK),
        ("/delay?ms=abc", StatusCode::BAD_REQUEST),
        ("/stream?n=2&ms=0", StatusCode::OK),
        ("/stream?n=-1", StatusCode::BAD_REQUEST),
        ("/ws", StatusCode::UPGRADE_REQUIRED),
        ("/hop-headers", StatusCode::OK),
    ];
    for (path, status) in cases {
        let exchange = get(addr, path).await;
        assert_eq!(exchange.status, status, "GET {path}: {}", exchange.text());
        assert_names_server(&exchange, addr, path);
    }
    // The JSON echo too.
    let exchange = send(
        addr,
        Probe::get("/abc").header("Accept", "application/json"),
    )
    .await;
    assert_names_server(&exchange, addr, "JSON echo");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn root_adds_an_explore_line_under_the_echo() {
    let server = real_server().await;
    let addr = server.addr();
    let exchange = get(addr, "/").await;
    assert_eq!(exchange.status, StatusCode::OK);
    let body = exchange.text();
    let echo = exchange
        .text_echo()
        .expect("still the three-line echo first");
    assert_eq!(echo.url, format!("http://{addr}/"));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 4, "{body}");
    assert!(lines[3].starts_with("explore:"), "{body}");
    for endpoint in ["/base/error", "/delay", "/stream", "/ws", "/hop-headers"] {
        assert!(
            lines[3].contains(endpoint),
            "explore names {endpoint}: {body}"
        );
    }
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// In-process: the article's other handlers and the write timeout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn base_error_is_a_500_saying_error_handler() {
    let server = real_server().await;
    let exchange = get(server.addr(), "/base/error").await;
    assert_eq!(exchange.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(exchange.text(), "error handler");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn timeout_handler_gets_no_response_after_the_3s_write_timeout() {
    let server = real_server().await;
    let addr = server.addr();
    let request = raw_request(addr, "/test_http_string/test_http_string/aaa", &[]);
    let (received, elapsed) = exchange_until_close(addr, request.as_bytes()).await;
    assert!(
        received.is_empty(),
        "expected an empty reply, got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        elapsed >= Duration::from_millis(2_500) && elapsed < Duration::from_millis(5_500),
        "the connection should close at the 3 s write timeout, closed after {elapsed:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn custom_write_timeout_cuts_slow_delays_only() {
    let server = real_server_with(Config {
        write_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    let addr = server.addr();

    // Slower than the write timeout: closed unanswered, well before the delay ends.
    let (received, elapsed) =
        exchange_until_close(addr, raw_request(addr, "/delay?ms=2000", &[]).as_bytes()).await;
    assert!(
        received.is_empty(),
        "expected an empty reply, got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(1_900),
        "the connection should close at the 500 ms write timeout, closed after {elapsed:?}"
    );

    // The same probe through hyper's client: an error, not a response.
    let err = Probe::get("/delay?ms=2000")
        .send(addr)
        .await
        .expect_err("no response past the write timeout");
    assert!(format!("{err:#}").contains("without a response"), "{err:#}");

    // Faster than the write timeout: the echo.
    let exchange = get(addr, "/delay?ms=100").await;
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    let echo = exchange.text_echo().expect("the echo after the delay");
    assert_eq!(echo.url, format!("http://{addr}/delay"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn delay_rejects_a_non_number_with_a_helpful_400() {
    let server = real_server().await;
    let addr = server.addr();
    for path in ["/delay?ms=abc", "/base/delay?ms=abc", "/delay?ms=99999999"] {
        let exchange = get(addr, path).await;
        assert_eq!(exchange.status, StatusCode::BAD_REQUEST, "{path}");
        let body = exchange.text();
        assert!(body.contains("?ms="), "{path}: {body}");
        assert!(body.contains("whole number"), "{path}: {body}");
        assert!(body.contains("e.g. ?ms=1000"), "{path}: {body}");
    }
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// In-process: the lab's additions
// ---------------------------------------------------------------------------

/// `GET path` with `TE: trailers`, read raw: the head and the decoded chunks.
async fn stream_with_trailers(addr: SocketAddr, path: &str) -> (RawResponse, Chunked) {
    let request = raw_request(addr, path, &[("TE", "trailers")]);
    let (received, _) = exchange_until_close(addr, request.as_bytes()).await;
    let response = response_of(&received);
    let chunked = decode_chunked(&response.body);
    (response, chunked)
}

#[tokio::test]
async fn stream_sends_chunks_then_the_trailer() {
    let server = real_server().await;
    let addr = server.addr();
    for path in ["/stream?n=3&ms=50", "/base/stream?n=3&ms=50"] {
        let (response, chunked) = stream_with_trailers(addr, path).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(
            response.values("transfer-encoding"),
            ["chunked"],
            "{path}: {response:?}"
        );
        assert!(
            response.values("content-length").is_empty(),
            "{path}: {response:?}"
        );
        assert_eq!(
            response.values("trailer"),
            ["X-Lab-Chunks"],
            "{path}: {response:?}"
        );
        assert_eq!(response.values(SERVER_HEADER), [addr.to_string()], "{path}");

        assert_eq!(chunked.chunks.len(), 3, "{path}: {chunked:?}");
        for (i, chunk) in chunked.chunks.iter().enumerate() {
            let chunk = String::from_utf8_lossy(chunk);
            let prefix = format!("chunk {}/3 at ", i + 1);
            assert!(
                chunk.starts_with(&prefix) && chunk.ends_with(" ms\n"),
                "{path}: chunk {i} is {chunk:?}"
            );
        }
        assert_eq!(chunked.trailers.len(), 1, "{path}: {chunked:?}");
        let (name, value) = &chunked.trailers[0];
        assert!(name.eq_ignore_ascii_case("x-lab-chunks"), "{path}: {name}");
        assert_eq!(value, "3", "{path}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stream_without_te_trailers_has_no_trailer_fields() {
    let server = real_server().await;
    let addr = server.addr();
    let request = raw_request(addr, "/stream?n=2&ms=0", &[]);
    let (received, _) = exchange_until_close(addr, request.as_bytes()).await;
    let response = response_of(&received);
    assert_eq!(response.status, 200);
    assert_eq!(response.values("transfer-encoding"), ["chunked"]);
    let chunked = decode_chunked(&response.body);
    assert_eq!(chunked.chunks.len(), 2, "{chunked:?}");
    assert!(chunked.trailers.is_empty(), "{chunked:?}");
    server.shutdown().await.unwrap();
}

async fn assert_ws_echo(addr: SocketAddr, path: &str) {
    let url = format!("ws://{addr}{path}");
    let (mut ws, response) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(&url))
        .await
        .expect("handshake within the step timeout")
        .unwrap_or_else(|err| panic!("WebSocket handshake with {url}: {err}"));
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        response
            .headers()
            .get(SERVER_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some(addr.to_string().as_str()),
        "the 101 names the server"
    );

    let messages = [
        Message::text("héllo, echo"),
        Message::binary(vec![0u8, 1, 2, 254, 255]),
        Message::text(""),
    ];
    for message in messages {
        ws.send(message.clone()).await.expect("send");
        let back = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("an echo within the step timeout")
            .expect("the stream is still open")
            .expect("a message, not an error");
        assert_eq!(back, message, "{url}");
    }

    // The server answers with a close frame of its own (RFC 6455 §5.5.1), and
    // then the stream ends cleanly: no error, no data after the close.
    let rest = close_and_drain(&mut ws).await;
    assert!(
        matches!(rest.as_slice(), [Ok(Message::Close(_))]),
        "expected exactly the server's close frame after ours, got {rest:?}"
    );
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_and_closes() {
    let server = real_server().await;
    let addr = server.addr();
    assert_ws_echo(addr, "/ws").await;
    assert_ws_echo(addr, "/base/ws").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn websocket_path_without_upgrade_is_426() {
    let server = real_server().await;
    let addr = server.addr();
    let exchange = get(addr, "/ws").await;
    assert_eq!(exchange.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(header_of(&exchange, "upgrade"), "websocket");
    assert!(exchange.text().contains("WebSocket"), "{}", exchange.text());
    assert_names_server(&exchange, addr, "426");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hop_headers_come_back_on_the_wire() {
    let server = real_server().await;
    let addr = server.addr();
    // A keep-alive request, so that hyper has no `close` of its own to add to
    // the `Connection` header: what is read is exactly what the handler set.
    let request = format!("GET /hop-headers HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let response = raw_keep_alive_exchange(addr, &request).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.values("connection"), ["X-Hop"], "{response:?}");
    let x_hop = response.values("x-hop");
    assert_eq!(x_hop.len(), 1, "{response:?}");
    assert!(!x_hop[0].is_empty());
    assert_eq!(
        response.values("keep-alive"),
        ["timeout=5, max=100"],
        "{response:?}"
    );
    assert_eq!(response.values(SERVER_HEADER), [addr.to_string()]);
    // The body is still the echo.
    let body = String::from_utf8_lossy(&response.body);
    assert!(
        body.starts_with(&format!("http://{addr}/hop-headers\n")),
        "{body}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_then_refuses() {
    let server = real_server().await;
    let addr = server.addr();
    let in_flight = tokio::spawn(async move { Probe::get("/delay?ms=800").send(addr).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !in_flight.is_finished(),
        "the delayed request is still running"
    );

    tokio::time::timeout(STEP, server.shutdown())
        .await
        .expect("shutdown drains within the step timeout")
        .expect("shutdown succeeds");

    let exchange = in_flight
        .await
        .expect("probe task")
        .expect("the request in flight is answered");
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    let echo = exchange.text_echo().expect("the echo");
    assert_eq!(echo.url, format!("http://{addr}/delay"));

    let err = TcpStream::connect(addr)
        .await
        .expect_err("the port is closed after shutdown");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_instead_of_waiting_for_them() {
    let server = real_server().await;
    let addr = server.addr();
    // A pooled keep-alive connection (what a proxy keeps to its upstream)...
    let mut pooled = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /abc HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    pooled.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(STEP, pooled.read(&mut buf))
        .await
        .expect("a response")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    // ...and a connection that has not sent a byte yet.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Neither holds the shutdown for the drain timeout (10 s).
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown does not wait for idle connections")
        .expect("shutdown succeeds");
    for (name, stream) in [("pooled", &mut pooled), ("silent", &mut silent)] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("the {name} connection is closed"));
        assert!(
            read.is_ok_and(|_| rest.is_empty()),
            "the {name} connection ends without another byte: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    let server = real_server().await;
    let addr = server.addr();
    let (mut ws, _) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("handshake within the step timeout")
    .expect("WebSocket handshake");
    ws.send(Message::text("before")).await.unwrap();
    let echoed = tokio::time::timeout(STEP, ws.next()).await.unwrap();
    assert_eq!(echoed.unwrap().unwrap(), Message::text("before"));

    tokio::time::timeout(STEP, server.shutdown())
        .await
        .expect("shutdown does not wait for the WebSocket")
        .expect("shutdown succeeds");
    let closing = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("the server closes the WebSocket");
    match closing {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Away, "{frame:?}");
        }
        other => panic!("expected a close frame with 1001 Going Away, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------
#[tokio::test]
async fn binary_runs_one_server_per_addr() {
    let mut lab = LabProcess::spawn(&[
        "realserver",
        "--addr",
        "127.0.0.1:0",
        "--addr",
        "127.0.0.1:0",
    ]);
    let addrs = lab.addrs_after(REALSERVER_AT, 2).await;
    assert_ne!(addrs[0], addrs[1], "{}", lab.log());
    for addr in &addrs {
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        let exchange = get(*addr, "/abc").await;
        assert_eq!(exchange.status, StatusCode::OK);
        assert_names_server(&exchange, *addr, "binary");
        let echo = exchange.text_echo().expect("the echo");
        assert_eq!(echo.url, format!("http://{addr}/abc"));
        assert_eq!(echo.remote_addr, exchange.local_addr.to_string());
    }
    lab.child.kill().await.expect("kill lab");
}

#[tokio::test]
async fn binary_reports_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to take");
    let addr = taken.local_addr().unwrap();
    let (status, stderr) = run_lab(&["realserver", "--addr", &addr.to_string()]).await;
    assert!(
        status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit, got {status}; stderr:\n{stderr}"
    );
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains(&addr.port().to_string()), "{stderr}");
    assert!(stderr.contains("--addr"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Starting httpserver"), "{stderr}");
    drop(taken);
}

#[tokio::test]
async fn binary_sigterm_drains_the_request_in_flight_and_exits_0() {
    let (mut lab, addr) = realserver_process("127.0.0.1:0", &[]).await;

    let in_flight = tokio::spawn(async move { Probe::get("/delay?ms=1500").send(addr).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "the delayed request is still running"
    );
    lab.signal("TERM");

    let exchange = tokio::time::timeout(STEP, in_flight)
        .await
        .expect("the request in flight ends")
        .expect("probe task")
        .unwrap_or_else(|err| panic!("the request in flight is answered: {err:#}"));
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    exchange.text_echo().expect("the echo");

    let status = lab.exit().await;
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{}", lab.log());
    let log = lab.log();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    let err = TcpStream::connect(addr)
        .await
        .expect_err("the port is closed after exit");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test]
async fn binary_rejects_a_bad_write_timeout_with_a_usage_error() {
    let (status, stderr) = run_lab(&["realserver", "--write-timeout", "nonsense"]).await;
    assert_eq!(status.code(), Some(2), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("--write-timeout"), "{stderr}");
    assert!(stderr.contains("nonsense"), "{stderr}");
    assert!(stderr.contains("such as 3s"), "{stderr}");
    assert!(!stderr.contains("Starting httpserver"), "{stderr}");
}

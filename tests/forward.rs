//! `lab forward`, the forward proxy (正向代理), on real sockets: curl
//! (`curl -x`, `curl -p -x`) and reqwest (`Proxy::http`) through it to the
//! article's real server, in this process through `lab::proxy::forward::serve`
//! and as the `lab forward` binary.
//!
//! Every server listens on 127.0.0.1 port 0; every wait is bounded.

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use crate::common::STEP;
use crate::common::client::{reqwest_builder, send};
use crate::common::process::{LabProcess, SERVER_ON, curl, forward_process, realserver_process};
use crate::common::servers::{dead_port, forward_proxy, forward_proxy_on, real_server, stop};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use lab::lab_headers::SERVER_HEADER;
use lab::probe::Probe;
use lab::proxy::forward::{ForwardConfig, ParentProxy};
use lab::realserver::{Config, EchoReport, RunningServer};
use lab::server::Background;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

// ---------------------------------------------------------------------------
// Helpers: proxies, curl, raw HTTP
// ---------------------------------------------------------------------------

/// A forward proxy in this process that may also tunnel to `server`'s port.
async fn allowing(server: &RunningServer) -> Background {
    forward_proxy(ForwardConfig::default().allow_connect_port(server.addr().port())).await
}

/// The proxy URL of a forward proxy (`curl -x URL`).
fn proxy_url(proxy: &Background) -> String {
    format!("http://{}", proxy.addr())
}

fn stdout_ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: curl failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn parse_echo(json: &str) -> EchoReport {
    serde_json::from_str(json).unwrap_or_else(|err| panic!("not the JSON echo ({err}): {json}"))
}

/// The header lines of `curl -D -` output, lower-cased names.
fn curl_headers(dump: &str) -> Vec<(String, String)> {
    dump.split("\r\n")
        .skip(1) // the status line
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// Reads a response head (up to its blank line) byte by byte, so that not
/// one byte after it is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(err) => panic!(
                    "connection ended in a response head ({err}): {:?}",
                    String::from_utf8_lossy(&head)
                ),
            }
        }
    };
    tokio::time::timeout(STEP, read)
        .await
        .expect("a response head within the step timeout");
    String::from_utf8(head).expect("the head is text")
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// Sends `CONNECT target` and returns the stream and the response head.
async fn connect(proxy: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    (stream, head)
}

/// A refused CONNECT: its status and its body (Content-Length framed).
async fn refused_connect(proxy: SocketAddr, target: &str) -> (u16, String) {
    let (mut stream, head) = connect(proxy, target).await;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    let mut body = vec![0u8; length];
    tokio::time::timeout(STEP, stream.read_exact(&mut body))
        .await
        .expect("the body within the step timeout")
        .expect("read the body");
    (
        status_of(&head),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// Plain HTTP through the proxy: curl and reqwest
// ---------------------------------------------------------------------------

#[tokio::test]
async fn curl_x_appends_x_forwarded_for_and_drops_proxy_headers() {
    let server = real_server().await;
    let proxy = forward_proxy(ForwardConfig::default()).await;

    let url = format!("http://{}/abc?x=1", server.addr());
    let output = curl(&[
        "-x",
        &proxy_url(&proxy),
        "--proxy-user",
        "user:pw", // curl sends Proxy-Authorization: Basic …
        "-H",
        "Proxy-Connection: keep-alive",
        "-H",
        "X-Forwarded-For: 1.2.3.4",
        "-H",
        "Connection: X-Foo",
        "-H",
        "X-Foo: 1",
        "-H",
        "Accept: application/json",
        &url,
    ])
    .await;
    let seen = parse_echo(&stdout_ok(&output, "curl -x"));

    assert_eq!(seen.server, server.addr().to_string());
    // Absolute-form at the proxy, origin-form at the server.
    assert_eq!(seen.uri, "/abc?x=1");
    assert_eq!(
        seen.header_values("x-forwarded-for"),
        ["1.2.3.4, 127.0.0.1"],
        "{:?}",
        seen.headers
    );
    for name in [
        "proxy-connection",
        "proxy-authorization",
        "connection",
        "x-foo",
    ] {
        assert!(
            seen.header_values(name).is_empty(),
            "{name} is for one hop only, the server must not see it: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header_values("host"), [server.addr().to_string()]);
    let via = seen.header_values("via");
    assert_eq!(via.len(), 1, "{:?}", seen.headers);
    assert!(via[0].starts_with("1.1 lab-forward-"), "{via:?}");
    // The article's forward proxy sets only X-Forwarded-For.
    assert!(seen.header_values("x-real-ip").is_empty());

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn curl_x_gets_the_response_without_hop_by_hop_headers() {
    let server = real_server().await;
    let proxy = forward_proxy(ForwardConfig::default()).await;

    let url = format!("http://{}/hop-headers", server.addr());
    let output = curl(&["-x", &proxy_url(&proxy), "-D", "-", "-o", "/dev/null", &url]).await;
    let dump = stdout_ok(&output, "curl -D -");
    assert!(dump.starts_with("HTTP/1.1 200"), "{dump}");
    let headers = curl_headers(&dump);
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    // It came from the real server...
    assert!(names.contains(&SERVER_HEADER), "{dump}");
    assert!(names.contains(&"via"), "{dump}");
    // ...without the three hop-by-hop headers it sent.
    assert!(!names.contains(&"x-hop"), "{dump}");
    assert!(!names.contains(&"keep-alive"), "{dump}");
    assert!(
        headers
            .iter()
            .all(|(n, v)| n != "connection" || !v.contains("X-Hop")),
        "{dump}"
    );

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

fn reqwest_through(proxy: &Background) -> reqwest::Client {
    reqwest_builder()
        .proxy(reqwest::Proxy::http(proxy_url(proxy)).expect("a proxy URL"))
        .timeout(STEP)
        .build()
        .expect("a reqwest client")
}

#[tokio::test]
async fn reqwest_proxy_http_works_the_same() {
    let server = real_server().await;
    let proxy = forward_proxy(ForwardConfig::default()).await;
    let client = reqwest_through(&proxy);

    let response = client
        .get(format!("http://{}/abc", server.addr()))
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .send()
        .await
        .expect("a response through the proxy");
    assert_eq!(response.status(), StatusCode::OK);
    let seen: EchoReport = response.json().await.expect("the JSON echo");
    assert_eq!(
        seen.header_values("x-forwarded-for"),
        ["1.2.3.4, 127.0.0.1"]
    );
    assert_eq!(seen.uri, "/abc");

    let response = client
        .get(format!("http://{}/hop-headers", server.addr()))
        .send()
        .await
        .expect("a response through the proxy");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert!(headers.contains_key(SERVER_HEADER), "{headers:?}");
    assert!(!headers.contains_key("x-hop"), "{headers:?}");
    assert!(!headers.contains_key("keep-alive"), "{headers:?}");
    assert!(!headers.contains_key("connection"), "{headers:?}");

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn chained_proxies_grow_x_forwarded_for_and_via_hop_by_hop() {
    let server = real_server().await;
    // client → A → B → real server.
    let b = forward_proxy(ForwardConfig::default()).await;
    let parent: ParentProxy = proxy_url(&b).parse().expect("a parent proxy URL");
    let a = forward_proxy(ForwardConfig::default().parent_proxy(parent)).await;
    let url = format!("http://{}/abc", server.addr());

    let client = reqwest_through(&a);
    let seen: EchoReport = client
        .get(&url)
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .send()
        .await
        .expect("a response through two proxies")
        .json()
        .await
        .expect("the JSON echo");
    assert_eq!(
        seen.header_values("x-forwarded-for"),
        ["1.2.3.4, 127.0.0.1, 127.0.0.1"],
        "each proxy appends the address it saw: {:?}",
        seen.headers
    );
    let via: Vec<&str> = seen
        .header_values("via")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    assert_eq!(via.len(), 2, "one Via entry per proxy: {via:?}");
    assert_ne!(via[0], via[1], "two different proxies: {via:?}");

    // One proxy alone appends once: the chain is what made it grow.
    let one_hop: EchoReport = reqwest_through(&b)
        .get(&url)
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .send()
        .await
        .expect("a response through one proxy")
        .json()
        .await
        .expect("the JSON echo");
    assert_eq!(
        one_hop.header_values("x-forwarded-for"),
        ["1.2.3.4, 127.0.0.1"]
    );

    stop(a).await;
    stop(b).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn websocket_upgrade_passes_through_in_absolute_form() {
    let server = real_server().await;
    let proxy = forward_proxy(ForwardConfig::default()).await;

    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = format!(
        "GET http://{0}/ws HTTP/1.1\r\nHost: {0}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert_eq!(status_of(&head), 101, "{head}");
    // RFC 6455's example key gives this accept value.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");

    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
    ws.send(Message::text("through the proxy")).await.unwrap();
    let echoed = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("an echo within the step timeout");
    assert_eq!(echoed.unwrap().unwrap(), Message::text("through the proxy"));
    ws.close(None).await.unwrap();

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

#[tokio::test]
async fn origin_form_request_is_a_400_that_explains_curl_x() {
    let proxy = forward_proxy(ForwardConfig::default()).await;
    let exchange = send(proxy.addr(), Probe::get("/abc")).await;
    assert_eq!(exchange.status, StatusCode::BAD_REQUEST);
    let text = exchange.text();
    assert!(text.contains("forward proxy"), "{text}");
    assert!(
        text.contains(&format!("curl -x http://{}", proxy.addr())),
        "{text}"
    );
    stop(proxy).await;
}

#[tokio::test]
async fn requests_for_the_proxy_itself_are_refused_as_loops() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    // Even with CONNECT to its own port allowed.
    let proxy = forward_proxy_on(listener, ForwardConfig::default().allow_connect_port(port));
    for url in [
        format!("http://{addr}/abc"),
        format!("http://localhost:{port}/abc"),
        format!("http://127.0.0.2:{port}/abc"),
    ] {
        let exchange = send(addr, Probe::get(&url)).await;
        assert_eq!(exchange.status, StatusCode::LOOP_DETECTED, "{url}");
        assert!(
            exchange.text().contains("this proxy itself"),
            "{}",
            exchange.text()
        );
    }
    for target in [addr.to_string(), format!("localhost:{port}")] {
        let (status, body) = refused_connect(addr, &target).await;
        assert_eq!(status, 508, "CONNECT {target}: {body}");
        assert!(body.contains("loop"), "{body}");
    }
    stop(proxy).await;
}

#[tokio::test]
async fn a_loop_through_a_parent_is_caught_by_via() {
    // A proxy whose parent is itself: the request comes back carrying its
    // own Via entry, which it refuses.
    let server = real_server().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let parent: ParentProxy = format!("http://{addr}").parse().unwrap();
    let proxy = forward_proxy_on(listener, ForwardConfig::default().parent_proxy(parent));

    let exchange = send(addr, Probe::get(&format!("http://{}/abc", server.addr()))).await;
    assert_eq!(
        exchange.status,
        StatusCode::LOOP_DETECTED,
        "{}",
        exchange.text()
    );
    assert!(exchange.text().contains("Via"), "{}", exchange.text());
    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unreachable_target_is_a_502_naming_it() {
    let proxy = forward_proxy(ForwardConfig::default()).await;
    let nowhere = dead_port();
    let exchange = send(proxy.addr(), Probe::get(&format!("http://{nowhere}/abc"))).await;
    assert_eq!(exchange.status, StatusCode::BAD_GATEWAY);
    assert!(
        exchange.text().contains(&nowhere.to_string()),
        "{}",
        exchange.text()
    );

    // The same for a tunnel.
    let proxy2 = forward_proxy(ForwardConfig::default().allow_connect_port(nowhere.port())).await;
    let (status, body) = refused_connect(proxy2.addr(), &nowhere.to_string()).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(&nowhere.to_string()), "{body}");
    stop(proxy).await;
    stop(proxy2).await;
}

// ---------------------------------------------------------------------------
// CONNECT tunnels
// ---------------------------------------------------------------------------

#[tokio::test]
async fn curl_proxytunnel_reaches_an_allowed_port() {
    let server = real_server().await;
    let proxy = allowing(&server).await;

    let url = format!("http://{}/abc", server.addr());
    let output = curl(&[
        "-p",
        "-x",
        &proxy_url(&proxy),
        "-H",
        "Accept: application/json",
        "-H",
        "X-Forwarded-For: 1.2.3.4",
        &url,
    ])
    .await;
    let seen = parse_echo(&stdout_ok(&output, "curl -p -x"));
    assert_eq!(seen.server, server.addr().to_string());
    // Inside a tunnel the proxy only copies bytes: it cannot append to
    // X-Forwarded-For or add Via, and the client's headers arrive as sent.
    assert_eq!(seen.header_values("x-forwarded-for"), ["1.2.3.4"]);
    assert!(seen.header_values("via").is_empty(), "{:?}", seen.headers);

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

/// `lab realserver --tls` (a self-signed certificate, its PEM written to a
/// temporary file) behind a forward proxy that allows CONNECT to it.
async fn https_server_behind_a_forward_proxy() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    RunningServer,
    Background,
) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cert = dir.path().join("cert.pem");
    let tls = lab::tls::ServerTls::self_signed(&cert).expect("a self-signed certificate");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = RunningServer::start_with(listener, Config::default(), Some(tls))
        .expect("an HTTPS real server");
    let proxy = allowing(&server).await;
    (dir, cert, server, proxy)
}

#[tokio::test]
async fn curl_https_through_a_connect_tunnel_keeps_tls_end_to_end() {
    // `lab realserver --tls`: a self-signed certificate, its PEM written for
    // curl's --cacert. curl asks the proxy for `CONNECT 127.0.0.1:PORT` on
    // its own for an https:// URL, then speaks TLS inside the tunnel.
    let (_dir, cert, server, proxy) = https_server_behind_a_forward_proxy().await;

    let url = format!("https://{}/abc", server.addr());
    let cacert = cert.to_str().expect("a UTF-8 path");
    let output = curl(&[
        "--cacert",
        cacert,
        "-x",
        &proxy_url(&proxy),
        "-H",
        "Accept: application/json",
        &url,
    ])
    .await;
    let seen = parse_echo(&stdout_ok(&output, "curl https:// through the proxy"));
    assert_eq!(seen.server, server.addr().to_string());
    assert_eq!(seen.uri, "/abc");
    // The proxy saw only ciphertext: it added nothing.
    assert!(seen.header_values("x-forwarded-for").is_empty());
    assert!(seen.header_values("via").is_empty(), "{:?}", seen.headers);

    // Without the certificate curl refuses the server, not the proxy: the
    // tunnel itself was fine.
    let untrusted = curl(&["-x", &proxy_url(&proxy), &url]).await;
    assert!(!untrusted.status.success(), "curl must not trust it");
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reqwest_https_through_a_connect_tunnel() {
    // reqwest, told to use the forward proxy for https://, opens a CONNECT
    // tunnel and speaks TLS inside it, trusting the real server's PEM.
    let (_dir, cert, server, proxy) = https_server_behind_a_forward_proxy().await;

    let trust = lab::tls::UpstreamTrust::CaFile(cert.clone());
    let tls_config = lab::tls::client_config(&trust).expect("a client config");
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(proxy_url(&proxy)).expect("a proxy URL"))
        .tls_backend_preconfigured((*tls_config).clone())
        .build()
        .expect("a reqwest client");
    let url = format!("https://{}/abc", server.addr());
    let seen: EchoReport = tokio::time::timeout(STEP, async {
        client
            .get(&url)
            .header("Accept", "application/json")
            .send()
            .await
            .expect("the request through the tunnel")
            .json()
            .await
            .expect("the JSON echo")
    })
    .await
    .expect("an answer in time");
    assert_eq!(seen.server, server.addr().to_string());
    // Inside the tunnel the proxy could add nothing.
    assert!(seen.header_values("x-forwarded-for").is_empty());
    assert!(seen.header_values("via").is_empty(), "{:?}", seen.headers);

    // The same client setup with the proxy gone fails: the request really
    // went through the proxy, not straight to the server.
    let stopped = proxy_url(&proxy);
    stop(proxy).await;
    let orphan = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(stopped).expect("a proxy URL"))
        .tls_backend_preconfigured((*tls_config).clone())
        .build()
        .expect("a reqwest client");
    assert!(
        orphan.get(&url).send().await.is_err(),
        "no proxy, no tunnel"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connect_to_a_port_not_allowed_is_a_403_that_says_how_to_allow_it() {
    let server = real_server().await;
    let proxy = forward_proxy(ForwardConfig::default()).await;
    let port = server.addr().port();

    let (status, body) = refused_connect(proxy.addr(), &server.addr().to_string()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(&format!("--allow-connect-port {port}")),
        "{body}"
    );

    let url = format!("http://{}/abc", server.addr());
    let output = curl(&["-p", "-x", &proxy_url(&proxy), &url]).await;
    assert!(!output.status.success(), "curl must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("403"), "{stderr}");

    stop(proxy).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tunnel_passes_a_half_close_on() {
    // A TCP server that reads until the client's EOF, then answers and closes:
    // it only answers if the proxy passes the half-close on.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .await
            .expect("read to EOF");
        let answer = format!("received {} bytes", received.len());
        stream.write_all(answer.as_bytes()).await.unwrap();
    });
    let proxy = forward_proxy(ForwardConfig::default().allow_connect_port(target.port())).await;

    let (mut tunnel, head) = connect(proxy.addr(), &target.to_string()).await;
    assert_eq!(status_of(&head), 200, "{head}");
    tunnel.write_all(&[7u8; 1000]).await.unwrap();
    tunnel.shutdown().await.expect("half-close our side");
    let mut answer = String::new();
    tokio::time::timeout(STEP, tunnel.read_to_string(&mut answer))
        .await
        .expect("the answer after our EOF")
        .expect("read the answer");
    assert_eq!(answer, "received 1000 bytes");
    stop(proxy).await;
}

#[tokio::test]
async fn shutdown_closes_an_open_tunnel_and_completes() {
    let server = real_server().await;
    let proxy = allowing(&server).await;

    let (tunnel, head) = connect(proxy.addr(), &server.addr().to_string()).await;
    assert_eq!(status_of(&head), 200, "{head}");
    // A keep-alive HTTP exchange through the tunnel; the tunnel stays open.
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .expect("HTTP/1.1 over the tunnel");
    let connection = tokio::spawn(connection);
    let request = http::Request::get("/abc")
        .header("host", server.addr().to_string())
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.expect("the body");
    assert!(!connection.is_finished(), "the tunnel is still open");

    // Well within the 10 s drain timeout: shutdown closes the tunnel
    // instead of waiting for it.
    tokio::time::timeout(Duration::from_secs(5), proxy.shutdown())
        .await
        .expect("shutdown does not wait for the open tunnel")
        .expect("the proxy stops cleanly");
    tokio::time::timeout(STEP, connection)
        .await
        .expect("the tunnel is closed by the shutdown")
        .expect("connection task")
        .ok();

    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// The binary
#[tokio::test]
async fn binary_proxies_curl_logs_each_request_and_stops_on_sigterm() {
    let server = real_server().await;
    let port = server.addr().port().to_string();
    let mut lab = LabProcess::spawn(&[
        "-v",
        "forward",
        "--listen",
        "127.0.0.1:0",
        "--allow-connect-port",
        &port,
    ]);
    let addr = lab.addr_after(SERVER_ON).await;
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let proxy = format!("http://{addr}");
    let url = format!("http://{}/abc", server.addr());

    let plain = curl(&["-x", &proxy, "-H", "Accept: application/json", &url]).await;
    let seen = parse_echo(&stdout_ok(&plain, "curl -x through the binary"));
    assert_eq!(seen.header_values("x-forwarded-for"), ["127.0.0.1"]);
    let tunnelled = curl(&["-p", "-x", &proxy, "-H", "Accept: application/json", &url]).await;
    let seen = parse_echo(&stdout_ok(&tunnelled, "curl -p -x through the binary"));
    assert!(seen.header_values("x-forwarded-for").is_empty());

    // The article's log line, at debug (-v).
    lab.wait_for(&format!("Received request GET {}", server.addr()))
        .await;
    lab.wait_for(&format!("Received request CONNECT {}", server.addr()))
        .await;

    let status = lab.terminate().await;
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{}", lab.log());
    let log = lab.log();
    assert!(!log.contains("OPEN PROXY"), "loopback is not open: {log}");
    assert!(!log.contains("panicked"), "{log}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn binary_warns_loudly_when_it_serves_clients_beyond_loopback() {
    // Listening on loopback (as every test server does); --allow opens it.
    let (mut lab, _) = forward_process(&["--allow", "0.0.0.0/0"]).await;
    let warning = lab.wait_for("OPEN PROXY").await;
    assert!(
        warning.contains("0.0.0.0/0"),
        "names who may use it: {warning}"
    );
    assert!(warning.contains("--allow"), "says how to fix it: {warning}");
    let status = lab.terminate().await;
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{}", lab.log());
}

/// Once a CONNECT tunnel is open its bytes are not HTTP to the forward
/// proxy: its request-head timeout (1 s here) no longer applies to them,
/// only the far server's own (10 s by default).
#[tokio::test]
async fn a_tunnel_is_not_judged_as_http_once_it_is_open() {
    let (_server, target) = realserver_process("127.0.0.1:0", &[]).await;
    let port = target.port().to_string();
    let (_lab, proxy) =
        forward_process(&["--allow-connect-port", &port, "--header-timeout", "1s"]).await;
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // A request trickled through the tunnel over 2 s, longer than the
    // forward proxy's header timeout.
    stream
        .write_all(b"GET /tunneled HTTP/1.1\r\n")
        .await
        .expect("write");
    for i in 0..7 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream
            .write_all(format!("X-Slow-{i}: yes\r\n").as_bytes())
            .await
            .expect("write");
    }
    stream
        .write_all(format!("Host: {target}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("/tunneled"), "{answer}");
}

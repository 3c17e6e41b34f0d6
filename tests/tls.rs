//! HTTPS in the lab (the article's "支持https代理") on real sockets: a real
//! server over TLS with its self-signed certificate, the upstream
//! `Transport` trusting it (or not), and the `lab realserver --tls` binary
//! with curl.
//!
//! Every server listens on 127.0.0.1 port 0 and every wait is bounded; the
//! only timings asserted are timeouts the server is meant to enforce, with
//! wide margins.

use crate::common::STEP;
use crate::common::process::{curl, realserver_process, run_lab, stderr, stdout};
use crate::common::servers::real_server;
use crate::common::wire::exchange_until_close;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use lab::body::Body as UpstreamBody;
use lab::lab_headers::SERVER_HEADER;
use lab::proxy::transport::{Transport, TransportConfig, TransportError};
use lab::realserver::{Config, RunningServer, TextEcho};
use lab::tls::ServerTls;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A real server over TLS on a free port, its certificate written to `dir`.
async fn tls_server(dir: &Path) -> (RunningServer, PathBuf) {
    let cert = dir.join("cert.pem");
    let tls = ServerTls::self_signed(&cert).expect("a self-signed certificate");
    let server = RunningServer::start_with(free_listener().await, Config::default(), Some(tls))
        .expect("a TLS real server starts");
    (server, cert)
}

async fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

fn trusting(cert: &Path) -> TransportConfig {
    TransportConfig {
        upstream_ca: Some(cert.to_path_buf()),
        ..TransportConfig::default()
    }
}

fn transport(config: &TransportConfig) -> Transport {
    Transport::try_new(config).unwrap_or_else(|err| panic!("transport: {err}"))
}

/// What came back from one GET.
#[derive(Debug)]
struct Got {
    status: StatusCode,
    server_header: Option<String>,
    body: String,
}

impl Got {
    fn echo(&self) -> TextEcho {
        TextEcho::parse(&self.body).unwrap_or_else(|| panic!("not an echo: {:?}", self.body))
    }
}

/// GET `url` through `transport` (the Host header set from the URL, as a
/// director would); the whole exchange bounded.
async fn fetch(transport: &Transport, url: &str) -> Result<Got, TransportError> {
    let uri: http::Uri = url.parse().expect("a URL");
    let host = uri.authority().expect("an absolute URL").to_string();
    let body: UpstreamBody = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed();
    let request = Request::get(uri)
        .header(http::header::HOST, host)
        .body(body)
        .expect("a request");
    let exchange = async {
        let response = transport.round_trip(request).await?;
        let status = response.status();
        let server_header = response
            .headers()
            .get(SERVER_HEADER)
            .map(|v| v.to_str().expect("header is text").to_string());
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the whole body")
            .to_bytes();
        Ok(Got {
            status,
            server_header,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(STEP, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {url}: no answer within {STEP:?}"))
}

async fn fetch_ok(transport: &Transport, url: &str) -> Got {
    let got = fetch(transport, url)
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    assert_eq!(got.status, StatusCode::OK, "GET {url}: {}", got.body);
    got
}

// ---------------------------------------------------------------------------
// In process: the real server over TLS and the Transport
// ---------------------------------------------------------------------------

#[tokio::test]
async fn transport_trusting_the_written_pem_reaches_the_tls_real_server() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, cert) = tls_server(dir.path()).await;
    let addr = server.addr();
    let transport = transport(&trusting(&cert));

    let got = fetch_ok(&transport, &format!("https://{addr}/abc?x=1")).await;
    assert_eq!(
        got.server_header.as_deref(),
        Some(addr.to_string().as_str())
    );
    let first = got.echo();
    assert_eq!(first.url, format!("https://{addr}/abc"), "{}", got.body);

    // Keep-alive over TLS: the pool reuses the connection (same client port).
    let second = fetch_ok(&transport, &format!("https://{addr}/again"))
        .await
        .echo();
    assert_eq!(
        first.remote_addr, second.remote_addr,
        "the pooled TLS connection is reused"
    );

    // The certificate names `localhost` too.
    let by_name = fetch_ok(&transport, &format!("https://localhost:{}/n", addr.port())).await;
    assert_eq!(by_name.echo().url, format!("https://{addr}/n"));

    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn transport_without_trust_refuses_and_says_it_is_the_certificate() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, cert) = tls_server(dir.path()).await;
    let url = format!("https://{}/abc", server.addr());

    // No CA at all.
    let err = fetch(&transport(&TransportConfig::default()), &url)
        .await
        .expect_err("an untrusted upstream is refused");
    let TransportError::Tls(detail) = &err else {
        panic!("expected a TLS error, got {err:?}");
    };
    assert!(detail.contains("certificate"), "{detail}");
    assert!(detail.contains("--upstream-ca"), "{detail}");

    // A CA file that holds another certificate (an upstream restarted since).
    let other_dir = tempfile::tempdir().expect("a temp dir");
    let other = other_dir.path().join("other.pem");
    lab::tls::SelfSignedCert::generate()
        .expect("a certificate")
        .write_pem(&other)
        .expect("write it");
    let err = fetch(&transport(&trusting(&other)), &url)
        .await
        .expect_err("a certificate the CA file does not hold is refused");
    let detail = err.to_string();
    assert!(detail.contains("certificate"), "{detail}");
    assert!(detail.contains(&other.display().to_string()), "{detail}");

    // The server is unharmed by the failed handshakes.
    fetch_ok(&transport(&trusting(&cert)), &url).await;
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn insecure_upstream_connects_to_any_certificate() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, _cert) = tls_server(dir.path()).await;
    let config = TransportConfig {
        insecure_upstream: true,
        ..TransportConfig::default()
    };
    let got = fetch_ok(&transport(&config), &format!("https://{}/x", server.addr())).await;
    assert_eq!(got.echo().url, format!("https://{}/x", server.addr()));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_try_new_and_only_https_with_new() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let missing = dir.path().join("missing.pem");
    let config = trusting(&missing);

    let err = Transport::try_new(&config).expect_err("a missing CA file is an error");
    let msg = err.to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("PEM"), "{msg}");

    // `new` cannot fail: plain http:// still works, https:// says why not.
    let transport = Transport::new(&config);
    let server = real_server().await;
    fetch_ok(&transport, &format!("http://{}/plain", server.addr())).await;
    let err = fetch(&transport, &format!("https://{}/tls", server.addr()))
        .await
        .expect_err("https:// is unavailable");
    let detail = err.to_string();
    assert!(
        detail.contains("https:// upstreams are unavailable"),
        "{detail}"
    );
    assert!(detail.contains(&missing.display().to_string()), "{detail}");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn transport_still_reaches_a_plain_http_real_server() {
    let server = real_server().await;
    let addr = server.addr();
    let got = fetch_ok(
        &transport(&TransportConfig::default()),
        &format!("http://{addr}/abc"),
    )
    .await;
    assert_eq!(
        got.server_header.as_deref(),
        Some(addr.to_string().as_str())
    );
    assert_eq!(got.echo().url, format!("http://{addr}/abc"));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn https_to_a_plain_http_server_fails_saying_it_is_not_tls() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (tls, cert) = tls_server(dir.path()).await;
    let server = real_server().await;
    let err = fetch(
        &transport(&trusting(&cert)),
        &format!("https://{}/abc", server.addr()),
    )
    .await
    .expect_err("a plain-HTTP upstream cannot do TLS");
    let detail = err.to_string();
    assert!(detail.contains("did not answer with TLS"), "{detail}");
    assert!(detail.contains("http://"), "{detail}");
    server.shutdown().await.expect("clean shutdown");
    tls.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_fail_cleanly_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, cert) = tls_server(dir.path()).await;
    let addr = server.addr();

    // A plain-HTTP request line: Go's 400, then the connection closes.
    let request = format!("GET /abc HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (received, _) = exchange_until_close(addr, request.as_bytes()).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{text:?}");
    assert!(
        text.contains("Client sent an HTTP request to an HTTPS server."),
        "{text:?}"
    );

    // The same through the Transport with an http:// URL: a clean 400.
    let got = fetch(&transport(&trusting(&cert)), &format!("http://{addr}/abc"))
        .await
        .expect("an answer");
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.body);

    // A broken TLS record, and a client that hangs up at once: closed, no answer.
    let (received, _) =
        exchange_until_close(addr, b"\x16\x03\x01\x00\x05hello, not a ClientHello").await;
    assert!(
        !String::from_utf8_lossy(&received).contains("HTTP/"),
        "{received:?}"
    );
    drop(TcpStream::connect(addr).await.expect("connect"));

    let got = fetch_ok(
        &transport(&trusting(&cert)),
        &format!("https://{addr}/after"),
    )
    .await;
    assert_eq!(got.echo().url, format!("https://{addr}/after"));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn graceful_shutdown_over_tls_answers_the_request_in_flight() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, cert) = tls_server(dir.path()).await;
    let addr = server.addr();
    let transport = transport(&trusting(&cert));

    // A connection that never starts its handshake must not hold shutdown up.
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let in_flight = {
        let transport = transport.clone();
        tokio::spawn(
            async move { fetch(&transport, &format!("https://{addr}/delay?ms=1500")).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the delayed request is running");

    let started = Instant::now();
    tokio::time::timeout(STEP, server.shutdown())
        .await
        .expect("shutdown ends")
        .expect("clean shutdown");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown waited {took:?}: the silent connection held it up"
    );

    let got = in_flight
        .await
        .expect("the request task")
        .expect("the request in flight is answered");
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    got.echo();

    let err = TcpStream::connect(addr)
        .await
        .expect_err("the port is closed after shutdown");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test]
async fn a_client_that_never_handshakes_is_dropped_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, cert) = tls_server(dir.path()).await;
    let addr = server.addr();

    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::new();
    let limit = lab::tls::HANDSHAKE_TIMEOUT + Duration::from_secs(5);
    let read = tokio::time::timeout(limit, silent.read_to_end(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("a silent client was not dropped within {limit:?}"));
    let took = started.elapsed();
    assert!(read.is_ok() || buf.is_empty(), "{read:?}");
    assert!(
        buf.is_empty(),
        "nothing is sent to a silent client: {buf:?}"
    );
    assert!(
        took >= lab::tls::HANDSHAKE_TIMEOUT - Duration::from_secs(1),
        "dropped after {took:?}, before the handshake timeout"
    );

    fetch_ok(
        &transport(&trusting(&cert)),
        &format!("https://{addr}/still"),
    )
    .await;
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn transport_gives_up_on_an_upstream_that_never_finishes_the_handshake() {
    // Accepts TCP connections and never says a word.
    let listener = free_listener().await;
    let addr = listener.local_addr().expect("local address");
    let mute = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    // The connect timeout is long: the handshake's own limit must end it,
    // counted from the moment TCP is up (a defect was to bound the whole
    // connect by both together: 10 s + 500 ms here).
    let config = TransportConfig {
        insecure_upstream: true,
        connect_timeout: Duration::from_secs(10),
        tls_handshake_timeout: Duration::from_millis(500),
        ..TransportConfig::default()
    };
    let started = Instant::now();
    let err = fetch(&transport(&config), &format!("https://{addr}/abc"))
        .await
        .expect_err("a mute upstream is given up on");
    let took = started.elapsed();
    let TransportError::Connect(detail) = &err else {
        panic!("expected a connect error, got {err:?}");
    };
    assert!(
        detail.contains("did not finish the TLS handshake within --tls-handshake-timeout 500ms"),
        "{detail}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "gave up after {took:?}; expected about 0.5 s, the handshake's limit"
    );
    mute.abort();
}

// ---------------------------------------------------------------------------
// The binary: `lab realserver --tls`, with curl
// ---------------------------------------------------------------------------
#[tokio::test]
async fn binary_serves_https_that_curl_trusts_through_the_pem_it_wrote() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cert = dir.path().join("lab-cert.pem");
    let cert_arg = cert.to_str().expect("a UTF-8 temp path");
    let (mut lab, addr) =
        realserver_process("127.0.0.1:0", &["--tls", "--tls-cert-out", cert_arg]).await;
    let url = format!("https://{addr}/abc");
    let hint = lab.wait_for("try: ").await;
    assert!(
        hint.contains(&format!("curl --cacert {cert_arg} {url}")),
        "{hint}"
    );
    let pem = std::fs::read_to_string(&cert).expect("the certificate was written");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(!pem.contains("PRIVATE KEY"), "the key stays in the process");

    // The hint, pasted.
    let trusted = curl(&["--cacert", cert_arg, &url]).await;
    let (status, out, err) = (trusted.status, stdout(&trusted), stderr(&trusted));
    assert!(status.success(), "{status}: {err}");
    let echo = TextEcho::parse(&out).unwrap_or_else(|| panic!("not an echo: {out:?}"));
    assert_eq!(echo.url, url);

    // Without the PEM curl refuses: exit 60, "SSL certificate problem".
    let refused = curl(&[&url]).await;
    let (status, err) = (refused.status, stderr(&refused));
    assert_eq!(status.code(), Some(60), "{status}: {err}");
    assert!(err.contains("certificate"), "{err}");

    // The proxies' Transport, trusting the same file.
    fetch_ok(&transport(&trusting(&cert)), &url).await;

    let status = lab.terminate().await;
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{}", lab.log());
    assert!(!lab.log().contains("panicked"), "{}", lab.log());
}

#[tokio::test]
async fn binary_tls_cert_out_needs_tls() {
    let (status, stderr) = run_lab(&["realserver", "--tls-cert-out", "/tmp/x.pem"]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls"), "{stderr}");
    assert!(!stderr.contains("Starting httpserver"), "{stderr}");
}

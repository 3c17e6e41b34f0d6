//! Lab 03, the forward proxy (正向代理): the article's `Pxy` (in Go,
//! `labs/go/forward`) beside `lab forward`. Both append the client to
//! X-Forwarded-For. The article's code also forwards the headers meant for
//! the proxy (Proxy-Authorization: a credential leak), answers an
//! origin-form request with a bare 502 and CONNECT with its ServeMux's 404,
//! and so cannot tunnel;
//! `lab forward` removes those headers, refuses origin form with 400, chains
//! through a parent proxy and opens CONNECT tunnels the proxy cannot look
//! into.
//!
//! The Go program can neither chain (Go's transport never sends a loopback
//! request through a proxy) nor tunnel, so the two predictions about a chain
//! and a tunnel are answered by `lab forward` even under `--impl go`; its
//! claims are recorded only when `lab`'s programs are checked.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::servers::with_real_servers;
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;
use crate::proxy::forward::{self, ForwardConfig, ParentProxy};
use crate::realserver::EchoReport;
use crate::server::Background;

/// The client's credential for the proxy, as curl -U sends it (foo:bar).
const PROXY_AUTHORIZATION: &str = "Basic Zm9vOmJhcg==";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn start_forward(config: ForwardConfig) -> anyhow::Result<Background> {
    Background::spawn_on_free_port(|listener, shutdown| forward::serve(listener, config, shutdown))
        .await
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    f.measure_on(Subject::Lab);
    lab_forward(f, server).await?;
    if let Some(go) = f.start_go("forward", &["--listen", "127.0.0.1:0"]).await? {
        f.measure_on(Subject::Go);
        let result = article_pxy(f, server, go.addr()).await;
        go.shutdown().await?;
        f.measure_on(Subject::Lab);
        result?;
    }
    Ok(())
}

/// `lab forward`: two of them, B reaching the server and A sending
/// everything through B. CONNECT to the real server's port is allowed on
/// both. Without `lab`'s programs in the check (`--impl go`), only the
/// predictions are answered here.
async fn lab_forward(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let config = ForwardConfig::default().allow_connect_port(server.port());
    let b = start_forward(config.clone()).await?;
    let parent: ParentProxy = format!("http://{}", b.addr())
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let a = start_forward(config.clone().parent_proxy(parent)).await?;
    f.step(format!(
        "started two `lab forward` proxies: B on {} and A on {} (A sends everything through B){}",
        b.addr(),
        a.addr(),
        if f.lab {
            ""
        } else {
            ", to answer the predictions: the article's Pxy can neither chain nor tunnel"
        }
    ));
    let result = lab_forward_probes(f, server, a.addr(), b.addr()).await;
    a.shutdown().await?;
    b.shutdown().await?;
    result
}

async fn lab_forward_probes(
    f: &mut Findings,
    server: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
) -> anyhow::Result<()> {
    // Claims are `lab`'s only when `lab` is checked; the predictions always.
    let record = f.lab;
    if record {
        one_proxy(f, server, b).await?;
    }

    let two = echo_through(server, a, &[("X-Forwarded-For", "1.2.3.4")]).await?;
    let xff_two = xff(&two);
    f.step(format!(
        "GET http://{server}/abc with X-Forwarded-For: 1.2.3.4 through A then B → X-Forwarded-For: {xff_two}; Via: {}",
        two.header_values("via").join(", ")
    ));
    if record {
        f.claim_eq(
            "xff-grows-hop-by-hop",
            "1.2.3.4, 127.0.0.1, 127.0.0.1",
            &xff_two,
            "each proxy appends the address it received the request from: A appends the client's, B appends A's (all 127.0.0.1 on loopback)",
        );
    }
    f.observe(
        "xff-after-two-proxies",
        &xff_two,
        "the client's own value, then one entry per proxy: `client, proxy1, proxy2` read from the left",
    );

    if record {
        let origin = Probe::get("/abc").send(b).await?;
        f.step(format!(
            "GET /abc (origin form, as to a web server) to B → {}",
            origin.status
        ));
        f.claim_eq(
            "origin-form-refused",
            StatusCode::BAD_REQUEST,
            origin.status,
            "a forward proxy needs to know where to go: clients send it the whole URL (curl -x does). `/abc` names no server: lab forward says so with a 400 and a sentence",
        );
    }

    // CONNECT: a tunnel, then plain HTTP inside it.
    let tunnel = connect(b, &server.to_string()).await?;
    let inside = Probe::get("/abc")
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .send_on(tunnel, server)
        .await?
        .json_echo()?;
    let xff_inside = xff(&inside);
    f.step(format!(
        "CONNECT {server} through B → 200, then GET /abc with X-Forwarded-For: 1.2.3.4 inside the tunnel → the real server saw X-Forwarded-For: {xff_inside}, RemoteAddr {}",
        inside.remote_addr
    ));
    if record {
        f.claim_eq(
            "tunnel-is-opaque",
            "1.2.3.4",
            &xff_inside,
            "after CONNECT the proxy only copies bytes: it cannot add headers to what it does not parse (with HTTPS it could not even read them)",
        );
    }
    f.observe(
        "xff-inside-tunnel",
        &xff_inside,
        "inside a CONNECT tunnel the proxy adds nothing: the server sees the client's own header",
    );

    if record {
        let refused = connect_status(b, "127.0.0.1:25").await?;
        f.step(format!(
            "CONNECT 127.0.0.1:25 (a mail port) through B → {refused}"
        ));
        f.claim_eq(
            "connect-limited-to-allowed-ports",
            "HTTP/1.1 403 Forbidden",
            &refused,
            "an open CONNECT proxy would relay any TCP protocol (spam, SSH); like Squid, the lab allows 443 and its own ports unless told otherwise",
        );
    }
    Ok(())
}

/// One `lab forward` (B): X-Forwarded-For, the proxy's own headers, the
/// client's Accept-Encoding, and two X-Forwarded-For lines.
async fn one_proxy(f: &mut Findings, server: SocketAddr, b: SocketAddr) -> anyhow::Result<()> {
    let one = echo_through(server, b, &with_proxy_headers()).await?;
    let xff_one = xff(&one);
    f.step(format!(
        "GET http://{server}/abc (absolute form) through B with X-Forwarded-For: 1.2.3.4, Proxy-Connection and Proxy-Authorization → the real server saw X-Forwarded-For: {xff_one}; {}; Accept-Encoding: {}",
        proxy_headers_seen(&one),
        accept_encoding(&one)
    ));
    f.claim_eq(
        "xff-appended-by-forward-proxy",
        "1.2.3.4, 127.0.0.1",
        &xff_one,
        "the article's forward proxy: strings.Join(prior, \",\") + \", \" + clientIp: what came before, then the address this proxy saw",
    );
    f.claim_eq(
        "proxy-headers-removed",
        "neither Proxy-Connection nor Proxy-Authorization",
        proxy_headers_seen(&one),
        "Proxy-Authorization is the client's credential for this proxy and Proxy-Connection its connection wish: both are hop-by-hop (RFC 9110 §7.6.1) and must not travel on",
    );
    f.claim_lab_choice(
        "transport-asks-for-gzip",
        "none",
        accept_encoding(&one),
        "lab forward passes the client's request as it came: a client that sent no Accept-Encoding gets an answer that is not compressed, with nothing to undo (docs/go-differences.md)",
    );

    let lines = echo_through(server, b, &two_xff_lines()).await?;
    let joined = xff(&lines);
    f.step(format!(
        "GET http://{server}/abc through B with two lines X-Forwarded-For: 1.1.1.1 and X-Forwarded-For: 2.2.2.2 → X-Forwarded-For: {joined}"
    ));
    f.claim_lab_choice(
        "pxy-joins-lines-without-space",
        "1.1.1.1, 2.2.2.2, 127.0.0.1",
        &joined,
        "lab forward joins every entry with \", \", the list format (and Go's ReverseProxy's strings.Join(prior, \", \")), so the list splits the same way whoever wrote it",
    );
    Ok(())
}

/// The article's `Pxy` in Go: the same probes, and what its bugs do.
async fn article_pxy(f: &mut Findings, server: SocketAddr, pxy: SocketAddr) -> anyhow::Result<()> {
    let one = echo_through(server, pxy, &with_proxy_headers()).await?;
    let xff_one = xff(&one);
    f.step(format!(
        "GET http://{server}/abc (absolute form) through Pxy with X-Forwarded-For: 1.2.3.4, Proxy-Connection and Proxy-Authorization → the real server saw X-Forwarded-For: {xff_one}; {}; Accept-Encoding: {}",
        proxy_headers_seen(&one),
        accept_encoding(&one)
    ));
    f.claim_eq(
        "xff-appended-by-forward-proxy",
        "1.2.3.4, 127.0.0.1",
        &xff_one,
        "the article's forward proxy: strings.Join(prior, \",\") + \", \" + clientIp: what came before, then the address this proxy saw",
    );
    f.claim_eq(
        "pxy-leaks-proxy-headers",
        format!("leaked: Proxy-Connection, Proxy-Authorization: {PROXY_AUTHORIZATION}"),
        proxy_headers_seen(&one),
        "*outReq = *req copies every header, and nothing removes the hop-by-hop ones: the client's password for the proxy goes on to the real server, and to every site the client visits",
    );
    f.claim_eq(
        "transport-asks-for-gzip",
        "gzip",
        accept_encoding(&one),
        "Go's Transport asks for gzip when the request names no Accept-Encoding, and un-gzips the answer itself before Pxy copies it back (DisableCompression turns this off)",
    );

    let lines = echo_through(server, pxy, &two_xff_lines()).await?;
    let joined = xff(&lines);
    f.step(format!(
        "GET http://{server}/abc through Pxy with two lines X-Forwarded-For: 1.1.1.1 and X-Forwarded-For: 2.2.2.2 → X-Forwarded-For: {joined}"
    ));
    f.claim_eq(
        "pxy-joins-lines-without-space",
        "1.1.1.1,2.2.2.2, 127.0.0.1",
        &joined,
        "strings.Join(prior, \",\") + \", \" + clientIp: the earlier lines are joined with a bare comma, the new address with a comma and a space",
    );

    let origin = Probe::get("/abc").send(pxy).await?;
    f.step(format!(
        "GET /abc (origin form) to Pxy → {} with {} body byte(s)",
        origin.status,
        origin.body.len()
    ));
    f.claim_eq(
        "pxy-origin-form-502",
        "502 Bad Gateway, empty body",
        format!(
            "{}{}",
            origin.status,
            if origin.body.is_empty() {
                ", empty body".to_string()
            } else {
                format!(", body {:?}", origin.text())
            }
        ),
        "req.URL of an origin-form request has no scheme and no host: RoundTrip fails (unsupported protocol scheme \"\") and Pxy drops the error and writes a bare 502",
    );

    let connect = connect_status(pxy, &server.to_string()).await?;
    f.step(format!("CONNECT {server} to Pxy → {connect}"));
    f.claim_eq(
        "pxy-cannot-tunnel",
        "HTTP/1.1 404 Not Found",
        &connect,
        "the article registers Pxy on a ServeMux (http.Handle(\"/\", &Pxy{})); a CONNECT request has no path, no pattern matches, and the mux answers 404 page not found before Pxy sees it. Pxy has no tunnel code either: HTTPS through it is impossible",
    );
    Ok(())
}

/// The probe of the first request: the proxy's own headers and an
/// X-Forwarded-For.
fn with_proxy_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("X-Forwarded-For", "1.2.3.4"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", PROXY_AUTHORIZATION),
    ]
}

fn two_xff_lines() -> Vec<(&'static str, &'static str)> {
    vec![
        ("X-Forwarded-For", "1.1.1.1"),
        ("X-Forwarded-For", "2.2.2.2"),
    ]
}

/// GET `http://SERVER/abc` in absolute form through the forward proxy at
/// `proxy`, with `headers`; the real server's JSON echo.
async fn echo_through(
    server: SocketAddr,
    proxy: SocketAddr,
    headers: &[(&str, &str)],
) -> anyhow::Result<EchoReport> {
    let mut probe =
        Probe::get(&format!("http://{server}/abc")).header("Accept", "application/json");
    for (name, value) in headers {
        probe = probe.header(name, value);
    }
    probe.send(proxy).await?.json_echo()
}

fn xff(echo: &EchoReport) -> String {
    echo.header_values("x-forwarded-for").join(" | ")
}

fn accept_encoding(echo: &EchoReport) -> String {
    let values = echo.header_values("accept-encoding");
    if values.is_empty() {
        "none".into()
    } else {
        values.join(", ")
    }
}

/// Which of the proxy's own headers reached the real server.
fn proxy_headers_seen(echo: &EchoReport) -> String {
    let mut leaked = Vec::new();
    if !echo.header_values("proxy-connection").is_empty() {
        leaked.push("Proxy-Connection".to_string());
    }
    if let Some(credential) = echo.header_values("proxy-authorization").first() {
        leaked.push(format!("Proxy-Authorization: {credential}"));
    }
    if leaked.is_empty() {
        "neither Proxy-Connection nor Proxy-Authorization".into()
    } else {
        format!("leaked: {}", leaked.join(", "))
    }
}

/// Opens a CONNECT tunnel to `target` through the proxy at `proxy`.
async fn connect(proxy: SocketAddr, target: &str) -> anyhow::Result<TcpStream> {
    let (stream, status) = send_connect(proxy, target).await?;
    if !status.contains(" 200") {
        bail!("CONNECT {target} through {proxy} answered {status}");
    }
    Ok(stream)
}

/// The status line a CONNECT gets.
async fn connect_status(proxy: SocketAddr, target: &str) -> anyhow::Result<String> {
    Ok(send_connect(proxy, target).await?.1)
}

async fn send_connect(proxy: SocketAddr, target: &str) -> anyhow::Result<(TcpStream, String)> {
    let mut stream = TcpStream::connect(proxy).await?;
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await?;
    // Read the response head byte by byte, so no tunnel byte is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut byte))
            .await
            .context("no answer to CONNECT")??;
        if n == 0 {
            bail!("the proxy closed the connection after CONNECT {target}");
        }
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Ok((stream, status))
}

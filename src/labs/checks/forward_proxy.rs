//! Lab 03, the forward proxy (正向代理): absolute-form requests, X-Forwarded-For
//! growing hop by hop through two proxies, proxy headers removed, and CONNECT
//! tunnels that the proxy cannot look into.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::servers::with_real_servers;
use crate::labs::findings::Findings;
use crate::probe::Probe;
use crate::proxy::forward::{self, ForwardConfig, ParentProxy};
use crate::server::Background;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn start_forward(config: ForwardConfig) -> anyhow::Result<Background> {
    Background::spawn_on_free_port(|listener, shutdown| forward::serve(listener, config, shutdown))
        .await
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    // B reaches the server; A sends everything through B. CONNECT to the
    // real server's port is allowed on both.
    let config = ForwardConfig::default().allow_connect_port(server.port());
    let b = start_forward(config.clone()).await?;
    let parent: ParentProxy = format!("http://{}", b.addr())
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let a = start_forward(config.clone().parent_proxy(parent)).await?;
    f.step(format!(
        "started two `lab forward` proxies: B on {} and A on {} (A sends everything through B)",
        b.addr(),
        a.addr()
    ));
    let result = observe(f, server, a.addr(), b.addr()).await;
    a.shutdown().await?;
    b.shutdown().await?;
    result
}

async fn observe(
    f: &mut Findings,
    server: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
) -> anyhow::Result<()> {
    let url = format!("http://{server}/abc");
    let one = Probe::get(&url)
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .header("Proxy-Connection", "keep-alive")
        .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
        .send(b)
        .await?
        .json_echo()?;
    let xff_one = one.header_values("x-forwarded-for").join(" | ");
    f.step(format!(
        "GET {url} (absolute form) through B with X-Forwarded-For: 1.2.3.4, Proxy-Connection and Proxy-Authorization → the real server saw X-Forwarded-For: {xff_one}"
    ));
    f.claim_eq(
        "xff-appended-by-forward-proxy",
        "1.2.3.4, 127.0.0.1",
        &xff_one,
        "the article's forward proxy: strings.Join(prior, \",\") + \", \" + clientIp: what came before, then the address this proxy saw",
    );
    let leaked: Vec<&str> = ["proxy-connection", "proxy-authorization"]
        .into_iter()
        .filter(|name| !one.header_values(name).is_empty())
        .collect();
    f.claim_eq(
        "proxy-headers-removed",
        "neither proxy-connection nor proxy-authorization",
        if leaked.is_empty() {
            "neither proxy-connection nor proxy-authorization".to_string()
        } else {
            format!("leaked: {}", leaked.join(", "))
        },
        "Proxy-Authorization is the client's credential for this proxy and Proxy-Connection its connection wish: both are hop-by-hop and must not travel on",
    );

    let two = Probe::get(&url)
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .send(a)
        .await?
        .json_echo()?;
    let xff_two = two.header_values("x-forwarded-for").join(" | ");
    f.step(format!(
        "the same through A then B → X-Forwarded-For: {xff_two}; Via: {}",
        two.header_values("via").join(", ")
    ));
    f.claim_eq(
        "xff-grows-hop-by-hop",
        "1.2.3.4, 127.0.0.1, 127.0.0.1",
        &xff_two,
        "each proxy appends the address it received the request from: A appends the client's, B appends A's (all 127.0.0.1 on loopback)",
    );
    f.observe(
        "xff-after-two-proxies",
        &xff_two,
        "the client's own value, then one entry per proxy: `client, proxy1, proxy2` read from the left",
    );

    let origin = Probe::get("/abc").send(b).await?;
    f.step(format!(
        "GET /abc (origin form, as to a web server) to B → {}",
        origin.status
    ));
    f.claim_eq(
        "origin-form-refused",
        StatusCode::BAD_REQUEST,
        origin.status,
        "a forward proxy needs to know where to go: clients send it the whole URL (curl -x does). `/abc` names no server",
    );

    // CONNECT: a tunnel, then plain HTTP inside it.
    let tunnel = connect(b, &server.to_string()).await?;
    let inside = Probe::get("/abc")
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .send_on(tunnel, server)
        .await?
        .json_echo()?;
    let xff_inside = inside.header_values("x-forwarded-for").join(" | ");
    f.step(format!(
        "CONNECT {server} through B → 200, then GET /abc with X-Forwarded-For: 1.2.3.4 inside the tunnel → the real server saw X-Forwarded-For: {xff_inside}, RemoteAddr {}",
        inside.remote_addr
    ));
    f.claim_eq(
        "tunnel-is-opaque",
        "1.2.3.4",
        &xff_inside,
        "after CONNECT the proxy only copies bytes: it cannot add headers to what it does not parse (with HTTPS it could not even read them)",
    );
    f.observe(
        "xff-inside-tunnel",
        &xff_inside,
        "inside a CONNECT tunnel the proxy adds nothing: the server sees the client's own header",
    );

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
    Ok(())
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

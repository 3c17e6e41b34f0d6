//! Exercise 2, the forward proxy (正向代理) done right: lab 03's probes
//! through the learner's proxy to one real server. Requests go in absolute
//! form (`GET http://SERVER/abc`), as a client configured to use a proxy
//! sends them; the real server's JSON echo says what arrived. Then a
//! `CONNECT` tunnel, spoken on a raw socket, with plain HTTP inside it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exercises::session::{ANSWER_TIMEOUT, Session, header_values};
use crate::probe::Probe;
use crate::realserver::EchoReport;

/// The client's credential for the proxy, as `curl -U foo:bar` sends it.
const PROXY_AUTHORIZATION: &str = "Basic Zm9vOmJhcg==";

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let server = s.upstreams[0];

        let echo = s.echo_of(&absolute(server, "/abc?x=1")).await;
        s.point(
            "forwards",
            format!("GET http://{server}/abc?x=1 (absolute form) reaches the real server as /abc?x=1").as_str(),
            "200 /abc?x=1",
            echo.as_ref().map_or_else(Clone::clone, |e| format!("200 {}", e.uri)),
        );

        let status = s
            .answer_of(&absolute(server, "/base/error"))
            .await
            .trim_end()
            .to_string();
        s.point(
            "status-kept",
            "the real server's 500 for /base/error reaches the client as 500",
            "500 error handler",
            status,
        );

        let probe = absolute(server, "/abc")
            .header("X-Forwarded-For", "1.1.1.1")
            .header("X-Forwarded-For", "2.2.2.2");
        let echo = s.echo_of(&probe).await;
        s.point(
            "xff-appended",
            "two lines X-Forwarded-For: 1.1.1.1 and 2.2.2.2 arrive as one list, the client's IP appended",
            "1.1.1.1, 2.2.2.2, 127.0.0.1",
            echo.as_ref()
                .map_or_else(Clone::clone, |e| header_values(e, "x-forwarded-for")),
        );

        let probe = absolute(server, "/abc")
            .header("Proxy-Connection", "keep-alive")
            .header("Proxy-Authorization", PROXY_AUTHORIZATION);
        let echo = s.echo_of(&probe).await;
        s.point(
            "proxy-headers-dropped",
            "Proxy-Connection and Proxy-Authorization (the client's password for the proxy) never reach the real server",
            "none",
            echo.as_ref().map_or_else(Clone::clone, proxy_headers_seen),
        );

        let tunnelled = match tunnel_to(s.addr, server).await {
            Ok(echo) => format!("200, then {} from the real server", echo.uri),
            Err(why) => format!("{why:#}"),
        };
        s.point(
            "connect-tunnel",
            format!("CONNECT {server} answers 200, then GET /abc inside the tunnel reaches the real server").as_str(),
            "200, then /abc from the real server",
            tunnelled,
        );
        Ok(())
    }
    .boxed()
}

/// A GET for `path` on `server`, in absolute form: the URL names the
/// server, the connection goes to the proxy.
fn absolute(server: SocketAddr, path: &str) -> Probe {
    Probe::get(&format!("http://{server}{path}"))
}

/// Which of the proxy's own headers reached the real server: `none`, or
/// the leaked lines.
fn proxy_headers_seen(echo: &EchoReport) -> String {
    let leaked: Vec<String> = ["proxy-connection", "proxy-authorization"]
        .into_iter()
        .flat_map(|name| {
            echo.header_values(name)
                .into_iter()
                .map(move |value| format!("{name}: {value}"))
        })
        .collect();
    if leaked.is_empty() {
        "none".into()
    } else {
        format!("leaked {}", leaked.join(", "))
    }
}

/// CONNECT `server` through the proxy at `proxy`, then GET /abc inside
/// the tunnel: the real server's echo.
async fn tunnel_to(proxy: SocketAddr, server: SocketAddr) -> anyhow::Result<EchoReport> {
    let mut stream = TcpStream::connect(proxy)
        .await
        .with_context(|| format!("cannot connect to {proxy}"))?;
    stream
        .write_all(format!("CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n\r\n").as_bytes())
        .await?;
    let status = tokio::time::timeout(ANSWER_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| anyhow::anyhow!("no answer to CONNECT within {ANSWER_TIMEOUT:?}"))??;
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        bail!("CONNECT answered {status}");
    }
    let answer = tokio::time::timeout(
        ANSWER_TIMEOUT + Duration::from_secs(1),
        Probe::get("/abc")
            .header("Accept", "application/json")
            .send_on(stream, server),
    )
    .await
    .map_err(|_| anyhow::anyhow!("200, then no answer inside the tunnel"))?
    .context("200, then nothing through the tunnel")?;
    answer.json_echo().map_err(|_| {
        anyhow::anyhow!(
            "200, then {} {} inside the tunnel (not the real server's echo)",
            answer.status.as_u16(),
            answer.text()
        )
    })
}

/// The status line of a response head, read byte by byte so that no byte
/// of the tunnel after it is consumed.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            bail!("the proxy closed the connection after CONNECT");
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    Ok(head.lines().next().unwrap_or("").to_string())
}

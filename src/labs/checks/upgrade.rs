//! Lab 09, Upgrade and WebSocket through the proxy: a real WebSocket client
//! talks to the real server's echo through `lab proxy` and through Go's
//! ReverseProxy (`labs/go/singlehost`); an invalid Upgrade token is refused
//! before anything reaches the upstream (Go: its ErrorHandler's 502; `lab
//! proxy`: 400, lab's choice).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::fronts::{Front, subjects};
use super::servers::{upstream_url, with_real_servers};
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let mut result = Ok(());
    for subject in subjects(f) {
        f.measure_on(subject);
        result = on_one_program(f, server).await;
        if result.is_err() {
            break;
        }
    }
    f.measure_on(Subject::Lab);
    result
}

/// The probes, through the proxy of the program measured now.
async fn on_one_program(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let upstream = upstream_url(server);
    if let Some(proxy) = Front::start(
        f,
        &["--upstream", &upstream],
        "singlehost",
        &["--target", &upstream],
    )
    .await?
    {
        let result = websocket(f, proxy.addr()).await;
        proxy.shutdown().await?;
        result?;
    }
    invalid_upgrade(f).await
}

async fn websocket(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<()> {
    let url = format!("ws://{proxy}/ws");
    let (mut ws, handshake) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("WebSocket handshake with {url} failed"))?;
    let upgrade = handshake
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    ws.send(Message::text("你好, proxy")).await?;
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).await?;
    let text = describe(&ws.next().await.context("no echo")??);
    let binary = describe(&ws.next().await.context("no echo")??);
    ws.close(None).await?;
    f.step(format!(
        "a WebSocket client connected to {url}: {} with Upgrade: {upgrade}; sent a text and a binary message, got back {text} and {binary}",
        handshake.status()
    ));
    f.observe(
        "handshake-status",
        handshake.status().as_u16(),
        "the upstream's 101 Switching Protocols is passed to the client; after it, the proxy only copies bytes",
    );
    f.claim_eq(
        "websocket-through-proxy",
        "101; Upgrade: websocket; echoes: text \"你好, proxy\", binary [0, 1, 2, 255]",
        format!(
            "{}; Upgrade: {upgrade}; echoes: {text}, {binary}",
            handshake.status().as_u16()
        ),
        "Connection: Upgrade and Upgrade are hop-by-hop but restored for an upgrade (step 5); on the 101 the proxy splices the two connections (step 8, handleUpgradeResponse)",
    );

    if f.subject() == Subject::Lab {
        let plain = Probe::get("/ws").send(proxy).await?;
        f.step(format!("a plain GET /ws (no Upgrade) → {}", plain.status));
        f.claim_eq(
            "no-upgrade-no-websocket",
            StatusCode::UPGRADE_REQUIRED,
            plain.status,
            "without Connection: Upgrade the request is ordinary HTTP: the real server answers 426 Upgrade Required",
        );
    }
    Ok(())
}

/// An Upgrade token with a byte outside printable ASCII, through a proxy to
/// an upstream that counts its connections: refused, and not forwarded.
async fn invalid_upgrade(f: &mut Findings) -> anyhow::Result<()> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}", upstream.local_addr()?);
    let Some(proxy) = Front::start(
        f,
        &["--upstream", &upstream_url],
        "singlehost",
        &["--target", &upstream_url],
    )
    .await?
    else {
        return Ok(());
    };
    let result = refused(proxy.addr(), &upstream).await;
    proxy.shutdown().await?;
    let (status_line, reached) = result?;
    let reached = if reached {
        "the upstream got a connection"
    } else {
        "nothing reached the upstream"
    };
    f.step(format!(
        "sent Upgrade: café (not printable ASCII) → {status_line}; {reached}"
    ));
    let actual = format!("{status_line}; {reached}");
    match f.subject() {
        Subject::Go => f.claim_eq(
            "invalid-upgrade-refused",
            "HTTP/1.1 502 Bad Gateway; nothing reached the upstream",
            actual,
            "step 5: `if !ascii.IsPrint(reqUpType)` calls the ErrorHandler with \"client tried to switch to invalid protocol\", before the round trip; the default ErrorHandler answers 502 to every error",
        ),
        Subject::Lab => f.claim_lab_choice(
            "invalid-upgrade-refused",
            "HTTP/1.1 400 Bad Request; nothing reached the upstream",
            actual,
            "lab proxy answers 400 Bad Request: the client sent a request no upstream could accept, and a 502 would blame the upstream, which never saw it; `lab proxy --like-go` answers Go's 502 (docs/go-differences.md)",
        ),
    }
    Ok(())
}

/// Sends the invalid upgrade to `proxy`; returns the status line and whether
/// `upstream` got a connection meanwhile.
async fn refused(proxy: SocketAddr, upstream: &TcpListener) -> anyhow::Result<(String, bool)> {
    let mut raw = TcpStream::connect(proxy).await?;
    raw.write_all(
        b"GET /ws HTTP/1.1\r\nHost: lab\r\nConnection: upgrade\r\nUpgrade: caf\xc3\xa9\r\n\r\n",
    )
    .await?;
    let mut answer = vec![0u8; 512];
    // The upstream never answers: a proxy that forwarded the request has
    // nothing to say within the 2 s.
    let status_line =
        match tokio::time::timeout(Duration::from_secs(2), raw.read(&mut answer)).await {
            Ok(read) => {
                let n = read.context("reading the answer to an invalid Upgrade")?;
                String::from_utf8_lossy(&answer[..n])
                    .lines()
                    .next()
                    .unwrap_or("(the connection closed unanswered)")
                    .to_string()
            }
            Err(_) => "(no answer within 2 s)".to_string(),
        };
    // Had the proxy forwarded anything, the connection would be waiting to
    // be accepted by now.
    let reached = tokio::time::timeout(Duration::from_millis(200), upstream.accept())
        .await
        .is_ok();
    Ok((status_line, reached))
}

/// A message as the sheet writes it: `text "…"` or `binary [..]`.
fn describe(message: &Message) -> String {
    match message {
        Message::Text(text) => format!("text {:?}", text.as_str()),
        Message::Binary(bytes) => format!("binary {:?}", bytes.as_ref()),
        other => format!("{other:?}"),
    }
}

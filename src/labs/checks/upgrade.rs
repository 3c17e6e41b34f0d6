//! Lab 08, Upgrade and WebSocket through the proxy: a real WebSocket client
//! talks to the real server's echo through `lab proxy`; an invalid Upgrade
//! token is refused.

use std::net::SocketAddr;

use anyhow::Context;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::servers::{proxy_in_front, with_real_servers};
use crate::labs::findings::Findings;
use crate::probe::Probe;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let proxy = proxy_in_front(f, server).await?;
    let result = observe(f, proxy.addr()).await;
    proxy.shutdown().await?;
    result
}

async fn observe(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<()> {
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

    let plain = Probe::get("/ws").send(proxy).await?;
    f.step(format!("a plain GET /ws (no Upgrade) → {}", plain.status));
    f.claim_eq(
        "no-upgrade-no-websocket",
        StatusCode::UPGRADE_REQUIRED,
        plain.status,
        "without Connection: Upgrade the request is ordinary HTTP: the real server answers 426 Upgrade Required",
    );

    // An Upgrade token with a byte outside printable ASCII: Go refuses it.
    let mut raw = TcpStream::connect(proxy).await?;
    raw.write_all(
        b"GET /ws HTTP/1.1\r\nHost: lab\r\nConnection: upgrade\r\nUpgrade: caf\xc3\xa9\r\n\r\n",
    )
    .await?;
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), raw.read(&mut answer))
        .await
        .context("no answer to an invalid Upgrade")??;
    let status_line = String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    f.step(format!(
        "sent Upgrade: café (not printable ASCII) → {status_line}"
    ));
    f.claim_eq(
        "invalid-upgrade-refused",
        "HTTP/1.1 400 Bad Request",
        &status_line,
        "Go: `if !ascii.IsPrint(reqUpType)` → \"client tried to switch to invalid protocol\"; such a token cannot name a protocol",
    );
    Ok(())
}

/// A message as the sheet writes it: `text "…"` or `binary [..]`.
fn describe(message: &Message) -> String {
    match message {
        Message::Text(text) => format!("text {:?}", text.as_str()),
        Message::Binary(bytes) => format!("binary {:?}", bytes.as_ref()),
        other => format!("{other:?}"),
    }
}

//! Lab 07, inside ServeHTTP: hop-by-hop headers removed both ways, `TE:
//! trailers` and trailers passed through, a stream forwarded as it comes, and
//! a client that leaves cancelling the upstream request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::servers::{proxy_in_front, with_real_servers};
use crate::cli::launch::RunningProxy;
use crate::labs::findings::Findings;
use crate::probe::Probe;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let proxy = proxy_in_front(f, server).await?;
    let result = async {
        hop_by_hop(f, proxy.addr()).await?;
        trailers_and_streaming(f, proxy.addr()).await?;
        client_abort(f).await
    }
    .await;
    proxy.shutdown().await?;
    result
}

async fn hop_by_hop(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<()> {
    let seen = Probe::get("/abc")
        .header("Accept", "application/json")
        .header("Connection", "X-Foo")
        .header("X-Foo", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
        .header("TE", "trailers")
        .send(proxy)
        .await?
        .json_echo()?;
    let hop = ["connection", "x-foo", "keep-alive", "proxy-authorization"];
    let arrived: Vec<&str> = hop
        .iter()
        .copied()
        .filter(|name| !seen.header_values(name).is_empty())
        .collect();
    f.step(format!(
        "sent Connection: X-Foo, X-Foo, Keep-Alive, Proxy-Authorization and TE: trailers; the real server got: {}",
        seen.headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    f.claim_eq(
        "request-hop-headers-removed",
        "none of connection, x-foo, keep-alive, proxy-authorization",
        if arrived.is_empty() {
            "none of connection, x-foo, keep-alive, proxy-authorization".to_string()
        } else {
            format!("arrived: {}", arrived.join(", "))
        },
        "hop-by-hop headers describe the client's connection to the proxy (RFC 9110 §7.6.1); X-Foo became one by being named in Connection",
    );
    f.observe(
        "x-foo-arrives",
        if seen.header_values("x-foo").is_empty() {
            "no"
        } else {
            "yes"
        },
        "Connection: X-Foo marks X-Foo as hop-by-hop, so removeConnectionHeaders drops it",
    );
    f.claim_eq(
        "te-trailers-kept",
        "trailers",
        seen.header_values("te").join(","),
        "TE is hop-by-hop, but `trailers` is restored: the upstream must know the client accepts trailers",
    );

    let answer = Probe::get("/hop-headers").send(proxy).await?;
    let leaked: Vec<&str> = ["x-hop", "keep-alive", "connection"]
        .into_iter()
        .filter(|name| answer.headers.contains_key(*name))
        .collect();
    f.step(format!(
        "GET /hop-headers (the real server answers with Connection: X-Hop, X-Hop, Keep-Alive) → the client got headers: {}",
        answer.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    ));
    f.claim_eq(
        "response-hop-headers-removed",
        "no connection, x-hop, keep-alive",
        if leaked.is_empty() {
            "no connection, x-hop, keep-alive".to_string()
        } else {
            format!("leaked: {}", leaked.join(", "))
        },
        "step 9 removes the upstream hop's headers from the response, Connection-named ones included",
    );
    Ok(())
}

async fn trailers_and_streaming(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<()> {
    let streamed = Probe::get("/stream?n=3&ms=400")
        .header("TE", "trailers")
        .send(proxy)
        .await?;
    let trailer = streamed
        .trailers
        .as_ref()
        .and_then(|t| t.get(crate::lab_headers::CHUNKS_TRAILER))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    let first = streamed.first_data_after.unwrap_or(streamed.elapsed);
    f.step(format!(
        "GET /stream?n=3&ms=400 with TE: trailers: first chunk after {} ms, all after {} ms, trailer X-Lab-Chunks: {trailer}",
        first.as_millis(),
        streamed.elapsed.as_millis()
    ));
    f.claim_eq(
        "trailers-pass-through",
        "3",
        &trailer,
        "the proxy announces the upstream's Trailer header again (step 11) and forwards the trailer after the last chunk",
    );
    f.observe(
        "trailer-arrives",
        if trailer == "3" { "yes" } else { "no" },
        "the trailer follows the last chunk, through the proxy",
    );
    // The upstream spaces chunks 400 ms apart: 800 ms from first to last.
    f.claim(
        "stream-forwarded-as-it-comes",
        first < Duration::from_millis(600) && streamed.elapsed >= Duration::from_millis(750),
        "the first chunk long before the last (< 600 ms vs ≥ 800 ms)",
        format!(
            "first after {} ms, last after {} ms",
            first.as_millis(),
            streamed.elapsed.as_millis()
        ),
        "a response of unknown length is flushed as it arrives (Go: flushInterval -1 for such bodies); buffering it would hold the first chunk until the end",
    );
    Ok(())
}

async fn client_abort(f: &mut Findings) -> anyhow::Result<()> {
    // An upstream that reads the request and never answers, reporting when
    // its connection closes.
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    let proxy = RunningProxy::start(&["--upstream", &format!("http://{upstream_addr}")]).await?;

    let mut client = TcpStream::connect(proxy.addr()).await?;
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: lab\r\n\r\n")
        .await?;
    let (mut held, _) = tokio::time::timeout(Duration::from_secs(5), upstream.accept())
        .await
        .context("the request never reached the upstream")??;
    let mut head = [0u8; 1024];
    let _ = held.read(&mut head).await?;

    let left = Instant::now();
    drop(client);
    let mut rest = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), held.read(&mut rest)).await;
    let after = left.elapsed();
    proxy.shutdown().await?;
    f.step(format!(
        "a client sent GET /slow to an upstream that never answers, then hung up: the upstream's connection {}",
        match &closed {
            Ok(_) => format!("closed {} ms later", after.as_millis()),
            Err(_) => "stayed open for 5 s".to_string(),
        }
    ));
    f.claim(
        "client-abort-cancels-upstream",
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the upstream connection closes when the client leaves",
        match &closed {
            Ok(_) => format!("closed after {} ms", after.as_millis()),
            Err(_) => "still open after 5 s".to_string(),
        },
        "step 1: Go cancels the outgoing request when the client goes away; here the dropped client drops the whole exchange, upstream connection included",
    );
    Ok(())
}

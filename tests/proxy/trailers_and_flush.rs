//! Steps 11 to 13: the response head with its trailers announced again, and
//! the body streamed to the client chunk by chunk with its trailers after
//! the last one.

use std::time::Duration;

use super::start_proxy;
use crate::common::bounded;
use crate::common::servers::real_server;
use crate::common::wire::{contains_ignore_case, decode_chunked, find, raw_exchange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn trailers_pass_through_when_the_client_accepts_them() {
    bounded(async {
    let server = real_server().await;
    let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
    let request = format!(
        "GET /stream?n=3&ms=100 HTTP/1.1\r\nHost: {}\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.values("transfer-encoding"), ["chunked"]);
    assert_eq!(response.values("trailer"), ["X-Lab-Chunks"], "{response:?}");
    let chunked = decode_chunked(&response.body);
    assert_eq!(chunked.chunks.len(), 3, "{chunked:?}");
    for (i, chunk) in chunked.chunks.iter().enumerate() {
        let chunk = String::from_utf8_lossy(chunk);
        assert!(
            chunk.starts_with(&format!("chunk {}/3 at ", i + 1)),
            "{chunk}"
        );
    }
    assert_eq!(chunked.trailers.len(), 1, "{chunked:?}");
    let (name, value) = &chunked.trailers[0];
    assert!(name.eq_ignore_ascii_case("x-lab-chunks"), "{name}");
    assert_eq!(value, "3");

    // Without `TE: trailers` the upstream is not told either, and no
    // trailer fields are sent.
    let request = format!(
        "GET /stream?n=2&ms=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
    let chunked = decode_chunked(&response.body);
    assert_eq!(chunked.chunks.len(), 2, "{chunked:?}");
    assert!(chunked.trailers.is_empty(), "{chunked:?}");
    })
    .await;
}

#[tokio::test]
async fn a_stream_reaches_the_client_chunk_by_chunk() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        // Chunk 2 comes 20 s after chunk 1: a buffering proxy would show nothing
        // for 20 s, longer than this test waits.
        let request = format!(
            "GET /stream?n=2&ms=20000 HTTP/1.1\r\nHost: {}\r\n\r\n",
            proxy.addr
        );
        let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
        client.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(10), async {
            while find(&received, b"chunk 1/2").is_none() {
                let n = client.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "closed early: {:?}",
                    String::from_utf8_lossy(&received)
                );
                received.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the first chunk did not arrive while the upstream waited: {:?}",
                String::from_utf8_lossy(&received)
            )
        });
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            contains_ignore_case(&received, "transfer-encoding: chunked"),
            "{text}"
        );
        assert!(!text.contains("chunk 2/2"), "{text}");
    })
    .await;
}

//! The `lab proxy` binary as a child process: 50 MB each way in bounded
//! memory, and bad input (a malformed request line, an oversized header, a
//! request with both lengths) refused while it keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use super::{RecordingUpstream, answer_ok, proc_status_kb, proxy_binary};
use crate::common::client::{json_echo, reqwest_builder, send};
use crate::common::servers::real_server;
use crate::common::wire::{assert_closed_without_more, raw_exchange, read_response};
use crate::common::{STEP, bounded};
use bytes::Bytes;
use http::StatusCode;
use lab::probe::Probe;
use lab::realserver::{EchoReport, pattern_byte};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BIG: u64 = 50 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_streams_50_mb_each_way_in_bounded_memory() {
    bounded(async {
    let server = real_server().await;
    let (proxy, proxy_addr) =
        proxy_binary(&["--upstream", &format!("http://{}/base", server.addr())]).await;
    let pid = proxy.pid();
    let client = reqwest_builder()
        .no_proxy()
        .build()
        .expect("a reqwest client");
    let before_kb = proc_status_kb(pid, "VmHWM:");

    // Upload: 50 MB streamed from here, never held whole.
    const CHUNK: usize = 64 * 1024;
    let chunks = futures_util::stream::iter(
        (0..BIG as usize / CHUNK).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'u'; CHUNK]))),
    );
    let response = tokio::time::timeout(
        Duration::from_secs(25),
        client
            .post(format!("http://{}/upload", proxy_addr))
            .header("Accept", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    )
    .await
    .expect("the upload finishes")
    .expect("the upload is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let report: EchoReport = response.json().await.expect("the JSON echo");
    assert_eq!(report.body_bytes, BIG, "{report:?}");
    assert_eq!(report.uri, "/base/upload");
    // Streamed on: the proxy did not collect the body to give it a length.
    assert!(
        report.header_values("content-length").is_empty(),
        "{report:?}"
    );
    let after_upload_kb = proc_status_kb(pid, "VmHWM:");

    // Download: every byte checked as it arrives.
    let mut response = tokio::time::timeout(
        STEP,
        client
            .get(format!("http://{}/bytes?n={BIG}", proxy_addr))
            .send(),
    )
    .await
    .expect("the download starts")
    .expect("the download is answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(BIG));
    let mut offset = 0u64;
    tokio::time::timeout(Duration::from_secs(25), async {
        while let Some(chunk) = response.chunk().await.expect("the body keeps coming") {
            for (i, &byte) in chunk.iter().enumerate() {
                let at = offset + i as u64;
                assert_eq!(byte, pattern_byte(at), "byte {at} of the download");
            }
            offset += chunk.len() as u64;
        }
    })
    .await
    .expect("the download finishes");
    assert_eq!(offset, BIG);
    let after_download_kb = proc_status_kb(pid, "VmHWM:");

    eprintln!(
        "lab proxy (pid {pid}) peak RSS (VmHWM): {before_kb} kB at start, \
         {after_upload_kb} kB after the 50 MB upload, {after_download_kb} kB after the 50 MB download"
    );
    assert!(
        after_download_kb < 200 * 1024,
        "the proxy held the bodies: peak RSS {after_download_kb} kB"
    );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// A good request after a bad one: the proxy still forwards.
async fn assert_still_serves(proxy: SocketAddr, after: &str) {
    let (_, report) = json_echo(proxy, Probe::get("/still-here")).await;
    assert_eq!(report.uri, "/base/still-here", "after {after}");
}

#[tokio::test]
async fn binary_rejects_bad_requests_and_keeps_serving() {
    bounded(async {
        let server = real_server().await;
        let (_proxy, proxy_addr) =
            proxy_binary(&["--upstream", &format!("http://{}/base", server.addr())]).await;
        assert_still_serves(proxy_addr, "start").await;

        // A malformed request line.
        let (response, mut client) = raw_exchange(proxy_addr, b"THIS IS NOT HTTP\r\n\r\n").await;
        assert_eq!(response.status, 400, "{response:?}");
        assert_closed_without_more(&mut client, "after the 400").await;
        assert_still_serves(proxy_addr, "a malformed request line").await;

        // A header far beyond hyper's request head limit (~400 KB; 200 KB still passes): 431.
        let mut request = b"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
        request.extend(std::iter::repeat_n(b'b', 2 * 1024 * 1024));
        request.extend_from_slice(b"\r\n\r\n");
        let mut client = TcpStream::connect(proxy_addr).await.expect("connect");
        // The proxy stops reading at its limit: the write may fail, the answer is read anyway.
        let _ = tokio::time::timeout(STEP, client.write_all(&request)).await;
        let response = read_response(&mut client).await;
        assert_eq!(
            response.status, 431,
            "Request Header Fields Too Large: {response:?}"
        );
        assert_still_serves(proxy_addr, "an oversized header").await;
    })
    .await;
}

#[tokio::test]
async fn binary_refuses_a_request_with_both_lengths_400() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let (_proxy, proxy_addr) = proxy_binary(&["--upstream", &upstream.url("/base")]).await;
        // A good request first, answered; then, on the same connection, the
        // classic smuggling shape: Content-Length says 3, the chunked body is
        // 5 bytes, and a second request hides behind it.
        let mut client = TcpStream::connect(proxy_addr).await.expect("connect");
        let first = format!("GET /first HTTP/1.1\r\nHost: {}\r\n\r\n", proxy_addr);
        client.write_all(first.as_bytes()).await.expect("write");
        let first = read_response(&mut client).await;
        assert_eq!(first.status, 200, "{first:?}");
        let request = format!(
            "POST /smuggle HTTP/1.1\r\nHost: {0}\r\n\
             Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n\
             GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            proxy_addr
        );
        client.write_all(request.as_bytes()).await.expect("write");
        let refused = read_response(&mut client).await;
        assert_eq!(refused.status, 400, "{refused:?}");
        let body = String::from_utf8_lossy(&refused.body);
        assert!(
            body.contains("both Content-Length and Transfer-Encoding"),
            "{body}"
        );
        // Nothing more is read: the hidden request is never served.
        assert_closed_without_more(&mut client, "the smuggled request").await;
        // Only the first request reached the upstream.
        assert_eq!(
            upstream.request().await.request_line,
            "GET /base/first HTTP/1.1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        upstream.assert_nothing_more("the refused and the smuggled requests");
        // The proxy still serves others.
        let after = send(proxy_addr, Probe::get("/after")).await;
        assert_eq!(after.status, StatusCode::OK);
        assert_eq!(
            upstream.request().await.request_line,
            "GET /base/after HTTP/1.1"
        );
    })
    .await;
}

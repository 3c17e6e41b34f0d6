//! `lab relay` (网络转发), the real binary on real sockets: the real server
//! sees the relay's socket and not one header more; 50 MB come back byte
//! for byte; a WebSocket works through it; a dead target closes only that
//! connection; a taken port is a clear error; SIGTERM stops it cleanly.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::common::STEP;
use crate::common::process::{LabProcess, realserver_process};
use lab::probe::Probe;

/// `lab relay --listen 127.0.0.1:0 --target TARGET`, once it listens.
async fn relay_to(target: &str) -> (LabProcess, std::net::SocketAddr) {
    let mut relay = LabProcess::spawn(&["relay", "--listen", "127.0.0.1:0", "--target", target]);
    let addr = relay.addr_after("relay on ").await;
    (relay, addr)
}

#[tokio::test]
async fn the_real_server_sees_the_relay_and_not_one_header_more() {
    let (_server, server_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut relay, relay_addr) = relay_to(&server_addr.to_string()).await;
    let probe = Probe::get("/abc?x=1")
        .header("Accept", "application/json")
        .header("X-Forwarded-For", "1.2.3.4")
        .header("Connection", "X-Foo")
        .header("X-Foo", "1");
    let direct = probe.send(server_addr).await.unwrap().json_echo().unwrap();
    let through = probe.send(relay_addr).await.unwrap();
    let relayed = through.json_echo().unwrap();
    // A new TCP connection: the server's peer is the relay's socket.
    assert_ne!(relayed.remote_addr, through.local_addr.to_string());
    let log = relay.wait_for(" via ").await;
    assert!(
        log.contains(&relayed.remote_addr),
        "{log} vs {}",
        relayed.remote_addr
    );
    // Bytes unchanged: the same lines as sent directly, Host as the client wrote it.
    let lines = |headers: &[(String, String)]| -> Vec<(String, String)> {
        headers
            .iter()
            .filter(|(n, _)| n != "host")
            .cloned()
            .collect()
    };
    assert_eq!(lines(&relayed.headers), lines(&direct.headers));
    assert_eq!(relayed.header_values("host"), [relay_addr.to_string()]);
    assert_eq!(relayed.header_values("x-forwarded-for"), ["1.2.3.4"]);
    assert_eq!(relayed.uri, "/abc?x=1");
    assert_eq!(relay.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn fifty_megabytes_come_back_byte_for_byte() {
    // A TCP echo server: the relay is layer 4, so the test is too.
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    let (mut relay, relay_addr) = relay_to(&echo_addr.to_string()).await;
    let data: Vec<u8> = (0..50 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let stream = TcpStream::connect(relay_addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        // Half-close: the echo server sees the end, the relay passes it on.
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut back))
        .await
        .expect("50 MB within a minute")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes that came back differ");
    assert_eq!(relay.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn a_websocket_works_through_the_relay() {
    let (_server, server_addr) = realserver_process("127.0.0.1:0", &[]).await;
    let (mut relay, relay_addr) = relay_to(&server_addr.to_string()).await;
    let (mut ws, response) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::connect_async(format!("ws://{relay_addr}/ws")),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(response.status(), 101);
    for message in [
        Message::text("héllo through a relay"),
        Message::binary(vec![0u8, 255, 7]),
    ] {
        ws.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(STEP, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
    ws.close(None).await.unwrap();
    assert_eq!(relay.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn a_dead_target_closes_that_connection_and_the_relay_goes_on() {
    // A port nobody listens on: bound, then released.
    let gone = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (mut relay, relay_addr) = relay_to(&gone.to_string()).await;
    for _ in 0..2 {
        let mut client = TcpStream::connect(relay_addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(STEP, client.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "the relay closes the client's connection");
    }
    let line = relay.wait_for("cannot reach the target").await;
    assert!(line.contains(&gone.to_string()), "{line}");
    assert_eq!(relay.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let mut relay = LabProcess::spawn(&["relay", "--listen", &port, "--target", "127.0.0.1:9"]);
    let status = relay.exit().await;
    assert_ne!(status.code(), Some(0));
    let log = relay.log();
    assert!(log.contains(&port) && log.contains("in use"), "{log}");
}

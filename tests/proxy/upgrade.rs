//! Step 8, a 101 Switching Protocols: the WebSocket handshake and its frames
//! spliced through, an invalid Upgrade token refused, an upstream that
//! switches to a protocol nobody asked for refused.

use super::{Answer, RawRequest, RecordingUpstream, Seen, answer_ok, start_proxy};
use crate::common::servers::real_server;
use crate::common::wire::{close_and_drain, raw_exchange};
use crate::common::{STEP, bounded};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use lab::lab_headers::SERVER_HEADER;
use lab::lab_headers::UPSTREAM_HEADER;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_round_trip_through_the_proxy() {
    bounded(async {
        let server = real_server().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        let url = format!("ws://{}/ws", proxy.addr);
        let (mut ws, response) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(&url))
            .await
            .expect("handshake within the step timeout")
            .unwrap_or_else(|err| panic!("WebSocket handshake through the proxy: {err}"));
        // tungstenite has checked Sec-WebSocket-Accept: the key went through.
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(header(SERVER_HEADER), Some(server.addr().to_string()));
        assert_eq!(header(UPSTREAM_HEADER.as_str()), Some(upstream.clone()));

        let messages = [
            Message::text("héllo through the proxy"),
            Message::binary(vec![0u8, 1, 2, 254, 255]),
            Message::text("x".repeat(100_000)),
        ];
        for message in messages {
            ws.send(message.clone()).await.expect("send");
            let back = tokio::time::timeout(STEP, ws.next())
                .await
                .expect("an echo within the step timeout")
                .expect("the stream is still open")
                .expect("a message, not an error");
            assert_eq!(back, message);
        }
        let rest = close_and_drain(&mut ws).await;
        assert!(
            matches!(rest.as_slice(), [Ok(Message::Close(_))]),
            "expected the server's close frame, then the end: {rest:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unprintable_upgrade_token_is_a_400_and_the_proxy_keeps_serving() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: caf\xc3\xa9\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 400, "{response:?}");
        assert!(
            response.text().contains("invalid protocol"),
            "{}",
            response.text()
        );

        let (response, _client) =
            raw_exchange(proxy.addr, b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(response.status, 200, "{response:?}");
        // The refused request never went upstream: the first one seen is the good one.
        let seen = upstream.request().await;
        assert_eq!(seen.target(), "/base/good", "{seen:?}");
        upstream.assert_nothing_more("after the good request");
    })
    .await;
}

fn answer_101_h2c(_: &RawRequest) -> Answer {
    Answer::Bytes(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec(),
    )
}

#[tokio::test]
async fn an_upstream_switching_to_another_protocol_is_a_502() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_101_h2c).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 502, "{response:?}");
        let body = response.text();
        assert!(body.contains("h2c") && body.contains("websocket"), "{body}");
        assert!(response.values("upgrade").is_empty(), "{response:?}");

        // The upgrade request itself was forwarded whole.
        let seen = upstream.request().await;
        assert_eq!(seen.values("connection"), ["Upgrade"], "{seen:?}");
        assert_eq!(seen.values("upgrade"), ["websocket"], "{seen:?}");
        assert_eq!(
            seen.values("sec-websocket-key"),
            ["dGhlIHNhbXBsZSBub25jZQ=="]
        );
        // And the connection that switched to the wrong protocol is dropped.
        assert!(
            matches!(upstream.next().await, Seen::Closed),
            "the proxy closes the mismatched upstream connection"
        );
    })
    .await;
}

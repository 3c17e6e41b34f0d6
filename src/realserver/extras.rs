//! The endpoints the labs add to the article's RealServer: a delay (timeouts),
//! a chunked stream ending in a trailer (flush interval, trailers), a
//! WebSocket echo (Upgrade) and a response carrying hop-by-hop headers (what a
//! correct proxy must strip).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, Role};

use super::echo;
use super::handler::{Body, Ctx, query_param, text};
use crate::header_list::has_token;
use crate::lab_headers::CHUNKS_TRAILER;

/// Longest `?ms=` accepted, so a typo cannot park a request for hours.
const MAX_DELAY_MS: u64 = 60_000;
const MAX_CHUNKS: u64 = 1_000;

/// `…/delay?ms=N`: waits N ms (default 1000), then echoes. The write timeout
/// still applies: `?ms=5000` on a 3 s server gets no answer, like the article's
/// timeout handler.
pub async fn delay(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    let ms = match number_param(req.uri(), "ms", 1_000, MAX_DELAY_MS) {
        Ok(ms) => ms,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    echo::respond(ctx, req).await
}

/// `…/stream?n=N&ms=M`: N chunks (default 5) M ms apart (default 200), sent as
/// they are made (chunked transfer coding), then the trailer `X-Lab-Chunks: N`.
///
/// hyper sends trailer fields only to a client that announced `TE: trailers`
/// (RFC 9110 §10.1.4 lets a client say it accepts them); others get the
/// chunks and the end of the body without the trailer.
pub fn stream(req: Request<Incoming>) -> Response<Body> {
    let parsed = number_param(req.uri(), "n", 5, MAX_CHUNKS)
        .and_then(|n| Ok((n, number_param(req.uri(), "ms", 200, MAX_DELAY_MS)?)));
    let (n, ms) = match parsed {
        Ok(pair) => pair,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let started = Instant::now();
    // State: how many frames were sent. Frames 0..n are data, frame n the trailer.
    let frames = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent > n {
            return None;
        }
        if sent == n {
            let mut trailers = HeaderMap::new();
            trailers.insert(CHUNKS_TRAILER, HeaderValue::from(n));
            return Some((Ok(Frame::trailers(trailers)), sent + 1));
        }
        if sent > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let line = format!(
            "chunk {}/{n} at {} ms\n",
            sent + 1,
            started.elapsed().as_millis()
        );
        Some((Ok(Frame::data(Bytes::from(line))), sent + 1))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // Announced in the canonical case Go writes names in (CHUNKS_TRAILER).
    headers.insert(header::TRAILER, HeaderValue::from_static("X-Lab-Chunks"));
    response
}

/// Largest `…/bytes?n=` body: 1 GiB.
const MAX_BYTES: u64 = 1 << 30;

/// `…/bytes?n=N`: N bytes (default 1 MiB) of a known pattern, byte `i` being
/// `i % 251`, streamed in 64 KiB chunks with a Content-Length: a large
/// download whose every byte a client can verify without a copy.
pub fn bytes(req: Request<Incoming>) -> Response<Body> {
    let total = match number_param(req.uri(), "n", 1 << 20, MAX_BYTES) {
        Ok(n) => n,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    const CHUNK: u64 = 64 * 1024;
    let chunks = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= total {
            return None;
        }
        let len = CHUNK.min(total - sent);
        let chunk: Vec<u8> = (sent..sent + len).map(pattern_byte).collect();
        Some((Ok(Frame::data(Bytes::from(chunk))), sent + len))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    response
}

/// Byte `i` of a `…/bytes` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// `…/hop-headers`: the echo, with hop-by-hop headers on the response.
/// `Connection: X-Hop` makes `X-Hop` hop-by-hop too (RFC 9110 §7.6.1), so a
/// correct proxy removes all three before the client sees them.
pub async fn hop_headers(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    let mut response = echo::respond(ctx, req).await;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("X-Hop"));
    headers.insert(
        "x-hop",
        HeaderValue::from_static("meant for the next hop only; a proxy must remove it"),
    );
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5, max=100"));
    response
}

/// `…/ws`: a WebSocket echo. The handshake (RFC 6455 §4.2) is answered here;
/// after the 101, hyper hands over the raw connection and every text or
/// binary message is sent straight back.
pub fn websocket(ctx: &Ctx, mut req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    let upgrade_requested = has_token(headers, &header::CONNECTION, "upgrade")
        && has_token(headers, &header::UPGRADE, "websocket");
    if !upgrade_requested {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            format!(
                "this is a WebSocket echo: connect with a WebSocket client, e.g. \
                 `websocat ws://{}{}`\n",
                ctx.server,
                req.uri().path()
            ),
        );
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version: use Sec-WebSocket-Version: 13\n",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return text(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key: a WebSocket handshake needs one\n",
        );
    };
    let accept = derive_accept_key(key.as_bytes());

    let on_upgrade = hyper::upgrade::on(&mut req);
    let stop = ctx.stop.clone();
    let peer = ctx.peer;
    let tunneled = ctx.tunneled.clone();
    ctx.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                crate::server::Conn::mark_tunnel(&tunneled);
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                echo_messages(ws, stop).await;
            }
            Err(err) => tracing::debug!("WebSocket upgrade from {peer} failed: {err}"),
        }
    });

    let mut response = Response::new(http_body_util::Empty::new().boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// Sends every data message back until the client closes or the server stops.
async fn echo_messages<S>(mut ws: WebSocketStream<S>, stop: tokio_util::sync::CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            () = stop.cancelled() => {
                let _ = ws
                    .close(Some(CloseFrame {
                        code: CloseCode::Away,
                        reason: "server shutting down".into(),
                    }))
                    .await;
                return;
            }
        };
        match message {
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                if ws.send(msg).await.is_err() {
                    return;
                }
            }
            // Pings are answered by tungstenite itself; a Close is answered
            // and the stream then ends.
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

/// A whole-number query parameter within `0..=max`, or a sentence for a 400.
fn number_param(uri: &http::Uri, name: &str, default: u64, max: u64) -> Result<u64, String> {
    match query_param(uri, name) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u64>() {
            Ok(value) if value <= max => Ok(value),
            _ => Err(format!(
                "bad ?{name}={raw}: give a whole number from 0 to {max}, e.g. ?{name}={default}\n"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_params_have_defaults_and_bounds() {
        let uri: http::Uri = "/delay?ms=250".parse().unwrap();
        assert_eq!(number_param(&uri, "ms", 1000, MAX_DELAY_MS), Ok(250));
        assert_eq!(number_param(&uri, "n", 5, MAX_CHUNKS), Ok(5));
        let bad: http::Uri = "/delay?ms=soon".parse().unwrap();
        let err = number_param(&bad, "ms", 1000, MAX_DELAY_MS).unwrap_err();
        assert!(err.contains("whole number from 0 to 60000"), "{err}");
        let huge: http::Uri = "/delay?ms=99999999".parse().unwrap();
        assert!(number_param(&huge, "ms", 1000, MAX_DELAY_MS).is_err());
    }
}

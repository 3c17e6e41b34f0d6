//! Exercise 6, ModifyResponse and ErrorHandler (修改返回内容, 错误回调): lab
//! 06's probes through the learner's proxy to one real server. A 200 body
//! must arrive prefixed with `hello ` and whole (its Content-Length fixed),
//! an error page must pass untouched, and an upstream that closes the
//! connection without answering must become a 502 that says why.
//!
//! The prefixed answer is read off the socket by hand rather than with
//! [`Probe`]: a proxy that forgets to fix Content-Length sends part of the
//! body and then closes the connection, and the point is to show how much
//! arrived against how much was promised, which an HTTP client turns into
//! a bare "body cut off" error.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exercises::session::{ANSWER_TIMEOUT, Session};
use crate::probe::Probe;

/// The prefix the learner's ModifyResponse puts in front of a 200 body.
const PREFIX: &str = "hello ";

/// The body the learner's ErrorHandler must begin with.
const ERROR_PREFIX: &str = "ErrorHandler error: ";

/// Enough padding to make the echo (which repeats the request's headers)
/// longer than Go's 32 KB copy buffer. A proxy with a stale Content-Length
/// then sends the first 32 KB before it gives up, instead of nothing, so
/// the report can name the length and not just "no answer".
const PADDING: usize = 40_000;

/// The real server's path that never answers: it sleeps past the server's
/// 3 s write timeout, and the connection is closed unanswered.
const NO_ANSWER: &str = "/test_http_string/test_http_string/aaa";

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let upstream = s.upstreams[0];
        let raw = read_raw(s.addr, "/abc").await;
        let first_line = match &raw {
            Ok(raw) if raw.status == 200 => first_line(&raw.body),
            Ok(raw) => format!("{} {}", raw.status, first_line(&raw.body)),
            Err(why) => why.clone(),
        };
        s.point(
            "prefixed",
            "the 200 answer to GET /abc is `hello ` and then the real server's echo",
            format!("{PREFIX}http://{upstream}/abc"),
            first_line,
        );

        let (whole, length) = match &raw {
            Ok(raw) => {
                let promised = raw
                    .content_length
                    .map_or("no Content-Length".to_string(), |n| {
                        format!("Content-Length: {n}")
                    });
                let whole = raw.content_length == Some(raw.body.len());
                let then = if raw.content_length > Some(raw.body.len()) {
                    ", then the connection closed"
                } else {
                    ""
                };
                (
                    whole,
                    format!("{promised}, {} bytes arrived{then}", raw.body.len()),
                )
            }
            Err(why) => (false, why.clone()),
        };
        s.judge(
            "length-fixed",
            "the Content-Length of the prefixed answer counts every byte of the new body",
            "Content-Length equal to the bytes that arrived",
            length,
            whole,
        );

        let error_page = s.answer_of(&Probe::get("/base/error")).await;
        s.point(
            "errors-untouched",
            "the real server's 500 `error handler` for /base/error passes as it is, unprefixed",
            "500 error handler",
            error_page,
        );

        // The real server holds this request for 3 s and then closes the
        // connection; Go's transport may retry a GET once on a reused
        // connection, so allow for two rounds.
        let patience = ANSWER_TIMEOUT * 2 + Duration::from_secs(2);
        let failed = s.send_within(&Probe::get(NO_ANSWER), patience).await;
        s.point(
            "bad-gateway",
            "an upstream that closes the connection without answering is reported as 502",
            502,
            match &failed {
                Ok(answer) => answer.status.as_u16().to_string(),
                Err(why) => why.clone(),
            },
        );
        let (explained, body) = match &failed {
            Ok(answer) => {
                let text = answer.text();
                let reason = text.strip_prefix(ERROR_PREFIX).unwrap_or("").trim();
                (!reason.is_empty(), format!("{:?}", text.trim_end()))
            }
            Err(why) => (false, why.clone()),
        };
        s.judge(
            "says-why",
            "the 502's body is `ErrorHandler error: ` and the error's text",
            format!("{:?}", format!("{ERROR_PREFIX}<the error, e.g. EOF>")),
            body,
            explained,
        );
        Ok(())
    }
    .boxed()
}

/// An answer as it came off the socket.
struct RawAnswer {
    status: u16,
    content_length: Option<usize>,
    /// Everything after the head, up to the close.
    body: Vec<u8>,
}

/// Sends GET `path` (padded, `Connection: close`) to `addr` and reads until
/// the connection closes.
async fn read_raw(addr: SocketAddr, path: &str) -> Result<RawAnswer, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
            "x".repeat(PADDING)
        );
        stream.write_all(request.as_bytes()).await?;
        let mut bytes = Vec::new();
        // A reset after part of the answer still leaves that part to judge.
        let _ = stream.read_to_end(&mut bytes).await;
        anyhow::Ok(bytes)
    };
    let bytes = match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => return Err(format!("no answer: {err:#}")),
        Err(_) => return Err(format!("no answer within {ANSWER_TIMEOUT:?}")),
    };
    parse_raw(&bytes)
}

fn parse_raw(bytes: &[u8]) -> Result<RawAnswer, String> {
    if bytes.is_empty() {
        return Err("no answer: the connection closed before a response".into());
    }
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "no answer: the connection closed after {} bytes, inside the response head",
            bytes.len()
        ));
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", head.lines().next()))?;
    let content_length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    });
    Ok(RawAnswer {
        status,
        content_length,
        body: bytes[end + 4..].to_vec(),
    })
}

fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines().next().unwrap_or("(empty body)").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_answer_is_split_into_status_length_and_body() {
        let raw = parse_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello abc").unwrap();
        assert_eq!(raw.status, 200);
        assert_eq!(raw.content_length, Some(9));
        assert_eq!(raw.body, b"hello abc");
        let cut = parse_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhel").unwrap();
        assert_eq!((cut.content_length, cut.body.len()), (Some(100), 3));
        assert!(parse_raw(b"").is_err());
        assert!(parse_raw(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}

//! Raw HTTP/1.1 on a socket, for what a client library would hide or
//! refuse to send: requests written by hand, responses read back as they
//! came off the wire (header names as sent, several values, the framing),
//! and chunked bodies decoded strictly (RFC 9112 §7.1).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::STEP;

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Whether `haystack` contains `needle`, ignoring ASCII case.
pub fn contains_ignore_case(haystack: &[u8], needle: &str) -> bool {
    let haystack = String::from_utf8_lossy(haystack).to_ascii_lowercase();
    haystack.contains(&needle.to_ascii_lowercase())
}

/// The first line of a head and its header lines, names as sent.
pub fn parse_header_lines(head: &str) -> (String, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            (name.to_string(), value.trim().to_string())
        })
        .collect();
    (first, headers)
}

/// Every value of header `name` (case-insensitive), in order.
pub fn values_of<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A response as it came off the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Everything after the blank line, undecoded.
    pub body: Vec<u8>,
    /// Whether the body was complete by its framing (Content-Length reached,
    /// last chunk seen, or a close-delimited body ended by a clean close).
    pub complete: bool,
}

impl RawResponse {
    /// Parses `bytes`; `None` while the head or the framed body is incomplete.
    /// `at_eof`: the connection ended after these bytes.
    pub fn parse(bytes: &[u8], at_eof: bool) -> Option<RawResponse> {
        let end = find(bytes, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).expect("response head is text");
        let (status_line, headers) = parse_header_lines(head);
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        assert!(
            matches!(version.as_str(), "HTTP/1.1" | "HTTP/1.0"),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let body = &bytes[end + 4..];
        let length = match values_of(&headers, "content-length").as_slice() {
            [] => None,
            [length] => Some(length.parse::<usize>().expect("a numeric Content-Length")),
            more => panic!("several Content-Length headers: {more:?}"),
        };
        let chunked = values_of(&headers, "transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        let complete = if matches!(status, 101 | 204 | 304) {
            true
        } else if chunked {
            chunked_len(body).is_some()
        } else if let Some(length) = length {
            assert!(body.len() <= length, "bytes after the body: {body:?}");
            body.len() == length
        } else {
            at_eof
        };
        if !complete && !at_eof {
            return None;
        }
        Some(RawResponse {
            version,
            status,
            headers,
            body: body.to_vec(),
            complete,
        })
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        values_of(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `stream`: to the end of its framing, or to the
/// connection's end (a reset counts as the end; what arrived is returned).
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let read = async {
        let mut received = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(response) = RawResponse::parse(&received, false) {
                return response;
            }
            let n = match stream.read(&mut buf).await {
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(err) => panic!("reading a response: {err}"),
            };
            if n == 0 {
                return RawResponse::parse(&received, true).unwrap_or_else(|| {
                    panic!(
                        "connection closed without a response head: {:?}",
                        String::from_utf8_lossy(&received)
                    )
                });
            }
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(STEP, read)
        .await
        .unwrap_or_else(|_| panic!("no whole response within {STEP:?}"))
}

/// Writes `request` on a new connection to `addr` and reads one response;
/// the connection stays open.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (RawResponse, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write the request");
    let response = read_response(&mut stream).await;
    (response, stream)
}

/// Writes `bytes` on a new connection and reads until the server closes it
/// (a reset counts as closed; what arrived is for the caller to judge).
/// Returns every byte received and how long the whole exchange took.
pub async fn exchange_until_close(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write the request");
    let mut received = Vec::new();
    let read = tokio::time::timeout(STEP, stream.read_to_end(&mut received))
        .await
        .unwrap_or_else(|_| panic!("{addr} did not close the connection within {STEP:?}"));
    match read {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("reading from {addr}: {err}"),
    }
    (received, started.elapsed())
}

/// Whether the peer has closed `stream` (EOF or reset) within [`STEP`],
/// sending no more bytes.
pub async fn assert_closed_without_more(stream: &mut TcpStream, what: &str) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection stays open"));
    match read {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("{what}: {err}"),
    }
    assert!(
        rest.is_empty(),
        "{what}: more bytes after the response: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Length of a complete chunked body at the start of `body` (last chunk and
/// trailer section included), or `None` if it is not complete yet.
pub fn chunked_len(body: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let line_end = pos + find(&body[pos..], b"\r\n")?;
        let size_line = std::str::from_utf8(&body[pos..line_end]).ok()?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            loop {
                let end = pos + find(&body[pos..], b"\r\n")?;
                let blank = end == pos;
                pos = end + 2;
                if blank {
                    return Some(pos);
                }
            }
        }
        if body.len() < pos + size + 2 {
            return None;
        }
        pos += size + 2;
    }
}

/// A chunked body (RFC 9112 §7.1), decoded strictly: the chunks as sent and
/// the trailer fields after the last one.
#[derive(Debug)]
pub struct Chunked {
    pub chunks: Vec<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
}

impl Chunked {
    /// The chunks joined, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.chunks.concat()).into_owned()
    }
}

pub fn decode_chunked(mut body: &[u8]) -> Chunked {
    let mut chunks = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").expect("chunk size line ends in CRLF");
        let size_line = std::str::from_utf8(&body[..line_end]).expect("chunk size is text");
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        body = &body[line_end + 2..];
        if size == 0 {
            break;
        }
        assert!(body.len() >= size + 2, "chunk of {size} bytes cut off");
        chunks.push(body[..size].to_vec());
        assert_eq!(&body[size..size + 2], b"\r\n", "chunk data ends in CRLF");
        body = &body[size + 2..];
    }
    let mut trailers = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").expect("trailer section ends in CRLF");
        let line = std::str::from_utf8(&body[..line_end]).expect("trailer is text");
        body = &body[line_end + 2..];
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad trailer line {line:?}"));
        trailers.push((name.to_string(), value.trim().to_string()));
    }
    assert!(
        body.is_empty(),
        "bytes after the chunked body: {:?}",
        String::from_utf8_lossy(body)
    );
    Chunked { chunks, trailers }
}

/// Sends a close frame and collects what follows until the stream ends
/// (bounded): a well-behaved peer answers with exactly one close frame
/// (RFC 6455 §5.5.1), then the stream ends cleanly.
pub async fn close_and_drain<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> Vec<Result<tokio_tungstenite::tungstenite::Message, String>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    ws.close(None).await.expect("send a close frame");
    tokio::time::timeout(STEP, async {
        let mut rest = Vec::new();
        while let Some(item) = ws.next().await {
            rest.push(item.map_err(|err| err.to_string()));
        }
        rest
    })
    .await
    .expect("the WebSocket closes within the step timeout")
}

//! A guard against request smuggling on every listener of the lab: requests
//! that carry both `Content-Length` and `Transfer-Encoding` are answered
//! 400 and the connection is closed.
//!
//! Why: when two hops disagree on where a request ends, a second request can
//! hide in the first one's body and reach the upstream unseen (request
//! smuggling). RFC 9112 §6.1 lets a server either reject such a message or
//! frame it by Transfer-Encoding alone and close the connection; hyper does
//! the latter, silently dropping the Content-Length before the proxy can see
//! it. The lab answers 400, so a learner sees the attack refused.
//!
//! How: [`FramingGuard`] wraps the client's connection and follows HTTP/1.1
//! framing as bytes arrive: it holds each request head back until it is
//! complete, checks it, then lets it through, and counts the body (by
//! Content-Length or chunk by chunk) to know where the next head starts. A
//! head with both lengths is replaced by a small request that carries
//! [`REJECT_HEADER`]; [`Guarded`] answers that one with 400. Bytes that are
//! not HTTP (a TLS hello, WebSocket frames after an upgrade, a tunnel) are
//! passed on untouched from then on, and hyper's own parser has the last
//! word. After CONNECT or an Upgrade the guard keeps judging, so when the
//! upgrade is refused and another request follows, it is checked too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The header of the stand-in request that replaces a rejected one.
pub const REJECT_HEADER: &str = "x-lab-framing-error";

/// A head larger than this is not held back: hyper refuses it (431).
const MAX_HEAD: usize = 512 * 1024;

/// The stand-in for a request with both Content-Length and Transfer-Encoding.
const REJECTED: &[u8] = b"GET / HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\
    x-lab-framing-error: both Content-Length and Transfer-Encoding\r\n\r\n";

/// Where the guard is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a request head.
    Head,
    /// Inside a body of known length: this many bytes to go.
    Body(u64),
    /// Inside a chunked body (see [`Chunked`]).
    Chunked(Chunked),
    /// Not HTTP any more (upgrade, tunnel) or not followable: pass all.
    Passthrough,
    /// A request was rejected: nothing more is read from the client.
    Closed,
}

/// The chunked-coding sub-states (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk-size line up to its LF.
    Size,
    /// Inside chunk data: this many bytes to go, then CRLF.
    Data(u64),
    /// The CRLF after chunk data: this many bytes to go.
    DataEnd(u8),
    /// After the last chunk: trailer lines, up to an empty line.
    Trailers,
}

/// The client's connection, with request framing checked (see the module docs).
pub struct FramingGuard<S> {
    inner: S,
    state: State,
    /// Bytes of the current head or chunk-size/trailer line, not yet judged.
    held: BytesMut,
    /// Bytes judged and ready for hyper.
    ready: BytesMut,
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S) -> FramingGuard<S> {
        FramingGuard {
            inner,
            state: State::Head,
            held: BytesMut::new(),
            ready: BytesMut::new(),
        }
    }

    /// Follows `bytes` through the framing, moving what may pass to `ready`.
    fn feed(&mut self, bytes: &[u8]) {
        let mut input = BytesMut::from(bytes);
        while !input.is_empty() {
            match self.state {
                State::Passthrough => {
                    self.ready.extend_from_slice(&input);
                    return;
                }
                State::Closed => return,
                State::Body(left) => {
                    let n = left.min(input.len() as u64) as usize;
                    self.ready.extend_from_slice(&input.split_to(n));
                    self.state = match left - n as u64 {
                        0 => State::Head,
                        left => State::Body(left),
                    };
                }
                State::Chunked(Chunked::Data(left)) => {
                    let n = left.min(input.len() as u64) as usize;
                    self.ready.extend_from_slice(&input.split_to(n));
                    self.state = State::Chunked(match left - n as u64 {
                        0 => Chunked::DataEnd(2),
                        left => Chunked::Data(left),
                    });
                }
                State::Chunked(Chunked::DataEnd(left)) => {
                    self.ready.extend_from_slice(&input.split_to(1));
                    self.state = State::Chunked(match left {
                        1 => Chunked::Size,
                        left => Chunked::DataEnd(left - 1),
                    });
                }
                State::Chunked(Chunked::Size) | State::Chunked(Chunked::Trailers) => {
                    // Line-based: a line is judged when its LF arrives.
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.held.extend_from_slice(&input);
                        if self.held.len() > MAX_HEAD {
                            self.give_up();
                        }
                        return;
                    };
                    self.held.extend_from_slice(&input.split_to(end + 1));
                    let line = self.held.split();
                    self.ready.extend_from_slice(&line);
                    self.end_of_line(&line);
                }
                State::Head => {
                    self.held.extend_from_slice(&input.split());
                    // Whatever follows a complete head comes back as input.
                    input = self.judge_head();
                }
            }
        }
    }

    /// A chunk-size line or a trailer line ended.
    fn end_of_line(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        self.state = match self.state {
            State::Chunked(Chunked::Size) => {
                let size = text.split(|&b| b == b';').next().unwrap_or(&[]);
                match std::str::from_utf8(size)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                {
                    Some(0) => State::Chunked(Chunked::Trailers),
                    Some(n) => State::Chunked(Chunked::Data(n)),
                    // hyper will refuse the bad size; stop following.
                    None => State::Passthrough,
                }
            }
            _ if text.is_empty() => State::Head,
            other => other,
        };
    }

    /// Judges the held head once it is complete; returns the bytes after
    /// it (empty while the head is still incomplete).
    fn judge_head(&mut self) -> BytesMut {
        // Blank lines before a request are allowed (RFC 9112 §2.2).
        loop {
            let blank = if self.held.starts_with(b"\r\n") {
                2
            } else if self.held.starts_with(b"\n") {
                1
            } else {
                break;
            };
            let blank = self.held.split_to(blank);
            self.ready.extend_from_slice(&blank);
        }
        // httparse finds the end of the head as hyper will, bare LFs included.
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let end = match httparse::Request::new(&mut headers).parse(&self.held) {
            Ok(httparse::Status::Complete(end)) => end,
            Ok(httparse::Status::Partial) if self.held.len() <= MAX_HEAD => {
                return BytesMut::new();
            }
            // Not (the start of) an HTTP request we can follow, e.g. a TLS
            // hello sent to a plain port, or more headers than we look at:
            // hyper answers that itself, so do not hold it.
            _ => {
                self.give_up();
                return BytesMut::new();
            }
        };
        let head = self.held.split_to(end);
        let rest = self.held.split();
        self.state = match Framing::of(&head) {
            Some(Framing::Smuggling) => {
                self.ready.extend_from_slice(REJECTED);
                self.state = State::Closed;
                return BytesMut::new();
            }
            Some(Framing::Length(0)) | Some(Framing::None) => State::Head,
            Some(Framing::Length(n)) => State::Body(n),
            Some(Framing::Chunked) => State::Chunked(Chunked::Size),
            // After CONNECT or an Upgrade the next bytes may be a tunnel, or
            // (when the upgrade is refused) the next request. Judge them as a
            // head: tunnel bytes (TLS, WebSocket frames) are not one and are
            // passed on untouched; a request is checked like any other.
            Some(Framing::Opaque) => State::Head,
            None => State::Passthrough,
        };
        self.ready.extend_from_slice(&head);
        rest
    }

    /// Stops following: everything held and to come goes to hyper as is.
    fn give_up(&mut self) {
        let held = self.held.split();
        self.ready.extend_from_slice(&held);
        self.state = State::Passthrough;
    }
}

/// How a request head frames its body.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Both Content-Length and Transfer-Encoding.
    Smuggling,
    /// CONNECT or an upgrade: what follows may not be HTTP.
    Opaque,
}

impl Framing {
    /// `None` when the head cannot be parsed (hyper will answer it).
    fn of(head: &[u8]) -> Option<Framing> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
            return None;
        }
        let mut length = None;
        let mut transfer_encoding = None;
        let mut upgrade = false;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                length = Some(header.value);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = Some(header.value);
            } else if header.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if request.method == Some("CONNECT") || upgrade {
            return Some(Framing::Opaque);
        }
        match (length, transfer_encoding) {
            (Some(_), Some(_)) => Some(Framing::Smuggling),
            (None, Some(te)) => {
                let chunked_last = std::str::from_utf8(te).ok().is_some_and(|te| {
                    te.rsplit(',')
                        .next()
                        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                });
                // A non-chunked transfer coding: hyper refuses it.
                chunked_last.then_some(Framing::Chunked)
            }
            (Some(cl), None) => std::str::from_utf8(cl)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Framing::Length),
            (None, None) => Some(Framing::None),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.ready.is_empty() {
                let n = self.ready.len().min(buf.remaining());
                buf.put_slice(&self.ready[..n]);
                self.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.state == State::Closed {
                // The stand-in request was handed over; its answer closes
                // the connection. Nothing more is read from this client.
                return Poll::Pending;
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // End of input: whatever is held goes to hyper to judge.
                    self.give_up();
                    if self.ready.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    let bytes = Bytes::copy_from_slice(read.filled());
                    self.feed(&bytes);
                }
                other => return other,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A service that answers the guard's stand-in requests with 400 and passes
/// every other request to `S`.
#[derive(Debug, Clone)]
pub struct Guarded<S>(pub S);

/// The body of a [`Guarded`] response: the inner service's, or the 400's.
pub type GuardedBody<B> = Either<B, Full<Bytes>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Guarded<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<GuardedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if let Some(reason) = req.headers().get(REJECT_HEADER) {
            let reason = String::from_utf8_lossy(reason.as_bytes()).into_owned();
            tracing::debug!("refused a request: {reason}");
            let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!(
                "400 Bad Request: {reason}. A request must give its length one way only \
                 (RFC 9112 §6.1); sending both is how request smuggling starts.\n"
            )))));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return Box::pin(std::future::ready(Ok(response)));
        }
        let inner = self.0.call(req);
        Box::pin(async move { Ok(inner.await?.map(Either::Left)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns what hyper would see.
    fn through(input: &[u8], step: usize) -> Vec<u8> {
        let mut guard = FramingGuard::new(tokio::io::empty());
        for piece in input.chunks(step) {
            guard.feed(piece);
        }
        guard.ready.to_vec()
    }

    #[test]
    fn ordinary_requests_pass_unchanged_in_any_pieces() {
        let input: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
            POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;ext=1\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n\
            GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 2, 3, 7, 64, input.len()] {
            assert_eq!(through(input, step), input, "in pieces of {step}");
        }
    }

    #[test]
    fn both_lengths_are_replaced_by_the_stand_in_and_nothing_follows() {
        let input: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
            0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 5, input.len()] {
            let seen = through(input, step);
            let mut expected = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
            expected.extend_from_slice(REJECTED);
            assert_eq!(seen, expected, "in pieces of {step}");
        }
    }

    #[test]
    fn a_smuggled_request_inside_a_body_is_counted_as_body() {
        // The body, by Content-Length, contains what looks like a request.
        let body: &[u8] =
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut input = format!(
            "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(through(&input, 3), input);
    }

    #[test]
    fn upgrades_and_tunnels_stop_the_guard() {
        let input: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\
            \x81\x05hello then anything, even Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(through(input, 4), input);
        let tunnel: &[u8] = b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01 tls bytes";
        assert_eq!(through(tunnel, 4), tunnel);
    }

    #[test]
    fn bytes_that_cannot_become_a_head_are_not_held() {
        let mut guard = FramingGuard::new(tokio::io::empty());
        guard.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
        assert_eq!(&guard.ready[..3], b"\x16\x03\x01");
        let mut partial = FramingGuard::new(tokio::io::empty());
        partial.feed(b"GET /a HTTP/1.1\r\nHost: x\r\n");
        assert!(partial.ready.is_empty(), "a partial head waits for its end");
    }

    #[test]
    fn a_refused_upgrade_does_not_switch_the_guard_off() {
        let input: &[u8] = b"GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let mut expected = b"GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n\r\n".to_vec();
        expected.extend_from_slice(REJECTED);
        assert_eq!(through(input, 5), expected);
        let connect: &[u8] = b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let mut expected = b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n".to_vec();
        expected.extend_from_slice(REJECTED);
        assert_eq!(through(connect, 7), expected);
    }

    #[test]
    fn bare_lf_heads_pass_and_are_judged() {
        let lf: &[u8] = b"GET /lf HTTP/1.1\nHost: x\n\n";
        assert_eq!(through(lf, 3), lf);
        let mut smuggling = lf.to_vec();
        smuggling.extend_from_slice(
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        let mut expected = lf.to_vec();
        expected.extend_from_slice(REJECTED);
        assert_eq!(through(&smuggling, 4), expected);
    }

    #[test]
    fn unparseable_heads_go_to_hyper_to_refuse() {
        let input: &[u8] = b"NOT HTTP AT ALL\r\n\r\nmore";
        assert_eq!(through(input, 3), input);
    }

    #[test]
    fn framing_is_read_from_the_head() {
        let of = |head: &str| Framing::of(head.as_bytes());
        assert_eq!(of("GET / HTTP/1.1\r\n\r\n"), Some(Framing::None));
        assert_eq!(
            of("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            Some(Framing::Length(12))
        );
        assert_eq!(
            of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Some(Framing::Chunked)
        );
        assert_eq!(
            of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 3\r\n\r\n"),
            Some(Framing::Smuggling)
        );
        assert_eq!(
            of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            None
        );
    }
}

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

use crate::lab_headers::REJECT_HEADER;

/// A head larger than this is not held back: hyper refuses it (431).
const MAX_HEAD: usize = 512 * 1024;

/// Why the guard replaced what the client sent with a stand-in request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// Both Content-Length and Transfer-Encoding (400).
    Smuggling,
    /// The HTTP/2 connection preface on an HTTP/1.1 listener (505).
    Http2,
    /// A request head that did not arrive whole within the header timeout (408).
    HeadTimeout,
}

impl Rejection {
    const ALL: [Rejection; 3] = [
        Rejection::Smuggling,
        Rejection::Http2,
        Rejection::HeadTimeout,
    ];

    /// The reason its stand-in request carries in [`REJECT_HEADER`].
    fn reason(self) -> &'static str {
        match self {
            Rejection::Smuggling => "both Content-Length and Transfer-Encoding",
            Rejection::Http2 => "an HTTP/2 connection preface",
            Rejection::HeadTimeout => "request head not finished in time",
        }
    }

    /// The rejection a stand-in's [`REJECT_HEADER`] names.
    fn of_reason(reason: &str) -> Option<Rejection> {
        Rejection::ALL
            .into_iter()
            .find(|why| why.reason() == reason)
    }

    /// The stand-in request that carries this rejection to [`Guarded`]: a
    /// small GET hyper parses like any other.
    fn stand_in(self) -> Vec<u8> {
        format!(
            "GET / HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n{REJECT_HEADER}: {}\r\n\r\n",
            self.reason()
        )
        .into_bytes()
    }
}

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

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
    /// An unfinished head or chunk-size/trailer line, not yet judged.
    held: BytesMut,
    /// Bytes judged and ready for hyper that did not fit its buffer yet (or
    /// the stand-in request).
    ready: BytesMut,
    /// How long a request head may take from its first byte (slowloris).
    head_timeout: Option<std::time::Duration>,
    /// When the head being held must be whole; armed while one is held.
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once the connection became a tunnel ([`crate::server::Conn::tunneled`]).
    tunneled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What [`State::scan`] found in a run of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Every byte may pass as it is.
    Pass,
    /// The first `n` bytes may pass; the rest is an unfinished head or
    /// line, held back until the rest of it arrives.
    Hold(usize),
    /// The first `n` bytes may pass; then comes a request to refuse (both
    /// lengths, an HTTP/2 preface): it is replaced by the stand-in and
    /// nothing more is read.
    Reject(usize, Rejection),
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S) -> FramingGuard<S> {
        FramingGuard {
            inner,
            state: State::Head,
            held: BytesMut::new(),
            ready: BytesMut::new(),
            head_timeout: None,
            head_deadline: None,
            tunneled: None,
        }
    }

    /// Stops judging once `flag` is set: the connection is then a tunnel
    /// (WebSocket, CONNECT), and its bytes are not HTTP requests.
    pub fn until_tunneled(
        self,
        flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> FramingGuard<S> {
        FramingGuard {
            tunneled: Some(flag),
            ..self
        }
    }

    /// [`FramingGuard::new`], answering 408 for a request head not whole
    /// within `timeout` of its first byte (a slowloris client trickles one).
    /// Needs a tokio runtime with its timer.
    pub fn with_head_timeout(inner: S, timeout: std::time::Duration) -> FramingGuard<S> {
        FramingGuard {
            head_timeout: Some(timeout),
            ..FramingGuard::new(inner)
        }
    }

    /// A head started and is held: its time starts now (once).
    fn arm_head_deadline(&mut self) {
        if self.state == State::Head
            && self.head_deadline.is_none()
            && let Some(timeout) = self.head_timeout
        {
            self.head_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        }
    }

    /// Judges what `held` has become after more bytes arrived, moving what
    /// may pass to `ready`.
    fn judge_held(&mut self) {
        match self.state.scan(&self.held) {
            Scan::Pass => {
                let held = self.held.split();
                self.ready.extend_from_slice(&held);
            }
            Scan::Hold(n) => {
                let judged = self.held.split_to(n);
                self.ready.extend_from_slice(&judged);
            }
            Scan::Reject(n, why) => {
                let judged = self.held.split_to(n);
                self.ready.extend_from_slice(&judged);
                self.reject(why);
            }
        }
        if self.held.is_empty() {
            self.head_deadline = None;
        }
    }

    /// Replaces the request being read by the stand-in; reads no more.
    fn reject(&mut self, why: Rejection) {
        self.held.clear();
        self.ready.extend_from_slice(&why.stand_in());
        self.state = State::Closed;
        self.head_deadline = None;
    }

    /// Stops following: everything held and to come goes to hyper as is.
    fn give_up(&mut self) {
        let held = self.held.split();
        self.ready.extend_from_slice(&held);
        self.state = State::Passthrough;
    }
}

impl State {
    /// Follows `bytes` through the framing from this state, in place: no
    /// byte is copied. Stops where a head or a line is unfinished (it is
    /// judged again, from its start, when more bytes arrive).
    fn scan(&mut self, bytes: &[u8]) -> Scan {
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            match *self {
                State::Passthrough => return Scan::Pass,
                // Nothing is read after a rejection (see poll_read).
                State::Closed => return Scan::Hold(at),
                State::Body(left) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    *self = match left - n {
                        0 => State::Head,
                        left => State::Body(left),
                    };
                }
                State::Chunked(Chunked::Data(left)) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    *self = State::Chunked(match left - n {
                        0 => Chunked::DataEnd(2),
                        left => Chunked::Data(left),
                    });
                }
                State::Chunked(Chunked::DataEnd(left)) => {
                    at += 1;
                    *self = State::Chunked(match left {
                        1 => Chunked::Size,
                        left => Chunked::DataEnd(left - 1),
                    });
                }
                State::Chunked(Chunked::Size) | State::Chunked(Chunked::Trailers) => {
                    // Line-based: a line is judged when its LF arrives.
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_HEAD {
                            *self = State::Passthrough;
                            return Scan::Pass;
                        }
                        return Scan::Hold(at);
                    };
                    self.end_of_line(&rest[..=end]);
                    at += end + 1;
                }
                State::Head => {
                    // Blank lines before a request are allowed (RFC 9112 §2.2).
                    if rest.starts_with(b"\r\n") {
                        at += 2;
                        continue;
                    }
                    if rest[0] == b'\n' {
                        at += 1;
                        continue;
                    }
                    // HTTP/2 without negotiation: answer it rather than drop it.
                    if rest.starts_with(HTTP2_PREFACE) {
                        return Scan::Reject(at, Rejection::Http2);
                    }
                    match judge_head(rest) {
                        Head::Partial if rest.len() <= MAX_HEAD => return Scan::Hold(at),
                        Head::Complete(_, Some(Framing::Smuggling)) => {
                            return Scan::Reject(at, Rejection::Smuggling);
                        }
                        Head::Complete(end, framing) => {
                            at += end;
                            *self = match framing {
                                // The body is framed the same way with or without an
                                // Upgrade or CONNECT (hyper does so too). What follows
                                // may then be a tunnel, or (when the upgrade is
                                // refused) the next request: it is judged as a head.
                                // Tunnel bytes (TLS, WebSocket frames) are not one
                                // and are passed on untouched; a request is checked
                                // like any other.
                                Some(Framing::Length(0)) | Some(Framing::None) => State::Head,
                                Some(Framing::Length(n)) => State::Body(n),
                                Some(Framing::Chunked) => State::Chunked(Chunked::Size),
                                Some(Framing::Smuggling) | None => State::Passthrough,
                            };
                        }
                        // Not (the start of) an HTTP request we can follow, e.g. a
                        // TLS hello sent to a plain port, more headers than we
                        // look at, or a head too large: hyper answers that
                        // itself, so do not hold it.
                        Head::Partial | Head::Invalid => {
                            *self = State::Passthrough;
                            return Scan::Pass;
                        }
                    }
                }
            }
        }
        Scan::Pass
    }

    /// A chunk-size line or a trailer line ended.
    fn end_of_line(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        *self = match *self {
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
}

/// A request head, as far as the bytes so far tell.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The head is not finished yet.
    Partial,
    /// A complete head of this many bytes, and how it frames its body
    /// (`None`: it frames it in a way hyper will refuse).
    Complete(usize, Option<Framing>),
    /// Not a request head (or more headers than the guard looks at).
    Invalid,
}

/// Parses a request head once, as hyper will (bare LFs included).
fn judge_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(end)) => Head::Complete(end, Framing::of(&request)),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(_) => Head::Invalid,
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
}

impl Framing {
    /// How a parsed head frames its body; `None` for a transfer coding
    /// hyper refuses (it answers that itself).
    fn of(request: &httparse::Request<'_, '_>) -> Option<Framing> {
        let mut length = None;
        let mut transfer_encoding = None;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                length = Some(header.value);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = Some(header.value);
            }
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state != State::Passthrough
            && this.state != State::Closed
            && this
                .tunneled
                .as_ref()
                .is_some_and(|flag| flag.load(std::sync::atomic::Ordering::Acquire))
        {
            this.head_deadline = None;
            this.give_up();
        }
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Closed {
                // The stand-in request was handed over; its answer closes
                // the connection. Nothing more from this client reaches
                // hyper: read and dropped, until the client closes.
                let mut scratch = [0u8; 2048];
                let mut sink = ReadBuf::new(&mut scratch);
                loop {
                    std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sink))?;
                    if sink.filled().is_empty() {
                        return Poll::Ready(Ok(())); // end of input
                    }
                    sink.clear();
                }
            }
            if this.held.is_empty() {
                // The usual case: read straight into hyper's buffer and
                // judge the bytes where they are. Only an unfinished head
                // at the end is taken back out (and held).
                let before = buf.filled().len();
                std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    return Poll::Ready(Ok(())); // end of input
                }
                let passed = match this.state.scan(new) {
                    Scan::Pass => return Poll::Ready(Ok(())),
                    Scan::Hold(n) => {
                        this.held.extend_from_slice(&new[n..]);
                        this.arm_head_deadline();
                        n
                    }
                    Scan::Reject(n, why) => {
                        this.reject(why);
                        n
                    }
                };
                buf.set_filled(before + passed);
                if passed > 0 {
                    return Poll::Ready(Ok(()));
                }
                // Nothing may pass yet (returning no bytes would read as
                // the end of input): go on with the held head.
                continue;
            }
            // A head or a line is unfinished: add to it. It can only end
            // with an LF, so it is judged again only when one arrives.
            this.held.reserve(8 * 1024);
            let start = this.held.len();
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.held) {
                Poll::Ready(Ok(0)) => {
                    // End of input: whatever is held goes to hyper to judge.
                    this.give_up();
                    if this.ready.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(_)) if !this.held[start..].contains(&b'\n') => {
                    if this.held.len() > MAX_HEAD {
                        this.give_up();
                    }
                }
                Poll::Ready(Ok(_)) => {
                    this.judge_held();
                    if !this.held.is_empty() {
                        this.arm_head_deadline();
                    }
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    // Waiting for the rest of a head: not past its deadline.
                    match this.head_deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                        Some(Poll::Ready(())) => this.reject(Rejection::HeadTimeout),
                        _ => return Poll::Pending,
                    }
                }
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

/// A service that answers the guard's stand-in requests with 400, a body
/// declared larger than `--max-body` with 413, and passes every other
/// request to `S`.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    service: S,
    max_body: u64,
}

impl<S> Guarded<S> {
    pub fn new(service: S, max_body: u64) -> Guarded<S> {
        Guarded { service, max_body }
    }
}

/// A small plain-text answer that closes the connection (what follows on it
/// cannot be trusted, or is a body nobody will read).
fn refusal<B>(status: StatusCode, text: String) -> Response<GuardedBody<B>> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

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
            let (status, text) = match Rejection::of_reason(&reason) {
                Some(Rejection::Http2) => (
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    "505 HTTP Version Not Supported: this listener speaks HTTP/1.1; the client \
                     sent the HTTP/2 connection preface without negotiating HTTP/2 first.\n"
                        .to_string(),
                ),
                Some(Rejection::HeadTimeout) => (
                    StatusCode::REQUEST_TIMEOUT,
                    "408 Request Timeout: the request head did not arrive whole in time \
                     (--header-timeout); a client that trickles its headers holds a \
                     connection for nothing (slowloris).\n"
                        .to_string(),
                ),
                Some(Rejection::Smuggling) => (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "400 Bad Request: {reason}. A request must give its length one way only \
                         (RFC 9112 §6.1); sending both is how request smuggling starts.\n"
                    ),
                ),
                None => (
                    StatusCode::BAD_REQUEST,
                    format!("400 Bad Request: {reason}\n"),
                ),
            };
            return Box::pin(std::future::ready(Ok(refusal(status, text))));
        }
        // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
        // status code to any HTTP/1.1 request message that lacks a Host
        // header field" (hyper leaves this to the service).
        let hosts = req.headers().get_all(http::header::HOST).iter().count();
        if (req.version() == http::Version::HTTP_11 && hosts == 0) || hosts > 1 {
            return Box::pin(std::future::ready(Ok(refusal(
                StatusCode::BAD_REQUEST,
                format!(
                    "400 Bad Request: a request must carry one Host header (RFC 9112 §3.2); \
                     this one has {hosts}\n"
                ),
            ))));
        }
        // hyper has already refused a Content-Length that is not one number.
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
        if let Some(length) = declared.filter(|&length| length > self.max_body) {
            tracing::debug!(
                "refused a body of {length} bytes (--max-body {})",
                self.max_body
            );
            return Box::pin(std::future::ready(Ok(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "413 Content Too Large: this request declares a body of {length} bytes; \
                     this server accepts at most {} (--max-body).\n",
                    self.max_body
                ),
            ))));
        }
        let inner = self.service.call(req);
        Box::pin(async move { Ok(inner.await?.map(Either::Left)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_util::FutureExt;
    use tokio::io::AsyncReadExt;

    /// A client that sends `data` in pieces of `step` bytes, one per read,
    /// then closes the connection, or keeps it `open` and sends nothing.
    struct Pieces {
        data: Vec<u8>,
        step: usize,
        open: bool,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.data.is_empty() && self.open {
                return Poll::Pending;
            }
            let n = self.step.min(self.data.len()).min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    /// What hyper would read through the guard when the client sends
    /// `input` in pieces of `step` bytes and hyper reads into buffers of
    /// `room` bytes: up to the end of input, or until the guard stops
    /// reading (after a rejection).
    fn read_through(input: &[u8], step: usize, room: usize) -> Vec<u8> {
        let mut guard = FramingGuard::new(Pieces {
            data: input.to_vec(),
            step,
            open: false,
        });
        let mut seen = Vec::new();
        let mut buf = vec![0; room];
        loop {
            match guard.read(&mut buf).now_or_never() {
                Some(Ok(0)) | None => return seen,
                Some(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Some(Err(err)) => panic!("read failed: {err}"),
            }
        }
    }

    /// [`read_through`] with hyper's usual 8 KiB buffer, and checked to be
    /// the same with a buffer of a few bytes.
    fn through(input: &[u8], step: usize) -> Vec<u8> {
        let seen = read_through(input, step, 8192);
        assert_eq!(read_through(input, step, 5), seen, "with a 5-byte buffer");
        seen
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
            expected.extend_from_slice(&Rejection::Smuggling.stand_in());
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
        let hello: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        assert_eq!(through(hello, hello.len()), hello);
        let mut partial = FramingGuard::new(Pieces {
            data: b"GET /a HTTP/1.1\r\nHost: x\r\n".to_vec(),
            step: 64,
            open: true,
        });
        let mut buf = [0; 64];
        assert!(
            partial.read(&mut buf).now_or_never().is_none(),
            "a partial head waits for its end (the client has not sent it yet)"
        );
        assert!(partial.held.starts_with(b"GET /a"));
    }

    #[test]
    fn a_refused_upgrade_does_not_switch_the_guard_off() {
        let input: &[u8] = b"GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let mut expected = b"GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n\r\n".to_vec();
        expected.extend_from_slice(&Rejection::Smuggling.stand_in());
        assert_eq!(through(input, 5), expected);
        let connect: &[u8] = b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let mut expected = b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n".to_vec();
        expected.extend_from_slice(&Rejection::Smuggling.stand_in());
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
        expected.extend_from_slice(&Rejection::Smuggling.stand_in());
        assert_eq!(through(&smuggling, 4), expected);
    }

    #[test]
    fn unparseable_heads_go_to_hyper_to_refuse() {
        let input: &[u8] = b"NOT HTTP AT ALL\r\n\r\nmore";
        assert_eq!(through(input, 3), input);
    }

    #[test]
    fn framing_is_read_from_the_head() {
        let of = |head: &str| match judge_head(head.as_bytes()) {
            Head::Complete(_, framing) => framing,
            other => panic!("{head:?} is not a complete head: {other:?}"),
        };
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

    #[test]
    fn a_stand_in_is_a_small_get_naming_its_reason() {
        assert_eq!(
            Rejection::Smuggling.stand_in(),
            b"GET / HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\
              x-lab-framing-error: both Content-Length and Transfer-Encoding\r\n\r\n"
        );
        for why in Rejection::ALL {
            assert_eq!(Rejection::of_reason(why.reason()), Some(why));
        }
        assert_eq!(Rejection::of_reason("anything else"), None);
    }

    #[test]
    fn an_http2_preface_is_replaced_by_its_stand_in() {
        let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        for step in [1, 4, preface.len()] {
            assert_eq!(
                through(preface, step),
                Rejection::Http2.stand_in(),
                "in pieces of {step}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_trickled_past_the_timeout_becomes_the_408_stand_in() {
        // The client sends the start of a head and then nothing (a slowloris
        // client would send a line now and then; time is what counts).
        let mut guard = FramingGuard::with_head_timeout(
            Pieces {
                data: b"GET /slow HTTP/1.1\r\nHost: x\r\nX-1: a\r\n".to_vec(),
                step: 64,
                open: true,
            },
            std::time::Duration::from_secs(1),
        );
        let mut buf = [0u8; 256];
        let started = tokio::time::Instant::now();
        let n = guard.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], Rejection::HeadTimeout.stand_in());
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(1));
    }
}

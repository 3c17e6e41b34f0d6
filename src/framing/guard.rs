//! [`FramingGuard`]: the client's connection, wrapped. It reads from the
//! client, lets [`super::scan`] judge the bytes, holds an unfinished head
//! back (under the head timeout), and gives hyper only what may pass, or
//! the stand-in request of a rejection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Rejection;
use super::scan::{MAX_HEAD, Scan, State};

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
    /// The largest request head let through (`--max-header-size`; 431 past it).
    max_head: usize,
    /// When the head being held must be whole; armed while one is held.
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once the connection became a tunnel ([`crate::server::Conn::tunneled`]).
    tunneled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S) -> FramingGuard<S> {
        FramingGuard {
            inner,
            state: State::Head,
            held: BytesMut::new(),
            ready: BytesMut::new(),
            head_timeout: None,
            max_head: super::DEFAULT_MAX_HEADER_SIZE,
            head_deadline: None,
            tunneled: None,
        }
    }

    /// Refuses (431) a request head larger than `max` bytes, request line
    /// and the blank line that ends it included.
    pub fn max_head(self, max: usize) -> FramingGuard<S> {
        FramingGuard {
            max_head: max,
            ..self
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
    /// within `timeout` of its first byte (a slowloris client trickles one;
    /// `None` waits as long as it takes). Needs a tokio runtime with its timer.
    pub fn with_head_timeout(inner: S, timeout: Option<std::time::Duration>) -> FramingGuard<S> {
        FramingGuard {
            head_timeout: timeout,
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
        match self.state.scan(&self.held, self.max_head) {
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
                let passed = match this.state.scan(new, this.max_head) {
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
                    if this.state == State::Head && this.held.len() > this.max_head {
                        this.reject(Rejection::HeadTooLarge);
                    } else if this.held.len() > MAX_HEAD {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::scan::{Framing, Head, judge_head};

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
    fn a_bare_lf_in_the_trailers_does_not_end_the_body() {
        // hyper reads `\n` and the "request" after it as trailers, up to the
        // CRLF CRLF, and the request with both lengths as the next one. The
        // guard used to end the body at the bare LF, count that request as
        // the hidden one's body of 118 bytes, and let it through.
        let allowed: &[u8] =
            b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              0\r\n\nGET /phantom HTTP/1.1\r\nContent-Length: 118\r\n\n\r\n\r\n";
        let smuggled: &[u8] = b"POST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\nAccept: application/json\r\n\r\n0\r\n\r\n";
        let mut input = allowed.to_vec();
        input.extend_from_slice(smuggled);
        let mut expected = allowed.to_vec();
        expected.extend_from_slice(&Rejection::Smuggling.stand_in());
        for step in [1, 7, input.len()] {
            assert_eq!(through(&input, step), expected, "in pieces of {step}");
        }
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
        // hyper's server takes equal lengths on two lines, not a list.
        assert_eq!(
            of("POST / HTTP/1.1\r\nContent-Length: 4\r\ncontent-length:4 \r\n\r\n"),
            Some(Framing::Length(4))
        );
        assert_eq!(of("POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\n"), None);
        assert_eq!(
            of("POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
            None
        );
        assert_eq!(of("POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n"), None);
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
            Some(std::time::Duration::from_secs(1)),
        );
        let mut buf = [0u8; 256];
        let started = tokio::time::Instant::now();
        let n = guard.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], Rejection::HeadTimeout.stand_in());
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(1));
    }
}

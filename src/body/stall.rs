//! `--body-timeout`, and who is to blame when a request body stops coming.
//!
//! A client that declares `Content-Length: 255`, sends 11 bytes and then
//! nothing holds a proxy's request open. The upstream waits for the rest,
//! gives up on its own clock (the real server's 3 s write timeout) and
//! closes the connection: to a proxy that only sees the close, that looks
//! like an upstream failing, and three such clients open a healthy
//! upstream's circuit breaker for everyone. It is the client's fault.
//!
//! [`WatchedBody`] sits on the request body as it streams upstream and
//! keeps a [`BodyProgress`]: how many bytes came, whether the body is
//! complete, and since when the proxy has been waiting for the client's
//! next bytes. It ends the body with [`Stalled`] after `--body-timeout`
//! without a byte (408 Request Timeout, nginx's `client_body_timeout`),
//! and when the upstream fails first the proxy asks
//! [`BodyProgress::stalled`]: a failure while the proxy had long been
//! waiting on the client is the client's, and is held against no upstream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
// tokio's clock: the same as std's, but a paused test runtime can move it.
use tokio::time::{Instant, Sleep};

use super::{BoxError, RequestBody};

/// How long the proxy must have been waiting on the client's body for an
/// upstream's failure to be the client's: long enough that the upstream
/// can only have been waiting too (a client uploading steadily pauses for
/// milliseconds, not seconds).
pub const BLAME_AFTER: Duration = Duration::from_secs(1);

/// The error a [`WatchedBody`] ends with after `--body-timeout` of silence.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body bytes for {after:?} (--body-timeout)")]
pub struct Stalled {
    pub after: Duration,
}

/// How a request body is coming along, shared between the body (which
/// the connection pool polls) and the proxy (which judges a failure).
#[derive(Debug)]
pub struct BodyProgress {
    start: Instant,
    received: AtomicU64,
    complete: AtomicBool,
    timed_out: AtomicBool,
    /// Milliseconds after `start`, plus one, since the proxy has waited
    /// for the client's next bytes; 0 while it is not waiting.
    waiting_since: AtomicU64,
}

/// What [`BodyProgress::stalled`] found: the client's body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Body bytes the client sent.
    pub received: u64,
    /// How long the proxy had been waiting for more.
    pub waited: Duration,
    /// `--body-timeout` ended it (else the upstream gave up first).
    pub timed_out: bool,
}

impl std::fmt::Display for Stall {
    /// "the client sent 11 bytes of its request body and then nothing for 3.0s".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the client sent {} bytes of its request body and then nothing for {:.1?}",
            self.received, self.waited
        )
    }
}

impl BodyProgress {
    fn new(complete: bool) -> BodyProgress {
        BodyProgress {
            start: Instant::now(),
            received: AtomicU64::new(0),
            complete: AtomicBool::new(complete),
            timed_out: AtomicBool::new(false),
            waiting_since: AtomicU64::new(0),
        }
    }

    /// The progress of no body at all: complete. One for the whole
    /// process, so that a request without a body allocates nothing here.
    pub fn none() -> Arc<BodyProgress> {
        static NONE: std::sync::LazyLock<Arc<BodyProgress>> =
            std::sync::LazyLock::new(|| Arc::new(BodyProgress::new(true)));
        NONE.clone()
    }

    /// Whether the client stopped sending: the body is not complete and
    /// the proxy has waited at least [`BLAME_AFTER`] for more, or
    /// `--body-timeout` ended it.
    pub fn stalled(&self) -> Option<Stall> {
        if self.complete.load(Ordering::Acquire) {
            return None;
        }
        let timed_out = self.timed_out.load(Ordering::Acquire);
        let since = self.waiting_since.load(Ordering::Acquire);
        let waited = if since == 0 {
            Duration::ZERO
        } else {
            self.start
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1))
        };
        (timed_out || waited >= BLAME_AFTER).then(|| Stall {
            received: self.received.load(Ordering::Relaxed),
            waited,
            timed_out,
        })
    }

    fn waiting(&self) {
        if self.waiting_since.load(Ordering::Relaxed) == 0 {
            let now = self.start.elapsed().as_millis() as u64 + 1;
            self.waiting_since.store(now, Ordering::Release);
        }
    }

    fn arrived(&self, bytes: usize) {
        self.waiting_since.store(0, Ordering::Release);
        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A request body watched for silence: see the module.
pub struct WatchedBody {
    inner: RequestBody,
    timeout: Option<Duration>,
    /// The silence so far, armed when the client's body last ran dry.
    silence: Option<Pin<Box<Sleep>>>,
    progress: Arc<BodyProgress>,
}

/// `body`, watched: after `timeout` (if any) without a byte it ends with
/// [`Stalled`]; the progress tells who failed when the upstream fails.
pub fn watched(body: RequestBody, timeout: Option<Duration>) -> (RequestBody, Arc<BodyProgress>) {
    use http_body_util::BodyExt;
    if body.is_end_stream() {
        return (body, BodyProgress::none());
    }
    let progress = Arc::new(BodyProgress::new(false));
    let watched = WatchedBody {
        inner: body,
        timeout,
        silence: None,
        progress: progress.clone(),
    };
    (watched.boxed(), progress)
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.silence = None;
                let bytes = frame.data_ref().map_or(0, Bytes::len);
                this.progress.arrived(bytes);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.progress.complete.store(true, Ordering::Release);
                this.progress.waiting_since.store(0, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Pending => {
                this.progress.waiting();
                let Some(timeout) = this.timeout else {
                    return Poll::Pending;
                };
                let silence = this
                    .silence
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if silence.as_mut().poll(cx).is_ready() {
                    this.progress.timed_out.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(Stalled { after: timeout }.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    /// A body that sends `first` and then nothing, ever.
    fn stalling(first: &'static [u8]) -> RequestBody {
        let head =
            futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(Bytes::from_static(first)))]);
        let stream = futures_util::StreamExt::chain(head, futures_util::stream::pending());
        StreamBody::new(stream).boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_stopped_at_the_timeout() {
        let (mut body, progress) = watched(stalling(b"hello"), Some(Duration::from_secs(10)));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "hello");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<Stalled>(), "{err}");
        let stall = progress.stalled().expect("stalled");
        assert_eq!(stall.received, 5);
        assert!(stall.timed_out);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_the_clients_only_after_a_real_wait() {
        let (mut body, progress) = watched(stalling(b"hi"), None);
        body.frame().await.unwrap().unwrap();
        // Polled once more: now waiting on the client.
        let pending = tokio::time::timeout(Duration::from_millis(10), body.frame()).await;
        assert!(pending.is_err());
        assert_eq!(progress.stalled(), None, "10 ms is an upload's pause");
        tokio::time::advance(BLAME_AFTER).await;
        let stall = progress.stalled().expect("a second of silence");
        assert_eq!(stall.received, 2);
        assert!(!stall.timed_out);
    }

    #[tokio::test]
    async fn a_complete_body_is_never_stalled() {
        let body: RequestBody = crate::body::full("abc").map_err(BoxError::from).boxed();
        let (body, progress) = watched(body, None);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        assert_eq!(progress.stalled(), None);
    }
}

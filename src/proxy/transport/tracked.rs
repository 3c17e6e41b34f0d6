//! Which exchange a connection is on, and whether any byte of the answer
//! came: how the pool tells a pooled connection the upstream had already
//! closed (reused, not a byte back: safe to send again) from an upstream
//! that failed.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

/// How one upstream connection has been used, shared by the connection's
/// stream and the pool's record of it: how many exchanges
/// were started on it (a write after the previous answer began one), and
/// whether any byte came back since the proxy last wrote. That is how the
/// proxy tells, as Go's Transport does, a pooled connection that was
/// already closed (reused, not a byte of an answer) from an upstream that
/// failed.
#[derive(Clone, Debug)]
pub(super) struct ConnectionUse(Arc<UseCounts>);

#[derive(Debug)]
struct UseCounts {
    exchanges: AtomicU64,
    /// Bytes came since the last write (true at the start: the first
    /// write begins an exchange).
    read_since_write: AtomicBool,
}

impl Default for ConnectionUse {
    fn default() -> Self {
        ConnectionUse(Arc::new(UseCounts {
            exchanges: AtomicU64::new(0),
            read_since_write: AtomicBool::new(true),
        }))
    }
}

impl ConnectionUse {
    /// Whether the failed request went out on a connection that had
    /// carried another exchange before it (`unsent`: the request itself
    /// began none).
    pub(super) fn reused(&self, unsent: bool) -> bool {
        let started = self.0.exchanges.load(Ordering::Relaxed);
        if unsent { started >= 1 } else { started >= 2 }
    }

    /// Whether any byte arrived since the request was written.
    pub(super) fn answered(&self) -> bool {
        self.0.read_since_write.load(Ordering::Relaxed)
    }

    /// A write: the first after an answer (or the first at all) begins an
    /// exchange.
    fn wrote(&self) {
        if self.0.read_since_write.swap(false, Ordering::Relaxed) {
            self.0.exchanges.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An upstream connection that notes, for [`ConnectionUse`], each write
/// and each read that brought bytes. It sits between two [`TokioIo`]s (the
/// pool speaks hyper's IO traits, this speaks tokio's): tokio's `ReadBuf`
/// shows what a read filled, without a copy. Above TLS, so only the
/// answer's bytes count, not the handshake's.
#[derive(Debug)]
pub(super) struct Tracked<S> {
    inner: S,
    used: ConnectionUse,
}

impl<S> Tracked<S> {
    pub(super) fn new(inner: S) -> Tracked<S> {
        Tracked {
            inner,
            used: ConnectionUse::default(),
        }
    }

    /// The use this connection's reads and writes are noted in.
    pub(super) fn used(&self) -> &ConnectionUse {
        &self.used
    }

    fn note_written(&self, polled: &Poll<std::io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.used.wrote();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.used.0.read_since_write.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_written(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_written(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exchanges a connection carried, as [`Tracked`] counts them: a
    /// write after an answer begins one; a failure with no byte since the
    /// last write on a connection that carried one before is a stale one.
    #[test]
    fn a_connection_counts_exchanges_and_answers() {
        let used = ConnectionUse::default();
        // The first request: written (in two writes), answered.
        used.wrote();
        used.wrote();
        assert!(!used.answered());
        assert!(!used.reused(false), "a fresh connection");
        used.0.read_since_write.store(true, Ordering::Relaxed);
        // The second: written, then the close, no byte back.
        used.wrote();
        assert!(!used.answered());
        assert!(used.reused(false), "the second exchange on it");
        // A request hyper never started to write on it is the second too.
        let once = ConnectionUse::default();
        once.wrote();
        once.0.read_since_write.store(true, Ordering::Relaxed);
        assert!(once.reused(true));
        assert!(!ConnectionUse::default().reused(true));
    }
}

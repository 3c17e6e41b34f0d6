//! An upstream's response body, streamed to the proxy's client, that drives
//! its connection as it goes and gives the connection back to the pool when
//! the body has been read to its end (Go's `bodyEOFSignal`).
//!
//! Dropped before its end (the client went away, a timeout), it closes the
//! connection instead: the rest of that response is still on its way, and no
//! other request could use the connection before it had all been read.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::pool::{Pool, Pooled};

/// A response body from an upstream: hyper's, with the connection it came on
/// (while the body has not ended and the connection may be reused).
pub struct UpstreamBody {
    body: Incoming,
    lease: Option<Lease>,
}

/// A connection lent to one response: it goes back to `pool` at the body's
/// end (without a pool, `--max-idle-per-host 0`, it is closed then).
struct Lease {
    pooled: Pooled,
    pool: Option<Pool>,
}

impl UpstreamBody {
    /// A body whose connection is not the pool's (an upgrade's, or one
    /// already given back).
    pub(super) fn unpooled(body: Incoming) -> UpstreamBody {
        UpstreamBody { body, lease: None }
    }

    /// A body that drives `pooled` and gives it back to `pool` at its end
    /// (or closes it then, without a pool).
    pub(super) fn pooled(body: Incoming, pooled: Pooled, pool: Option<Pool>) -> UpstreamBody {
        UpstreamBody {
            body,
            lease: Some(Lease { pooled, pool }),
        }
    }

    /// The body is over: the connection goes back (once).
    fn ended(&mut self) {
        if let Some(Lease {
            pooled,
            pool: Some(pool),
        }) = self.lease.take()
        {
            pool.give_back(pooled);
        }
    }
}

impl Drop for UpstreamBody {
    /// A body read to its end without a last poll (its length was known)
    /// still gives its connection back; any other closes it.
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.ended();
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.lease.is_some())
            .finish()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let mut polled = Pin::new(&mut this.body).poll_frame(cx);
        // Nothing buffered: let the connection read (it fills the body),
        // then look again.
        if polled.is_pending()
            && let Some(lease) = &mut this.lease
        {
            lease.pooled.drive(cx);
            polled = Pin::new(&mut this.body).poll_frame(cx);
        }
        match &polled {
            Poll::Ready(None) => this.ended(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => {
                // The last frame: one more turn lets hyper see the
                // exchange finished, so the connection is ready again.
                if let Some(lease) = &mut this.lease {
                    lease.pooled.drive(cx);
                }
                this.ended();
            }
            // A broken body: the connection is not reused.
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

//! `--max-body` for request bodies whose size is not declared up front
//! (chunked): count the bytes as they stream to the upstream, and stop the
//! exchange the moment they pass the limit.
//!
//! A declared `Content-Length` over the limit never gets this far: the
//! listener answers 413 before reading the body (see [`crate::framing`]).
//! A chunked body can only be judged as it arrives, and by then part of it
//! is on its way upstream. Ending the stream early would hand the upstream a
//! shorter body that looks complete; so the body instead ends with an error
//! ([`TooLarge`]), which makes the connection pool abort the upstream
//! connection before the last chunk (the upstream never sees a complete
//! request), and fires a [`CancellationToken`]: the proxy, which races the
//! round trip against it, answers the client 413 (even when the upstream
//! has already answered, the error still cuts the body off).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio_util::sync::CancellationToken;

use super::stall::{self, BodyProgress};
use super::{Body, BoxError, RequestBody};

/// The error a [`LimitedBody`] ends with when it passes its limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body grew past {max} bytes (--max-body)")]
pub struct TooLarge {
    pub max: u64,
}

/// A request body that may carry at most `max` bytes.
pub struct LimitedBody<B> {
    inner: B,
    max: u64,
    seen: u64,
    exceeded: CancellationToken,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; `exceeded` is cancelled when it passes `max` bytes.
    pub fn new(inner: B, max: u64, exceeded: CancellationToken) -> LimitedBody<B> {
        LimitedBody {
            inner,
            max,
            seen: 0,
            exceeded,
        }
    }
}

impl<B> HttpBody for LimitedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.exceeded.is_cancelled() {
            return Poll::Ready(Some(Err(TooLarge { max: self.max }.into())));
        }
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            self.seen += data.len() as u64;
            if self.seen > self.max {
                // An error, not an early end: the pool then aborts the
                // upstream connection before the last chunk, so the upstream
                // never takes a cut body for a whole one. Whoever races the
                // exchange against `exceeded` answers 413.
                self.exceeded.cancel();
                return Poll::Ready(Some(Err(TooLarge { max: self.max }.into())));
            }
        }
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `body` as the pool sends it: counted against `max` as it streams, with
/// the token that is cancelled when it passes `max`; none for a body known
/// to be empty or when there is no limit (most requests: nothing to count,
/// nothing to wait for).
pub fn limited(body: Body, max: u64) -> (RequestBody, Option<CancellationToken>) {
    if body.is_end_stream() || max == u64::MAX {
        (body.map_err(Into::into).boxed(), None)
    } else {
        let exceeded = CancellationToken::new();
        let body = LimitedBody::new(body, max, exceeded.clone()).boxed();
        (body, Some(exceeded))
    }
}

/// Waits until `exceeded` is cancelled; never, when there is no token.
pub async fn exceeded(exceeded: Option<&CancellationToken>) {
    match exceeded {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Whether the body has passed its limit.
pub fn was_exceeded(exceeded: Option<&CancellationToken>) -> bool {
    exceeded.is_some_and(CancellationToken::is_cancelled)
}

/// What [`send_limited`] returns: what `send` returned (`None` when the
/// body grew past `max` and the exchange was dropped), and how the
/// client's body came along: when the exchange failed while the client had
/// stopped sending ([`BodyProgress::stalled`]), the failure is the client's.
pub struct Limited<T> {
    pub sent: Option<T>,
    pub body: Arc<BodyProgress>,
}

impl<R, E> Limited<Result<R, E>> {
    /// The exchange failed while the client had stopped sending its body:
    /// the failure is the client's (408), whoever gave up first.
    pub fn client_stalled(&self) -> Option<super::stall::Stall> {
        match &self.sent {
            Some(Err(_)) => self.body.stalled(),
            _ => None,
        }
    }
}

/// Sends `body` with `send`, counting it against `max` as it streams and
/// ending it after `body_timeout` without a byte from the client (see
/// [`super::stall`]).
pub async fn send_limited<T, F, Fut>(
    body: Body,
    max: u64,
    body_timeout: Option<Duration>,
    send: F,
) -> Limited<T>
where
    F: FnOnce(RequestBody) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (body, too_large) = limited(body, max);
    let (body, progress) = stall::watched(body, body_timeout);
    let sent = tokio::select! {
        // First: a body past the limit also fails the exchange; the 413 is
        // the answer, not the 400 that failure would give.
        biased;
        () = exceeded(too_large.as_ref()) => None,
        sent = send(body) => Some(sent),
    };
    // The overflow may have failed the exchange in the same turn that
    // finished it (the pool writes the body as it waits for the answer).
    let sent = sent.filter(|_| !was_exceeded(too_large.as_ref()));
    Limited {
        sent,
        body: progress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use http_body_util::StreamBody;

    fn chunks(
        sizes: &[usize],
    ) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = sizes
            .iter()
            .map(|&n| Ok(Frame::data(Bytes::from(vec![b'x'; n]))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[test]
    fn a_body_within_the_limit_passes_whole() {
        let token = CancellationToken::new();
        let body = LimitedBody::new(chunks(&[4, 4, 2]), 10, token.clone());
        let all = body.collect().now_or_never().unwrap().unwrap().to_bytes();
        assert_eq!(all.len(), 10);
        assert!(!token.is_cancelled());
    }

    #[test]
    fn a_body_past_the_limit_stops_and_says_so() {
        let token = CancellationToken::new();
        let mut body = LimitedBody::new(chunks(&[4, 4, 4, 4]), 10, token.clone());
        let mut got = 0;
        let failed = loop {
            match body.frame().now_or_never() {
                Some(Some(Ok(frame))) => got += frame.into_data().unwrap().len(),
                Some(Some(Err(err))) => break err,
                other => panic!("the body must fail, not end or wait: {}", other.is_some()),
            }
        };
        assert_eq!(got, 8, "the chunk that crossed the limit is not passed on");
        assert!(
            failed.to_string().contains("grew past 10 bytes"),
            "{failed}"
        );
        assert!(token.is_cancelled());
    }
}

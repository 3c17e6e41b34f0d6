//! The flush interval (刷新间隔, Go's `ReverseProxy.FlushInterval`): how often
//! a response body copied from the upstream is pushed to the client.
//!
//! Go buffers the copy and flushes every `FlushInterval`, except for bodies
//! that must stream: a response of unknown length or `text/event-stream` is
//! flushed after every write (Go's `flushInterval(res)` returns -1 for them).
//! hyper writes each chunk as soon as the upstream sends it, which is Go's -1;
//! with `--flush-interval D` the lab coalesces the chunks of other responses
//! and sends them at most every D, as Go's periodic flush does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::Body;

/// Above this many buffered bytes a flush happens whatever the interval.
const MAX_BUFFERED: usize = 64 * 1024;

/// Whether a response must be flushed at once (Go: `flushInterval` is -1).
pub fn must_stream(headers: &HeaderMap) -> bool {
    let unknown_length = !headers.contains_key(header::CONTENT_LENGTH);
    let event_stream = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    unknown_length || event_stream
}

/// Wraps `body` so its data goes out at most every `interval` (or when
/// `MAX_BUFFERED` bytes (64 KiB) wait, or at the end).
pub fn every(body: Body, interval: Duration) -> Body {
    http_body_util::BodyExt::boxed(Coalesce {
        inner: body,
        interval,
        buffered: BytesMut::new(),
        deadline: None,
        pending_trailers: None,
        done: false,
    })
}

struct Coalesce {
    inner: Body,
    interval: Duration,
    buffered: BytesMut,
    /// When the buffered bytes must go out: armed by the first buffered byte.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Trailers that arrived while data was still buffered.
    pending_trailers: Option<HeaderMap>,
    done: bool,
}

impl Coalesce {
    fn take_buffered(&mut self) -> Frame<Bytes> {
        self.deadline = None;
        Frame::data(std::mem::take(&mut self.buffered).freeze())
    }
}

impl HttpBody for Coalesce {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            if self.done {
                if !self.buffered.is_empty() {
                    return Poll::Ready(Some(Ok(self.take_buffered())));
                }
                return Poll::Ready(self.pending_trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if self.deadline.is_none() {
                            let at = Instant::now() + self.interval;
                            self.deadline = Some(Box::pin(tokio::time::sleep_until(at)));
                        }
                        self.buffered.extend_from_slice(&data);
                        if self.buffered.len() >= MAX_BUFFERED {
                            return Poll::Ready(Some(Ok(self.take_buffered())));
                        }
                    }
                    Err(frame) => {
                        self.pending_trailers = frame.into_trailers().ok();
                        self.done = true;
                    }
                },
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => self.done = true,
                Poll::Pending => {
                    // Nothing new from the upstream: is it time to flush?
                    if let Some(deadline) = self.deadline.as_mut()
                        && deadline.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Some(Ok(self.take_buffered())));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.buffered.is_empty() && self.pending_trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Coalescing changes when bytes go out, never how many.
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        let extra = self.buffered.len() as u64;
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + extra);
        }
        hint.set_lower(inner.lower() + extra);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::{BodyExt, StreamBody};

    #[test]
    fn unknown_lengths_and_event_streams_must_stream() {
        let mut headers = HeaderMap::new();
        assert!(must_stream(&headers));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert!(!must_stream(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        assert!(must_stream(&headers));
    }

    /// Three chunks 10 ms apart, coalesced over 1 s: one data frame, then the trailers.
    #[tokio::test(start_paused = true)]
    async fn chunks_within_an_interval_go_out_together() {
        let frames = futures_util::stream::unfold(0u8, |i| async move {
            match i {
                0..=2 => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Some((
                        Ok::<_, hyper::Error>(Frame::data(Bytes::from(vec![b'a' + i]))),
                        i + 1,
                    ))
                }
                3 => {
                    let mut trailers = HeaderMap::new();
                    trailers.insert("x-done", HeaderValue::from_static("1"));
                    Some((Ok::<_, hyper::Error>(Frame::trailers(trailers)), i + 1))
                }
                _ => None,
            }
        });
        let body: Body = StreamBody::new(frames).boxed();
        let mut coalesced = every(body, Duration::from_secs(1));
        let first = coalesced.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        let second = coalesced.frame().await.unwrap().unwrap();
        assert_eq!(second.into_trailers().unwrap()["x-done"], "1");
        assert!(coalesced.frame().await.is_none());
    }

    /// A slow upstream: the interval passes between chunks, so each goes alone.
    #[tokio::test(start_paused = true)]
    async fn the_interval_flushes_what_waits() {
        let frames = futures_util::stream::unfold(0u8, |i| async move {
            if i < 2 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Some((
                    Ok::<_, hyper::Error>(Frame::data(Bytes::from(vec![b'a' + i]))),
                    i + 1,
                ))
            } else {
                None
            }
        });
        let body: Body = StreamBody::new(frames).boxed();
        let mut coalesced = every(body, Duration::from_millis(100));
        let started = Instant::now();
        let first = coalesced.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        assert_eq!(started.elapsed(), Duration::from_millis(600));
        let second = coalesced.frame().await.unwrap().unwrap();
        assert_eq!(second.into_data().unwrap(), "b");
    }
}

//! A body that counts its bytes and says when it is over: how 数据统计 the
//! statistics learn `bytes_in`, `bytes_out` and the moment an exchange ends
//! (see [`crate::middleware::stats`]), without holding the body.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

pin_project_lite::pin_project! {
    /// A body that counts the bytes of its data frames and, when it ends
    /// (the last frame, an error) or is dropped before that, whichever comes
    /// first, calls `on_end(bytes)` exactly once: how the proxy learns
    /// `bytes_out` and the moment an exchange is over, even when the client
    /// goes away mid-body. Frames pass through unchanged, trailers included;
    /// `size_hint` and `is_end_stream` are the inner body's. (hyper stops
    /// polling a body whose `is_end_stream()` is true and drops it: then the
    /// drop is the end, a moment later.)
    pub struct CountedBody<B, F: FnOnce(u64)> {
        #[pin]
        inner: B,
        end: Completion<F>,
    }
}

impl<B, F: FnOnce(u64)> CountedBody<B, F> {
    /// Wraps `inner`; `on_end` receives the data bytes that passed. The
    /// callback is kept in place, not boxed: one allocation fewer for
    /// every body counted.
    pub fn new(inner: B, on_end: F) -> CountedBody<B, F> {
        CountedBody {
            inner,
            end: Completion {
                bytes: 0,
                on_end: Mutex::new(Some(on_end)),
            },
        }
    }

    /// The data bytes that passed so far.
    pub fn bytes(&self) -> u64 {
        self.end.bytes
    }
}

impl<B: std::fmt::Debug, F: FnOnce(u64)> std::fmt::Debug for CountedBody<B, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedBody")
            .field("inner", &self.inner)
            .field("bytes", &self.end.bytes)
            .finish()
    }
}

impl<B, F> HttpBody for CountedBody<B, F>
where
    B: HttpBody<Data = Bytes>,
    F: FnOnce(u64),
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.end.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_)) | None) => this.end.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The count and the callback of a [`CountedBody`]; calls it on drop if
/// the body did not end first.
struct Completion<F: FnOnce(u64)> {
    bytes: u64,
    /// In a mutex only so that the body is `Sync` (as `BodyExt::boxed`
    /// wants) for a callback that is only `Send`; it is never locked:
    /// `finish` has `&mut` and reaches in with `get_mut`.
    on_end: Mutex<Option<F>>,
}

impl<F: FnOnce(u64)> Completion<F> {
    fn finish(&mut self) {
        let on_end = self
            .on_end
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(on_end) = on_end.take() {
            on_end(self.bytes);
        }
    }
}

impl<F: FnOnce(u64)> Drop for Completion<F> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full, StreamBody};

    use crate::body::{Body, full};

    /// A body of these chunks, then these trailers.
    fn chunks(
        parts: &[&'static str],
        trailers: Option<http::HeaderMap>,
    ) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + use<> {
        let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        if let Some(trailers) = trailers {
            frames.push(Ok(Frame::trailers(trailers)));
        }
        StreamBody::new(futures_util::stream::iter(frames))
    }

    /// A completion that stores what it was called with, and how often.
    fn spy() -> (Arc<Mutex<Vec<u64>>>, impl FnOnce(u64) + Send + 'static) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        (calls, move |bytes| seen.lock().unwrap().push(bytes))
    }

    #[tokio::test]
    async fn a_body_that_ends_reports_its_bytes_once() {
        let (calls, on_end) = spy();
        let mut body = CountedBody::new(chunks(&["hello ", "world"], None), on_end);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "hello ");
        assert!(calls.lock().unwrap().is_empty(), "not over yet");
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "world"
        );
        assert!(body.frame().await.is_none());
        assert_eq!(*calls.lock().unwrap(), [11]);
        assert!(body.frame().await.is_none(), "polled again after the end");
        drop(body);
        assert_eq!(*calls.lock().unwrap(), [11], "once, not again on drop");
    }

    #[tokio::test]
    async fn a_body_dropped_midway_reports_what_passed() {
        let (calls, on_end) = spy();
        let mut body = CountedBody::new(chunks(&["abc", "defgh", "ij"], None), on_end);
        body.frame().await.unwrap().unwrap();
        body.frame().await.unwrap().unwrap();
        assert_eq!(body.bytes(), 8);
        drop(body); // the client went away
        assert_eq!(*calls.lock().unwrap(), [8]);
        let (calls, on_end) = spy();
        drop(CountedBody::new(chunks(&["never read"], None), on_end));
        assert_eq!(*calls.lock().unwrap(), [0]);
    }

    #[tokio::test]
    async fn trailers_pass_through_uncounted() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        let (calls, on_end) = spy();
        let body = CountedBody::new(chunks(&["12345"], Some(trailers.clone())), on_end);
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), "12345");
        assert_eq!(*calls.lock().unwrap(), [5]);
    }

    #[tokio::test]
    async fn size_hint_and_end_of_stream_are_the_inner_bodys() {
        let (calls, on_end) = spy();
        let mut body = CountedBody::new(Full::new(Bytes::from_static(b"0123456789")), on_end);
        assert_eq!(body.size_hint().exact(), Some(10));
        assert!(!body.is_end_stream());
        body.frame().await.unwrap().unwrap();
        // hyper stops polling here (a Full body is over after its one frame)
        // and drops the body: the drop reports it.
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        drop(body);
        assert_eq!(*calls.lock().unwrap(), [10]);

        let (calls, on_end) = spy();
        let empty = CountedBody::new(http_body_util::Empty::<Bytes>::new(), on_end);
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        drop(empty);
        assert_eq!(*calls.lock().unwrap(), [0]);
    }

    #[test]
    fn it_crosses_threads_with_a_callback_that_is_only_send() {
        fn send_sync<T: Send + Sync + 'static>() {}
        fn counted_with<F: FnOnce(u64) + Send + 'static>(_: &F) {
            send_sync::<CountedBody<Body, F>>();
        }
        // A `Cell` may move to another thread but not be shared (not Sync).
        let seen = std::cell::Cell::new(0);
        counted_with(&move |bytes| seen.set(bytes));
    }

    #[test]
    fn it_wraps_the_proxys_body_and_boxes_again() {
        let (calls, on_end) = spy();
        let body: Body = CountedBody::new(full("abc"), on_end).boxed();
        drop(body);
        assert_eq!(*calls.lock().unwrap(), [0]);
    }

    #[tokio::test]
    async fn an_error_ends_the_body() {
        let frames: Vec<Result<Frame<Bytes>, &'static str>> =
            vec![Ok(Frame::data(Bytes::from_static(b"abcd"))), Err("reset")];
        let (calls, on_end) = spy();
        let mut body =
            CountedBody::new(StreamBody::new(futures_util::stream::iter(frames)), on_end);
        body.frame().await.unwrap().unwrap();
        assert_eq!(body.frame().await.unwrap().unwrap_err(), "reset");
        assert_eq!(*calls.lock().unwrap(), [4]);
        drop(body);
        assert_eq!(calls.lock().unwrap().len(), 1);
    }
}

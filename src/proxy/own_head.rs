//! A request's head, copied out of hyper's read buffer before the proxy
//! keeps it.
//!
//! hyper parses a request head in place: the target and every header value
//! are slices of the connection's read buffer (8 KiB), sharing it by a
//! reference count. While the request is in flight hyper reads on, to
//! notice a client that goes away (the article's step 1), and before that
//! read it makes room in its buffer: a buffer nobody else shares is reused
//! where it is, a shared one is left to its sharers and a new one is
//! allocated. A proxy keeps the head for the whole exchange (the copy kept
//! for a resend, the target of the log line), so every connection with a
//! request in flight held two read buffers, and hyper allocated 8 KiB a
//! request (bench/RESULTS.md: ~4 MB more at 500 connections).
//!
//! Copied into one small buffer of their own as hyper hands the request
//! over, before hyper's next read, the target and the values leave hyper's
//! buffer to hyper alone: it is reused in place, and a connection holds one.
//! Header names need no copy: `http` copies a name that is not a standard
//! one when it parses it.

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Request, Uri};

/// Moves `request`'s target and header values into one buffer of their own
/// (see the module's comment). The request is otherwise unchanged.
pub fn own_head<B>(request: &mut Request<B>) {
    // An origin-form target (`/path?query`, nearly every request a reverse
    // proxy sees; `*` too) is copied with the values; an absolute-form or
    // authority-form one (a forward proxy's, CONNECT's) is made again from
    // its text.
    let origin_form = request.uri().scheme().is_none() && request.uri().authority().is_none();
    let target = match request.uri().path_and_query() {
        Some(target) if origin_form => target.as_str(),
        _ => "",
    };
    let size = target.len()
        + request
            .headers()
            .values()
            .map(HeaderValue::len)
            .sum::<usize>();
    let mut owned = BytesMut::with_capacity(size);
    owned.extend_from_slice(target.as_bytes());
    for value in request.headers().values() {
        owned.extend_from_slice(value.as_bytes());
    }
    let mut owned: Bytes = owned.freeze();
    let target = owned.split_to(target.len());

    // `values` and `values_mut` walk the map in the same order.
    for value in request.headers_mut().values_mut() {
        let bytes = owned.split_to(value.len());
        let sensitive = value.is_sensitive();
        // SAFETY: the only promise `from_maybe_shared_unchecked` asks for is
        // that the bytes are valid in a header value; these were one.
        *value = unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) };
        value.set_sensitive(sensitive);
    }

    if !origin_form {
        let text = Bytes::from(request.uri().to_string());
        if let Ok(uri) = Uri::from_maybe_shared(text) {
            *request.uri_mut() = uri;
        }
    } else if !target.is_empty()
        && let Ok(target) = PathAndQuery::from_maybe_shared(target)
    {
        *request.uri_mut() = Uri::from(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `head` parsed as hyper parses it: the target and the values are
    /// slices of one shared buffer (returned beside the request).
    fn parsed(head: &'static str) -> (Request<()>, Bytes) {
        let buffer = Bytes::copy_from_slice(head.as_bytes()); // the read buffer
        let mut lines = head.split("\r\n");
        let first = lines.next().expect("a request line");
        let target = first.split(' ').nth(1).expect("a target");
        let at = |part: &str| {
            let start = part.as_ptr() as usize - head.as_ptr() as usize;
            buffer.slice(start..start + part.len())
        };
        let mut request = Request::builder()
            .uri(Uri::from_maybe_shared(at(target)).expect("a target"))
            .body(())
            .expect("a request");
        for line in lines.filter(|line| !line.is_empty()) {
            let (name, value) = line.split_once(": ").expect("a header");
            request.headers_mut().append(
                http::header::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                HeaderValue::from_maybe_shared(at(value)).expect("a value"),
            );
        }
        (request, buffer)
    }

    /// Whether `slice` lies inside `buffer`'s bytes.
    fn inside(slice: &[u8], buffer: &Bytes) -> bool {
        let start = buffer.as_ptr() as usize;
        let at = slice.as_ptr() as usize;
        !slice.is_empty() && at >= start && at < start + buffer.len()
    }

    #[test]
    fn the_head_no_longer_points_into_the_read_buffer_and_reads_the_same() {
        let (mut request, buffer) = parsed(
            "GET /a/b?c=1&d HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\
             X-Empty: \r\nAccept: text/plain\r\nAuthorization: Bearer t\r\n\r\n",
        );
        let before = request.clone();
        assert!(inside(request.uri().path().as_bytes(), &buffer));
        request
            .headers_mut()
            .get_mut("authorization")
            .expect("set")
            .set_sensitive(true);

        own_head(&mut request);

        assert_eq!(request.uri(), before.uri());
        assert_eq!(request.uri().query(), Some("c=1&d"));
        assert_eq!(request.headers(), before.headers());
        let accepts: Vec<_> = request.headers().get_all("accept").iter().collect();
        assert_eq!(accepts, ["*/*", "text/plain"]);
        assert!(request.headers()["authorization"].is_sensitive());
        assert!(!request.headers()["host"].is_sensitive());
        assert!(!inside(request.uri().path().as_bytes(), &buffer));
        for value in request.headers().values() {
            assert!(
                !inside(value.as_bytes(), &buffer),
                "{value:?} still in the buffer"
            );
        }
    }

    #[test]
    fn every_form_of_target_is_kept_whole() {
        for target in ["http://example.test:8080/x?y", "example.test:443", "*", "/"] {
            let mut request = Request::builder().uri(target).body(()).expect("a request");
            let before = request.uri().clone();
            own_head(&mut request);
            assert_eq!(request.uri(), &before, "{target}");
            assert_eq!(request.uri().to_string(), before.to_string(), "{target}");
        }
    }

    #[test]
    fn the_read_buffer_is_not_shared_after_the_copy() {
        // hyper's read buffer: a BytesMut the head is split from. Once the
        // head is copied out and its slices dropped, the buffer can be made
        // room in where it is (`try_reclaim`), as hyper's next read does.
        let mut read_buffer = BytesMut::with_capacity(8192);
        read_buffer.extend_from_slice(b"/path-of-the-request value-of-a-header");
        let head = read_buffer.split_to(read_buffer.len()).freeze();
        let mut request = Request::builder()
            .uri(Uri::from_maybe_shared(head.slice(..20)).expect("a target"))
            .header(
                "x-a",
                HeaderValue::from_maybe_shared(head.slice(21..)).expect("a value"),
            )
            .body(())
            .expect("a request");
        drop(head);
        assert!(
            !read_buffer.try_reclaim(8192),
            "the request still shares the buffer"
        );

        own_head(&mut request);
        assert!(read_buffer.try_reclaim(8192), "the buffer is still shared");
        assert_eq!(request.uri(), "/path-of-the-request");
        assert_eq!(request.headers()["x-a"], "value-of-a-header");
    }
}

//! ModifyResponse (修改返回内容) and ErrorHandler (错误回调): the two hooks
//! the article uses to change what the client gets back.
//!
//! ModifyResponse here streams: a prefix is sent first and the upstream's body
//! follows as it arrives, so a large response is never held in memory. When
//! the upstream gave a Content-Length, it grows by the prefix's length (the
//! article: "重置响应数据长度"); otherwise the body stays chunked.
//!
//! ErrorHandler: when the upstream cannot be reached or breaks, the client
//! gets 502 Bad Gateway; when it does not answer in time, 504 Gateway
//! Timeout (RFC 9110 §15.6.3, §15.6.5). The article's multi-host proxy
//! answers 500 `ErrorHandler error:…` instead, which tells a client the
//! *proxy* itself failed; `--article-errors` shows that behaviour for the lab.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;

pub use super::text_response;
use crate::body::{Body, full};

/// What ModifyResponse does (flags of `lab proxy`).
#[derive(Debug, Clone, Default)]
pub struct ModifyResponse {
    /// Prefix the body of 200 responses (the article's `"hello " + body`).
    pub prefix_ok: Option<Bytes>,
    /// The multi-host proxy's rule: non-200 bodies prefixed `StatusCode error:`.
    pub prefix_errors: bool,
}

/// The prefix of the article's multi-host ModifyResponse.
pub const ERROR_PREFIX: &str = "StatusCode error:";

impl ModifyResponse {
    /// Whether there is anything to do (so the pipeline can skip it).
    pub fn is_active(&self) -> bool {
        self.prefix_ok.is_some() || self.prefix_errors
    }

    /// Applies the rules to the response of a `method` request. A response
    /// that has no body by definition (to HEAD; 1xx, 204, 304) is left alone:
    /// a prefix there would be bytes the client must not receive.
    pub fn apply(&self, method: &http::Method, response: Response<Body>) -> Response<Body> {
        let status = response.status();
        let bodiless = method == http::Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if bodiless {
            return response;
        }
        let prefix = if status == StatusCode::OK {
            self.prefix_ok.clone()
        } else if self.prefix_errors {
            Some(Bytes::from_static(ERROR_PREFIX.as_bytes()))
        } else {
            None
        };
        match prefix {
            Some(prefix) => prefix_body(response, prefix),
            None => response,
        }
    }
}

/// Sends `prefix` before the body, fixing Content-Length when there is one.
pub fn prefix_body(response: Response<Body>, prefix: Bytes) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let known_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = known_length {
        match length.checked_add(prefix.len() as u64) {
            Some(total) => {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            }
            // A length this large is a lie or an attack: send it chunked.
            None => {
                parts.headers.remove(header::CONTENT_LENGTH);
            }
        }
    }
    let body = Chain::new(full(prefix), body).boxed();
    Response::from_parts(parts, body)
}

/// Two bodies, one after the other (the first's trailers, if any, are dropped).
struct Chain {
    first: Option<Body>,
    second: Body,
}

impl Chain {
    fn new(first: Body, second: Body) -> Chain {
        Chain {
            first: Some(first),
            second,
        }
    }
}

impl hyper::body::Body for Chain {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        use std::task::Poll;
        while let Some(first) = self.first.as_mut() {
            match std::pin::Pin::new(first).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                    return Poll::Ready(Some(Ok(frame)));
                }
                // Trailers of the first part would end the message early: skip them.
                Poll::Ready(Some(Ok(_trailers))) => {}
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => self.first = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        std::pin::Pin::new(&mut self.second).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.second.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let second = self.second.size_hint();
        let Some(first) = &self.first else {
            return second;
        };
        let first = first.size_hint();
        // Build a new hint: raising `lower` above the old `upper` would panic.
        let mut hint = hyper::body::SizeHint::new();
        if let (Some(a), Some(b)) = (first.upper(), second.upper())
            && let Some(upper) = a.checked_add(b)
        {
            hint.set_upper(upper);
        }
        hint.set_lower(first.lower().saturating_add(second.lower()));
        hint
    }
}

/// How the ErrorHandler answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorStyle {
    /// 502 / 504 with a sentence that says what to do.
    #[default]
    Gateway,
    /// The article's `http.Error(w, "ErrorHandler error:"+err.Error(), 500)`.
    Article,
    /// Go's default ErrorHandler (`--like-go`): it logs the error and
    /// answers `rw.WriteHeader(http.StatusBadGateway)`, a 502 with an empty
    /// body and no Content-Type, whatever the failure, timeouts included.
    Go,
}

/// Why the proxy could not get an answer from the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Refused, unreachable, reset before a response.
    BadGateway,
    /// No response head within the response timeout.
    Timeout,
}

/// The ErrorHandler: the response for a failed upstream exchange.
pub fn error_response(style: ErrorStyle, failure: Failure, message: &str) -> Response<Body> {
    match style {
        ErrorStyle::Gateway => {
            let status = match failure {
                Failure::BadGateway => StatusCode::BAD_GATEWAY,
                Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            };
            text_response(status, format!("{message}\n"))
        }
        ErrorStyle::Article => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("ErrorHandler error:{message}\n"),
        ),
        ErrorStyle::Go => {
            let mut response = Response::new(crate::body::empty());
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response<Body>) -> (http::response::Parts, Bytes) {
        let (parts, body) = response.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    }

    fn upstream(status: StatusCode, body: &'static str, with_length: bool) -> Response<Body> {
        let mut response = text_response(status, body);
        if with_length {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        response
    }

    #[tokio::test]
    async fn ok_bodies_get_the_prefix_and_a_fixed_length() {
        let modify = ModifyResponse {
            prefix_ok: Some(Bytes::from_static(b"hello ")),
            prefix_errors: false,
        };
        let (parts, body) =
            body_of(modify.apply(&http::Method::GET, upstream(StatusCode::OK, "world", true)))
                .await;
        assert_eq!(body, "hello world");
        assert_eq!(parts.headers[header::CONTENT_LENGTH], "11");
        // Non-200 is left alone by this rule.
        let (_, body) = body_of(modify.apply(
            &http::Method::GET,
            upstream(StatusCode::NOT_FOUND, "nope", true),
        ))
        .await;
        assert_eq!(body, "nope");
    }

    #[tokio::test]
    async fn error_bodies_get_the_multi_host_prefix() {
        let modify = ModifyResponse {
            prefix_ok: None,
            prefix_errors: true,
        };
        let (parts, body) = body_of(modify.apply(
            &http::Method::GET,
            upstream(StatusCode::INTERNAL_SERVER_ERROR, "error handler", true),
        ))
        .await;
        assert_eq!(body, "StatusCode error:error handler");
        assert_eq!(parts.headers[header::CONTENT_LENGTH], "30");
    }

    #[tokio::test]
    async fn bodiless_responses_are_left_alone() {
        let modify = ModifyResponse {
            prefix_ok: Some(Bytes::from_static(b"hello ")),
            prefix_errors: true,
        };
        let head = modify.apply(&http::Method::HEAD, upstream(StatusCode::OK, "", true));
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "0");
        let not_modified = modify.apply(
            &http::Method::GET,
            upstream(StatusCode::NOT_MODIFIED, "", false),
        );
        let (_, body) = body_of(not_modified).await;
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn a_huge_length_becomes_chunked_instead_of_overflowing() {
        let mut response = upstream(StatusCode::OK, "abc", false);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(u64::MAX - 2));
        let prefixed = prefix_body(response, Bytes::from_static(b"hello "));
        assert!(!prefixed.headers().contains_key(header::CONTENT_LENGTH));
    }

    #[test]
    fn the_size_hint_adds_up_without_panicking() {
        use hyper::body::Body as _;
        let known = |text: &'static str| text_response(StatusCode::OK, text).into_body();
        let chain = Chain::new(known("hello "), known("world"));
        assert_eq!(chain.size_hint().exact(), Some(11));
    }

    #[tokio::test]
    async fn unknown_lengths_stay_unknown() {
        let (parts, body) = body_of(prefix_body(
            upstream(StatusCode::OK, "abc", false),
            Bytes::from_static(b">"),
        ))
        .await;
        assert_eq!(body, ">abc");
        assert!(!parts.headers.contains_key(header::CONTENT_LENGTH));
    }

    #[tokio::test]
    async fn the_error_handler_speaks_gateway_or_article() {
        let (parts, body) = body_of(error_response(
            ErrorStyle::Gateway,
            Failure::Timeout,
            "slow",
        ))
        .await;
        assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body, "slow\n");
        let (parts, body) = body_of(error_response(
            ErrorStyle::Article,
            Failure::BadGateway,
            "refused",
        ))
        .await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, "ErrorHandler error:refused\n");
    }
}

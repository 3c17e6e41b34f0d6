//! Steps 4 to 6: the request the upstream receives.
//!
//! The Director points it at the chosen upstream (step 4, see
//! [`crate::proxy::director`]); the headers of the client's hop go, the
//! upgrade and `TE: trailers` stay (step 5, see [`crate::proxy::headers`]);
//! and the request says who the client was (step 6: Go sets only
//! X-Forwarded-For; X-Real-IP, X-Forwarded-Host/Proto and Via are lab's
//! additions, as nginx sets them). Then the body: the Director's
//! replacement, and `--max-body` counted as a body of unknown length
//! streams.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio_util::sync::CancellationToken;

use super::choose::{Chosen, header_value};
use super::reverse_proxy::{Client, ReverseProxy};
use std::sync::Arc;

use crate::body::stall::{self, BodyProgress};
use crate::body::{Body, RequestBody, full, limit};
use crate::proxy::headers::{self, ClientFacts};
use crate::proxy::like_go;
use crate::proxy::modify::{Failure, error_response};
use crate::proxy::text_response;
use crate::upstream::Upstream;

/// What steps 4 to 6 found out that later steps need.
#[derive(Debug, Default)]
pub(super) struct Sent {
    /// The protocol the client asked to upgrade to, if any.
    pub upgrade: Option<HeaderValue>,
    /// `Accept-Encoding: gzip` was asked for on the client's behalf (Go's
    /// Transport, `--like-go`): the answer is un-gzipped for the client.
    pub added_gzip: bool,
}

impl ReverseProxy {
    /// Steps 4 to 6 for one upstream: the Director points `parts` at it,
    /// hop-by-hop headers go (the upgrade and `TE: trailers` stay), and the
    /// request says who the client was. Returns what later steps need, or
    /// the answer when the request cannot be sent.
    pub(super) fn outgoing(
        &self,
        client: Client<'_>,
        parts: &mut Parts,
        upstream: &Upstream,
    ) -> Result<Sent, Box<Response<Body>>> {
        // The Host the client asked for: an absolute-form target's authority
        // wins over the Host header (RFC 9112 §3.2.2), as in Go's server.
        let client_host = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| parts.headers.get(header::HOST).cloned());
        if let Err(err) = self.director.direct(parts, upstream) {
            return Err(Box::new(text_response(
                StatusCode::BAD_REQUEST,
                format!("cannot build the upstream request: {err}\n"),
            )));
        }

        // Go's Transport writes the framing from the body's length: `None`
        // for a chunked body, else its Content-Length (0 without one). Read
        // before step 5 removes Transfer-Encoding; only with --like-go.
        let go_body_len = self.flavour.is_go().then(|| {
            if parts.headers.contains_key(header::TRANSFER_ENCODING) {
                return None;
            }
            let length = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            Some(length.unwrap_or(0))
        });

        // 5. Upgrade and hop-by-hop headers: remember an upgrade and the
        //    announced trailers, remove what belongs to the client's hop.
        //    An Upgrade token that is not printable ASCII is the client's
        //    error, 400 (RFC 9110 §15.5.1); Go hands it to the
        //    ErrorHandler, which answers 502.
        //    Names with an underscore (`X_Real_IP`) go too, unless kept;
        //    Go keeps them.
        let drop_underscores = !self.keep_underscores && !self.flavour.is_go();
        let asked_upgrade = match headers::for_next_hop(&mut parts.headers, drop_underscores) {
            Ok(upgrade) => upgrade,
            Err(err) if self.flavour.is_go() => {
                tracing::warn!("http: proxy error: {err}");
                return Err(Box::new(error_response(
                    self.errors,
                    Failure::BadGateway,
                    &err.to_string(),
                )));
            }
            Err(err) => {
                return Err(Box::new(text_response(
                    StatusCode::BAD_REQUEST,
                    format!("{err}\n"),
                )));
            }
        };
        // Every HTTP/1.1 request carries Host (RFC 9112 §3.2), even if the
        // client sent none (HTTP/1.0) or named it in Connection: Go keeps
        // req.Host outside the header map for this reason.
        let host = client_host
            .clone()
            .unwrap_or_else(|| header_value(upstream.authority.as_str()));
        parts.headers.insert(header::HOST, host);
        if !self.flavour.is_go() {
            headers::add_via(&mut parts.headers, parts.version, &self.pseudonym);
        }
        // The upstream connection is HTTP/1.1, whatever the client spoke.
        parts.version = http::Version::HTTP_11;

        // 6. Who the client was: the headers that carry it past this hop.
        //    Go's step 6 writes X-Forwarded-For alone.
        let ip = client.conn.peer.ip();
        if self.flavour.is_go() {
            let xff = headers::appended_x_forwarded_for(&parts.headers, &ip.to_string());
            if let Ok(value) = HeaderValue::from_str(&xff) {
                parts.headers.insert(headers::X_FORWARDED_FOR, value);
            }
        } else {
            let facts = ClientFacts {
                ip: client.conn.peer_ip().clone(),
                real_ip: (client.ip != ip).then_some(client.ip),
                host: client_host,
                proto: "http",
            };
            headers::set_forwarding_headers(&mut parts.headers, &facts, self.forwarded);
        }

        // Go's Transport then writes the head its own way (see like_go).
        let mut added_gzip = false;
        if let Some(body_len) = go_body_len {
            added_gzip =
                like_go::transport_request_headers(&parts.method, &mut parts.headers, body_len);
            if body_len.is_none() {
                parts.headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
            like_go::in_go_order(&mut parts.headers, added_gzip);
        }
        Ok(Sent {
            upgrade: asked_upgrade,
            added_gzip,
        })
    }

    /// The request as it came, kept when it may have to be sent again, only
    /// ever for a request without a body (a streamed body cannot be read
    /// twice), before the Director changed it for the first upstream:
    ///
    /// - with `--retries`, to another upstream when the connection to the
    ///   first failed: nothing of it was sent, so trying another cannot do
    ///   it twice; idempotent methods only (RFC 9110 §9.2.2). Go's
    ///   ReverseProxy never does this (the default, 0);
    /// - to the same upstream when the pooled connection it went out on
    ///   was already closed (see `round_trip`): idempotent methods by
    ///   default, with `--like-go` whatever Go's Transport may resend.
    pub(super) fn retry_copy(&self, parts: &Parts, body: &Body, chosen: &Chosen) -> Option<Parts> {
        if !body.is_end_stream() || self.director.replace_body.is_some() {
            return None;
        }
        let other_upstream =
            self.retries > 0 && chosen.has_candidates() && parts.method.is_idempotent();
        // Go may resend any request it did not start to write.
        let same_upstream = self.flavour.is_go() || parts.method.is_idempotent();
        (other_upstream || same_upstream).then(|| parts.clone())
    }

    /// The body sent upstream: the Director's replacement, if any, counted
    /// against `--max-body` as it streams (a body of unknown length; the
    /// token is cancelled when it grows past the limit) and watched for a
    /// client that stops sending it (`--body-timeout`; the progress says
    /// whose fault a failure is).
    pub(super) async fn outgoing_body(
        &self,
        body: Body,
    ) -> (RequestBody, Option<CancellationToken>, Arc<BodyProgress>) {
        let body = match &self.director.replace_body {
            Some(json) => replace_body(body, json.0.clone()).await,
            None => body,
        };
        let body = if self.flavour.is_go() {
            like_go::drop_request_trailers(body)
        } else {
            body
        };
        let (body, too_large) = limit::limited(body, self.limits.max_body);
        let (body, progress) = stall::watched(body, self.limits.body_timeout);
        (body, too_large, progress)
    }
}

/// Reads the client's body to its end (counting, not keeping it) and sends
/// `json` instead: the article's body replacement.
async fn replace_body(mut original: Body, json: Bytes) -> Body {
    let mut dropped = 0u64;
    while let Some(Ok(frame)) = original.frame().await {
        if let Some(data) = frame.data_ref() {
            dropped += data.len() as u64;
        }
    }
    tracing::debug!(
        "replaced a {dropped}-byte request body with {} bytes of JSON",
        json.len()
    );
    full(json)
}

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
use super::respond::{announced_trailers, restore_trailers};
use super::reverse_proxy::{Client, ReverseProxy};
use crate::body::{Body, RequestBody, full, limit};
use crate::proxy::headers::{self, ClientFacts};
use crate::proxy::text_response;
use crate::upstream::Upstream;

impl ReverseProxy {
    /// Steps 4 to 6 for one upstream: the Director points `parts` at it,
    /// hop-by-hop headers go (the upgrade and `TE: trailers` stay), and the
    /// request says who the client was. Returns the protocol the client
    /// asked to upgrade to, or the answer when the request cannot be sent.
    pub(super) fn outgoing(
        &self,
        client: Client<'_>,
        parts: &mut Parts,
        upstream: &Upstream,
    ) -> Result<Option<HeaderValue>, Box<Response<Body>>> {
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

        // 5. Upgrade and hop-by-hop headers: remember an upgrade and the
        //    announced trailers, remove what belongs to the client's hop.
        let request_trailers = announced_trailers(&parts.headers);
        let asked_upgrade = match headers::prepare_request(&mut parts.headers) {
            Ok(upgrade) => upgrade,
            Err(err) => {
                return Err(Box::new(text_response(
                    StatusCode::BAD_REQUEST,
                    format!("{err}\n"),
                )));
            }
        };
        restore_trailers(&mut parts.headers, request_trailers);
        // Every HTTP/1.1 request carries Host (RFC 9112 §3.2), even if the
        // client sent none (HTTP/1.0) or named it in Connection: Go keeps
        // req.Host outside the header map for this reason.
        let host = client_host
            .clone()
            .unwrap_or_else(|| header_value(upstream.authority.as_str()));
        parts.headers.insert(header::HOST, host);
        headers::add_via(&mut parts.headers, parts.version, &self.pseudonym);
        // The upstream connection is HTTP/1.1, whatever the client spoke.
        parts.version = http::Version::HTTP_11;

        // 6. Who the client was: the headers that carry it past this hop.
        let facts = ClientFacts {
            ip: client.conn.peer.ip(),
            real_ip: client.ip,
            host: client_host,
            proto: "http",
        };
        headers::set_forwarding_headers(&mut parts.headers, &facts, self.forwarded);
        Ok(asked_upgrade)
    }

    /// With `--retries`, a request may go to another upstream when the
    /// connection to the first failed: nothing of it was sent, so trying
    /// another cannot do it twice. Only for idempotent methods (RFC 9110
    /// §9.2.2) and without a body (a streamed body cannot be read twice):
    /// kept as it came, before the Director changed it for the first
    /// upstream. Go's ReverseProxy never retries (the default, 0).
    pub(super) fn retry_copy(&self, parts: &Parts, body: &Body, chosen: &Chosen) -> Option<Parts> {
        (self.retries > 0
            && chosen.has_candidates()
            && parts.method.is_idempotent()
            && body.is_end_stream()
            && self.director.replace_body.is_none())
        .then(|| parts.clone())
    }

    /// The body sent upstream: the Director's replacement, if any, counted
    /// against `--max-body` as it streams (a body of unknown length); the
    /// token is cancelled when it grows past the limit.
    pub(super) async fn outgoing_body(&self, body: Body) -> (RequestBody, CancellationToken) {
        let body = match &self.director.replace_body {
            Some(json) => replace_body(body, json.0.clone()).await,
            None => body,
        };
        let too_large = CancellationToken::new();
        let body = limit::limited(body, self.limits.max_body, &too_large);
        (body, too_large)
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

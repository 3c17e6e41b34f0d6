//! Steps 8 to 13: the upstream's response on its way to the client.
//!
//! A 101 Switching Protocols splices the two connections together (step 8,
//! see [`crate::proxy::upgrade`]); any other response loses the headers of
//! the upstream's hop (step 9), and is streamed to the client as it comes
//! (step 13), coalesced per `--flush-interval` when one is set and the body
//! need not stream. Steps 10 to 12 (ModifyResponse, the headers, the status)
//! are single calls in [`super::ReverseProxy::serve_http`].

use crate::proxy::transport::UpstreamBody;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use std::sync::Arc;

use super::choose::Chosen;
use super::reverse_proxy::ReverseProxy;
use crate::body::{Body, empty, flush};
use crate::lab_headers;
use crate::middleware::stats::ConnectionGuard;
use crate::proxy::modify::Failure;
use crate::proxy::{headers, like_go, upgrade};
use crate::server::Conn;

/// What step 8 needs of the client's side of an upgrade.
pub(super) struct Upgrade {
    /// The protocol the client asked for (its `Upgrade` header).
    pub asked: Option<HeaderValue>,
    /// The client's connection, once hyper hands it over after the 101.
    pub client: OnUpgrade,
    /// The statistics' count of the client connection, kept open as long
    /// as the tunnel.
    pub connection_guard: Option<Arc<ConnectionGuard>>,
}

impl Upgrade {
    /// Takes what an upgrade will need from the client's request, before
    /// it is taken apart: the handle to its connection, and the
    /// connection's statistics guard (which the server puts only into
    /// upgrade requests). The protocol asked for is set at step 5.
    pub fn take(req: &mut Request<Body>) -> Upgrade {
        Upgrade {
            asked: None,
            client: hyper::upgrade::on(&mut *req),
            connection_guard: req.extensions_mut().remove::<Arc<ConnectionGuard>>(),
        }
    }
}

impl ReverseProxy {
    /// Step 8: the upstream agreed to switch protocols. If it switched to
    /// the one the client asked for, the client gets its 101 and the two
    /// connections are spliced; otherwise the ErrorHandler answers 502.
    pub(super) fn switch_protocols(
        &self,
        conn: &Conn,
        mut chosen: Chosen,
        mut upstream_response: Response<UpstreamBody>,
        upgrade: Upgrade,
    ) -> Response<Body> {
        // Go reads the answer's protocol as it reads the request's: the
        // Upgrade header counts only when Connection lists `upgrade`.
        let got = if self.flavour.is_go() {
            headers::upgrade_type(upstream_response.headers())
        } else {
            upstream_response.headers().get(header::UPGRADE)
        };
        if let Err(err) = upgrade::check_protocol(upgrade.asked.as_ref(), got) {
            let message = err.to_string();
            return self.fail(&mut chosen, Failure::BadGateway, &message, &message);
        }
        chosen.settle(true);
        let upstream_upgrade = hyper::upgrade::on(&mut upstream_response);
        upgrade::bridge(
            conn,
            upgrade.client,
            upstream_upgrade,
            format!("upgrade {} ⇄ {}", conn.peer, chosen.upstream),
            upgrade.connection_guard,
        );
        let (mut parts, _) = upstream_response.into_parts();
        // Go writes the upstream's 101 head as it came, hop-by-hop headers
        // and all; lab removes those but the upgrade's own.
        if !self.flavour.is_go() {
            headers::prepare_response(&mut parts.headers, true);
            lab_headers::strip_proxy_answer(&mut parts.headers);
            chosen.name_in(&mut parts.headers);
        }
        tracing::debug!("{} → 101, spliced", chosen.request_line());
        Response::from_parts(parts, empty())
    }

    /// Step 9: the headers of the upstream's hop are removed, the announced
    /// trailers remembered for step 11. The breaker hears the outcome here:
    /// an upstream's 5xx is a failure too (it answered, but it is not well).
    pub(super) fn without_hop_headers(
        &self,
        chosen: &mut Chosen,
        upstream_response: Response<UpstreamBody>,
    ) -> (Response<Body>, Vec<HeaderValue>) {
        chosen.settle(!upstream_response.status().is_server_error());
        // Go's Transport takes off the gzip it asked for (`--like-go`).
        let upstream_response = if chosen.gunzip {
            like_go::gunzip_response(upstream_response)
        } else {
            upstream_response.map(BodyExt::boxed)
        };
        let (mut parts, body) = upstream_response.into_parts();
        let mut trailers = crate::proxy::headers::announced_trailers(&parts.headers);
        if self.flavour.is_go() {
            trailers = like_go::go_trailer_announcement(&trailers);
        }
        headers::prepare_response(&mut parts.headers, false);
        lab_headers::strip_proxy_answer(&mut parts.headers);
        (Response::from_parts(parts, body), trailers)
    }

    /// Step 13: hyper writes each chunk as the upstream sends it, so
    /// streams (unknown length, text/event-stream) reach the client at once;
    /// other bodies are coalesced per the flush interval when one is set.
    /// Trailers follow the last chunk.
    pub(super) fn flushed(&self, response: Response<Body>) -> Response<Body> {
        match self.flush_interval {
            Some(interval) if !flush::must_stream(response.headers()) => {
                response.map(|body| flush::every(body, interval))
            }
            _ => response,
        }
    }
}

//! Step 7, 向下游请求数据: the Transport's round trip, and the ErrorHandler
//! when it fails.
//!
//! The request goes to the chosen upstream under `--response-timeout`. A
//! refused or broken connection is a 502, a response head that does not
//! come in time a 504 (Go answers 502 for every error: the 504 is lab's
//! choice, as nginx answers), and a body that grows past `--max-body` on its
//! way a 413. With `--retries`, a request whose connection failed moves on
//! to the next candidate ([`super::choose`]) when nothing of it was sent.
//!
//! A pooled connection can be closed by the upstream at any moment (its
//! idle timeout) and the proxy learns it only by sending a request on it:
//! not a byte comes back, only the close. Nothing was answered, so an
//! idempotent request without a body is sent again, on another connection,
//! as RFC 9112 §9.3.1.1 allows and as Go's Transport does (the proxy must
//! never resend a non-idempotent one). Go's own rule (`--like-go`) also
//! resends GET, HEAD, OPTIONS and TRACE only, a request with an
//! `Idempotency-Key`, or any request without a body not a byte of which
//! was written. It goes on while the failures are on reused connections:
//! one failing on a fresh connection is an upstream's failure.
//!
//! Blame the right side: a client that stops sending its body is answered
//! 408 (`--body-timeout`), and when the upstream gives up on that body
//! first (closes, or sends nothing before `--response-timeout`), the
//! failure is still the client's (see [`crate::body::stall`]). Neither
//! it, nor a client's broken or oversized body, is told to the breaker,
//! the balancer or the health checks: they count upstreams' failures only.

use crate::proxy::transport::UpstreamBody;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

use super::choose::Chosen;
use super::reverse_proxy::{Client, ReverseProxy};
use std::future::Future;
use std::sync::Arc;

use crate::body::stall::{BodyProgress, Stall};
use crate::body::{Body, RequestBody, empty, limit};
use crate::lab_headers::{CLIENT_LAYER, LAYER_HEADER};
use crate::middleware::stats::InFlight;
use crate::proxy::like_go::{self, Flavour};
use crate::proxy::modify::{Failure, error_response};
use crate::proxy::text_response;
use crate::proxy::transport::TransportError;
use crate::upstream::Upstream;

/// What a round trip needs besides the request: to rebuild it for another
/// upstream (the client, the request as it came), to notice a body past
/// `--max-body`, and to move the statistics' count along.
pub(super) struct Exchange<'a, 'b> {
    pub client: Client<'a>,
    /// The request as it came, when it may be retried (see `retry_copy`).
    pub retry: Option<Parts>,
    /// Cancelled when the body grows past `--max-body` (none when there is
    /// no body to count).
    pub too_large: Option<CancellationToken>,
    /// How the client's body is coming along: whose fault a failure is.
    pub body: Arc<BodyProgress>,
    pub in_flight: &'b mut InFlight,
}

impl<'a, 'b> Exchange<'a, 'b> {
    pub fn new(
        client: Client<'a>,
        retry: Option<Parts>,
        too_large: Option<CancellationToken>,
        body: Arc<BodyProgress>,
        in_flight: &'b mut InFlight,
    ) -> Self {
        Exchange {
            client,
            retry,
            too_large,
            body,
            in_flight,
        }
    }
}

impl ReverseProxy {
    /// Sends `outgoing` to the chosen upstream and waits for its response
    /// head; on a failed connection, tries the next candidate while
    /// `--retries` allows. `Err` is the answer to send instead.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub(super) fn round_trip(
        &self,
        chosen: &mut Chosen,
        mut outgoing: Request<RequestBody>,
        exchange: Exchange<'_, '_>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, Response<Body>>> + Send {
        // An async block, not an `async fn`, for the reason in
        // `chain::handle`: the request and the exchange are kept once.
        async move {
            // Resends on closed pooled connections so far; the pool cannot hold
            // more stale connections than this, so the bound is never what stops
            // a resend that Go would make.
            let mut resent = 0usize;
            loop {
                chosen.target = Some(outgoing.uri().clone());
                // No limit: no timer (Go's Transport without
                // ResponseHeaderTimeout). A limit: a timer reused from the last
                // request on this worker (see crate::timer).
                let round_trip = crate::timer::within(
                    self.response_timeout,
                    self.transport.round_trip(outgoing),
                );
                // Pinned here, once: awaited below by reference, so that this
                // future has room for it once rather than once per branch.
                tokio::pin!(round_trip);
                let too_large = exchange.too_large.as_ref();
                let result = match too_large {
                    // Nothing to count: nothing else to wait for.
                    None => Some(round_trip.as_mut().await),
                    Some(_) => tokio::select! {
                        // The body past the limit also fails the round trip (the
                        // upstream connection is aborted mid-body, never
                        // completed): the answer is 413, not the 400 of a broken
                        // body. The overflow may also fail the exchange in the
                        // very turn that finishes it (the pool writes the body as
                        // it waits).
                        biased;
                        () = limit::exceeded(too_large) => None,
                        result = round_trip.as_mut() => Some(result),
                    },
                };
                let result = match result {
                    Some(result) if !limit::was_exceeded(too_large) => result,
                    _ => {
                        tracing::info!(
                            "{}: the body passed --max-body ({} bytes); stopped",
                            chosen.request_line(),
                            self.limits.max_body
                        );
                        return Err(client_fault(too_large_response(self.limits.max_body)));
                    }
                };
                let err = match result {
                    Ok(Ok(response)) => {
                        let max = self.limits.max_header_size;
                        if let Err(too_large) =
                            crate::proxy::headers::check_response_head(&response, max)
                        {
                            let message = format!("the upstream {} {too_large}", chosen.upstream);
                            return Err(self.fail(
                                chosen,
                                Failure::BadGateway,
                                &message,
                                "response head too large",
                            ));
                        }
                        self.upstreams.report_success(&chosen.live, chosen.index);
                        return Ok(response);
                    }
                    Ok(Err(err)) => err,
                    // The upstream waited for a body the client stopped sending.
                    Err(_) if let Some(stall) = exchange.body.stalled() => {
                        return Err(self.client_stalled(chosen, stall));
                    }
                    Err(_) => {
                        // Only a limit times out.
                        let limit = self.response_timeout.unwrap_or_default();
                        let message = format!(
                            "the upstream {} sent no response within {limit:?} (--response-timeout)",
                            chosen.upstream
                        );
                        let reason = format!("no response within {limit:?}");
                        return Err(self.fail(chosen, Failure::Timeout, &message, &reason));
                    }
                };
                // The client's own request broke (e.g. a malformed chunked
                // body): its fault, 400, and not held against the upstream (a
                // breaker ticket dropped unsettled counts for nothing).
                if let Some(stall) = exchange.body.stalled() {
                    return Err(self.client_stalled(chosen, stall));
                }
                if let TransportError::Request(detail) = &err {
                    tracing::debug!(
                        "{}: the client's request broke: {detail}",
                        chosen.request_line()
                    );
                    let message = format!("the request could not be forwarded: {detail}");
                    // Go's Transport fails, and its ErrorHandler answers 502.
                    if self.flavour.is_go() {
                        return Err(error_response(self.errors, Failure::BadGateway, &message));
                    }
                    return Err(client_fault(text_response(
                        StatusCode::BAD_REQUEST,
                        format!("{message}\n"),
                    )));
                }
                // The pooled connection was already closed: the same upstream
                // again, on another connection (see the top of this file).
                if let TransportError::Stale { unsent, .. } = &err
                    && let Some(copy) = &exchange.retry
                    && resent <= self.transport_idle_limit()
                    && self.may_resend(copy, *unsent)
                {
                    resent += 1;
                    tracing::info!(
                        "{}: the pooled connection to {} was closed before it answered; \
                         sending the request again",
                        chosen.request_line(),
                        chosen.url
                    );
                    outgoing = self
                        .again(exchange.client, copy, chosen)
                        .map_err(|refused| *refused)?;
                    continue;
                }
                let reason = crate::discovery::health::brief(&err);
                let from = chosen.url.clone();
                // A failed connection sent nothing: the next candidate, if any
                // (the failed attempt counts against its upstream like any failure).
                if let (TransportError::Connect(_), Some(copy)) = (&err, &exchange.retry)
                    && chosen.retries() < self.retries
                    && chosen.move_on(self, &reason)
                {
                    tracing::info!(
                        "{}: cannot connect to {from} ({reason}); trying {}",
                        chosen.request_line(),
                        chosen.url
                    );
                    outgoing = self
                        .again(exchange.client, copy, chosen)
                        .map_err(|refused| *refused)?;
                    exchange.in_flight.sent_to(&chosen.url);
                    continue;
                }
                let message = describe(&err, &chosen.upstream);
                return Err(self.fail(chosen, Failure::BadGateway, &message, &reason));
            }
        }
    }

    /// The request as it came, made again for the chosen upstream (steps 4
    /// to 6 once more, without a body: only a request without one is kept).
    fn again(
        &self,
        client: Client<'_>,
        copy: &Parts,
        chosen: &Chosen,
    ) -> Result<Request<RequestBody>, Box<Response<Body>>> {
        let mut parts = copy.clone();
        self.outgoing(client, &mut parts, &chosen.upstream)?;
        Ok(Request::from_parts(
            parts,
            empty().map_err(Into::into).boxed(),
        ))
    }

    /// Whether a request (as it came) may be sent again after its pooled
    /// connection turned out to be closed: an idempotent method by default
    /// (RFC 9110 §9.2.2), Go's rule with `--like-go`.
    fn may_resend(&self, request: &Parts, unsent: bool) -> bool {
        match self.flavour {
            Flavour::Lab => unsent || request.method.is_idempotent(),
            Flavour::Go => like_go::go_may_resend(&request.method, &request.headers, unsent),
        }
    }

    /// 408 for a client that stopped sending its body: its failure, held
    /// against no upstream (the breaker's ticket is dropped unsettled,
    /// which counts for nothing; the balancer and health checks hear
    /// nothing).
    fn client_stalled(&self, chosen: &Chosen, stall: Stall) -> Response<Body> {
        let who = if stall.timed_out {
            "--body-timeout ended it".to_string()
        } else {
            format!("the upstream {} gave up waiting for it", chosen.upstream)
        };
        tracing::info!(
            "{}: {stall}; {who}: 408, not the upstream's failure",
            chosen.request_line()
        );
        let mut response = text_response(
            StatusCode::REQUEST_TIMEOUT,
            format!("408 Request Timeout: {stall}; {who}\n"),
        );
        chosen.name_in(response.headers_mut());
        client_fault(response)
    }

    /// How many stale connections the pool may hold for one upstream.
    fn transport_idle_limit(&self) -> usize {
        self.transport.max_idle_per_host()
    }

    /// The ErrorHandler: log; tell the circuit breaker (a failure), the
    /// balancer and the health checks (a passive check: smooth WRR lowers
    /// the node's effective weight, and with `--health-check` it counts as a
    /// failed check, `reason` saying why in a few words); then answer
    /// 502/504 (or the article's 500).
    pub(super) fn fail(
        &self,
        chosen: &mut Chosen,
        failure: Failure,
        message: &str,
        reason: &str,
    ) -> Response<Body> {
        if self.flavour.is_go() {
            tracing::warn!("{}: http: proxy error: {message}", chosen.request_line());
        } else {
            tracing::warn!("{}: {message}", chosen.request_line());
        }
        chosen.settle(false);
        self.upstreams
            .report_failure(&chosen.live, chosen.index, reason);
        let mut response = error_response(self.errors, failure, message);
        chosen.name_in(response.headers_mut());
        response
            .headers_mut()
            .insert(LAYER_HEADER, HeaderValue::from_static("proxy"));
        response
    }
}

/// An answer for the client's own failure (a stalled, broken or oversized
/// body): the `client` layer, and the connection closed, since the rest of
/// the client's body was never read.
fn client_fault(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(LAYER_HEADER, HeaderValue::from_static(CLIENT_LAYER));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 413 for a chunked body that grew past `--max-body` on its way.
fn too_large_response(max: u64) -> Response<Body> {
    let mut response = text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "413 Content Too Large: the request body grew past {max} bytes (--max-body); \
             it was not passed on whole\n"
        ),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A sentence for a failed round trip that says what to do next.
fn describe(err: &TransportError, upstream: &Upstream) -> String {
    match err {
        TransportError::Connect(detail) => format!(
            "cannot reach the upstream {upstream} ({detail}). Is it running? Start the real servers with `lab realserver`."
        ),
        // Answered with a 400 before it gets here.
        TransportError::Request(detail) => {
            format!("the request could not be forwarded: {detail}")
        }
        TransportError::Tls(detail) => {
            format!("cannot speak TLS with the upstream {upstream}: {detail}")
        }
        TransportError::Broken(detail) | TransportError::Stale { detail, .. } => {
            format!(
                "the upstream {upstream} closed the connection without a complete response ({detail})"
            )
        }
    }
}

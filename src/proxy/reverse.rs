//! The ReverseProxy (`lab proxy`): Go's `httputil.ReverseProxy.ServeHTTP`,
//! step by step, in the order the article walks through it.
//!
//! [`ReverseProxy::serve_http`] is the whole data path; each numbered comment
//! in it is one of the article's 13 steps:
//!
//! 1. 验证是否请求终止: stop when the client goes away;
//! 2. 设置context信息: the outgoing request is made from the incoming one;
//! 3. 深拷贝header: the headers are ours to change;
//! 4. 修改req: the Director, after the upstream is chosen;
//! 5. Upgrade头的特殊处理: validate an upgrade, remove hop-by-hop headers;
//! 6. 追加ClientIP信息: X-Forwarded-For, X-Real-IP, X-Forwarded-Host/Proto;
//! 7. 向下游请求数据: the Transport's round trip, under a timeout;
//! 8. 处理升级协议请求: a 101 is spliced through (see [`super::upgrade`]);
//! 9. 移除逐段头部: hop-by-hop headers removed from the response;
//! 10. 修改返回数据: ModifyResponse;
//! 11. 拷贝头部的数据: headers copied, trailers announced;
//! 12. 写入状态码: the status;
//! 13. 周期刷新内容到response: the body streamed to the client as it comes.
//!
//! Where Go would call `ErrorHandler`, [`super::modify::error_response`]
//! answers 502 (unreachable, broken) or 504 (too slow).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::Body;
use super::body_limit;
use super::director::{Director, Upstream};
use super::flush;
use super::headers::{self, ClientFacts, ForwardedPolicy};
use super::modify::{ErrorStyle, Failure, ModifyResponse, error_response, text_response};
use super::transport::{RequestBody, Transport, TransportError};
use super::upgrade;
use crate::balance::{Algorithm, BalancerConfig, Explanation, HashKey, PickInput};
use crate::discovery::{Live, Source, Upstreams};
use crate::middleware::breaker::{Breakers, Ticket};
use crate::middleware::stats::{ConnectionGuard, InFlight};
use crate::middleware::{LAYER_HEADER, Layers};
use crate::server::{self, Conn};
use tokio_util::sync::CancellationToken;

/// The response header naming the upstream that served a request.
pub const UPSTREAM_HEADER: HeaderName = HeaderName::from_static("x-lab-upstream");

/// A request header asking the proxy to explain its pick; never forwarded.
pub const EXPLAIN_HEADER: HeaderName = HeaderName::from_static("x-lab-explain");

/// The response header carrying the pick's explanation (JSON), when asked.
pub const PICK_HEADER: HeaderName = HeaderName::from_static("x-lab-pick");

/// The response header telling that the balancer's choice was passed over
/// because its circuit breaker is open (熔断).
pub const BREAKER_HEADER: HeaderName = HeaderName::from_static("x-lab-breaker");

/// The response header carrying the generation of the upstream set the
/// request was balanced over, when an explanation was asked for; a new
/// number means the set changed (see `/_lab/upstreams`).
pub const SET_HEADER: HeaderName = HeaderName::from_static("x-lab-set");

/// The response header naming the upstreams whose connection failed before
/// the one that answered (with `--retries`, an idempotent request without a
/// body is tried on the next upstream when the connection itself fails).
pub const RETRIED_HEADER: HeaderName = HeaderName::from_static("x-lab-retried");

/// A ReverseProxy: what to send where, and how to answer.
pub struct ReverseProxy {
    /// The upstreams and the pluggable step that picks one for each
    /// request (the article's load balancers; one upstream is
    /// NewSingleHostReverseProxy), rebuilt whenever the live set changes.
    pub upstreams: Upstreams,
    /// What consistent hashing hashes (unused by the other balancers).
    pub hash_key: HashKey,
    pub director: Director,
    pub modify: ModifyResponse,
    pub errors: ErrorStyle,
    pub forwarded: ForwardedPolicy,
    /// How long to wait for the upstream's response head (504 after).
    pub response_timeout: Duration,
    /// Go's FlushInterval for bodies that need not stream; `None` flushes
    /// every chunk at once.
    pub flush_interval: Option<Duration>,
    pub transport: Transport,
    /// Rate limit, circuit breakers, fallback, auth, statistics.
    pub layers: Layers,
    /// This proxy's name in `Via`; seeing it on an incoming request means a loop.
    pub pseudonym: String,
    /// How many other upstreams an idempotent request without a body may
    /// try when the connection to one fails (`--retries`; 0: Go's
    /// ReverseProxy, one upstream per request).
    pub retries: usize,
    /// Peers whose X-Forwarded-For is believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// What the listener refuses (`--max-body`, `--header-timeout`).
    pub limits: server::Limits,
}

impl ReverseProxy {
    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        super::serve(listener, self, shutdown).await
    }

    /// One request through the proxy: Go's `ServeHTTP`.
    ///
    /// The middleware layers run around it ([`crate::middleware::chain`]);
    /// the circuit breakers act inside, at the pick and after the round trip.
    /// `in_flight` is the statistics' count of this request, moved to the
    /// upstream once one is chosen.
    pub async fn serve_http(
        &self,
        conn: &Conn,
        req: Request<Body>,
        in_flight: &mut InFlight,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // For the debug log (a Uri clone shares its bytes: no copy).
        let asked = req.uri().clone();

        // 1. Client gone? Go watches CloseNotify and cancels the upstream
        //    request. Here hyper drops this whole future when the client
        //    disconnects, which drops the upstream request with it: nothing
        //    to watch, and nothing keeps running for a client who left.

        // 2. The outgoing request is built from the incoming one. The
        //    client's upgrade handle is taken first: it is how the raw
        //    connection is recovered after a 101.
        if method == http::Method::CONNECT {
            let mut refused = text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT asks for a tunnel, which is a forward proxy's job: use `lab forward` \
                 (curl -p -x http://127.0.0.1:8080 …). This is a reverse proxy.\n",
            );
            refused
                .headers_mut()
                .insert(header::ALLOW, server::ALLOW_ALL_BUT_CONNECT);
            return refused;
        }
        let mut req = req;
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (mut parts, body) = req.into_parts();

        if headers::via_names(&parts.headers, &self.pseudonym) {
            return text_response(
                StatusCode::LOOP_DETECTED,
                format!(
                    "this request already passed through this proxy ({}): the upstream points back at the proxy. Check --upstream.\n",
                    self.pseudonym
                ),
            );
        }

        // 3. Go deep-copies the headers so the Director cannot change the
        //    caller's request; `parts` is already ours alone. Who the client
        //    is: the TCP peer, or behind a --trusted-proxy the address that
        //    proxy vouches for in X-Forwarded-For.
        let client_ip =
            headers::client_address(conn.peer.ip(), &parts.headers, &self.trusted_proxies);

        // 4. The Director: choose the upstream (the balancer, the article's
        //    `lb.Get(req.RemoteAddr)`), then point the request at it. The
        //    explanation is made only when the client asks for it.
        //    The balancer is the one built for the live set as it is now;
        //    if the set changes while this request is out, it keeps this one.
        let explain = parts.headers.remove(EXPLAIN_HEADER).is_some();
        let live = self.upstreams.current();
        let key = (live.balancer.name() == Algorithm::ConsistentHash.name()).then(|| {
            self.hash_key
                .key(&parts, SocketAddr::new(client_ip, conn.peer.port()))
        });
        let Some(pick) = live.balancer.pick(&PickInput {
            key: key.as_deref(),
            explain,
        }) else {
            // Nothing live (all unhealthy, none registered): say so at once
            // rather than hold the request hoping one comes back.
            let mut refused = text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}\n", live.empty_reason),
            );
            if explain {
                refused
                    .headers_mut()
                    .insert(SET_HEADER, HeaderValue::from(live.generation));
            }
            return refused;
        };
        //    熔断: an upstream whose breaker is open is passed over for the
        //    next one in the balancer's list; with every breaker open the
        //    request fails fast, without trying any.
        let (index, ticket) = match &self.layers.breakers {
            None => (pick.index, None),
            Some(breakers) => match breaker_admit(breakers, live.balancer.nodes(), pick.index) {
                Ok((index, ticket)) => (index, Some(ticket)),
                Err(retry_in) => return all_open(retry_in),
            },
        };
        let node = &live.balancer.nodes()[index];
        let nodes = live.balancer.nodes().len();
        let mut chosen = Chosen {
            index,
            upstream: node.upstream.clone(),
            url: node.url.clone(),
            explanation: pick.explanation,
            generation: explain.then_some(live.generation),
            passed_over: index != pick.index,
            retried: Vec::new(),
            live,
        };
        let mut ticket = ticket;

        // The client connection's statistics guard, for a tunnel to keep.
        let connection_guard = parts.extensions.remove::<Arc<ConnectionGuard>>();
        // With --retries, a request may go to another upstream when the
        // connection to the first failed: nothing of it was sent, so trying
        // another cannot do it twice. Only for idempotent methods (RFC 9110
        // §9.2.2) and without a body (a streamed body cannot be read twice):
        // kept as it came, before the Director changed it for the first
        // upstream. Go's ReverseProxy never retries (the default, 0).
        let retry_copy = (self.retries > 0
            && nodes > 1
            && method.is_idempotent()
            && body.is_end_stream()
            && self.director.replace_body.is_none())
        .then(|| parts.clone());
        let asked_upgrade = match self.outgoing(conn, client_ip, &mut parts, &chosen.upstream) {
            Ok(upgrade) => upgrade,
            Err(refused) => return *refused,
        };
        in_flight.sent_to(&self.layers.stats, &chosen.url);
        let body = match &self.director.replace_body {
            Some(json) => replace_body(body, json.0.clone()).await,
            None => body,
        };
        // --max-body for a body of unknown length: counted as it streams.
        let too_large = CancellationToken::new();
        let body = body_limit::limited(body, self.limits.max_body, &too_large);

        // 7. The round trip, under the response timeout. Errors go to the
        //    ErrorHandler.
        let mut target = parts.uri.clone();
        let mut outgoing = Request::from_parts(parts, body);
        let mut tried = vec![chosen.index];
        let upstream_response = loop {
            let round_trip =
                tokio::time::timeout(self.response_timeout, self.transport.round_trip(outgoing));
            let result = tokio::select! {
                // The body past the limit also fails the round trip (the
                // upstream connection is aborted mid-body, never completed):
                // the answer is 413, not the 400 of a broken body.
                biased;
                () = too_large.cancelled() => {
                    tracing::info!(
                        "{method} {target}: the body passed --max-body ({} bytes); stopped",
                        self.limits.max_body
                    );
                    return too_large_response(self.limits.max_body);
                }
                result = round_trip => result,
            };
            match result {
                Ok(Ok(response)) => {
                    self.upstreams.report_success(&chosen.live, chosen.index);
                    break response;
                }
                // The client's own request broke (e.g. a malformed chunked
                // body): its fault, 400, and not held against the upstream
                // (a breaker ticket dropped unsettled counts for nothing).
                Ok(Err(TransportError::Request(detail))) => {
                    tracing::debug!("{method} {target}: the client's request broke: {detail}");
                    return text_response(
                        StatusCode::BAD_REQUEST,
                        format!("the request could not be forwarded: {detail}\n"),
                    );
                }
                Ok(Err(err)) => {
                    let reason = crate::discovery::health::brief(&err);
                    if let (TransportError::Connect(_), Some(copy)) = (&err, &retry_copy)
                        && tried.len() <= self.retries
                        && let Some((index, next_ticket)) = self.next_upstream(&chosen.live, &tried)
                    {
                        // The failed attempt counts against its upstream
                        // (health, breaker) like any failure.
                        if let Some(ticket) = ticket.take() {
                            ticket.record(false);
                        }
                        self.upstreams
                            .report_failure(&chosen.live, chosen.index, &reason);
                        let node = &chosen.live.balancer.nodes()[index];
                        tracing::info!(
                            "{method} {target}: cannot connect to {} ({reason}); trying {}",
                            chosen.url,
                            node.url
                        );
                        chosen.retried.push(format!("{} ({reason})", chosen.url));
                        chosen.index = index;
                        chosen.upstream = node.upstream.clone();
                        chosen.url = node.url.clone();
                        ticket = next_ticket;
                        tried.push(index);
                        let mut parts = copy.clone();
                        if let Err(refused) =
                            self.outgoing(conn, client_ip, &mut parts, &chosen.upstream)
                        {
                            return *refused;
                        }
                        in_flight.sent_to(&self.layers.stats, &chosen.url);
                        target = parts.uri.clone();
                        outgoing = Request::from_parts(parts, empty_body());
                        continue;
                    }
                    return self.fail(
                        ticket,
                        &chosen,
                        (&method, &target),
                        Failure::BadGateway,
                        &describe(&err, &chosen.upstream),
                        &reason,
                    );
                }
                Err(_) => {
                    let message = format!(
                        "the upstream {} sent no response within {:?} (--response-timeout)",
                        chosen.upstream, self.response_timeout
                    );
                    let reason = format!("no response within {:?}", self.response_timeout);
                    return self.fail(
                        ticket,
                        &chosen,
                        (&method, &target),
                        Failure::Timeout,
                        &message,
                        &reason,
                    );
                }
            }
        };
        let upstream = chosen.upstream.clone();

        // 8. 101 Switching Protocols: hand the client its 101 and splice
        //    the two connections together.
        if upstream_response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let mut upstream_response = upstream_response;
            if let Err(err) = upgrade::check_protocol(
                asked_upgrade.as_ref(),
                upstream_response.headers().get(header::UPGRADE),
            ) {
                let message = err.to_string();
                return self.fail(
                    ticket,
                    &chosen,
                    (&method, &target),
                    Failure::BadGateway,
                    &message,
                    &message,
                );
            }
            if let Some(ticket) = ticket {
                ticket.record(true);
            }
            let upstream_upgrade = hyper::upgrade::on(&mut upstream_response);
            upgrade::bridge(
                conn,
                client_upgrade,
                upstream_upgrade,
                format!("upgrade {} ⇄ {upstream}", conn.peer),
                connection_guard,
            );
            let (mut parts, _) = upstream_response.into_parts();
            headers::prepare_response(&mut parts.headers, true);
            strip_lab_headers(&mut parts.headers);
            chosen.name_in(&mut parts.headers);
            tracing::debug!("{method} {} → {target} → 101, spliced", asked.path());
            return Response::from_parts(
                parts,
                http_body_util::Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            );
        }

        // 9. Hop-by-hop headers of the upstream's hop are removed. (The
        //    breaker hears the outcome here: an upstream's 5xx is a failure
        //    too — it answered, but it is not well.)
        if let Some(ticket) = ticket {
            ticket.record(!upstream_response.status().is_server_error());
        }
        let (mut parts, body) = upstream_response.into_parts();
        let response_trailers = announced_trailers(&parts.headers);
        headers::prepare_response(&mut parts.headers, false);
        strip_lab_headers(&mut parts.headers);

        // 10. ModifyResponse.
        let mut response = Response::from_parts(parts, body.boxed());
        if self.modify.is_active() {
            response = self.modify.apply(&method, response);
        }

        // 11. The headers go to the client as they are now, with the
        //     trailers announced again so hyper will send them (it only
        //     sends trailer fields the Trailer header names).
        restore_trailers(response.headers_mut(), response_trailers);
        chosen.name_in(response.headers_mut());

        // 12. The status travels in the response head hyper writes.
        tracing::debug!(
            "{method} {} → {target} → {} ({} ms)",
            asked.path(),
            response.status(),
            started.elapsed().as_millis()
        );

        // 13. The body: hyper writes each chunk as the upstream sends it,
        //     so streams (unknown length, text/event-stream) reach the
        //     client at once; other bodies are coalesced per the flush
        //     interval when one is set. Trailers follow the last chunk.
        match self.flush_interval {
            Some(interval) if !flush::must_stream(response.headers()) => {
                response.map(|body| flush::every(body, interval))
            }
            _ => response,
        }
    }

    /// Steps 4 to 6 for one upstream: the Director points `parts` at it,
    /// hop-by-hop headers go (the upgrade and `TE: trailers` stay), and the
    /// request says who the client was. Returns the protocol the client
    /// asked to upgrade to, or the answer when the request cannot be sent.
    fn outgoing(
        &self,
        conn: &Conn,
        client_ip: std::net::IpAddr,
        parts: &mut http::request::Parts,
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
        let client = ClientFacts {
            ip: conn.peer.ip(),
            real_ip: client_ip,
            host: client_host,
            proto: "http",
        };
        headers::set_forwarding_headers(&mut parts.headers, &client, self.forwarded);
        Ok(asked_upgrade)
    }

    /// Where a request goes after the connection to each of `tried` failed: the next
    /// upstream of the set, in the balancer's order, not tried yet and whose
    /// breaker (if any) lets it through.
    fn next_upstream(&self, live: &Live, tried: &[usize]) -> Option<(usize, Option<Ticket>)> {
        let nodes = live.balancer.nodes();
        let last = *tried.last()?;
        (1..nodes.len())
            .map(|k| (last + k) % nodes.len())
            .filter(|index| !tried.contains(index))
            .find_map(|index| match &self.layers.breakers {
                None => Some((index, None)),
                Some(breakers) => breakers
                    .ticket(&nodes[index].url)
                    .ok()
                    .map(|ticket| (index, Some(ticket))),
            })
    }

    /// The ErrorHandler: log; tell the circuit breaker (a failure), the
    /// balancer and the health checks (a passive check: smooth WRR lowers
    /// the node's effective weight, and with `--health-check` it counts as a
    /// failed check, `reason` saying why in a few words); then answer
    /// 502/504 (or the article's 500).
    fn fail(
        &self,
        ticket: Option<Ticket>,
        chosen: &Chosen,
        (method, target): (&http::Method, &http::Uri),
        failure: Failure,
        message: &str,
        reason: &str,
    ) -> Response<Body> {
        tracing::warn!("{method} {target}: {message}");
        if let Some(ticket) = ticket {
            ticket.record(false);
        }
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

/// The balancer's choice for one request.
struct Chosen {
    /// The set it was chosen from, and its index there.
    live: Arc<Live>,
    index: usize,
    upstream: Arc<Upstream>,
    /// The upstream as text (`Node::url`).
    url: Arc<str>,
    explanation: Option<Explanation>,
    /// The set's generation, when an explanation was asked for.
    generation: Option<u64>,
    /// The balancer's choice had an open breaker: this is the next one.
    passed_over: bool,
    /// Upstreams whose connection failed before this one, and why.
    retried: Vec<String>,
}

impl Chosen {
    /// Names the upstream in the response, and explains the pick if asked.
    fn name_in(&self, headers: &mut http::HeaderMap) {
        headers.insert(UPSTREAM_HEADER, header_value(&self.url));
        if let Some(explanation) = &self.explanation
            && let Ok(json) = serde_json::to_string(explanation)
        {
            headers.insert(PICK_HEADER, header_value(&ascii_json(&json)));
        }
        if let Some(generation) = self.generation {
            headers.insert(SET_HEADER, HeaderValue::from(generation));
        }
        if !self.retried.is_empty() {
            headers.insert(RETRIED_HEADER, header_value(&self.retried.join(", ")));
        }
        if self.passed_over {
            headers.insert(
                BREAKER_HEADER,
                HeaderValue::from_static("passed over the balancer's choice (open)"),
            );
        }
    }
}

impl super::Handler for ReverseProxy {
    /// The middleware layers, then [`ReverseProxy::serve_http`].
    fn respond(
        &self,
        conn: &Conn,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send {
        crate::middleware::chain::handle(self, conn, req)
    }

    fn connection_opened(&self) -> Option<crate::middleware::stats::ConnectionGuard> {
        Some(self.layers.stats.connection_opened())
    }

    fn limits(&self) -> server::Limits {
        self.limits.clone()
    }
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

/// The (empty) body of a retried request.
fn empty_body() -> RequestBody {
    super::empty().map_err(Into::into).boxed()
}

/// 熔断 at the pick: the balancer's choice `first` if its breaker lets the
/// request through, else the next node whose breaker does (in the
/// balancer's order); with every breaker open, how soon one may try again.
fn breaker_admit(
    breakers: &Breakers,
    nodes: &[crate::balance::Node],
    first: usize,
) -> Result<(usize, Ticket), Duration> {
    let mut soonest: Option<Duration> = None;
    for k in 0..nodes.len() {
        let index = (first + k) % nodes.len();
        match breakers.ticket(&nodes[index].url) {
            Ok(ticket) => return Ok((index, ticket)),
            Err(retry_in) => soonest = Some(soonest.map_or(retry_in, |s| s.min(retry_in))),
        }
    }
    Err(soonest.unwrap_or_default())
}

/// Every breaker is open: a 503 at once, saying when to try again.
fn all_open(retry_in: Duration) -> Response<Body> {
    let mut refused = text_response(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "every upstream's circuit breaker is open (熔断): none is tried until a trial request in {} ms\n",
            retry_in.as_millis()
        ),
    );
    let headers = refused.headers_mut();
    headers.insert(LAYER_HEADER, HeaderValue::from_static("breaker"));
    headers.insert(
        header::RETRY_AFTER,
        crate::middleware::rate_limit::RateLimiter::retry_after_header(retry_in),
    );
    refused
}

/// Removes the headers this proxy uses to speak for itself (which layer
/// answered, the pick, the set) from an upstream's response: an upstream, or
/// another lab proxy behind this one, must not pose as this proxy.
fn strip_lab_headers(headers: &mut http::HeaderMap) {
    // Usually there are none: a look at the names present first.
    if !headers
        .keys()
        .any(|name| name.as_str().starts_with("x-lab-"))
    {
        return;
    }
    for name in [
        &LAYER_HEADER,
        &UPSTREAM_HEADER,
        &PICK_HEADER,
        &SET_HEADER,
        &BREAKER_HEADER,
        &RETRIED_HEADER,
        &crate::middleware::DEGRADED_HEADER,
    ] {
        headers.remove(name);
    }
}

/// A sentence for a failed round trip that says what to do next.
fn describe(err: &TransportError, upstream: &Upstream) -> String {
    match err {
        TransportError::Connect(detail) => format!(
            "cannot reach the upstream {upstream} ({detail}). Is it running? Start the real servers with `lab realserver`."
        ),
        // Answered with a 400 before it gets here (step 7).
        TransportError::Request(detail) => {
            format!("the request could not be forwarded: {detail}")
        }
        TransportError::Tls(detail) => {
            format!("cannot speak TLS with the upstream {upstream}: {detail}")
        }
        TransportError::Broken(detail) => {
            format!(
                "the upstream {upstream} closed the connection without a complete response ({detail})"
            )
        }
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
    Full::new(json)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn announced_trailers(headers: &http::HeaderMap) -> Vec<HeaderValue> {
    headers.get_all(header::TRAILER).iter().cloned().collect()
}

fn restore_trailers(headers: &mut http::HeaderMap, announced: Vec<HeaderValue>) {
    for value in announced {
        headers.append(header::TRAILER, value);
    }
}

/// JSON with every non-ASCII character escaped (`\u00fc`): still the same
/// JSON, and a header value every client can read as text (a hash key may
/// come from a percent-decoded query).
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("(unprintable)"))
}

/// `lab proxy`: builds the proxy from the command line and serves until shutdown.
pub async fn run(
    args: &crate::cli::ProxyArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = crate::net::bind(args.listen, "--listen").await?;
    let addr = listener.local_addr()?;
    let proxy = Arc::new(ReverseProxy::from_args(args).await?);
    let upstreams: Vec<String> = proxy
        .upstreams
        .status()
        .upstreams
        .iter()
        .map(|u| format!("{} (weight {})", u.url, u.weight))
        .collect();
    let upstreams = match &args.discovery.discovery {
        Some(url) if upstreams.is_empty() => {
            format!("the servers registered under {url} (none yet)")
        }
        Some(url) => format!("{} (from {url})", upstreams.join(", ")),
        None => upstreams.join(", "),
    };
    tracing::info!(
        "Starting ReverseProxy at {addr} → {upstreams}, balanced by {}",
        args.algorithm
    );
    tracing::info!("try: curl -s http://{addr}/abc   (Ctrl-C stops the proxy)");
    proxy.serve(listener, shutdown).await?;
    tracing::info!("proxy stopped");
    Ok(())
}

impl ReverseProxy {
    /// The proxy `lab proxy` runs for these flags. With `--discovery` it
    /// reads the upstreams from ZooKeeper first (and fails if it cannot);
    /// with `--health-check` the probes start at once.
    pub async fn from_args(args: &crate::cli::ProxyArgs) -> anyhow::Result<ReverseProxy> {
        let seed = args.seed.unwrap_or_else(|| {
            let seed = rand::random();
            if args.algorithm == Algorithm::Random {
                tracing::info!(
                    "random balancer seed {seed} (repeat this sequence with --seed {seed})"
                );
            }
            seed
        });
        let config = BalancerConfig {
            algorithm: args.algorithm,
            seed,
            replicas: args.replicas,
            ring: args.ring,
        };
        let transport = Transport::new(&args.transport);
        let source = match &args.discovery.discovery {
            Some(url) => Source::ZooKeeper(url.clone()),
            None => Source::Static(args.upstreams.clone()),
        };
        let upstreams =
            Upstreams::start(source, config, args.discovery.health(), transport.clone()).await?;
        let layers = Layers::from_args(&args.middleware);
        for line in layers.describe() {
            tracing::info!("{line}");
        }
        Ok(ReverseProxy {
            upstreams,
            hash_key: args.hash_key.clone(),
            director: Director {
                rewrites: args.rewrite.clone(),
                set_headers: args.set_header.clone(),
                replace_body: args.replace_body.clone(),
            },
            modify: ModifyResponse {
                prefix_ok: args.prefix_response.clone().map(Bytes::from),
                prefix_errors: args.prefix_errors,
            },
            errors: if args.article_errors {
                ErrorStyle::Article
            } else {
                ErrorStyle::Gateway
            },
            forwarded: args.forwarded,
            response_timeout: args.response_timeout,
            flush_interval: args.flush_interval.filter(|d| !d.is_zero()),
            transport,
            layers,
            pseudonym: format!("lab-{:08x}", rand::random::<u32>()),
            retries: args.retries as usize,
            trusted_proxies: args.trusted_proxies.clone(),
            limits: args.limits.clone(),
        })
    }
}

/// A `lab proxy` running in the background of this process (labs, tests).
pub struct RunningProxy(server::Background);

impl RunningProxy {
    /// Starts a proxy on a free loopback port, configured by `lab proxy`
    /// flags (anything but `--listen`), e.g. `["--upstream", "http://…/base"]`.
    pub async fn start(flags: &[&str]) -> anyhow::Result<RunningProxy> {
        let listener = crate::net::bind(SocketAddr::from(([127, 0, 0, 1], 0)), "--listen").await?;
        Self::start_on(listener, flags).await
    }

    /// [`RunningProxy::start`] on a listener the caller bound.
    pub async fn start_on(listener: TcpListener, flags: &[&str]) -> anyhow::Result<RunningProxy> {
        let argv = ["lab", "proxy"].into_iter().chain(flags.iter().copied());
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(argv)
            .map_err(|e| anyhow::anyhow!("bad proxy flags {flags:?}: {e}"))?;
        let crate::cli::Command::Proxy(args) = cli.command else {
            anyhow::bail!("not a proxy command line");
        };
        let proxy = Arc::new(ReverseProxy::from_args(&args).await?);
        server::Background::spawn(listener, |listener, shutdown| {
            proxy.serve(listener, shutdown)
        })
        .map(RunningProxy)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Stops it and waits for requests in flight.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.0.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_json_is_ascii_and_still_the_same_json() {
        let json = r#"{"key":"jürgen 🦀"}"#;
        let ascii = ascii_json(json);
        assert!(ascii.is_ascii(), "{ascii}");
        assert_eq!(ascii, r#"{"key":"j\u00fcrgen \ud83e\udd80"}"#);
        let back: serde_json::Value = serde_json::from_str(&ascii).unwrap();
        assert_eq!(back["key"], "jürgen 🦀");
    }
}

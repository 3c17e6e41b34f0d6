//! The layers around the ReverseProxy, in the order a request meets them.
//! Go builds this by wrapping handlers (`http.Handler` around
//! `http.Handler`); here it is one function that reads top to bottom:
//!
//! 1. the proxy's own pages (`/_lab/…`): answered at once, never counted;
//! 2. 数据统计 statistics: the clock starts, the bodies are counted;
//! 3. 限流 rate limiting: over the rate → 429 with Retry-After;
//! 4. 权限 auth: no valid bearer token → 401, and the token is removed;
//! 5. the ReverseProxy's 13 steps, where 熔断 circuit breaking happens at
//!    the pick (step 4: an open upstream is passed over) and after the
//!    round trip (step 7: the outcome is recorded);
//! 6. 降级 degradation: an error of the proxy's own becomes the fallback;
//! 7. the response goes out, and is counted when its body has.
//!
//! The rate limit runs before auth so that guessing tokens uses up a
//! client's allowance like any other request; both run before any upstream
//! is chosen, so a refused request costs an upstream nothing.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use super::reverse::ReverseProxy;
use super::{admin, text_response};
use crate::body::{Body, CountedBody, empty, full};
use crate::lab_headers::{BREAKER_HEADER, DEGRADED_HEADER, LAYER_HEADER, UPSTREAM_HEADER};
use crate::middleware::auth::BearerAuth;
use crate::middleware::rate_limit::RateLimiter;
use crate::middleware::stats::{InFlight, LAYERS, RequestRecord};
use crate::server::Conn;

/// A ReverseProxy serves requests through its layers.
impl super::Handler for ReverseProxy {
    /// The middleware layers, then [`ReverseProxy::serve_http`].
    fn respond(
        &self,
        conn: &Conn,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send {
        handle(self, conn, req)
    }

    fn connection_opened(&self) -> Option<crate::middleware::stats::ConnectionGuard> {
        Some(self.layers.stats.connection_opened())
    }

    fn limits(&self) -> crate::server::Limits {
        self.limits.clone()
    }
}

/// One request through every layer (see the module's list).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
pub fn handle(
    proxy: &ReverseProxy,
    conn: &Conn,
    req: Request<Incoming>,
) -> impl Future<Output = Response<Body>> + Send {
    // Not an `async fn`: one moves each argument into a local of its own on
    // its first poll, and keeps room for both (the request twice, 240 bytes
    // more, copied once a request); a block uses what it captured in place.
    // For the same reason the body is wrapped for step 2 here, before the
    // block: inside it, the wrapped request would be a second local beside
    // the one captured.
    let received = (!req.body().is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
    let mut req = match &received {
        Some(received) => {
            let counter = received.clone();
            req.map(|body| {
                CountedBody::new(body, move |bytes| counter.store(bytes, Ordering::Relaxed)).boxed()
            })
        }
        None => req.map(BodyExt::boxed),
    };
    async move {
        // 1. The proxy's own pages.
        if let Some(answer) = admin::answer(proxy, &req) {
            return answer;
        }

        // 2. Statistics: count the request body's bytes as they pass (the
        //    body was wrapped above). If the client goes away before the
        //    response head, this future is dropped and `Unanswered` counts
        //    the exchange (499, as nginx logs it). A request without a body
        //    (most) has nothing to count: no counter.
        let layers = &proxy.layers;
        let mut counting = Counting {
            in_flight: layers.stats.request_started(),
            started: Instant::now(),
            received,
            done: false,
        };

        // 3. Rate limit, by the client's IP (the TCP peer). It runs before auth
        //    so that guessing tokens costs allowance too.
        let early = layers.limiter.as_ref().and_then(|limiter| {
            // By client: the TCP peer, or what a --trusted-proxy vouches for.
            let client =
                super::headers::client_address(conn.peer.ip(), req.headers(), &proxy.trusted_proxies);
            let wait = limiter.check(client).err()?.wait;
            let mut refused = text_response(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests: this proxy allows {} {} (--rate-limit); try again in {} ms\n",
                    limiter.rate(),
                    limiter.by().describe(),
                    wait.as_millis().max(1)
                ),
            );
            refused
                .headers_mut()
                .insert(header::RETRY_AFTER, RateLimiter::retry_after_header(wait));
            Some(answered_by(refused, "rate-limit"))
        });

        // 4. Auth.
        let early = early.or_else(|| {
            let auth = layers.auth.as_ref()?;
            match auth.check(req.headers()) {
                Ok(()) => {
                    BearerAuth::strip(req.headers_mut());
                    None
                }
                Err(refusal) => {
                    let mut refused = text_response(StatusCode::UNAUTHORIZED, refusal.message());
                    refused
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, refusal.challenge());
                    Some(answered_by(refused, "auth"))
                }
            }
        });

        // 5. The ReverseProxy (and the breakers inside it).
        let response = match early {
            Some(refused) => refused,
            // Boxed: the pipeline's state (about 3 KB) is made once on the
            // heap, not copied each time the layers' futures are moved (the
            // copies showed in bench/instructions.sh).
            None => Box::pin(proxy.serve_http(conn, req, &mut counting.in_flight)).await,
        };

        // An answer with neither an upstream nor a layer is the proxy's own
        // (503 with nothing live, 400, 405 CONNECT, 508 loop).
        let headers = response.headers();
        let response =
            if headers.contains_key(UPSTREAM_HEADER) || headers.contains_key(LAYER_HEADER) {
                response
            } else {
                answered_by(response, "proxy")
            };

        // 6. Degradation.
        let mut response = degrade(proxy, response);

        // 7. Count the exchange once its body has gone out (or was dropped),
        //    where `in_flight` counts it: the upstream it was sent to, or the
        //    proxy's own answers.
        let layer = response.headers().get(LAYER_HEADER).and_then(|value| {
            LAYERS
                .iter()
                .copied()
                .find(|name| name.as_bytes() == value.as_bytes())
        });
        // Go's ReverseProxy names nothing about itself (`--like-go`): the
        // X-Lab-* headers that said who answered go once counted.
        if proxy.flavour.is_go() {
            crate::lab_headers::strip_proxy_answer(response.headers_mut());
            super::like_go::sort_headers(response.headers_mut());
        }
        let status = response.status().as_u16();
        let body = std::mem::replace(response.body_mut(), empty());
        *response.body_mut() = CountedBody::new(body, move |bytes_out| {
            counting.finish(status, layer, bytes_out);
        })
        .boxed();
        response
    }
}

/// One exchange's statistics: counted once, when the response body has
/// gone — or, if the client leaves before the answer and this is dropped
/// with the request's future, as a 499.
struct Counting {
    in_flight: InFlight,
    started: Instant,
    /// The request body's bytes so far; none for a request without a body.
    received: Option<Arc<AtomicU64>>,
    done: bool,
}

impl Counting {
    fn finish(&mut self, status: u16, layer: Option<&'static str>, bytes_out: u64) {
        self.done = true;
        self.in_flight.record(RequestRecord {
            upstream: None,
            status,
            latency: self.started.elapsed(),
            bytes_in: self
                .received
                .as_ref()
                .map_or(0, |received| received.load(Ordering::Relaxed)),
            bytes_out,
            layer,
        });
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if !self.done {
            self.finish(CLIENT_CLOSED, Some(crate::lab_headers::CLIENT_LAYER), 0);
        }
    }
}

/// nginx's "client closed request": the client went away before the answer.
const CLIENT_CLOSED: u16 = 499;

/// Names the layer that answered.
fn answered_by(mut response: Response<Body>, layer: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(LAYER_HEADER, HeaderValue::from_static(layer));
    response
}

/// 降级: an error the proxy made itself (a 502, 503 or 504 from the
/// `proxy` or `breaker` layer: upstreams down, nothing live, breakers open)
/// becomes the configured fallback. An upstream's own 5xx passes as it is:
/// the upstream answered, and its answer is the truth.
fn degrade(proxy: &ReverseProxy, response: Response<Body>) -> Response<Body> {
    let Some(fallback) = &proxy.layers.fallback else {
        return response;
    };
    let ours = matches!(
        response
            .headers()
            .get(LAYER_HEADER)
            .map(HeaderValue::as_bytes),
        Some(b"proxy" | b"breaker")
    );
    let gateway_error = matches!(
        response.status(),
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    );
    if !(ours && gateway_error) {
        return response;
    }
    tracing::debug!(
        "fallback instead of {} ({})",
        response.status(),
        response
            .headers()
            .get(LAYER_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    );
    let mut degraded = Response::new(full(fallback.body.clone()));
    *degraded.status_mut() = fallback.status;
    let headers = degraded.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // What the proxy would have answered, for the curious, and which
    // upstream failed (the statistics count the failure against it).
    headers.insert(
        DEGRADED_HEADER,
        HeaderValue::from(response.status().as_u16()),
    );
    for name in [UPSTREAM_HEADER, BREAKER_HEADER, header::RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    answered_by(degraded, "fallback")
}

//! The layers around the ReverseProxy, in the order a request meets them.
//! Go builds this by wrapping handlers (`http.Handler` around
//! `http.Handler`); here it is one function that reads top to bottom:
//!
//! 1. the proxy's own pages (`/_lab/…`): answered at once, never counted;
//! 2. 数据统计 statistics: the clock starts, the bodies are counted;
//! 3. 权限 auth: no valid bearer token → 401, and the token is removed;
//! 4. 限流 rate limiting: over the rate → 429 with Retry-After;
//! 5. the ReverseProxy's 13 steps, where 熔断 circuit breaking happens at
//!    the pick (step 4: an open upstream is passed over) and after the
//!    round trip (step 7: the outcome is recorded);
//! 6. 降级 degradation: an error of the proxy's own becomes the fallback;
//! 7. the response goes out, and is counted when its body has.
//!
//! Auth runs before the rate limit so that requests without the token cannot
//! use up a client's allowance; both run before any upstream is chosen, so a
//! refused request costs an upstream nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::LAYER_HEADER;
use super::auth::BearerAuth;
use super::rate_limit::RateLimiter;
use super::stats::{CountedBody, RequestRecord};
use crate::proxy::reverse::{ReverseProxy, UPSTREAM_HEADER};
use crate::proxy::{Body, admin, text_response};
use crate::server::Conn;

/// One request through every layer (see the module's list).
pub async fn handle(proxy: &ReverseProxy, conn: &Conn, req: Request<Incoming>) -> Response<Body> {
    // 1. The proxy's own pages.
    if let Some(answer) = admin::answer(proxy, &req) {
        return answer;
    }

    // 2. Statistics: count the request body's bytes as they pass.
    let layers = &proxy.layers;
    let stats = layers.stats.clone();
    let mut in_flight = stats.request_started();
    let started = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let mut req = req.map(|body| {
        CountedBody::new(body, move |bytes| counter.store(bytes, Ordering::Relaxed)).boxed()
    });

    // 3. Auth.
    let early = match &layers.auth {
        Some(auth) => match auth.check(req.headers()) {
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
        },
        None => None,
    };

    // 4. Rate limit, by the client's IP (the TCP peer).
    let early = early.or_else(|| {
        let limiter = layers.limiter.as_ref()?;
        let wait = limiter.check(conn.peer.ip()).err()?.wait;
        let mut refused = text_response(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests: this proxy allows {} per {} (--rate-limit); try again in {} ms\n",
                limiter.rate(),
                match limiter.by() {
                    super::rate_limit::LimitBy::Ip => "client IP",
                    super::rate_limit::LimitBy::Global => "everyone together",
                },
                wait.as_millis().max(1)
            ),
        );
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, RateLimiter::retry_after_header(wait));
        Some(answered_by(refused, "rate-limit"))
    });

    // 5. The ReverseProxy (and the breakers inside it).
    let response = match early {
        Some(refused) => refused,
        None => proxy.serve_http(conn, req).await,
    };

    // 6. Degradation.
    let mut response = degrade(proxy, response);

    // 7. Count the exchange once its body has gone out (or was dropped).
    let upstream = response
        .headers()
        .get(UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(upstream) = &upstream {
        in_flight.sent_to(&stats, upstream);
    }
    let layer = response
        .headers()
        .get(LAYER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = response.status().as_u16();
    let body = std::mem::replace(response.body_mut(), crate::proxy::empty());
    *response.body_mut() = CountedBody::new(body, move |bytes_out| {
        stats.record(RequestRecord {
            upstream: upstream.as_deref(),
            status,
            latency: started.elapsed(),
            bytes_in: received.load(Ordering::Relaxed),
            bytes_out,
            layer: layer.as_deref(),
        });
        drop(in_flight);
    })
    .boxed();
    response
}

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
    let mut degraded = Response::new(crate::proxy::full(fallback.body.clone()));
    *degraded.status_mut() = fallback.status;
    let headers = degraded.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // What the proxy would have answered, for the curious.
    headers.insert(
        HeaderName::from_static("x-lab-degraded-from"),
        HeaderValue::from(response.status().as_u16()),
    );
    answered_by(degraded, "fallback")
}

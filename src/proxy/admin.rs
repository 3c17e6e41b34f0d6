//! The reverse proxy's own pages, under `/_lab/`: answered by the proxy
//! itself and never forwarded, whatever the upstreams serve there.
//!
//! - `/_lab/upstreams`: the upstream set as the observer sees it (JSON,
//!   [`crate::discovery::Status`]): every upstream, its health, and the
//!   recent changes. `lab trace` reads it to show when the set changed.
//! - `/_lab/stats`: the statistics (数据统计) as JSON
//!   ([`crate::middleware::stats::StatsSnapshot`]); `lab stats` reads it.
//! - `/_lab/metrics`: the same numbers in Prometheus' text format, for a
//!   Prometheus server to scrape.
//! - `/_lab/breakers`: every upstream's circuit breaker (熔断) — state,
//!   counts, time left of the cool-down; `[]` when breakers are off.
//!
//! They pass no middleware: no token, no rate limit, and they are not
//! counted in the statistics they show. The proxy listens on loopback.

use http::{Method, Request, Response, StatusCode, header};

use super::modify::text_response;
use super::reverse::ReverseProxy;
use crate::body::Body;
use crate::middleware::stats::{METRICS_CONTENT_TYPE, METRICS_PATH, STATS_PATH};

/// The prefix of every path the proxy keeps for itself.
pub const PREFIX: &str = "/_lab/";

/// The path of the upstream status page.
pub const UPSTREAMS_PATH: &str = "/_lab/upstreams";

/// Asks the lab proxy on `addr` for its [`UPSTREAMS_PATH`] page: the set,
/// each upstream's health and the changes (`lab trace`, `lab stats`).
pub async fn fetch_upstreams(
    addr: std::net::SocketAddr,
) -> anyhow::Result<crate::discovery::Status> {
    let exchange = crate::probe::Probe::get(UPSTREAMS_PATH).send(addr).await?;
    Ok(serde_json::from_slice(&exchange.body)?)
}

/// The path of the circuit breakers' page.
pub const BREAKERS_PATH: &str = "/_lab/breakers";

/// Whether `path` is one of the proxy's own pages (`/_lab` or under it):
/// answered by `lab proxy`, never forwarded, never fetched by `lab forward`.
pub fn is_lab_path(path: &str) -> bool {
    path.starts_with(PREFIX) || path == "/_lab"
}

/// The proxy's answer when `req` is for one of its own pages; `None` for
/// every other request (it is proxied).
pub fn answer<B>(proxy: &ReverseProxy, req: &Request<B>) -> Option<Response<Body>> {
    let path = req.uri().path();
    if !is_lab_path(path) {
        return None;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut refused = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "the proxy's /_lab/ pages are read with GET\n",
        );
        refused
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Some(refused);
    }
    Some(match path {
        UPSTREAMS_PATH => json(&*proxy.upstreams.status()),
        STATS_PATH => json(&proxy.layers.stats.snapshot()),
        BREAKERS_PATH => json(
            &proxy
                .layers
                .breakers
                .as_ref()
                .map(|b| b.snapshot())
                .unwrap_or_default(),
        ),
        METRICS_PATH => {
            let mut response =
                Response::new(crate::body::full(proxy.layers.stats.prometheus_text()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(METRICS_CONTENT_TYPE),
            );
            response
        }
        _ => text_response(
            StatusCode::NOT_FOUND,
            format!(
                "{path} is not one of the proxy's pages (paths under {PREFIX} are never forwarded); try {UPSTREAMS_PATH}, {STATS_PATH}, {METRICS_PATH} or {BREAKERS_PATH}\n"
            ),
        ),
    })
}

/// `value` as pretty JSON.
fn json(value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_string_pretty(value) {
        Ok(json) => {
            let mut response = Response::new(crate::body::full(json + "\n"));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the page: {err}\n"),
        ),
    }
}

//! Step 4, first half: which upstream a request goes to.
//!
//! The balancer picks (the article's `lb.Get(req.RemoteAddr)`), from the
//! live set as it is now: if the set changes while the request is out, the
//! request keeps this one. Its pick is the first of the request's
//! [`Candidates`]; 熔断 an upstream whose circuit breaker is open is passed
//! over for the next candidate, and with `--retries` a failed connection
//! moves the request on along the same walk ([`Chosen::move_on`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use super::reverse_proxy::{Client, ReverseProxy};
use crate::balance::{Candidates, Explanation, PickInput};
use crate::body::Body;
use crate::discovery::Live;
use crate::lab_headers::{
    BREAKER_HEADER, EXPLAIN_HEADER, LAYER_HEADER, PICK_HEADER, RETRIED_HEADER, SET_HEADER,
    UPSTREAM_HEADER,
};
use crate::middleware::breaker::Ticket;
use crate::proxy::text_response;
use crate::upstream::Upstream;

/// The balancer's choice for one request, and where it may go next.
pub(super) struct Chosen {
    /// The set it was chosen from, and its index there.
    pub live: Arc<Live>,
    pub index: usize,
    pub upstream: Arc<Upstream>,
    /// The upstream as text (`Node::url`).
    pub url: Arc<str>,
    /// The circuit breaker's admission, settled with the outcome.
    pub ticket: Option<Ticket>,
    /// The request's method, and the target it was sent to there (set by
    /// the round trip): the request line, for the log.
    pub method: http::Method,
    pub target: Option<http::Uri>,
    /// The answer is to be un-gzipped: the proxy asked for gzip on the
    /// client's behalf (`--like-go`, as Go's Transport does).
    pub gunzip: bool,
    /// The candidates not walked yet.
    candidates: Candidates,
    explanation: Option<Explanation>,
    /// The set's generation, when an explanation was asked for.
    generation: Option<u64>,
    /// The balancer's choice had an open breaker: this is a later candidate.
    passed_over: bool,
    /// Upstreams whose connection failed before this one, and why.
    retried: Vec<String>,
}

impl ReverseProxy {
    /// Chooses the upstream of a request: the balancer's pick, or the first
    /// candidate after it whose breaker lets the request through. Answers
    /// 503 when nothing is live or every breaker is open. The explanation
    /// is made only when the client asks for it (`X-Lab-Explain`).
    pub(super) fn choose(
        &self,
        client: Client<'_>,
        parts: &mut Parts,
    ) -> Result<Chosen, Box<Response<Body>>> {
        let explain = parts.headers.remove(EXPLAIN_HEADER).is_some();
        let live = self.upstreams.current();
        let key = live.balancer.hashes_key().then(|| {
            self.hash_key
                .key(parts, SocketAddr::new(client.ip, client.conn.peer.port()))
        });
        let input = PickInput {
            key: key.as_deref(),
            explain,
        };
        let Some(pick) = live.balancer.pick(&input) else {
            return Err(Box::new(nothing_live(&live, explain)));
        };
        let mut candidates = pick.candidates(live.balancer.nodes().len());
        let (index, ticket) = self
            .admit(&live, &mut candidates)
            .map_err(|retry_in| Box::new(all_open(retry_in.unwrap_or_default())))?;
        let node = &live.balancer.nodes()[index];
        Ok(Chosen {
            index,
            upstream: node.upstream.clone(),
            url: node.url.clone(),
            ticket,
            method: parts.method.clone(),
            target: None,
            gunzip: false,
            candidates,
            explanation: pick.explanation,
            generation: explain.then_some(live.generation),
            passed_over: index != pick.index,
            retried: Vec::new(),
            live,
        })
    }

    /// 熔断: the next candidate whose breaker lets a request through (the
    /// next candidate, without breakers), with its ticket. `Err` when no
    /// candidate is left, with how soon an open breaker will try again.
    fn admit(
        &self,
        live: &Live,
        candidates: &mut Candidates,
    ) -> Result<(usize, Option<Ticket>), Option<Duration>> {
        let nodes = live.balancer.nodes();
        let Some(breakers) = &self.layers.breakers else {
            return candidates.next().map(|index| (index, None)).ok_or(None);
        };
        let mut soonest: Option<Duration> = None;
        for index in candidates.by_ref() {
            match breakers.ticket(&nodes[index].url) {
                Ok(ticket) => return Ok((index, Some(ticket))),
                Err(retry_in) => soonest = Some(soonest.map_or(retry_in, |s| s.min(retry_in))),
            }
        }
        Err(soonest)
    }
}

impl Chosen {
    /// After the connection to this upstream failed: on to the next
    /// candidate a breaker lets through, counting the failure against this
    /// one (its breaker, the balancer, the health checks). `false`, and
    /// nothing counted, when no candidate is left.
    pub fn move_on(&mut self, proxy: &ReverseProxy, reason: &str) -> bool {
        let Ok((index, ticket)) = proxy.admit(&self.live, &mut self.candidates) else {
            return false;
        };
        self.settle(false);
        proxy
            .upstreams
            .report_failure(&self.live, self.index, reason);
        let node = &self.live.balancer.nodes()[index];
        self.retried.push(format!("{} ({reason})", self.url));
        self.index = index;
        self.upstream = node.upstream.clone();
        self.url = node.url.clone();
        self.ticket = ticket;
        true
    }

    /// How many upstreams this request has moved on from.
    pub fn retries(&self) -> usize {
        self.retried.len()
    }

    /// Whether another candidate is left to walk to.
    pub fn has_candidates(&self) -> bool {
        self.candidates.remaining() > 0
    }

    /// Tells the circuit breaker how the exchange went (a breaker ticket
    /// dropped unsettled counts for nothing).
    pub fn settle(&mut self, success: bool) {
        if let Some(ticket) = self.ticket.take() {
            ticket.record(success);
        }
    }

    /// The request line sent to the upstream (`GET /base/abc`), for the log.
    pub fn request_line(&self) -> String {
        match &self.target {
            Some(target) => format!("{} {target}", self.method),
            None => self.method.to_string(),
        }
    }

    /// Logs the answer (debug): the request line sent, the status, the time.
    pub fn log_answer(&self, status: StatusCode, started: std::time::Instant) {
        tracing::debug!(
            "{} → {status} ({} ms)",
            self.request_line(),
            started.elapsed().as_millis()
        );
    }

    /// Names the upstream in the response, and explains the pick if asked.
    pub fn name_in(&self, headers: &mut http::HeaderMap) {
        let node = &self.live.balancer.nodes()[self.index];
        headers.insert(UPSTREAM_HEADER, node.url_header.clone());
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

/// Nothing live (all unhealthy, none registered): say so at once rather
/// than hold the request hoping one comes back.
fn nothing_live(live: &Live, explain: bool) -> Response<Body> {
    let mut refused = text_response(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{}\n", live.empty_reason),
    );
    if explain {
        refused
            .headers_mut()
            .insert(SET_HEADER, HeaderValue::from(live.generation));
    }
    refused
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

pub(super) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("(unprintable)"))
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

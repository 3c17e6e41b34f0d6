//! Every `X-Lab-*` header name, in one place: how lab's servers and proxies
//! speak about themselves on the wire (which server answered, which
//! upstream a proxy chose and why, which layer refused a request).
//!
//! None of these is a standard header; a learner who sees one in `curl -i`
//! finds here what it means. A lab proxy writes the [`PROXY_ANSWER`] headers
//! itself and removes them from an upstream's response first
//! ([`strip_proxy_answer`]), so an upstream (or another lab proxy behind this
//! one) cannot pose as this proxy.

use http::HeaderMap;
use http::header::HeaderName;

/// The real server names itself (`HOST:PORT`) in every response.
pub const SERVER_HEADER: &str = "x-lab-server";

/// The trailer of the real server's `/stream`: how many chunks it sent.
pub const CHUNKS_TRAILER: &str = "x-lab-chunks";

/// A request the framing guard refused carries its reason here, inside the
/// server, on the stand-in request it hands to hyper (never on the wire).
pub const REJECT_HEADER: &str = "x-lab-framing-error";

/// A request header asking the proxy to explain its pick; never forwarded.
pub const EXPLAIN_HEADER: HeaderName = HeaderName::from_static("x-lab-explain");

/// The upstream that served a request.
pub const UPSTREAM_HEADER: HeaderName = HeaderName::from_static("x-lab-upstream");

/// The pick's explanation (JSON), when asked with [`EXPLAIN_HEADER`].
pub const PICK_HEADER: HeaderName = HeaderName::from_static("x-lab-pick");

/// The generation of the upstream set the request was balanced over, when
/// an explanation was asked for; a new number means the set changed.
pub const SET_HEADER: HeaderName = HeaderName::from_static("x-lab-set");

/// The balancer's choice was passed over because its circuit breaker is
/// open (熔断).
pub const BREAKER_HEADER: HeaderName = HeaderName::from_static("x-lab-breaker");

/// The upstreams whose connection failed before the one that answered
/// (`--retries`).
pub const RETRIED_HEADER: HeaderName = HeaderName::from_static("x-lab-retried");

/// The layer that answered when the upstream did not: `auth`,
/// `rate-limit`, `breaker`, `fallback`, `proxy` (the proxy's own
/// 502/503/504), or `client` (the client's own failure: a body that
/// stopped coming, broke or was too large). `lab trace` shows it beside
/// the status.
pub const LAYER_HEADER: HeaderName = HeaderName::from_static("x-lab-layer");

/// The [`LAYER_HEADER`] of an answer to the client's own failure (a body
/// that stopped coming, broke, or grew past `--max-body`; a client gone).
pub const CLIENT_LAYER: &str = "client";

/// On a fallback (降级): the status the proxy would have answered.
pub const DEGRADED_HEADER: HeaderName = HeaderName::from_static("x-lab-degraded-from");

/// From `lab transparent`, when asked to explain: how the connection was
/// intercepted and where the client was going (`redirect 198.51.100.2:2003`).
pub const INTERCEPTED_HEADER: HeaderName = HeaderName::from_static("x-lab-intercepted");

/// The headers a lab proxy answers with about itself.
pub const PROXY_ANSWER: [HeaderName; 8] = [
    LAYER_HEADER,
    UPSTREAM_HEADER,
    PICK_HEADER,
    SET_HEADER,
    BREAKER_HEADER,
    RETRIED_HEADER,
    DEGRADED_HEADER,
    INTERCEPTED_HEADER,
];

/// Removes the [`PROXY_ANSWER`] headers from an upstream's response.
pub fn strip_proxy_answer(headers: &mut HeaderMap) {
    // Usually there are none: a look at the names present first (one pass,
    // comparing names; a `remove` hashes its name even when it is absent).
    // A lab realserver upstream does send `x-lab-*` headers of its own, so
    // the look is for these names, not for the prefix.
    if !headers
        .keys()
        .any(|name| name.as_str().starts_with("x-lab-") && PROXY_ANSWER.contains(name))
    {
        return;
    }
    for name in &PROXY_ANSWER {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_lab_name() {
        let (explain, answers) = (EXPLAIN_HEADER, PROXY_ANSWER);
        let mut names = vec![
            SERVER_HEADER,
            CHUNKS_TRAILER,
            REJECT_HEADER,
            explain.as_str(),
        ];
        names.extend(answers.iter().map(HeaderName::as_str));
        for name in names {
            assert!(name.starts_with("x-lab-"), "{name}");
            assert!(HeaderName::from_bytes(name.as_bytes()).is_ok(), "{name}");
        }
    }

    #[test]
    fn an_upstream_cannot_pose_as_the_proxy() {
        let mut headers = HeaderMap::new();
        for name in &PROXY_ANSWER {
            headers.insert(name, "forged".parse().unwrap());
        }
        headers.insert(SERVER_HEADER, "127.0.0.1:2003".parse().unwrap());
        strip_proxy_answer(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(SERVER_HEADER));
    }
}

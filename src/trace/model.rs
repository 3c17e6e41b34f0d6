//! The data of one `lab trace` run, as `--json` prints it: what was sent,
//! one [`Record`] per request, and a [`Summary`].
//!
//! These types *are* the JSON schema (documented in [`crate::trace`]); the
//! human output is rendered from the same values, so the two never disagree.
//! Field names and meanings are a stable contract: add fields, never rename.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole run: the requests through the main route, and optionally the same
/// requests through a second proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// How the requests travelled.
    pub mode: Mode,
    /// Where they were sent: the reverse proxy, the forward proxy or the server.
    pub proxy: String,
    /// With `--forward`: the server asked for in each absolute-form request.
    pub target: Option<String>,
    /// `--seed`, echoed for reproducibility notes (the balancer's seed is the proxy's).
    pub seed: Option<u64>,
    /// The request every one of the `requests` was.
    pub sent: Sent,
    pub requests: Vec<Record>,
    pub summary: Summary,
    /// With `--compare`: the same requests through the second proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
    /// How the proxy's upstream set changed while the requests went out
    /// (health checks, ZooKeeper), from its `/_lab/upstreams`; each change
    /// took effect from the first record whose `set` is its `generation`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_changes: Vec<crate::discovery::Event>,
}

/// How the requests reached the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Through a reverse proxy (`lab proxy`, `lab naive`): origin-form requests.
    Reverse,
    /// Through a forward proxy (`lab forward`): absolute-form requests.
    Forward,
    /// Straight to the server, no proxy: the "before" picture.
    Direct,
}

/// The request as the client sent it (the same for every request of a run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub method: String,
    /// The request-target: `/abc`, or `http://HOST/abc` to a forward proxy.
    pub target: String,
    /// Every header line as the trace asked for it (Host first). On the
    /// wire hyper writes names in lower case and repeated names together.
    pub headers: Vec<(String, String)>,
    pub body_bytes: u64,
    /// The body itself, for `-vv`; not part of the JSON.
    #[serde(skip)]
    pub body: String,
}

/// One request and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, … in the order the requests were started.
    pub seq: u64,
    /// The response status; `null` when no response came.
    pub status: Option<u16>,
    /// The upstream the proxy chose (`X-Lab-Upstream`), or, with no balancer
    /// in the path, `http://` and the server that answered.
    pub upstream: Option<String>,
    /// The real server that answered (`X-Lab-Server`, or the echo's `server`).
    pub server: Option<String>,
    /// The balancer's explanation (`X-Lab-Pick`, the JSON of
    /// `lab::balance::Explanation`); `null` without a balancer.
    pub pick: Option<Value>,
    /// What the upstream saw (its JSON echo); `null` when the answer was not
    /// an echo (a proxy's 502, `/base/error`).
    pub upstream_saw: Option<UpstreamSaw>,
    /// From connecting to the last byte of the response.
    pub latency_ms: f64,
    /// This end of the client's connection: the `RemoteAddr` the first hop saw.
    pub client_addr: Option<String>,
    /// The generation of the upstream set the proxy balanced this request
    /// over (`X-Lab-Set`); `null` without `lab proxy` in the path.
    #[serde(default)]
    pub set: Option<u64>,
    /// The proxy layer that answered instead of an upstream (`X-Lab-Layer`:
    /// `auth`, `rate-limit`, `breaker`, `fallback`, `proxy`, `client`); `null` when
    /// an upstream answered.
    #[serde(default)]
    pub layer: Option<String>,
    /// The balancer's choice (`pick`) had an open circuit breaker, so the
    /// proxy sent the request to the next upstream (`X-Lab-Breaker`).
    #[serde(default)]
    pub passed_over: bool,
    /// A transparent proxy intercepted the connection on its way
    /// (`X-Lab-Intercepted`, from `lab transparent`): its mode and the
    /// original destination it recovered (`redirect 198.51.100.2:2003`).
    #[serde(default)]
    pub intercepted: Option<String>,
    /// Why there was no response (connection refused, reset, timeout).
    pub error: Option<String>,
    /// The response itself, for `-v`/`-vv`; not part of the JSON.
    #[serde(skip)]
    pub response: ResponseDetail,
}

/// The upstream's view of one request, from the real server's JSON echo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamSaw {
    /// The TCP peer: the last proxy, or the client when there is none.
    pub remote_addr: String,
    /// Every X-Forwarded-For line joined by `, `; `null` when absent.
    pub x_forwarded_for: Option<String>,
    /// Every X-Real-Ip line joined by `, `; `null` when absent.
    pub x_real_ip: Option<String>,
    /// The Host header; `null` when absent.
    pub host: Option<String>,
    /// The request-target as received (path and query, after any rewrite).
    pub uri: String,
    /// Every header line `[name, value]` in arrival order, names lower case.
    pub headers: Vec<(String, String)>,
    /// How many body bytes arrived.
    pub body_bytes: u64,
}

/// The response as the client received it (shown by `-v` and `-vv`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDetail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Counts over the requests of one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: u64,
    /// Requests per upstream (the `upstream` of each record), by URL.
    pub per_upstream: BTreeMap<String, u64>,
    /// Responses per status code (`"200"`, `"502"`).
    pub per_status: BTreeMap<String, u64>,
    /// Requests that got no response at all.
    pub failed: u64,
    pub latency_ms: Latency,
}

/// Latency percentiles (nearest rank), in milliseconds; 0 with no requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

/// The same requests through a second proxy (`--compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The second proxy.
    pub proxy: String,
    pub requests: Vec<Record>,
    pub summary: Summary,
    /// Every fact that differs between request `seq` of the main run (left)
    /// and of this one (right).
    pub differences: Vec<Difference>,
}

/// One fact the two upstreams saw differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub seq: u64,
    /// `status`, `server`, `remote_ip`, `x_forwarded_for`, `x_real_ip`,
    /// `host`, `uri`, or `header:NAME` (lower case) for any other header.
    pub field: String,
    /// The main run's value; `null` when absent.
    pub left: Option<String>,
    /// The compared proxy's value; `null` when absent.
    pub right: Option<String>,
}

impl Summary {
    /// Counts `records`.
    pub fn of(records: &[Record]) -> Summary {
        let mut per_upstream = BTreeMap::new();
        let mut per_status = BTreeMap::new();
        let mut failed = 0;
        for record in records {
            if let Some(upstream) = &record.upstream {
                *per_upstream.entry(upstream.clone()).or_insert(0) += 1;
            }
            match record.status {
                Some(status) => *per_status.entry(status.to_string()).or_insert(0) += 1,
                None => failed += 1,
            }
        }
        let mut latencies: Vec<f64> = records.iter().map(|r| r.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        Summary {
            requests: records.len() as u64,
            per_upstream,
            per_status,
            failed,
            latency_ms: Latency {
                p50: percentile(&latencies, 50),
                p99: percentile(&latencies, 99),
            },
        }
    }
}

/// The nearest-rank percentile `p` of sorted `values` (0 when empty).
pub fn percentile(sorted: &[f64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, upstream: Option<&str>, status: Option<u16>, ms: f64) -> Record {
        Record {
            seq,
            status,
            upstream: upstream.map(str::to_string),
            server: None,
            pick: None,
            upstream_saw: None,
            latency_ms: ms,
            client_addr: None,
            set: None,
            layer: None,
            passed_over: false,
            intercepted: None,
            error: None,
            response: ResponseDetail::default(),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50), 50.0);
        assert_eq!(percentile(&values, 99), 99.0);
        assert_eq!(percentile(&[3.0], 99), 3.0);
        assert_eq!(percentile(&[1.0, 2.0], 50), 1.0);
        assert_eq!(percentile(&[], 50), 0.0);
    }

    #[test]
    fn summary_counts_upstreams_statuses_and_failures() {
        let records = [
            record(1, Some("http://a"), Some(200), 1.0),
            record(2, Some("http://b"), Some(200), 2.0),
            record(3, Some("http://b"), Some(502), 3.0),
            record(4, None, None, 4.0),
        ];
        let summary = Summary::of(&records);
        assert_eq!(summary.requests, 4);
        assert_eq!(summary.per_upstream["http://a"], 1);
        assert_eq!(summary.per_upstream["http://b"], 2);
        assert_eq!(summary.per_status["200"], 2);
        assert_eq!(summary.per_status["502"], 1);
        assert_eq!(summary.failed, 1);
        assert_eq!(summary.latency_ms.p50, 2.0);
        assert_eq!(summary.latency_ms.p99, 4.0);
    }

    #[test]
    fn json_field_names_are_the_documented_ones() {
        let json = serde_json::to_value(record(1, Some("http://a"), Some(200), 1.5)).unwrap();
        for field in [
            "seq",
            "status",
            "upstream",
            "server",
            "pick",
            "upstream_saw",
            "latency_ms",
            "client_addr",
            "set",
            "layer",
            "intercepted",
            "error",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert!(json.get("response").is_none(), "{json}");
    }
}

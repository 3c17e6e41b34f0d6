//! The JSON of [`STATS_PATH`], as `lab stats` reads it: [`StatsSnapshot`],
//! made from one [`Reading`] of the live counters. Its schema, field by
//! field, is `docs/stats-json.md` (a test below keeps the example there
//! and these types in step).
//!
//! Here the per-bucket counts become cumulative, as in Prometheus; p50 and
//! p99 are the HDR histogram's (see `live.rs`), not estimates from the
//! buckets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::live::{BUCKETS_US, LAYERS, OTHER_LAYER, Reading, Totals};

/// The JSON statistics page of `lab proxy`.
pub const STATS_PATH: &str = "/_lab/stats";

impl Reading {
    /// The JSON of these numbers.
    pub(super) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            // To the millisecond: a short decimal reads back as the same f64.
            uptime_seconds: self.uptime.as_millis() as f64 / 1e3,
            connections: Connections {
                open: self.connections_open,
                total: self.connections_total,
            },
            overall: self.overall.counts(),
            upstreams: self
                .upstreams
                .iter()
                .map(|(upstream, totals)| (upstream.clone(), totals.counts()))
                .collect(),
            proxy: self.proxy.counts(),
        }
    }
}

impl Totals {
    fn counts(&self) -> Counts {
        let layers = self
            .layers
            .iter()
            .zip(LAYERS.iter().chain([&OTHER_LAYER]))
            .filter(|(count, _)| **count > 0)
            .map(|(count, name)| (name.to_string(), *count))
            .collect();
        let mut cumulative = 0;
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                cumulative += count;
                Bucket {
                    le_ms: BUCKETS_US.get(i).map(|&us| us as f64 / 1e3),
                    count: cumulative,
                }
            })
            .collect();
        let [c1, c2, c3, c4, c5, other] = self.classes;
        Counts {
            requests: self.requests,
            in_flight: self.in_flight,
            status: StatusClasses {
                informational: c1,
                success: c2,
                redirection: c3,
                client_error: c4,
                server_error: c5,
                other,
            },
            layers,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            latency_ms: Latency {
                count: cumulative,
                sum_ms: self.latency_nanos as f64 / 1e6,
                p50: self.quantiles_us.map(|[p50, _]| p50 as f64 / 1e3),
                p99: self.quantiles_us.map(|[_, p99]| p99 as f64 / 1e3),
                buckets,
            },
        }
    }
}

/// The JSON of [`STATS_PATH`]; `docs/stats-json.md` draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Seconds since the proxy started.
    pub uptime_seconds: f64,
    pub connections: Connections,
    /// Every request.
    pub overall: Counts,
    /// By upstream URL, sorted.
    pub upstreams: BTreeMap<String, Counts>,
    /// The proxy's own answers: requests no upstream was asked for.
    pub proxy: Counts,
}

/// Client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    /// Open now.
    pub open: u64,
    /// Accepted since the proxy started.
    pub total: u64,
}

/// The counters of a set of requests (one upstream's, the proxy's own, all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Exchanges finished.
    pub requests: u64,
    /// Started and not finished yet.
    pub in_flight: u64,
    pub status: StatusClasses,
    /// Which layer answered, by [`LAYERS`] name (or `other`); zeros left out.
    pub layers: BTreeMap<String, u64>,
    /// Request body bytes received from clients.
    pub bytes_in: u64,
    /// Response body bytes sent to clients.
    pub bytes_out: u64,
    pub latency_ms: Latency,
}

/// Finished exchanges by status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirection: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
    /// 600 to 999: not a class RFC 9110 defines.
    pub other: u64,
}

/// A latency histogram, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Observations (equal to `requests`, at rest).
    pub count: u64,
    /// Their sum: `sum_ms / count` is the mean.
    pub sum_ms: f64,
    /// The median, from the HDR histogram: to the microsecond, within
    /// 1 %; `None` (null) without requests.
    pub p50: Option<f64>,
    /// The 99th percentile, from the HDR histogram.
    pub p99: Option<f64>,
    /// Cumulative, one per [`BUCKETS_US`] bound and a last for +Inf.
    pub buckets: Vec<Bucket>,
}

/// How many observations were at most `le_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The upper bound in milliseconds; `None` (null) is +Inf.
    pub le_ms: Option<f64>,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of docs/stats-json.md is a page these types read and
    /// write back unchanged: no field there that is not here, none missing,
    /// each of its type (`1.0` where a float is written, `1` for a count).
    #[test]
    fn the_documented_example_is_this_json() {
        let doc = include_str!("../../../docs/stats-json.md");
        let (_, after) = doc.split_once("```json\n").expect("a ```json block");
        let (example, _) = after.split_once("```").expect("the block's end");
        let documented: serde_json::Value = serde_json::from_str(example).unwrap();
        let read: StatsSnapshot = serde_json::from_value(documented.clone()).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), documented);
    }
}

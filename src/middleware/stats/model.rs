//! The JSON of [`STATS_PATH`], as `lab stats` reads it: [`StatsSnapshot`],
//! made from one [`Reading`] of the live counters. Its schema, field by
//! field, is `docs/stats-json.md` (a test below keeps the example there
//! and these types in step).
//!
//! Here the per-bucket counts become cumulative, as in Prometheus, and p50
//! and p99 are estimated from them ([`estimate_quantile`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::live::{BUCKETS_MS, LAYERS, N_BUCKETS, OTHER_LAYER, Reading, Totals};

/// The JSON statistics page of `lab proxy`.
pub const STATS_PATH: &str = "/_lab/stats";

impl Reading {
    /// The JSON of these numbers.
    pub(super) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            // To the millisecond, for the same reason as to_the_microsecond.
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
                    le_ms: BUCKETS_MS.get(i).map(|&ms| ms as f64),
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
                p50: estimate_quantile(0.5, &self.buckets).map(to_the_microsecond),
                p99: estimate_quantile(0.99, &self.buckets).map(to_the_microsecond),
                buckets,
            },
        }
    }
}

/// A number of milliseconds rounded to three decimals: an estimate has no
/// more precision than that, and a short decimal reads back as exactly the
/// same `f64` (JSON round trips).
fn to_the_microsecond(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

/// Estimates the `q` quantile (0.5 for the median) from per-bucket counts,
/// as Prometheus's `histogram_quantile()`: find the bucket holding the
/// observation of rank `q × count`, and assume its observations are spread
/// evenly between the bucket's bounds. A rank in the +Inf bucket answers
/// the highest finite bound (all that is known is "more than that").
/// `None` without observations.
///
/// E.g. 50 requests ≤ 1 ms and 50 in (1, 2] ms: the median's rank is 50,
/// the last of the first bucket, so p50 = 1 ms; p99's rank, 99, is the
/// 49th of 50 in (1, 2], so p99 = 1 + 1 × 49/50 = 1.98 ms.
fn estimate_quantile(q: f64, buckets: &[u64; N_BUCKETS]) -> Option<f64> {
    let count: u64 = buckets.iter().sum();
    if count == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * count as f64;
    let mut below = 0;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = BUCKETS_MS.get(i) else {
                return BUCKETS_MS.last().map(|&ms| ms as f64);
            };
            let lower = if i == 0 { 0 } else { BUCKETS_MS[i - 1] };
            let (lower, upper) = (lower as f64, upper as f64);
            return Some(lower + (upper - lower) * (rank - below as f64) / n as f64);
        }
        below += n;
    }
    None
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
    /// The median, estimated from the buckets, to the microsecond; `None`
    /// (null) without requests.
    pub p50: Option<f64>,
    /// The 99th percentile, estimated from the buckets.
    pub p99: Option<f64>,
    /// Cumulative, one per [`BUCKETS_MS`] bound and a last for +Inf.
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

    /// Counts per bucket: `(bucket index, count)`.
    fn buckets(filled: &[(usize, u64)]) -> [u64; N_BUCKETS] {
        let mut buckets = [0; N_BUCKETS];
        for &(i, n) in filled {
            buckets[i] = n;
        }
        buckets
    }

    #[test]
    fn percentiles_interpolate_inside_a_bucket() {
        // 50 in [0, 1] ms and 50 in (1, 2] ms (the example in the docs).
        let b = buckets(&[(0, 50), (1, 50)]);
        assert_eq!(estimate_quantile(0.5, &b), Some(1.0));
        let p99 = estimate_quantile(0.99, &b).unwrap();
        assert!((p99 - 1.98).abs() < 1e-9, "{p99}");
        // 10 requests of 3 ms, all in (2, 5]: rank 5 of 10 is halfway
        // through the bucket, 2 + 3 × 5/10; rank 9.9 is 2 + 3 × 9.9/10.
        let b = buckets(&[(2, 10)]);
        assert_eq!(estimate_quantile(0.5, &b), Some(3.5));
        let p99 = estimate_quantile(0.99, &b).unwrap();
        assert!((p99 - 4.97).abs() < 1e-9, "{p99}");
        // One request: every quantile is in its bucket.
        let b = buckets(&[(4, 1)]);
        assert_eq!(estimate_quantile(0.5, &b), Some(17.5), "10 + 15 × 0.5");
    }

    #[test]
    fn percentiles_skip_empty_buckets_and_stop_at_the_last_bound() {
        // 1 fast, 99 between 100 and 250 ms: p50 is in (100, 250].
        let b = buckets(&[(0, 1), (7, 99)]);
        let p50 = estimate_quantile(0.5, &b).unwrap();
        assert!((p50 - (100.0 + 150.0 * 49.0 / 99.0)).abs() < 1e-9, "{p50}");
        // Slower than every bound: only "more than 10 s" is known.
        let b = buckets(&[(13, 5)]);
        assert_eq!(estimate_quantile(0.5, &b), Some(10_000.0));
        assert_eq!(estimate_quantile(0.5, &[0; N_BUCKETS]), None);
    }

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

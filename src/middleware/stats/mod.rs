//! 数据统计 statistics: what `lab proxy` has done so far, counted per
//! upstream, and served two ways from the same numbers: JSON at
//! [`STATS_PATH`] (read by `lab stats`, see [`crate::stats_view`]) and the
//! Prometheus text exposition format 0.0.4 at [`METRICS_PATH`] (for a real
//! Prometheus to scrape).
//!
//! The article's last section lists 数据统计 beside 限流, 熔断, 降级 and 权限
//! as a middleware of a gateway. Here it is the layer that sees every
//! exchange end: the proxy calls [`Stats::record`] once per request, when the
//! response body has been sent (or dropped), with the upstream chosen, the
//! status, the latency, the body bytes each way and which layer answered.
//!
//! **The schema of the JSON**, field by field, and what its numbers mean
//! (when a latency ends, where the proxy's own answers count, the layers,
//! how p50 and p99 are measured): `docs/stats-json.md`.
//!
//! One idea per file:
//!
//! - `live.rs`: the hot path: the counters a request adds to (atomics,
//!   and an HDR histogram for the percentiles behind a short lock), and the guards that count open connections ([`ConnectionGuard`])
//!   and requests in flight ([`InFlight`]);
//! - `model.rs`: the JSON of [`STATS_PATH`] ([`StatsSnapshot`]), made from
//!   one reading of the counters;
//! - `prometheus.rs`: the metrics of [`METRICS_PATH`], encoded from the
//!   same reading at scrape time: one set of numbers, two views that cannot
//!   disagree;
//! - this file: [`Stats`], which holds them together.
//!
//! The body that counts the bytes, [`CountedBody`](crate::body::CountedBody), is with the other body
//! wrappers in [`crate::body`].

mod live;
mod model;
mod prometheus;

use std::sync::Arc;

use prometheus_client::registry::Registry;

pub use live::{BUCKETS_US, ConnectionGuard, InFlight, LAYERS, OTHER_LAYER, RequestRecord};
pub use model::{Bucket, Connections, Counts, Latency, STATS_PATH, StatsSnapshot, StatusClasses};
pub use prometheus::{METRICS_CONTENT_TYPE, METRICS_PATH, PROXY_UPSTREAM};

use live::Shared;

/// The statistics of one proxy, shared by all its requests (`Arc<Stats>`).
pub struct Stats {
    shared: Arc<Shared>,
    /// Holds one collector over `shared` (see `prometheus.rs`); it encodes
    /// at scrape time.
    registry: Registry,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("requests", &self.shared.requests())
            .finish_non_exhaustive()
    }
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    /// Empty statistics; the uptime counts from now.
    pub fn new() -> Stats {
        let shared = Arc::new(Shared::new());
        let registry = prometheus::registry(shared.clone());
        Stats { shared, registry }
    }

    /// A client connection was accepted; it counts as open until the guard
    /// is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.shared.connection_opened()
    }

    /// A request arrived; it counts as in flight until the guard is dropped.
    /// It is in flight at the proxy until [`InFlight::sent_to`] names an
    /// upstream.
    pub fn request_started(&self) -> InFlight {
        self.shared.request_started()
    }

    /// Counts one finished exchange.
    pub fn record(&self, record: RequestRecord<'_>) {
        self.shared.record(&record);
    }

    /// Everything counted so far: the JSON of [`STATS_PATH`].
    pub fn snapshot(&self) -> StatsSnapshot {
        self.shared.reading().snapshot()
    }

    /// The same numbers in the Prometheus text format 0.0.4, for
    /// [`METRICS_PATH`] (with [`METRICS_CONTENT_TYPE`]).
    pub fn prometheus_text(&self) -> String {
        prometheus::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(upstream: Option<&str>, status: u16, ms: u64) -> RequestRecord<'_> {
        RequestRecord {
            upstream,
            status,
            latency: Duration::from_millis(ms),
            bytes_in: 0,
            bytes_out: 0,
            layer: None,
        }
    }

    #[test]
    fn overall_is_the_sum_of_upstreams_and_the_proxy() {
        let stats = Stats::new();
        stats.record(record(Some("http://a"), 200, 1));
        stats.record(record(Some("http://a"), 502, 3));
        stats.record(record(Some("http://b"), 200, 30));
        stats.record(RequestRecord {
            layer: Some("rate-limit"),
            ..record(None, 429, 0)
        });
        let snap = stats.snapshot();
        assert_eq!(snap.overall.requests, 4);
        assert_eq!(snap.upstreams["http://a"].requests, 2);
        assert_eq!(snap.upstreams["http://a"].status.server_error, 1);
        assert_eq!(snap.upstreams["http://b"].status.success, 1);
        assert_eq!(snap.proxy.requests, 1);
        assert_eq!(snap.proxy.status.client_error, 1);
        assert_eq!(snap.proxy.layers["rate-limit"], 1);
        assert_eq!(snap.overall.layers["upstream"], 3);
        assert_eq!(snap.overall.layers["rate-limit"], 1);
        let latency = &snap.overall.latency_ms;
        assert_eq!(latency.count, 4);
        assert_eq!(latency.sum_ms, 34.0);
        let cumulative: Vec<u64> = latency.buckets.iter().map(|b| b.count).collect();
        // 0, 1, 3 and 30 ms against 0.05, 0.1 … 10 000 ms and +Inf.
        assert_eq!(
            cumulative,
            [1, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]
        );
        assert_eq!(latency.buckets[0].le_ms, Some(0.05));
        assert_eq!(latency.buckets[4].le_ms, Some(1.0));
        assert_eq!(latency.buckets[17].le_ms, None);
        // p50 and p99 are the HDR histogram's: the 2nd and 4th of 0, 1, 3, 30 ms.
        let p50 = latency.p50.unwrap();
        assert!((0.99..=1.01).contains(&p50), "{p50}");
        let p99 = latency.p99.unwrap();
        assert!((29.7..=30.3).contains(&p99), "{p99}");
    }

    #[test]
    fn guards_count_connections_and_requests_in_flight() {
        let stats = Arc::new(Stats::new());
        let c1 = stats.connection_opened();
        let c2 = stats.connection_opened();
        assert_eq!(
            stats.snapshot().connections,
            Connections { open: 2, total: 2 }
        );
        drop(c1);
        assert_eq!(
            stats.snapshot().connections,
            Connections { open: 1, total: 2 }
        );

        let mut request = stats.request_started();
        let snap = stats.snapshot();
        assert_eq!((snap.overall.in_flight, snap.proxy.in_flight), (1, 1));
        request.sent_to("http://a");
        let snap = stats.snapshot();
        assert_eq!(snap.proxy.in_flight, 0);
        assert_eq!(snap.upstreams["http://a"].in_flight, 1);
        request.sent_to("http://b");
        let snap = stats.snapshot();
        assert_eq!(snap.upstreams["http://a"].in_flight, 0);
        assert_eq!(snap.upstreams["http://b"].in_flight, 1);
        assert_eq!(snap.overall.in_flight, 1);
        drop(request);
        let snap = stats.snapshot();
        assert_eq!(snap.overall.in_flight, 0);
        assert_eq!(snap.upstreams["http://b"].in_flight, 0);
        drop(c2);
        assert_eq!(stats.snapshot().connections.open, 0);
    }

    #[test]
    fn many_threads_lose_no_count() {
        let stats = Arc::new(Stats::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    let upstream = format!("http://u{}", t % 2);
                    for i in 0..1000 {
                        let _in_flight = stats.request_started();
                        stats.record(RequestRecord {
                            bytes_out: 10,
                            ..record(Some(&upstream), 200, i % 20)
                        });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let snap = stats.snapshot();
        assert_eq!(snap.overall.requests, 4000);
        assert_eq!(snap.overall.bytes_out, 40_000);
        assert_eq!(snap.overall.in_flight, 0);
        assert_eq!(snap.upstreams["http://u0"].requests, 2000);
        assert_eq!(snap.upstreams["http://u1"].latency_ms.count, 2000);
    }

    #[test]
    fn everything_crosses_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Stats>();
        send_sync::<InFlight>();
        send_sync::<ConnectionGuard>();
    }
}

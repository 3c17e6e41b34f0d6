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
//! # The hot path
//!
//! A request touches only atomics: one set of counters for everything and
//! one for its upstream, found under a read lock of the upstream map (the write
//! lock is taken once per new upstream). Nothing is sorted, formatted or
//! allocated until somebody asks for a snapshot. A snapshot reads the atomics
//! one by one while traffic goes on, so under load its totals may differ by
//! the few requests being recorded at that instant; at rest they agree.
//!
//! # Latency
//!
//! [`RequestRecord::latency`] runs from the moment the proxy has the request
//! head to the moment the response body ended (its last byte handed to the
//! client's connection) or was dropped: what the client waited, body
//! included. Latencies go into fixed buckets ([`BUCKETS_MS`]); p50 and p99
//! are estimated from the buckets the way Prometheus's
//! `histogram_quantile()` does (linear inside the bucket the rank falls in),
//! so they are as coarse as the buckets: a p99 of 4.97 ms means "between 2
//! and 5 ms, near the top".
//!
//! # The proxy's own answers
//!
//! A request the proxy answered without asking any upstream (a 429 from the
//! rate limiter, a 401 from auth, a 503 with no live upstream, a fallback)
//! has `upstream: None`. Such answers are counted apart: the `proxy` object
//! in the JSON and the label `upstream="(proxy)"` ([`PROXY_UPSTREAM`]) in
//! the metrics. Not `upstream=""`: in Prometheus an empty label is the same
//! as no label at all, which would make these series look like totals.
//!
//! # Layers
//!
//! Which layer answered ([`RequestRecord::layer`]): `upstream` (the upstream
//! did, `layer: None`), `proxy` (the proxy's error handler: a 502 or 504
//! for an upstream it could not reach), `auth`, `rate-limit`, `breaker`,
//! `fallback` ([`LAYERS`]); any other name is counted as `other`.
//!
//! # `/_lab/stats`: the JSON (stable: fields are added, never renamed)
//!
//! ```text
//! {
//!   "uptime_seconds": 93.4,                   since the proxy started
//!   "connections": { "open": 2, "total": 17 }, client connections now / ever
//!   "overall": COUNTS,                        every request
//!   "upstreams": { "http://127.0.0.1:2003/base": COUNTS, … },   by upstream URL
//!   "proxy": COUNTS                           the proxy's own answers (no upstream)
//! }
//! COUNTS = {
//!   "requests": 120,                          exchanges finished
//!   "in_flight": 3,                           started and not finished yet (in
//!                                             "proxy": not at an upstream yet)
//!   "status": { "1xx": 0, "2xx": 110, "3xx": 0, "4xx": 4, "5xx": 6, "other": 0 },
//!   "layers": { "upstream": 114, "proxy": 2, "rate-limit": 4 },  who answered; zeros left out
//!   "bytes_in": 0,                            request body bytes received from clients
//!   "bytes_out": 51234,                       response body bytes sent to clients
//!   "latency_ms": {
//!     "count": 120, "sum_ms": 250.5,
//!     "p50": 1.6 | null, "p99": 9.2 | null,   estimated from the buckets; null: no requests
//!     "buckets": [ { "le_ms": 1.0, "count": 40 }, …, { "le_ms": null, "count": 120 } ]
//!   }                                         cumulative, as in Prometheus; null: +Inf
//! }
//! ```
//!
//! # `/_lab/metrics`: the Prometheus metrics
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `lab_uptime_seconds` | gauge | |
//! | `lab_open_connections` | gauge | |
//! | `lab_connections_total` | counter | |
//! | `lab_in_flight_requests` | gauge | |
//! | `lab_upstream_in_flight_requests` | gauge | `upstream` |
//! | `lab_requests_total` | counter | `upstream`, `class` (`1xx`…`5xx`, `other`) |
//! | `lab_responses_by_layer_total` | counter | `upstream`, `layer` |
//! | `lab_request_duration_seconds` | histogram | `upstream` |
//! | `lab_bytes_total` | counter | `upstream`, `direction` (`in`, `out`) |
//!
//! They are encoded by `prometheus-client` (the official Rust client) from a
//! [`Collector`] that reads the same atomics as the JSON, at scrape time, as
//! Go's `prometheus.Collector` with const metrics does: one set of numbers,
//! two views that cannot disagree.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// The body wrapper the proxy counts bytes with; it lives with the other
/// body wrappers.
pub use crate::body::CountedBody;

/// The JSON statistics page of `lab proxy`.
pub const STATS_PATH: &str = "/_lab/stats";

/// The Prometheus metrics page of `lab proxy`.
pub const METRICS_PATH: &str = "/_lab/metrics";

/// The `Content-Type` of [`Stats::prometheus_text`]:
/// `text/plain; version=0.0.4; charset=utf-8`.
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `upstream` label of the proxy's own answers in the metrics.
pub const PROXY_UPSTREAM: &str = "(proxy)";

/// The layers that can answer a request, as counted; `upstream` is
/// `layer: None`. Any other name is counted as [`OTHER_LAYER`].
pub const LAYERS: [&str; 6] = [
    "upstream",
    "proxy",
    "auth",
    "rate-limit",
    "breaker",
    "fallback",
];

/// Where a layer name not in [`LAYERS`] is counted.
pub const OTHER_LAYER: &str = "other";

/// The upper bounds of the latency buckets, in milliseconds; a last bucket,
/// +Inf, takes the rest. From "faster than a loopback hop" to the article's
/// timeouts (3 s, 6 s), in roughly 1-2.5-5 steps as Prometheus's defaults.
pub const BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// How many buckets a histogram has: [`BUCKETS_MS`] and +Inf.
const N_BUCKETS: usize = BUCKETS_MS.len() + 1;

/// Status classes counted: 1xx … 5xx, and anything else (600-999).
const N_CLASSES: usize = 6;
const CLASS_NAMES: [&str; N_CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// [`LAYERS`] and [`OTHER_LAYER`].
const N_LAYERS: usize = LAYERS.len() + 1;

/// One finished exchange, as the proxy tells it to [`Stats::record`].
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The upstream URL the request was sent to; `None` when the proxy
    /// answered itself (429, 401, 503 with nothing live, a fallback).
    pub upstream: Option<&'a str>,
    pub status: u16,
    /// From the request head received to the response body ended (sent
    /// whole, or dropped): see the module's docs.
    pub latency: Duration,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Which layer answered: `auth`, `rate-limit`, `breaker`, `fallback`,
    /// `proxy` (the error handler); `None`: the upstream did.
    pub layer: Option<&'a str>,
}

/// The statistics of one proxy, shared by all its requests (`Arc<Stats>`).
pub struct Stats {
    shared: Arc<Shared>,
    /// Holds one [`Collector`] over `shared`; encodes at scrape time.
    registry: Registry,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field(
                "requests",
                &self.shared.overall.requests.load(Ordering::Relaxed),
            )
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
        let shared = Arc::new(Shared {
            started: Instant::now(),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            overall: Counters::default(),
            proxy: Arc::new(Counters::default()),
            upstreams: RwLock::new(HashMap::new()),
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StatsCollector(shared.clone())));
        Stats { shared, registry }
    }

    /// A client connection was accepted; it counts as open until the guard
    /// is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.shared
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        self.shared.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            shared: self.shared.clone(),
        }
    }

    /// A request arrived; it counts as in flight until the guard is dropped.
    /// It is in flight at the proxy until [`InFlight::sent_to`] names an
    /// upstream.
    pub fn request_started(&self) -> InFlight {
        self.shared
            .overall
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        self.shared.proxy.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            shared: self.shared.clone(),
            at: self.shared.proxy.clone(),
        }
    }

    /// Counts one finished exchange.
    pub fn record(&self, record: RequestRecord<'_>) {
        let sample = Sample::of(&record);
        self.shared.overall.add(&sample);
        match record.upstream {
            Some(upstream) => self.shared.upstream(upstream).add(&sample),
            None => self.shared.proxy.add(&sample),
        }
    }

    /// Everything counted so far: the JSON of [`STATS_PATH`].
    pub fn snapshot(&self) -> StatsSnapshot {
        self.shared.reading().snapshot()
    }

    /// The same numbers in the Prometheus text format 0.0.4, for
    /// [`METRICS_PATH`] (with [`METRICS_CONTENT_TYPE`]).
    pub fn prometheus_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, and the collector does not either.
        if let Err(err) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!("cannot encode the metrics: {err}");
        }
        text
    }
}

/// An open client connection: counted open until dropped.
pub struct ConnectionGuard {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionGuard").finish_non_exhaustive()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request in flight: counted until dropped, at the proxy until
/// [`InFlight::sent_to`] moves it to an upstream.
pub struct InFlight {
    shared: Arc<Shared>,
    /// Whose `in_flight` counts this request: the proxy's or an upstream's.
    at: Arc<Counters>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

impl InFlight {
    /// The request was sent to `upstream` (of `stats`, the statistics that
    /// started it): it now counts in that upstream's in-flight requests.
    /// Called again (a retry), it moves there.
    pub fn sent_to(&mut self, stats: &Stats, upstream: &str) {
        let counters = stats.shared.upstream(upstream);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let before = std::mem::replace(&mut self.at, counters);
        before.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts this request's finished exchange, overall and where it counts
    /// now (its upstream after [`InFlight::sent_to`], else the proxy's own
    /// answers): no lookup, whatever `record.upstream` says.
    pub fn record(&self, record: RequestRecord<'_>) {
        let sample = Sample::of(&record);
        self.shared.overall.add(&sample);
        self.at.add(&sample);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.at.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.shared
            .overall
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the requests share: all the counters.
struct Shared {
    started: Instant,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    overall: Counters,
    /// The proxy's own answers (`upstream: None`).
    proxy: Arc<Counters>,
    upstreams: RwLock<HashMap<Box<str>, Arc<Counters>>>,
}

impl Shared {
    /// `upstream`'s counters, made on its first request.
    fn upstream(&self, upstream: &str) -> Arc<Counters> {
        if let Some(counters) = self
            .upstreams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(upstream)
        {
            return counters.clone();
        }
        let mut map = self
            .upstreams
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(upstream.into()).or_default().clone()
    }

    /// Every atomic read once.
    fn reading(&self) -> Reading {
        let upstreams = self
            .upstreams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(upstream, counters)| (upstream.to_string(), counters.read()))
            .collect();
        Reading {
            uptime: self.started.elapsed(),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            overall: self.overall.read(),
            proxy: self.proxy.read(),
            upstreams,
        }
    }
}

/// One exchange, reduced to the indices of the counters it adds to.
struct Sample {
    class: usize,
    layer: usize,
    bucket: usize,
    nanos: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Sample {
    fn of(record: &RequestRecord<'_>) -> Sample {
        let nanos = u64::try_from(record.latency.as_nanos()).unwrap_or(u64::MAX);
        Sample {
            class: class_index(record.status),
            layer: layer_index(record.layer),
            bucket: bucket_index(nanos),
            nanos,
            bytes_in: record.bytes_in,
            bytes_out: record.bytes_out,
        }
    }
}

/// `status` → 0 for 1xx … 4 for 5xx, 5 for anything else.
fn class_index(status: u16) -> usize {
    match status / 100 {
        class @ 1..=5 => usize::from(class - 1),
        _ => N_CLASSES - 1,
    }
}

/// `layer` → its place in [`LAYERS`] (`None` is `upstream`), or the last
/// slot, `other`.
fn layer_index(layer: Option<&str>) -> usize {
    let name = layer.unwrap_or(LAYERS[0]);
    match LAYERS.iter().position(|known| *known == name) {
        Some(index) => index,
        None => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "statistics: layer {name:?} is not one of {LAYERS:?}; counted as {OTHER_LAYER:?}"
                );
            }
            N_LAYERS - 1
        }
    }
}

/// The bucket a latency falls in: the first whose bound it does not exceed
/// (Prometheus's `le`, "less than or equal"), or the last, +Inf. In
/// nanoseconds, so that 1.0004 ms is not rounded down into the 1 ms bucket.
fn bucket_index(nanos: u64) -> usize {
    BUCKETS_MS
        .iter()
        .position(|&ms| nanos <= ms * 1_000_000)
        .unwrap_or(N_BUCKETS - 1)
}

/// The counters of one upstream (or of the proxy's own answers, or of
/// everything): atomics only.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    classes: [AtomicU64; N_CLASSES],
    layers: [AtomicU64; N_LAYERS],
    /// Per bucket, not cumulative: one add per request.
    buckets: [AtomicU64; N_BUCKETS],
    latency_nanos: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Counters {
    fn add(&self, sample: &Sample) {
        // Relaxed: each counter is a tally on its own; nothing is published
        // through them, and a reader only wants each value eventually.
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.classes[sample.class].fetch_add(1, Ordering::Relaxed);
        self.layers[sample.layer].fetch_add(1, Ordering::Relaxed);
        self.buckets[sample.bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_nanos
            .fetch_add(sample.nanos, Ordering::Relaxed);
        self.bytes_in.fetch_add(sample.bytes_in, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(sample.bytes_out, Ordering::Relaxed);
    }

    fn read(&self) -> Totals {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            requests: load(&self.requests),
            in_flight: load(&self.in_flight),
            classes: self.classes.each_ref().map(load),
            layers: self.layers.each_ref().map(load),
            buckets: self.buckets.each_ref().map(load),
            latency_nanos: load(&self.latency_nanos),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
        }
    }
}

/// [`Counters`], read.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    requests: u64,
    in_flight: u64,
    classes: [u64; N_CLASSES],
    layers: [u64; N_LAYERS],
    buckets: [u64; N_BUCKETS],
    latency_nanos: u64,
    bytes_in: u64,
    bytes_out: u64,
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

/// Every counter, read at one moment: what both views are made from.
struct Reading {
    uptime: Duration,
    connections_open: u64,
    connections_total: u64,
    overall: Totals,
    proxy: Totals,
    upstreams: BTreeMap<String, Totals>,
}

impl Reading {
    fn snapshot(&self) -> StatsSnapshot {
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

    /// The upstream label and totals of every series: each upstream, then
    /// the proxy's own answers.
    fn series(&self) -> impl Iterator<Item = (&str, &Totals)> {
        self.upstreams
            .iter()
            .map(|(upstream, totals)| (upstream.as_str(), totals))
            .chain([(PROXY_UPSTREAM, &self.proxy)])
    }
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

/// The JSON of [`STATS_PATH`]; the module's docs draw it.
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

/// Feeds the registry from the atomics at scrape time.
struct StatsCollector(Arc<Shared>);

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsCollector")
    }
}

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let reading = self.0.reading();

        encoder
            .encode_descriptor(
                "lab_uptime_seconds",
                "Seconds since lab proxy started. A gauge: it can go down (a restart), which \
                 is how a dashboard sees the counters below start again from zero.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&reading.uptime.as_secs_f64())?;
        encoder
            .encode_descriptor(
                "lab_open_connections",
                "Client connections open now. HTTP/1.1 keeps a connection open between \
                 requests (keep-alive), so this is usually more than the requests in flight.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&reading.connections_open)?;
        // Counters are named without `_total`: the encoder adds it.
        encoder
            .encode_descriptor(
                "lab_connections",
                "Client connections accepted since start. Compare with lab_requests_total: \
                 many requests per connection means keep-alive is working.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&reading.connections_total, None)?;
        encoder
            .encode_descriptor(
                "lab_in_flight_requests",
                "Requests started and not finished (their response body not yet sent). \
                 By Little's law, about requests per second times mean latency.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&reading.overall.in_flight)?;

        let mut metric = encoder.encode_descriptor(
            "lab_upstream_in_flight_requests",
            "Requests in flight by the upstream they were sent to; upstream=\"(proxy)\": \
             not sent to any upstream (yet), e.g. queued by a middleware. Sums to \
             lab_in_flight_requests.",
            None,
            MetricType::Gauge,
        )?;
        for (upstream, totals) in reading.series() {
            let labels = [("upstream", upstream)];
            metric
                .encode_family(&labels)?
                .encode_gauge(&totals.in_flight)?;
        }

        let mut metric = encoder.encode_descriptor(
            "lab_requests",
            "Requests answered, by upstream and status class (1xx to 5xx, other). \
             upstream=\"(proxy)\" counts the answers the proxy gave without asking any \
             upstream (429 rate limited, 401 unauthorised, 503 nothing live, a fallback). \
             A counter only goes up: graph rate(lab_requests_total[1m]) for requests per second.",
            None,
            MetricType::Counter,
        )?;
        for (upstream, totals) in reading.series() {
            for (class, &count) in CLASS_NAMES.iter().zip(&totals.classes) {
                // Every class from the start, so that rate() sees the first one;
                // `other` (600-999) only once it happened.
                if *class == "other" && count == 0 {
                    continue;
                }
                let labels = [("upstream", upstream), ("class", *class)];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }

        let mut metric = encoder.encode_descriptor(
            "lab_responses_by_layer",
            "Responses by the layer that made them: upstream (the upstream answered), proxy \
             (the error handler: 502/504 for an upstream it could not reach), auth, \
             rate-limit, breaker, fallback. A 5xx from layer=upstream is the upstream's \
             fault; from layer=proxy, the way there.",
            None,
            MetricType::Counter,
        )?;
        for (upstream, totals) in reading.series() {
            for (layer, &count) in LAYERS.iter().chain([&OTHER_LAYER]).zip(&totals.layers) {
                if count == 0 {
                    continue;
                }
                let labels = [("upstream", upstream), ("layer", *layer)];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }

        let mut metric = encoder.encode_descriptor(
            "lab_request_duration_seconds",
            "Time from the request head received to the response body sent, by upstream. \
             Buckets are cumulative (le: less than or equal); estimate a percentile with \
             histogram_quantile(0.99, rate(lab_request_duration_seconds_bucket[5m])).",
            None,
            MetricType::Histogram,
        )?;
        for (upstream, totals) in reading.series() {
            let buckets: Vec<(f64, u64)> = totals
                .buckets
                .iter()
                .enumerate()
                .map(|(i, &count)| {
                    let le = BUCKETS_MS
                        .get(i)
                        .map_or(f64::INFINITY, |&ms| ms as f64 / 1e3);
                    (le, count)
                })
                .collect();
            let count = totals.buckets.iter().sum();
            let labels = [("upstream", upstream)];
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    totals.latency_nanos as f64 / 1e9,
                    count,
                    &buckets,
                    None,
                )?;
        }

        let mut metric = encoder.encode_descriptor(
            "lab_bytes",
            "Body bytes by upstream: direction=in, request bodies received from clients; \
             direction=out, response bodies sent to them. Headers are not counted.",
            None,
            MetricType::Counter,
        )?;
        for (upstream, totals) in reading.series() {
            for (direction, count) in [("in", totals.bytes_in), ("out", totals.bytes_out)] {
                let labels = [("upstream", upstream), ("direction", direction)];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
    fn a_latency_falls_in_the_first_bucket_it_does_not_exceed() {
        let ms = |ms: u64| ms * 1_000_000;
        assert_eq!(bucket_index(0), 0);
        assert_eq!(
            bucket_index(ms(1)),
            0,
            "le: exactly 1 ms is in the 1 ms bucket"
        );
        assert_eq!(bucket_index(ms(1) + 1), 1, "1 ms and a nanosecond is not");
        assert_eq!(bucket_index(ms(2)), 1);
        assert_eq!(bucket_index(ms(3)), 2, "(2, 5]");
        assert_eq!(bucket_index(ms(10_000)), 12, "10 s, the last finite bound");
        assert_eq!(bucket_index(ms(10_000) + 1), 13, "+Inf");
        assert_eq!(bucket_index(u64::MAX), 13);
    }

    #[test]
    fn status_classes_and_layers() {
        assert_eq!(class_index(101), 0);
        assert_eq!(class_index(200), 1);
        assert_eq!(class_index(304), 2);
        assert_eq!(class_index(429), 3);
        assert_eq!(class_index(599), 4);
        assert_eq!(class_index(600), 5);
        assert_eq!(class_index(999), 5);
        assert_eq!(layer_index(None), 0);
        assert_eq!(layer_index(Some("upstream")), 0);
        assert_eq!(layer_index(Some("rate-limit")), 3);
        assert_eq!(layer_index(Some("fallback")), 5);
        assert_eq!(layer_index(Some("something-new")), 6);
    }

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
        assert_eq!(cumulative, [2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]);
        assert_eq!(latency.buckets[0].le_ms, Some(1.0));
        assert_eq!(latency.buckets[13].le_ms, None);
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
        request.sent_to(&stats, "http://a");
        let snap = stats.snapshot();
        assert_eq!(snap.proxy.in_flight, 0);
        assert_eq!(snap.upstreams["http://a"].in_flight, 1);
        request.sent_to(&stats, "http://b");
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

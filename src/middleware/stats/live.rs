//! The live counters of `Stats`: what one finished exchange adds
//! to, per upstream, and the guards that count what is open now (client
//! connections, requests in flight).
//!
//! # The hot path
//!
//! A request touches only atomics: one set of counters for everything and
//! one for its upstream, found under a read lock of the upstream map (the write
//! lock is taken once per new upstream). Nothing is sorted, formatted or
//! allocated until somebody asks for a snapshot. A snapshot reads the atomics
//! one by one while traffic goes on ([`Reading`]), so under load its totals
//! may differ by the few requests being recorded at that instant; at rest
//! they agree.
//!
//! Latencies are counted twice. Into fixed buckets ([`BUCKETS_US`]), one
//! atomic add per request, for Prometheus (whose `histogram_quantile()`
//! wants them); and into an HDR histogram (the `hdrhistogram` crate: every
//! value kept to two significant digits, 1 µs to an hour, in about 25 KiB),
//! from which p50 and p99 are read: a loopback request of 0.21 ms reads
//! 0.21, not "somewhere under the first bucket's 1 ms". The HDR histogram
//! is not atomic: a request holds its mutex for one `record` (a few adds
//! and a shift), never across an await; a snapshot holds it to read two
//! quantiles. Only an upstream's (or the proxy's own answers') histogram is
//! recorded into: everything's percentiles come from those merged at
//! snapshot time, so a request takes one lock, not two.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The layers that can answer a request, as counted; `upstream` is
/// `layer: None`. Any other name is counted as [`OTHER_LAYER`].
pub const LAYERS: [&str; 7] = [
    "upstream",
    "proxy",
    "auth",
    "rate-limit",
    "breaker",
    "fallback",
    "client",
];

/// Where a layer name not in [`LAYERS`] is counted.
pub const OTHER_LAYER: &str = "other";

/// The upper bounds of the latency buckets, in microseconds; a last bucket,
/// +Inf, takes the rest. From a loopback hop (0.05 ms: a lab proxy in
/// front of a lab realserver answers in about 0.1 to 0.3 ms) to past the
/// article's timeouts (3 s, 6 s), in the 1-2.5-5 steps of Prometheus's
/// defaults.
pub const BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// How many buckets a histogram has: [`BUCKETS_US`] and +Inf.
pub(super) const N_BUCKETS: usize = BUCKETS_US.len() + 1;

/// The HDR histogram's range and precision: 1 µs to an hour (longer is
/// counted as an hour), two significant digits (each value to within 1 %).
const HDR_MAX_US: u64 = 3_600_000_000;
const HDR_DIGITS: u8 = 2;

/// Status classes counted: 1xx … 5xx, and anything else (600-999).
pub(super) const N_CLASSES: usize = 6;
pub(super) const CLASS_NAMES: [&str; N_CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// [`LAYERS`] and [`OTHER_LAYER`].
pub(super) const N_LAYERS: usize = LAYERS.len() + 1;

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

/// One finished exchange, as the proxy tells it to `Stats::record`.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The upstream URL the request was sent to; `None` when the proxy
    /// answered itself (429, 401, 503 with nothing live, a fallback).
    pub upstream: Option<&'a str>,
    pub status: u16,
    /// From the request head received to the response body ended (sent
    /// whole, or dropped): what the client waited, body included.
    pub latency: Duration,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Which layer answered: `auth`, `rate-limit`, `breaker`, `fallback`,
    /// `proxy` (the error handler); `None`: the upstream did.
    pub layer: Option<&'a str>,
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
    /// The request was sent to `upstream`: it now counts in that
    /// upstream's in-flight requests (of the statistics that started it).
    /// Called again (a retry), it moves there.
    pub fn sent_to(&mut self, upstream: &str) {
        let counters = self.shared.upstream(upstream);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let before = std::mem::replace(&mut self.at, counters);
        before.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts this request's finished exchange, overall and where it counts
    /// now (its upstream after [`InFlight::sent_to`], else the proxy's own
    /// answers): no lookup, whatever `record.upstream` says.
    pub fn record(&self, record: RequestRecord<'_>) {
        let sample = Sample::of(&record);
        self.shared.overall.add_counts(&sample);
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
pub(super) struct Shared {
    started: Instant,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    overall: Counters,
    /// The proxy's own answers (`upstream: None`).
    proxy: Arc<Counters>,
    /// Keyed by the upstream's URL, looked up on every request: foldhash
    /// hashes it in a tenth of SipHash's time, and these keys come from the
    /// configuration, not from clients (no flooding to resist).
    upstreams: RwLock<HashMap<Box<str>, Arc<Counters>, foldhash::fast::RandomState>>,
}

impl Shared {
    /// No counts yet; the uptime counts from now.
    pub(super) fn new() -> Shared {
        Shared {
            started: Instant::now(),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            overall: Counters::default(),
            proxy: Arc::new(Counters::default()),
            upstreams: RwLock::new(HashMap::default()),
        }
    }

    /// See `Stats::connection_opened`.
    pub(super) fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            shared: self.clone(),
        }
    }

    /// See `Stats::request_started`.
    pub(super) fn request_started(self: &Arc<Self>) -> InFlight {
        self.overall.in_flight.fetch_add(1, Ordering::Relaxed);
        self.proxy.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            shared: self.clone(),
            at: self.proxy.clone(),
        }
    }

    /// See `Stats::record`.
    pub(super) fn record(&self, record: &RequestRecord<'_>) {
        let sample = Sample::of(record);
        self.overall.add_counts(&sample);
        match record.upstream {
            Some(upstream) => self.upstream(upstream).add(&sample),
            None => self.proxy.add(&sample),
        }
    }

    /// Exchanges finished, overall.
    pub(super) fn requests(&self) -> u64 {
        self.overall.requests.load(Ordering::Relaxed)
    }

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
    pub(super) fn reading(&self) -> Reading {
        let map = self
            .upstreams
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let upstreams = map
            .iter()
            .map(|(upstream, counters)| (upstream.to_string(), counters.read()))
            .collect();
        // Everything's percentiles: the upstreams' and the proxy's
        // histograms, merged (the overall counters keep none).
        let mut overall = self.overall.read();
        overall.quantiles_us =
            Hdr::merged_quantiles(map.values().map(|c| &c.hdr).chain([&self.proxy.hdr]));
        Reading {
            uptime: self.started.elapsed(),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            overall,
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
    // The bounds are sorted: the first not below the latency.
    BUCKETS_US.partition_point(|&us| us.saturating_mul(1_000) < nanos)
}

/// The counters of one upstream (or of the proxy's own answers, or of
/// everything): atomics, and the HDR histogram behind its short lock.
#[derive(Default)]
struct Counters {
    /// Every latency in microseconds, for the percentiles.
    hdr: Hdr,
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
    /// Counts `sample` here, its latency in the HDR histogram too.
    fn add(&self, sample: &Sample) {
        self.add_counts(sample);
        self.hdr.record(sample.nanos / 1_000);
    }

    /// Counts `sample` in the atomics only: the overall counters, whose
    /// percentiles are read from the others' histograms merged (one lock
    /// per request, not two).
    fn add_counts(&self, sample: &Sample) {
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
            quantiles_us: self.hdr.quantiles(),
        }
    }
}

/// An HDR histogram of latencies in microseconds, behind a mutex held only
/// for one record or one reading.
struct Hdr(Mutex<hdrhistogram::Histogram<u64>>);

impl Default for Hdr {
    fn default() -> Hdr {
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, HDR_MAX_US, HDR_DIGITS)
            .expect("1 µs to an hour at two significant digits is a valid HDR range");
        Hdr(Mutex::new(histogram))
    }
}

impl Hdr {
    fn record(&self, micros: u64) {
        let mut histogram = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        histogram.saturating_record(micros.min(HDR_MAX_US));
    }

    /// `[p50, p99]` in microseconds, `None` with nothing recorded.
    fn quantiles(&self) -> Option<[u64; 2]> {
        let histogram = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        p50_p99(&histogram)
    }

    /// [`Hdr::quantiles`] of these histograms together.
    fn merged_quantiles<'a>(all: impl Iterator<Item = &'a Hdr>) -> Option<[u64; 2]> {
        let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
        for hdr in all {
            let histogram = hdr.0.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut merged {
                // Same bounds, values within them: adding cannot fail.
                Some(m) => {
                    let _ = m.add(&*histogram);
                }
                None => merged = Some(histogram.clone()),
            }
        }
        merged.as_ref().and_then(p50_p99)
    }
}

fn p50_p99(histogram: &hdrhistogram::Histogram<u64>) -> Option<[u64; 2]> {
    (!histogram.is_empty()).then(|| {
        [
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
        ]
    })
}

/// [`Counters`], read.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    /// p50 and p99 from the HDR histogram, in microseconds.
    pub(super) quantiles_us: Option<[u64; 2]>,
    pub(super) requests: u64,
    pub(super) in_flight: u64,
    pub(super) classes: [u64; N_CLASSES],
    pub(super) layers: [u64; N_LAYERS],
    pub(super) buckets: [u64; N_BUCKETS],
    pub(super) latency_nanos: u64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
}

/// Every counter, read at one moment: what both views are made from.
pub(super) struct Reading {
    pub(super) uptime: Duration,
    pub(super) connections_open: u64,
    pub(super) connections_total: u64,
    pub(super) overall: Totals,
    pub(super) proxy: Totals,
    pub(super) upstreams: BTreeMap<String, Totals>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_falls_in_the_first_bucket_it_does_not_exceed() {
        let us = |us: u64| us * 1_000;
        assert_eq!(bucket_index(0), 0);
        assert_eq!(
            bucket_index(us(50)),
            0,
            "le: exactly 0.05 ms is in the 0.05 ms bucket"
        );
        assert_eq!(bucket_index(us(50) + 1), 1, "and a nanosecond more is not");
        assert_eq!(bucket_index(us(210)), 2, "a loopback hop: (0.1, 0.25]");
        assert_eq!(bucket_index(us(1_000)), 4, "1 ms");
        assert_eq!(bucket_index(us(3_000)), 6, "(2.5, 5] ms");
        assert_eq!(
            bucket_index(us(10_000_000)),
            16,
            "10 s, the last finite bound"
        );
        assert_eq!(bucket_index(us(10_000_000) + 1), 17, "+Inf");
        assert_eq!(bucket_index(u64::MAX), 17);
    }

    #[test]
    fn the_hdr_histogram_reads_sub_millisecond_percentiles() {
        let hdr = Hdr::default();
        assert_eq!(hdr.quantiles(), None);
        // 98 requests of 210 µs, 2 of 3 ms: p50 is 0.21 ms, p99 3 ms, each
        // to within the histogram's 1 %.
        for _ in 0..98 {
            hdr.record(210);
        }
        hdr.record(3_000);
        hdr.record(3_000);
        let [p50, p99] = hdr.quantiles().unwrap();
        assert!((208..=212).contains(&p50), "{p50}");
        assert!((2_970..=3_030).contains(&p99), "{p99}");
        // Past the range: counted as the longest it keeps, not lost.
        hdr.record(u64::MAX);
        assert!(hdr.quantiles().is_some());
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
        assert_eq!(layer_index(Some("client")), 6);
        assert_eq!(layer_index(Some("something-new")), 7);
    }
}

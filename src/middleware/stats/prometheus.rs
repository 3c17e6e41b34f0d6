//! The Prometheus metrics of [`METRICS_PATH`], in the text exposition
//! format 0.0.4 (for a real Prometheus to scrape):
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
//!
//! The proxy's own answers (no upstream was asked) carry the label
//! `upstream="(proxy)"` ([`PROXY_UPSTREAM`]). Not `upstream=""`: in
//! Prometheus an empty label is the same as no label at all, which would
//! make these series look like totals.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::live::{BUCKETS_US, CLASS_NAMES, LAYERS, OTHER_LAYER, Reading, Shared, Totals};

/// The Prometheus metrics page of `lab proxy`.
pub const METRICS_PATH: &str = "/_lab/metrics";

/// The `Content-Type` of [`super::Stats::prometheus_text`]:
/// `text/plain; version=0.0.4; charset=utf-8`.
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `upstream` label of the proxy's own answers in the metrics.
pub const PROXY_UPSTREAM: &str = "(proxy)";

/// A registry holding one [`Collector`] over `shared`.
pub(super) fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StatsCollector(shared)));
    registry
}

/// What `registry` holds, in the text format.
pub(super) fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail, and the collector does not either.
    if let Err(err) = prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
        tracing::warn!("cannot encode the metrics: {err}");
    }
    text
}

impl Reading {
    /// The upstream label and totals of every series: each upstream, then
    /// the proxy's own answers.
    fn series(&self) -> impl Iterator<Item = (&str, &Totals)> {
        self.upstreams
            .iter()
            .map(|(upstream, totals)| (upstream.as_str(), totals))
            .chain([(PROXY_UPSTREAM, &self.proxy)])
    }
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
                    let le = BUCKETS_US
                        .get(i)
                        .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
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

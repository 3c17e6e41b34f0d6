//! Lab 19's 数据统计 (statistics) section: a known mix of requests, then
//! `/_lab/stats` must count exactly that, and `/_lab/metrics` must agree
//! with it in Prometheus' text format.

use std::net::SocketAddr;
use std::time::Duration;

use super::auth::TOKEN;
use super::started::Started;
use crate::labs::checks::proxy_pages::poll_page;
use crate::labs::checks::servers::upstream_url as base;
use crate::labs::findings::Findings;
use crate::middleware::stats::{METRICS_PATH, STATS_PATH, StatsSnapshot};
use crate::probe::Probe;

/// How long the statistics may take to count the last exchange.
pub(super) const GIVE_UP: Duration = Duration::from_secs(2);

/// 数据统计: a known mix, then `/_lab/stats` and `/_lab/metrics`.
pub(super) async fn statistics(
    f: &mut Findings,
    lab: &mut Started,
    a: SocketAddr,
    b: SocketAddr,
) -> anyhow::Result<()> {
    let p = lab.round_robin(a, b, &["--auth-token", TOKEN]).await?;
    f.step(format!(
        "`lab proxy --lb round-robin --upstream {} --upstream {} --auth-token {TOKEN}` at {p}",
        base(a),
        base(b)
    ));
    let bearer = format!("Bearer {TOKEN}");
    for _ in 0..6 {
        Probe::get("/abc")
            .method(http::Method::POST)
            .header("Authorization", &bearer)
            .body(vec![b'x'; 100])
            .send(p)
            .await?;
    }
    for _ in 0..2 {
        Probe::get("/error")
            .header("Authorization", &bearer)
            .send(p)
            .await?;
    }
    for _ in 0..2 {
        Probe::get("/abc").send(p).await?;
    }
    f.step(
        "sent 6 POST /abc with 100-byte bodies and 2 GET /error with the token, \
         2 GET /abc without it",
    );

    // An exchange is counted when its body has gone: poll briefly.
    let (_, stats) = poll_stats(p, Duration::from_millis(10), |stats| {
        stats.overall.requests >= 10
    })
    .await?;
    let overall = &stats.overall;
    let layers: Vec<String> = overall
        .layers
        .iter()
        .map(|(layer, n)| format!("{layer} {n}"))
        .collect();
    let count = |url: String| stats.upstreams.get(&url).map_or(0, |c| c.requests);
    f.claim_eq(
        "stats-count-what-was-sent",
        "10 requests: 2xx 6 · 4xx 2 · 5xx 2; a 4 · b 4 · the proxy's own 2; \
         answered by auth 2 · upstream 8; 600 bytes in",
        format!(
            "{} requests: 2xx {} · 4xx {} · 5xx {}; a {} · b {} · the proxy's own {}; \
             answered by {}; {} bytes in",
            overall.requests,
            overall.status.success,
            overall.status.client_error,
            overall.status.server_error,
            count(base(a)),
            count(base(b)),
            stats.proxy.requests,
            layers.join(" · "),
            overall.bytes_in
        ),
        "every exchange is counted once, when its response body has gone: by upstream \
         (the 401s are the proxy's own), by status class and by the layer that answered",
    );

    let metrics = Probe::get(METRICS_PATH).send(p).await?;
    let text = metrics.text();
    let (total, classes) = requests_total(&text);
    let class = |name: &str| {
        classes
            .iter()
            .filter(|(c, _)| c == name)
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    f.claim_eq(
        "metrics-agree",
        "sum of lab_requests_total: 10 (2xx 6 · 4xx 2 · 5xx 2)",
        format!(
            "sum of lab_requests_total: {total} (2xx {} · 4xx {} · 5xx {})",
            class("2xx"),
            class("4xx"),
            class("5xx")
        ),
        "/_lab/metrics reads the same counters as /_lab/stats, in Prometheus' text format: \
         two views of one set of numbers",
    );
    Ok(())
}

/// Polls `/_lab/stats` every `every` until `done` holds or [`GIVE_UP`]
/// passes: how long it took and the last statistics read.
pub(super) async fn poll_stats(
    proxy: SocketAddr,
    every: Duration,
    done: impl Fn(&StatsSnapshot) -> bool,
) -> anyhow::Result<(Duration, StatsSnapshot)> {
    poll_page(
        proxy,
        STATS_PATH,
        "the statistics JSON",
        every,
        GIVE_UP,
        done,
    )
    .await
}

/// The `lab_requests_total` samples of a Prometheus text page: their sum, and
/// each sample's `class` label with its value. Read simply, line by line:
/// `lab_requests_total{upstream="…",class="2xx"} 6`.
fn requests_total(text: &str) -> (f64, Vec<(String, f64)>) {
    let samples: Vec<(String, f64)> = text
        .lines()
        .filter_map(|line| {
            let labels = line.strip_prefix("lab_requests_total{")?;
            let (labels, value) = labels.rsplit_once("} ")?;
            let class = labels
                .split(',')
                .find_map(|label| label.strip_prefix("class=\""))?
                .trim_end_matches('"');
            Some((class.to_string(), value.trim().parse().ok()?))
        })
        .collect();
    (samples.iter().map(|(_, v)| v).sum(), samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_requests_total_samples() {
        let text = "# HELP lab_requests_total Requests.\n\
            # TYPE lab_requests_total counter\n\
            lab_requests_total{upstream=\"http://127.0.0.1:1/base\",class=\"2xx\"} 6\n\
            lab_requests_total{upstream=\"(proxy)\",class=\"4xx\"} 2\n\
            lab_requests_total_other{class=\"2xx\"} 9\n\
            lab_bytes_total{upstream=\"(proxy)\",direction=\"in\"} 100\n";
        let (total, classes) = requests_total(text);
        assert_eq!(total, 8.0);
        assert_eq!(
            classes,
            [("2xx".to_string(), 6.0), ("4xx".to_string(), 2.0)]
        );
    }
}

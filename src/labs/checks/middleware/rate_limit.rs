//! Lab 19's 限流 (rate limiting) section: 5/s with burst 1 for everyone lets
//! exactly one of ten immediate requests through, the others get 429 with
//! Retry-After; then 1/min per client IP, from two loopback addresses.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpSocket;

use super::started::Started;
use crate::lab_headers::LAYER_HEADER;
use crate::labs::checks::proxy_pages::header;
use crate::labs::checks::servers::upstream_url as base;
use crate::labs::findings::Findings;
use crate::probe::{Exchange, Probe};

/// 限流: 5/s for everyone with burst 1, then 1/min per client IP.
pub(super) async fn rate_limit(
    f: &mut Findings,
    lab: &mut Started,
    a: SocketAddr,
) -> anyhow::Result<()> {
    let p = lab
        .proxy(&[
            "--upstream",
            &base(a),
            "--rate-limit",
            "5/s",
            "--rate-limit-by",
            "global",
        ])
        .await?;
    f.step(format!(
        "`lab proxy --upstream {} --rate-limit 5/s --rate-limit-by global` at {p}",
        base(a)
    ));
    let started = Instant::now();
    let mut answers = Vec::with_capacity(10);
    for _ in 0..10 {
        answers.push(Probe::get("/abc").send(p).await?);
    }
    let took = started.elapsed();
    let statuses: Vec<String> = answers
        .iter()
        .map(|e| e.status.as_u16().to_string())
        .collect();
    f.step(format!(
        "10 requests one after another, in {} ms: {}",
        took.as_millis(),
        statuses.join(" ")
    ));
    let passed = answers.iter().filter(|e| e.status == 200).count();
    f.observe(
        "passes-of-ten",
        passed,
        "burst 1: one request every 200 ms; the first finds the bucket full, \
         the other nine arrive within the same 200 ms",
    );
    let limited: Vec<&Exchange> = answers.iter().filter(|e| e.status == 429).collect();
    let retry_after: Vec<u64> = limited
        .iter()
        .filter_map(|e| header(e, "retry-after")?.parse().ok())
        .collect();
    let all_marked = limited
        .iter()
        .all(|e| header(e, LAYER_HEADER.as_str()) == Some("rate-limit"));
    let mut distinct = retry_after.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let actual = format!(
        "{passed} × 200, {} × 429{}; Retry-After on {} of them ({})",
        limited.len(),
        if all_marked {
            " (rate-limit)"
        } else {
            " (not all marked rate-limit)"
        },
        retry_after.len(),
        distinct
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    f.claim(
        "rate-limit-429-with-retry-after",
        passed == 1
            && limited.len() == 9
            && all_marked
            && retry_after.len() == 9
            && retry_after.iter().all(|&s| s >= 1),
        "1 × 200, 9 × 429 (rate-limit); Retry-After on 9 of them, each ≥ 1 s",
        actual,
        "GCRA with burst 1 lets one request through per 200 ms; Retry-After is the wait, \
         rounded up to whole seconds (RFC 9110 allows no fractions)",
    );

    let p = lab
        .proxy(&["--upstream", &base(a), "--rate-limit", "1/min"])
        .await?;
    f.step(format!(
        "`lab proxy --upstream {} --rate-limit 1/min` (per client IP, the default) at {p}",
        base(a)
    ));
    let mut seen = Vec::new();
    for source in [
        [127, 0, 0, 1],
        [127, 0, 0, 1],
        [127, 0, 0, 2],
        [127, 0, 0, 2],
    ] {
        let answer = get_from(source, p).await?;
        seen.push((source, answer));
    }
    let line = |source: [u8; 4]| {
        let statuses: Vec<String> = seen
            .iter()
            .filter(|(s, _)| *s == source)
            .map(|(_, e)| e.status.as_u16().to_string())
            .collect();
        format!(
            "{}: {}",
            std::net::Ipv4Addr::from(source),
            statuses.join(" ")
        )
    };
    f.claim_eq(
        "per-ip-buckets",
        "127.0.0.1: 200 429 · 127.0.0.2: 200 429",
        format!("{} · {}", line([127, 0, 0, 1]), line([127, 0, 0, 2])),
        "one bucket per client IP (the TCP peer; X-Forwarded-For only from a --trusted-proxy): \
         127.0.0.1 using up its allowance leaves 127.0.0.2's untouched",
    );
    Ok(())
}

/// A GET from a chosen loopback source address (127.0.0.2, …): another client.
async fn get_from(source: [u8; 4], proxy: SocketAddr) -> anyhow::Result<Exchange> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .with_context(|| format!("cannot send from {}", std::net::Ipv4Addr::from(source)))?;
    let stream = socket
        .connect(proxy)
        .await
        .with_context(|| format!("cannot connect to {proxy}"))?;
    Probe::get("/abc").send_on(stream, proxy).await
}

//! What the scenarios ask a running `lab proxy`: its pages under `/_lab/`
//! (`/_lab/upstreams`, `/_lab/stats`), read once or polled until they say
//! something, and plain requests with the lab's response headers read.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::discovery::Status;
use crate::lab_headers::{EXPLAIN_HEADER, SET_HEADER, UPSTREAM_HEADER};
use crate::probe::{Exchange, Probe};
use crate::proxy::admin::UPSTREAMS_PATH;

/// What `/_lab/upstreams` answers with, for errors.
const STATUS_JSON: &str = "the status JSON";

/// How often a page is read while waiting for it to change.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// A response header as text (`None` when missing or not visible ASCII).
pub(super) fn header<'e>(exchange: &'e Exchange, name: &str) -> Option<&'e str> {
    exchange.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The JSON page at `path`; `what` names it in the error when it is not.
pub(super) async fn read_page<T: DeserializeOwned>(
    proxy: SocketAddr,
    path: &str,
    what: &str,
) -> anyhow::Result<T> {
    let page = Probe::get(path).send(proxy).await?;
    serde_json::from_slice(&page.body).with_context(|| format!("{path} did not answer with {what}"))
}

/// Reads the JSON page at `path` (see [`read_page`]) every `every` until
/// `done` holds or `give_up` passes: how long it took and the last page
/// read (the caller judges both).
pub(super) async fn poll_page<T: DeserializeOwned>(
    proxy: SocketAddr,
    path: &str,
    what: &str,
    every: Duration,
    give_up: Duration,
    done: impl Fn(&T) -> bool,
) -> anyhow::Result<(Duration, T)> {
    let started = Instant::now();
    loop {
        let page: T = read_page(proxy, path, what).await?;
        if done(&page) || started.elapsed() > give_up {
            return Ok((started.elapsed(), page));
        }
        tokio::time::sleep(every).await;
    }
}

/// The proxy's `/_lab/upstreams` status.
pub(super) async fn read_status(proxy: SocketAddr) -> anyhow::Result<Status> {
    read_page(proxy, UPSTREAMS_PATH, STATUS_JSON).await
}

/// Polls `/_lab/upstreams` until `done` holds or `give_up` passes: how long
/// it took and the last status read.
pub(super) async fn until_status(
    proxy: SocketAddr,
    give_up: Duration,
    done: impl Fn(&Status) -> bool,
) -> anyhow::Result<(Duration, Status)> {
    poll_page(
        proxy,
        UPSTREAMS_PATH,
        STATUS_JSON,
        POLL_EVERY,
        give_up,
        done,
    )
    .await
}

/// One proxied request: its status, X-Lab-Upstream and X-Lab-Set.
pub(super) struct Answer {
    pub status: u16,
    pub upstream: Option<String>,
    pub set: Option<u64>,
}

/// `n` GET /abc one after another, each asking (X-Lab-Explain) which
/// upstream answered and which set it was balanced over.
pub(super) async fn send(proxy: SocketAddr, n: usize) -> anyhow::Result<Vec<Answer>> {
    let mut answers = Vec::with_capacity(n);
    for _ in 0..n {
        let exchange = Probe::get("/abc")
            .header(EXPLAIN_HEADER.as_str(), "1")
            .send(proxy)
            .await?;
        answers.push(Answer {
            status: exchange.status.as_u16(),
            upstream: header(&exchange, UPSTREAM_HEADER.as_str()).map(str::to_string),
            set: header(&exchange, SET_HEADER.as_str()).and_then(|g| g.parse().ok()),
        });
    }
    Ok(answers)
}

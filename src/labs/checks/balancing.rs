//! What the load-balancing labs (11–15) share: the upstreams named a, b, c
//! in `--upstream` order, `lab proxy` started over them, and one request
//! through it that reports which upstream answered (`X-Lab-Upstream`) and,
//! when asked, why the balancer chose it (`X-Lab-Pick`).

use std::net::SocketAddr;

use anyhow::Context;
use http::StatusCode;
use serde_json::Value;

use crate::balance::{Node, parse_upstream_spec};
use crate::cli::launch::RunningProxy;
use crate::lab_headers::{EXPLAIN_HEADER, PICK_HEADER, UPSTREAM_HEADER};
use crate::probe::Probe;

/// The letter of upstream `index`: a, b, c, …
pub(super) fn letter(index: usize) -> char {
    (b'a' + index as u8) as char
}

/// Picks as letters: `a a b a c a a`.
pub(super) fn letters(picks: &[usize]) -> String {
    picks
        .iter()
        .map(|&i| letter(i).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1 upstream`, `2 upstreams`.
pub(super) fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// How many picks went to each upstream, `a 4 · b 8`.
pub(super) fn counts(picks: &[usize], upstreams: usize) -> Vec<usize> {
    let mut counts = vec![0; upstreams];
    for &pick in picks {
        counts[pick] += 1;
    }
    counts
}

/// `a 4 · b 8`.
pub(super) fn show_counts(counts: &[usize]) -> String {
    counts
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} {n}", letter(i)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The real servers' URLs, as `--upstream` names them and `X-Lab-Upstream`
/// reports them.
pub(super) struct Upstreams {
    urls: Vec<String>,
}

impl Upstreams {
    /// `http://ADDR/base` for each server, in order: a, b, c.
    pub(super) fn of(servers: &[std::net::SocketAddr]) -> anyhow::Result<Upstreams> {
        let urls = servers
            .iter()
            .map(|addr| {
                Ok(node(&format!("http://{addr}/base"), 1)?
                    .upstream
                    .to_string())
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Upstreams { urls })
    }

    pub(super) fn len(&self) -> usize {
        self.urls.len()
    }

    pub(super) fn url(&self, index: usize) -> &str {
        &self.urls[index]
    }

    /// The balancer's nodes for these upstreams with `weights`.
    pub(super) fn nodes(&self, weights: &[u32]) -> anyhow::Result<Vec<Node>> {
        self.urls
            .iter()
            .zip(weights)
            .map(|(url, &w)| node(url, w))
            .collect()
    }

    /// `--upstream URL,W` for each upstream, with `weights`.
    pub(super) fn flags(&self, weights: &[u32]) -> Vec<String> {
        self.urls
            .iter()
            .zip(weights)
            .flat_map(|(url, w)| ["--upstream".to_string(), format!("{url},{w}")])
            .collect()
    }

    /// `a = http://…, b = http://…` for a step line.
    pub(super) fn legend(&self) -> String {
        self.urls
            .iter()
            .enumerate()
            .map(|(i, url)| format!("{} = {url}", letter(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Which upstream an `X-Lab-Upstream` value names.
    fn index_of(&self, named: &str) -> anyhow::Result<usize> {
        self.urls
            .iter()
            .position(|url| url == named)
            .with_context(|| format!("X-Lab-Upstream names {named:?}, none of {:?}", self.urls))
    }
}

fn node(url: &str, weight: u32) -> anyhow::Result<Node> {
    parse_upstream_spec(&format!("{url},{weight}")).map_err(anyhow::Error::msg)
}

/// Starts `lab proxy` with these flags.
pub(super) async fn proxy(flags: &[String]) -> anyhow::Result<RunningProxy> {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    RunningProxy::start(&flags).await
}

/// One request through the proxy, as the balancer saw it.
pub(super) struct Answer {
    /// The upstream that was chosen (a = 0).
    pub node: usize,
    pub status: StatusCode,
    /// The pick's explanation, when it was asked for.
    pub pick: Option<Value>,
}

impl Answer {
    /// A field of the explanation, or an error that says which.
    pub(super) fn field(&self, name: &str) -> anyhow::Result<&Value> {
        self.pick
            .as_ref()
            .and_then(|pick| pick.get(name))
            .with_context(|| format!("X-Lab-Pick has no {name:?}: {:?}", self.pick))
    }

    /// An unsigned field of the explanation.
    pub(super) fn u64_field(&self, name: &str) -> anyhow::Result<u64> {
        self.field(name)?
            .as_u64()
            .with_context(|| format!("X-Lab-Pick's {name:?} is not a number: {:?}", self.pick))
    }

    /// The weighted explanation's `before` or `after`: `(effective, current)` per node.
    pub(super) fn weights(&self, which: &str) -> anyhow::Result<Vec<(i64, i64)>> {
        let rows = self
            .field(which)?
            .as_array()
            .with_context(|| format!("X-Lab-Pick's {which:?} is not a list"))?;
        rows.iter()
            .map(|row| {
                let get = |name: &str| row.get(name).and_then(Value::as_i64);
                get("effective")
                    .zip(get("current"))
                    .with_context(|| format!("X-Lab-Pick's {which:?} row {row} lacks weights"))
            })
            .collect()
    }
}

/// Sends `probe` (on a new connection) to the proxy, asking for the pick's
/// explanation when `explain`, and reads which upstream answered.
pub(super) async fn send(
    proxy: SocketAddr,
    upstreams: &Upstreams,
    probe: Probe,
    explain: bool,
) -> anyhow::Result<Answer> {
    let probe = if explain {
        probe.header(EXPLAIN_HEADER.as_str(), "1")
    } else {
        probe
    };
    let exchange = probe.send(proxy).await?;
    let named = exchange
        .headers
        .get(UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .with_context(|| {
            format!(
                "the proxy's answer ({}) names no upstream in X-Lab-Upstream",
                exchange.status
            )
        })?;
    let node = upstreams.index_of(named)?;
    let pick = match exchange.headers.get(PICK_HEADER) {
        Some(json) => Some(
            serde_json::from_slice(json.as_bytes())
                .with_context(|| format!("X-Lab-Pick is not JSON: {json:?}"))?,
        ),
        None if explain => anyhow::bail!("asked X-Lab-Explain: 1 but got no X-Lab-Pick"),
        None => None,
    };
    Ok(Answer {
        node,
        status: exchange.status,
        pick,
    })
}

/// `n` GETs of `/abc`, one after another, each on a new connection.
pub(super) async fn send_many(
    proxy: SocketAddr,
    upstreams: &Upstreams,
    n: usize,
    explain: bool,
) -> anyhow::Result<Vec<Answer>> {
    let mut answers = Vec::with_capacity(n);
    for _ in 0..n {
        answers.push(send(proxy, upstreams, Probe::get("/abc"), explain).await?);
    }
    Ok(answers)
}

/// The upstreams of `answers`, in order.
pub(super) fn nodes_of(answers: &[Answer]) -> Vec<usize> {
    answers.iter().map(|a| a.node).collect()
}

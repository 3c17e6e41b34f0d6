//! Discovery (服务发现) and the observer (观察者模式): the set of upstreams a
//! proxy balances over, kept up to date while it runs.
//!
//! The article's `LoadBalanceConf` is a *subject*: it holds the live upstream
//! list, and every balancer `Attach`es to it as an *observer* whose
//! `Update()` rebuilds the balancer from `GetConf()`. Here the subjects are
//! the three places a list can come from (the article's three confs):
//!
//! | subject | flag | the article's type |
//! |---|---|---|
//! | a fixed list | `--upstream` | (no conf: `rb.Add(…)` in `main()`) |
//! | health checks | `--health-check PATH` | `LoadBalanceCheckConf` |
//! | ZooKeeper | `--discovery zk://…` | `LoadBalanceZkConf` |
//!
//! and health checks may filter either of the others. The observer is
//! [`membership`]: one task that receives every change (a new list from
//! ZooKeeper through a `tokio::sync::watch`, probe results, failed requests),
//! decides which upstreams are live, and — only when that set changed —
//! builds a new balancer and swaps it in ([`Upstreams::current`]). Requests
//! never wait for it: each takes the balancer that is current when it
//! arrives, so a request in flight keeps the set it was balanced over.
//!
//! Every change is logged and kept in [`Status::events`], which the proxy
//! serves at `/_lab/upstreams` and `lab trace` shows between its rows.

pub mod health;
pub mod membership;
pub mod zookeeper;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::balance::{Balancer, BalancerConfig, Node};
use crate::proxy::transport::Transport;
use crate::zk::ZkUrl;

pub use health::{HealthConfig, State};

/// Where the list of upstreams comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--upstream`, fixed for the proxy's life.
    Static(Vec<Node>),
    /// `--discovery zk://HOST:PORT/PATH`: the children of PATH, each an
    /// upstream spec (`http://127.0.0.1:2003/base,10`) registered by
    /// `lab realserver --register`.
    ZooKeeper(ZkUrl),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Static(_) => f.write_str("static"),
            Source::ZooKeeper(url) => write!(f, "zookeeper {url}"),
        }
    }
}

/// One generation of the live set: what a request is balanced over.
pub struct Live {
    /// Counts the changes of the set; 1 is the set the proxy started with.
    pub generation: u64,
    pub balancer: Arc<dyn Balancer>,
    /// Why there is nothing to choose from, when there is not (the 503's body).
    pub empty_reason: String,
    /// Per node: a request to it failed and no success was reported since,
    /// so the next success is worth telling the observer about. An atomic
    /// per node keeps the common case (a success after successes) free of
    /// any channel traffic.
    suspect: Vec<AtomicBool>,
}

impl Live {
    fn new(generation: u64, balancer: Arc<dyn Balancer>, empty_reason: String) -> Live {
        let suspect = balancer
            .nodes()
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        Live {
            generation,
            balancer,
            empty_reason,
            suspect,
        }
    }
}

/// A proxied request's outcome, for the passive health check.
#[derive(Debug)]
pub(crate) struct Report {
    pub upstream: String,
    /// `None`: it answered; `Some(why)`: it could not be reached or was too slow.
    pub failure: Option<String>,
}

/// The proxy's view of its upstreams: the current [`Live`] set, its
/// [`Status`], and the observer task that keeps both up to date (stopped
/// when this is dropped).
pub struct Upstreams {
    shared: Arc<membership::Shared>,
    /// Present when health checks are on: failed requests count.
    passive: Option<mpsc::Sender<Report>>,
    _observer: Option<AbortOnDrop>,
}

impl Upstreams {
    /// Starts watching `source`, filtered by health checks when `health` is
    /// given. Fails when the source cannot be read at all (ZooKeeper down).
    pub async fn start(
        source: Source,
        balancing: BalancerConfig,
        health: Option<HealthConfig>,
        transport: Transport,
    ) -> anyhow::Result<Upstreams> {
        membership::start(source, balancing, health, transport).await
    }

    /// The set to balance the next request over.
    pub fn current(&self) -> Arc<Live> {
        self.shared.live.load_full()
    }

    /// What `/_lab/upstreams` shows.
    pub fn status(&self) -> Arc<Status> {
        self.shared.status.load_full()
    }

    /// A request to node `index` of `live` could not be completed (502/504):
    /// smooth WRR lowers the node's effective weight, and with health checks
    /// on it counts as a failed check.
    pub fn report_failure(&self, live: &Live, index: usize, why: &str) {
        live.balancer.report_failure(index);
        let Some(passive) = &self.passive else { return };
        if let Some(flag) = live.suspect.get(index) {
            flag.store(true, Ordering::Relaxed);
        }
        self.send(passive, live, index, Some(why.to_string()));
    }

    /// A request to node `index` of `live` was answered. Only news (and
    /// sent) after a failure: it resets the failure count.
    pub fn report_success(&self, live: &Live, index: usize) {
        let Some(passive) = &self.passive else { return };
        if live
            .suspect
            .get(index)
            .is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
        {
            self.send(passive, live, index, None);
        }
    }

    fn send(
        &self,
        passive: &mpsc::Sender<Report>,
        live: &Live,
        index: usize,
        failure: Option<String>,
    ) {
        let Some(node) = live.balancer.nodes().get(index) else {
            return;
        };
        // A full queue means the observer is far behind; dropping a report
        // loses one piece of evidence, never a request.
        let _ = passive.try_send(Report {
            upstream: node.url.to_string(),
            failure,
        });
    }
}

/// Aborts a task when dropped: the observer lives as long as its proxy.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything `/_lab/upstreams` shows (JSON). Field names are a contract
/// shared with `lab trace`: add fields, never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The live set's generation (see [`Live::generation`]).
    pub generation: u64,
    /// `static`, or `zookeeper zk://HOST:PORT/PATH`.
    pub source: String,
    /// The balancer, as `--lb` names it.
    pub algorithm: String,
    /// The health-check settings; `null` without `--health-check`.
    pub health_check: Option<HealthCheckSettings>,
    /// Every upstream the source knows, live or not, in the source's order.
    pub upstreams: Vec<UpstreamStatus>,
    /// The most recent changes, oldest first (at most [`membership::EVENTS_KEPT`]).
    pub events: Vec<Event>,
}

/// `--health-check` and its companions, as the status shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckSettings {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

/// One upstream the source knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub url: String,
    pub weight: u32,
    /// Whether the balancer may choose it now.
    pub live: bool,
    /// `healthy` or `unhealthy`; `null` without health checks.
    pub health: Option<State>,
    /// Failures in a row (probes and, passively, requests).
    pub failures: u32,
    /// Successful probes in a row.
    pub successes: u32,
    pub last_error: Option<String>,
}

/// One change to the set, as it was logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The generation of the set this change produced (or, for a change
    /// that left the live set as it was, the generation then current).
    pub generation: u64,
    /// Wall-clock time, RFC 3339 with milliseconds.
    pub at: String,
    pub upstream: String,
    /// `joined` / `left` (the live set), `registered` / `deregistered` /
    /// `reweighted` (the source's list).
    pub change: String,
    /// The evidence: `3 failed checks in a row: cannot connect: …`.
    pub reason: String,
}

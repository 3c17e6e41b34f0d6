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
mod model;
pub mod zookeeper;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::balance::BalancerConfig;
use crate::proxy::transport::Transport;

pub use health::{HealthConfig, State};
pub use model::{Event, HealthCheckSettings, Live, Source, Status, UpstreamStatus};

use model::Report;

/// The proxy's view of its upstreams: the current [`Live`] set, its
/// [`Status`], and the observer task that keeps both up to date (stopped
/// when this is dropped).
pub struct Upstreams {
    observer: membership::Observer,
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
        let observer = membership::start(source, balancing, health, transport).await?;
        Ok(Upstreams { observer })
    }

    /// The set to balance the next request over.
    pub fn current(&self) -> Arc<Live> {
        self.observer.shared.live.load_full()
    }

    /// What `/_lab/upstreams` shows.
    pub fn status(&self) -> Arc<Status> {
        self.observer.shared.status.load_full()
    }

    /// A request to node `index` of `live` could not be completed (502/504):
    /// smooth WRR lowers the node's effective weight, and with health checks
    /// on it counts as a failed check.
    pub fn report_failure(&self, live: &Live, index: usize, why: &str) {
        live.balancer.report_failure(index);
        let Some(passive) = &self.observer.passive else {
            return;
        };
        if let Some(flag) = live.suspect.get(index) {
            flag.store(true, Ordering::Relaxed);
        }
        self.send(passive, live, index, Some(why.to_string()));
    }

    /// A request to node `index` of `live` was answered. Only news (and
    /// sent) after a failure: it resets the failure count.
    pub fn report_success(&self, live: &Live, index: usize) {
        let Some(passive) = &self.observer.passive else {
            return;
        };
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

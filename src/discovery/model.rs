//! What the observer and the proxy pass between them: where the list comes
//! from ([`Source`]), the live set a request is balanced over ([`Live`]),
//! a proxied request's outcome ([`Report`]), and what `/_lab/upstreams`
//! shows ([`Status`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::health::State;
use crate::balance::{Balancer, Node};
use crate::zk::ZkUrl;

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
    pub(super) suspect: Vec<AtomicBool>,
}

impl Live {
    pub(super) fn new(generation: u64, balancer: Arc<dyn Balancer>, empty_reason: String) -> Live {
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

/// Aborts a task when dropped: the observer lives as long as its proxy.
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

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
    /// The most recent changes, oldest first (at most `membership::EVENTS_KEPT`).
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

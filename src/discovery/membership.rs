//! The observer (the article's `Update()`): one task that owns everything
//! known about the upstreams and rebuilds the balancer when the live set
//! changes.
//!
//! Three things can change the set, and all three arrive here, so no lock is
//! needed around the counters — only this task touches them:
//! - the source's list (a `watch` that ZooKeeper discovery publishes to);
//! - a health-check round (every `--health-interval`);
//! - a proxied request's outcome (an `mpsc` queue, the passive check).
//!
//! What requests read is published through two `ArcSwap`s: a request loads
//! the current [`Live`] without waiting for this task, and this task swaps a
//! new one in without waiting for requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, watch};

use super::health::{self, Health, HealthConfig, State, Transition};
use super::model::{
    AbortOnDrop, Event, HealthCheckSettings, Live, Report, Source, Status, UpstreamStatus,
};
use crate::balance::{self, BalancerConfig, Node};
use crate::proxy::transport::Transport;

/// How many events `/_lab/upstreams` keeps.
pub const EVENTS_KEPT: usize = 64;

/// How many failed-request reports may wait for the observer.
const REPORT_QUEUE: usize = 1024;

/// What the observer publishes for requests and the status page.
pub(crate) struct Shared {
    pub live: ArcSwap<Live>,
    pub status: ArcSwap<Status>,
}

/// A started observer: the state it keeps current, where passive reports
/// go (present when health checks are on: failed requests count), and its
/// task (none for a list that never changes), aborted when dropped.
pub(super) struct Observer {
    pub shared: Arc<Shared>,
    pub passive: Option<mpsc::Sender<Report>>,
    pub _task: Option<AbortOnDrop>,
}

/// Starts the observer for `source` (see `Upstreams::start`).
pub(super) async fn start(
    source: Source,
    balancing: BalancerConfig,
    health: Option<HealthConfig>,
    transport: Transport,
) -> anyhow::Result<Observer> {
    let source_label = source.to_string();
    let (known, watch) = match source {
        Source::Static(nodes) => (nodes, None),
        Source::ZooKeeper(url) => {
            let watch = super::zookeeper::discover(&url).await?;
            let first = watch.borrow().clone();
            (first, Some(watch))
        }
    };
    let membership = Membership::new(source_label, balancing, health, known);
    let shared = Arc::new(Shared {
        live: ArcSwap::from_pointee(membership.build_live()),
        status: ArcSwap::from_pointee(membership.status()),
    });
    membership.log_start();

    // A fixed list with no health checks never changes: no task at all.
    if watch.is_none() && membership.health.is_none() {
        return Ok(Observer {
            shared,
            passive: None,
            _task: None,
        });
    }
    let (passive, reports) = match membership.health {
        Some(_) => {
            let (tx, rx) = mpsc::channel(REPORT_QUEUE);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let task = tokio::spawn(observe(
        membership,
        shared.clone(),
        watch,
        reports,
        transport,
    ));
    Ok(Observer {
        shared,
        passive,
        _task: Some(AbortOnDrop(task.abort_handle())),
    })
}

/// The observer's loop: wait for any of the three kinds of news, apply it,
/// publish if the set changed.
async fn observe(
    mut membership: Membership,
    shared: Arc<Shared>,
    mut watch: Option<watch::Receiver<Vec<Node>>>,
    mut reports: Option<mpsc::Receiver<Report>>,
    transport: Transport,
) {
    let mut ticker = membership.health.as_ref().map(|config| {
        let mut ticker = tokio::time::interval(config.interval);
        // A slow round delays the next instead of firing a burst after it.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    // Probes run in tasks of their own and report each result as it comes,
    // so a hung upstream (the case health checks exist for) never keeps this
    // loop from hearing about ZooKeeper or failed requests meanwhile, nor
    // delays the other upstreams' probes: each tick probes every upstream
    // whose previous probe has come back.
    let (probed, mut results) = mpsc::unbounded_channel::<(String, Result<(), String>)>();
    let mut out: HashSet<String> = HashSet::new();
    let mut rounds: Vec<AbortOnDrop> = Vec::new();
    loop {
        tokio::select! {
            // The source first: a server that left must leave before its
            // last probe result is counted.
            biased;
            changed = source_changed(&mut watch) => match changed {
                Some(nodes) => membership.set_known(nodes),
                // The source is gone for good (it only ends with the proxy):
                // keep the last list.
                None => watch = None,
            },
            Some(report) = next_report(&mut reports) => {
                membership.record_passive(report);
            }
            Some((upstream, result)) = results.recv() => {
                out.remove(&upstream);
                membership.record(&upstream, result, "checks");
            }
            () = tick(&mut ticker) => {
                rounds.retain(|round| !round.0.is_finished());
                // An upstream whose probe is still out (only when the timeout
                // is longer than the interval) skips this tick.
                let targets: Vec<_> = membership
                    .known
                    .iter()
                    .map(|n| n.upstream.clone())
                    .filter(|upstream| out.insert(upstream.to_string()))
                    .collect();
                if let (false, Some(config)) = (targets.is_empty(), membership.health.clone()) {
                    let transport = transport.clone();
                    let probed = probed.clone();
                    let task = tokio::spawn(async move {
                        let mut probes: FuturesUnordered<_> = targets
                            .iter()
                            .map(|upstream| async {
                                (upstream.to_string(), health::probe(&transport, upstream, &config).await)
                            })
                            .collect();
                        while let Some(result) = probes.next().await {
                            if probed.send(result).is_err() {
                                return;
                            }
                        }
                    });
                    rounds.push(AbortOnDrop(task.abort_handle()));
                }
            }
        }
        membership.publish(&shared);
    }
}

async fn source_changed(watch: &mut Option<watch::Receiver<Vec<Node>>>) -> Option<Vec<Node>> {
    match watch {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_report(reports: &mut Option<mpsc::Receiver<Report>>) -> Option<Report> {
    match reports {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Everything known about the upstreams; owned by the observer task.
struct Membership {
    source: String,
    balancing: BalancerConfig,
    health: Option<HealthConfig>,
    /// The source's list, in its order.
    known: Vec<Node>,
    /// Health per upstream URL (only with health checks).
    states: HashMap<String, Health>,
    /// The live set the current balancer was built from: URL and weight.
    live: Vec<(String, u32)>,
    generation: u64,
    events: VecDeque<Event>,
    /// Events since the last publish, waiting for their generation number.
    pending: Vec<Event>,
    /// Whether anything the status shows changed since the last publish.
    dirty: bool,
}

impl Membership {
    fn new(
        source: String,
        balancing: BalancerConfig,
        health: Option<HealthConfig>,
        known: Vec<Node>,
    ) -> Membership {
        let mut membership = Membership {
            source,
            balancing,
            health,
            known: Vec::new(),
            states: HashMap::new(),
            live: Vec::new(),
            generation: 1,
            events: VecDeque::new(),
            pending: Vec::new(),
            dirty: false,
        };
        membership.known = dedupe(known);
        for node in &membership.known {
            membership
                .states
                .insert(node.upstream.to_string(), Health::default());
        }
        membership.live = membership.live_now();
        membership
    }

    fn log_start(&self) {
        if let Some(config) = &self.health {
            tracing::info!(
                "health checks: GET {} on every upstream every {:?} (timeout {:?}); out after {} failures in a row, back after {} good checks",
                config.path,
                config.interval,
                config.timeout,
                config.unhealthy_after,
                config.healthy_after
            );
        }
    }

    /// The source published a new list.
    fn set_known(&mut self, nodes: Vec<Node>) {
        let nodes = dedupe(nodes);
        let old: HashMap<String, u32> = self
            .known
            .iter()
            .map(|n| (n.upstream.to_string(), n.weight))
            .collect();
        let new: HashMap<String, u32> = nodes
            .iter()
            .map(|n| (n.upstream.to_string(), n.weight))
            .collect();
        for node in &nodes {
            let url = node.upstream.to_string();
            match old.get(&url) {
                None => self.event(&url, "registered", format!("weight {}", node.weight)),
                Some(&weight) if weight != node.weight => self.event(
                    &url,
                    "reweighted",
                    format!("weight {weight} → {}", node.weight),
                ),
                Some(_) => {}
            }
            self.states.entry(url).or_default();
        }
        let gone: Vec<String> = self
            .known
            .iter()
            .map(|node| node.upstream.to_string())
            .filter(|url| !new.contains_key(url))
            .collect();
        for url in gone {
            self.event(&url, "deregistered", "its registration is gone".into());
            self.states.remove(&url);
        }
        self.known = nodes;
        self.dirty = true;
    }

    /// One piece of health evidence about `url` (`what`: "checks" for probes).
    fn record(&mut self, url: &str, result: Result<(), String>, what: &str) {
        let Some(config) = self.health.clone() else {
            return;
        };
        let Some(health) = self.states.get_mut(url) else {
            // Deregistered while the probe was out.
            return;
        };
        let before = health.clone();
        let transition = match result {
            Ok(()) => health.succeeded(&config),
            Err(why) => health.failed(&config, why),
        };
        if *health != before {
            self.dirty = true;
        }
        match transition {
            Some(Transition::WentDown {
                failures,
                last_error,
            }) => self.event(
                url,
                "left",
                format!("{failures} failed {what} in a row: {last_error}"),
            ),
            Some(Transition::CameBack { successes }) => {
                self.event(url, "joined", format!("{successes} good checks in a row"))
            }
            None => {}
        }
    }

    /// A proxied request's outcome: a failure counts like a failed probe; a
    /// success only resets the failure count of a healthy upstream (an
    /// unhealthy one comes back through probes alone).
    fn record_passive(&mut self, report: Report) {
        match report.failure {
            Some(why) => self.record(&report.upstream, Err(why), "checks and requests"),
            None => {
                if let Some(health) = self.states.get_mut(&report.upstream)
                    && health.state == State::Healthy
                    && health.failures > 0
                {
                    health.failures = 0;
                    self.dirty = true;
                }
            }
        }
    }

    fn event(&mut self, url: &str, change: &str, reason: String) {
        match change {
            "left" | "deregistered" => tracing::warn!("upstream {url} {change}: {reason}"),
            _ => tracing::info!("upstream {url} {change}: {reason}"),
        }
        self.pending.push(Event {
            generation: 0,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            upstream: url.to_string(),
            change: change.to_string(),
            reason,
        });
        self.dirty = true;
    }

    /// The upstreams the balancer may choose now: known and not unhealthy.
    fn live_now(&self) -> Vec<(String, u32)> {
        self.live_nodes()
            .map(|n| (n.upstream.to_string(), n.weight))
            .collect()
    }

    fn live_nodes(&self) -> impl Iterator<Item = &Node> {
        self.known.iter().filter(|node| {
            self.states
                .get(&node.upstream.to_string())
                .is_none_or(|h| h.state == State::Healthy)
        })
    }

    /// Publishes what changed: a new balancer if the live set changed, a new
    /// status if anything did.
    fn publish(&mut self, shared: &Shared) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let live = self.live_now();
        if live != self.live {
            self.generation += 1;
            self.live = live;
            shared.live.store(Arc::new(self.build_live()));
            tracing::info!(
                "upstream set {}: {} of {} live{}",
                self.generation,
                self.live.len(),
                self.known.len(),
                if self.live.is_empty() {
                    " — requests get 503 until one is back"
                } else {
                    ""
                }
            );
        }
        for mut event in self.pending.drain(..) {
            event.generation = self.generation;
            self.events.push_back(event);
        }
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
        shared.status.store(Arc::new(self.status()));
    }

    /// A balancer over the live set: the article's factory, called again.
    fn build_live(&self) -> Live {
        let nodes: Vec<Node> = self.live_nodes().cloned().collect();
        let balancer = balance::build(nodes, &self.balancing);
        Live::new(self.generation, balancer, self.empty_reason())
    }

    /// The 503's body when nothing is live: what is wrong and what to do.
    fn empty_reason(&self) -> String {
        if self.known.is_empty() {
            return match self.source.strip_prefix("zookeeper ") {
                Some(url) => format!(
                    "no upstream is registered under {url}; start one with `lab realserver --register {url}`"
                ),
                None => "no upstream to send this request to".to_string(),
            };
        }
        let mut reasons: Vec<String> = self
            .known
            .iter()
            .map(|node| {
                let url = node.upstream.to_string();
                let why = self
                    .states
                    .get(&url)
                    .and_then(|h| h.last_error.clone())
                    .unwrap_or_else(|| "unhealthy".into());
                format!("  {url}: {why}")
            })
            .collect();
        reasons.sort();
        let back = self
            .health
            .as_ref()
            .map(|c| c.healthy_after)
            .unwrap_or_default();
        let which = match self.known.len() {
            1 => "the only upstream failed its".to_string(),
            n => format!("all {n} upstreams failed their"),
        };
        format!(
            "no healthy upstream: {which} health checks\n{}\nAn upstream returns after {back} good check(s) in a row; is `lab realserver` running?",
            reasons.join("\n")
        )
    }

    fn status(&self) -> Status {
        Status {
            generation: self.generation,
            source: self.source.clone(),
            algorithm: self.balancing.algorithm.name().to_string(),
            health_check: self.health.as_ref().map(|c| HealthCheckSettings {
                path: c.path.clone(),
                interval_ms: c.interval.as_millis() as u64,
                timeout_ms: c.timeout.as_millis() as u64,
                unhealthy_after: c.unhealthy_after,
                healthy_after: c.healthy_after,
            }),
            upstreams: self
                .known
                .iter()
                .map(|node| {
                    let url = node.upstream.to_string();
                    let health = self.health.as_ref().and(self.states.get(&url));
                    UpstreamStatus {
                        live: self.live.iter().any(|(u, _)| *u == url),
                        weight: node.weight,
                        health: health.map(|h| h.state),
                        failures: health.map_or(0, |h| h.failures),
                        successes: health.map_or(0, |h| h.successes),
                        last_error: health.and_then(|h| h.last_error.clone()),
                        url,
                    }
                })
                .collect(),
            events: self.events.iter().cloned().collect(),
        }
    }
}

/// The list without repeated URLs (the first one wins): two registrations
/// of one server (a restart before the old session expired) are one upstream.
fn dedupe(nodes: Vec<Node>) -> Vec<Node> {
    let mut kept: Vec<Node> = Vec::with_capacity(nodes.len());
    for node in nodes {
        match kept.iter().find(|k| k.upstream == node.upstream) {
            Some(first) => tracing::warn!(
                "upstream {} is listed twice; keeping the first (weight {}), ignoring weight {}",
                node.upstream,
                first.weight,
                node.weight
            ),
            None => kept.push(node),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::nodes;
    use std::time::Duration;

    fn checked(unhealthy_after: u32, healthy_after: u32) -> Membership {
        Membership::new(
            "static".into(),
            BalancerConfig::default(),
            Some(HealthConfig {
                path: "/".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                unhealthy_after,
                healthy_after,
            }),
            nodes(&[1, 1]),
        )
    }

    fn shared(m: &Membership) -> Shared {
        Shared {
            live: ArcSwap::from_pointee(m.build_live()),
            status: ArcSwap::from_pointee(m.status()),
        }
    }

    const A: &str = "http://127.0.0.1:2003/base";
    const B: &str = "http://127.0.0.1:2004/base";

    #[test]
    fn an_upstream_leaves_and_returns_with_a_new_generation_each_time() {
        let mut m = checked(2, 1);
        let shared = shared(&m);
        m.record(B, Err("refused".into()), "checks");
        m.publish(&shared);
        assert_eq!(shared.live.load().generation, 1, "one failure is forgiven");
        m.record(B, Err("refused".into()), "checks");
        m.publish(&shared);
        let live = shared.live.load_full();
        assert_eq!(live.generation, 2);
        assert_eq!(live.balancer.nodes().len(), 1);
        assert_eq!(live.balancer.nodes()[0].upstream.to_string(), A);

        m.record(B, Ok(()), "checks");
        m.publish(&shared);
        assert_eq!(shared.live.load().generation, 3);
        assert_eq!(shared.live.load().balancer.nodes().len(), 2);

        let status = shared.status.load_full();
        let changes: Vec<_> = status
            .events
            .iter()
            .map(|e| (e.generation, e.upstream.as_str(), e.change.as_str()))
            .collect();
        assert_eq!(changes, [(2, B, "left"), (3, B, "joined")]);
        assert!(
            status.events[0]
                .reason
                .contains("2 failed checks in a row: refused")
        );
    }

    #[test]
    fn nothing_live_explains_itself() {
        let mut m = checked(1, 2);
        let shared = shared(&m);
        m.record(A, Err("cannot connect: refused".into()), "checks");
        m.record(B, Err("no answer within 1s".into()), "checks");
        m.publish(&shared);
        let live = shared.live.load_full();
        assert!(live.balancer.nodes().is_empty());
        assert!(
            live.empty_reason.contains("all 2 upstreams failed"),
            "{}",
            live.empty_reason
        );
        assert!(
            live.empty_reason
                .contains(&format!("{A}: cannot connect: refused"))
        );
        assert!(live.empty_reason.contains("2 good check(s)"));
    }

    #[test]
    fn a_passive_success_resets_failures_but_never_readmits() {
        let mut m = checked(2, 1);
        let shared = shared(&m);
        let report = |failure: Option<&str>| Report {
            upstream: B.into(),
            failure: failure.map(str::to_string),
        };
        m.record_passive(report(Some("502")));
        m.record_passive(report(None));
        m.record_passive(report(Some("502")));
        m.publish(&shared);
        assert_eq!(shared.live.load().generation, 1, "not two in a row");
        m.record_passive(report(Some("502")));
        m.publish(&shared);
        assert_eq!(shared.live.load().generation, 2);
        m.record_passive(report(None));
        m.publish(&shared);
        assert_eq!(shared.live.load().generation, 2, "only probes readmit");
    }

    #[test]
    fn a_new_list_registers_and_deregisters_and_keeps_health() {
        let mut m = checked(1, 1);
        let shared = shared(&m);
        m.record(B, Err("refused".into()), "checks");
        m.publish(&shared);
        assert_eq!(shared.live.load().generation, 2);
        // The source now lists B and a third; A is gone.
        let mut list = nodes(&[1, 1, 5]);
        list.remove(0);
        m.set_known(list);
        m.publish(&shared);
        let live = shared.live.load_full();
        assert_eq!(live.generation, 3);
        let urls: Vec<String> = live
            .balancer
            .nodes()
            .iter()
            .map(|n| n.upstream.to_string())
            .collect();
        // B is still unhealthy: only the new one is live.
        assert_eq!(urls, ["http://127.0.0.1:2005/base"]);
        let changes: Vec<_> = shared
            .status
            .load()
            .events
            .iter()
            .map(|e| e.change.clone())
            .collect();
        assert_eq!(changes, ["left", "registered", "deregistered"]);
    }

    #[test]
    fn repeated_urls_are_one_upstream() {
        let mut list = nodes(&[1, 1]);
        list.push(list[0].clone());
        assert_eq!(dedupe(list).len(), 2);
    }
}

//! Circuit breaking (熔断): stop sending requests to an upstream that keeps
//! failing, answer `503` at once instead, and let one trial request through
//! now and then to find out whether it has recovered.
//!
//! The article lists 熔断 among the middleware a `ReverseProxy` gains
//! (限流 熔断 降级 权限 数据统计: rate limiting, circuit breaking,
//! degradation, authorisation, statistics). Without it a dead or drowning
//! upstream costs every client a connect timeout, and the retries pile more
//! load on the one server least able to take it. The breaker is hand-written
//! because the middleware lab teaches it: one state machine per upstream.
//!
//! ```text
//!            N failures in a row, or                 cool-down passed:
//!            error rate ≥ R over the window          the next request is
//!            (with ≥ M requests in it)               the one trial (Probe)
//!   Closed ────────────────────────────▶ Open ──────────────────────▶ HalfOpen
//!     ▲                                   ▲                              │
//!     │          the trial failed: a fresh cool-down                     │
//!     │                                   └──────────────────────────────┤
//!     │          the trial succeeded: counters start again from zero     │
//!     └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Why half-open lets **exactly one** request through: the upstream was
//! failing a moment ago. If every waiting client were let in when the
//! cool-down ends, a server that is just coming back would be hit by the
//! whole queue at once and fall over again (a thundering herd), and the
//! breaker would learn nothing it could not learn from one request. One trial
//! costs at most one failed request, and its outcome alone decides: close,
//! or open for another cool-down.
//!
//! [`Breaker`] is the pure state machine: every method takes `now`, so the
//! tests below draw exact sequences with an injected clock. [`Breakers`] holds
//! one per upstream for the proxy, on the real clock, and logs transitions.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How many buckets the error-rate window is cut into.
const BUCKETS: usize = 10;

/// What a caller turned away while the trial is out is told: the trial
/// usually answers within a second, and `Retry-After` cannot say less.
pub const TRIAL_PENDING_RETRY: Duration = Duration::from_secs(1);

/// A trial that has been out this long without an outcome is taken as lost
/// (a caller that forgot [`Breakers::abandon_probe`]), and the next caller
/// becomes the trial, so a lost trial cannot keep an upstream shut forever.
pub const TRIAL_LEASE: Duration = Duration::from_secs(30);

/// `--breaker-*`: when to open, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Open after this many consecutive failures (`--breaker-failures`);
    /// 0 turns this rule off.
    pub failures: u32,
    /// Or when the failure ratio over `window` reaches this, 0.0..=1.0
    /// (`--breaker-error-rate 50%`); `None` turns this rule off.
    pub error_rate: Option<f64>,
    /// …and the window holds at least this many requests, so that 1 failure
    /// out of 1 request is not a 100% error rate.
    pub min_requests: u32,
    /// How far back the error rate looks (`--breaker-window`).
    pub window: Duration,
    /// Open → half-open after this (`--breaker-cooldown`).
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    /// 5 failures in a row, no error-rate rule, 10 requests and 10 s for it
    /// when it is turned on, 5 s of cool-down.
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            error_rate: None,
            min_requests: 10,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        }
    }
}

/// Reads `--breaker-error-rate`: `50%` or `0.5`, between 0 and 100%.
pub fn parse_error_rate(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (number, scale) = match s.strip_suffix('%') {
        Some(percent) => (percent.trim(), 100.0),
        None => (s, 1.0),
    };
    let ratio = number
        .parse::<f64>()
        .map(|n| n / scale)
        .map_err(|_| format!("`{s}` is not an error rate: write a percentage such as 50%"))?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!(
            "the error rate must be between 0% and 100% (got {s}): write a percentage such as 50%"
        ));
    }
    Ok(ratio)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Requests flow; outcomes are counted.
    Closed,
    /// Requests are refused at once until the cool-down passes.
    Open,
    /// The cool-down passed: one trial request is (or may be) out.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// What the proxy may do with a request for this upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: send it.
    Allowed,
    /// Half-open: send it; this request is the one trial. Its outcome must
    /// come back through `record`, or through `abandon_probe` if it is never
    /// sent (the client went away first).
    Probe,
    /// Open (or the trial is out): answer 503 at once; ask again in
    /// `retry_in`.
    Rejected { retry_in: Duration },
}

/// A change of state and why, for the log and the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    /// "5 failures in a row", "error rate 60% over 10s (6 of 10)",
    /// "cool-down of 5s passed", "the trial request succeeded",
    /// "the trial request failed".
    pub reason: String,
}

/// One upstream's breaker, as `lab proxy` reports it on its status page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakerStatus {
    pub upstream: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Requests and failures inside the error-rate window now.
    pub window_requests: u32,
    pub window_failures: u32,
    /// How long ago it last opened (open or half-open only).
    pub opened_ms_ago: Option<u64>,
    /// How long until the cool-down ends (open only).
    pub retry_in_ms: Option<u64>,
    /// Half-open with the trial request out.
    pub probe_in_flight: bool,
}

/// One bucket of the sliding window: the outcomes of one tenth of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    /// Which tenth of time since `origin` this bucket counts (see `epoch`).
    epoch: u64,
    requests: u32,
    failures: u32,
}

/// The error-rate window: a ring of [`BUCKETS`] buckets, each `window / 10`
/// wide. A bucket is reused (and reset) when time comes round to it again,
/// so outcomes older than the window age out without any timer, a bucket at
/// a time. The window therefore looks back between 0.9 × and 1 × `window`.
///
/// ```text
///   window 10 s, buckets 1 s; now = 12.5 s, epoch 12
///   epoch:   3  4  5  6  7  8  9  10 11 12     (slot = epoch % 10)
///            └────────── counted ─────────┘    epochs 3..=12; 0..=2 aged out
/// ```
#[derive(Debug, Clone)]
struct Window {
    /// Bucket width in nanoseconds, at least 1.
    width: u128,
    /// Set by the first outcome: epochs are counted from here.
    origin: Option<Instant>,
    buckets: [Bucket; BUCKETS],
}

impl Window {
    fn new(window: Duration) -> Window {
        Window {
            width: (window.as_nanos() / BUCKETS as u128).max(1),
            origin: None,
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    fn epoch(&self, origin: Instant, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(origin).as_nanos();
        u64::try_from(elapsed / self.width).unwrap_or(u64::MAX)
    }

    fn add(&mut self, failed: bool, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let epoch = self.epoch(origin, now);
        let bucket = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            // Time came round to this slot again: what it held is a whole
            // window old.
            *bucket = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        bucket.requests = bucket.requests.saturating_add(1);
        bucket.failures = bucket.failures.saturating_add(u32::from(failed));
    }

    /// (requests, failures) inside the window at `now`.
    fn counts(&self, now: Instant) -> (u32, u32) {
        let Some(origin) = self.origin else {
            return (0, 0);
        };
        let epoch = self.epoch(origin, now);
        self.buckets
            .iter()
            .filter(|b| b.epoch <= epoch && epoch - b.epoch < BUCKETS as u64)
            .fold((0u32, 0u32), |(r, f), b| {
                (r.saturating_add(b.requests), f.saturating_add(b.failures))
            })
    }

    fn clear(&mut self) {
        self.origin = None;
        self.buckets = [Bucket::default(); BUCKETS];
    }
}

/// One upstream's state machine. Pure: no I/O, no clock of its own.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    window: Window,
    /// When it last opened (kept through half-open, for the status page).
    opened_at: Option<Instant>,
    /// Half-open: when the trial went out, if it is out.
    probe_since: Option<Instant>,
}

impl Breaker {
    pub fn new(config: &BreakerConfig) -> Breaker {
        Breaker {
            config: config.clone(),
            state: BreakerState::Closed,
            consecutive_failures: 0,
            window: Window::new(config.window),
            opened_at: None,
            probe_since: None,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a request go to this upstream now?
    pub fn admit(&mut self, now: Instant) -> Admission {
        self.admit_with_transition(now).0
    }

    /// [`Breaker::admit`], and the transition it made, if any (open →
    /// half-open when the cool-down has passed), for the log.
    pub fn admit_with_transition(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Admission::Allowed, None),
            BreakerState::Open => {
                let opened_at = self.opened_at.unwrap_or(now);
                let elapsed = now.saturating_duration_since(opened_at);
                if elapsed < self.config.cooldown {
                    let retry_in = self.config.cooldown - elapsed;
                    return (Admission::Rejected { retry_in }, None);
                }
                // The cool-down has passed: this caller is the trial.
                let transition = self.move_to(
                    BreakerState::HalfOpen,
                    format!(
                        "cool-down of {} passed",
                        humantime::format_duration(self.config.cooldown)
                    ),
                );
                self.probe_since = Some(now);
                (Admission::Probe, Some(transition))
            }
            BreakerState::HalfOpen => match self.probe_since {
                // A trial is out and not yet overdue: everyone else waits
                // for its verdict.
                Some(since) if now.saturating_duration_since(since) < TRIAL_LEASE => (
                    Admission::Rejected {
                        retry_in: TRIAL_PENDING_RETRY,
                    },
                    None,
                ),
                // No trial out (it was abandoned), or it is lost: this
                // caller is the trial.
                _ => {
                    self.probe_since = Some(now);
                    (Admission::Probe, None)
                }
            },
        }
    }

    /// Counts the outcome of a request that was sent.
    ///
    /// Closed: toward the thresholds. Half-open: the outcome decides (the
    /// trial's, or that of a request admitted before the breaker opened and
    /// only now finished, which is evidence as fresh). Open: ignored, since
    /// the decision to stop has been made and the cool-down runs regardless.
    pub fn record(&mut self, success: bool, now: Instant) -> Option<Transition> {
        match self.state {
            BreakerState::Closed => {
                self.window.add(!success, now);
                if success {
                    self.consecutive_failures = 0;
                    // A success cannot raise the error rate above the
                    // threshold, but it can bring the window to
                    // `min_requests`, so the rule is looked at here too.
                    return self.check_error_rate(now);
                }
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let limit = self.config.failures;
                if limit > 0 && self.consecutive_failures >= limit {
                    let reason = format!("{} failures in a row", self.consecutive_failures);
                    return Some(self.open(now, reason));
                }
                self.check_error_rate(now)
            }
            BreakerState::HalfOpen if success => {
                let transition =
                    self.move_to(BreakerState::Closed, "the trial request succeeded".into());
                self.consecutive_failures = 0;
                self.window.clear();
                self.opened_at = None;
                self.probe_since = None;
                Some(transition)
            }
            BreakerState::HalfOpen => Some(self.open(now, "the trial request failed".into())),
            BreakerState::Open => None,
        }
    }

    /// The trial admitted as [`Admission::Probe`] was never sent (or its
    /// client went away before an answer): the next caller may be the trial.
    pub fn abandon_probe(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.probe_since = None;
        }
    }

    /// This breaker as the status page shows it.
    pub fn status(&self, upstream: &str, now: Instant) -> BreakerStatus {
        let (window_requests, window_failures) = self.window.counts(now);
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let since_opened = self
            .opened_at
            .map(|at| now.saturating_duration_since(at))
            .filter(|_| self.state != BreakerState::Closed);
        let retry_in = match (self.state, since_opened) {
            (BreakerState::Open, Some(elapsed)) => {
                Some(self.config.cooldown.saturating_sub(elapsed))
            }
            _ => None,
        };
        BreakerStatus {
            upstream: upstream.to_string(),
            state: self.state,
            consecutive_failures: self.consecutive_failures,
            window_requests,
            window_failures,
            opened_ms_ago: since_opened.map(millis),
            retry_in_ms: retry_in.map(millis),
            probe_in_flight: self.state == BreakerState::HalfOpen && self.probe_since.is_some(),
        }
    }

    fn check_error_rate(&mut self, now: Instant) -> Option<Transition> {
        let threshold = self.config.error_rate?;
        let (requests, failures) = self.window.counts(now);
        // `failures > 0`: a threshold of 0% must not open on successes alone.
        if requests == 0 || failures == 0 || requests < self.config.min_requests {
            return None;
        }
        let rate = f64::from(failures) / f64::from(requests);
        if rate < threshold {
            return None;
        }
        let reason = format!(
            "error rate {}% over {} ({failures} of {requests})",
            (rate * 100.0).round(),
            humantime::format_duration(self.config.window)
        );
        Some(self.open(now, reason))
    }

    /// → Open, with a fresh cool-down from `now`.
    fn open(&mut self, now: Instant, reason: String) -> Transition {
        let transition = self.move_to(BreakerState::Open, reason);
        self.opened_at = Some(now);
        self.probe_since = None;
        transition
    }

    fn move_to(&mut self, to: BreakerState, reason: String) -> Transition {
        let from = std::mem::replace(&mut self.state, to);
        Transition { from, to, reason }
    }
}

/// Every upstream's breaker, keyed by upstream URL, shared by all the
/// connections of a proxy.
///
/// The lock choice: a `RwLock` over the map, a `Mutex` per breaker behind an
/// `Arc`. A request takes the map's *read* lock only long enough to clone
/// its breaker's `Arc` (many requests do that at once), then that one
/// breaker's mutex only for the few comparisons of `admit` or `record`.
/// Nothing is held while the request is in flight: `admit` returns before it
/// is sent and `record` runs after it has finished. The write lock is taken
/// only the first time an upstream is seen. So requests to different
/// upstreams never wait for each other, and requests to one upstream wait
/// only for each other's bookkeeping, never for each other's I/O. (A single
/// `Mutex<HashMap>` would be simpler, and as fast at the lab's scale, but it
/// would teach the wrong habit.)
#[derive(Debug)]
pub struct Breakers {
    config: BreakerConfig,
    breakers: RwLock<HashMap<String, Arc<Mutex<Breaker>>>>,
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            breakers: RwLock::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// May a request go to `upstream` now? If so, its ticket, to settle
    /// with the outcome; if not, how soon one may try again.
    pub fn ticket(&self, upstream: &Arc<str>) -> Result<Ticket, Duration> {
        let breaker = self.breaker(upstream);
        let (admission, transition) = lock(&breaker).admit_with_transition(Instant::now());
        if let Some(transition) = transition {
            log(upstream, &transition);
        }
        let probe = match admission {
            Admission::Allowed => false,
            Admission::Probe => true,
            Admission::Rejected { retry_in } => return Err(retry_in),
        };
        Ok(Ticket {
            breaker,
            upstream: Arc::clone(upstream),
            probe,
            settled: false,
        })
    }

    /// May a request go to `upstream` now?
    pub fn admit(&self, upstream: &str) -> Admission {
        let breaker = self.breaker(upstream);
        let (admission, transition) = lock(&breaker).admit_with_transition(Instant::now());
        if let Some(transition) = transition {
            log(upstream, &transition);
        }
        admission
    }

    /// Counts the outcome of a request sent to `upstream`, and logs the
    /// transition it caused (a warning when the breaker opens).
    pub fn record(&self, upstream: &str, success: bool) {
        let breaker = self.breaker(upstream);
        let transition = lock(&breaker).record(success, Instant::now());
        if let Some(transition) = transition {
            log(upstream, &transition);
        }
    }

    /// The trial for `upstream` was never sent, or its client went away:
    /// let the next caller be the trial.
    pub fn abandon_probe(&self, upstream: &str) {
        lock(&self.breaker(upstream)).abandon_probe();
    }

    /// Every breaker's state, sorted by upstream.
    pub fn snapshot(&self) -> Vec<BreakerStatus> {
        let now = Instant::now();
        let breakers: Vec<(String, Arc<Mutex<Breaker>>)> = read(&self.breakers)
            .iter()
            .map(|(upstream, breaker)| (upstream.clone(), Arc::clone(breaker)))
            .collect();
        let mut statuses: Vec<BreakerStatus> = breakers
            .iter()
            .map(|(upstream, breaker)| lock(breaker).status(upstream, now))
            .collect();
        statuses.sort_by(|a, b| a.upstream.cmp(&b.upstream));
        statuses
    }

    /// `upstream`'s breaker, made on first sight.
    fn breaker(&self, upstream: &str) -> Arc<Mutex<Breaker>> {
        if let Some(breaker) = read(&self.breakers).get(upstream) {
            return Arc::clone(breaker);
        }
        let mut breakers = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another request may have made it between the two locks.
        Arc::clone(
            breakers
                .entry(upstream.to_string())
                .or_insert_with(|| Arc::new(Mutex::new(Breaker::new(&self.config)))),
        )
    }
}

/// A panic while a lock was held cannot leave a breaker half-updated in a
/// way that matters (every field is a plain count or timestamp), so a
/// poisoned lock is used as it is rather than taking the proxy down.
fn lock(breaker: &Mutex<Breaker>) -> MutexGuard<'_, Breaker> {
    breaker.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn log(upstream: &str, transition: &Transition) {
    let Transition { from, to, reason } = transition;
    if *to == BreakerState::Open {
        tracing::warn!(%upstream, %from, %to, "circuit breaker opened: {reason}");
    } else {
        tracing::info!(%upstream, %from, %to, "circuit breaker {to}: {reason}");
    }
}

/// One request's admission through an upstream's breaker, to settle when
/// its outcome is known. A trial request (half-open) that is dropped
/// unsettled — the client went away, the request was refused before it was
/// sent — is abandoned, so that the next request may be the trial.
///
/// The ticket holds the upstream's breaker itself, so settling it takes no
/// second lookup in the map.
#[derive(Debug)]
pub struct Ticket {
    breaker: Arc<Mutex<Breaker>>,
    upstream: Arc<str>,
    probe: bool,
    settled: bool,
}

impl Ticket {
    /// Whether this request is the half-open trial.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The request's outcome: `false` for unreachable, too slow or a 5xx;
    /// logs the transition it caused (a warning when the breaker opens).
    pub fn record(mut self, success: bool) {
        self.settled = true;
        let transition = lock(&self.breaker).record(success, Instant::now());
        if let Some(transition) = transition {
            log(&self.upstream, &transition);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            lock(&self.breaker).abandon_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    /// 5 in a row, no error-rate rule, 5 s cool-down.
    fn five_in_a_row() -> BreakerConfig {
        BreakerConfig::default()
    }

    /// Only the error-rate rule: 50% over 10 s with at least `min` requests.
    fn half_of(min_requests: u32) -> BreakerConfig {
        BreakerConfig {
            failures: 0,
            error_rate: Some(0.5),
            min_requests,
            ..BreakerConfig::default()
        }
    }

    fn letter(state: BreakerState) -> char {
        match state {
            BreakerState::Closed => 'C',
            BreakerState::Open => 'O',
            BreakerState::HalfOpen => 'H',
        }
    }

    /// Sends one request per character at `now` (`S` succeeds, `F` fails)
    /// and draws the state after each: `C` closed, `O` open, `H` half-open;
    /// `x` when the breaker refused the request (nothing recorded).
    fn run(breaker: &mut Breaker, now: Instant, outcomes: &str) -> String {
        outcomes
            .chars()
            .map(|c| match breaker.admit(now) {
                Admission::Rejected { .. } => 'x',
                Admission::Allowed | Admission::Probe => {
                    breaker.record(c == 'S', now);
                    letter(breaker.state())
                }
            })
            .collect()
    }

    /// Opens `breaker` (config `five_in_a_row`) at `t0`.
    fn opened(t0: Instant) -> Breaker {
        let mut breaker = Breaker::new(&five_in_a_row());
        assert_eq!(run(&mut breaker, t0, "FFFFF"), "CCCCO");
        breaker
    }

    #[test]
    fn five_failures_in_a_row_open_it() {
        // outcome: F F F F F
        // state:   C C C C O
        let t0 = Instant::now();
        let mut breaker = Breaker::new(&five_in_a_row());
        let transitions: Vec<_> = (0..5).map(|_| breaker.record(false, t0)).collect();
        assert_eq!(transitions[..4], [None, None, None, None]);
        assert_eq!(
            transitions[4],
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open,
                reason: "5 failures in a row".into()
            })
        );
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        // outcome: F F F F S F F F F F
        // state:   C C C C C C C C C O    (the S starts the count again)
        let mut breaker = Breaker::new(&five_in_a_row());
        assert_eq!(
            run(&mut breaker, Instant::now(), "FFFFSFFFFF"),
            "CCCCCCCCCO"
        );
    }

    #[test]
    fn open_rejects_with_the_time_left_of_the_cool_down() {
        // t:      0 s (opens)   1 s            4.5 s
        // admit:                rejected 4 s   rejected 500 ms
        let t0 = Instant::now();
        let mut breaker = opened(t0);
        assert_eq!(
            breaker.admit(t0 + SEC),
            Admission::Rejected { retry_in: 4 * SEC }
        );
        assert_eq!(
            breaker.admit(t0 + 4500 * MS),
            Admission::Rejected { retry_in: 500 * MS }
        );
        // Outcomes of requests admitted before it opened change nothing.
        assert_eq!(breaker.record(true, t0 + 4600 * MS), None);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn after_the_cool_down_exactly_one_trial_goes_out() {
        // t = 5 s:  admit → Probe (half-open), admit → Rejected, admit → Rejected
        let t0 = Instant::now();
        let mut breaker = opened(t0);
        let t = t0 + 5 * SEC;
        let (first, transition) = breaker.admit_with_transition(t);
        assert_eq!(first, Admission::Probe);
        assert_eq!(
            transition,
            Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen,
                reason: "cool-down of 5s passed".into()
            })
        );
        for _ in 0..2 {
            assert_eq!(
                breaker.admit(t),
                Admission::Rejected {
                    retry_in: TRIAL_PENDING_RETRY
                }
            );
        }
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn the_trial_succeeding_closes_it_and_resets_the_counters() {
        // FFFFF → O; at 5 s: Probe, S → C; then it takes 5 new failures.
        let t0 = Instant::now();
        let mut breaker = opened(t0);
        let t = t0 + 5 * SEC;
        assert_eq!(breaker.admit(t), Admission::Probe);
        assert_eq!(
            breaker.record(true, t),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed,
                reason: "the trial request succeeded".into()
            })
        );
        let status = breaker.status("u", t);
        assert_eq!(
            (status.consecutive_failures, status.window_requests),
            (0, 0)
        );
        assert_eq!(breaker.admit(t), Admission::Allowed);
        assert_eq!(run(&mut breaker, t, "FFFFF"), "CCCCO");
    }

    #[test]
    fn the_trial_failing_reopens_it_with_a_fresh_cool_down() {
        // opens at 0 s; trial at 5 s fails → open again until 10 s, not 5 s.
        let t0 = Instant::now();
        let mut breaker = opened(t0);
        let t = t0 + 5 * SEC;
        assert_eq!(breaker.admit(t), Admission::Probe);
        assert_eq!(
            breaker.record(false, t),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Open,
                reason: "the trial request failed".into()
            })
        );
        assert_eq!(
            breaker.admit(t + SEC),
            Admission::Rejected { retry_in: 4 * SEC }
        );
        assert_eq!(breaker.admit(t + 5 * SEC), Admission::Probe);
    }

    #[test]
    fn an_abandoned_trial_lets_the_next_caller_probe() {
        // Probe (never sent) → abandon → the next admit is the trial.
        let t0 = Instant::now();
        let mut breaker = opened(t0);
        let t = t0 + 5 * SEC;
        assert_eq!(breaker.admit(t), Admission::Probe);
        assert!(matches!(breaker.admit(t), Admission::Rejected { .. }));
        breaker.abandon_probe();
        assert_eq!(breaker.admit(t), Admission::Probe);
        assert!(matches!(breaker.admit(t), Admission::Rejected { .. }));
        // Abandoning outside half-open does nothing.
        let mut closed = Breaker::new(&five_in_a_row());
        closed.abandon_probe();
        assert_eq!(closed.admit(t), Admission::Allowed);
    }

    #[test]
    fn a_trial_lost_for_the_whole_lease_is_replaced() {
        let t0 = Instant::now();
        let mut breaker = opened(t0);
        let t = t0 + 5 * SEC;
        assert_eq!(breaker.admit(t), Admission::Probe);
        assert!(matches!(
            breaker.admit(t + TRIAL_LEASE - MS),
            Admission::Rejected { .. }
        ));
        assert_eq!(breaker.admit(t + TRIAL_LEASE), Admission::Probe);
    }

    #[test]
    fn error_rate_opens_only_with_min_requests_in_the_window() {
        // 50% with at least 4 requests, consecutive rule off:
        // outcome: F F F S      F
        // state:   C C C O           (3 of 4 = 75% once there are 4)
        let t0 = Instant::now();
        let mut breaker = Breaker::new(&half_of(4));
        assert_eq!(run(&mut breaker, t0, "FFF"), "CCC");
        assert_eq!(breaker.status("u", t0).consecutive_failures, 3);
        let transition = breaker.record(true, t0);
        assert_eq!(
            transition,
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open,
                reason: "error rate 75% over 10s (3 of 4)".into()
            })
        );

        // 10 requests, 6 failing, spread out: opens on the 10th.
        // outcome: S F S F S F S F F F
        // state:   C C C C C C C C C O   (6 of 10 = 60%; at 9 it was 5 of 9)
        let mut breaker = Breaker::new(&half_of(10));
        let drawn: String = "SFSFSFSFFF"
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let now = t0 + (i as u32) * 100 * MS;
                let transition = breaker.record(c == 'S', now);
                if let Some(t) = transition {
                    assert_eq!(t.reason, "error rate 60% over 10s (6 of 10)");
                }
                letter(breaker.state())
            })
            .collect();
        assert_eq!(drawn, "CCCCCCCCCO");
    }

    #[test]
    fn error_rate_below_the_threshold_stays_closed() {
        // S F S F S S S S S S: 2 of 10 = 20% < 50%.
        let mut breaker = Breaker::new(&half_of(10));
        assert_eq!(
            run(&mut breaker, Instant::now(), "SFSFSSSSSS"),
            "CCCCCCCCCC"
        );
    }

    #[test]
    fn a_zero_threshold_does_not_open_on_successes() {
        let config = BreakerConfig {
            error_rate: Some(0.0),
            ..half_of(2)
        };
        let mut breaker = Breaker::new(&config);
        assert_eq!(run(&mut breaker, Instant::now(), "SSSSF"), "CCCCO");
    }

    #[test]
    fn the_window_ages_old_outcomes_out_a_bucket_at_a_time() {
        // window 10 s in 1 s buckets:
        //   t = 0 s: F    t = 5 s: S
        //   at 9.9 s both count; at 10 s the 0 s bucket has aged out;
        //   at 15 s both have.
        let t0 = Instant::now();
        let mut window = Window::new(10 * SEC);
        assert_eq!(window.counts(t0), (0, 0));
        window.add(true, t0);
        window.add(false, t0 + 5 * SEC);
        assert_eq!(window.counts(t0 + 9900 * MS), (2, 1));
        assert_eq!(window.counts(t0 + 10 * SEC), (1, 0));
        assert_eq!(window.counts(t0 + 15 * SEC), (0, 0));
        // A slot is reused when time comes round to it: 20.5 s falls in the
        // slot the 0 s failure had, and counts only itself.
        window.add(true, t0 + 20500 * MS);
        assert_eq!(window.counts(t0 + 20500 * MS), (1, 1));
        assert_eq!(window.buckets[0].epoch, 20);
    }

    #[test]
    fn aged_out_failures_do_not_open_it() {
        // 50% with at least 4: F F at 0 s, then S S F at 11 s.
        // Counting everything: 3 of 5 = 60% → open. In the window: 1 of 3.
        let t0 = Instant::now();
        let mut breaker = Breaker::new(&half_of(4));
        assert_eq!(run(&mut breaker, t0, "FF"), "CC");
        assert_eq!(run(&mut breaker, t0 + 11 * SEC, "SSF"), "CCC");
        let status = breaker.status("u", t0 + 11 * SEC);
        assert_eq!((status.window_requests, status.window_failures), (3, 1));
        // One more failure: 2 of 4 = 50% → open.
        assert_eq!(run(&mut breaker, t0 + 11 * SEC, "F"), "O");
    }

    #[test]
    fn status_reports_the_cool_down() {
        let t0 = Instant::now();
        let mut breaker = opened(t0);
        let status = breaker.status("http://127.0.0.1:2003/base", t0 + 1500 * MS);
        assert_eq!(
            status,
            BreakerStatus {
                upstream: "http://127.0.0.1:2003/base".into(),
                state: BreakerState::Open,
                consecutive_failures: 5,
                window_requests: 5,
                window_failures: 5,
                opened_ms_ago: Some(1500),
                retry_in_ms: Some(3500),
                probe_in_flight: false,
            }
        );
        breaker.admit(t0 + 5 * SEC);
        let status = breaker.status("u", t0 + 6 * SEC);
        assert_eq!(status.state, BreakerState::HalfOpen);
        assert_eq!(
            (status.opened_ms_ago, status.retry_in_ms),
            (Some(6000), None)
        );
        assert!(status.probe_in_flight);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["state"], "half-open");
    }

    #[test]
    fn breakers_keep_one_state_machine_per_upstream() {
        let breakers = Breakers::new(BreakerConfig {
            failures: 2,
            cooldown: Duration::from_secs(60),
            ..BreakerConfig::default()
        });
        let (a, b) = ("http://a", "http://b");
        for _ in 0..2 {
            assert_eq!(breakers.admit(a), Admission::Allowed);
            breakers.record(a, false);
        }
        assert!(
            matches!(breakers.admit(a), Admission::Rejected { retry_in } if retry_in > 59 * SEC)
        );
        // b is unaffected by a's failures.
        assert_eq!(breakers.admit(b), Admission::Allowed);
        breakers.record(b, true);
        breakers.abandon_probe(a); // not half-open: nothing happens
        let snapshot = breakers.snapshot();
        let states: Vec<_> = snapshot
            .iter()
            .map(|s| (s.upstream.as_str(), s.state))
            .collect();
        assert_eq!(states, [(a, BreakerState::Open), (b, BreakerState::Closed)]);
    }

    #[test]
    fn breakers_can_be_shared_between_threads() {
        // 4 threads × 100 failures on one upstream: every one is counted
        // (the per-upstream mutex makes each update whole).
        let breakers = Breakers::new(BreakerConfig {
            failures: 1000,
            ..BreakerConfig::default()
        });
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        breakers.record("http://a", false);
                    }
                });
            }
        });
        assert_eq!(breakers.snapshot()[0].consecutive_failures, 400);
        assert_eq!(breakers.snapshot()[0].state, BreakerState::Closed);
    }

    #[test]
    fn parses_error_rates() {
        assert_eq!(parse_error_rate("50%"), Ok(0.5));
        assert_eq!(parse_error_rate(" 12.5 % "), Ok(0.125));
        assert_eq!(parse_error_rate("0.6"), Ok(0.6));
        assert_eq!(parse_error_rate("100%"), Ok(1.0));
        assert!(
            parse_error_rate("150%")
                .unwrap_err()
                .contains("between 0% and 100%")
        );
        assert!(
            parse_error_rate("half")
                .unwrap_err()
                .contains("such as 50%")
        );
    }
}

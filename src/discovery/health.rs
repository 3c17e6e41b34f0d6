//! Health checks (健康检查): the article's `LoadBalanceCheckConf`, which
//! probes every upstream and keeps only the ones that answer.
//!
//! Two kinds of evidence feed one counter per upstream:
//! - active: every `--health-interval` the proxy asks each upstream for
//!   `--health-check PATH` itself; a 2xx or 3xx within the timeout is a
//!   success, anything else (refused, reset, a 5xx, too slow) a failure;
//! - passive: a proxied request that could not reach the upstream (502/504)
//!   is a failure too, so a dead upstream is noticed between probes.
//!
//! An upstream leaves the set after `--unhealthy-after N` failures in a row
//! and comes back after `--healthy-after M` successful probes in a row. The
//! two thresholds are what keeps one lost packet from ejecting a server and
//! one lucky answer from readmitting a flapping one (nginx's `max_fails`,
//! Envoy's `unhealthy_threshold` / `healthy_threshold`).

use std::time::Duration;

use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;

use crate::proxy::transport::{Transport, TransportError};
use crate::upstream::Upstream;

/// `--health-check` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// The path probed on every upstream, e.g. `/` or `/healthz`; it is
    /// asked of the upstream's host, not joined with its base path.
    pub path: String,
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Failures in a row that take an upstream out.
    pub unhealthy_after: u32,
    /// Successful probes in a row that bring it back.
    pub healthy_after: u32,
}

/// Whether an upstream is in the set the balancer chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Healthy,
    Unhealthy,
}

/// A change of state, and the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It failed `unhealthy_after` times in a row; the last failure says why.
    WentDown { failures: u32, last_error: String },
    /// It passed `healthy_after` probes in a row.
    CameBack { successes: u32 },
}

/// One upstream's health: the state and the two running counts.
///
/// ```text
///              failure × N                success × M
///   Healthy ─────────────────▶ Unhealthy ─────────────▶ Healthy
///      ▲  │ success resets            │ failure resets
///      └──┘ the failure count         └ the success count
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: State,
    /// Failures in a row (active or passive).
    pub failures: u32,
    /// Successful probes in a row.
    pub successes: u32,
    /// What the last failure was, for the status page and the 503's body.
    pub last_error: Option<String>,
}

impl Default for Health {
    /// A new upstream is trusted until it fails (as nginx does): it joins the
    /// set at once and the probes take it out if it does not answer.
    fn default() -> Self {
        Health {
            state: State::Healthy,
            failures: 0,
            successes: 0,
            last_error: None,
        }
    }
}

impl Health {
    /// Counts one successful probe. (A proxied request that succeeds only
    /// resets the failure count: see `membership`'s passive reports.)
    pub fn succeeded(&mut self, config: &HealthConfig) -> Option<Transition> {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        if self.state == State::Unhealthy && self.successes >= config.healthy_after {
            self.state = State::Healthy;
            return Some(Transition::CameBack {
                successes: self.successes,
            });
        }
        None
    }

    /// Counts one failure, with what went wrong.
    pub fn failed(&mut self, config: &HealthConfig, error: String) -> Option<Transition> {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error.clone());
        if self.state == State::Healthy && self.failures >= config.unhealthy_after {
            self.state = State::Unhealthy;
            return Some(Transition::WentDown {
                failures: self.failures,
                last_error: error,
            });
        }
        None
    }
}

/// Asks `upstream` for the health-check path once: `Ok` for a 2xx or 3xx
/// within the timeout, otherwise why not.
pub async fn probe(
    transport: &Transport,
    upstream: &Upstream,
    config: &HealthConfig,
) -> Result<(), String> {
    let uri: Uri = format!(
        "{}://{}{}",
        upstream.scheme, upstream.authority, config.path
    )
    .parse()
    .map_err(|err| format!("bad health-check URL: {err}"))?;
    let request = Request::get(uri)
        .header(http::header::HOST, upstream.authority.as_str())
        .header(http::header::USER_AGENT, "lab-health-check")
        .body(crate::body::empty())
        .map_err(|err| format!("cannot build the probe: {err}"))?;
    let exchange = async {
        let response = transport
            .round_trip(request)
            .await
            .map_err(|err| brief(&err))?;
        let status = response.status();
        // Read the (small) body to its end so the connection can be reused.
        let _ = response.into_body().collect().await;
        Ok::<StatusCode, String>(status)
    };
    match tokio::time::timeout(config.timeout, exchange).await {
        Ok(Ok(status)) if status.is_success() || status.is_redirection() => Ok(()),
        Ok(Ok(status)) => Err(format!("{} answered {status}", config.path)),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(format!("no answer within {:?}", config.timeout)),
    }
}

/// A failed round trip in a few words, for the status page and the logs:
/// the innermost cause of hyper's error chain
/// (`cannot connect: Connection refused (os error 111)`).
pub fn brief(err: &TransportError) -> String {
    let innermost = |detail: &str| detail.rsplit(": ").next().unwrap_or(detail).to_string();
    match err {
        TransportError::Connect(detail) => format!("cannot connect: {}", innermost(detail)),
        TransportError::Broken(detail) => format!("connection broken: {}", innermost(detail)),
        TransportError::Request(detail) => detail.clone(),
        TransportError::Tls(detail) => format!("TLS: {}", innermost(detail)),
        TransportError::Stale { detail, .. } => {
            format!("closed before answering: {}", innermost(detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(unhealthy_after: u32, healthy_after: u32) -> HealthConfig {
        HealthConfig {
            path: "/".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            unhealthy_after,
            healthy_after,
        }
    }

    /// Feeds a sequence of outcomes (`+` success, `-` failure) and draws the
    /// state after each: `H` healthy, `U` unhealthy.
    fn run(config: &HealthConfig, outcomes: &str) -> String {
        let mut health = Health::default();
        outcomes
            .chars()
            .map(|c| {
                match c {
                    '+' => health.succeeded(config),
                    _ => health.failed(config, "refused".into()),
                };
                match health.state {
                    State::Healthy => 'H',
                    State::Unhealthy => 'U',
                }
            })
            .collect()
    }

    #[test]
    fn leaves_after_n_failures_in_a_row_and_returns_after_m_successes() {
        let config = config(3, 2);
        // Two failures are forgiven by a success; the third in a row ejects.
        assert_eq!(run(&config, "--+---"), "HHHHHU");
        // Back after two good probes in a row, not after one.
        assert_eq!(run(&config, "---+-++"), "HHUUUUH");
    }

    #[test]
    fn one_and_one_flips_at_once() {
        let config = config(1, 1);
        assert_eq!(run(&config, "-+-+"), "UHUH");
    }

    #[test]
    fn brief_keeps_the_innermost_cause() {
        let err = TransportError::Connect(
            "client error (Connect): tcp connect error: Connection refused (os error 111)".into(),
        );
        assert_eq!(
            brief(&err),
            "cannot connect: Connection refused (os error 111)"
        );
        assert_eq!(
            brief(&TransportError::Broken("reset".into())),
            "connection broken: reset"
        );
    }

    #[test]
    fn transitions_carry_the_evidence() {
        let config = config(2, 1);
        let mut health = Health::default();
        assert_eq!(health.failed(&config, "a".into()), None);
        assert_eq!(
            health.failed(&config, "b".into()),
            Some(Transition::WentDown {
                failures: 2,
                last_error: "b".into()
            })
        );
        // Further failures are no news.
        assert_eq!(health.failed(&config, "c".into()), None);
        assert_eq!(
            health.succeeded(&config),
            Some(Transition::CameBack { successes: 1 })
        );
        assert_eq!(health.last_error.as_deref(), Some("c"));
    }
}

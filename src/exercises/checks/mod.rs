//! The experiments `lab verify` runs, one file per exercise: each sends
//! what the lab's check sends, to the learner's program, and records one
//! point per thing the program must do.

mod balanced_proxy;
mod consistent_hash;
mod custom_director;
mod fixed_naive_proxy;
mod forward_proxy;
mod health_check;
mod join_director;
mod modify_and_errors;
mod random;
mod rate_limit;
mod real_server;
mod round_robin;
mod weighted_round_robin;

use futures_util::future::BoxFuture;

use super::session::Session;

/// An exercise's experiment.
pub type Scenario = for<'a> fn(&'a mut Session) -> BoxFuture<'a, anyhow::Result<()>>;

/// The experiment named `name` in an exercise.toml (`check = "…"`).
pub fn scenario(name: &str) -> Option<Scenario> {
    match name {
        "real-server" => Some(real_server::run),
        "fixed-naive-proxy" => Some(fixed_naive_proxy::run),
        "balanced-proxy" => Some(balanced_proxy::run),
        "consistent-hash" => Some(consistent_hash::run),
        "custom-director" => Some(custom_director::run),
        "forward-proxy" => Some(forward_proxy::run),
        "health-check" => Some(health_check::run),
        "join-director" => Some(join_director::run),
        "modify-and-errors" => Some(modify_and_errors::run),
        "random" => Some(random::run),
        "rate-limit" => Some(rate_limit::run),
        "round-robin" => Some(round_robin::run),
        "weighted-round-robin" => Some(weighted_round_robin::run),
        _ => None,
    }
}

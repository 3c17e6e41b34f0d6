//! The experiments `lab verify` runs, one file per exercise: each sends
//! what the lab's check sends, to the learner's program, and records one
//! point per thing the program must do.

mod custom_director;
mod fixed_naive_proxy;
mod forward_proxy;
mod real_server;
mod round_robin;

use futures_util::future::BoxFuture;

use super::session::Session;

/// An exercise's experiment.
pub type Scenario = for<'a> fn(&'a mut Session) -> BoxFuture<'a, anyhow::Result<()>>;

/// The experiment named `name` in an exercise.toml (`check = "…"`).
pub fn scenario(name: &str) -> Option<Scenario> {
    match name {
        "real-server" => Some(real_server::run),
        "fixed-naive-proxy" => Some(fixed_naive_proxy::run),
        "forward-proxy" => Some(forward_proxy::run),
        "round-robin" => Some(round_robin::run),
        "custom-director" => Some(custom_director::run),
        _ => None,
    }
}

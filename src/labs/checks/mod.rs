//! The labs' scenarios: one file per lab, registered by the lab's slug.
//!
//! A scenario starts what it needs in this process on free loopback ports,
//! runs the experiment the sheet describes with real sockets, and records in
//! [`Findings`] every claim (expected against actual) and the actual answer to
//! every prediction. It never decides pass or fail for predictions: the report
//! compares them with the learner's answers.

mod balancing;
mod choosing_a_balancer;
mod consistent_hash;
mod director;
mod forward_proxy;
mod fronts;
mod health_checks;
mod middleware;
mod modify_and_errors;
mod naive_reverse_proxy;
mod proxy_basics;
mod proxy_pages;
mod random;
mod round_robin;
mod serve_http_internals;
mod servers;
mod special_headers;
mod timeouts;
mod transparent_proxy;
mod transport_pool;
mod upgrade;
mod weighted_round_robin;
mod zookeeper_discovery;

use futures_util::future::BoxFuture;

use super::findings::Findings;

/// A lab's experiment.
pub type Scenario = for<'a> fn(&'a mut Findings) -> BoxFuture<'a, anyhow::Result<()>>;

/// The slugs that have a scenario, in lab order.
pub const SLUGS: &[&str] = &[
    "proxy-basics",
    "special-headers",
    "forward-proxy",
    "transparent-proxy",
    "naive-reverse-proxy",
    "director",
    "modify-and-errors",
    "serve-http-internals",
    "upgrade",
    "transport-pool",
    "timeouts",
    "random",
    "round-robin",
    "weighted-round-robin",
    "consistent-hash",
    "choosing-a-balancer",
    "health-checks",
    "zookeeper-discovery",
    "middleware",
];

/// The scenario of the lab named `slug`.
pub fn scenario(slug: &str) -> Option<Scenario> {
    match slug {
        "proxy-basics" => Some(proxy_basics::run),
        "special-headers" => Some(special_headers::run),
        "forward-proxy" => Some(forward_proxy::run),
        "transparent-proxy" => Some(transparent_proxy::run),
        "naive-reverse-proxy" => Some(naive_reverse_proxy::run),
        "director" => Some(director::run),
        "modify-and-errors" => Some(modify_and_errors::run),
        "serve-http-internals" => Some(serve_http_internals::run),
        "upgrade" => Some(upgrade::run),
        "transport-pool" => Some(transport_pool::run),
        "timeouts" => Some(timeouts::run),
        "random" => Some(random::run),
        "round-robin" => Some(round_robin::run),
        "weighted-round-robin" => Some(weighted_round_robin::run),
        "consistent-hash" => Some(consistent_hash::run),
        "choosing-a-balancer" => Some(choosing_a_balancer::run),
        "health-checks" => Some(health_checks::run),
        "zookeeper-discovery" => Some(zookeeper_discovery::run),
        "middleware" => Some(middleware::run),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_folder_has_a_scenario_and_every_scenario_a_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
        let catalogue = crate::labs::Catalogue::load(&dir).unwrap();
        let slugs: Vec<&str> = catalogue.labs.iter().map(|l| l.slug.as_str()).collect();
        assert_eq!(slugs, SLUGS);
        for slug in SLUGS {
            assert!(scenario(slug).is_some(), "{slug} has no scenario");
        }
    }
}

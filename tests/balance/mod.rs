//! `lab proxy --lb …` on real sockets: the article's four load balancers
//! (`src/balance/`) between a client and two or three real servers.
//!
//! Every check is made on the wire: which real server answered (its
//! `X-Lab-Server` header and the `server` of its JSON echo), which upstream
//! the proxy names (`X-Lab-Upstream`), and, when the request carries
//! `X-Lab-Explain: 1`, the pick's explanation (`X-Lab-Pick`, JSON).
//!
//! The expected picks come from outside the proxy: hand-made tables (round
//! robin's counter, nginx's 5/1/1 table, its recovery after a failure),
//! `crc32fast` for the hash, and the library's balancers built directly over
//! the same upstream URLs, driven pick by pick beside the proxy (the proxy
//! must *be* the algorithm, not merely something that spreads load).
//!
//! The real servers listen on random ports, and their URLs are what the
//! consistent-hash ring hashes, so the ring differs from run to run. The
//! tests never assume where a key lands: they ask a directly built ring and
//! choose their keys (users, client ports, client IPs) from its answers, so
//! the outcome is the same on every run.
//!
//! Proxies run in this process (`RunningProxy::start`, the flags parsed by
//! clap as the binary parses them), except where the binary itself is the
//! subject: the seed it logs, and its usage errors. Everything listens on
//! 127.0.0.1 port 0; every wait is bounded by `common::STEP`, every test by
//! `common::TEST_LIMIT`; nothing asserts a duration.
//!
//! One file per algorithm, as the article has one section (and the lab one
//! sheet) each: [`round_robin`], [`random`], [`weighted`],
//! [`consistent_hash`]; [`every_algorithm`] holds what all four must do (an
//! upstream going down, `X-Lab-Explain`, the usage errors of bad flags).

mod consistent_hash;
mod every_algorithm;
mod random;
mod round_robin;
mod threads;
mod weighted;

use std::net::SocketAddr;

use crate::common::client::header_of;
use crate::common::servers::{base, proxy};
use http::StatusCode;
use lab::balance::{self, Balancer, Explanation, Node, PickInput};
use lab::cli::launch::RunningProxy;
use lab::lab_headers::SERVER_HEADER;
use lab::lab_headers::{EXPLAIN_HEADER, PICK_HEADER, UPSTREAM_HEADER};
use lab::probe::{Exchange, Probe};
use lab::realserver::RunningServer;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Helpers: real servers, proxies, requests
// ---------------------------------------------------------------------------

/// The real servers by index, as the tables name them: a, b, c.
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn addrs_of(servers: &[RunningServer]) -> Vec<SocketAddr> {
    servers.iter().map(RunningServer::addr).collect()
}

/// `--upstream` values: every server with its weight.
fn specs(addrs: &[SocketAddr], weights: &[u32]) -> Vec<String> {
    assert_eq!(addrs.len(), weights.len());
    addrs
        .iter()
        .zip(weights)
        .map(|(addr, weight)| format!("{},{weight}", base(*addr)))
        .collect()
}

/// The nodes the proxy builds from `specs`, for a balancer built beside it.
fn nodes(specs: &[String]) -> Vec<Node> {
    specs
        .iter()
        .map(|spec| balance::parse_upstream_spec(spec).expect("a good --upstream"))
        .collect()
}

/// `lab proxy LB_FLAGS --upstream SPEC…`, served by this process.
async fn start_proxy(lb_flags: &[&str], specs: &[String]) -> RunningProxy {
    let mut flags: Vec<&str> = lb_flags.to_vec();
    for spec in specs {
        flags.extend(["--upstream", spec.as_str()]);
    }
    proxy(&flags).await
}

/// A GET asking the real server for its JSON echo.
fn probe(path: &str) -> Probe {
    Probe::get(path).header("Accept", "application/json")
}

/// The same probe, asking the proxy to explain its pick.
fn explained(probe: Probe) -> Probe {
    probe.header(EXPLAIN_HEADER.as_str(), "1")
}

/// What became of one request through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Real server `i` answered it (200, named by the proxy and the server).
    Served(usize),
    /// The proxy chose upstream `i` and could not reach it: 502 naming it.
    BadGateway(usize),
}

use Outcome::{BadGateway, Served};

/// Reads an exchange: which of `addrs` the proxy chose, and whether that
/// real server answered. Every other answer fails the test.
fn outcome(exchange: &Exchange, addrs: &[SocketAddr]) -> Outcome {
    let upstream = header_of(exchange, UPSTREAM_HEADER.as_str());
    let index = addrs
        .iter()
        .position(|addr| base(*addr) == upstream)
        .unwrap_or_else(|| panic!("{UPSTREAM_HEADER}: {upstream} is none of {addrs:?}"));
    match exchange.status {
        StatusCode::OK => {
            let server = addrs[index].to_string();
            assert_eq!(
                header_of(exchange, SERVER_HEADER),
                server,
                "{SERVER_HEADER}: the server that answered is the upstream the proxy named"
            );
            let echo = exchange.json_echo().expect("the real server's JSON echo");
            assert_eq!(echo.server, server, "the JSON echo names the same server");
            assert!(echo.uri.starts_with("/base/"), "{}", echo.uri);
            Served(index)
        }
        StatusCode::BAD_GATEWAY => {
            assert!(
                exchange.headers.get(SERVER_HEADER).is_none(),
                "a 502 comes from the proxy, not a real server: {:?}",
                exchange.headers
            );
            let body = exchange.text();
            assert!(
                body.contains(upstream),
                "the 502 says which upstream: {body}"
            );
            BadGateway(index)
        }
        status => panic!("unexpected {status} from {upstream}: {}", exchange.text()),
    }
}

/// The real server that answered (the request must have succeeded).
fn served_by(exchange: &Exchange, addrs: &[SocketAddr]) -> usize {
    match outcome(exchange, addrs) {
        Served(index) => index,
        other => panic!("expected a real server's answer, got {other:?}"),
    }
}

/// The pick's explanation the proxy returned in `X-Lab-Pick`.
fn pick_of(exchange: &Exchange) -> Value {
    let json = header_of(exchange, PICK_HEADER.as_str());
    serde_json::from_str(json).unwrap_or_else(|err| panic!("{PICK_HEADER} {json:?}: {err}"))
}

fn assert_no_pick(exchange: &Exchange, what: &str) {
    assert!(
        exchange.headers.get(PICK_HEADER).is_none(),
        "{what}: no {PICK_HEADER} unless asked, got {:?}",
        exchange.headers
    );
}

/// An explanation as the proxy serialises it.
fn to_json(explanation: &Explanation) -> Value {
    serde_json::to_value(explanation).expect("an explanation serialises")
}

/// A pick made directly on a balancer built beside the proxy: (index, explanation).
fn direct(balancer: &dyn Balancer, key: Option<&str>) -> (usize, Value) {
    let pick = balancer
        .pick(&PickInput { key, explain: true })
        .expect("the balancer has nodes");
    let explanation = pick.explanation.expect("asked for an explanation");
    (pick.index, to_json(&explanation))
}

/// The article's consistent-hash ring, computed here from its definition
/// and not by the library: replica `r` of an upstream of weight `w`
/// (`r < 10 × w`) at `crc32("{r}{upstream}")`, sorted; a key belongs to the
/// first point at or after `crc32(key)`, wrapping to the first.
struct Ring {
    /// (point, node, virtual node name), in ring order.
    points: Vec<(u32, usize, String)>,
}

/// Where the ring sends one key.
struct Place<'a> {
    ring_index: usize,
    point: u32,
    node: usize,
    virtual_node: &'a str,
}

impl Ring {
    fn article(addrs: &[SocketAddr], weights: &[u32]) -> Ring {
        let mut points = Vec::new();
        for (node, (addr, weight)) in addrs.iter().zip(weights).enumerate() {
            for replica in 0..10 * *weight as usize {
                let name = format!("{replica}{}", base(*addr));
                points.push((crc32fast::hash(name.as_bytes()), node, replica, name));
            }
        }
        points.sort();
        Ring {
            points: points
                .into_iter()
                .map(|(point, node, _, name)| (point, node, name))
                .collect(),
        }
    }

    fn place(&self, key: &str) -> Place<'_> {
        let hash = crc32fast::hash(key.as_bytes());
        let ring_index = self
            .points
            .iter()
            .position(|(point, _, _)| *point >= hash)
            .unwrap_or(0);
        let (point, node, name) = &self.points[ring_index];
        Place {
            ring_index,
            point: *point,
            node: *node,
            virtual_node: name,
        }
    }

    fn nodes(&self) -> usize {
        self.points
            .iter()
            .map(|(_, node, _)| node + 1)
            .max()
            .unwrap_or(0)
    }
}

/// The ring's node for `key`.
fn node_of(ring: &Ring, key: &str) -> usize {
    ring.place(key).node
}

/// `per_node` user names for each node of `ring`: the first of `user-0`,
/// `user-1`, … that it sends there. Chosen from the ring itself, because
/// the ring hashes the servers' random ports.
fn users_for_each_node(ring: &Ring, per_node: usize) -> Vec<Vec<String>> {
    let mut users = vec![Vec::new(); ring.nodes()];
    for n in 0..100_000 {
        if users.iter().all(|found| found.len() == per_node) {
            return users;
        }
        let user = format!("user-{n}");
        let found = &mut users[node_of(ring, &user)];
        if found.len() < per_node {
            found.push(user);
        }
    }
    panic!("100,000 users did not reach every node of the ring: {users:?}");
}

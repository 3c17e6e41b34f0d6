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

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::common::bounded;
use crate::common::client::{header_of, send, send_from};
use crate::common::process::{PROXY_AT, proxy_process, run_lab};
use crate::common::servers::{base, dead_port, proxy, real_servers};
use http::StatusCode;
use lab::balance::weighted::{lower_effective, smooth_wrr_step};
use lab::balance::{
    self, Algorithm, Balancer, BalancerConfig, Explanation, Node, PickInput, RandomBalancer,
    WeightState, smooth_wrr_sequence,
};
use lab::probe::{Exchange, Probe};
use lab::proxy::reverse::{EXPLAIN_HEADER, PICK_HEADER, RunningProxy, UPSTREAM_HEADER};
use lab::realserver::{RunningServer, SERVER_HEADER};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers: real servers, proxies, requests
// ---------------------------------------------------------------------------

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

/// `lab proxy --listen 127.0.0.1:0 ARGS`, which must refuse to start: its
/// exit code and stderr.
async fn refused(args: &[&str]) -> (Option<i32>, String) {
    let mut argv = vec!["proxy", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let (status, stderr) = run_lab(&argv).await;
    assert!(
        !stderr.contains(PROXY_AT),
        "lab proxy {args:?} started anyway:\n{stderr}"
    );
    (status.code(), stderr)
}

// ---------------------------------------------------------------------------
// Round robin
// ---------------------------------------------------------------------------

#[tokio::test]
async fn round_robin_alternates_strictly_whatever_the_weights() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        // Weights are ignored, in either order, by either name.
        for (lb, weights) in [("round-robin", [1, 5]), ("rr", [20, 10])] {
            let specs = specs(&addrs, &weights);
            let proxy = start_proxy(&["--lb", lb], &specs).await;
            for counter in 0..12u64 {
                let exchange = send(proxy.addr(), explained(probe("/rr"))).await;
                let expected = (counter % 2) as usize;
                assert_eq!(
                    served_by(&exchange, &addrs),
                    expected,
                    "--lb {lb} {weights:?}, request {counter}"
                );
                assert_eq!(
                    pick_of(&exchange),
                    json!({"algorithm": "round-robin", "counter": counter, "nodes": 2}),
                    "--lb {lb}: {PICK_HEADER} shows the counter"
                );
            }
            // The counter keeps going for requests that did not ask for it.
            let exchange = send(proxy.addr(), probe("/rr")).await;
            assert_eq!(served_by(&exchange, &addrs), 0, "request 12");
            assert_no_pick(&exchange, "round robin");
            let exchange = send(proxy.addr(), explained(probe("/rr"))).await;
            assert_eq!(served_by(&exchange, &addrs), 1, "request 13");
            assert_eq!(pick_of(&exchange)["counter"], 13);
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Random
// ---------------------------------------------------------------------------

/// The servers that answered `n` requests to `proxy`, in order.
async fn sequence(proxy: SocketAddr, addrs: &[SocketAddr], n: usize) -> Vec<usize> {
    let mut picks = Vec::new();
    for _ in 0..n {
        picks.push(served_by(&send(proxy, probe("/random")).await, addrs));
    }
    picks
}

/// The first `n` picks of a random balancer with `seed` over `specs`.
fn random_picks(specs: &[String], seed: u64, n: usize) -> Vec<usize> {
    let balancer = RandomBalancer::new(nodes(specs), seed);
    (0..n)
        .map(|_| balancer.pick(&PickInput::default()).unwrap().index)
        .collect()
}

#[tokio::test]
async fn random_with_a_seed_repeats_its_sequence_through_separate_proxies() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[1, 1]);

        // The sequences computed directly: seed 42 uses both servers (so the
        // comparison below means something) and seed 43 is another sequence.
        let expected = random_picks(&specs, 42, 20);
        assert_eq!(
            expected.iter().collect::<BTreeSet<_>>().len(),
            2,
            "{expected:?}"
        );
        let other = random_picks(&specs, 43, 20);
        assert_ne!(expected, other);

        let first = start_proxy(&["--lb", "random", "--seed", "42"], &specs).await;
        let second = start_proxy(&["--lb", "random", "--seed", "42"], &specs).await;
        let third = start_proxy(&["--lb", "random", "--seed", "43"], &specs).await;
        let one = sequence(first.addr(), &addrs, 20).await;
        let two = sequence(second.addr(), &addrs, 20).await;
        let three = sequence(third.addr(), &addrs, 20).await;
        assert_eq!(one, two, "--seed 42 twice: the same 20 picks");
        assert_eq!(one, expected, "the proxy's picks are RandomBalancer's");
        assert_ne!(three, one, "--seed 43 is another sequence");
        assert_eq!(three, other);

        // Its explanation is the balancer's: seed, pick number, draw, nodes.
        let fourth = start_proxy(&["--lb", "random", "--seed", "42"], &specs).await;
        let balancer = RandomBalancer::new(nodes(&specs), 42);
        for sequence in 0..6u64 {
            let exchange = send(fourth.addr(), explained(probe("/random"))).await;
            let (index, explanation) = direct(&balancer, None);
            assert_eq!(served_by(&exchange, &addrs), index, "pick {sequence}");
            let pick = pick_of(&exchange);
            assert_eq!(pick, explanation, "pick {sequence}");
            assert_eq!(pick["algorithm"], "random");
            assert_eq!(pick["seed"], 42);
            assert_eq!(pick["sequence"], sequence);
            assert_eq!(pick["nodes"], 2);
            let draw = pick["draw"].as_u64().expect("the draw is a u64");
            assert_eq!((draw % 2) as usize, index, "the node is draw % nodes");
        }
    })
    .await;
}

#[tokio::test]
async fn binary_random_without_a_seed_logs_the_seed_that_repeats_it() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[1, 1]);
        let mut args = vec!["--lb", "random"];
        for spec in &specs {
            args.extend(["--upstream", spec.as_str()]);
        }
        let (proxy, proxy_addr) = proxy_process(&args).await;
        let log = proxy.log();

        // `random balancer seed N (repeat this sequence with --seed N)`
        let line = proxy
            .lines()
            .iter()
            .find(|line| line.contains("random balancer seed "))
            .unwrap_or_else(|| panic!("no seed logged:\n{log}"));
        let (_, rest) = line.split_once("random balancer seed ").unwrap();
        let (seed, rest) = rest.split_once(' ').expect("a seed, then the hint");
        let seed: u64 = seed
            .parse()
            .unwrap_or_else(|_| panic!("the seed is a number: {line:?}"));
        assert_eq!(
            rest,
            format!("(repeat this sequence with --seed {seed})"),
            "{line:?}"
        );
        let start = proxy.lines().last().expect("the start line");
        for spec in &specs {
            let (url, weight) = spec.rsplit_once(',').unwrap();
            assert!(
                start.contains(&format!("{url} (weight {weight})")),
                "{start:?}"
            );
        }
        assert!(start.ends_with("balanced by random"), "{start:?}");

        // The binary's picks are that seed's sequence…
        let expected = random_picks(&specs, seed, 16);
        let picks = sequence(proxy_addr, &addrs, 16).await;
        assert_eq!(picks, expected, "seed {seed}");
        // …and `--seed N` repeats it, as the log line promises.
        let again = start_proxy(&["--lb", "random", "--seed", &seed.to_string()], &specs).await;
        assert_eq!(sequence(again.addr(), &addrs, 16).await, picks);

        // With --seed, nothing to repeat: no seed line.
        let mut seeded = args.clone();
        seeded.extend(["--seed", "7"]);
        let (seeded, seeded_addr) = proxy_process(&seeded).await;
        assert!(
            !seeded
                .lines()
                .iter()
                .any(|line| line.contains("balancer seed")),
            "{}",
            seeded.log()
        );
        assert_eq!(
            sequence(seeded_addr, &addrs, 16).await,
            random_picks(&specs, 7, 16)
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Weighted round robin
// ---------------------------------------------------------------------------

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn effectives(states: &Value) -> Vec<i64> {
    column(states, "effective")
}

fn currents(states: &Value) -> Vec<i64> {
    column(states, "current")
}

fn column(states: &Value, field: &str) -> Vec<i64> {
    states
        .as_array()
        .unwrap_or_else(|| panic!("a list of weight states: {states}"))
        .iter()
        .map(|state| state[field].as_i64().expect("a whole number"))
        .collect()
}

#[tokio::test]
async fn weighted_5_1_1_is_nginx_smooth_table_on_real_servers() {
    bounded(async {
        let servers = real_servers(3).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[5, 1, 1]);
        let proxy = start_proxy(&["--lb", "wrr"], &specs).await;

        // a a b a c a a, twice; each X-Lab-Pick is the table's row.
        let rounds = smooth_wrr_sequence(&[5, 1, 1], 7);
        let mut served = Vec::new();
        for pick in 0..14 {
            let exchange = send(proxy.addr(), explained(probe("/wrr"))).await;
            served.push(served_by(&exchange, &addrs));
            let round = &rounds[pick % 7];
            let explanation = pick_of(&exchange);
            assert_eq!(
                explanation,
                to_json(&Explanation::Weighted {
                    before: round.before.clone(),
                    after: round.after.clone(),
                    total: round.total,
                }),
                "pick {pick}"
            );
            assert_eq!(explanation["algorithm"], "weighted");
        }
        assert_eq!(served, [A, A, B, A, C, A, A, A, A, B, A, C, A, A]);

        // The table by hand, so the answer key is checked too: currentWeight
        // after step 1 (before) and after step 3 (after), total 7.
        let table: [[i64; 6]; 7] = [
            [5, 1, 1, -2, 1, 1],
            [3, 2, 2, -4, 2, 2],
            [1, 3, 3, 1, -4, 3],
            [6, -3, 4, -1, -3, 4],
            [4, -2, 5, 4, -2, -2],
            [9, -1, -1, 2, -1, -1],
            [7, 0, 0, 0, 0, 0],
        ];
        for (round, row) in rounds.iter().zip(table) {
            let current =
                |states: &[WeightState]| -> Vec<i64> { states.iter().map(|s| s.current).collect() };
            let before: Vec<i64> = current(&round.before);
            let after: Vec<i64> = current(&round.after);
            assert_eq!(before, row[..3]);
            assert_eq!(after, row[3..]);
            assert_eq!(round.total, 7);
        }
    })
    .await;
}

#[tokio::test]
async fn weighted_failure_drops_effective_to_0_and_it_climbs_back_one_per_pick() {
    bounded(async {
        let mut servers = real_servers(3).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[5, 1, 1]);
        let proxy = start_proxy(&["--lb", "weighted"], &specs).await;

        // One full cycle with every server up: a a b a c a a.
        let mut served = Vec::new();
        for _ in 0..7 {
            served.push(served_by(&send(proxy.addr(), probe("/wrr")).await, &addrs));
        }
        assert_eq!(served, [A, A, B, A, C, A, A]);

        // a goes down in the middle of the test.
        servers
            .remove(A)
            .shutdown()
            .await
            .expect("real server a stops");

        // Pick by pick (nginx, max_fails = 1): the effective weights that were
        // added in step 1, the currents after step 1 and after step 3, the
        // total, the chosen node, and the effective weights after the pick's
        // recovery (+1 for a node below its weight).
        type Row = ([i64; 3], [i64; 3], i64, Outcome, [i64; 3], [i64; 3]);
        let rows: [Row; 6] = [
            // a is chosen and fails: 502. Its effective drops to 0 afterwards.
            (
                [5, 1, 1],
                [5, 1, 1],
                7,
                BadGateway(A),
                [-2, 1, 1],
                [5, 1, 1],
            ),
            // a adds 0, the others are chosen; a's effective climbs 0 → 1 → 2 → 3.
            ([0, 1, 1], [-2, 2, 2], 2, Served(B), [-2, 0, 2], [1, 1, 1]),
            ([1, 1, 1], [-1, 1, 3], 3, Served(C), [-1, 1, 0], [2, 1, 1]),
            ([2, 1, 1], [1, 2, 1], 4, Served(B), [1, -2, 1], [3, 1, 1]),
            // At 3 a wins again, fails again, and is back to 0.
            (
                [3, 1, 1],
                [4, -1, 2],
                5,
                BadGateway(A),
                [-1, -1, 2],
                [4, 1, 1],
            ),
            ([0, 1, 1], [-1, 0, 3], 2, Served(C), [-1, 0, 1], [1, 1, 1]),
        ];
        for (pick, (effective, before, total, expected, after, recovered)) in
            rows.into_iter().enumerate()
        {
            let exchange = send(proxy.addr(), explained(probe("/wrr"))).await;
            assert_eq!(
                outcome(&exchange, &addrs),
                expected,
                "pick {pick} after the stop"
            );
            // The 502 explains its pick too.
            let explanation = pick_of(&exchange);
            assert_eq!(explanation["algorithm"], "weighted", "pick {pick}");
            assert_eq!(effectives(&explanation["before"]), effective, "pick {pick}");
            assert_eq!(currents(&explanation["before"]), before, "pick {pick}");
            assert_eq!(explanation["total"], total, "pick {pick}");
            assert_eq!(currents(&explanation["after"]), after, "pick {pick}");
            assert_eq!(effectives(&explanation["after"]), recovered, "pick {pick}");
        }

        // Thirty more, against the library's own step and failure rule run
        // beside it from the same state: every failure of a shows at 0 in the
        // next pick, then +1 per pick; b and c serve everything else.
        // The state after the last row: effective 1 1 1, current -1 0 1.
        let mut model: Vec<WeightState> = [5, 1, 1].map(WeightState::new).to_vec();
        for (state, current) in model.iter_mut().zip([-1, 0, 1]) {
            state.effective = 1;
            state.current = current;
        }
        // a's effective in the last row's step 1.
        let mut a_effective_seen = vec![0];
        let mut counts = [0usize; 3];
        let mut a_failed_last = false;
        for pick in 0..30 {
            let exchange = send(proxy.addr(), explained(probe("/wrr"))).await;
            let (chosen, _) = smooth_wrr_step(&mut model).unwrap();
            let got = outcome(&exchange, &addrs);
            let a_effective = effectives(&pick_of(&exchange)["before"])[A];
            if a_failed_last {
                assert_eq!(a_effective, 0, "pick {pick}: a failed just before");
            } else if let Some(last) = a_effective_seen.last() {
                assert_eq!(a_effective, (last + 1).min(5), "pick {pick}: +1 per pick");
            }
            a_effective_seen.push(a_effective);
            assert_eq!(
                currents(&pick_of(&exchange)["after"]),
                model.iter().map(|s| s.current).collect::<Vec<_>>(),
                "pick {pick}"
            );
            if chosen == A {
                assert_eq!(got, BadGateway(A), "pick {pick}");
                lower_effective(&mut model[A], 1);
                counts[A] += 1;
            } else {
                assert_eq!(got, Served(chosen), "pick {pick}");
                counts[chosen] += 1;
            }
            a_failed_last = chosen == A;
        }
        // Healthy, a would get 5 picks in 7 (21 of 30); failing, it keeps
        // being tried (no fail_timeout here) but gets under a third, and b and
        // c, 1 in 7 each when all are up (4 of 30), carry the rest.
        assert!(
            counts[A] >= 1 && 3 * counts[A] <= 30 && counts[B] > 4 && counts[C] > 4,
            "{counts:?}, a's effective {a_effective_seen:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn weighted_10_20_splits_300_requests_exactly_100_200() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let proxy = start_proxy(&["--lb", "wrr"], &specs(&addrs, &[10, 20])).await;
        let mut served = Vec::new();
        for _ in 0..300 {
            served.push(served_by(&send(proxy.addr(), probe("/wrr")).await, &addrs));
        }
        let count = |server| served.iter().filter(|&&s| s == server).count();
        assert_eq!((count(A), count(B)), (100, 200));
        // Smooth: every three picks are b a b, never a run of one server.
        for (i, cycle) in served.chunks(3).enumerate() {
            assert_eq!(cycle, [B, A, B], "cycle {i}");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Consistent hash
// ---------------------------------------------------------------------------

/// Checks an `X-Lab-Pick` of the article's ring against crc32 and the ring
/// computed here, and that the server the ring names answered; returns it.
fn assert_hash_pick(exchange: &Exchange, ring: &Ring, key: &str, addrs: &[SocketAddr]) -> Value {
    let pick = pick_of(exchange);
    let place = ring.place(key);
    assert_eq!(
        served_by(exchange, addrs),
        place.node,
        "{key:?} belongs to {}",
        place.virtual_node
    );
    assert_eq!(
        pick,
        json!({
            "algorithm": "consistent-hash",
            "key": key,
            "hash": crc32fast::hash(key.as_bytes()),
            "virtual_node_hash": place.point,
            "ring_index": place.ring_index,
            "virtual_node": place.virtual_node,
        }),
        "{PICK_HEADER} for {key:?}"
    );
    pick
}

#[tokio::test]
async fn consistent_hash_by_header_sticks_each_user_and_spreads_users() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        // Weight 3 puts 30 virtual nodes on the ring, weight 1 ten.
        let specs = specs(&addrs, &[1, 3]);
        let ring = Ring::article(&addrs, &[1, 3]);
        assert_eq!(ring.points.len(), 40);
        // Two users on each server, as the ring says.
        let users = users_for_each_node(&ring, 2);
        for lb in ["consistent-hash", "hash"] {
            let proxy = start_proxy(&["--lb", lb, "--hash-key", "header:X-User"], &specs).await;
            let mut used = BTreeSet::new();
            for (node, users) in users.iter().enumerate() {
                for user in users {
                    // Every request a new connection (the probe opens one).
                    for i in 0..20 {
                        let request = probe("/hash").header("X-User", user);
                        let exchange = if i == 0 {
                            let exchange = send(proxy.addr(), explained(request)).await;
                            assert_hash_pick(&exchange, &ring, user, &addrs);
                            exchange
                        } else {
                            send(proxy.addr(), request).await
                        };
                        assert_eq!(
                            served_by(&exchange, &addrs),
                            node,
                            "--lb {lb}: {user} sticks to its server (request {i})"
                        );
                        used.insert(node);
                    }
                }
            }
            assert_eq!(used.len(), 2, "different users spread over both servers");

            // No X-User: the empty key, crc32("") = 0, the first virtual node.
            let exchange = send(proxy.addr(), explained(probe("/hash"))).await;
            let pick = assert_hash_pick(&exchange, &ring, "", &addrs);
            assert_eq!((&pick["hash"], &pick["ring_index"]), (&json!(0), &json!(0)));

            // A key past the last virtual node wraps round to the first.
            let last = ring.points.last().unwrap().0;
            let wraps = (0..)
                .map(|n| format!("wrap-{n}"))
                .find(|key| crc32fast::hash(key.as_bytes()) > last)
                .unwrap();
            let request = explained(probe("/hash").header("X-User", &wraps));
            let pick = assert_hash_pick(&send(proxy.addr(), request).await, &ring, &wraps, &addrs);
            assert_eq!(pick["ring_index"], 0, "{pick}");
        }
    })
    .await;
}

#[tokio::test]
async fn consistent_hash_remote_addr_moves_with_each_connection_remote_ip_sticks() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[1, 1]);
        let ring = Ring::article(&addrs, &[1, 1]);
        let by_addr = start_proxy(&["--lb", "hash", "--hash-key", "remote-addr"], &specs).await;
        let by_ip = start_proxy(&["--lb", "hash", "--hash-key", "remote-ip"], &specs).await;
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);

        // The article's key, IP:port. One client (127.0.0.1) from two source
        // ports that the ring sends to different servers (chosen below the
        // ephemeral range, from the ring's answers): the same client, two
        // servers. Then with remote-ip, the same two ports, one server.
        let mut from_port = [None, None];
        let mut port = 20_000u16;
        while from_port.iter().any(Option::is_none) {
            assert!(port < 32_000, "no free source port for each server");
            let from = SocketAddr::new(localhost, port);
            let node = node_of(&ring, &from.to_string());
            if from_port[node].is_none()
                && let Some(exchange) =
                    send_from(from, by_addr.addr(), explained(probe("/addr"))).await
            {
                assert_hash_pick(&exchange, &ring, &from.to_string(), &addrs);
                assert_eq!(served_by(&exchange, &addrs), node);
                from_port[node] = Some(port);
            }
            port += 1;
        }
        let ip_node = node_of(&ring, "127.0.0.1");
        for port in from_port.into_iter().flatten() {
            // The same source port again, now to the remote-ip proxy (a new
            // connection: the one to by_addr is closed).
            let from = SocketAddr::new(localhost, port);
            let exchange = send_from(from, by_ip.addr(), explained(probe("/ip")))
                .await
                .unwrap_or_else(|| panic!("cannot connect from {from} again"));
            assert_hash_pick(&exchange, &ring, "127.0.0.1", &addrs);
            assert_eq!(served_by(&exchange, &addrs), ip_node, "from {from}");
        }

        // Ordinary connections (the kernel's ports): remote-addr follows each
        // connection's port, remote-ip stays on one server.
        for i in 0..20 {
            let exchange = send(by_addr.addr(), explained(probe("/addr"))).await;
            let key = exchange.local_addr.to_string();
            assert_hash_pick(&exchange, &ring, &key, &addrs);
            assert_eq!(served_by(&exchange, &addrs), node_of(&ring, &key), "{i}");

            let exchange = send(by_ip.addr(), explained(probe("/ip"))).await;
            assert_hash_pick(&exchange, &ring, "127.0.0.1", &addrs);
            assert_eq!(served_by(&exchange, &addrs), ip_node, "{i}");
        }

        // remote-ip is the client's address, not a constant: another loopback
        // client the ring places on the other server goes there.
        let other = (2..=254)
            .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            .find(|ip| node_of(&ring, &ip.to_string()) != ip_node)
            .expect("a loopback address on the other server");
        let exchange = send_from(
            SocketAddr::new(other, 0),
            by_ip.addr(),
            explained(probe("/ip")),
        )
        .await
        .unwrap_or_else(|| panic!("cannot connect from {other}"));
        assert_hash_pick(&exchange, &ring, &other.to_string(), &addrs);
        assert_eq!(served_by(&exchange, &addrs), 1 - ip_node, "from {other}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Every algorithm
// ---------------------------------------------------------------------------

/// The `--lb` flags of every algorithm (random seeded, hashing X-User).
const ALGORITHMS: [(Algorithm, &[&str]); 4] = [
    (Algorithm::Random, &["--lb", "random", "--seed", "42"]),
    (Algorithm::RoundRobin, &["--lb", "round-robin"]),
    (Algorithm::Weighted, &["--lb", "weighted"]),
    (
        Algorithm::ConsistentHash,
        &["--lb", "consistent-hash", "--hash-key", "header:X-User"],
    ),
];

/// Two real servers (weights 2 and 3), a proxy with `flags`, then server b
/// stops. Every request is predicted by the same balancer built beside the
/// proxy and told of the same failures.
async fn survives_an_upstream_going_down(algorithm: Algorithm, flags: &[&str]) {
    let mut servers = real_servers(2).await;
    let addrs = addrs_of(&servers);
    let specs = specs(&addrs, &[2, 3]);
    let proxy = start_proxy(flags, &specs).await;
    let config = BalancerConfig {
        algorithm,
        seed: 42,
        ..BalancerConfig::default()
    };
    let model = balance::build(nodes(&specs), &config);
    // Consistent hash: users on each server; the others ignore the header.
    let users: Vec<String> = users_for_each_node(&Ring::article(&addrs, &[2, 3]), 3)
        .into_iter()
        .flatten()
        .collect();

    let mut outcomes = Vec::new();
    for i in 0..36 {
        if i == 12 {
            servers
                .remove(B)
                .shutdown()
                .await
                .expect("real server b stops");
        }
        let user = &users[i % users.len()];
        let exchange = send(proxy.addr(), probe("/down").header("X-User", user)).await;
        let expected = model
            .pick(&PickInput {
                key: Some(user),
                explain: false,
            })
            .unwrap()
            .index;
        let got = outcome(&exchange, &addrs);
        if i < 12 {
            assert_eq!(got, Served(expected), "{algorithm}: request {i}, both up");
        } else if expected == B {
            assert_eq!(got, BadGateway(B), "{algorithm}: request {i}, b is down");
            model.report_failure(B);
        } else {
            assert_eq!(got, Served(A), "{algorithm}: request {i}, a is up");
        }
        outcomes.push(got);
    }
    for wanted in [Served(A), Served(B), BadGateway(B)] {
        assert!(
            outcomes.contains(&wanted),
            "{algorithm}: no {wanted:?} in {outcomes:?}"
        );
    }
    assert!(
        outcomes[12..].contains(&Served(A)),
        "{algorithm}: a keeps serving after b stopped: {outcomes:?}"
    );
    // The proxy itself is fine: a's users (and round robin's next turn to a)
    // are still served.
    let mut still = false;
    for user in &users {
        let exchange = send(proxy.addr(), probe("/after").header("X-User", user)).await;
        still |= outcome(&exchange, &addrs) == Served(A);
    }
    assert!(still, "{algorithm}: the proxy keeps serving");
}

#[tokio::test]
async fn random_survives_an_upstream_going_down() {
    let (algorithm, flags) = ALGORITHMS[0];
    bounded(survives_an_upstream_going_down(algorithm, flags)).await;
}

#[tokio::test]
async fn round_robin_survives_an_upstream_going_down() {
    let (algorithm, flags) = ALGORITHMS[1];
    bounded(survives_an_upstream_going_down(algorithm, flags)).await;
}

#[tokio::test]
async fn weighted_survives_an_upstream_going_down() {
    let (algorithm, flags) = ALGORITHMS[2];
    bounded(survives_an_upstream_going_down(algorithm, flags)).await;
}

#[tokio::test]
async fn consistent_hash_survives_an_upstream_going_down() {
    let (algorithm, flags) = ALGORITHMS[3];
    bounded(survives_an_upstream_going_down(algorithm, flags)).await;
}

#[tokio::test]
async fn x_lab_explain_is_never_forwarded_and_no_pick_without_it() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[1, 1]);
        for (algorithm, flags) in ALGORITHMS {
            let proxy = start_proxy(flags, &specs).await;
            for explain in [None, Some("1"), Some("yes")] {
                let mut request = probe("/explain").header("X-User", "someone");
                if let Some(value) = explain {
                    // Twice, in another case: still one request to explain.
                    request = request
                        .header("X-Lab-Explain", value)
                        .header("x-lab-EXPLAIN", value);
                }
                let exchange = send(proxy.addr(), request).await;
                served_by(&exchange, &addrs);
                let echo = exchange.json_echo().unwrap();
                assert_eq!(
                    echo.header_values(EXPLAIN_HEADER.as_str()),
                    Vec::<&str>::new(),
                    "{algorithm}: X-Lab-Explain never reaches the upstream: {:?}",
                    echo.headers
                );
                assert_eq!(
                    echo.header_values("x-user"),
                    ["someone"],
                    "{algorithm}: other headers do"
                );
                match explain {
                    None => assert_no_pick(&exchange, algorithm.name()),
                    Some(_) => assert_eq!(pick_of(&exchange)["algorithm"], algorithm.name()),
                }
            }
            // Nor on a 502: no explanation unless asked.
            let dead = dead_port();
            let down = start_proxy(flags, &[format!("{},1", base(dead))]).await;
            let exchange = send(down.addr(), probe("/explain")).await;
            assert_eq!(exchange.status, StatusCode::BAD_GATEWAY);
            assert_eq!(header_of(&exchange, UPSTREAM_HEADER.as_str()), base(dead));
            assert_no_pick(&exchange, "a 502");
            let exchange = send(down.addr(), explained(probe("/explain"))).await;
            assert_eq!(exchange.status, StatusCode::BAD_GATEWAY);
            assert_eq!(pick_of(&exchange)["algorithm"], algorithm.name());
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Bad flags
// ---------------------------------------------------------------------------

#[tokio::test]
async fn binary_rejects_bad_balancer_flags_with_usage_errors() {
    bounded(async {
        let (code, stderr) = refused(&["--lb", "nope"]).await;
        assert_eq!(code, Some(2), "{stderr}");
        for word in [
            "'nope'",
            "--lb",
            "possible values",
            "random",
            "round-robin",
            "weighted",
            "consistent-hash",
        ] {
            assert!(stderr.contains(word), "{word:?} in:\n{stderr}");
        }

        for (spec, why) in [
            ("http://x/base,0", "weight 0 would never be chosen"),
            ("http://x/base,abc", "weight \"abc\" is not a whole number"),
        ] {
            let (code, stderr) = refused(&["--upstream", spec]).await;
            assert_eq!(code, Some(2), "{stderr}");
            for word in [
                spec,
                "--upstream",
                why,
                "a weight is a whole number from 1 to 10000",
            ] {
                assert!(stderr.contains(word), "{spec}: {word:?} in:\n{stderr}");
            }
        }

        let (code, stderr) = refused(&["--hash-key", "cookie:x"]).await;
        assert_eq!(code, Some(2), "{stderr}");
        for word in [
            "--hash-key",
            "unknown hash key \"cookie:x\"",
            "remote-ip, remote-addr, header:NAME, path or query:NAME",
        ] {
            assert!(stderr.contains(word), "{word:?} in:\n{stderr}");
        }
    })
    .await;
}

//! What every balancer must do: survive an upstream going down, never
//! forward `X-Lab-Explain` nor explain a pick unasked, and refuse bad flags
//! with usage errors.

use super::{
    A, B, BadGateway, Ring, Served, addrs_of, assert_no_pick, explained, nodes, outcome, pick_of,
    probe, served_by, specs, start_proxy, users_for_each_node,
};
use crate::common::bounded;
use crate::common::client::{header_of, send};
use crate::common::process::{PROXY_AT, run_lab};
use crate::common::servers::{base, dead_port, real_servers};
use http::StatusCode;
use lab::balance::{self, Algorithm, BalancerConfig, PickInput};
use lab::lab_headers::{EXPLAIN_HEADER, UPSTREAM_HEADER};

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

//! Random (随机负载均衡): a seeded sequence repeats through separate
//! proxies, and the binary logs the seed that repeats its own.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::{addrs_of, direct, explained, nodes, pick_of, probe, served_by, specs, start_proxy};
use crate::common::bounded;
use crate::common::client::send;
use crate::common::process::proxy_process;
use crate::common::servers::real_servers;
use lab::balance::{Balancer, PickInput, RandomBalancer};

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

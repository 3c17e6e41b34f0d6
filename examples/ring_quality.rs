//! Consistent-hash quality, as figures: the memory of a large ring, how
//! evenly 100 000 keys spread, and how many keys move when an upstream is
//! added or removed — for the article's ring and nginx's, at 10 and 160
//! replicas. Run: `cargo run --release --example ring_quality`.

use std::time::Instant;

use lab::balance::{Balancer, ConsistentHashBalancer, Node, PickInput, RingPoints};

const KEYS: usize = 100_000;

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let url = format!("http://10.0.{}.{}:8080/base", i / 250, i % 250 + 1);
            lab::balance::parse_upstream_spec(&url).expect("a valid upstream")
        })
        .collect()
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("user-{i}")).collect()
}

/// Which node each key goes to.
fn owners(ring: &ConsistentHashBalancer, keys: &[String]) -> Vec<usize> {
    keys.iter()
        .map(|key| {
            ring.pick(&PickInput {
                key: Some(key),
                explain: false,
            })
            .expect("a non-empty ring")
            .index
        })
        .collect()
}

/// max/mean and the standard deviation (as a fraction of the mean) of keys per node.
fn spread(owners: &[usize], n: usize) -> (f64, f64) {
    let mut counts = vec![0f64; n];
    for &o in owners {
        counts[o] += 1.0;
    }
    let mean = owners.len() as f64 / n as f64;
    let max = counts.iter().cloned().fold(0.0, f64::max);
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / n as f64;
    (max / mean, var.sqrt() / mean)
}

fn main() {
    let keys = keys();
    println!("# Consistent-hash ring quality ({KEYS} keys)\n");
    println!(
        "| ring | upstreams | replicas | max/mean | std dev / mean | moved when one is added (ideal 1/(N+1)) | moved when one is removed (ideal 1/N) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for points in [RingPoints::Article, RingPoints::Nginx] {
        for n in [10usize, 100] {
            for replicas in [10usize, 160] {
                let ring = ConsistentHashBalancer::with_points(nodes(n), replicas, points);
                let before = owners(&ring, &keys);
                let (max_mean, std_dev) = spread(&before, n);
                let grown = ConsistentHashBalancer::with_points(nodes(n + 1), replicas, points);
                let after_add = owners(&grown, &keys);
                let added = before
                    .iter()
                    .zip(&after_add)
                    .filter(|(a, b)| a != b)
                    .count();
                let shrunk = ConsistentHashBalancer::with_points(nodes(n - 1), replicas, points);
                let after_remove = owners(&shrunk, &keys);
                let removed = before
                    .iter()
                    .zip(&after_remove)
                    .filter(|(a, b)| a != b)
                    .count();
                println!(
                    "| {points:?} | {n} | {replicas} | {max_mean:.2} | {std_dev:.2} | {:.3} ({:.3}) | {:.3} ({:.3}) |",
                    added as f64 / KEYS as f64,
                    1.0 / (n + 1) as f64,
                    removed as f64 / KEYS as f64,
                    1.0 / n as f64,
                );
            }
        }
    }

    // Memory: the ring keeps a u32 hash and a small owner record per point.
    let started = Instant::now();
    let big = ConsistentHashBalancer::with_points(nodes(1000), 160, RingPoints::Article);
    let built = started.elapsed();
    println!(
        "\nRing of 1000 upstreams × 160 replicas: {} points, {:.2} MiB, built in {:.1} ms.",
        big.ring_len(),
        big.ring_bytes() as f64 / (1024.0 * 1024.0),
        built.as_secs_f64() * 1000.0
    );
}

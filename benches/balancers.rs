//! How long one pick takes, per algorithm and number of upstreams.
//!
//! ```text
//! cargo bench --bench balancers -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! - `pick/ALGORITHM/N`: one thread, N upstreams, no explanation, through
//!   `build()`'s `Arc<dyn Balancer>` as the proxy calls it. Consistent hash
//!   uses 160 replicas (nginx's), so N = 100 is a ring of 16,000 points.
//! - `two-threads/ALGORITHM/N`: two threads picking at once from one
//!   balancer; the time is wall time per pick *of each thread*. A lock-free
//!   balancer should stay near its single-thread figure; the weighted one
//!   shows what its lock costs under contention.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lab::balance::{
    Algorithm, Balancer, BalancerConfig, Node, PickInput, build, parse_upstream_spec,
};

const SIZES: [usize; 4] = [2, 10, 100, 1000];
const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Random,
    Algorithm::RoundRobin,
    Algorithm::Weighted,
    Algorithm::ConsistentHash,
];

/// `n` upstreams with weights 1..=5, so weighted round robin has work to do.
fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let spec = format!(
                "http://10.0.{}.{}:2003/base,{}",
                i / 256,
                i % 256,
                1 + i % 5
            );
            parse_upstream_spec(&spec).expect("a valid upstream spec")
        })
        .collect()
}

fn balancer(algorithm: Algorithm, n: usize) -> Arc<dyn Balancer> {
    let config = BalancerConfig {
        algorithm,
        seed: 2021,
        replicas: 160,
        ..BalancerConfig::default()
    };
    let mut nodes = nodes(n);
    if algorithm == Algorithm::ConsistentHash {
        // Weight multiplies a node's virtual nodes; keep the ring at
        // exactly N × 160 points.
        for node in &mut nodes {
            node.weight = 1;
        }
    }
    build(nodes, &config)
}

/// Client IPs, as the default `--hash-key remote-ip` makes them.
fn keys() -> Vec<String> {
    (0..1024)
        .map(|i| format!("192.168.{}.{}", i / 256, i % 256))
        .collect()
}

/// `iters` picks; consistent hash gets a different key each time.
fn picks(balancer: &dyn Balancer, keys: &[String], iters: u64) {
    let mask = keys.len() - 1;
    for i in 0..iters as usize {
        let input = PickInput {
            key: Some(&keys[i & mask]),
            explain: false,
        };
        black_box(balancer.pick(black_box(&input)));
    }
}

fn single_thread(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("pick");
    for algorithm in ALGORITHMS {
        for n in SIZES {
            let balancer = balancer(algorithm, n);
            group.bench_with_input(BenchmarkId::new(algorithm.name(), n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    picks(balancer.as_ref(), &keys, iters);
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("two-threads");
    for algorithm in ALGORITHMS {
        for n in [10, 100] {
            let balancer = balancer(algorithm, n);
            group.bench_with_input(BenchmarkId::new(algorithm.name(), n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..2 {
                            s.spawn(|| picks(balancer.as_ref(), &keys, iters));
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = single_thread, two_threads
}
criterion_main!(benches);

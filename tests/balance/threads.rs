//! `lab proxy --threads N` as a process: N workers, each with its own
//! runtime and SO_REUSEPORT listener, share one balancer, so smooth
//! weighted round robin keeps its exact sequence across threads; and a
//! second proxy on the same port is refused, not let in to share it.

use super::{A, B, Served, addrs_of, outcome, probe, specs};
use crate::common::bounded;
use crate::common::client::send;
use crate::common::process::{proxy_process, run_lab};
use crate::common::servers::real_servers;

/// The names of the process's threads (`/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn workers_share_one_smooth_weighted_sequence() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let mut argv = vec!["--threads", "2", "--lb", "wrr"];
        let upstreams = specs(&addrs, &[1, 2]);
        for spec in &upstreams {
            argv.extend(["--upstream", spec.as_str()]);
        }
        let (process, proxy) = proxy_process(&argv).await;
        // Each request on a connection of its own: the kernel spreads them
        // over both workers' listeners, and the picks still run b a b ….
        let mut served = Vec::new();
        for _ in 0..30 {
            served.push(outcome(&send(proxy, probe("/threads")).await, &addrs));
        }
        let expected: Vec<_> = [Served(B), Served(A), Served(B)].repeat(10);
        assert_eq!(served, expected);
        let names = thread_names(process.pid());
        for worker in ["lab-worker-1", "lab-worker-2"] {
            assert!(names.iter().any(|n| n == worker), "{names:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_second_proxy_on_the_same_port_is_refused() {
    bounded(async {
        let servers = real_servers(1).await;
        let upstream = specs(&addrs_of(&servers), &[1]);
        let (_first, addr) =
            proxy_process(&["--threads", "2", "--upstream", upstream[0].as_str()]).await;
        let listen = addr.to_string();
        let (status, stderr) = run_lab(&[
            "proxy",
            "--threads",
            "2",
            "--listen",
            listen.as_str(),
            "--upstream",
            upstream[0].as_str(),
        ])
        .await;
        assert!(!status.success());
        assert!(
            stderr.contains(&format!("port {} is already in use", addr.port())),
            "{stderr}"
        );
    })
    .await;
}

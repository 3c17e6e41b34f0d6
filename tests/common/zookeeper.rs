//! A real ZooKeeper for the integration tests, started through `lab zk up`
//! (so the command itself is tested) on a free loopback port.
//!
//! Debian's `zookeeper` package may be missing on a developer's machine:
//! then a test prints why it is skipped and returns, unless
//! `LAB_REQUIRE_ZOOKEEPER=1` (set by CI), where a missing package fails it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use lab::zk::{ChildrenWatch, Members, ZkUrl};

use super::process::{LabProcess, realserver_process};

/// What a skipped test prints.
pub const SKIPPED: &str = "skipped: ZooKeeper is not installed (sudo apt-get install zookeeper)";

/// The mark before the address in `lab zk up`'s ready line.
pub const READY: &str = "ZooKeeper ready at zk://";

/// Whether ZooKeeper tests can run here. Missing package: panics under
/// `LAB_REQUIRE_ZOOKEEPER=1`, otherwise prints [`SKIPPED`] and says no.
pub fn available() -> bool {
    if lab::zk::server::is_installed() {
        return true;
    }
    if std::env::var("LAB_REQUIRE_ZOOKEEPER").is_ok_and(|v| v == "1") {
        panic!(
            "LAB_REQUIRE_ZOOKEEPER=1 but {} is missing: sudo apt-get install zookeeper",
            lab::zk::server::ZK_SERVER_SCRIPT
        );
    }
    eprintln!("{SKIPPED}");
    false
}

/// A running `lab zk up`.
pub struct Zk {
    pub process: LabProcess,
    pub addr: SocketAddr,
    /// Its temp dir (config and data), which must be gone after it stops.
    pub dir: PathBuf,
}

impl Zk {
    /// `lab zk up --listen 127.0.0.1:0` (a free port, chosen by lab), ready;
    /// `None` when the test is to be skipped.
    pub async fn start() -> Option<Zk> {
        if !available() {
            return None;
        }
        let mut process = LabProcess::spawn(&["zk", "up", "--listen", "127.0.0.1:0"]);
        let line = process.wait_for("(removed when it stops)").await;
        let dir = line
            .split_once("config and data: ")
            .and_then(|(_, rest)| rest.split_once(" (removed"))
            .map(|(dir, _)| PathBuf::from(dir))
            .unwrap_or_else(|| panic!("no temp dir in {line:?}"));
        let addr = process.addr_after(READY).await;
        Some(Zk { process, addr, dir })
    }

    /// `zk://ADDR/PATH` on this server.
    pub fn url(&self, path: &str) -> ZkUrl {
        format!("zk://{}{path}", self.addr)
            .parse()
            .unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    /// SIGTERM, and the exit (bounded).
    pub async fn stop(mut self) -> ExitStatus {
        self.process.terminate().await
    }
}

/// `lab realserver --addr 127.0.0.1:0 --register URL EXTRA…`, once it has
/// registered: the process and its address.
pub async fn registered_realserver(url: &ZkUrl, extra: &[&str]) -> (LabProcess, SocketAddr) {
    let url = url.to_string();
    let mut args = vec!["--register", url.as_str()];
    args.extend_from_slice(extra);
    let (mut lab, addr) = realserver_process("127.0.0.1:0", &args).await;
    lab.wait_for(&format!("registered {addr} in ZooKeeper"))
        .await;
    (lab, addr)
}

/// Waits (at most `within`) until the watched set satisfies `ok`; returns it.
pub async fn wait_members(
    watch: &mut ChildrenWatch,
    within: Duration,
    what: &str,
    mut ok: impl FnMut(&Members) -> bool,
) -> Members {
    let last = watch.current();
    let found = tokio::time::timeout(within, watch.receiver().wait_for(|m| ok(m)))
        .await
        .map(|result| result.map(|members| members.clone()));
    match found {
        Ok(Ok(members)) => members,
        Ok(Err(_)) => panic!("the watch stopped while waiting for {what}"),
        Err(_) => panic!(
            "{what}: not within {within:?}; the set is {:?} (was {last:?})",
            watch.current()
        ),
    }
}

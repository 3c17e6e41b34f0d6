//! What the integration tests share, one file per idea:
//!
//! - [`process`]: the `lab` binary as a child process, its log read line by
//!   line, and curl;
//! - [`servers`]: real servers and proxies served by this process, and a
//!   port nothing listens on;
//! - [`client`]: requests through `lab::probe` and what to read from their
//!   answers;
//! - [`wire`]: raw HTTP/1.1 on a socket: bytes written by hand, responses
//!   and chunked bodies read back strictly;
//! - [`labs`]: a private copy of the checkout's `labs/`;
//! - [`zookeeper`]: a real ZooKeeper, started through `lab zk up`;
//! - [`namespaces`]: what `lab transparent` needs, and what it must not leave;
//! - [`screen`]: a screen at a fixed width (`COLUMNS`), and what must hold there.
//!
//! Every test module shares this process, so a helper never changes it for
//! the others: a child process gets its environment through its `Command`,
//! servers bind 127.0.0.1 port 0, files go to temporary directories.

pub mod client;
pub mod go;
pub mod labs;
pub mod namespaces;
pub mod process;
pub mod screen;
pub mod servers;
pub mod wire;
pub mod zookeeper;

use std::future::Future;
use std::time::Duration;

/// The longest any single step of a test may wait.
pub const STEP: Duration = Duration::from_secs(15);

/// The longest a whole test may take by default: a hang anywhere fails it by then.
pub const TEST_LIMIT: Duration = Duration::from_secs(28);

/// Runs a test's body under [`TEST_LIMIT`].
pub async fn bounded(test: impl Future<Output = ()>) {
    bounded_by(TEST_LIMIT, test).await;
}

/// Runs a test's body under `limit`.
pub async fn bounded_by(limit: Duration, test: impl Future<Output = ()>) {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"));
}

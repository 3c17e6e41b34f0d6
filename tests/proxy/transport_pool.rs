//! The Transport of step 7: one pooled upstream connection reused across
//! client connections, and `--max-idle-per-host 0` for a connection per
//! request.

use std::net::SocketAddr;
use std::time::Duration;

use super::start_proxy;
use crate::common::bounded;
use crate::common::client::json_echo;
use crate::common::servers::real_server;
use lab::probe::Probe;

/// The real server's view of five sequential requests, each from a new
/// client connection: the port the proxy's upstream connection came from.
async fn upstream_ports(proxy: SocketAddr) -> Vec<u16> {
    let mut ports = Vec::new();
    for _ in 0..5 {
        let (_, report) = json_echo(proxy, Probe::get("/pool")).await;
        let peer: SocketAddr = report.remote_addr.parse().expect("RemoteAddr");
        ports.push(peer.port());
        // Let the finished connection go back to the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ports
}

#[tokio::test]
async fn the_pool_reuses_one_upstream_connection() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        let ports = upstream_ports(proxy.addr).await;
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
    })
    .await;
}

#[tokio::test]
async fn max_idle_per_host_0_opens_a_connection_per_request() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--max-idle-per-host", "0"],
        )
        .await;
        let ports = upstream_ports(proxy.addr).await;
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    })
    .await;
}

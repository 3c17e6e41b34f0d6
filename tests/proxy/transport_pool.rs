//! The Transport of step 7: one pooled upstream connection reused across
//! client connections, and `--max-idle-per-host 0` for a connection per
//! request.

use std::net::SocketAddr;
use std::time::Duration;

use super::start_proxy;
use crate::common::bounded;
use crate::common::client::json_echo;
use crate::common::servers::OneShotUpstream;
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

/// Ten GETs one after the other through a proxy in front of the one-shot
/// upstream: every one after the first goes out on the pooled connection
/// the upstream is about to close, and must still come back 200.
async fn ten_gets_through(flags: &[&str]) -> (Vec<u16>, usize) {
    let upstream = OneShotUpstream::start(Duration::from_millis(300)).await;
    let proxy = start_proxy(&format!("http://{}/", upstream.addr), flags).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let exchange = crate::common::client::get(proxy.addr, "/again").await;
        statuses.push(exchange.status.as_u16());
    }
    (statuses, upstream.requests())
}

#[tokio::test]
async fn a_get_on_a_closed_pooled_connection_is_retried_on_a_fresh_one() {
    bounded(async {
        let (statuses, requests) = ten_gets_through(&[]).await;
        assert_eq!(
            statuses, [200; 10],
            "RFC 9112 §9.3.1: an idempotent request may be retried"
        );
        // Each of the nine went out twice: unanswered, then answered.
        assert_eq!(
            requests, 10,
            "the upstream read every answered request once"
        );
    })
    .await;
}

#[tokio::test]
async fn like_go_retries_as_gos_transport_does() {
    bounded(async {
        let (statuses, _) = ten_gets_through(&["--like-go"]).await;
        assert_eq!(statuses, [200; 10]);
    })
    .await;
}

/// A POST is not idempotent: it went out, the upstream may have acted on
/// it, so it is never sent again (RFC 9110 §9.2.2; Go's `isReplayable`).
/// Go retries a POST that carries an `Idempotency-Key`.
#[tokio::test]
async fn a_post_on_a_closed_pooled_connection_is_not_retried_without_an_idempotency_key() {
    bounded(async {
        for flags in [&[][..], &["--like-go"][..]] {
            let upstream = OneShotUpstream::start(Duration::from_millis(300)).await;
            let proxy = start_proxy(&format!("http://{}/", upstream.addr), flags).await;
            let first = crate::common::client::get(proxy.addr, "/first").await;
            assert_eq!(first.status, 200);
            let post = lab::probe::Probe::get("/post").method(http::Method::POST);
            let refused = crate::common::client::send(proxy.addr, post.clone()).await;
            assert_eq!(refused.status, 502, "{flags:?}: {}", refused.text());
            assert_eq!(upstream.requests(), 1, "{flags:?}");

            crate::common::client::get(proxy.addr, "/again").await;
            let keyed = post.header("Idempotency-Key", "k1");
            let answer = crate::common::client::send(proxy.addr, keyed).await;
            let expected = if flags.is_empty() { 502 } else { 200 };
            assert_eq!(answer.status, expected, "{flags:?}: {}", answer.text());
        }
    })
    .await;
}

//! The Transport of step 7: one pooled upstream connection reused across
//! client connections, `--max-idle-per-host 0` for a connection per
//! request, `--idle-timeout`, a connection never returned when its client
//! left mid-body, and no request lost when the upstream closed a pooled
//! connection.

use std::net::SocketAddr;
use std::time::Duration;

use super::start_proxy;
use crate::common::bounded;
use crate::common::client::json_echo;
use crate::common::servers::real_server;
use crate::common::servers::{CountingUpstream, OneShotUpstream};
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

/// Waits up to `limit` for `done`, looking every 20 ms.
async fn until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// `--idle-timeout`: an idle pooled connection is closed once it has waited
/// that long, with no request needed to notice; before that, it is reused.
#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    bounded(async {
        let upstream = CountingUpstream::start().await;
        let url = format!("http://{}/", upstream.addr);
        let proxy = start_proxy(&url, &["--idle-timeout", "1s"]).await;
        assert_eq!(
            crate::common::client::get(proxy.addr, "/a").await.status,
            200
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            crate::common::client::get(proxy.addr, "/b").await.status,
            200
        );
        assert_eq!(upstream.accepted(), 1, "reused within the timeout");
        assert_eq!(upstream.closed(), 0);
        assert!(
            until(Duration::from_secs(4), || upstream.closed() == 1).await,
            "the idle connection was not closed within 4 s of a 1 s idle timeout"
        );
        assert_eq!(
            crate::common::client::get(proxy.addr, "/c").await.status,
            200
        );
        assert_eq!(upstream.accepted(), 2, "a new connection after the timeout");
    })
    .await;
}

/// A client that leaves in the middle of a response body: the rest of that
/// response is still on the upstream connection, so it is closed, not
/// pooled; the next request gets a connection of its own.
#[tokio::test]
async fn a_connection_whose_client_left_mid_body_is_not_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded(async {
        let upstream = CountingUpstream::start().await;
        let proxy = start_proxy(&format!("http://{}/", upstream.addr), &[]).await;
        let mut client = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        client
            .write_all(b"GET /big HTTP/1.1\r\nHost: lab\r\n\r\n")
            .await
            .unwrap();
        let mut some = vec![0u8; 16384];
        let n = client.read(&mut some).await.unwrap();
        assert!(
            some[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            &some[..n.min(40)]
        );
        drop(client);
        assert!(
            until(Duration::from_secs(5), || upstream.closed() == 1).await,
            "the proxy kept the abandoned response's connection open"
        );
        let next = crate::common::client::get(proxy.addr, "/next").await;
        assert_eq!(next.status, 200, "{}", next.text());
        assert_eq!(
            upstream.accepted(),
            2,
            "the next request had a fresh connection"
        );
    })
    .await;
}

/// An upstream that closes each connection 50 ms after answering (its own
/// idle timeout, shorter than the proxy's): the pool finds the closed
/// connection before writing to it and opens another, so every request,
/// a POST too, reaches the upstream once and is answered.
#[tokio::test]
async fn no_request_is_lost_when_the_upstream_closed_an_idle_connection() {
    bounded(async {
        let upstream = OneShotUpstream::start(Duration::from_millis(50)).await;
        let proxy = start_proxy(&format!("http://{}/", upstream.addr), &[]).await;
        let mut statuses = Vec::new();
        for i in 0..6 {
            let probe = if i % 2 == 0 {
                Probe::get("/get")
            } else {
                Probe::get("/post").method(http::Method::POST)
            };
            statuses.push(
                crate::common::client::send(proxy.addr, probe)
                    .await
                    .status
                    .as_u16(),
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(statuses, [200; 6]);
        assert_eq!(
            upstream.requests(),
            6,
            "each request reached the upstream once"
        );
    })
    .await;
}

/// Back to back, with no pause for the connection to settle: each request
/// takes the connection the previous one just gave back (the pool's
/// newest), so twenty requests make one upstream connection.
#[tokio::test]
async fn back_to_back_requests_share_one_connection() {
    bounded(async {
        let upstream = CountingUpstream::start().await;
        let proxy = start_proxy(&format!("http://{}/", upstream.addr), &[]).await;
        for _ in 0..20 {
            assert_eq!(
                crate::common::client::get(proxy.addr, "/x").await.status,
                200
            );
        }
        assert_eq!(upstream.requests(), 20);
        assert_eq!(upstream.accepted(), 1);
    })
    .await;
}

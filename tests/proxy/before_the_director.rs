//! Steps 1 to 3, before an upstream is chosen: a client that leaves cancels
//! the upstream request (Go's CloseNotify), CONNECT is a forward proxy's job
//! (405), and a request that already passed through this proxy is a loop
//! (508).

use std::time::Duration;

use super::{
    Answer, RecordingUpstream, Seen, assert_names_upstream, proxy_args, serve_proxy, start_proxy,
};
use crate::common::bounded;
use crate::common::client::send;
use crate::common::servers::real_server;
use crate::common::wire::{raw_exchange, values_of};
use http::StatusCode;
use lab::probe::Probe;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn a_client_that_leaves_closes_the_upstream_request() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(|_| Answer::Silence).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
        client
            .write_all(b"GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let seen = upstream.request().await;
        assert_eq!(seen.target(), "/base/hang");

        drop(client);
        let closed = tokio::time::timeout(Duration::from_secs(5), upstream.seen.recv())
            .await
            .expect("the upstream connection closes within 5 s of the client leaving");
        assert!(matches!(closed, Some(Seen::Closed)), "{closed:?}");
    })
    .await;
}

#[tokio::test]
async fn connect_to_the_reverse_proxy_is_405_pointing_to_lab_forward() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(&format!("http://{}", server.addr()), &[]).await;
        let request = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", server.addr());
        let (response, _) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 405);
        assert!(!values_of(&response.headers, "allow").is_empty());
        assert!(String::from_utf8_lossy(&response.body).contains("lab forward"));
    })
    .await;
}

#[tokio::test]
async fn a_proxy_pointed_at_itself_answers_508() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let upstream = format!("http://{addr}/base");
        let _proxy = serve_proxy(listener, &proxy_args(&upstream, &[])).await;
        let exchange = send(addr, Probe::get("/abc")).await;
        assert_eq!(
            exchange.status,
            StatusCode::LOOP_DETECTED,
            "{}",
            exchange.text()
        );
        assert!(
            exchange.text().contains("--upstream"),
            "{}",
            exchange.text()
        );
        assert_names_upstream(&exchange, &upstream);
    })
    .await;
}

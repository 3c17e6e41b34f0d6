//! Steps 5 and 9, hop-by-hop headers: what belongs to the client's hop
//! (`Connection` and the headers it names, `Keep-Alive`, `Proxy-*`, …)
//! never reaches the upstream, what belongs to the upstream's never reaches
//! the client; `TE: trailers` and `Host` go on.

use super::{Answer, RawRequest, RecordingUpstream, answer_ok, start_proxy};
use crate::common::bounded;
use crate::common::client::json_echo;
use crate::common::servers::real_server;
use crate::common::wire::{contains_ignore_case, raw_exchange};
use lab::lab_headers::SERVER_HEADER;
use lab::lab_headers::UPSTREAM_HEADER;
use lab::probe::Probe;
use lab::realserver::EchoReport;

#[tokio::test]
async fn hop_by_hop_request_headers_never_reach_the_upstream() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request = b"GET /hop HTTP/1.1\r\n\
        Host: h\r\n\
        Connection: keep-alive, X-Foo\r\n\
        X-Foo: foo-secret\r\n\
        Keep-Alive: timeout=77\r\n\
        Proxy-Connection: keep-alive\r\n\
        Proxy-Authorization: Basic cHJveHktc2VjcmV0\r\n\
        TE: gzip\r\n\
        Upgrade: websocket\r\n\
        X-End: end-to-end\r\n\
        \r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200, "{response:?}");

        let seen = upstream.request().await;
        let names = seen.names();
        for hop in [
            "connection",
            "x-foo",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "upgrade",
        ] {
            assert!(!names.iter().any(|n| n == hop), "{hop} reached: {seen:?}");
        }
        for secret in [
            "foo-secret",
            "timeout=77",
            "cHJveHktc2VjcmV0",
            "gzip",
            "websocket",
        ] {
            assert!(
                !contains_ignore_case(&seen.raw, secret),
                "{secret} reached the upstream: {seen:?}"
            );
        }
        assert_eq!(seen.values("x-end"), ["end-to-end"]);
        assert_eq!(seen.values("host"), ["h"]);
    })
    .await;
}

#[tokio::test]
async fn te_trailers_reaches_the_upstream() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        for te in ["trailers", "trailers, deflate", "gzip, trailers"] {
            let request = format!("GET /te HTTP/1.1\r\nHost: h\r\nTE: {te}\r\n\r\n");
            let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
            assert_eq!(response.status, 200);
            let seen = upstream.request().await;
            assert_eq!(seen.values("te"), ["trailers"], "TE: {te}: {seen:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_response_headers_of_the_real_server_never_reach_the_client() {
    bounded(async {
        let server = real_server().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        // Keep-alive, so that a `Connection` header could only come from upstream.
        let request = format!("GET /hop-headers HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr);
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.complete);
        for hop in ["connection", "x-hop", "keep-alive"] {
            assert!(response.values(hop).is_empty(), "{hop}: {response:?}");
        }
        // End-to-end headers do arrive.
        assert_eq!(
            response.values(SERVER_HEADER),
            [server.addr().to_string()],
            "{response:?}"
        );
        assert_eq!(
            response.values(UPSTREAM_HEADER.as_str()),
            [upstream.as_str()]
        );
        assert!(
            response.values("content-type")[0].starts_with("text/plain"),
            "{response:?}"
        );
        assert!(
            response.text().contains("/base/hop-headers"),
            "{}",
            response.text()
        );
    })
    .await;
}

fn answer_with_hop_headers(_: &RawRequest) -> Answer {
    Answer::Bytes(
        b"HTTP/1.1 200 OK\r\n\
        Connection: X-Hop\r\n\
        X-Hop: hop-secret\r\n\
        Keep-Alive: timeout=77\r\n\
        Proxy-Authenticate: Basic realm=\"upstream-secret\"\r\n\
        Upgrade: h2c\r\n\
        X-End: end-to-end\r\n\
        Content-Length: 2\r\n\
        \r\n\
        ok"
        .to_vec(),
    )
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed_on_the_wire() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_with_hop_headers).await;
        let proxy = start_proxy(&upstream.url(""), &[]).await;
        let request = b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        upstream.request().await;
        assert_eq!(response.status, 200, "{response:?}");
        for hop in [
            "connection",
            "x-hop",
            "keep-alive",
            "proxy-authenticate",
            "upgrade",
        ] {
            assert!(response.values(hop).is_empty(), "{hop}: {response:?}");
        }
        let head = format!("{:?}", response.headers);
        for secret in ["hop-secret", "timeout=77", "upstream-secret", "h2c"] {
            assert!(!head.contains(secret), "{secret}: {head}");
        }
        assert_eq!(response.values("x-end"), ["end-to-end"]);
        assert_eq!(response.values("content-length"), ["2"]);
        assert_eq!(response.body, b"ok");
    })
    .await;
}

#[tokio::test]
async fn the_upstream_always_gets_a_host() {
    bounded(async {
        let server = real_server().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        // An HTTP/1.0 client that sends no Host at all.
        let (response, _) = raw_exchange(
            proxy.addr,
            b"GET /abc HTTP/1.0\r\nAccept: application/json\r\n\r\n",
        )
        .await;
        let echo: EchoReport = serde_json::from_slice(&response.body).expect("the JSON echo");
        assert_eq!(echo.header_values("host"), [server.addr().to_string()]);
        // A client that names Host in Connection, trying to strip it.
        let (_, echo) =
            json_echo(proxy.addr, Probe::get("/abc").header("Connection", "host")).await;
        assert_eq!(echo.header_values("host"), [proxy.addr.to_string()]);
    })
    .await;
}

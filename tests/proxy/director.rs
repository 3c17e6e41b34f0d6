//! Step 4, the Director: the upstream's base path joined with the request's
//! path and their queries merged, `--rewrite`, a header set over the
//! client's, a replaced body with its length fixed, and the Host and
//! request target the upstream gets.

use super::{RecordingUpstream, answer_ok, assert_names_upstream, start_proxy};
use crate::common::bounded;
use crate::common::client::{header_of, json_echo};
use crate::common::servers::real_server;
use crate::common::wire::{contains_ignore_case, raw_exchange};
use lab::lab_headers::SERVER_HEADER;
use lab::probe::Probe;
use lab::realserver::EchoReport;

#[tokio::test]
async fn director_joins_the_base_path_and_merges_the_query() {
    bounded(async {
        let server = real_server().await;
        let upstream = format!("http://{}/base?name=123", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        let cases = [
            ("/xxx?x=1", "/base/xxx?name=123&x=1"),
            ("/xxx", "/base/xxx?name=123"),
            ("/", "/base/?name=123"),
            ("/a/b/c?x=1&y=2", "/base/a/b/c?name=123&x=1&y=2"),
        ];
        for (sent, arrived) in cases {
            let (exchange, report) = json_echo(proxy.addr, Probe::get(sent)).await;
            assert_eq!(report.uri, arrived, "{sent}");
            assert_eq!(report.method, "GET");
            // The upstream's answer comes back with its end-to-end headers...
            assert_eq!(
                header_of(&exchange, SERVER_HEADER),
                server.addr().to_string()
            );
            // ...and the proxy's note of who answered.
            assert_names_upstream(&exchange, &upstream);
            // The Host the client sent, untouched (Go's NewSingleHostReverseProxy).
            assert_eq!(report.header_values("host"), [proxy.addr.to_string()]);
            // The upstream's TCP peer is the proxy, never the client.
            assert_ne!(report.remote_addr, exchange.local_addr.to_string());
        }
    })
    .await;
}

#[tokio::test]
async fn director_without_a_base_path_keeps_the_path() {
    bounded(async {
        let server = real_server().await;
        for upstream in [
            format!("http://{}", server.addr()),
            format!("http://{}/", server.addr()),
        ] {
            let proxy = start_proxy(&upstream, &[]).await;
            for (sent, arrived) in [("/xxx?x=1", "/xxx?x=1"), ("/", "/"), ("/a/b", "/a/b")] {
                let (exchange, report) = json_echo(proxy.addr, Probe::get(sent)).await;
                assert_eq!(report.uri, arrived, "{upstream} {sent}");
                assert_names_upstream(&exchange, &upstream);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn director_keeps_an_encoded_path_encoded() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        for (sent, arrived) in [
            ("/a%2Fb", "/base/a%2Fb"),
            ("/sp%20ace/x%3Fy?q=%26", "/base/sp%20ace/x%3Fy?q=%26"),
        ] {
            let (_, report) = json_echo(proxy.addr, Probe::get(sent)).await;
            assert_eq!(report.uri, arrived, "{sent}");
        }
    })
    .await;
}

#[tokio::test]
async fn director_rewrites_the_path_before_the_join() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--rewrite", "^/dir(.*)=$1"],
        )
        .await;
        for (sent, arrived) in [
            ("/dir/abc", "/base/abc"),
            ("/dir/abc?q=1", "/base/abc?q=1"),
            ("/other/dir", "/base/other/dir"),
        ] {
            let (_, report) = json_echo(proxy.addr, Probe::get(sent)).await;
            assert_eq!(report.uri, arrived, "{sent}");
        }
    })
    .await;
}

#[tokio::test]
async fn director_sets_a_header_over_the_clients() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--set-header", "token:ssss"],
        )
        .await;
        let (_, report) = json_echo(proxy.addr, Probe::get("/abc")).await;
        assert_eq!(report.header_values("token"), ["ssss"]);
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/abc").header("Token", "from-the-client"),
        )
        .await;
        assert_eq!(report.header_values("token"), ["ssss"], "set, not added");
    })
    .await;
}

#[tokio::test]
async fn director_replaces_the_body_and_fixes_its_length() {
    bounded(async {
        let server = real_server().await;
        let json = r#"{"apple":2}"#;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--replace-body", json],
        )
        .await;
        let original = "x".repeat(10_000);
        let probe = Probe::get("/abc")
            .method(http::Method::POST)
            .body(original.clone());
        let (_, report) = json_echo(proxy.addr, probe).await;
        assert_eq!(report.body_bytes, json.len() as u64, "{report:?}");
        assert_eq!(
            report.header_values("content-length"),
            [json.len().to_string()]
        );
        assert!(report.header_values("transfer-encoding").is_empty());
    })
    .await;
}

#[tokio::test]
async fn replaced_body_is_exact_on_the_wire_even_for_a_chunked_request() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let json = r#"{"apple":2,"banana":3,"cherry":4}"#;
        let proxy = start_proxy(
            &upstream.url("/base"),
            // Spaces on purpose: the document is sent re-serialised, compactly.
            &[
                "--replace-body",
                r#"{"apple": 2, "banana": 3, "cherry": 4}"#,
            ],
        )
        .await;
        let request =
            b"POST /json HTTP/1.1\r\nHost: client.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.body, b"ok");

        let seen = upstream.request().await;
        assert_eq!(seen.request_line, "POST /base/json HTTP/1.1");
        assert_eq!(seen.body, json.as_bytes(), "{seen:?}");
        assert_eq!(seen.values("content-length"), [json.len().to_string()]);
        assert!(seen.values("transfer-encoding").is_empty(), "{seen:?}");
        assert!(!contains_ignore_case(&seen.raw, "hello"), "{seen:?}");
    })
    .await;
}

#[tokio::test]
async fn director_keeps_the_clients_host_and_sends_origin_form() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;
        let request = b"GET /h?x=1 HTTP/1.1\r\nHost: client.example:8080\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200, "{response:?}");

        let seen = upstream.request().await;
        // Origin-form, as a server expects it (absolute-form is for forward proxies).
        assert_eq!(seen.request_line, "GET /base/h?x=1 HTTP/1.1", "{seen:?}");
        assert_eq!(seen.values("host"), ["client.example:8080"], "{seen:?}");
        assert_eq!(
            seen.values("x-forwarded-host"),
            ["client.example:8080"],
            "{seen:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        let (response, _) = raw_exchange(
            proxy.addr,
            b"GET http://example.test:8000/abc HTTP/1.1\r\nHost: other.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 200);
        let echo: EchoReport = serde_json::from_slice(&response.body).expect("the JSON echo");
        assert_eq!(echo.uri, "/base/abc");
        assert_eq!(echo.header_values("host"), ["example.test:8000"]);
        assert_eq!(echo.header_values("x-forwarded-host"), ["example.test:8000"]);
    })
    .await;
}

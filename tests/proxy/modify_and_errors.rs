//! Steps 7 and 10: the round trip's failures as the ErrorHandler answers
//! them (502 for an upstream down, 504 at the response timeout, the
//! article's 500 handler, a body cut short, the client's own fault a 400)
//! and ModifyResponse (`--prefix-response`, `--prefix-errors`).

use std::time::{Duration, Instant};

use super::{Answer, RawRequest, RecordingUpstream, answer_ok, assert_names_upstream, start_proxy};
use crate::common::bounded;
use crate::common::client::{header_of, json_echo, send};
use crate::common::servers::{dead_port, real_server};
use crate::common::wire::{assert_closed_without_more, decode_chunked, raw_exchange};
use http::StatusCode;
use lab::probe::{Exchange, Probe};

#[tokio::test]
async fn prefix_response_prefixes_200_bodies_and_fixes_content_length() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--prefix-response", "hello "],
        )
        .await;

        // A Content-Length body: the length grows by the prefix, checked raw.
        let request = format!("GET /abc HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr);
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.complete, "{response:?}");
        let body = response.text();
        assert!(
            body.starts_with(&format!("hello http://{}/base/abc\n", server.addr())),
            "{body}"
        );
        assert_eq!(
            response.values("content-length"),
            [response.body.len().to_string()]
        );

        // A chunked body: the prefix comes first, the length stays unknown.
        let request = format!(
            "GET /stream?n=2&ms=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            proxy.addr
        );
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 200);
        assert!(response.values("content-length").is_empty(), "{response:?}");
        let text = decode_chunked(&response.body).text();
        assert!(text.starts_with("hello chunk 1/2 at "), "{text}");
        assert!(text.contains("chunk 2/2 at "), "{text}");

        // Not a 200: left alone.
        let exchange = send(proxy.addr, Probe::get("/error")).await;
        assert_eq!(exchange.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(exchange.text(), "error handler");
    })
    .await;
}

#[tokio::test]
async fn prefix_errors_prefixes_upstream_errors_only() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--prefix-errors"],
        )
        .await;
        let request = format!("GET /error HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr);
        let (response, _client) = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(response.status, 500, "{response:?}");
        assert_eq!(response.text(), "StatusCode error:error handler");
        assert_eq!(response.values("content-length"), ["30"]);

        let exchange = send(proxy.addr, Probe::get("/abc")).await;
        assert_eq!(exchange.status, StatusCode::OK);
        assert!(
            exchange.text().starts_with("http://"),
            "{}",
            exchange.text()
        );
    })
    .await;
}

#[tokio::test]
async fn upstream_down_is_a_502_that_says_what_to_do() {
    bounded(async {
        let upstream = format!("http://{}/base", dead_port());
        for flags in [&[][..], &["--prefix-errors"][..]] {
            let proxy = start_proxy(&upstream, flags).await;
            let exchange = send(proxy.addr, Probe::get("/abc")).await;
            assert_eq!(exchange.status, StatusCode::BAD_GATEWAY, "{flags:?}");
            let body = exchange.text();
            assert!(body.contains(&upstream), "{flags:?}: {body}");
            assert!(body.contains("lab realserver"), "{flags:?}: {body}");
            // The ErrorHandler's answer is not the upstream's: ModifyResponse
            // (here --prefix-errors) never sees it, as in Go.
            assert!(!body.starts_with("StatusCode error:"), "{flags:?}: {body}");
            assert_names_upstream(&exchange, &upstream);
        }
    })
    .await;
}

#[tokio::test]
async fn slow_upstream_is_a_504_at_the_response_timeout() {
    bounded(async {
        let server = real_server().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &["--response-timeout", "300ms"]).await;
        let started = Instant::now();
        let exchange = send(proxy.addr, Probe::get("/delay?ms=3000")).await;
        let elapsed = started.elapsed();
        assert_eq!(
            exchange.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{}",
            exchange.text()
        );
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(2_500),
            "504 at the 300 ms response timeout, not after {elapsed:?}"
        );
        assert!(
            exchange.text().contains("--response-timeout"),
            "{}",
            exchange.text()
        );
        assert_names_upstream(&exchange, &upstream);
        // A fast request through the same proxy is still answered.
        let (_, report) = json_echo(proxy.addr, Probe::get("/delay?ms=10")).await;
        assert_eq!(report.uri, "/base/delay?ms=10");
    })
    .await;
}

#[tokio::test]
async fn article_errors_answer_500_error_handler() {
    bounded(async {
        let dead = format!("http://{}/base", dead_port());
        let proxy = start_proxy(&dead, &["--article-errors"]).await;
        let exchange = send(proxy.addr, Probe::get("/abc")).await;
        assert_eq!(exchange.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = exchange.text();
        assert!(body.starts_with("ErrorHandler error:"), "{body}");
        assert!(body.contains("lab realserver"), "{body}");
        assert_names_upstream(&exchange, &dead);

        let server = real_server().await;
        let slow = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&slow, &["--article-errors", "--response-timeout", "300ms"]).await;
        let exchange = send(proxy.addr, Probe::get("/delay?ms=3000")).await;
        assert_eq!(exchange.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = exchange.text();
        assert!(body.starts_with("ErrorHandler error:"), "{body}");
        assert!(body.contains("--response-timeout"), "{body}");
        assert_names_upstream(&exchange, &slow);
    })
    .await;
}

#[tokio::test]
async fn the_articles_six_second_handler_is_a_502_after_three_seconds() {
    bounded(async {
        let server = real_server().await;
        let upstream = format!("http://{}", server.addr());
        let proxy = start_proxy(&upstream, &[]).await;
        let started = Instant::now();
        let exchange = send(
            proxy.addr,
            Probe::get("/test_http_string/test_http_string/aaa"),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(
            exchange.status,
            StatusCode::BAD_GATEWAY,
            "{}",
            exchange.text()
        );
        // The real server's 3 s write timeout closes the upstream connection; the
        // proxy's own 30 s response timeout never comes into it.
        assert!(
            elapsed >= Duration::from_millis(2_500) && elapsed < Duration::from_millis(5_500),
            "502 when the real server gives up at 3 s, not after {elapsed:?}"
        );
        assert!(
            exchange.text().contains("closed the connection"),
            "{}",
            exchange.text()
        );
        assert_names_upstream(&exchange, &upstream);
    })
    .await;
}

fn answer_then_cut(request: &RawRequest) -> Answer {
    if request.target().ends_with("/cut") {
        Answer::BytesThenReset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial".to_vec())
    } else {
        answer_ok(request)
    }
}

#[tokio::test]
async fn upstream_cut_mid_body_cuts_the_client_short_too() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_then_cut).await;
        let proxy = start_proxy(&upstream.url(""), &[]).await;
        let (response, mut client) =
            raw_exchange(proxy.addr, b"GET /cut HTTP/1.1\r\nHost: h\r\n\r\n").await;
        // The head was already on its way: a 200 whose body never completes,
        // never a complete response that silently lies about its content.
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.values("content-length"), ["100"]);
        assert!(!response.complete, "{response:?}");
        assert_eq!(response.body, b"partial");
        assert_closed_without_more(&mut client, "the cut response").await;
        upstream.request().await;

        // The proxy still serves.
        let (response, _client) =
            raw_exchange(proxy.addr, b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"ok");
    })
    .await;
}

#[tokio::test]
async fn head_responses_are_not_prefixed() {
    bounded(async {
        let server = real_server().await;
        let upstream = format!("http://{}/base", server.addr());
        let proxy = start_proxy(&upstream, &["--prefix-response", "hello "]).await;
        let get = send(proxy.addr, Probe::get("/abc")).await;
        let head = send(proxy.addr, Probe::get("/abc").method(http::Method::HEAD)).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        let length = |e: &Exchange| header_of(e, "content-length").parse::<usize>().unwrap();
        // GET got the prefix; HEAD announces the upstream's own length.
        assert_eq!(length(&get), get.body.len());
        assert_eq!(length(&head) + "hello ".len(), length(&get));
        // The proxy is still fine afterwards.
        assert_eq!(
            send(proxy.addr, Probe::get("/abc")).await.status,
            StatusCode::OK
        );
    })
    .await;
}

#[tokio::test]
async fn a_broken_request_body_is_the_clients_fault_400() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;
        let (response, _) = raw_exchange(
            proxy.addr,
            b"POST /abc HTTP/1.1\r\nHost: lab\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 400, "{:?}", String::from_utf8_lossy(&response.body));
        // The proxy keeps serving.
        assert_eq!(send(proxy.addr, Probe::get("/abc")).await.status, StatusCode::OK);
    })
    .await;
}

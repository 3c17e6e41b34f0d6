//! Step 6, who the client was: X-Forwarded-For appended (or replaced, or
//! trusted), X-Real-IP and X-Forwarded-Host set, and Via naming this proxy.

use super::{RecordingUpstream, answer_ok, start_proxy};
use crate::common::bounded;
use crate::common::client::json_echo;
use crate::common::servers::real_server;
use crate::common::wire::raw_exchange;
use lab::probe::Probe;

fn assert_via_is_this_proxy(via: &str) {
    let name = via
        .strip_prefix("1.1 lab-")
        .unwrap_or_else(|| panic!("Via {via:?} is `1.1 lab-…`"));
    assert!(
        name.len() == 8 && name.chars().all(|c| c.is_ascii_hexdigit()),
        "Via {via:?} ends in eight hex digits"
    );
}

#[tokio::test]
async fn forwarding_headers_by_default_append_and_overwrite() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(&format!("http://{}/base", server.addr()), &[]).await;

        // No X-Forwarded-For from the client: just the client.
        let (_, report) = json_echo(proxy.addr, Probe::get("/f")).await;
        assert_eq!(report.header_values("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(report.header_values("x-real-ip"), ["127.0.0.1"]);
        assert_eq!(
            report.header_values("x-forwarded-host"),
            [proxy.addr.to_string()]
        );
        assert_eq!(report.header_values("x-forwarded-proto"), ["http"]);
        let via = report.header_values("via");
        assert_eq!(via.len(), 1, "{via:?}");
        assert_via_is_this_proxy(via[0]);

        // Claims from the client: X-Forwarded-For is appended to, the rest is
        // overwritten with what the proxy saw.
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X-Real-Ip", "6.6.6.6")
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "https"),
        )
        .await;
        assert_eq!(
            report.header_values("x-forwarded-for"),
            ["1.2.3.4, 127.0.0.1"]
        );
        assert_eq!(report.header_values("x-real-ip"), ["127.0.0.1"]);
        assert_eq!(
            report.header_values("x-forwarded-host"),
            [proxy.addr.to_string()]
        );
        assert_eq!(report.header_values("x-forwarded-proto"), ["http"]);

        // Two X-Forwarded-For lines become one line.
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.1.1.1")
                .header("X-Forwarded-For", "2.2.2.2, 3.3.3.3"),
        )
        .await;
        assert_eq!(
            report.header_values("x-forwarded-for"),
            ["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]
        );
    })
    .await;
}

#[tokio::test]
async fn forwarded_replace_erases_the_chain() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--forwarded", "replace"],
        )
        .await;
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X-Real-Ip", "6.6.6.6"),
        )
        .await;
        assert_eq!(report.header_values("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(report.header_values("x-real-ip"), ["127.0.0.1"]);
    })
    .await;
}

#[tokio::test]
async fn forwarded_trust_keeps_what_the_client_claimed() {
    bounded(async {
        let server = real_server().await;
        let proxy = start_proxy(
            &format!("http://{}/base", server.addr()),
            &["--forwarded", "trust"],
        )
        .await;
        let (_, report) = json_echo(
            proxy.addr,
            Probe::get("/f")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X-Real-Ip", "6.6.6.6")
                .header("X-Forwarded-Proto", "https"),
        )
        .await;
        assert_eq!(
            report.header_values("x-forwarded-for"),
            ["1.2.3.4, 127.0.0.1"]
        );
        assert_eq!(report.header_values("x-real-ip"), ["6.6.6.6"]);
        assert_eq!(report.header_values("x-forwarded-proto"), ["https"]);
        // Not claimed by the client: filled in as usual.
        assert_eq!(
            report.header_values("x-forwarded-host"),
            [proxy.addr.to_string()]
        );
    })
    .await;
}

#[tokio::test]
async fn via_adds_this_proxy_after_earlier_hops_with_the_clients_version() {
    bounded(async {
        let mut upstream = RecordingUpstream::start(answer_ok).await;
        let proxy = start_proxy(&upstream.url("/base"), &[]).await;

        let request = b"GET /v HTTP/1.1\r\nHost: h\r\nVia: 1.0 squid\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200);
        let seen = upstream.request().await;
        let via = seen.values("via");
        assert_eq!(via.len(), 2, "{seen:?}");
        assert_eq!(via[0], "1.0 squid");
        assert_via_is_this_proxy(via[1]);
        let pseudonym = via[1].trim_start_matches("1.1 ").to_string();

        // An HTTP/1.0 client: the proxy says it received 1.0, and still talks
        // HTTP/1.1 to the upstream.
        let request = b"GET /v HTTP/1.0\r\nHost: h\r\n\r\n";
        let (response, _client) = raw_exchange(proxy.addr, request).await;
        assert_eq!(response.status, 200);
        let seen = upstream.request().await;
        assert_eq!(seen.request_line, "GET /base/v HTTP/1.1");
        assert_eq!(seen.values("via"), [format!("1.0 {pseudonym}")], "{seen:?}");
    })
    .await;
}

//! Properties of `--hash-key` ([`HashKey`]) and the key it takes from a
//! request.

use super::{any_case, any_text, config, soup};
use http::{HeaderName, HeaderValue};
use lab::balance::HashKey;
use proptest::prelude::*;
use std::net::SocketAddr;

const HASH_KEY_PIECES: &[&str] = &[
    "remote-ip",
    "Remote-IP",
    "remote-addr",
    "path",
    "PATH",
    "header",
    "query",
    ":",
    " ",
    "x-user-id",
    "user",
    "bad name",
    "é",
    "\u{0}",
];

/// The request head a key is taken from.
fn parts(uri: &str, headers: &[(HeaderName, HeaderValue)]) -> http::request::Parts {
    let mut request = http::Request::builder()
        .uri(uri)
        .body(())
        .expect("a valid request")
        .into_parts()
        .0;
    for (name, value) in headers {
        request.headers.append(name.clone(), value.clone());
    }
    request
}

/// A header value: any bytes `HeaderValue` takes (tab, visible, obs-text).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..16)
        .prop_map(|bytes| HeaderValue::from_bytes(&bytes).expect("allowed bytes"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hash_keys_never_panic_and_accepted_ones_print_back(
        spec in prop_oneof![any_text(24), soup(HASH_KEY_PIECES, 5)],
    ) {
        if let Ok(key) = spec.parse::<HashKey>() {
            let printed = key.to_string();
            prop_assert_eq!(printed.parse::<HashKey>(), Ok(key), "{:?}", printed);
        }
    }

    #[test]
    fn every_documented_form_parses_in_any_case_and_spacing(
        kind in prop_oneof![
            any_case("remote-ip"), any_case("remote-addr"), any_case("path"),
            any_case("header"), any_case("query"),
        ],
        header in "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}",
        query in "[^\\s:]([^:]{0,8}[^\\s:])?",
        (a, b, c) in ("[ \t]{0,2}", "[ \t]{0,2}", "[ \t]{0,2}"),
    ) {
        let (spec, expected) = match kind.to_ascii_lowercase().as_str() {
            "remote-ip" => (format!("{a}{kind}{b}"), HashKey::RemoteIp),
            "remote-addr" => (format!("{a}{kind}{b}"), HashKey::RemoteAddr),
            "path" => (format!("{a}{kind}{b}"), HashKey::Path),
            "header" => (
                format!("{a}{kind}{b}:{c}{header}{a}"),
                HashKey::Header(HeaderName::try_from(header.to_ascii_lowercase()).expect("a token")),
            ),
            _ => (format!("{a}{kind}{b}:{c}{query}{a}"), HashKey::Query(query.clone())),
        };
        prop_assert_eq!(spec.parse::<HashKey>(), Ok(expected), "{:?}", spec);
    }

    #[test]
    fn a_query_key_is_the_first_value_decoded(
        name in prop_oneof![Just("user".to_string()), any_text(4).prop_filter("a name", |n| !n.trim().is_empty())],
        pairs in prop::collection::vec(
            (prop_oneof![Just("user".to_string()), Just("id".to_string()), any_text(4)], any_text(8)),
            0..5,
        ),
        peer in any::<SocketAddr>(),
    ) {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let request = parts(&format!("/p?{query}"), &[]);
        let expected = pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        prop_assert_eq!(HashKey::Query(name).key(&request, peer), expected);
    }

    #[test]
    fn header_path_and_address_keys_are_what_the_request_carries(
        name in "[a-z0-9-]{1,10}",
        values in prop::collection::vec(header_value(), 0..3),
        path in "(/[a-zA-Z0-9%._~-]{0,6}){1,3}",
        peer in any::<SocketAddr>(),
        other_port in any::<u16>(),
    ) {
        let name = HeaderName::try_from(name).expect("a token");
        let headers: Vec<_> = values.iter().map(|v| (name.clone(), v.clone())).collect();
        let request = parts(&format!("{path}?x=1"), &headers);
        let first = values
            .first()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        prop_assert_eq!(HashKey::Header(name).key(&request, peer), first);
        prop_assert_eq!(HashKey::Path.key(&request, peer), path);
        prop_assert_eq!(HashKey::RemoteAddr.key(&request, peer), peer.to_string());
        // The default key is the client's IP: a new connection (a new
        // port) from the same client keeps its key.
        let mut again = peer;
        again.set_port(other_port);
        prop_assert_eq!(HashKey::RemoteIp.key(&request, peer), peer.ip().to_string());
        prop_assert_eq!(HashKey::RemoteIp.key(&request, again), HashKey::RemoteIp.key(&request, peer));
    }
}

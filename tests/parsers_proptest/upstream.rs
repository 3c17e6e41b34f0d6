//! Properties of `--upstream URL[,WEIGHT]` ([`parse_upstream_spec`]).

use super::{any_text, config, soup};
use lab::balance::{MAX_WEIGHT, parse_upstream_spec};
use proptest::prelude::*;

pub(super) const SPEC_PIECES: &[&str] = &[
    "http://",
    "https://",
    "HTTP://",
    "ftp://",
    "//",
    "127.0.0.1",
    "[::1]",
    "h",
    "user@",
    ":",
    ":2003",
    ":99999",
    "/",
    "/base",
    "?",
    "?ids=1",
    "=",
    "&",
    "#",
    ",",
    ",10",
    ",0",
    ", 7 ",
    ",-1",
    ",٣",
    " ",
    "\t",
    "%",
    "%2F",
    "é",
];

/// What every accepted spec must satisfy: a weight in range, an http(s)
/// upstream, `url` its text, and that text (with the weight) parses back to
/// the same node.
pub(super) fn check_accepted_spec(spec: &str) -> Result<(), TestCaseError> {
    let Ok(node) = parse_upstream_spec(spec) else {
        return Ok(());
    };
    prop_assert!((1..=MAX_WEIGHT).contains(&node.weight), "{spec:?}");
    prop_assert!(
        node.upstream.scheme == http::uri::Scheme::HTTP
            || node.upstream.scheme == http::uri::Scheme::HTTPS,
        "{spec:?}"
    );
    prop_assert_eq!(&*node.url, node.upstream.to_string());
    let again = parse_upstream_spec(&format!("{},{}", node.url, node.weight));
    prop_assert_eq!(again, Ok(node.clone()), "{:?} → {:?}", spec, node.url);
    Ok(())
}

/// A base path as a user writes one: none, `/`, or `/seg/seg`.
fn base_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("/".to_string()),
        prop::collection::vec("[a-zA-Z0-9._~-]{1,8}", 1..4)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn upstream_specs_never_panic_and_accepted_ones_round_trip(
        spec in prop_oneof![any_text(40), soup(SPEC_PIECES, 10)],
    ) {
        check_accepted_spec(&spec)?;
    }

    #[test]
    fn generated_upstream_specs_parse_to_their_url_and_weight(
        port in any::<u16>(),
        path in base_path(),
        query in prop::option::of("[a-z0-9=&,]{0,12}"),
        weight in prop::option::of(1..=MAX_WEIGHT),
        (before, after) in ("[ \t]{0,2}", "[ \t]{0,2}"),
    ) {
        // A query may hold commas: then the weight must be written (the
        // documented trap), so a query comes only with a weight.
        let query = query.filter(|_| weight.is_some());
        let url = match &query {
            Some(q) => format!("http://127.0.0.1:{port}{path}?{q}"),
            None => format!("http://127.0.0.1:{port}{path}"),
        };
        let spec = match weight {
            Some(w) => format!("{before}{url},{w}{after}"),
            None => format!("{before}{url}{after}"),
        };
        let node = parse_upstream_spec(&spec).map_err(TestCaseError::fail)?;
        prop_assert_eq!(node.weight, weight.unwrap_or(1));
        prop_assert_eq!(&*node.url, url.as_str());
        prop_assert_eq!(node.upstream.authority.as_str(), format!("127.0.0.1:{port}"));
        prop_assert_eq!(&node.upstream.path, &path);
        prop_assert_eq!(node.upstream.query.as_deref(), query.as_deref());
        check_accepted_spec(&spec)?;
    }

    #[test]
    fn a_weight_is_accepted_exactly_from_1_to_max_weight(
        digits in prop_oneof!["[0-9]{1,30}", (0u64..=2 * MAX_WEIGHT as u64).prop_map(|n| n.to_string())],
    ) {
        let parsed = parse_upstream_spec(&format!("http://127.0.0.1:2003/base,{digits}"));
        let value = digits.parse::<u128>().expect("only digits");
        let in_range = (1..=u128::from(MAX_WEIGHT)).contains(&value);
        prop_assert_eq!(parsed.is_ok(), in_range, "{} → {:?}", digits, parsed.map(|n| n.weight));
        if let Ok(node) = parsed {
            prop_assert_eq!(u128::from(node.weight), value);
        }
    }
}

#[test]
fn a_slash_before_a_query_is_kept() {
    // Found by `generated_upstream_specs_parse_to_their_url_and_weight`
    // (minimal input `http://127.0.0.1:0/?,1`, parsed as `…:0?`): `http://h/`
    // keeps its `/`, but `http://h/?q` lost it, and `http://h?a/` got one,
    // because the code looked for the slash at the end of the text, where
    // the query is. The upstream's name (X-Lab-Upstream, the statistics) is
    // what the user wrote, and its base path is the one written.
    for (spec, url) in [
        ("http://127.0.0.1:0/?,1", "http://127.0.0.1:0/?"),
        ("http://h/,1", "http://h/"),
        ("http://h,1", "http://h"),
        ("http://h?a=1,2", "http://h?a=1"),
        ("http://h/?a=1,2", "http://h/?a=1"),
        ("http://h?a/,2", "http://h?a/"),
    ] {
        assert_eq!(&*parse_upstream_spec(spec).unwrap().url, url, "{spec}");
    }
}

//! Properties of what ZooKeeper carries: the node data a proxy reads back
//! (the upstream spec `lab realserver --register` writes), the child names
//! ([`check_name`]) and `zk://` URLs.

use super::upstream::{SPEC_PIECES, check_accepted_spec};
use super::{any_text, config, soup};
use lab::balance::{MAX_WEIGHT, parse_upstream_spec};
use lab::realserver::{BASE_PATH, upstream_spec};
use lab::zk::ZkUrl;
use lab::zk::registry::check_name;
use proptest::prelude::*;
use std::net::SocketAddr;

/// ZooKeeper's own rule for a node path (`PathUtils.validatePath` on the
/// server, repeated by the `zookeeper-client` crate before it sends a
/// request): absolute, no trailing `/`, no empty, `.` or `..` segment, and
/// none of U+0000–U+001F, U+007F–U+009F, U+D800–U+F8FF, U+FFF0–U+FFFF.
fn zookeeper_accepts(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let refused = |c: char| matches!(u32::from(c), 0..=0x1f | 0x7f..=0x9f | 0xd800..=0xf8ff | 0xfff0..=0xffff);
    rest.is_empty()
        || (rest
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | "..")))
            && !rest.chars().any(refused)
}

/// A child name: an address, or characters near every edge of the rules.
fn child_name() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => prop::sample::select(&['.', ':', '/', '[', ']', '%', ' ', '0'][..]),
        1 => prop::char::range('\u{0}', '\u{a0}'),
        1 => prop::char::range('\u{e000}', '\u{f8ff}'),
        1 => prop::char::range('\u{fff0}', '\u{ffff}'),
        2 => any::<char>(),
    ];
    prop_oneof![
        any::<SocketAddr>().prop_map(|a| a.to_string()),
        prop::collection::vec(c, 0..6).prop_map(String::from_iter),
    ]
}

const ZK_PIECES: &[&str] = &[
    "zk://",
    "ZK://",
    "http://",
    "127.0.0.1",
    "[::1]",
    "[",
    "]",
    "h",
    ":",
    ":2181",
    ":0",
    ",",
    "/",
    "/lab",
    "/zookeeper",
    ".",
    "..",
    "?",
    "#",
    " ",
    "é",
    "\u{1}",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_child_name_is_accepted_exactly_when_zookeeper_would(name in child_name()) {
        let url: ZkUrl = lab::zk::DEFAULT_URL.parse().expect("the default URL");
        let path = url.child_path(&name);
        // One segment (a '/' would make it a grandchild), and a path
        // ZooKeeper takes.
        prop_assert_eq!(
            check_name(&name).is_ok(),
            !name.contains('/') && zookeeper_accepts(&path),
            "{:?} as {:?}", name, path
        );
    }

    #[test]
    fn what_a_real_server_registers_reads_back(
        tls in any::<bool>(),
        addr in any::<SocketAddr>(),
        weight in 1..=MAX_WEIGHT,
    ) {
        // `lab realserver --register`: the node is named by the address and
        // holds the spec; the proxy reads the data as (lossy) UTF-8 and
        // parses it as `--upstream` is parsed.
        let name = addr.to_string();
        prop_assert!(check_name(&name).is_ok(), "{:?}", name);
        let data = upstream_spec(tls, addr, weight).into_bytes();
        let node = parse_upstream_spec(&String::from_utf8_lossy(&data))
            .map_err(TestCaseError::fail)?;
        let scheme = if tls { "https" } else { "http" };
        prop_assert_eq!(node.upstream.scheme.as_str(), scheme);
        prop_assert_eq!(node.upstream.authority.as_str(), name.as_str());
        prop_assert_eq!(node.upstream.path.as_str(), BASE_PATH);
        prop_assert_eq!(node.upstream.query.as_deref(), None);
        prop_assert_eq!(node.weight, weight);
        prop_assert_eq!(&*node.url, format!("{scheme}://{name}{BASE_PATH}"));
    }

    #[test]
    fn node_data_never_panics(
        data in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            soup(SPEC_PIECES, 10).prop_map(String::into_bytes),
        ],
    ) {
        check_accepted_spec(&String::from_utf8_lossy(&data))?;
    }

    #[test]
    fn zk_urls_never_panic_and_print_back(text in prop_oneof![any_text(30), soup(ZK_PIECES, 10)]) {
        if let Ok(url) = text.parse::<ZkUrl>() {
            prop_assert!(zookeeper_accepts(url.path()), "{:?}", url.path());
            let printed = url.to_string();
            prop_assert_eq!(printed.parse::<ZkUrl>().map_err(|e| e.to_string()), Ok(url), "{:?}", printed);
        }
    }
}

#[test]
fn a_character_zookeeper_refuses_is_not_a_node_name() {
    // Found by `a_child_name_is_accepted_exactly_when_zookeeper_would`
    // (minimal input U+E000): the name check refused only control
    // characters, so such a name passed it and ZooKeeper's client refused
    // the create ("unsupported characters in path") instead, without the
    // check's advice.
    for name in ["\u{e000}", "\u{f8ff}", "\u{fff0}", "\u{fffd}", "\u{ffff}"] {
        assert!(check_name(name).is_err(), "{name:?}");
    }
    assert!(check_name("\u{d7ff}x\u{f900}").is_ok());
    assert!(check_name("127.0.0.1:2003").is_ok());
}

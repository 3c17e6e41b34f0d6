//! Properties of sizes (`--max-body`), address ranges (`--allow`,
//! `--trusted-proxy`) and the client address a trusted proxy vouches for.

use super::{any_text, config};
use http::HeaderValue;
use proptest::prelude::*;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sizes_never_panic(text in any_text(24)) {
        let _ = lab::parse::parse_size(&text);
    }

    #[test]
    fn sizes_are_the_number_times_the_unit(
        n in 0u64..=2_000_000,
        unit in prop::sample::select(vec![
            ("", 1u64), ("B", 1), ("k", 1000), ("kB", 1000), ("K", 1000), ("M", 1_000_000),
            ("MB", 1_000_000), ("G", 1_000_000_000), ("Ki", 1024), ("KiB", 1024),
            ("Mi", 1 << 20), ("MiB", 1 << 20), ("Gi", 1 << 30), ("GiB", 1 << 30),
        ]),
        space in prop::bool::ANY,
    ) {
        let (suffix, scale) = unit;
        let text = format!("{n}{}{suffix}", if space { " " } else { "" });
        prop_assert_eq!(lab::parse::parse_size(&text), Ok(n * scale), "{}", text);
    }

    #[test]
    fn ranges_never_panic_and_print_back(text in any_text(48)) {
        if let Ok(range) = text.parse::<lab::cidr::Cidr>() {
            let printed = range.to_string();
            prop_assert_eq!(printed.parse::<lab::cidr::Cidr>(), Ok(range));
        }
    }

    #[test]
    fn a_range_contains_exactly_the_addresses_that_share_its_prefix(
        net in any::<u32>(), ip in any::<u32>(), prefix in 0u8..=32,
    ) {
        let range: lab::cidr::Cidr = format!("{}/{prefix}", std::net::Ipv4Addr::from(net))
            .parse()
            .unwrap();
        let shared = (net ^ ip).leading_zeros() >= u32::from(prefix);
        prop_assert_eq!(range.contains(std::net::Ipv4Addr::from(ip).into()), shared);
    }

    #[test]
    fn the_client_address_is_the_rightmost_untrusted_address(
        hops in prop::collection::vec((prop::bool::ANY, any::<u8>()), 0..6),
        peer_trusted in prop::bool::ANY,
        junk_at in prop::option::of(0usize..6),
    ) {
        // Each hop: trusted (10.0.0.x) or not (198.51.100.x); maybe one
        // entry that is not an address.
        let trusted: Vec<lab::cidr::Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let entries: Vec<String> = hops
            .iter()
            .enumerate()
            .map(|(i, (is_trusted, n))| {
                if junk_at == Some(i) {
                    "unknown".to_string()
                } else if *is_trusted {
                    format!("10.0.0.{n}")
                } else {
                    format!("198.51.100.{n}")
                }
            })
            .collect();
        let peer: std::net::IpAddr = if peer_trusted { "10.9.9.9" } else { "192.0.2.1" }
            .parse()
            .unwrap();
        let mut headers = http::HeaderMap::new();
        if !entries.is_empty() {
            headers.insert("x-forwarded-for", HeaderValue::from_str(&entries.join(", ")).unwrap());
        }
        // The rule, written out: from an untrusted peer, the peer. Else walk
        // from the right past trusted addresses; the first untrusted one is
        // the client; junk stops the walk at the last address believed.
        let mut expected = peer;
        if peer_trusted {
            for entry in entries.iter().rev() {
                let Ok(ip) = entry.parse::<std::net::IpAddr>() else { break };
                expected = ip;
                if !entry.starts_with("10.") {
                    break;
                }
            }
        }
        let client = lab::proxy::headers::client_address(peer, &headers, &trusted);
        prop_assert_eq!(client, expected, "{:?} from {}", entries, peer);
    }
}

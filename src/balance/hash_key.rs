//! What a consistent-hash pick hashes (`--hash-key`): the part of a request
//! that should keep sending it to the same upstream.
//!
//! The article's proxy calls `lb.Get(req.RemoteAddr)`. Go's `RemoteAddr` is
//! the client's IP **and port**, `127.0.0.1:54321`, and the port is an
//! ephemeral one the client's kernel chooses afresh for every TCP
//! connection. So with the article's key the same client lands on a
//! different upstream each time it opens a connection: the stickiness that
//! consistent hashing (会话保持) is for is lost. That is [`HashKey::RemoteAddr`],
//! kept so the lab can show it; the default, [`HashKey::RemoteIp`], drops
//! the port (nginx's `ip_hash` does the same, and `hash $remote_addr`
//! there means the address without the port).
//!
//! Behind another proxy or a NAT many clients share one IP; then a header
//! (`header:x-user-id`), the path or a query parameter is the better key.
//!
//! | `--hash-key` | key of `GET /a/b?user=7` from 127.0.0.1:54321 |
//! |---|---|
//! | `remote-ip` (default) | `127.0.0.1` |
//! | `remote-addr` | `127.0.0.1:54321` (the article's; changes per connection) |
//! | `header:NAME` | the first `NAME` header's value |
//! | `path` | `/a/b` |
//! | `query:user` | `7` (percent-decoded, as Go's `URL.Query().Get`) |
//!
//! A missing header or query parameter gives the empty string, so every such
//! request goes to one and the same upstream (the one owning `crc32("") = 0`
//! on the ring). That is predictable, which a lab wants; a production proxy
//! might fall back to the client IP instead.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use http::HeaderName;
use http::request::Parts;

/// The part of a request a consistent-hash pick hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashKey {
    /// The client's IP without the port: the same client, the same upstream.
    #[default]
    RemoteIp,
    /// The client's IP and port, the article's `req.RemoteAddr`: a new
    /// connection has a new port, so stickiness holds only per connection.
    RemoteAddr,
    /// The first value of a request header (lossy UTF-8); empty if absent.
    Header(HeaderName),
    /// The request path, without the query.
    Path,
    /// The first value of a query parameter, percent-decoded; empty if absent.
    Query(String),
}

const FORMS: &str = "remote-ip, remote-addr, header:NAME, path or query:NAME";

impl FromStr for HashKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((kind, arg)) => (kind.trim(), Some(arg.trim())),
            None => (s, None),
        };
        match (kind.to_ascii_lowercase().as_str(), arg) {
            ("remote-ip", None) => Ok(HashKey::RemoteIp),
            ("remote-addr", None) => Ok(HashKey::RemoteAddr),
            ("path", None) => Ok(HashKey::Path),
            ("header", Some(name)) if !name.is_empty() => HeaderName::from_bytes(name.as_bytes())
                .map(HashKey::Header)
                .map_err(|_| format!("{name:?} is not a valid header name; e.g. header:x-user-id")),
            ("header", _) => Err("header: needs a header name, e.g. header:x-user-id".into()),
            ("query", Some(name)) if !name.is_empty() => Ok(HashKey::Query(name.to_string())),
            ("query", _) => Err("query: needs a parameter name, e.g. query:user".into()),
            ("remote-ip" | "remote-addr" | "path", Some(_)) => {
                Err(format!("{kind} takes no ':…' part; write just {kind}"))
            }
            _ => Err(format!("unknown hash key {s:?}; write one of {FORMS}")),
        }
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashKey::RemoteIp => f.write_str("remote-ip"),
            HashKey::RemoteAddr => f.write_str("remote-addr"),
            HashKey::Header(name) => write!(f, "header:{name}"),
            HashKey::Path => f.write_str("path"),
            HashKey::Query(name) => write!(f, "query:{name}"),
        }
    }
}

impl HashKey {
    /// This request's key. `peer` is the client's address as the proxy's
    /// socket sees it (Go's `RemoteAddr`), not anything from
    /// `X-Forwarded-For`, which a client can write for itself.
    pub fn key(&self, parts: &Parts, peer: SocketAddr) -> String {
        match self {
            HashKey::RemoteIp => ip_text(peer, false),
            // `SocketAddr`'s Display is Go's RemoteAddr: `1.2.3.4:5`, `[::1]:5`.
            HashKey::RemoteAddr => ip_text(peer, true),
            HashKey::Header(name) => parts
                .headers
                .get(name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .unwrap_or_default(),
            HashKey::Path => parts.uri.path().to_string(),
            HashKey::Query(name) => parts
                .uri
                .query()
                .and_then(|query| {
                    form_urlencoded::parse(query.as_bytes())
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.into_owned())
                })
                .unwrap_or_default(),
        }
    }
}

/// `peer`'s IP (and `:port`) as `Display` writes them. An IPv4 address
/// (every loopback client) is written by hand: the key is made on every
/// request, and the formatting machinery (`to_string`) costs about ten
/// times as much.
fn ip_text(peer: SocketAddr, with_port: bool) -> String {
    let SocketAddr::V4(v4) = peer else {
        return match with_port {
            true => peer.to_string(),
            false => peer.ip().to_string(),
        };
    };
    let mut text = String::with_capacity(b"255.255.255.255:65535".len());
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        push_decimal(&mut text, octet.into());
    }
    if with_port {
        text.push(':');
        push_decimal(&mut text, v4.port());
    }
    text
}

/// Appends `n` in decimal.
fn push_decimal(text: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        text.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    const PEER: &str = "127.0.0.1:54321";

    fn key(spec: &str, parts: &Parts) -> String {
        spec.parse::<HashKey>()
            .unwrap()
            .key(parts, PEER.parse().unwrap())
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut addrs: Vec<SocketAddr> = [
            "0.0.0.0:0",
            "127.0.0.1:54321",
            "255.255.255.255:65535",
            "10.9.99.100:9",
            "1.20.199.250:10",
            "[::1]:80",
            "[2001:db8::7]:65535",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        // And a spread of others, from a fixed sequence.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip = std::net::Ipv4Addr::from((x >> 16) as u32);
            addrs.push(SocketAddr::new(ip.into(), x as u16));
        }
        for addr in addrs {
            assert_eq!(ip_text(addr, true), addr.to_string());
            assert_eq!(ip_text(addr, false), addr.ip().to_string());
        }
    }

    #[test]
    fn keys_of_one_request() {
        let request = parts("/a/b?user=j%C3%BCrgen&x=1&user=2", &[("X-User-Id", "42")]);
        assert_eq!(key("remote-ip", &request), "127.0.0.1");
        assert_eq!(key("remote-addr", &request), "127.0.0.1:54321");
        assert_eq!(key("header:x-user-id", &request), "42");
        assert_eq!(key("path", &request), "/a/b");
        assert_eq!(
            key("query:user", &request),
            "jürgen",
            "first value, decoded"
        );
    }

    #[test]
    fn missing_parts_give_the_empty_key() {
        let request = parts("/", &[]);
        assert_eq!(key("header:x-user-id", &request), "");
        assert_eq!(key("query:user", &request), "");
        assert_eq!(key("query:user", &parts("/?other=1", &[])), "");
    }

    #[test]
    fn remote_addr_changes_with_the_port_remote_ip_does_not() {
        // Two connections from one client: ports 50001 and 50002.
        let request = parts("/", &[]);
        let first: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        let second: SocketAddr = "127.0.0.1:50002".parse().unwrap();
        let ip = HashKey::RemoteIp;
        let addr = HashKey::RemoteAddr;
        assert_eq!(ip.key(&request, first), ip.key(&request, second));
        assert_ne!(addr.key(&request, first), addr.key(&request, second));
        // IPv6 as Go writes it.
        let v6: SocketAddr = "[::1]:50001".parse().unwrap();
        assert_eq!(addr.key(&request, v6), "[::1]:50001");
        assert_eq!(ip.key(&request, v6), "::1");
    }

    #[test]
    fn parses_and_displays_every_form() {
        for form in [
            "remote-ip",
            "remote-addr",
            "header:x-user-id",
            "path",
            "query:user",
        ] {
            assert_eq!(form.parse::<HashKey>().unwrap().to_string(), form);
        }
        assert_eq!(
            "Header:X-User-Id".parse::<HashKey>(),
            Ok(HashKey::Header(HeaderName::from_static("x-user-id")))
        );
        assert_eq!(HashKey::default(), HashKey::RemoteIp);
    }

    #[test]
    fn errors_say_what_to_write() {
        let err = |s: &str| s.parse::<HashKey>().unwrap_err();
        assert!(err("ip").contains("remote-ip, remote-addr"));
        assert!(err("header:").contains("header:x-user-id"));
        assert!(err("header").contains("needs a header name"));
        assert!(err("header:bad name").contains("not a valid header name"));
        assert!(err("query:").contains("query:user"));
        assert!(err("path:/x").contains("write just path"));
    }
}

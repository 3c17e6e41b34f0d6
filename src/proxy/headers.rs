//! The header rules of a correct proxy (RFC 9110 §7.6, Go's ReverseProxy
//! steps 5, 6 and 9): which headers belong to one hop only, and how a proxy
//! writes down who the client was.
//!
//! **Hop-by-hop headers** (逐段消息头) describe one connection, between the
//! client and this proxy, or this proxy and the upstream. Forwarding them would
//! let one side configure a connection it is not part of: `Connection: close`
//! from the client would close the pooled upstream connection, a
//! `Transfer-Encoding` would describe framing the proxy re-does anyway, a
//! `Proxy-Authorization` meant for this proxy would leak to the next one.
//! Two of them survive on purpose: `TE: trailers` (the client accepts
//! trailers, which the upstream needs to know) and, when upgrading,
//! `Connection: Upgrade` + `Upgrade` (the upgrade is for the whole path).
//!
//! **Forwarding headers** carry what the proxy's connection erased (lab 01):
//! the client's address (X-Forwarded-For, X-Real-IP), the host it asked for
//! and the scheme it used (X-Forwarded-Host, X-Forwarded-Proto).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::cidr::Cidr;
use crate::header_list::{self, has_token};

/// The hop-by-hop headers every proxy removes (Go's `hopHeaders`, RFC 9110 §7.6.1).
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection", // non-standard, but sent by old clients to proxies
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",      // restored as `TE: trailers` when the client sent that
    "trailer", // announced again by the proxy when it forwards trailers
    "transfer-encoding",
    "upgrade", // restored when the request upgrades
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Why a request's headers cannot be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Go: "client tried to switch to invalid protocol".
    #[error(
        "client tried to switch to an invalid protocol {0:?}: an Upgrade token must be printable ASCII"
    )]
    InvalidUpgrade(String),
}

/// The protocol a message asks to switch to: the `Upgrade` value when
/// `Connection` lists `upgrade` (Go's `upgradeType`), else `None`.
pub fn upgrade_type(headers: &HeaderMap) -> Option<&HeaderValue> {
    if has_token(headers, &header::CONNECTION, "upgrade") {
        headers.get(header::UPGRADE)
    } else {
        None
    }
}

/// Removes the headers that `Connection` names (RFC 9110 §7.6.1: a sender
/// lists there the fields meant for this connection only), e.g. `X-Hop` in
/// `Connection: X-Hop`. Go's `removeConnectionHeaders`.
pub fn remove_connection_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = header_list::items(headers, &header::CONNECTION)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// Removes every hop-by-hop header and every header `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one look at the few names present is cheaper
    // than nine lookups by name (each hashes it), so look first.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(&name.as_str()))
    {
        return;
    }
    remove_connection_headers(headers);
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Prepares a request's headers for the next hop (Go's step 5): validates an
/// upgrade, removes hop-by-hop headers, then restores `TE: trailers` and the
/// upgrade if the client asked for them. Returns the upgrade protocol, if any.
pub fn prepare_request(headers: &mut HeaderMap) -> Result<Option<HeaderValue>, HeaderError> {
    let upgrade = upgrade_type(headers).cloned();
    if let Some(protocol) = &upgrade
        && !is_printable_ascii(protocol.as_bytes())
    {
        return Err(HeaderError::InvalidUpgrade(
            String::from_utf8_lossy(protocol.as_bytes()).into_owned(),
        ));
    }
    let wants_trailers = has_token(headers, &header::TE, "trailers");
    remove_hop_by_hop(headers);
    if wants_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(protocol) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    Ok(upgrade)
}

/// Step 5 for a request, as every proxy here takes it: the hop-by-hop
/// headers go, `TE: trailers` and an upgrade stay ([`prepare_request`]),
/// the trailers its body announces are announced again, and with
/// `drop_underscores` names with an underscore go ([`drop_underscored`]).
/// Returns the upgrade protocol, if any.
///
/// One look at the names present comes first: most requests carry neither
/// a hop-by-hop header nor an underscore, and then nothing is looked up by
/// name (each lookup hashes the name) and nothing is removed.
pub fn for_next_hop(
    headers: &mut HeaderMap,
    drop_underscores: bool,
) -> Result<Option<HeaderValue>, HeaderError> {
    let (mut hop_by_hop, mut underscored) = (false, false);
    for name in headers.keys() {
        let name = name.as_str();
        hop_by_hop |= HOP_BY_HOP.contains(&name);
        underscored |= name.as_bytes().contains(&b'_');
    }
    let mut upgrade = None;
    if hop_by_hop {
        let trailers = announced_trailers(headers);
        upgrade = prepare_request(headers)?;
        restore_trailers(headers, trailers);
    }
    if underscored && drop_underscores {
        drop_underscored(headers);
    }
    Ok(upgrade)
}

/// Prepares a response's headers for the client (Go's step 9). A 101 keeps
/// its `Connection: Upgrade` and `Upgrade`, which the client needs.
pub fn prepare_response(headers: &mut HeaderMap, switching_protocols: bool) {
    let upgrade = switching_protocols
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    remove_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// An upstream's response head larger than `--max-header-size`: a 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "answered with a response head of about {size} bytes, more than this proxy accepts \
     ({max} bytes, --max-header-size)"
)]
pub struct HeadTooLarge {
    pub size: usize,
    pub max: usize,
}

/// Holds an upstream's response head to `max` bytes (`--max-header-size`).
pub fn check_response_head<B>(
    response: &http::Response<B>,
    max: usize,
) -> Result<(), HeadTooLarge> {
    let size = response_head_size(response);
    if size > max {
        return Err(HeadTooLarge { size, max });
    }
    Ok(())
}

/// The size of a response head as it came on the wire, near enough:
/// `HTTP/1.1 200 OK\r\n`, each `name: value\r\n`, and the blank line.
fn response_head_size<B>(response: &http::Response<B>) -> usize {
    let status_line =
        "HTTP/1.1 200 \r\n".len() + response.status().canonical_reason().map_or(0, str::len);
    let fields: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    status_line + fields + 2
}

/// The `Trailer` header's values: the trailer fields a message announces.
pub fn announced_trailers(headers: &HeaderMap) -> Vec<HeaderValue> {
    headers.get_all(header::TRAILER).iter().cloned().collect()
}

/// Announces the trailers again after the hop-by-hop headers went (hyper
/// only sends the trailer fields the `Trailer` header names).
pub fn restore_trailers(headers: &mut HeaderMap, announced: Vec<HeaderValue>) {
    for value in announced {
        headers.append(header::TRAILER, value);
    }
}

/// Go's `ascii.IsPrint`: every byte a visible character or space.
pub fn is_printable_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| (b' '..=b'~').contains(&b))
}

/// Removes every header whose name has an underscore (`X_Real_IP`), as
/// nginx does by default (`underscores_in_headers off`), and returns how
/// many went. CGI, WSGI and PHP backends read headers as variables with
/// `-` turned into `_`: for them `X_Real_IP: 6.6.6.6` is X-Real-IP, and a
/// client would spoof what the proxy writes. HTTP allows the name (RFC 9110
/// §5.1), so `--underscores-in-headers` keeps them, as Go does.
pub fn drop_underscored(headers: &mut HeaderMap) -> usize {
    // A byte search, where `str::contains` sets up a pattern searcher for
    // every name. (`for_next_hop` calls this only when a name has one.)
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().as_bytes().contains(&b'_'))
        .cloned()
        .collect();
    for name in &names {
        headers.remove(name);
    }
    names.len()
}

/// How a proxy treats the forwarding headers a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ForwardedPolicy {
    /// Go's ReverseProxy and nginx's `$proxy_add_x_forwarded_for`: append the
    /// client's IP to any X-Forwarded-For it sent (`prior, client`); X-Real-IP,
    /// X-Forwarded-Host and X-Forwarded-Proto overwritten with what this proxy saw.
    #[default]
    Append,
    /// The article's nginx PS (`proxy_set_header X-Forwarded-For $remote_addr`):
    /// X-Forwarded-For is only the client's IP, the chain before is erased.
    Replace,
    /// The trusting proxy: keeps whatever X-Real-IP, X-Forwarded-Host and
    /// X-Forwarded-Proto the client sent (and appends to X-Forwarded-For).
    /// Right only behind another proxy you run; open to spoofing otherwise.
    Trust,
}

/// What this proxy saw of the client, to write into the forwarding headers.
#[derive(Debug, Clone)]
pub struct ClientFacts {
    /// The TCP peer's IP (RemoteAddr without the port): what X-Forwarded-For
    /// gets, as header text ([`crate::server::Conn::peer_ip`]).
    pub ip: HeaderValue,
    /// The client's address as this proxy believes it (X-Real-IP), when a
    /// trusted proxy vouched for one other than the peer ([`client_address`]);
    /// `None`: the peer itself, whose text `ip` already is.
    pub real_ip: Option<IpAddr>,
    /// The Host the client asked for, if any.
    pub host: Option<HeaderValue>,
    /// The scheme the client used to reach this proxy (`http` here).
    pub proto: &'static str,
}

/// The client's address as a proxy may believe it: the TCP `peer`, unless
/// the peer is one of the `trusted` proxies; then X-Forwarded-For is read
/// from its end (each proxy appends the address it received from), skipping
/// trusted proxies, and the first address that is not one is the client.
/// Anything that is not an address stops the walk: what lies left of it
/// was written by someone untrusted. This is nginx's `real_ip_recursive`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if !Cidr::any_contains(trusted, peer) {
        return peer;
    }
    let values: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let mut client = peer;
    for entry in values.iter().rev().flat_map(|value| value.rsplit(',')) {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !Cidr::any_contains(trusted, ip) {
            break;
        }
    }
    client
}

/// Writes X-Forwarded-For, X-Real-IP, X-Forwarded-Host and X-Forwarded-Proto,
/// per `policy`. Go's step 6 sets X-Forwarded-For only; the other three are
/// `lab`'s additions, the headers nginx setups add (`proxy_set_header`),
/// not Go's (lab 08, docs/go-differences.md).
pub fn set_forwarding_headers(
    headers: &mut HeaderMap,
    client: &ClientFacts,
    policy: ForwardedPolicy,
) {
    // Written once per connection and shared (a HeaderValue clone is a
    // reference count).
    let ip_value = &client.ip;
    let appends = policy != ForwardedPolicy::Replace;
    if appends && headers.contains_key(&X_FORWARDED_FOR) {
        let ip = ip_value.to_str().expect("an IP address is ASCII");
        let xff = appended_x_forwarded_for(headers, ip);
        set_text(headers, X_FORWARDED_FOR, &xff);
    } else {
        headers.insert(X_FORWARDED_FOR, ip_value.clone());
    }

    let keep_clients = policy == ForwardedPolicy::Trust;
    if !(keep_clients && headers.contains_key(&X_REAL_IP)) {
        let real_ip = match client.real_ip {
            None => ip_value.clone(),
            Some(vouched) => {
                HeaderValue::from_maybe_shared(bytes::Bytes::from(vouched.to_string()))
                    .expect("an IP address is a valid header value")
            }
        };
        headers.insert(X_REAL_IP, real_ip);
    }
    if !(keep_clients && headers.contains_key(&X_FORWARDED_HOST)) {
        match &client.host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host.clone());
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
    if !(keep_clients && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
    }
}

/// Go's rule: every prior X-Forwarded-For line joined by `, `, then `, ` and
/// the client's IP; just the IP when there was none. One line results, so a
/// server reading only the first line (lab 02) still sees the whole chain.
pub fn appended_x_forwarded_for(headers: &HeaderMap, client_ip: &str) -> String {
    let prior: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if prior.is_empty() {
        client_ip.to_string()
    } else {
        format!("{}, {client_ip}", prior.join(", "))
    }
}

/// A proxy's name in `Via` (RFC 9110 §7.6.3), with the values it appends
/// made once (`1.0 NAME`, `1.1 NAME`, `2 NAME`): a request takes one, a
/// reference count, instead of building a string.
#[derive(Debug, Clone)]
pub struct Pseudonym {
    name: String,
    /// The `Via` values for HTTP/1.0, HTTP/1.1 and HTTP/2.
    via: [HeaderValue; 3],
}

impl Pseudonym {
    /// `name` is a token (`lab-1a2b3c4d`), valid in a header value.
    pub fn new(name: String) -> Pseudonym {
        let via = ["1.0", "1.1", "2"].map(|protocol| {
            HeaderValue::from_maybe_shared(bytes::Bytes::from(format!("{protocol} {name}")))
                .expect("a pseudonym is a token")
        });
        Pseudonym { name, via }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The `Via` value for a message received as `version`.
    fn via(&self, version: http::Version) -> &HeaderValue {
        match version {
            http::Version::HTTP_10 => &self.via[0],
            http::Version::HTTP_2 => &self.via[2],
            _ => &self.via[1],
        }
    }
}

impl std::fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Appends this proxy to `Via` (RFC 9110 §7.6.3) as `1.1 NAME`: the protocol
/// version it received and a pseudonym. Go's ReverseProxy sends no Via: this
/// is a `lab` addition. A proxy that finds its own pseudonym
/// there is seeing its own request again: a loop.
pub fn add_via(headers: &mut HeaderMap, version: http::Version, pseudonym: &Pseudonym) {
    headers.append(header::VIA, pseudonym.via(version).clone());
}

/// Whether `Via` names `pseudonym` (this proxy already handled the request).
pub fn via_names(headers: &HeaderMap, pseudonym: &str) -> bool {
    header_list::items(headers, &header::VIA)
        .any(|hop| hop.split_whitespace().nth(1) == Some(pseudonym))
}

fn set_text(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    // Built from IPs and visible header text, so always a valid value.
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn request_loses_every_hop_by_hop_header_and_those_connection_names() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-authenticate", "Basic"),
            ("te", "gzip"),
            ("trailer", "X-Sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"), // no `Connection: upgrade`: not an upgrade
            ("accept", "*/*"),
        ]);
        let upgrade = prepare_request(&mut map).unwrap();
        assert_eq!(upgrade, None);
        assert_eq!(names(&map), ["accept"]);
    }

    #[test]
    fn te_trailers_and_an_upgrade_survive() {
        let mut map = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "trailers, deflate"),
        ]);
        let upgrade = prepare_request(&mut map).unwrap();
        assert_eq!(upgrade.unwrap(), "websocket");
        assert_eq!(map["te"], "trailers");
        assert_eq!(map["connection"], "Upgrade");
        assert_eq!(map["upgrade"], "websocket");
    }

    #[test]
    fn an_unprintable_upgrade_is_refused() {
        let mut map = HeaderMap::new();
        map.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        map.insert(
            header::UPGRADE,
            HeaderValue::from_bytes(b"web\tsocket").unwrap(),
        );
        assert!(matches!(
            prepare_request(&mut map),
            Err(HeaderError::InvalidUpgrade(_))
        ));
    }

    #[test]
    fn response_keeps_upgrade_only_when_switching() {
        let pairs = [
            ("connection", "Upgrade, X-Hop"),
            ("upgrade", "websocket"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-accept", "abc"),
        ];
        let mut switching = headers(&pairs);
        prepare_response(&mut switching, true);
        assert_eq!(
            names(&switching),
            ["connection", "sec-websocket-accept", "upgrade"]
        );
        let mut ordinary = headers(&pairs);
        prepare_response(&mut ordinary, false);
        assert_eq!(names(&ordinary), ["sec-websocket-accept"]);
    }

    fn client() -> ClientFacts {
        ClientFacts {
            ip: HeaderValue::from_static("127.0.0.1"),
            real_ip: None,
            host: Some(HeaderValue::from_static("127.0.0.1:2002")),
            proto: "http",
        }
    }

    #[test]
    fn append_joins_every_prior_line_then_the_client() {
        // Client sent two lines: `1.1.1.1` and `2.2.2.2, 3.3.3.3`.
        let mut map = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
        ]);
        set_forwarding_headers(&mut map, &client(), ForwardedPolicy::Append);
        let xff: Vec<_> = map.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, ["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]);
        assert_eq!(map["x-real-ip"], "127.0.0.1");
        assert_eq!(map["x-forwarded-host"], "127.0.0.1:2002");
        assert_eq!(map["x-forwarded-proto"], "http");
    }

    #[test]
    fn no_prior_header_is_just_the_client() {
        let mut map = HeaderMap::new();
        set_forwarding_headers(&mut map, &client(), ForwardedPolicy::Append);
        assert_eq!(map["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn replace_erases_the_chain() {
        let mut map = headers(&[("x-forwarded-for", "1.2.3.4")]);
        set_forwarding_headers(&mut map, &client(), ForwardedPolicy::Replace);
        assert_eq!(map["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn trust_keeps_what_the_client_claimed() {
        let mut map = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarding_headers(&mut map, &client(), ForwardedPolicy::Trust);
        assert_eq!(map["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
        assert_eq!(map["x-real-ip"], "6.6.6.6");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "127.0.0.1:2002");
    }

    #[test]
    fn the_next_hop_gets_the_request_without_its_hop_headers() {
        let sent = [
            ("host", "a"),
            ("connection", "upgrade, keep-alive"),
            ("upgrade", "websocket"),
            ("keep-alive", "5"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("x_real_ip", "6.6.6.6"),
        ];
        let mut map = headers(&sent);
        let upgrade = for_next_hop(&mut map, true).unwrap();
        assert_eq!(upgrade.unwrap(), "websocket");
        let mut left: Vec<_> = map
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "connection: Upgrade",
                "host: a",
                "te: trailers",
                "trailer: x-sum",
                "upgrade: websocket"
            ]
        );
        let mut kept = headers(&sent);
        for_next_hop(&mut kept, false).unwrap();
        assert_eq!(kept["x_real_ip"], "6.6.6.6");

        // Nothing of the kind: nothing changes.
        let plain = headers(&[
            ("host", "a"),
            ("accept", "*/*"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        let mut map = plain.clone();
        assert_eq!(for_next_hop(&mut map, true).unwrap(), None);
        assert_eq!(map, plain);
    }

    #[test]
    fn via_records_each_hop_and_finds_a_loop() {
        let mut map = headers(&[("via", "1.1 squid")]);
        let pseudonym = Pseudonym::new("lab-1234".to_string());
        add_via(&mut map, http::Version::HTTP_11, &pseudonym);
        add_via(&mut map, http::Version::HTTP_10, &pseudonym);
        assert!(via_names(&map, "lab-1234"));
        assert!(via_names(&map, "squid"));
        assert!(!via_names(&map, "lab-9999"));
        let hops: Vec<_> = map.get_all("via").iter().collect();
        assert_eq!(hops, ["1.1 squid", "1.1 lab-1234", "1.0 lab-1234"]);
    }

    #[test]
    fn printable_ascii_is_space_to_tilde() {
        assert!(is_printable_ascii(b"websocket"));
        assert!(is_printable_ascii(b"h2c"));
        assert!(!is_printable_ascii(b"caf\xc3\xa9"));
        assert!(!is_printable_ascii(b"a\x7f"));
    }

    #[test]
    fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut map = HeaderMap::new();
        map.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        map.append(X_FORWARDED_FOR, HeaderValue::from_static("10.1.1.1"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer: its header is text, the peer is the client.
        assert_eq!(
            client_address(ip("198.51.100.1"), &map, &trusted),
            ip("198.51.100.1")
        );
        // A trusted peer: walk back past trusted hops to the first other one;
        // what lies left of it (6.6.6.6) was written by that client itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), &map, &trusted),
            ip("203.0.113.9")
        );
        // No trusted proxies configured: never believed.
        assert_eq!(client_address(ip("10.0.0.2"), &map, &[]), ip("10.0.0.2"));
        // Garbage stops the walk at the last address believed.
        let mut bad = HeaderMap::new();
        bad.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("203.0.113.9, not-an-ip, 10.2.2.2"),
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &bad, &trusted),
            ip("10.2.2.2")
        );
    }
}

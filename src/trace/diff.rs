//! What changed on the way: the client's header lines against the upstream's
//! ([`headers`]), and one proxy's upstream view against another's ([`pair`],
//! [`differences`]).
//!
//! Both are plain data; [`super::render`] draws them and `--json` prints the
//! comparison's differences. Every change carries a word and a symbol
//! (`+ added`, `− removed`, `~ changed`, `= same`), never colour alone, and,
//! where the lab knows it, the rule that made it (hop-by-hop, X-Forwarded-For).

use super::model::{Difference, Record};
use crate::lab_headers::EXPLAIN_HEADER;
use crate::proxy::headers::HOP_BY_HOP;
use crate::realserver::canonical_header_key;

/// How one header fared between the client and the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
    Same,
}

impl Change {
    /// Symbol and word: the meaning never rests on colour.
    pub fn label(self) -> &'static str {
        match self {
            Change::Added => "+ added",
            Change::Removed => "− removed",
            Change::Changed => "~ changed",
            Change::Same => "= same",
        }
    }
}

/// One header name, as sent and as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderChange {
    pub change: Change,
    /// Canonical form (`X-Forwarded-For`).
    pub name: String,
    /// Every line the client sent, joined by `, `.
    pub sent: Option<String>,
    /// Every line the upstream received, joined by `, `.
    pub received: Option<String>,
    /// The rule behind the change, when the lab knows it.
    pub why: Option<&'static str>,
}

/// The client's lines against the upstream's, one row per header name: the
/// sent names in order, then the names only the upstream saw. `via_proxy`
/// says whether a proxy was in between (the notes speak of one).
pub fn headers(
    sent: &[(String, String)],
    received: &[(String, String)],
    via_proxy: bool,
) -> Vec<HeaderChange> {
    let connection_named: Vec<String> = values(sent, "connection")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect();
    let hop_by_hop =
        |name: &str| HOP_BY_HOP.contains(&name) || connection_named.iter().any(|t| t == name);
    names(sent, received)
        .into_iter()
        .map(|name| {
            let sent_value = joined(sent, &name);
            let received_value = joined(received, &name);
            let change = match (&sent_value, &received_value) {
                (None, _) => Change::Added,
                (_, None) => Change::Removed,
                (Some(s), Some(r)) if s == r => Change::Same,
                _ => Change::Changed,
            };
            let why = via_proxy
                .then(|| {
                    why(
                        &name,
                        change,
                        &sent_value,
                        &received_value,
                        hop_by_hop(&name),
                    )
                })
                .flatten();
            HeaderChange {
                change,
                name: canonical_header_key(&name),
                sent: sent_value,
                received: received_value,
                why,
            }
        })
        .collect()
}

/// The rule behind a change a proxy made (or failed to make).
fn why(
    name: &str,
    change: Change,
    sent: &Option<String>,
    received: &Option<String>,
    hop_by_hop: bool,
) -> Option<&'static str> {
    let explain_header = EXPLAIN_HEADER;
    let explain = explain_header.as_str();
    match change {
        Change::Removed if name == explain => {
            Some("the lab's question to the proxy: answered, never forwarded")
        }
        Change::Removed if name == "authorization" => {
            Some("the proxy's own credential (--auth-token, 权限): checked, then never forwarded")
        }
        Change::Removed if name.contains('_') => Some(
            "a name with an underscore: dropped, as nginx does, since a CGI, WSGI or PHP backend \
             reads X_Real_IP as X-Real-IP (--underscores-in-headers keeps it)",
        ),
        Change::Removed if name == "connection" => {
            Some("hop-by-hop: describes one connection only")
        }
        Change::Removed if hop_by_hop && HOP_BY_HOP.contains(&name) => {
            Some("hop-by-hop (RFC 9110 §7.6.1): one connection only")
        }
        Change::Removed if hop_by_hop => Some("named in Connection, so hop-by-hop"),
        Change::Same if name == "te" && sent.as_deref() == Some("trailers") => {
            Some("TE: trailers is passed on on purpose")
        }
        Change::Same if hop_by_hop => Some("hop-by-hop, yet passed on: a proxy must remove it"),
        Change::Same if name == explain => {
            Some("the lab's question, passed on: no balancer read it")
        }
        Change::Added if name == "x-forwarded-for" => Some("the client's IP, written by the proxy"),
        Change::Changed if name == "x-forwarded-for" => match (sent, received) {
            (Some(s), Some(r)) if r.starts_with(s.as_str()) => {
                Some("the proxy appended the client's IP")
            }
            _ => Some("replaced by the proxy (the client's value is not trusted)"),
        },
        Change::Added | Change::Changed if name == "x-real-ip" => {
            Some("the client's IP, set by the proxy")
        }
        Change::Added if name == "x-forwarded-host" => Some("the Host the client asked for"),
        Change::Added if name == "x-forwarded-proto" => Some("the scheme the client used"),
        Change::Added if name == "via" => Some("the proxy names itself (RFC 9110 §7.6.3)"),
        Change::Changed if name == "host" => Some("set for the upstream by the proxy"),
        _ => None,
    }
}

/// Lower-case names in first-seen order: `first`'s, then `second`'s new ones.
fn names(first: &[(String, String)], second: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in first.iter().chain(second) {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn values<'a>(lines: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Every line of `name` joined by `, ` (one list, as HTTP reads them); `None`
/// when there is none.
pub(super) fn joined(lines: &[(String, String)], name: &str) -> Option<String> {
    let values = values(lines, name);
    (!values.is_empty()).then(|| values.join(", "))
}

/// One fact of two upstream views, side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The JSON name (see [`Difference::field`]).
    pub field: String,
    /// How a person reads it (`X-Forwarded-For`).
    pub label: String,
    pub left: Option<String>,
    pub right: Option<String>,
}

impl Pair {
    pub fn differs(&self) -> bool {
        self.left != self.right
    }
}

/// The facts of one request (`left`) beside the same request through the
/// other proxy (`right`): status, server, the peer's IP (ports always differ,
/// so only the IP is compared), the forwarding headers, Host, URI, then
/// every other header.
pub fn pair(left: &Record, right: &Record) -> Vec<Pair> {
    let (l, r) = (facts(left), facts(right));
    let mut fields: Vec<(String, String)> = Vec::new();
    for (field, label, _) in l.iter().chain(&r) {
        if !fields.iter().any(|(f, _)| f == field) {
            fields.push((field.clone(), label.clone()));
        }
    }
    let find = |facts: &[(String, String, Option<String>)], field: &str| {
        facts
            .iter()
            .find(|(f, _, _)| f == field)
            .and_then(|(_, _, v)| v.clone())
    };
    fields
        .into_iter()
        .map(|(field, label)| Pair {
            left: find(&l, &field),
            right: find(&r, &field),
            field,
            label,
        })
        .collect()
}

/// `(field, label, value)` for one record.
fn facts(record: &Record) -> Vec<(String, String, Option<String>)> {
    let saw = record.upstream_saw.as_ref();
    let remote_ip = saw.map(|s| {
        s.remote_addr
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| s.remote_addr.clone())
    });
    let mut facts = vec![
        fact("status", "status", record.status.map(|s| s.to_string())),
        fact("server", "server", record.server.clone()),
        fact("remote_ip", "RemoteAddr (IP)", remote_ip),
        fact(
            "x_forwarded_for",
            "X-Forwarded-For",
            saw.and_then(|s| s.x_forwarded_for.clone()),
        ),
        fact(
            "x_real_ip",
            "X-Real-Ip",
            saw.and_then(|s| s.x_real_ip.clone()),
        ),
        fact("host", "Host", saw.and_then(|s| s.host.clone())),
        fact("uri", "URI", saw.map(|s| s.uri.clone())),
    ];
    if let Some(saw) = saw {
        for name in names(&saw.headers, &[]) {
            if ["host", "x-forwarded-for", "x-real-ip"].contains(&name.as_str()) {
                continue;
            }
            facts.push((
                format!("header:{name}"),
                canonical_header_key(&name),
                joined(&saw.headers, &name),
            ));
        }
    }
    facts
}

fn fact(field: &str, label: &str, value: Option<String>) -> (String, String, Option<String>) {
    (field.to_string(), label.to_string(), value)
}

/// Every differing fact, request by request (paired by `seq`).
pub fn differences(left: &[Record], right: &[Record]) -> Vec<Difference> {
    let mut out = Vec::new();
    for l in left {
        let Some(r) = right.iter().find(|r| r.seq == l.seq) else {
            continue;
        };
        out.extend(
            pair(l, r)
                .into_iter()
                .filter(Pair::differs)
                .map(|p| Difference {
                    seq: l.seq,
                    field: p.field,
                    left: p.left,
                    right: p.right,
                }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::model::{ResponseDetail, UpstreamSaw};

    fn lines(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn row<'a>(rows: &'a [HeaderChange], name: &str) -> &'a HeaderChange {
        rows.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))
    }

    #[test]
    fn a_proxy_adds_forwarding_headers_and_drops_hop_by_hop_ones() {
        let sent = lines(&[
            ("Host", "127.0.0.1:2002"),
            ("Connection", "X-Foo"),
            ("X-Foo", "1"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Accept", "application/json"),
            ("X-Lab-Explain", "1"),
        ]);
        let received = lines(&[
            ("host", "127.0.0.1:2002"),
            ("accept", "application/json"),
            ("x-forwarded-for", "1.2.3.4, 127.0.0.1"),
            ("x-real-ip", "127.0.0.1"),
            ("via", "1.1 lab-1"),
        ]);
        let rows = headers(&sent, &received, true);
        assert_eq!(row(&rows, "Host").change, Change::Same);
        assert_eq!(row(&rows, "Connection").change, Change::Removed);
        let foo = row(&rows, "X-Foo");
        assert_eq!(foo.change, Change::Removed);
        assert_eq!(foo.why, Some("named in Connection, so hop-by-hop"));
        let xff = row(&rows, "X-Forwarded-For");
        assert_eq!(xff.change, Change::Changed);
        assert_eq!(xff.why, Some("the proxy appended the client's IP"));
        assert_eq!(row(&rows, "X-Real-Ip").change, Change::Added);
        assert_eq!(row(&rows, "Via").change, Change::Added);
        assert_eq!(row(&rows, "X-Lab-Explain").change, Change::Removed);
        // Sent names first, in order; then what only the upstream saw.
        let order: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "Host",
                "Connection",
                "X-Foo",
                "X-Forwarded-For",
                "Accept",
                "X-Lab-Explain",
                "X-Real-Ip",
                "Via"
            ]
        );
    }

    #[test]
    fn without_a_proxy_nothing_is_explained() {
        let sent = lines(&[("Connection", "X-Foo"), ("X-Foo", "1")]);
        let received = lines(&[("connection", "X-Foo"), ("x-foo", "1")]);
        let rows = headers(&sent, &received, false);
        assert!(
            rows.iter()
                .all(|r| r.change == Change::Same && r.why.is_none())
        );
        let rows = headers(&sent, &received, true);
        assert_eq!(
            row(&rows, "X-Foo").why,
            Some("hop-by-hop, yet passed on: a proxy must remove it")
        );
    }

    fn record(seq: u64, xff: Option<&str>, uri: &str, remote: &str) -> Record {
        Record {
            seq,
            status: Some(200),
            upstream: None,
            server: Some("127.0.0.1:2003".into()),
            pick: None,
            upstream_saw: Some(UpstreamSaw {
                remote_addr: remote.into(),
                x_forwarded_for: xff.map(str::to_string),
                x_real_ip: None,
                host: Some("127.0.0.1:2002".into()),
                uri: uri.into(),
                headers: lines(&[("host", "127.0.0.1:2002")]),
                body_bytes: 0,
            }),
            latency_ms: 1.0,
            client_addr: None,
            set: None,
            layer: None,
            passed_over: false,
            intercepted: None,
            error: None,
            response: ResponseDetail::default(),
        }
    }

    #[test]
    fn comparisons_mark_what_differs_and_ignore_ports() {
        let naive = [record(1, None, "/", "127.0.0.1:5000")];
        let proxy = [record(1, Some("127.0.0.1"), "/base/", "127.0.0.1:6000")];
        let diffs = differences(&naive, &proxy);
        let fields: Vec<&str> = diffs.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["x_forwarded_for", "uri"]);
        assert_eq!(diffs[0].left, None);
        assert_eq!(diffs[0].right.as_deref(), Some("127.0.0.1"));
        let pairs = pair(&naive[0], &proxy[0]);
        let remote = pairs.iter().find(|p| p.field == "remote_ip").unwrap();
        assert_eq!(remote.left.as_deref(), Some("127.0.0.1"));
        assert!(!remote.differs());
    }
}

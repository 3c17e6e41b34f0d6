//! Value parsers: the text a user types for a duration, a size, a listen
//! address, a request path or a header line, turned into a value or into an
//! error that says what to write instead.
//!
//! A leaf: the command line (`cli`) uses these as clap value parsers, and the
//! code below it (the real server, the labs) parses the same forms with the
//! same words, without depending on the command line.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

/// A listen address: `IP:PORT`, `localhost:PORT`, `:PORT` or a bare `PORT`.
/// The short forms mean loopback (unlike Go's `:2003`, which means every
/// interface): the lab never listens beyond this machine unless told to.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let port_only = s
        .strip_prefix("localhost:")
        .or_else(|| s.strip_prefix(':'))
        .unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not a listen address; write IP:PORT such as 127.0.0.1:2003, or just a port"
        )
    })
}

/// A request path: it starts with `/` (`/abc?x=1`).
pub fn parse_request_path(s: &str) -> Result<String, String> {
    match s.parse::<http::uri::PathAndQuery>() {
        Ok(pq) if s.starts_with('/') => Ok(pq.to_string()),
        _ => Err(format!(
            "{s:?} is not a path; write one that starts with /, e.g. /abc?x=1"
        )),
    }
}

/// Parses `3s`, `500ms`, `1m` (humantime), so flags read like Go's durations.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    // One hint, ours: humantime's own message ("time unit needed, for
    // example 5sec or 5ms") would stack a second one on top.
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("{s:?} is not a duration: write a number and its unit, such as 3s, 500ms or 1m")
    })
}

/// A duration for a period or a timeout: at least 10ms, at most 1h.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_duration(s)?;
    if duration < Duration::from_millis(10) {
        return Err(format!(
            "{s} is too short; write at least 10ms, e.g. 500ms or 1s"
        ));
    }
    if duration > Duration::from_secs(3600) {
        return Err(format!("{s} is too long; write at most 1h"));
    }
    Ok(duration)
}

/// Parses a size: `123`, `500kB`, `64KiB`, `1.5MiB`, `10MB`, `1GiB` (k, M,
/// G are powers of 1000; Ki, Mi, Gi of 1024; the `B` is optional; a
/// fraction is allowed with a unit), or `none` (no limit). The units are
/// the `bytesize` crate's.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(u64::MAX);
    }
    let hint = "write a size such as 1048576, 500kB, 64KiB, 1.5MiB or 1GiB, or `none`";
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|_| format!("{s:?} is not a size: {hint}"))?;
    // bytesize saturates: a size that does not fit says so rather than
    // quietly becoming "no limit".
    if size.as_u64() == u64::MAX && text != u64::MAX.to_string() {
        return Err(format!("{s:?} is too large: {hint}"));
    }
    Ok(size.as_u64())
}

/// Parses `-H 'Name: value'`.
pub fn parse_header_line(s: &str) -> Result<(String, String), String> {
    let hint = "write a header as 'Name: value', e.g. -H 'X-Foo: 1'";
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} has no ':'; {hint}"))?;
    let (name, value) = (name.trim(), value.trim());
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a header name; {hint}"))?;
    HeaderValue::from_str(value)
        .map_err(|_| format!("{value:?} is not a header value (printable text only); {hint}"))?;
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_fractions_and_say_what_to_write() {
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("none"), Ok(u64::MAX));
        let err = parse_size("lots").unwrap_err();
        assert!(err.contains("1.5MiB"), "{err}");
        let err = parse_size("99999999999999999999GiB").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn a_bad_duration_gets_one_hint() {
        let err = parse_duration("5").unwrap_err();
        assert_eq!(
            err,
            "\"5\" is not a duration: write a number and its unit, such as 3s, 500ms or 1m"
        );
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn listen_addresses_default_to_loopback() {
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parse_listen_addr("2013"), Ok(loopback(2013)));
        assert_eq!(parse_listen_addr(":2013"), Ok(loopback(2013)));
        assert_eq!(parse_listen_addr("localhost:2013"), Ok(loopback(2013)));
        assert_eq!(
            parse_listen_addr("0.0.0.0:80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        let err = parse_listen_addr("nonsense").unwrap_err();
        assert!(err.contains("such as 127.0.0.1:2003"), "{err}");
    }

    #[test]
    fn bad_duration_says_what_to_write() {
        let err = parse_duration("3 parsecs").unwrap_err();
        assert!(err.contains("such as 3s"), "{err}");
    }

    #[test]
    fn header_lines_need_a_colon_and_a_valid_name() {
        assert_eq!(
            parse_header_line("X-Foo:  1 ").unwrap(),
            ("X-Foo".to_string(), "1".to_string())
        );
        assert!(
            parse_header_line("X-Foo")
                .unwrap_err()
                .contains("'Name: value'")
        );
        assert!(parse_header_line("bad name: 1").is_err());
    }
}

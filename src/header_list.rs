//! Comma-separated header lists (RFC 9110 §5.6.1), such as `Connection:
//! keep-alive, Upgrade` or `Upgrade: websocket`: their items, over every
//! line of the header, and whether one is a given token (Go's
//! `httpguts.HeaderValuesContainsToken`).
//!
//! A leaf shared by the real server (is this a WebSocket handshake?) and
//! the proxies (which headers are hop-by-hop?).

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// The items of header `name`'s lines, in order: split at commas, trimmed,
/// empty ones left out (a line that is not visible text has none).
pub fn items<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    items_of(headers.get_all(name))
}

/// The items of the header lines `values`, as [`items`] reads them.
pub fn items_of<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = &'a str> {
    values
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Whether a comma-separated header lists `token` (case-insensitive), in
/// any of its lines.
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    items(headers, name).any(|item| item.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn a_token_is_found_in_any_line_and_any_case() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, "keep-alive".parse().unwrap());
        headers.append(header::CONNECTION, "X-Hop, Upgrade".parse().unwrap());
        assert!(has_token(&headers, &header::CONNECTION, "upgrade"));
        assert!(has_token(&headers, &header::CONNECTION, "x-hop"));
        assert!(!has_token(&headers, &header::CONNECTION, "close"));
        assert!(!has_token(&headers, &header::UPGRADE, "websocket"));
    }

    #[test]
    fn items_are_trimmed_and_empty_ones_left_out() {
        let mut headers = HeaderMap::new();
        headers.append(header::TRAILER, " Expires ,, X-Sum".parse().unwrap());
        headers.append(header::TRAILER, "x-late".parse().unwrap());
        let found: Vec<&str> = items(&headers, &header::TRAILER).collect();
        assert_eq!(found, ["Expires", "X-Sum", "x-late"]);
    }
}

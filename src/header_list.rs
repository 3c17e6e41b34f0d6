//! Comma-separated header lists (RFC 9110 §5.6.1), such as `Connection:
//! keep-alive, Upgrade` or `Upgrade: websocket`: whether one names a token.
//! Go's `httpguts.HeaderValuesContainsToken`.
//!
//! A leaf shared by the real server (is this a WebSocket handshake?) and
//! the proxies (which headers are hop-by-hop?).

use http::HeaderMap;
use http::header::HeaderName;

/// Whether a comma-separated header lists `token` (case-insensitive), in
/// any of its lines.
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
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
}

//! 权限 auth: `lab proxy --auth-token T` lets a request through only with
//! `Authorization: Bearer T` (RFC 6750), answers 401 otherwise, and never
//! passes the token on to the upstream.
//!
//! Two details a hand-rolled check usually gets wrong:
//! - the comparison takes the same time whatever the first wrong byte is
//!   (`subtle`'s constant-time equality): an `==` that stops at the first
//!   difference tells a patient attacker, byte by byte, how much of a guess
//!   was right;
//! - the credential is the proxy's, not the upstream's: the header is
//!   removed before the request goes on, so the upstream (and its logs)
//!   never see it.

use http::header::{self, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

/// Why a request was refused, for the 401's body and `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer …` at all.
    Missing,
    /// A bearer token, but not the right one.
    Wrong,
}

impl Refusal {
    /// The `WWW-Authenticate` challenge (RFC 6750 §3).
    pub fn challenge(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Refusal::Missing => "Bearer realm=\"lab\"",
            Refusal::Wrong => "Bearer realm=\"lab\", error=\"invalid_token\"",
        })
    }

    /// The 401's body: what was wrong and what to send.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "this proxy requires a token: send Authorization: Bearer TOKEN (curl -H 'Authorization: Bearer TOKEN')\n"
            }
            Refusal::Wrong => "the bearer token is not the one this proxy accepts\n",
        }
    }
}

/// The token the proxy accepts.
pub struct BearerAuth {
    token: Vec<u8>,
}

impl std::fmt::Debug for BearerAuth {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth(****)")
    }
}

impl BearerAuth {
    pub fn new(token: &str) -> BearerAuth {
        BearerAuth {
            token: token.as_bytes().to_vec(),
        }
    }

    /// Checks the request's `Authorization` lines: one must be
    /// `Bearer TOKEN` (the scheme is case-insensitive, RFC 9110 §11.1).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut offered = false;
        for value in headers.get_all(header::AUTHORIZATION) {
            let Some(token) = bearer_token(value.as_bytes()) else {
                continue;
            };
            offered = true;
            // Equal lengths compare in constant time; a different length
            // is refused at once (that reveals the length, not the token).
            if bool::from(token.ct_eq(&self.token)) {
                return Ok(());
            }
        }
        Err(if offered {
            Refusal::Wrong
        } else {
            Refusal::Missing
        })
    }

    /// Removes the credentials meant for this proxy before the request goes
    /// upstream: every `Authorization` line (the client spoke to the proxy).
    pub fn strip(headers: &mut HeaderMap) {
        headers.remove(header::AUTHORIZATION);
    }
}

/// The token of `Bearer TOKEN`, if that is what the value is.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let auth = BearerAuth::new("s3cret");
        assert_eq!(auth.check(&headers(&["Bearer s3cret"])), Ok(()));
        assert_eq!(auth.check(&headers(&["bearer  s3cret "])), Ok(()));
        assert_eq!(auth.check(&headers(&[])), Err(Refusal::Missing));
        assert_eq!(
            auth.check(&headers(&["Basic czNjcmV0"])),
            Err(Refusal::Missing)
        );
        assert_eq!(auth.check(&headers(&["Bearer s3cre"])), Err(Refusal::Wrong));
        assert_eq!(
            auth.check(&headers(&["Bearer s3cretX"])),
            Err(Refusal::Wrong)
        );
        assert_eq!(auth.check(&headers(&["Bearer"])), Err(Refusal::Missing));
        // Any one of several lines may carry it.
        assert_eq!(
            auth.check(&headers(&["Basic abc", "Bearer s3cret"])),
            Ok(())
        );
    }

    #[test]
    fn the_token_never_shows_and_is_stripped() {
        let auth = BearerAuth::new("s3cret");
        assert!(!format!("{auth:?}").contains("s3cret"));
        let mut map = headers(&["Bearer s3cret", "Basic abc"]);
        BearerAuth::strip(&mut map);
        assert!(map.get(header::AUTHORIZATION).is_none());
        assert!(
            Refusal::Wrong
                .challenge()
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
}

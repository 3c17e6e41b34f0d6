//! An upstream (上游, the real server behind a proxy) as `--upstream`
//! spells it: scheme, `HOST:PORT`, base path and query,
//! `http://127.0.0.1:2003/base`.
//!
//! A leaf: the balancers choose among upstreams, the health checks probe
//! them, the Director points requests at them; none of them needs another
//! to know what an upstream is.

use std::fmt;
use std::str::FromStr;

use http::uri::{Authority, Scheme, Uri};

/// An upstream the proxy can send requests to: `http://127.0.0.1:2003/base?x=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// The base path, as written (may be empty).
    pub path: String,
    /// The target's query, merged into every request's.
    pub query: Option<String>,
}

impl FromStr for Upstream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hint = "write an upstream URL such as http://127.0.0.1:2003/base";
        let uri: Uri = s
            .trim()
            .parse()
            .map_err(|e| format!("{s:?} is not a URL ({e}); {hint}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("{s:?} has no scheme; {hint}"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!(
                "{s:?}: only http:// and https:// upstreams are supported; {hint}"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{s:?} has no host; {hint}"))?;
        // `http://host` and `http://host/` both mean "no base path". Both
        // parse to the path "/": the text right after the host tells them
        // apart (not the end of the text: `http://host/?q`, `http://host?a/`).
        let slash_after_host = s
            .trim()
            .split_once("://")
            .and_then(|(_, rest)| rest.strip_prefix(authority.as_str()))
            .is_some_and(|after| after.starts_with('/'));
        let path = match uri.path() {
            "/" if !slash_after_host => String::new(),
            path => path.to_string(),
        };
        Ok(Upstream {
            scheme,
            authority,
            path,
            query: uri.query().map(str::to_string),
        })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_with_and_without_a_base_path() {
        let up: Upstream = "http://127.0.0.1:2003/base?name=123".parse().unwrap();
        assert_eq!(up.authority, "127.0.0.1:2003");
        assert_eq!(up.path, "/base");
        assert_eq!(up.query.as_deref(), Some("name=123"));
        assert_eq!(up.to_string(), "http://127.0.0.1:2003/base?name=123");
        let bare: Upstream = "http://127.0.0.1:2003".parse().unwrap();
        assert_eq!(bare.path, "");
        let slash: Upstream = "http://127.0.0.1:2003/".parse().unwrap();
        assert_eq!(slash.path, "/");
        assert!("127.0.0.1:2003".parse::<Upstream>().is_err());
        assert!(
            "ftp://h/x"
                .parse::<Upstream>()
                .unwrap_err()
                .contains("http://")
        );
    }
}

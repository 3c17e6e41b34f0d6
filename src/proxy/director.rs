//! The Director (控制器): rewrites the outgoing request for the upstream the
//! proxy chose (Go's step 4, `p.Director(outreq)`).
//!
//! What `NewSingleHostReverseProxy` does, and the article's custom version adds:
//! - scheme and host of the target;
//! - the path joined to the target's base path (`singleJoiningSlash` /
//!   `joinURLPath`): `/base` + `/xxx` is `/base/xxx`, never `/base//xxx` nor
//!   `/basexxx`. The join works on the path as received, percent-encoding
//!   included, so `/a%2Fb` stays one segment;
//! - the target's query merged before the request's (`a=1` + `b=2` → `a=1&b=2`);
//! - the article's extras: regex URL rewrite (`^/dir(.*)` → `$1`), a header
//!   set (`token: ssss`), the body replaced by a JSON document with its
//!   Content-Length fixed.
//!
//! User-Agent: Go's director sets it to `""` when the client sent none, only
//! so that Go's Transport does not add `Go-http-client/1.1`. hyper adds no
//! User-Agent, so leaving it absent gives the upstream the same thing.

use std::str::FromStr;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use regex_lite::Regex;

use crate::upstream::Upstream;

/// Go's `singleJoiningSlash`: exactly one slash between `a` and `b`.
pub fn single_joining_slash(a: &str, b: &str) -> String {
    let a_slash = a.ends_with('/');
    let b_slash = b.starts_with('/');
    match (a_slash, b_slash) {
        (true, true) => format!("{a}{}", &b[1..]),
        (false, false) => format!("{a}/{b}"),
        _ => format!("{a}{b}"),
    }
}

/// The target's base path joined with the request's path. An empty base
/// leaves the request path alone (Go: `joinURLPath` with an empty target path).
pub fn join_path(base: &str, request_path: &str) -> String {
    if base.is_empty() {
        return if request_path.is_empty() {
            "/".to_string()
        } else {
            request_path.to_string()
        };
    }
    single_joining_slash(base, request_path)
}

/// The director's query rule: the target's query first, then the request's.
pub fn merge_query(target: Option<&str>, request: Option<&str>) -> Option<String> {
    match (
        target.filter(|q| !q.is_empty()),
        request.filter(|q| !q.is_empty()),
    ) {
        (Some(t), Some(r)) => Some(format!("{t}&{r}")),
        (Some(q), None) | (None, Some(q)) => Some(q.to_string()),
        (None, None) => None,
    }
}

/// A URL rewrite: `REGEX=REPLACEMENT`, applied to the path before the join
/// (the article's `regexp.MustCompile("^/dir(.*)").ReplaceAllString(path, "$1")`).
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub pattern: Regex,
    pub replacement: String,
}

impl FromStr for Rewrite {
    type Err = String;

    /// Splits at the last `=`, so a pattern may contain `=` but the
    /// replacement may not.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (pattern, replacement) = s.rsplit_once('=').ok_or_else(|| {
            format!("{s:?} has no '='; write REGEX=REPLACEMENT, e.g. '^/dir(.*)=$1'")
        })?;
        let pattern = Regex::new(pattern).map_err(|e| format!("bad regex {pattern:?}: {e}"))?;
        Ok(Rewrite {
            pattern,
            replacement: replacement.to_string(),
        })
    }
}

impl Rewrite {
    pub fn apply(&self, path: &str) -> String {
        self.pattern
            .replace_all(path, self.replacement.as_str())
            .into_owned()
    }
}

/// A request header to set: `NAME:VALUE` (the article's `token:ssss`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
}

impl FromStr for SetHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} has no ':'; write NAME:VALUE, e.g. token:ssss"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("{:?} is not a valid header value", value.trim()))?;
        Ok(SetHeader { name, value })
    }
}

/// A JSON document that replaces every request body (`--replace-body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBody(pub Bytes);

impl FromStr for JsonBody {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: serde_json::Value = serde_json::from_str(s).map_err(|e| {
            format!("not a JSON document ({e}); e.g. '{{\"apple\":2,\"banana\":3,\"cherry\":4}}'")
        })?;
        // Re-serialised compactly, as Go's json.Marshal would send it.
        Ok(JsonBody(Bytes::from(value.to_string())))
    }
}

/// Everything the director does to a request, besides choosing the upstream.
#[derive(Debug, Clone, Default)]
pub struct Director {
    pub rewrites: Vec<Rewrite>,
    pub set_headers: Vec<SetHeader>,
    pub replace_body: Option<JsonBody>,
}

impl Director {
    /// Points `parts` at `upstream`: rewrite, join, merge, set headers. The
    /// Host header is left as the client sent it (Go's default: `req.Host`
    /// is not touched by `NewSingleHostReverseProxy`).
    pub fn direct(&self, parts: &mut Parts, upstream: &Upstream) -> Result<(), http::Error> {
        let path_and_query = match self.unchanged_target(&parts.uri, upstream) {
            // A reference to the bytes hyper parsed: no new string, and no
            // second validation of it.
            Some(same) => same.clone(),
            None => PathAndQuery::try_from(self.joined_target(&parts.uri, upstream))?,
        };
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(upstream.scheme.clone());
        uri.authority = Some(upstream.authority.clone());
        uri.path_and_query = Some(path_and_query);
        parts.uri = Uri::from_parts(uri).map_err(http::Error::from)?;
        for set in &self.set_headers {
            parts.headers.insert(set.name.clone(), set.value.clone());
        }
        if let Some(JsonBody(body)) = &self.replace_body {
            // Go: "if you change the body, change req.ContentLength too".
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        Ok(())
    }

    /// The request's own path and query, when directing leaves them as they
    /// are: no rewrite, an upstream without a base path or query, and a
    /// path that the join keeps (it starts with `/`). A query is kept as
    /// it came unless it is empty (`/a?`), which the merge drops.
    fn unchanged_target<'u>(&self, uri: &'u Uri, upstream: &Upstream) -> Option<&'u PathAndQuery> {
        let unchanged = self.rewrites.is_empty()
            && upstream.path.is_empty()
            && upstream.query.as_deref().is_none_or(str::is_empty)
            && uri.path().starts_with('/')
            && uri.query() != Some("");
        unchanged.then(|| uri.path_and_query()).flatten()
    }

    /// Rewrite, join and merge: the target's path and query for `upstream`.
    fn joined_target(&self, uri: &Uri, upstream: &Upstream) -> String {
        let mut path = uri.path().to_string();
        for rewrite in &self.rewrites {
            path = rewrite.apply(&path);
        }
        let path = join_path(&upstream.path, &path);
        match merge_query(upstream.query.as_deref(), uri.query()) {
            Some(q) => format!("{path}?{q}"),
            None => path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_joining_slash_never_doubles_nor_drops_a_slash() {
        assert_eq!(single_joining_slash("/base", "/xxx"), "/base/xxx");
        assert_eq!(single_joining_slash("/base/", "/xxx"), "/base/xxx");
        assert_eq!(single_joining_slash("/base", "xxx"), "/base/xxx");
        assert_eq!(single_joining_slash("/base/", "xxx"), "/base/xxx");
        assert_eq!(single_joining_slash("/base", "/"), "/base/");
    }

    #[test]
    fn the_request_target_is_reused_only_where_the_join_would_give_it_back() {
        let uris = [
            "/",
            "/a/b?x=1",
            "/a?",
            "/a%2Fb",
            "/?",
            "*",
            "http://h",
            "http://h/x?y",
        ];
        let upstreams = [
            "http://u",
            "http://u/",
            "http://u/base",
            "http://u?q=1",
            "http://u?",
        ];
        let rewrite = Director {
            rewrites: vec!["^/a(.*)=$1".parse().unwrap()],
            ..Director::default()
        };
        let mut reused = 0;
        for director in [Director::default(), rewrite] {
            for uri in uris {
                let uri: Uri = uri.parse().unwrap();
                for upstream in upstreams {
                    let upstream: Upstream = upstream.parse().unwrap();
                    if let Some(same) = director.unchanged_target(&uri, &upstream) {
                        assert_eq!(same.as_str(), director.joined_target(&uri, &upstream));
                        reused += 1;
                    }
                }
            }
        }
        // "/", "/a/b?x=1", "/a%2Fb", "http://h" (its path is "/") and
        // "http://h/x?y", each with the two upstreams that have no base
        // path and no query ("http://u", "http://u?"), without the rewrite.
        assert_eq!(reused, 10);
    }

    #[test]
    fn an_empty_base_keeps_the_request_path() {
        assert_eq!(join_path("", "/abc"), "/abc");
        assert_eq!(join_path("", ""), "/");
        assert_eq!(join_path("/base", "/a%2Fb"), "/base/a%2Fb");
    }

    #[test]
    fn queries_merge_target_first() {
        assert_eq!(
            merge_query(Some("name=123"), Some("x=1")).as_deref(),
            Some("name=123&x=1")
        );
        assert_eq!(
            merge_query(Some("name=123"), None).as_deref(),
            Some("name=123")
        );
        assert_eq!(merge_query(None, Some("x=1")).as_deref(), Some("x=1"));
        assert_eq!(merge_query(Some(""), Some("")), None);
    }

    #[test]
    fn the_articles_rewrite_strips_dir() {
        let rewrite: Rewrite = "^/dir(.*)=$1".parse().unwrap();
        assert_eq!(rewrite.apply("/dir/abc"), "/abc");
        assert_eq!(rewrite.apply("/other"), "/other");
        assert!("^/dir(.*)".parse::<Rewrite>().is_err());
        assert!("([=x".parse::<Rewrite>().is_err());
    }

    #[test]
    fn directing_joins_merges_rewrites_and_sets() {
        let director = Director {
            rewrites: vec!["^/dir(.*)=$1".parse().unwrap()],
            set_headers: vec!["token:ssss".parse().unwrap()],
            replace_body: Some(r#"{"apple": 2}"#.parse().unwrap()),
        };
        let upstream: Upstream = "http://127.0.0.1:2003/base?name=123".parse().unwrap();
        let (mut parts, ()) = http::Request::builder()
            .uri("/dir/xxx?x=1")
            .header("host", "127.0.0.1:2002")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap()
            .into_parts();
        director.direct(&mut parts, &upstream).unwrap();
        assert_eq!(
            parts.uri.to_string(),
            "http://127.0.0.1:2003/base/xxx?name=123&x=1"
        );
        assert_eq!(parts.headers["token"], "ssss");
        assert_eq!(parts.headers["host"], "127.0.0.1:2002");
        assert_eq!(parts.headers["content-length"], "11");
        assert!(!parts.headers.contains_key("transfer-encoding"));
    }

    #[test]
    fn set_header_and_json_body_explain_bad_input() {
        assert!(
            "token"
                .parse::<SetHeader>()
                .unwrap_err()
                .contains("NAME:VALUE")
        );
        assert!("bad name:x".parse::<SetHeader>().is_err());
        assert!(
            "{not json"
                .parse::<JsonBody>()
                .unwrap_err()
                .contains("apple")
        );
    }
}

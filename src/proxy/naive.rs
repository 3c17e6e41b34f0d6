//! `lab naive`: the article's hand-written reverse proxy (简单版反向代理,
//! "代理服务器代码实现"), kept *naive on purpose*: it is the "before" picture
//! that `lab proxy` improves on.
//!
//! The Go code does three things, and so does [`NaiveProxy::handle`]:
//!
//! 1. 解析代理地址, 更改请求体的协议和主机: set the target's scheme and host on
//!    the request's URL, and change nothing else;
//! 2. 请求下游: send the request as it is through `http.DefaultTransport`
//!    (here: the lab's pooled [`Transport`] with its default knobs);
//! 3. 把下游请求内容返回给上游: copy the response's headers and body back.
//!
//! What "as it is" means is the lesson. The upstream sees:
//! - **no X-Forwarded-For, no X-Real-IP**: its `RemoteAddr` is the proxy's own
//!   outbound socket, so the client's address is lost (lab 01);
//! - **hop-by-hop headers** (逐段消息头) such as `Connection`, `Keep-Alive`,
//!   `Proxy-Authorization` and whatever `Connection` names, passed on in both
//!   directions, though they describe one connection only;
//! - **the client's Host** (`127.0.0.1:2002`), not the target's;
//! - **the client's path**, not joined with any base path of `--target`: the
//!   Go code swaps scheme and host only, so `--target http://127.0.0.1:2003/base`
//!   still sends `/abc` to `/abc` (a warning says so at start).
//!
//! # The article's five problems (上方原生HTTP实现正反向代理可能存在的问题)
//!
//! 1. 没有错误回调及错误日志 — no error callback, no error log. Go's code
//!    `panic`s on an upstream error (net/http recovers, logs a stack trace and
//!    drops the connection: the client gets an empty reply). Here that spot
//!    answers 502 with one explaining line and logs a warning, because a lab
//!    that crashes teaches nothing; it is still not a *callback* the user can
//!    replace.
//! 2. 无法更改代理后返回的内容 — the response cannot be modified.
//! 3. 没有负载均衡 — no load balancing: one fixed target.
//! 4. 没有url重写 — no URL rewriting (the base path of the target is ignored).
//! 5. 没有熔断限流, 降级, 数据统计 — no circuit breaking, rate limiting,
//!    degradation or statistics.
//!
//! `lab proxy` (the article's `httputil.ReverseProxy` pipeline) solves 1
//! (ErrorHandler), 2 (ModifyResponse), 3 (`--lb` with four balancers) and 4
//! (the director joins paths and merges queries), and also fixes the header
//! flaws above (X-Forwarded-For, hop-by-hop removal). Problem 5 belongs to the
//! middleware lab (限流 熔断 降级 权限 数据统计), not to either proxy's core.
//!
//! # What hyper does that Go's naive code does not ask for
//!
//! Rust's hyper, like Go's net/http, owns the framing of every message it
//! writes, so "passes through" has limits that are worth knowing:
//! - **Passes through verbatim** (request and response): `Connection` (with
//!   the names it lists), `Keep-Alive`, `Proxy-Connection`,
//!   `Proxy-Authorization`, `Proxy-Authenticate`, `TE`, `Trailer`, `Upgrade`,
//!   and any header that `Connection` names (`X-Hop`). hyper only *reads*
//!   `Connection`: a `close` in it makes hyper close that connection after the
//!   message, which is exactly the flaw: a client's `Connection: close` also
//!   closes the proxy's pooled upstream connection, and an upstream's closes
//!   the client's.
//! - **Re-done by hyper**: `Transfer-Encoding` and `Content-Length` are
//!   honoured as sent (a `chunked` header makes hyper chunk, a length is used
//!   as is), but the bytes on each side are framed by hyper: chunk sizes are
//!   re-cut, and a `Connection: close` is added by hyper when it decides to
//!   close. Header *names* go out in lower case (Go writes `X-Foo`).
//! - **Not emulated**: Go's `DefaultTransport` adds `Accept-Encoding: gzip`
//!   and `User-Agent: Go-http-client/1.1` when absent and silently gunzips;
//!   the lab's transport adds nothing. An `Upgrade` (WebSocket) is forwarded
//!   but never bridged: the 101 reaches the client and the connection then
//!   dies, as it does behind the Go code.
//!
//! One more flaw, kept like the others: the Go code never calls
//! `rw.WriteHeader(resp.StatusCode)`, so the first body write sends **200**,
//! whatever the upstream said: `/base/error` arrives as `200` with the body
//! `error handler`. The upstream's status is lost, and with it every client's
//! and cache's idea of success. (`101 Switching Protocols` is left alone so
//! the upgrade flaw above shows as it does in Go.)

use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::proxy::explain;
use crate::proxy::transport::{Transport, TransportConfig, TransportError};
use crate::server::Conn;

// Every response body: the upstream's, streamed, or the proxy's own line.
use crate::body::Body as ProxyBody;

/// The article's `port = "2002"`, on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2002";
/// The article's `proxyAddr = "http://127.0.0.1:2003"`.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:2003";

/// The upstream the naive proxy sends everything to (`--target`): a scheme
/// and a host, like the Go code's `url.Parse(proxyAddr)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    /// A path the user wrote after the host (`/base`): the naive proxy
    /// ignores it, as the article's code does.
    ignored_path: Option<String>,
}

/// Why `--target` is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not a URL; write the upstream as http://HOST:PORT, e.g. {DEFAULT_TARGET}")]
    NotAUrl(String),
    #[error(
        "{url:?} has no scheme or no host; write it as http://HOST:PORT, e.g. {DEFAULT_TARGET}"
    )]
    Incomplete { url: String },
    #[error(
        "{url:?} uses {scheme}://; the naive proxy speaks plain http:// to its target (for an \
         https:// upstream use `lab proxy --upstream https://… --upstream-ca FILE`)"
    )]
    UnsupportedScheme { url: String, scheme: String },
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Target, TargetError> {
        let s = s.trim();
        let uri: Uri = s.parse().map_err(|_| TargetError::NotAUrl(s.to_string()))?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(TargetError::Incomplete { url: s.to_string() });
        };
        if scheme != Scheme::HTTP {
            return Err(TargetError::UnsupportedScheme {
                url: s.to_string(),
                scheme: scheme.to_string(),
            });
        }
        let ignored_path = parts
            .path_and_query
            .map(|pq| pq.as_str().to_string())
            .filter(|pq| !pq.is_empty() && pq != "/");
        Ok(Target {
            scheme,
            authority,
            ignored_path,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

impl Target {
    /// The path (and query) written after the host, which this proxy ignores.
    pub fn ignored_path(&self) -> Option<&str> {
        self.ignored_path.as_deref()
    }

    /// The request's URL with the target's scheme and host: the Go code's
    /// `req.URL.Scheme = proxy.Scheme; req.URL.Host = proxy.Host`. Path and
    /// query stay exactly as the client sent them.
    fn rewrite(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

/// The article's `handler`: one fixed target and `http.DefaultTransport`.
/// Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct NaiveProxy {
    target: Target,
    transport: Transport,
    limits: crate::server::Limits,
}

impl NaiveProxy {
    /// A naive proxy to `target` over a pool with Go's default knobs (the
    /// article's code sets none).
    pub fn new(target: Target) -> NaiveProxy {
        NaiveProxy {
            target,
            transport: Transport::new(&TransportConfig::default()),
            limits: crate::server::Limits::default(),
        }
    }

    /// The same proxy, its listener refusing what `limits` says.
    pub fn with_limits(self, limits: crate::server::Limits) -> NaiveProxy {
        NaiveProxy { limits, ..self }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Proxies one request: the article's three steps, nothing more.
    pub async fn handle(&self, conn: &Conn, req: Request<Incoming>) -> Response<ProxyBody> {
        if req.method() == http::Method::CONNECT {
            // The article's code would send it on as an ordinary request and
            // answer 200, which a client reads as "tunnel open". The lab stops it.
            let mut refused = explain(
                StatusCode::METHOD_NOT_ALLOWED,
                "lab naive: CONNECT asks for a tunnel, which is a forward proxy's job \
                 (`lab forward`); a reverse proxy has none to give"
                    .to_string(),
            );
            refused
                .headers_mut()
                .insert(http::header::ALLOW, crate::server::ALLOW_ALL_BUT_CONNECT);
            return refused;
        }
        let (mut parts, body) = req.into_parts();
        let shown = format!("{} {}", parts.method, parts.uri);
        tracing::debug!("{shown} from {} → {}", conn.peer, self.target);

        // 1. 更改请求体的协议和主机: scheme and host only. Host header,
        //    hop-by-hop headers, X-Forwarded-For: all left as the client sent them.
        parts.uri = match self.target.rewrite(&parts.uri) {
            Ok(uri) => uri,
            Err(err) => {
                tracing::warn!("{shown}: cannot address it to {}: {err}", self.target);
                return explain(
                    StatusCode::BAD_REQUEST,
                    format!("lab naive: cannot send {shown} to {}: {err}", self.target),
                );
            }
        };
        // Go's Transport always speaks HTTP/1.1 upstream, whatever the client spoke.
        parts.version = Version::HTTP_11;
        // 2. 请求下游. Where Go panics, the lab explains and logs. (The lab
        //    counts the body against --max-body on the way, which Go's
        //    code does not.)
        let max = self.limits.max_body;
        let timeout = self.limits.body_timeout;
        let limited = crate::body::limit::send_limited(body.boxed(), max, timeout, |body| {
            self.transport.round_trip(Request::from_parts(parts, body))
        })
        .await;
        // The client stopped sending its body: its fault, whoever gave up.
        if let Some(stall) = limited.client_stalled() {
            return explain(
                StatusCode::REQUEST_TIMEOUT,
                format!("lab naive: {stall}; not passed on whole"),
            );
        }
        let response = match limited.sent {
            None => {
                return explain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "lab naive: the request body grew past {max} bytes (--max-body); \
                         it was not passed on whole"
                    ),
                );
            }
            Some(Ok(response)) => response,
            // The client's own body broke (e.g. a bad chunk size): its fault.
            Some(Err(TransportError::Request(detail))) => {
                return explain(
                    StatusCode::BAD_REQUEST,
                    format!("lab naive: the request could not be forwarded: {detail}"),
                );
            }
            Some(Err(err)) => {
                tracing::warn!(
                    "{shown}: the target {} failed: {err} (the article's code panics here)",
                    self.target
                );
                return explain(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "lab naive: the target {} did not answer ({err}); is the real server running? \
                         Start it with `lab realserver`, or point --target at a running server",
                        self.target
                    ),
                );
            }
        };

        // 3. 把下游请求内容返回给上游: every header (hop-by-hop ones too) and
        //    the body, streamed frame by frame as it arrives. Not the status:
        //    the Go code never calls rw.WriteHeader, so Go sends 200.
        let mut response = response.map(BodyExt::boxed);
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            *response.status_mut() = StatusCode::OK;
        }
        response
    }
}

/// Serves the naive proxy on `listener` until `shutdown` resolves, then
/// drains (see [`crate::server::serve`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    target: Target,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    super::serve(listener, Arc::new(NaiveProxy::new(target)), shutdown).await
}

impl super::Handler for NaiveProxy {
    fn respond(
        &self,
        conn: &Conn,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send {
        self.handle(conn, req)
    }

    fn limits(&self) -> crate::server::Limits {
        self.limits.clone()
    }
}

/// `lab naive`: binds `listen`, says what it does, serves until `shutdown`.
pub async fn run(
    listen: SocketAddr,
    target: Target,
    limits: crate::server::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = crate::net::bind(listen, "--listen").await?;
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    // The article prints "server on port 2002".
    tracing::info!("server on {addr} (naive reverse proxy to {target})");
    if let Some(path) = target.ignored_path() {
        tracing::warn!(
            "the naive proxy ignores {path:?} in --target: like the article's code it only swaps \
             scheme and host, so /abc is sent to {target}/abc (`lab proxy` joins the paths)"
        );
    }
    tracing::info!("try: curl -s http://{addr}/abc   (Ctrl-C stops the proxy)");
    let proxy = NaiveProxy::new(target).with_limits(limits);
    super::serve(listener, Arc::new(proxy), shutdown).await?;
    tracing::info!("naive proxy stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keeps_scheme_and_host_and_notes_an_ignored_path() {
        let target: Target = "http://127.0.0.1:2003".parse().unwrap();
        assert_eq!(target.to_string(), "http://127.0.0.1:2003");
        assert_eq!(target.ignored_path(), None);
        let with_base: Target = "http://127.0.0.1:2003/base".parse().unwrap();
        assert_eq!(with_base.ignored_path(), Some("/base"));
        assert_eq!(with_base.to_string(), "http://127.0.0.1:2003");
    }

    #[test]
    fn rewrite_swaps_scheme_and_host_only() {
        let target: Target = "http://127.0.0.1:2003/base".parse().unwrap();
        let uri: Uri = "/abc?x=1".parse().unwrap();
        assert_eq!(
            target.rewrite(&uri).unwrap().to_string(),
            "http://127.0.0.1:2003/abc?x=1"
        );
        // An absolute-form request (a client that thinks this is a forward
        // proxy) loses its own host the same way.
        let absolute: Uri = "http://elsewhere.example/p".parse().unwrap();
        assert_eq!(
            target.rewrite(&absolute).unwrap().to_string(),
            "http://127.0.0.1:2003/p"
        );
    }

    #[test]
    fn bad_targets_say_what_to_write() {
        assert!(matches!(
            "127.0.0.1:2003".parse::<Target>(),
            Err(TargetError::Incomplete { .. })
        ));
        for url in ["ftp://127.0.0.1:21", "https://127.0.0.1:2003"] {
            assert!(
                matches!(
                    url.parse::<Target>(),
                    Err(TargetError::UnsupportedScheme { .. })
                ),
                "{url}"
            );
        }
        let err = "not a url at all".parse::<Target>().unwrap_err();
        assert!(err.to_string().contains("http://HOST:PORT"), "{err}");
    }
}

//! `lab forward`: the article's forward proxy (正向代理, "go实现HTTP代理 1."),
//! done correctly.
//!
//! A forward proxy works for the *client*: the browser or `curl -x` is told
//! to use it, and then asks it for whole URLs. Its request line carries the
//! full target (absolute-form, RFC 9112 §3.2.2):
//!
//! ```text
//! GET http://127.0.0.1:2003/abc HTTP/1.1      ← to a forward proxy
//! GET /abc HTTP/1.1                           ← to a server or a reverse proxy
//! ```
//!
//! The article's three steps are [`ForwardProxy::handle`]'s, in order:
//!
//! 1. 复制原请求对象, 配置新请求: keep the method, URL and body; drop the
//!    hop-by-hop headers (逐段消息头: `Connection` and what it names,
//!    `Proxy-Connection`, `Proxy-Authorization`, …, see
//!    [`headers::prepare_request`]); set `Host` from the URL (a proxy must
//!    ignore the client's `Host` for an absolute-form request); append the
//!    client's IP to X-Forwarded-For (the article's only header change) and
//!    this proxy to `Via` (RFC 9110 §7.6.3, which is also how a loop is seen);
//! 2. 请求下游: send it through the shared pooled [`Transport`] (or to a
//!    `--parent-proxy`, which is how proxies are chained);
//! 3. 处理响应返回给客户端: drop the response's hop-by-hop headers, add `Via`,
//!    and stream status, headers and body back.
//!
//! Two things the Go code does not do are here because a forward proxy needs
//! them. **CONNECT tunnels** (隧道): for `https://` URLs a client asks
//! `CONNECT host:443`, the proxy dials, answers 200, and from then on copies
//! bytes both ways without reading them (TLS stays end to end). Tunnels are
//! limited to port 443 and the lab's ports ([`DEFAULT_CONNECT_PORTS`], plus
//! `--allow-connect-port`): a proxy that tunnels anywhere lets its users
//! reach mail servers, SSH or databases in its name. And **refusals that
//! explain**: a plain `GET /abc` (this is not a reverse proxy), a request for
//! the proxy itself (a loop), an unreachable target.
//!
//! It listens on 127.0.0.1 by default; anywhere else it is an *open proxy*,
//! usable by anyone who can reach the port, and it says so loudly at start.
//!
//! The files, one idea each: this one holds the configuration and the
//! service's entry ([`ForwardProxy::handle`], loop refusal, `lab forward`
//! itself); `absolute` the article's three steps for an absolute-form
//! request; `tunnel` CONNECT; `parent` the chaining to a `--parent-proxy`;
//! `error` the refusals and their statuses.

mod absolute;
mod error;
mod parent;
mod tunnel;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use http::uri::Authority;
use http::{Method, Request, Response, header};
use hyper::body::Incoming;

use crate::cidr::Cidr;
use crate::proxy::headers::Pseudonym;
use crate::proxy::transport::{Transport, TransportConfig};
use crate::proxy::{explain, headers};
use crate::server::Conn;

use crate::body::Body as ProxyBody;

pub use error::ForwardError;
pub use parent::{ParentProxy, ParentProxyError};

/// The article's `http.ListenAndServe(":8080", nil)`, on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Ports a CONNECT may reach without `--allow-connect-port`: HTTPS, and the
/// lab's two real servers. Not the proxies' ports (2002, 8080): a tunnel is
/// opaque, so through one a client would reach `lab proxy`'s own `/_lab/`
/// pages, which the forward proxy refuses to fetch.
pub const DEFAULT_CONNECT_PORTS: [u16; 3] = [443, 2003, 2004];

/// What a forward proxy can be told.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Ports a CONNECT tunnel may reach.
    pub connect_ports: BTreeSet<u16>,
    /// Send everything to this proxy instead of to the targets (chaining).
    pub parent_proxy: Option<ParentProxy>,
    /// The upstream pool's knobs.
    pub transport: TransportConfig,
    /// The clients it serves (`--allow`); by default loopback only.
    pub allowed_clients: Vec<Cidr>,
    /// What the listener refuses (`--max-body`, `--header-timeout`).
    pub limits: crate::server::Limits,
    /// Pass request headers whose names have underscores (see
    /// [`headers::drop_underscored`]).
    pub keep_underscores: bool,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            connect_ports: DEFAULT_CONNECT_PORTS.into_iter().collect(),
            parent_proxy: None,
            transport: TransportConfig::default(),
            allowed_clients: Cidr::LOOPBACK.to_vec(),
            limits: crate::server::Limits::default(),
            keep_underscores: false,
        }
    }
}

impl ForwardConfig {
    /// Also lets CONNECT reach `port`.
    pub fn allow_connect_port(mut self, port: u16) -> ForwardConfig {
        self.connect_ports.insert(port);
        self
    }

    /// Sends every request and tunnel through `parent`.
    pub fn parent_proxy(mut self, parent: ParentProxy) -> ForwardConfig {
        self.parent_proxy = Some(parent);
        self
    }
}

/// The forward proxy's service. Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct ForwardProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ForwardConfig,
    transport: Transport,
    /// This proxy's name in `Via` (`1.1 lab-forward-1a2b3c4d`): random per
    /// process, so two chained proxies never take each other for themselves.
    pseudonym: Pseudonym,
}

impl ForwardProxy {
    pub fn new(config: ForwardConfig) -> ForwardProxy {
        let transport = Transport::new(&config.transport);
        let pseudonym = Pseudonym::new(format!("lab-forward-{:08x}", rand::random::<u32>()));
        ForwardProxy {
            inner: Arc::new(Inner {
                config,
                transport,
                pseudonym,
            }),
        }
    }

    /// The name this proxy writes into `Via`, and the values made from it.
    pub fn pseudonym(&self) -> &Pseudonym {
        &self.inner.pseudonym
    }

    /// Answers one request: a tunnel for CONNECT, else the article's three steps.
    pub async fn handle(&self, conn: &Conn, req: Request<Incoming>) -> Response<ProxyBody> {
        let method = req.method().clone();
        let host = request_host(&req);
        // The article's `fmt.Printf("Received request %s %s %s\n", …)`.
        tracing::debug!("Received request {method} {host} {}", conn.peer);

        let allowed = &self.inner.config.allowed_clients;
        let result = if !Cidr::any_contains(allowed, conn.peer.ip()) {
            Err(ForwardError::ClientNotAllowed {
                client: conn.peer.ip(),
                allowed: Cidr::list(allowed),
            })
        } else if method == Method::CONNECT {
            self.connect(conn, req).await
        } else {
            self.forward(conn, req).await
        };
        match result {
            Ok(response) => response,
            Err(err) => {
                let status = err.status();
                if status.is_server_error() {
                    tracing::warn!("{method} {host} from {}: {status}: {err}", conn.peer);
                } else {
                    tracing::info!("{method} {host} from {}: {status}: {err}", conn.peer);
                }
                explain(status, err.to_string())
            }
        }
    }

    /// Refuses a request this proxy has seen before (its own `Via`) or one
    /// addressed to this proxy itself.
    fn refuse_loops(
        &self,
        conn: &Conn,
        request_headers: &http::HeaderMap,
        authority: &Authority,
        default_port: u16,
    ) -> Result<(), ForwardError> {
        if headers::via_names(request_headers, self.pseudonym().as_str()) {
            return Err(ForwardError::ViaLoop {
                pseudonym: self.pseudonym().to_string(),
            });
        }
        let port = authority.port_u16().unwrap_or(default_port);
        let host = authority.host();
        let ip = if host.eq_ignore_ascii_case("localhost") {
            Some(IpAddr::from([127, 0, 0, 1]))
        } else {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        };
        if ip.is_some_and(|ip| is_self(SocketAddr::new(ip, port), conn.local)) {
            return Err(ForwardError::Loop {
                target: authority.to_string(),
                proxy: conn.local,
            });
        }
        Ok(())
    }
}

/// Whether connecting to `target` would reach the proxy listening on `local`:
/// same port, and its address, a loopback one or the unspecified one.
fn is_self(target: SocketAddr, local: SocketAddr) -> bool {
    let ip = target.ip();
    target.port() == local.port() && (ip == local.ip() || ip.is_loopback() || ip.is_unspecified())
}

/// What the article logs as `req.Host`: the URL's host for absolute-form and
/// CONNECT requests, else the Host header.
fn request_host(req: &Request<Incoming>) -> String {
    match req.uri().authority() {
        Some(authority) => authority.to_string(),
        None => req
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_else(|| "-".into()),
    }
}

/// Serves the forward proxy on `listener` until `shutdown` resolves, then
/// drains, waiting for open tunnels to close (see [`crate::server::serve`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ForwardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    super::serve(listener, Arc::new(ForwardProxy::new(config)), shutdown).await
}

impl super::Handler for ForwardProxy {
    fn respond(
        &self,
        conn: &Conn,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send {
        self.handle(conn, req)
    }

    fn limits(&self) -> crate::server::Limits {
        self.inner.config.limits.clone()
    }
}

/// `lab forward`: binds `listen`, warns when that is beyond loopback, serves
/// until `shutdown`.
pub async fn run(
    listen: SocketAddr,
    config: ForwardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = crate::net::bind(listen, "--listen").await?;
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    // The article prints "server on :8080".
    tracing::info!("server on {addr} (forward proxy)");
    let allowed = &config.allowed_clients;
    if allowed.iter().any(|range| !range.is_loopback_only()) {
        tracing::warn!(
            "⚠ OPEN PROXY: clients from {} may use it (--allow), and any of them can browse and \
             tunnel through it as you. Unless that is what you want, stop it and leave --allow out \
             (loopback only)",
            Cidr::list(allowed)
        );
    } else if !addr.ip().is_loopback() {
        tracing::info!(
            "{addr} is reachable from other machines, but only loopback clients may use it \
             (others get 403); --allow CIDR serves more"
        );
    }
    let ports: Vec<String> = config.connect_ports.iter().map(u16::to_string).collect();
    tracing::info!("CONNECT tunnels allowed to ports {}", ports.join(", "));
    if let Some(parent) = &config.parent_proxy {
        tracing::info!("every request goes through the parent proxy {parent}");
    }
    tracing::info!(
        "try: curl -s -x http://{addr} http://127.0.0.1:2003/abc   (Ctrl-C stops the proxy)"
    );
    serve(listener, config, shutdown).await?;
    tracing::info!("forward proxy stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn self_is_this_port_on_this_or_any_loopback_address() {
        assert!(is_self("127.0.0.1:8080".parse().unwrap(), local()));
        assert!(is_self("127.0.0.2:8080".parse().unwrap(), local()));
        assert!(is_self("[::1]:8080".parse().unwrap(), local()));
        assert!(is_self("0.0.0.0:8080".parse().unwrap(), local()));
        assert!(!is_self("127.0.0.1:2003".parse().unwrap(), local()));
        assert!(!is_self("10.0.0.1:8080".parse().unwrap(), local()));
        let everywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(is_self("127.0.0.1:8080".parse().unwrap(), everywhere));
    }
}

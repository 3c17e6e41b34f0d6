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

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::cidr::Cidr;
use crate::proxy::headers::{self, HeaderError, X_FORWARDED_FOR};
use crate::proxy::transport::{Transport, TransportConfig, TransportError, error_chain};
use crate::server::Conn;

use crate::body::Body as ProxyBody;

/// The article's `http.ListenAndServe(":8080", nil)`, on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Ports a CONNECT may reach without `--allow-connect-port`: HTTPS, and the
/// lab's two real servers. Not the proxies' ports (2002, 8080): a tunnel is
/// opaque, so through one a client would reach `lab proxy`'s own `/_lab/`
/// pages, which the forward proxy refuses to fetch.
pub const DEFAULT_CONNECT_PORTS: [u16; 3] = [443, 2003, 2004];

/// The longest response head a parent proxy may send to our CONNECT.
const MAX_TUNNEL_HEAD: usize = 16 * 1024;

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
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            connect_ports: DEFAULT_CONNECT_PORTS.into_iter().collect(),
            parent_proxy: None,
            transport: TransportConfig::default(),
            allowed_clients: Cidr::LOOPBACK.to_vec(),
            limits: crate::server::Limits::default(),
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

/// The next forward proxy in a chain (`--parent-proxy http://HOST:PORT`),
/// like Go's `Transport.Proxy` or squid's `cache_peer … parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProxy {
    authority: Authority,
}

/// Why `--parent-proxy` is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentProxyError {
    #[error("{0:?} is not a proxy address; write http://HOST:PORT, e.g. http://127.0.0.1:8081")]
    Invalid(String),
    #[error("{0:?}: a parent proxy is spoken to in plain HTTP; write http://HOST:PORT (no path)")]
    Unsupported(String),
}

impl FromStr for ParentProxy {
    type Err = ParentProxyError;

    fn from_str(s: &str) -> Result<ParentProxy, ParentProxyError> {
        let s = s.trim();
        let uri: Uri = s
            .parse()
            .map_err(|_| ParentProxyError::Invalid(s.to_string()))?;
        let parts = uri.into_parts();
        let plain_http = parts
            .scheme
            .as_ref()
            .is_none_or(|scheme| *scheme == Scheme::HTTP);
        let no_path = parts
            .path_and_query
            .as_ref()
            .is_none_or(|pq| pq.as_str().is_empty() || pq.as_str() == "/");
        match parts.authority {
            Some(authority) if plain_http && no_path && authority.port_u16().is_some() => {
                Ok(ParentProxy { authority })
            }
            Some(_) if !(plain_http && no_path) => {
                Err(ParentProxyError::Unsupported(s.to_string()))
            }
            _ => Err(ParentProxyError::Invalid(s.to_string())),
        }
    }
}

impl std::fmt::Display for ParentProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// Why the proxy answered a request itself instead of forwarding it. Each
/// maps to a status ([`ForwardError::status`]) and its message is the body.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "this is a forward proxy (正向代理): it needs the whole URL in the request line \
         (`GET http://HOST:PORT/path`), but got `{method} {target}`, the form a server or a \
         reverse proxy (反向代理) receives. Use it as a proxy: \
         `curl -x http://{proxy} http://127.0.0.1:2003{target}`; for a reverse proxy see \
         `lab naive` or `lab proxy`"
    )]
    OriginForm {
        method: Method,
        target: String,
        proxy: SocketAddr,
    },
    #[error(
        "this forward proxy fetches http:// URLs, not {scheme}://; for https:// a client \
         usually opens a CONNECT tunnel (curl does when you ask it for an https:// URL with -x)"
    )]
    UnsupportedScheme { scheme: String },
    #[error("CONNECT needs HOST:PORT (authority-form), e.g. `CONNECT 127.0.0.1:443`; got {0:?}")]
    BadConnectTarget(String),
    #[error("cannot forward these headers: {0}")]
    Headers(#[from] HeaderError),
    #[error(
        "{target} is this proxy itself ({proxy}): forwarding there would send the request \
         around in a loop. Ask for the real server's address instead, e.g. \
         `curl -x http://{proxy} http://127.0.0.1:2003/abc`"
    )]
    Loop { target: String, proxy: SocketAddr },
    #[error(
        "this request already passed through this proxy (its Via header names {pseudonym}): \
         a loop, stopped here"
    )]
    ViaLoop { pseudonym: String },
    #[error(
        "CONNECT to port {port} refused: tunnels go only to ports {allowed} (a proxy that tunnels \
         anywhere lets its users reach mail, SSH or database servers in its name). Allow it with \
         `lab forward --allow-connect-port {port}`"
    )]
    PortNotAllowed { port: u16, allowed: String },
    #[error(
        "cannot reach {target}: {detail}; is a server running there? (`lab realserver` starts the article's)"
    )]
    Unreachable { target: String, detail: String },
    #[error("the request could not be forwarded: {0}")]
    BadRequestBody(String),
    #[error("the request body grew past {max} bytes (--max-body); it was not passed on whole")]
    BodyTooLarge { max: u64 },
    #[error(
        "this forward proxy serves only clients from {allowed}, and {client} is not one \
         (a proxy anyone can use is an open proxy). Its owner can allow more with \
         `lab forward --allow CIDR`"
    )]
    ClientNotAllowed { client: IpAddr, allowed: String },
    #[error(
        "{target}: the lab's own pages (/_lab/…) are not reachable through the forward proxy; \
         ask the reverse proxy for them directly (curl http://{authority}/_lab/stats)"
    )]
    LabPage { target: String, authority: String },
    #[error("the parent proxy {parent} refused to open a tunnel to {target}: {status_line}")]
    ParentRefused {
        parent: String,
        target: String,
        status: StatusCode,
        status_line: String,
    },
}

impl ForwardError {
    /// The status the client is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ForwardError::OriginForm { .. }
            | ForwardError::UnsupportedScheme { .. }
            | ForwardError::BadConnectTarget(_)
            | ForwardError::Headers(_)
            | ForwardError::BadRequestBody(_) => StatusCode::BAD_REQUEST,
            ForwardError::Loop { .. } | ForwardError::ViaLoop { .. } => StatusCode::LOOP_DETECTED,
            ForwardError::PortNotAllowed { .. }
            | ForwardError::ClientNotAllowed { .. }
            | ForwardError::LabPage { .. } => StatusCode::FORBIDDEN,
            ForwardError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            ForwardError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ForwardError::ParentRefused { status, .. } => *status,
        }
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
    pseudonym: String,
}

impl ForwardProxy {
    pub fn new(config: ForwardConfig) -> ForwardProxy {
        let transport = Transport::new(&config.transport);
        let pseudonym = format!("lab-forward-{:08x}", rand::random::<u32>());
        ForwardProxy {
            inner: Arc::new(Inner {
                config,
                transport,
                pseudonym,
            }),
        }
    }

    /// The name this proxy writes into `Via`.
    pub fn pseudonym(&self) -> &str {
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

    /// An absolute-form request: the article's steps 1 to 3.
    async fn forward(
        &self,
        conn: &Conn,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let uri = req.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ForwardError::OriginForm {
                method: req.method().clone(),
                target: uri.to_string(),
                proxy: conn.local,
            });
        };
        // `https://` in absolute-form is rare (clients tunnel with CONNECT)
        // but valid: the transport then speaks TLS to the target itself.
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            other => {
                return Err(ForwardError::UnsupportedScheme {
                    scheme: other.to_string(),
                });
            }
        };
        let authority = authority.clone();
        self.refuse_loops(conn, req.headers(), &authority, default_port)?;
        // The proxy's pages answer whoever reaches them on loopback; through
        // a forward proxy, that could be anyone the forward proxy serves.
        if crate::proxy::admin::is_lab_path(uri.path()) {
            return Err(ForwardError::LabPage {
                target: uri.to_string(),
                authority: authority.to_string(),
            });
        }

        // An upgrade (WebSocket over a plain proxy) is bridged after the 101:
        // claim the client's side of it before the request is taken apart.
        let client_upgrade = headers::upgrade_type(req.headers())
            .is_some()
            .then(|| hyper::upgrade::on(&mut req));

        // 1. 复制原请求, 配置新请求.
        let (mut parts, body) = req.into_parts();
        headers::prepare_request(&mut parts.headers)?;
        // RFC 9112 §3.2.2: for an absolute-form request a proxy ignores the
        // client's Host and sends the URL's.
        if let Ok(host) = HeaderValue::from_str(&host_and_port(&authority)) {
            parts.headers.insert(header::HOST, host);
        }
        // The article's X-Forwarded-For: prior values joined, then this client.
        let xff = headers::appended_x_forwarded_for(&parts.headers, &conn.peer.ip().to_string());
        if let Ok(value) = HeaderValue::from_str(&xff) {
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
        headers::add_via(&mut parts.headers, parts.version, self.pseudonym());
        parts.version = Version::HTTP_11;
        // 2. 请求下游, the body counted against --max-body on the way.
        let max = self.inner.config.limits.max_body;
        let sent = crate::body::limit::send_limited(body.boxed(), max, |body| {
            self.round_trip(conn, Request::from_parts(parts, body), &authority)
        })
        .await;
        let mut response = sent.ok_or(ForwardError::BodyTooLarge { max })??;

        // 3. 处理响应, 返回给客户端.
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            match client_upgrade {
                Some(client) => {
                    let upstream = hyper::upgrade::on(&mut response);
                    super::upgrade::bridge(
                        conn,
                        client,
                        upstream,
                        format!("upgrade {} ⇄ {authority}", conn.peer),
                        (),
                    );
                }
                None => {
                    return Err(ForwardError::Unreachable {
                        target: authority.to_string(),
                        detail: "it switched protocols (101) without being asked to".into(),
                    });
                }
            }
        }
        headers::prepare_response(response.headers_mut(), switching);
        let version = response.version();
        headers::add_via(response.headers_mut(), version, self.pseudonym());
        Ok(response.map(BodyExt::boxed))
    }

    async fn round_trip(
        &self,
        conn: &Conn,
        outbound: Request<RequestBody>,
        authority: &Authority,
    ) -> Result<Response<Incoming>, ForwardError> {
        let unreachable = |detail: String| ForwardError::Unreachable {
            target: authority.to_string(),
            detail,
        };
        match &self.inner.config.parent_proxy {
            None => self
                .inner
                .transport
                .round_trip(outbound)
                .await
                .map_err(|err| match err {
                    TransportError::Request(detail) => ForwardError::BadRequestBody(detail),
                    other => unreachable(other.to_string()),
                }),
            Some(parent) => {
                let timeout = self.inner.config.transport.connect_timeout;
                via_parent(parent, outbound, timeout, conn)
                    .await
                    .map_err(|detail| {
                        unreachable(format!("through the parent proxy {parent}: {detail}"))
                    })
            }
        }
    }

    /// `CONNECT host:port`: dial, answer 200, then copy bytes both ways.
    async fn connect(
        &self,
        conn: &Conn,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let target = req.uri().to_string();
        let Some(authority) = req.uri().authority().cloned() else {
            return Err(ForwardError::BadConnectTarget(target));
        };
        let Some(port) = authority.port_u16() else {
            return Err(ForwardError::BadConnectTarget(target));
        };
        let allowed = &self.inner.config.connect_ports;
        if !allowed.contains(&port) {
            return Err(ForwardError::PortNotAllowed {
                port,
                allowed: allowed
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        self.refuse_loops(conn, req.headers(), &authority, port)?;

        let timeout = self.inner.config.transport.connect_timeout;
        let upstream = match &self.inner.config.parent_proxy {
            None => dial(&authority, port, conn.local, timeout).await?,
            Some(parent) => {
                tunnel_via_parent(parent, &authority, self.pseudonym(), timeout).await?
            }
        };

        // hyper hands over the client's connection once our 200 is written.
        let client = hyper::upgrade::on(req);
        let (stop, label) = (
            conn.stop.clone(),
            format!("tunnel {} ⇄ {authority}", conn.peer),
        );
        let tunneled = conn.tunneled.clone();
        conn.tasks.spawn(async move {
            match client.await {
                Ok(client) => {
                    Conn::mark_tunnel(&tunneled);
                    super::upgrade::splice(TokioIo::new(client), upstream, stop, &label).await
                }
                Err(err) => tracing::debug!("{label}: the client left before the tunnel: {err}"),
            }
        });
        let mut response = Response::new(crate::body::empty());
        headers::add_via(response.headers_mut(), Version::HTTP_11, self.pseudonym());
        Ok(response)
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
        if headers::via_names(request_headers, self.pseudonym()) {
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

/// `host[:port]` of an authority, without any `user:password@`.
fn host_and_port(authority: &Authority) -> String {
    match authority.port() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_string(),
    }
}

/// Dials a CONNECT target directly, refusing one that resolves to this proxy.
async fn dial(
    authority: &Authority,
    port: u16,
    local: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ForwardError> {
    let target = authority.to_string();
    let unreachable = |detail: String| ForwardError::Unreachable {
        target: target.clone(),
        detail,
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| unreachable(format!("resolving {host} took longer than {timeout:?}")))?
            .map_err(|err| unreachable(format!("cannot resolve {host}: {err}")))?
            .collect();
    // A name can point back here even when the literal check passed.
    if addrs.iter().any(|addr| is_self(*addr, local)) {
        return Err(ForwardError::Loop {
            target,
            proxy: local,
        });
    }
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => last = format!("connecting to {addr}: {err}"),
            Err(_) => last = format!("connecting to {addr} took longer than {timeout:?}"),
        }
    }
    Err(unreachable(last))
}

/// Sends one request to the parent proxy on a connection of its own, in
/// absolute-form (the parent is a forward proxy too).
async fn via_parent(
    parent: &ParentProxy,
    outbound: Request<RequestBody>,
    timeout: Duration,
    conn: &Conn,
) -> Result<Response<Incoming>, String> {
    let stream = connect_parent(parent, timeout).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| error_chain(&err))?;
    // The connection future does the I/O; it ends with the exchange (or
    // hands the socket over when the exchange upgrades). Tracked, so that
    // shutdown waits for it.
    conn.tasks.spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!("parent proxy connection ended: {err}");
        }
    });
    sender
        .send_request(outbound)
        .await
        .map_err(|err| error_chain(&err))
}

async fn connect_parent(parent: &ParentProxy, timeout: Duration) -> Result<TcpStream, String> {
    let addr = parent.authority.as_str();
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(err)) => Err(format!("cannot connect: {err}")),
        Err(_) => Err(format!("connecting took longer than {timeout:?}")),
    }
}

/// Asks the parent proxy for a tunnel to `target`; the stream it returns is
/// the tunnel, ready for the client's bytes.
async fn tunnel_via_parent(
    parent: &ParentProxy,
    target: &Authority,
    pseudonym: &str,
    timeout: Duration,
) -> Result<TcpStream, ForwardError> {
    let unreachable = |detail: String| ForwardError::Unreachable {
        target: target.to_string(),
        detail: format!("through the parent proxy {parent}: {detail}"),
    };
    let mut stream = connect_parent(parent, timeout).await.map_err(unreachable)?;
    let request =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nVia: 1.1 {pseudonym}\r\n\r\n");
    let head = async {
        stream.write_all(request.as_bytes()).await?;
        read_head(&mut stream).await
    };
    let head = tokio::time::timeout(timeout, head)
        .await
        .map_err(|_| unreachable(format!("no answer to CONNECT within {timeout:?}")))?
        .map_err(|err| unreachable(err.to_string()))?;
    let status_line = head.lines().next().unwrap_or_default().to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<StatusCode>().ok())
        .ok_or_else(|| unreachable(format!("not an HTTP answer: {status_line:?}")))?;
    if status.is_success() {
        Ok(stream)
    } else {
        Err(ForwardError::ParentRefused {
            parent: parent.to_string(),
            target: target.to_string(),
            status,
            status_line,
        })
    }
}

/// Reads a response head up to its blank line, one byte at a time so that
/// not one byte of the tunnel after it is consumed.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_TUNNEL_HEAD {
            return Err(std::io::Error::other("response head too long"));
        }
        match stream.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(std::io::Error::other("closed before answering"));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A short plain-text answer from the proxy itself, one line.
fn explain(status: StatusCode, message: String) -> Response<ProxyBody> {
    super::text_response(status, message + "\n")
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

    #[test]
    fn host_header_drops_userinfo() {
        let authority = Authority::from_static("user:pw@127.0.0.1:2003");
        assert_eq!(host_and_port(&authority), "127.0.0.1:2003");
        assert_eq!(
            host_and_port(&Authority::from_static("example.com")),
            "example.com"
        );
        assert_eq!(
            host_and_port(&Authority::from_static("[::1]:80")),
            "[::1]:80"
        );
    }

    #[test]
    fn parent_proxy_is_plain_http_host_and_port() {
        let parent: ParentProxy = "http://127.0.0.1:8081".parse().unwrap();
        assert_eq!(parent.to_string(), "http://127.0.0.1:8081");
        let bare: ParentProxy = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(bare, parent);
        assert!(matches!(
            "https://127.0.0.1:8081".parse::<ParentProxy>(),
            Err(ParentProxyError::Unsupported(_))
        ));
        assert!(matches!(
            "http://127.0.0.1".parse::<ParentProxy>(),
            Err(ParentProxyError::Invalid(_))
        ));
    }

    #[test]
    fn refusals_map_to_their_statuses() {
        let port = ForwardError::PortNotAllowed {
            port: 25,
            allowed: "443".into(),
        };
        assert_eq!(port.status(), StatusCode::FORBIDDEN);
        assert!(port.to_string().contains("--allow-connect-port 25"));
        let looped = ForwardError::Loop {
            target: "127.0.0.1:8080".into(),
            proxy: local(),
        };
        assert_eq!(looped.status(), StatusCode::LOOP_DETECTED);
    }
}

//! Dialing an upstream: a TCP connection (Go's `Dialer`, bounded by
//! `--connect-timeout`), then for `https://` a TLS handshake (bounded by its
//! own `--tls-handshake-timeout`, Go's `TLSHandshakeTimeout`, which starts
//! once the TCP connection is up).
//!
//! The two steps are written out here, not hidden in a connector library,
//! so that each has its own time limit and its own words when it fails.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::config::TransportConfig;
use crate::tls;

/// How often the kernel checks that an idle upstream connection is still
/// there (TCP keep-alive), as Go's default Dialer does (`KeepAlive` 15 s
/// there; 30 s here, hyper-util's customary value).
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Where a connection goes: `http://` or `https://`, and `host:port`.
#[derive(Clone, Debug)]
pub(super) struct Destination {
    pub https: bool,
    pub authority: Authority,
}

// The pool's key, looked up twice per request. Compared and hashed as the
// text the upstream's URL gives, in one piece: `Authority`'s own `Hash`
// lowercases and hashes it a byte at a time (about 2 000 instructions a
// request, bench/instructions.sh). An upstream's URL is the same text on
// every request, so exact text is the right identity here; two spellings
// of one host would only keep two idle lists.
impl PartialEq for Destination {
    fn eq(&self, other: &Destination) -> bool {
        self.https == other.https && self.authority.as_str() == other.authority.as_str()
    }
}

impl Eq for Destination {}

impl std::hash::Hash for Destination {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.https.hash(state);
        self.authority.as_str().hash(state);
    }
}

impl Destination {
    /// The destination of an absolute URI, or why it has none.
    pub fn of(uri: &http::Uri) -> Result<Destination, String> {
        let https = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTPS => true,
            Some(scheme) if *scheme == Scheme::HTTP => false,
            Some(other) => return Err(format!("unsupported scheme {other} in {uri}")),
            None => {
                return Err(format!(
                    "no scheme in {uri} (the pool needs an absolute URI)"
                ));
            }
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("no host in {uri}"))?;
        Ok(Destination { https, authority })
    }

    /// `host:port`, with the scheme's default port when the URI has none.
    fn host_and_port(&self) -> (&str, u16) {
        let default = if self.https { 443 } else { 80 };
        let host = self.authority.host();
        // `[::1]` in a URI is `::1` to the resolver.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        (host, self.authority.port_u16().unwrap_or(default))
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub(super) enum DialError {
    /// No TCP connection (refused, unreachable, no address, too slow).
    Tcp(String),
    /// TCP was up, TLS was not (with the rustls error when there is one, for
    /// the hint that says what to do).
    Tls(String, Option<rustls::Error>),
}

/// Makes upstream connections with `config`'s time limits and trust.
#[derive(Clone)]
pub(super) struct Dialer {
    connect_timeout: Duration,
    tls_handshake_timeout: Duration,
    /// rustls for `https://`, or why TLS could not be set up.
    tls: Result<TlsConnector, Arc<str>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .field("tls", &self.tls.as_ref().map(|_| "rustls"))
            .finish()
    }
}

impl Dialer {
    /// The dialer, and why TLS could not be set up if it could not.
    pub fn new(config: &TransportConfig) -> (Dialer, Option<tls::TlsError>) {
        let (tls, error) = match tls::client_config(&config.upstream_trust()) {
            Ok(client_config) => {
                let mut client_config: ClientConfig = Arc::unwrap_or_clone(client_config);
                // HTTP/1.1 only: say so in the handshake (ALPN).
                client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
                (Ok(TlsConnector::from(Arc::new(client_config))), None)
            }
            Err(err) => (
                Err(Arc::from(format!(
                    "https:// upstreams are unavailable: {err}"
                ))),
                Some(err),
            ),
        };
        let dialer = Dialer {
            connect_timeout: config.connect_timeout,
            tls_handshake_timeout: config.tls_handshake_timeout,
            tls,
        };
        (dialer, error)
    }

    /// A new connection to `to`.
    pub async fn dial(&self, to: &Destination) -> Result<UpstreamIo, DialError> {
        let tcp = self.tcp(to).await.map_err(DialError::Tcp)?;
        if !to.https {
            return Ok(UpstreamIo::Plain(tcp));
        }
        let connector = self
            .tls
            .as_ref()
            .map_err(|why| DialError::Tls(why.to_string(), None))?;
        let (host, _) = to.host_and_port();
        let name = ServerName::try_from(host.to_string())
            .map_err(|err| DialError::Tls(format!("{host} is not a server name: {err}"), None))?;
        let handshake = self.tls_handshake_timeout;
        match tokio::time::timeout(handshake, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(UpstreamIo::Tls(Box::new(stream))),
            Ok(Err(err)) => {
                let rustls_error = err
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .cloned();
                Err(DialError::Tls(
                    format!("TLS handshake: {err}"),
                    rustls_error,
                ))
            }
            Err(_) => Err(DialError::Tls(
                format!(
                    "no TLS connection: the upstream accepted TCP but did not finish the TLS \
                     handshake within --tls-handshake-timeout {handshake:?} (is it speaking TLS?)"
                ),
                None,
            )),
        }
    }

    /// The TCP part: each address the name resolves to, in turn, within
    /// the connect timeout as a whole.
    async fn tcp(&self, to: &Destination) -> Result<TcpStream, String> {
        let (host, port) = to.host_and_port();
        let limit = self.connect_timeout;
        let connecting = async {
            // An IP literal is parsed, not looked up.
            let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|err| format!("dns error: {err}"))?
                    .collect(),
            };
            let mut last = format!("dns error: no address for {host}");
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(err) => last = format!("tcp connect error: {err}"),
                }
            }
            Err(last)
        };
        let stream = match tokio::time::timeout(limit, connecting).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(format!(
                    "tcp connect error: no connection within --connect-timeout {limit:?}"
                ));
            }
        };
        // Requests go out at once (no Nagle delay), and a dead peer of an
        // idle connection is noticed by the kernel.
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        Ok(stream)
    }
}

/// An upstream connection's bytes: plain TCP, or TLS over TCP.
#[derive(Debug)]
pub(super) enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(tcp) => tcp.is_write_vectored(),
            UpstreamIo::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

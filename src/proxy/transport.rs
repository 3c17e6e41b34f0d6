//! The Transport (连接池, the connection pool): how a proxy reaches upstreams.
//!
//! Go's `http.Transport` keeps idle keep-alive connections per host and reuses
//! them, so a busy proxy does not pay a TCP handshake per request. The knobs
//! the article sets in `NewMyMultiProxy` are flags here:
//! `MaxIdleConnsPerHost` (`--max-idle-per-host`, 0 turns pooling off),
//! `IdleConnTimeout` (`--idle-timeout`) and the dialer's `Timeout`
//! (`--connect-timeout`). The transport lab makes reuse visible: with pooling
//! the upstream sees the same RemoteAddr port request after request.
//!
//! Upstreams may be `http://` or `https://` (the article's "支持https代理"):
//! TLS comes from hyper-rustls, HTTP/1.1 only, bounded by
//! `--tls-handshake-timeout` (Go's `TLSHandshakeTimeout`). The lab knows no
//! public certificate authorities: an `https://` upstream is trusted through
//! `--upstream-ca FILE` (the PEM `lab realserver --tls` writes), or not
//! authenticated at all with `--insecure-upstream` (see [`crate::tls`]).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tower_service::Service as _;

use super::like_go::Flavour;
use crate::tls::{self, UpstreamTrust};

use crate::body::{BoxError, RequestBody};

/// The pool's knobs (the article's `http.Transport` fields).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Idle keep-alive connections kept per upstream (Go's
    /// MaxIdleConnsPerHost); 0 turns pooling off: one connection per request.
    pub max_idle_per_host: usize,
    /// How long an idle pooled connection is kept (Go's IdleConnTimeout).
    pub idle_timeout: Duration,
    /// How long to wait for a TCP connection to an upstream (the Dialer's Timeout).
    pub connect_timeout: Duration,
    /// How long the TLS handshake with an https:// upstream may take (Go's
    /// TLSHandshakeTimeout).
    pub tls_handshake_timeout: Duration,
    /// Trust https:// upstreams whose certificate is in (or signed by one
    /// in) this PEM file.
    pub upstream_ca: Option<PathBuf>,
    /// Accept any certificate from https:// upstreams (a lab only).
    pub insecure_upstream: bool,
    /// Go's `http.Transport` instead of lab's where they differ
    /// (`--like-go`): header names in Go's canonical case, and a request
    /// the pool never started to write is resent only under Go's rule (see
    /// [`TransportError::Stale`]).
    pub flavour: Flavour,
}

impl TransportConfig {
    /// Which certificates https:// upstreams may present
    /// (`--insecure-upstream` wins if both are set).
    pub fn upstream_trust(&self) -> UpstreamTrust {
        match (&self.upstream_ca, self.insecure_upstream) {
            (_, true) => UpstreamTrust::Insecure,
            (Some(path), false) => UpstreamTrust::CaFile(path.clone()),
            (None, false) => UpstreamTrust::Unconfigured,
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_idle_per_host: 100,
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: tls::HANDSHAKE_TIMEOUT,
            upstream_ca: None,
            insecure_upstream: false,
            flavour: Flavour::Lab,
        }
    }
}

/// Why a round trip failed, in the words the ErrorHandler shows the client.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream connection failed before a response: {0}")]
    Broken(String),
    /// The client's side broke while its request was being sent (a malformed
    /// body, a client that left): the client's fault, not the upstream's.
    #[error("the request body from the client failed: {0}")]
    Request(String),
    /// The TLS handshake failed: a trust or protocol problem, not a dead upstream.
    #[error("TLS with the upstream failed: {0}")]
    Tls(String),
    /// A pooled connection, reused, failed before any byte of the response
    /// came back: the upstream had closed it (an idle timeout, a server
    /// that answers one request per connection) while the request was on
    /// its way. Nothing was answered, so an idempotent request may be sent
    /// again on another connection (RFC 9112 §9.3.1.1; Go's Transport does,
    /// see [`crate::proxy::like_go::go_may_resend`]). `unsent`: not a byte
    /// of the request was written either.
    #[error("the pooled connection was closed before any response: {detail}")]
    Stale { detail: String, unsent: bool },
}

/// A pooled HTTP/1.1 client for upstream requests, `http://` and `https://`.
/// Cheap to clone: clones share the pool.
#[derive(Clone, Debug)]
pub struct Transport {
    client: Client<UpstreamConnector, RequestBody>,
    trust: UpstreamTrust,
    max_idle_per_host: usize,
}

impl Transport {
    /// A transport with `config`'s knobs. It cannot fail: if TLS cannot be
    /// set up (an `--upstream-ca` file that cannot be read), the reason is
    /// logged as an error now, `http://` upstreams work, and every `https://`
    /// request fails with that reason. Use [`Transport::try_new`] to stop instead.
    pub fn new(config: &TransportConfig) -> Transport {
        let (transport, tls_error) = Self::build(config);
        if let Some(err) = tls_error {
            tracing::error!("https:// upstreams are unavailable: {err}");
        }
        transport
    }

    /// Like [`Transport::new`], but a TLS setup error is returned.
    pub fn try_new(config: &TransportConfig) -> Result<Transport, tls::TlsError> {
        match Self::build(config) {
            (transport, None) => Ok(transport),
            (_, Some(err)) => Err(err),
        }
    }

    /// The transport, and why TLS could not be set up if it could not.
    fn build(config: &TransportConfig) -> (Transport, Option<tls::TlsError>) {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(30)));
        // The connector below decides between http:// and https://.
        http.enforce_http(false);

        let trust = config.upstream_trust();
        let mut tls_error = None;
        let tcp = TcpConnected::new(http.clone());
        let tls = match tls::client_config(&trust) {
            Ok(client_config) => Ok(HttpsConnectorBuilder::new()
                .with_tls_config(Arc::unwrap_or_clone(client_config))
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp.clone())),
            Err(err) => {
                let why: Arc<str> = Arc::from(format!("https:// upstreams are unavailable: {err}"));
                tls_error = Some(err);
                Err(NoTls { http, why })
            }
        };
        let connector = UpstreamConnector {
            tls,
            tcp,
            // TCP first (bounded by the HttpConnector), then the handshake.
            tls_handshake_timeout: config.tls_handshake_timeout,
        };
        let go = config.flavour.is_go();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_idle_timeout(config.idle_timeout)
            // The Host header is the director's decision, never the client library's.
            .set_host(false)
            // Go writes `X-Forwarded-For`, hyper `x-forwarded-for`: the
            // same header (RFC 9110 §5.1), but a raw upstream sees the case.
            .http1_title_case_headers(go)
            // hyper-util sends a request again, on another connection, when
            // the pooled one it was given closed before a byte of it was
            // written: safe for any request, its body untouched. Go does so
            // only for a request without a body (it cannot rewind one), so
            // with --like-go that case comes back as `Stale { unsent }` and
            // the proxy decides as Go would.
            .retry_canceled_requests(!go)
            .build(connector);
        (
            Transport {
                client,
                trust,
                max_idle_per_host: config.max_idle_per_host,
            },
            tls_error,
        )
    }

    /// How many idle connections the pool keeps per upstream.
    pub fn max_idle_per_host(&self) -> usize {
        self.max_idle_per_host
    }

    /// Sends `request` (absolute URI) and waits for the response head.
    pub async fn round_trip<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Incoming>, TransportError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let request = request.map(|body| BodyExt::map_err(body, Into::into).boxed());
        self.client.request(request).await.map_err(|err| {
            let mut detail = error_chain(&err);
            if let Some(hint) = tls_hint(&err, &self.trust) {
                detail.push_str(" — ");
                detail.push_str(&hint);
                return TransportError::Tls(detail);
            }
            if client_side_failure(&err) {
                return TransportError::Request(detail);
            }
            // The connection it went out on: had it carried an exchange
            // before this one, and did a byte of this one's answer come?
            let unsent = canceled_before_writing(&err);
            let used = err.connect_info().and_then(ConnectionUse::of);
            if let Some(used) = used
                && used.reused(unsent)
                && !used.answered()
                && !err.is_connect()
            {
                return TransportError::Stale { detail, unsent };
            }
            if err.is_connect() {
                TransportError::Connect(detail)
            } else {
                TransportError::Broken(detail)
            }
        })
    }
}

/// The upstream connection: plain TCP for `http://`, TCP then TLS for
/// `https://` (hyper-rustls); the TCP connect bounded by the connect
/// timeout, then the handshake by its own.
#[derive(Clone, Debug)]
struct UpstreamConnector {
    /// hyper-rustls, or why TLS could not be set up.
    tls: Result<HttpsConnector<TcpConnected>, NoTls>,
    /// The TCP connector inside `tls` (a clone sharing its signal slot).
    tcp: TcpConnected,
    tls_handshake_timeout: Duration,
}

/// The TCP connector under hyper-rustls, which says when the TCP part of
/// a connect is done: hyper-rustls connects and then handshakes in one
/// future, and the handshake has a time limit of its own (Go's
/// `TLSHandshakeTimeout` starts when the TCP connection is up).
///
/// `HttpsConnector::call` calls this connector's `call` at once, inside
/// [`UpstreamConnector::connect`], which has just put the sender for that
/// one connect in `next`: the pairing is made under `&mut self`, so two
/// connects never swap signals.
#[derive(Clone, Debug)]
struct TcpConnected {
    http: HttpConnector,
    next: Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

impl TcpConnected {
    fn new(http: HttpConnector) -> TcpConnected {
        TcpConnected {
            http,
            next: Arc::default(),
        }
    }

    /// The signal of the next connect: fires when its TCP connection is up.
    fn signal_next(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }
}

impl tower_service::Service<Uri> for TcpConnected {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let signal = self.next.lock().unwrap_or_else(|e| e.into_inner()).take();
        let connecting = self.http.call(dst);
        Box::pin(async move {
            let tcp = connecting.await.map_err(BoxError::from)?;
            if let Some(signal) = signal {
                let _ = signal.send(());
            }
            Ok(tcp)
        })
    }
}

/// TLS could not be set up: plain connections only, and the reason for
/// every `https://` request.
#[derive(Clone, Debug)]
struct NoTls {
    http: HttpConnector,
    why: Arc<str>,
}

/// An upstream connection as the pool holds it.
type Stream = TokioIo<Tracked<TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>>>;

type Connecting = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.tls {
            Ok(https) => https.poll_ready(cx),
            Err(no_tls) => no_tls.http.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        let connecting = self.connect(dst);
        Box::pin(async move {
            connecting
                .await
                .map(|stream| TokioIo::new(Tracked::new(TokioIo::new(stream))))
        })
    }
}

type ConnectingUntracked =
    Pin<Box<dyn Future<Output = Result<MaybeHttpsStream<TokioIo<TcpStream>>, BoxError>> + Send>>;

impl UpstreamConnector {
    fn connect(&mut self, dst: Uri) -> ConnectingUntracked {
        let is_https = dst.scheme() == Some(&Scheme::HTTPS);
        match &mut self.tls {
            Ok(https) if is_https => {
                let tcp_up = self.tcp.signal_next();
                let mut connecting = https.call(dst);
                let handshake = self.tls_handshake_timeout;
                Box::pin(async move {
                    // The TCP part is bounded by the HttpConnector's connect
                    // timeout; once it is up, the handshake gets its own.
                    tokio::select! {
                        result = &mut connecting => return result,
                        _ = tcp_up => {}
                    }
                    match tokio::time::timeout(handshake, connecting).await {
                        Ok(result) => result,
                        Err(_) => Err(format!(
                            "no TLS connection: the upstream accepted TCP but did not finish \
                             the TLS handshake within --tls-handshake-timeout {handshake:?} \
                             (is it speaking TLS?)"
                        )
                        .into()),
                    }
                })
            }
            Ok(https) => https.call(dst),
            Err(no_tls) if is_https => {
                let why = no_tls.why.clone();
                Box::pin(async move { Err(why.to_string().into()) })
            }
            Err(no_tls) => {
                let connecting = no_tls.http.call(dst);
                Box::pin(async move {
                    connecting
                        .await
                        .map(MaybeHttpsStream::Http)
                        .map_err(Into::into)
                })
            }
        }
    }
}

/// How one upstream connection has been used, shared by the connection and
/// hyper-util's record of it (an error names the connection it happened on,
/// [`Connected`], and this rides along as an extra): how many exchanges
/// were started on it (a write after the previous answer began one), and
/// whether any byte came back since the proxy last wrote. That is how the
/// proxy tells, as Go's Transport does, a pooled connection that was
/// already closed (reused, not a byte of an answer) from an upstream that
/// failed.
#[derive(Clone, Debug)]
struct ConnectionUse(Arc<UseCounts>);

#[derive(Debug)]
struct UseCounts {
    exchanges: AtomicU64,
    /// Bytes came since the last write (true at the start: the first
    /// write begins an exchange).
    read_since_write: AtomicBool,
}

impl Default for ConnectionUse {
    fn default() -> Self {
        ConnectionUse(Arc::new(UseCounts {
            exchanges: AtomicU64::new(0),
            read_since_write: AtomicBool::new(true),
        }))
    }
}

impl ConnectionUse {
    /// The use of the connection `connected` describes, if it is tracked.
    fn of(connected: &Connected) -> Option<ConnectionUse> {
        let mut extensions = http::Extensions::new();
        connected.get_extras(&mut extensions);
        extensions.get::<ConnectionUse>().cloned()
    }

    /// Whether the failed request went out on a connection that had
    /// carried another exchange before it (`unsent`: the request itself
    /// began none).
    fn reused(&self, unsent: bool) -> bool {
        let started = self.0.exchanges.load(Ordering::Relaxed);
        if unsent { started >= 1 } else { started >= 2 }
    }

    /// Whether any byte arrived since the request was written.
    fn answered(&self) -> bool {
        self.0.read_since_write.load(Ordering::Relaxed)
    }

    /// A write: the first after an answer (or the first at all) begins an
    /// exchange.
    fn wrote(&self) {
        if self.0.read_since_write.swap(false, Ordering::Relaxed) {
            self.0.exchanges.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An upstream connection that notes, for [`ConnectionUse`], each write
/// and each read that brought bytes. It sits between two [`TokioIo`]s (the
/// pool speaks hyper's IO traits, this speaks tokio's): tokio's `ReadBuf`
/// shows what a read filled, without a copy. Above TLS, so only the
/// answer's bytes count, not the handshake's.
#[derive(Debug)]
struct Tracked<S> {
    inner: S,
    used: ConnectionUse,
}

impl<S> Tracked<S> {
    fn new(inner: S) -> Tracked<S> {
        Tracked {
            inner,
            used: ConnectionUse::default(),
        }
    }

    fn note_written(&self, polled: &Poll<std::io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.used.wrote();
        }
    }
}

impl<S: Connection> Connection for Tracked<S> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.used.clone())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.used.0.read_since_write.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_written(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_written(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether hyper handed the request back unwritten: the pooled connection
/// was found closed before a byte of it went out (a canceled request).
fn canceled_before_writing(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(hyper_err) = e.downcast_ref::<hyper::Error>()
            && hyper_err.is_canceled()
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// What to do about a TLS failure, if `err` is one.
fn tls_hint(err: &(dyn std::error::Error + 'static), trust: &UpstreamTrust) -> Option<String> {
    let tls_error = find_rustls_error(err)?;
    let hint = match tls_error {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            match trust {
                UpstreamTrust::Unconfigured => "the upstream's certificate is not trusted: \
                    no CA was given. Pass --upstream-ca FILE with its certificate (`lab realserver \
                    --tls` writes one and logs where), or --insecure-upstream in a lab"
                    .to_string(),
                UpstreamTrust::CaFile(path) => format!(
                    "the upstream's certificate is not trusted by --upstream-ca {}: is it the \
                     PEM this upstream wrote at its start (a restarted `lab realserver --tls` \
                     makes a new one), and is the URL's host one the certificate names?",
                    path.display()
                ),
                UpstreamTrust::Insecure => return None,
            }
        }
        rustls::Error::InvalidMessage(_) => {
            "the upstream did not answer with TLS: if it serves plain HTTP, write its URL \
             with http://"
                .to_string()
        }
        _ => return None,
    };
    Some(hint)
}

/// The rustls error in `err`'s causes, looking inside `io::Error`s too (whose
/// `source()` skips the error they wrap).
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = find_rustls_error(inner)
        {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// Whether hyper blames the request it was given (its body stream failed),
/// rather than the upstream.
fn client_side_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(hyper_err) = e.downcast_ref::<hyper::Error>()
            && hyper_err.is_user()
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error and its causes on one line (`a: b: c`).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exchanges a connection carried, as [`Tracked`] counts them: a
    /// write after an answer begins one; a failure with no byte since the
    /// last write on a connection that carried one before is a stale one.
    #[test]
    fn a_connection_counts_exchanges_and_answers() {
        let used = ConnectionUse::default();
        // The first request: written (in two writes), answered.
        used.wrote();
        used.wrote();
        assert!(!used.answered());
        assert!(!used.reused(false), "a fresh connection");
        used.0.read_since_write.store(true, Ordering::Relaxed);
        // The second: written, then the close, no byte back.
        used.wrote();
        assert!(!used.answered());
        assert!(used.reused(false), "the second exchange on it");
        // A request hyper never started to write on it is the second too.
        let once = ConnectionUse::default();
        once.wrote();
        once.0.read_since_write.store(true, Ordering::Relaxed);
        assert!(once.reused(true));
        assert!(!ConnectionUse::default().reused(true));
    }

    #[test]
    fn the_use_rides_along_with_the_connection_info() {
        let used = ConnectionUse::default();
        used.wrote();
        let connected = Connected::new().extra(used.clone());
        let found = ConnectionUse::of(&connected).expect("the extra is there");
        assert!(Arc::ptr_eq(&found.0, &used.0));
        assert!(ConnectionUse::of(&Connected::new()).is_none());
    }
}

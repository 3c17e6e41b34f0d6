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
//! The pool is `lab`'s own, written on hyper's one-connection client
//! (`hyper::client::conn::http1`), in four parts:
//! - [`connector`]: TCP, then TLS for `https://` (the article's
//!   "支持https代理"; rustls, HTTP/1.1 only, `--tls-handshake-timeout`). The
//!   lab knows no public certificate authorities: an `https://` upstream is
//!   trusted through `--upstream-ca FILE` (the PEM `lab realserver --tls`
//!   writes), or not authenticated at all with `--insecure-upstream`;
//! - [`pool`]: the idle lists, newest first, one set per runtime;
//! - [`body`]: the response body, which gives its connection back when read
//!   to the end;
//! - [`tracked`]: whether a failed connection had been reused and whether any
//!   byte of an answer came, which decides whether a request may be resent.
//!
//! Two resends, as Go's Transport makes them: a request the pool never
//! started to write (the idle connection it took was found closed) goes out
//! again on another connection at once; a request written on a reused
//! connection that closed without a byte of answer comes back as
//! [`TransportError::Stale`], for the proxy to resend if it is idempotent
//! (RFC 9112 §9.3.1.1).

mod body;
mod config;
mod connector;
mod error;
mod pool;
mod tracked;

use std::any::Any;

use bytes::Bytes;
use http::header::UPGRADE;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

pub use body::UpstreamBody;
pub use config::TransportConfig;
pub use error::{TransportError, error_chain};

use crate::body::{BoxError, RequestBody};
use crate::tls::{self, UpstreamTrust};
use connector::{Destination, DialError, Dialer};
use error::{client_side_failure, tls_hint};
use pool::{Pool, Pooled};
use tracked::Tracked;

/// A pooled HTTP/1.1 client for upstream requests, `http://` and `https://`.
/// Cheap to clone: clones share the pool.
#[derive(Clone, Debug)]
pub struct Transport {
    dialer: Dialer,
    pool: Pool,
    /// How hyper speaks HTTP/1.1 on each connection.
    http1: http1::Builder,
    trust: UpstreamTrust,
    /// A request never written is resent by the pool itself (lab), or
    /// handed back as [`TransportError::Stale`] for Go's rule (`--like-go`).
    resend_unsent: bool,
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
        let (dialer, tls_error) = Dialer::new(config);
        let go = config.flavour.is_go();
        let mut http1 = http1::Builder::new();
        // Go writes `X-Forwarded-For`, hyper `x-forwarded-for`: the same
        // header (RFC 9110 §5.1), but a raw upstream sees the case.
        http1.title_case_headers(go);
        let transport = Transport {
            dialer,
            pool: Pool::new(config.max_idle_per_host, config.idle_timeout),
            http1,
            trust: config.upstream_trust(),
            // Safe for any request, its body untouched: not a byte went out.
            // Go resends only a request without a body (it cannot rewind
            // one); with --like-go the proxy decides as Go would.
            resend_unsent: !go,
        };
        (transport, tls_error)
    }

    /// How many idle connections the pool keeps per upstream.
    pub fn max_idle_per_host(&self) -> usize {
        self.pool.max_idle_per_host()
    }

    /// Idle connections to `url`'s upstream waiting in this thread's pool.
    pub fn idle_connections(&self, url: &Uri) -> usize {
        Destination::of(url).map_or(0, |to| self.pool.idle_count(&to))
    }

    /// Sends `request` (absolute URI) and waits for the response head. The
    /// request goes out in origin form (`/path?query`); its Host header is
    /// the caller's, never added here.
    pub async fn round_trip<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<UpstreamBody>, TransportError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = request.into_parts();
        let to = Destination::of(&parts.uri).map_err(TransportError::Connect)?;
        if parts.method != Method::CONNECT {
            parts.uri = origin_form(&parts.uri);
        }
        let mut request = Request::from_parts(parts, request_body(body));
        // The dial and the upgrade are boxed: their futures (TCP, TLS and
        // hyper's handshake) are larger than the rest of the round trip,
        // and every request would otherwise carry room for them and copy
        // it each time this future is moved; only some requests dial.
        if request.headers().contains_key(UPGRADE) {
            return Box::pin(self.upgrade(&to, request)).await;
        }
        // Each pass takes an idle connection or makes one; a pass ends in
        // an answer or an error, or, when an idle connection turned out to
        // be closed before a byte was written, in another pass.
        loop {
            let (mut pooled, reused) = match self.pool.take(&to).await {
                Some(pooled) => (pooled, true),
                None => (Box::pin(self.connect(&to)).await?, false),
            };
            let sending = pooled.sender.try_send_request(request);
            let result = pooled.drive_until(Box::pin(sending)).await;
            let mut err = match result {
                Ok(response) => return Ok(self.lend(response, pooled)),
                Err(err) => err,
            };
            if let Some(unsent) = err.take_message() {
                if reused && self.resend_unsent {
                    request = unsent;
                    continue;
                }
                if reused {
                    let detail = error_chain(err.error());
                    return Err(TransportError::Stale {
                        detail,
                        unsent: true,
                    });
                }
            }
            return Err(self.failed(err.error(), &pooled));
        }
    }

    /// A response, its body holding the connection until it has been read
    /// (or the connection back in the pool now, when there is no body).
    fn lend(
        &self,
        response: Response<hyper::body::Incoming>,
        pooled: Pooled,
    ) -> Response<UpstreamBody> {
        use hyper::body::Body as _;
        let (parts, incoming) = response.into_parts();
        let pool = (self.pool.max_idle_per_host() > 0).then(|| self.pool.clone());
        let body = match pool {
            Some(pool) if incoming.is_end_stream() => {
                pool.give_back(pooled);
                UpstreamBody::unpooled(incoming)
            }
            pool => UpstreamBody::pooled(incoming, pooled, pool),
        };
        Response::from_parts(parts, body)
    }

    /// An upgrade (WebSocket): a connection of its own, never pooled, driven
    /// by a task of its own, which hands the raw connection over after 101.
    async fn upgrade(
        &self,
        to: &Destination,
        request: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, TransportError> {
        let stream = self.dial(to).await?;
        let (mut sender, conn) = self
            .http1
            .handshake::<_, RequestBody>(TokioIo::new(Tracked::new(stream)))
            .await
            .map_err(|err| TransportError::Broken(error_chain(&err)))?;
        tokio::spawn(async move {
            if let Err(err) = conn.with_upgrades().await {
                tracing::debug!("upgraded upstream connection ended: {err}");
            }
        });
        let response = sender.send_request(request).await.map_err(|err| {
            if client_side_failure(&err) {
                TransportError::Request(error_chain(&err))
            } else {
                TransportError::Broken(error_chain(&err))
            }
        })?;
        Ok(response.map(UpstreamBody::unpooled))
    }

    /// A new connection to `to`, ready for a request.
    async fn connect(&self, to: &Destination) -> Result<Pooled, TransportError> {
        let stream = Tracked::new(self.dial(to).await?);
        let used = stream.used().clone();
        let (sender, conn) = self
            .http1
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| TransportError::Broken(error_chain(&err)))?;
        Ok(Pooled::new(sender, conn, used, to.clone()))
    }

    /// TCP, and TLS for `https://`, with a hint when TLS is why it failed.
    async fn dial(&self, to: &Destination) -> Result<connector::UpstreamIo, TransportError> {
        self.dialer.dial(to).await.map_err(|err| match err {
            DialError::Tcp(detail) => TransportError::Connect(detail),
            DialError::Tls(mut detail, Some(rustls_error)) => {
                match tls_hint(&rustls_error, &self.trust) {
                    Some(hint) => {
                        detail.push_str(" — ");
                        detail.push_str(&hint);
                        TransportError::Tls(detail)
                    }
                    None => TransportError::Connect(detail),
                }
            }
            DialError::Tls(detail, None) => TransportError::Connect(detail),
        })
    }

    /// Whose fault a failed exchange was: the client's body, a pooled
    /// connection the upstream had closed (reused, not a byte of answer),
    /// or the upstream.
    fn failed(&self, err: &hyper::Error, pooled: &Pooled) -> TransportError {
        let detail = error_chain(err);
        if client_side_failure(err) {
            return TransportError::Request(detail);
        }
        if pooled.used.reused(false) && !pooled.used.answered() {
            return TransportError::Stale {
                detail,
                unsent: false,
            };
        }
        TransportError::Broken(detail)
    }
}

/// `/path?query` of an absolute URI (`/` when it has no path).
fn origin_form(uri: &Uri) -> Uri {
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(path)
}

/// The body as the pool sends it: a [`RequestBody`] as it is (most callers
/// already have one), any other body boxed.
fn request_body<B>(body: B) -> RequestBody
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let mut body = Some(body);
    if let Some(ready) = (&mut body as &mut dyn Any).downcast_mut::<Option<RequestBody>>() {
        return ready.take().expect("just put there");
    }
    let body = body.expect("not taken");
    BodyExt::map_err(body, Into::into).boxed()
}

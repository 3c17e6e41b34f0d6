//! The Transport (连接池, the connection pool): how a proxy reaches upstreams.
//!
//! Go's `http.Transport` keeps idle keep-alive connections per host and reuses
//! them, so a busy proxy does not pay a TCP handshake per request. The knobs
//! the article sets in `NewMyMultiProxy` are flags here:
//! `MaxIdleConnsPerHost` (`--max-idle-per-host`, 0 turns pooling off),
//! `IdleConnTimeout` (`--idle-timeout`) and the dialer's `Timeout`
//! (`--connect-timeout`). The transport lab makes reuse visible: with pooling
//! the upstream sees the same RemoteAddr port request after request.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The body of a request on its way upstream: the client's, streamed, or one
/// the proxy made (a replaced body).
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;

/// The pool's knobs (the article's `http.Transport` fields).
#[derive(Debug, Clone, clap::Args)]
pub struct TransportConfig {
    /// Idle keep-alive connections kept per upstream (Go's
    /// MaxIdleConnsPerHost); 0 turns pooling off: one connection per request.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_idle_per_host: usize,

    /// How long an idle pooled connection is kept (Go's IdleConnTimeout).
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = crate::cli::parse_duration)]
    pub idle_timeout: Duration,

    /// How long to wait for a TCP connection to an upstream (the Dialer's Timeout).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::cli::parse_duration)]
    pub connect_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_idle_per_host: 100,
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(10),
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
}

/// A pooled HTTP/1.1 client for upstream requests. Cheap to clone: clones
/// share the pool.
#[derive(Clone, Debug)]
pub struct Transport {
    client: Client<HttpConnector, UpstreamBody>,
}

impl Transport {
    pub fn new(config: &TransportConfig) -> Transport {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(30)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_idle_timeout(config.idle_timeout)
            // The Host header is the director's decision, never the client library's.
            .set_host(false)
            .build(connector);
        Transport { client }
    }

    /// Sends `request` (absolute URI) and waits for the response head.
    pub async fn round_trip(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, TransportError> {
        self.client.request(request).await.map_err(|err| {
            let detail = error_chain(&err);
            if err.is_connect() {
                TransportError::Connect(detail)
            } else {
                TransportError::Broken(detail)
            }
        })
    }
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

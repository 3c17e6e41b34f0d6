//! A one-request HTTP/1.1 client on a TCP connection of its own.
//!
//! The labs need what a general client hides: the local address of the
//! connection (the `RemoteAddr` the server should report) and the freedom to
//! send the same header twice, as separate lines. So the probe opens the socket
//! itself, reads its local address, and hands the socket to hyper.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::realserver::{EchoReport, TextEcho};

/// How long a probe waits for a whole answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One request to send: header lines go out in order, duplicates kept.
#[derive(Debug, Clone)]
pub struct Probe {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Probe {
    /// A GET for `path` with no extra headers.
    pub fn get(path: &str) -> Probe {
        Probe {
            method: Method::GET,
            path: path.to_string(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// The same probe with another method.
    pub fn method(mut self, method: Method) -> Probe {
        self.method = method;
        self
    }

    /// The same probe with a body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Probe {
        self.body = body.into();
        self
    }

    /// Adds a header line (a second line of the same name stays separate).
    pub fn header(mut self, name: &str, value: &str) -> Probe {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends it to `addr` on a new connection and reads the whole answer.
    pub async fn send(&self, addr: SocketAddr) -> anyhow::Result<Exchange> {
        tokio::time::timeout(TIMEOUT, self.send_inner(addr))
            .await
            .with_context(|| format!("no answer from {addr} within {TIMEOUT:?}"))?
    }

    async fn send_inner(&self, addr: SocketAddr) -> anyhow::Result<Exchange> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}: is the server running there?"))?;
        self.exchange(stream, addr).await
    }

    /// Sends it on a connection that is already open (e.g. a CONNECT tunnel
    /// through a forward proxy), naming `addr` in the Host header.
    pub async fn send_on(&self, stream: TcpStream, addr: SocketAddr) -> anyhow::Result<Exchange> {
        tokio::time::timeout(TIMEOUT, self.exchange(stream, addr))
            .await
            .with_context(|| format!("no answer from {addr} within {TIMEOUT:?}"))?
    }

    async fn exchange(&self, stream: TcpStream, addr: SocketAddr) -> anyhow::Result<Exchange> {
        let local_addr = stream.local_addr()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake failed")?;
        // The connection future does the actual I/O; it ends with the exchange.
        tokio::spawn(async move {
            let _ = conn.await;
        });

        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header(http::header::HOST, addr.to_string());
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(self.body.clone()))
            .context("cannot build the request")?;
        let started = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("{addr} closed the connection without a response"))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Frame by frame, to know when the first bytes came and what trailers followed.
        let mut body = response.into_body();
        let mut data = BytesMut::new();
        let mut trailers = None;
        let mut first_data_after = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the response body was cut off")?;
            match frame.into_data() {
                Ok(chunk) => {
                    first_data_after.get_or_insert_with(|| started.elapsed());
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        Ok(Exchange {
            local_addr,
            status,
            headers,
            body: data.freeze(),
            trailers,
            first_data_after,
            elapsed: started.elapsed(),
        })
    }
}

/// A request's answer and the address the request came from.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// This end of the connection: what the server should call RemoteAddr.
    pub local_addr: SocketAddr,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Trailer fields after the last chunk, if any.
    pub trailers: Option<HeaderMap>,
    /// When the first body bytes arrived, counted from sending the request.
    pub first_data_after: Option<Duration>,
    /// When the whole response had arrived.
    pub elapsed: Duration,
}

impl Exchange {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The real server's three-line echo, parsed.
    pub fn text_echo(&self) -> anyhow::Result<TextEcho> {
        match TextEcho::parse(&self.text()) {
            Some(echo) => Ok(echo),
            None => bail!(
                "expected the real server's three-line echo, got {}: {}",
                self.status,
                self.text()
            ),
        }
    }

    /// The real server's JSON echo, parsed.
    pub fn json_echo(&self) -> anyhow::Result<EchoReport> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "expected the real server's JSON echo, got {}: {}",
                self.status,
                self.text()
            )
        })
    }
}

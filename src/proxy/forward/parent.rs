//! `--parent-proxy`: chaining forward proxies. With a parent, this proxy
//! dials no target itself: each absolute-form request goes to the parent on a
//! connection of its own, still in absolute-form (the parent is a forward
//! proxy too), and each CONNECT becomes a CONNECT of ours to the parent,
//! whose tunnel is then handed to the client.

use std::str::FromStr;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::ForwardError;
use crate::body::RequestBody;
use crate::proxy::transport::error_chain;
use crate::server::Conn;

/// The longest response head a parent proxy may send to our CONNECT.
const MAX_TUNNEL_HEAD: usize = 16 * 1024;

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
/// Sends one request to the parent proxy on a connection of its own, in
/// absolute-form (the parent is a forward proxy too).
pub(super) async fn via_parent(
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
pub(super) async fn tunnel_via_parent(
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
#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Listening sockets and the shutdown signal, shared by every server of the lab.
//!
//! A learner's most common first error is a port already taken (a server left
//! running in another terminal), so binding turns the OS error into a sentence
//! that names the port and the flag that picks another one.
//!
//! [`Endpoint`] is the other side: an `http://HOST:PORT` the lab's clients
//! (`lab trace`, `lab stats`) are told to talk to.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

use anyhow::Context;
use http::Uri;
use http::uri::{Authority, Scheme};
use tokio::net::TcpListener;

/// Why a listener could not be opened, with the next step in the message.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "port {port} is already in use ({addr}): another program, perhaps a `lab` left running \
         in another terminal, is listening there. Stop it (see `ss -ltnp 'sport = :{port}'`), \
         or choose another port: {flag} {suggestion}"
    )]
    InUse {
        addr: SocketAddr,
        port: u16,
        flag: String,
        suggestion: SocketAddr,
    },
    #[error(
        "no permission to listen on {addr}: ports below 1024 need root. Choose a port above 1023: {flag} {suggestion}"
    )]
    PermissionDenied {
        addr: SocketAddr,
        flag: String,
        suggestion: SocketAddr,
    },
    #[error(
        "{addr} is not an address of this machine; listen on loopback instead: {flag} 127.0.0.1:{port}"
    )]
    NotLocal {
        addr: SocketAddr,
        port: u16,
        flag: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Other { addr: SocketAddr, source: io::Error },
}

/// Binds a TCP listener; `flag` is the option that chose `addr` (e.g. `--addr`),
/// so the error can show the learner the exact fix.
pub async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| bind_error(addr, flag, source))
}

fn bind_error(addr: SocketAddr, flag: &str, source: io::Error) -> BindError {
    // Ten ports up keeps the suggestion near the article's numbers (2003 → 2013).
    let suggestion = SocketAddr::new(addr.ip(), addr.port().saturating_add(10).max(1024));
    let flag = flag.to_string();
    match source.kind() {
        io::ErrorKind::AddrInUse => BindError::InUse {
            addr,
            port: addr.port(),
            flag,
            suggestion,
        },
        io::ErrorKind::PermissionDenied => BindError::PermissionDenied {
            addr,
            flag,
            suggestion,
        },
        io::ErrorKind::AddrNotAvailable => BindError::NotLocal {
            addr,
            port: addr.port(),
            flag,
        },
        _ => BindError::Other { addr, source },
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM,
/// the two signals the article's RealServer waits for.
///
/// The handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives while servers are still starting is
/// not lost (nor does it kill the process with the default action). Call it
/// inside the tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
                _ = interrupt.recv() => tracing::info!("Ctrl-C received: shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM received: shutting down"),
            },
            _ => {
                tracing::warn!(
                    "cannot listen for Ctrl-C or SIGTERM; stop this process with kill -9"
                );
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Resolves on Ctrl-C (the only stop signal outside Unix).
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received: shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}

/// An `http://HOST:PORT` given on the command line (`--proxy`, `--target`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    authority: Authority,
}

impl FromStr for Endpoint {
    type Err = String;

    /// `http://127.0.0.1:2002`, `127.0.0.1:2002` or `localhost:2002`; a path
    /// other than `/` is refused (it belongs in `--path`).
    fn from_str(s: &str) -> Result<Endpoint, String> {
        let s = s.trim();
        let example = "write http://HOST:PORT, e.g. http://127.0.0.1:2002";
        let with_scheme = if s.contains("://") {
            s.to_string()
        } else {
            format!("http://{s}")
        };
        let uri: Uri = with_scheme
            .parse()
            .map_err(|_| format!("{s:?} is not a URL; {example}"))?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(format!("{s:?} has no host; {example}"));
        };
        if scheme != Scheme::HTTP {
            return Err(format!(
                "{s:?} uses {scheme}://; lab trace speaks plain http:// to proxies and servers"
            ));
        }
        if let Some(path) = parts
            .path_and_query
            .filter(|pq| !pq.as_str().is_empty() && pq.as_str() != "/")
        {
            return Err(format!(
                "{s:?} has a path ({path}); give the host only and the path with --path {path}"
            ));
        }
        if authority.port_u16().is_none() {
            return Err(format!("{s:?} has no port; {example}"));
        }
        Ok(Endpoint { authority })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl Endpoint {
    /// `HOST:PORT`, as a Host header writes it.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The socket address to connect to (the first one `HOST` resolves to).
    pub async fn resolve(&self) -> anyhow::Result<SocketAddr> {
        let host = self.authority.as_str();
        tokio::net::lookup_host(host)
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))
    }
}

/// `count` listeners on one address, each with `SO_REUSEPORT`, so that one
/// thread can accept on each and the kernel spreads new connections among
/// them (`lab proxy --threads`). Port 0 picks one free port for all.
///
/// The address is first bound alone, without `SO_REUSEPORT`: a program
/// already listening there (even another `lab` with its own group) makes
/// that fail with the usual "port in use", instead of sharing its
/// connections with this one.
pub fn bind_reuseport(
    addr: SocketAddr,
    count: usize,
    flag: &str,
) -> Result<Vec<std::net::TcpListener>, BindError> {
    let fail = |source| bind_error(addr, flag, source);
    let probe = std::net::TcpListener::bind(addr).map_err(fail)?;
    let addr = probe.local_addr().map_err(fail)?;
    drop(probe);
    (0..count.max(1))
        .map(|_| {
            let domain = socket2::Domain::for_address(addr);
            let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None).map_err(fail)?;
            socket.set_reuse_address(true).map_err(fail)?;
            socket.set_reuse_port(true).map_err(fail)?;
            socket.set_nonblocking(true).map_err(fail)?;
            socket.bind(&addr.into()).map_err(fail)?;
            socket.listen(1024).map_err(fail)?;
            Ok(socket.into())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_in_use_names_the_port_and_the_fix() {
        let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind(addr, "--addr").await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, BindError::InUse { .. }), "{msg}");
        assert!(
            msg.contains(&format!("port {} is already in use", addr.port())),
            "{msg}"
        );
        assert!(msg.contains("--addr 127.0.0.1:"), "{msg}");
    }
}

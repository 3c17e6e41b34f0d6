//! CONNECT tunnels (隧道): for `https://` URLs a client asks
//! `CONNECT host:443`; the proxy checks the port against its allowed list,
//! dials (or asks its parent proxy for a tunnel), answers 200, and from then
//! on copies bytes both ways without reading them, so TLS stays end to end.

use std::net::SocketAddr;
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::ForwardError;
use super::parent::tunnel_via_parent;
use super::{ForwardProxy, is_self};
use crate::proxy::headers;
use crate::server::Conn;

use crate::body::Body as ProxyBody;

impl ForwardProxy {
    /// `CONNECT host:port`: dial, answer 200, then copy bytes both ways.
    pub(super) async fn connect(
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
                tunnel_via_parent(parent, &authority, self.pseudonym().as_str(), timeout).await?
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
                    crate::proxy::upgrade::splice(TokioIo::new(client), upstream, stop, &label)
                        .await
                }
                Err(err) => tracing::debug!("{label}: the client left before the tunnel: {err}"),
            }
        });
        let mut response = Response::new(crate::body::empty());
        headers::add_via(response.headers_mut(), Version::HTTP_11, self.pseudonym());
        Ok(response)
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

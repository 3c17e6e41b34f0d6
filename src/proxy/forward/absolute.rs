//! The article's three steps, for an absolute-form request
//! (`GET http://HOST:PORT/path`): copy the request and fix its headers,
//! send it on (through the pool, or to the parent proxy), and hand the
//! response back without its hop-by-hop headers. A WebSocket upgrade is
//! bridged once both sides have switched.

use http::uri::Authority;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::ForwardProxy;
use super::error::ForwardError;
use super::parent::via_parent;
use crate::body::RequestBody;
use crate::proxy::headers::{self, X_FORWARDED_FOR};
use crate::proxy::transport::TransportError;
use crate::server::Conn;

use crate::body::Body as ProxyBody;

impl ForwardProxy {
    /// An absolute-form request: the article's steps 1 to 3.
    pub(super) async fn forward(
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
        // Hop-by-hop headers go; the trailers a chunked body announces go on
        // with it (hyper sends only announced ones, and `Trailer` is
        // hop-by-hop); names with an underscore go too, unless kept.
        headers::for_next_hop(&mut parts.headers, !self.inner.config.keep_underscores)?;
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
        let timeout = self.inner.config.limits.body_timeout;
        let limited = crate::body::limit::send_limited(body.boxed(), max, timeout, |body| {
            self.round_trip(conn, Request::from_parts(parts, body), &authority)
        })
        .await;
        // The client stopped sending its body: its fault, whoever gave up.
        if let Some(stall) = limited.client_stalled() {
            return Err(ForwardError::BodyStalled(stall));
        }
        let mut response = limited.sent.ok_or(ForwardError::BodyTooLarge { max })??;
        let max_head = self.inner.config.limits.max_header_size;
        if let Err(head) = headers::check_response_head(&response, max_head) {
            return Err(ForwardError::ResponseHeadTooLarge {
                target: authority.to_string(),
                head,
            });
        }

        // 3. 处理响应, 返回给客户端.
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            match client_upgrade {
                Some(client) => {
                    let upstream = hyper::upgrade::on(&mut response);
                    crate::proxy::upgrade::bridge(
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
        let trailers = headers::announced_trailers(response.headers());
        headers::prepare_response(response.headers_mut(), switching);
        headers::restore_trailers(response.headers_mut(), trailers);
        let version = response.version();
        headers::add_via(response.headers_mut(), version, self.pseudonym());
        Ok(response.map(BodyExt::boxed))
    }

    async fn round_trip(
        &self,
        conn: &Conn,
        outbound: Request<RequestBody>,
        authority: &Authority,
    ) -> Result<Response<ProxyBody>, ForwardError> {
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
                .map(|response| response.map(BodyExt::boxed))
                .map_err(|err| match err {
                    TransportError::Request(detail) => ForwardError::BadRequestBody(detail),
                    other => unreachable(other.to_string()),
                }),
            Some(parent) => {
                let timeout = self.inner.config.transport.connect_timeout;
                via_parent(parent, outbound, timeout, conn)
                    .await
                    .map(|response| response.map(BodyExt::boxed))
                    .map_err(|detail| {
                        unreachable(format!("through the parent proxy {parent}: {detail}"))
                    })
            }
        }
    }
}

/// `host[:port]` of an authority, without any `user:password@`.
fn host_and_port(authority: &Authority) -> String {
    match authority.port() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

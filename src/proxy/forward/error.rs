//! Why the forward proxy answered a request itself: every refusal that
//! explains (a plain `GET /abc`, a loop, a port CONNECT may not reach, a
//! client outside `--allow`, an unreachable target, …), with the status each
//! one is answered with. The message is the body, so it says what to do next.

use std::net::{IpAddr, SocketAddr};

use http::{Method, StatusCode};

use crate::proxy::headers::HeaderError;

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
    #[error("{0}; the request was not passed on whole")]
    BodyStalled(crate::body::stall::Stall),
    #[error("{target} {head}")]
    ResponseHeadTooLarge {
        target: String,
        head: crate::proxy::headers::HeadTooLarge,
    },
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
            ForwardError::Unreachable { .. } | ForwardError::ResponseHeadTooLarge { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ForwardError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ForwardError::BodyStalled(_) => StatusCode::REQUEST_TIMEOUT,
            ForwardError::ParentRefused { status, .. } => *status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            proxy: "127.0.0.1:8080".parse().unwrap(),
        };
        assert_eq!(looped.status(), StatusCode::LOOP_DETECTED);
    }
}

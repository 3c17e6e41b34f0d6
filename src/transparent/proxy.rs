//! The transparent proxy's HTTP side: a client that believes it talks to
//! 198.51.100.2:2003 sends an ordinary request (`GET /abc`, origin-form,
//! `Host: 198.51.100.2:2003`, no proxy settings), and the proxy, which got
//! the connection from the kernel, sends it on to where it was going.
//!
//! One upstream connection per intercepted connection, opened on the first
//! request: in tproxy mode it is bound to the client's own address, so it
//! cannot be shared with another client (a pool shared by clients would
//! make the server see the wrong one). The header work is the forward
//! proxy's: hop-by-hop headers removed, the client appended to
//! X-Forwarded-For, this proxy to `Via`; the client's `Host` is kept (it
//! names the original destination already).
//!
//! `lab`'s choice: the response goes back without a `Via`, so the client
//! sees what the server sent and nothing of the proxy (RFC 9110 §7.6.3 asks
//! a proxy for `Via` both ways; an intercepting proxy that announced
//! itself to the client would not be transparent). Asked to explain
//! (`X-Lab-Explain: 1`, which `lab trace` sends), it answers with
//! `X-Lab-Intercepted: MODE ORIGINAL-DESTINATION`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use super::mode::Mode;
use super::sockets;
use crate::body::{Body, RequestBody};
use crate::lab_headers::{EXPLAIN_HEADER, INTERCEPTED_HEADER};
use crate::proxy::explain;
use crate::proxy::headers::{self, Pseudonym, X_FORWARDED_FOR};
use crate::server::{Conn, Limits};

/// How long the proxy waits for the original destination to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves intercepted connections on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    mode: Mode,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pseudonym = Arc::new(Pseudonym::new(format!(
        "lab-transparent-{:08x}",
        rand::random::<u32>()
    )));
    let listener_limits = limits.clone();
    crate::server::serve_inspecting(listener, listener_limits, shutdown, move |conn, stream| {
        let destination =
            sockets::original_destination(stream, mode).map_err(|err| err.to_string());
        tracing::info!(
            "{} intercepted ({mode}): it was going to {}",
            conn.peer,
            destination
                .as_ref()
                .map_or_else(Clone::clone, ToString::to_string)
        );
        let intercepted = Arc::new(Intercepted {
            conn,
            destination,
            mode,
            limits: limits.clone(),
            pseudonym: pseudonym.clone(),
            upstream: Mutex::new(None),
        });
        hyper::service::service_fn(move |req| {
            let intercepted = intercepted.clone();
            async move { Ok::<_, Infallible>(intercepted.handle(req).await) }
        })
    })
    .await
}

/// One intercepted client connection.
struct Intercepted {
    conn: Conn,
    /// Where the client was going, or why the kernel could not say.
    destination: Result<SocketAddr, String>,
    mode: Mode,
    limits: Limits,
    pseudonym: Arc<Pseudonym>,
    /// This connection's own connection to the destination, once opened.
    upstream: Mutex<Option<SendRequest<RequestBody>>>,
}

impl Intercepted {
    async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        let destination = match &self.destination {
            // Addressed to the proxy itself, not intercepted: sending it
            // "on" would send it back here.
            Ok(destination) if *destination == self.conn.local => {
                return explain(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{destination} is the transparent proxy itself: it serves connections the \
                         gateway intercepted on their way elsewhere, not requests sent to it"
                    ),
                );
            }
            Ok(destination) => *destination,
            Err(why) => {
                return explain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot tell where this connection was going: {why}"),
                );
            }
        };
        // The question is for this proxy, not for the server.
        let explain_asked = req.headers_mut().remove(EXPLAIN_HEADER).is_some();
        let client_upgrade = headers::upgrade_type(req.headers())
            .is_some()
            .then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        // Names with an underscore go, as nginx drops them (see the rule).
        if let Err(err) = headers::for_next_hop(&mut parts.headers, true) {
            return explain(StatusCode::BAD_REQUEST, err.to_string());
        }
        let client = self.conn.peer.ip().to_string();
        let xff = headers::appended_x_forwarded_for(&parts.headers, &client);
        if let Ok(value) = HeaderValue::from_str(&xff) {
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
        headers::add_via(&mut parts.headers, parts.version, &self.pseudonym);
        parts.version = Version::HTTP_11;

        let limited = crate::body::limit::send_limited(
            body.boxed(),
            self.limits.max_body,
            self.limits.body_timeout,
            |body| self.round_trip(destination, Request::from_parts(parts, body)),
        )
        .await;
        // The client stopped sending its body: its fault, whoever gave up.
        if let Some(stall) = limited.client_stalled() {
            return explain(
                StatusCode::REQUEST_TIMEOUT,
                format!("{stall}; not passed on whole"),
            );
        }
        let mut response = match limited.sent {
            None => {
                return explain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is larger than --max-body ({} bytes)",
                        self.limits.max_body
                    ),
                );
            }
            Some(Err(why)) => {
                let mut response = explain(StatusCode::BAD_GATEWAY, why);
                self.explain_interception(explain_asked, destination, &mut response);
                return response;
            }
            Some(Ok(response)) => response,
        };
        if let Err(too_large) = headers::check_response_head(&response, self.limits.max_header_size)
        {
            return explain(
                StatusCode::BAD_GATEWAY,
                format!("{destination} {too_large}"),
            );
        }

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            // The upstream connection becomes the tunnel's.
            self.upstream.lock().await.take();
            match client_upgrade {
                Some(client) => crate::proxy::upgrade::bridge(
                    &self.conn,
                    client,
                    hyper::upgrade::on(&mut response),
                    format!("upgrade {} ⇄ {destination} (intercepted)", self.conn.peer),
                    (),
                ),
                None => {
                    return explain(
                        StatusCode::BAD_GATEWAY,
                        format!("{destination} switched protocols (101) without being asked to"),
                    );
                }
            }
        }
        let trailers = headers::announced_trailers(response.headers());
        headers::prepare_response(response.headers_mut(), switching);
        headers::restore_trailers(response.headers_mut(), trailers);
        crate::lab_headers::strip_proxy_answer(response.headers_mut());
        let mut response = response.map(BodyExt::boxed);
        self.explain_interception(explain_asked, destination, &mut response);
        response
    }

    /// `X-Lab-Intercepted: MODE DESTINATION`, when the client asked.
    fn explain_interception(
        &self,
        asked: bool,
        destination: SocketAddr,
        response: &mut Response<Body>,
    ) {
        if !asked {
            return;
        }
        if let Ok(value) = HeaderValue::from_str(&format!("{} {destination}", self.mode)) {
            response.headers_mut().insert(INTERCEPTED_HEADER, value);
        }
    }

    /// Sends `request` on this connection's upstream connection, opening
    /// it first if there is none (or the upstream closed it).
    async fn round_trip(
        &self,
        destination: SocketAddr,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, String> {
        let mut upstream = self.upstream.lock().await;
        let usable = match upstream.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            *upstream = Some(self.open(destination).await?);
        }
        let sender = upstream.as_mut().expect("opened above");
        sender.send_request(request).await.map_err(|err| {
            format!(
                "the original destination {destination} failed to answer: {}",
                crate::proxy::transport::error_chain(&err)
            )
        })
    }

    /// A new connection to `destination`, from the client's address in
    /// tproxy mode, from the gateway's in redirect mode.
    async fn open(&self, destination: SocketAddr) -> Result<SendRequest<RequestBody>, String> {
        let as_client = (self.mode == Mode::Tproxy).then_some(self.conn.peer);
        let connecting = sockets::connect(destination, as_client);
        let stream: TcpStream = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                return Err(format!(
                    "the original destination {destination} cannot be reached from the gateway: \
                     {err} (is its server running?)"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the original destination {destination} did not accept within {CONNECT_TIMEOUT:?}"
                ));
            }
        };
        if let (Ok(from), Ok(to)) = (stream.local_addr(), stream.peer_addr()) {
            tracing::info!("{}: upstream connection {from} → {to}", self.conn.peer);
        }
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| format!("no HTTP connection to {destination}: {err}"))?;
        let peer = self.conn.peer;
        self.conn.tasks.spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!("{peer}: upstream connection ended: {err}");
            }
        });
        Ok(sender)
    }
}

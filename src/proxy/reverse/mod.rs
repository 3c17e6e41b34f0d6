//! The ReverseProxy (`lab proxy`): Go's `httputil.ReverseProxy.ServeHTTP`,
//! step by step, in the order the article walks through it.
//!
//! [`ReverseProxy::serve_http`] is the whole data path on one screen: one
//! named call per step of the article's 13, each written in the file named
//! beside it:
//!
//! 1. 验证是否请求终止: stop when the client goes away (Go: the request's
//!    context, cancelled by the server; CloseNotify only as a fallback.
//!    Here hyper drops the request's future); what a reverse proxy must not forward (CONNECT, a
//!    loop) is refused first (`refuse.rs`);
//! 2. 设置context信息: the outgoing request is made from the incoming one;
//! 3. 深拷贝header: the headers are ours to change; who the client is;
//! 4. 修改req: the balancer chooses (`choose.rs`: its pick, or the next
//!    candidate when a circuit breaker is open), then the Director points the
//!    request at it (`outgoing.rs`);
//! 5. Upgrade头的特殊处理: validate an upgrade, remove hop-by-hop headers;
//! 6. 追加ClientIP信息: X-Forwarded-For (Go's only one), and lab's additions
//!    X-Real-IP, X-Forwarded-Host/Proto and Via (nginx practice);
//! 7. 向下游请求数据: the Transport's round trip, under a timeout, moving on
//!    to the next candidate when a connection fails and `--retries` allows
//!    (`round_trip.rs`);
//! 8. 处理升级协议请求: a 101 is spliced through (`respond.rs`, see
//!    [`super::upgrade`]);
//! 9. 移除逐段头部: hop-by-hop headers removed from the response;
//! 10. 修改返回数据: ModifyResponse;
//! 11. 拷贝头部的数据: headers copied, trailers announced;
//! 12. 写入状态码: the status;
//! 13. 周期刷新内容到response: the body streamed to the client as it comes.
//!
//! Where Go would call `ErrorHandler`, `round_trip.rs`'s `fail` answers 502
//! (unreachable, broken) or 504 (too slow; Go answers 502 here too: the 504
//! is lab's choice). How `lab proxy`'s flags become a proxy is `config.rs`.
//! With `--like-go` every step does what Go's does where lab's differs
//! ([`super::like_go`], `docs/go-differences.md`).

mod choose;
pub mod config;
mod outgoing;
mod refuse;
mod respond;
mod reverse_proxy;
mod round_trip;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::headers::{self};
use super::like_go;
use crate::body::Body;
use crate::middleware::stats::InFlight;
use crate::server::Conn;

pub use config::{ProxyConfig, run};
pub use reverse_proxy::ReverseProxy;

use reverse_proxy::Client;

impl ReverseProxy {
    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        super::serve(listener, self, shutdown).await
    }

    /// One request through the proxy: Go's `ServeHTTP`, the article's 13
    /// steps in order.
    ///
    /// The middleware layers run around it ([`super::chain`]); the circuit
    /// breakers act inside, at the pick and after the round trip.
    /// `in_flight` is the statistics' count of this request, moved to the
    /// upstream once one is chosen.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub fn serve_http(
        &self,
        conn: &Conn,
        mut req: Request<Body>,
        in_flight: &mut InFlight,
    ) -> impl Future<Output = Response<Body>> + Send {
        // An async block, not an `async fn`, for the reason in
        // `chain::handle`: the request is kept once, not twice.
        async move {
            let started = Instant::now();
            // 1. Client gone? Go cancels the upstream request through the
            //    request's context; here hyper drops this whole future when the
            //    client disconnects, and the upstream request with it. Refused
            //    first: what a reverse proxy must not forward.
            if let Some(refused) = self.refuse(&req) {
                return refused;
            }

            // 2. The outgoing request is made from the incoming one. The
            //    client's upgrade handle is taken first: it is how the raw
            //    connection is recovered after a 101.
            let mut upgrade = respond::Upgrade::take(&mut req);
            let (mut parts, body) = req.into_parts();

            // 3. Go deep-copies the headers so the Director cannot change the
            //    caller's request; `parts` is already ours alone.
            let ip = headers::client_address(conn.peer.ip(), &parts.headers, &self.trusted_proxies);
            let client = Client { conn, ip };

            // 4. The balancer chooses (the article's `lb.Get(req.RemoteAddr)`),
            //    then the Director points the request at the choice;
            // 5. hop-by-hop headers go; 6. X-Forwarded-For says who asked
            //    (Go's only one; X-Real-IP, X-Forwarded-Host/Proto and Via are
            //    lab's additions, nginx practice).
            let mut chosen = match self.choose(client, &mut parts) {
                Ok(chosen) => chosen,
                Err(refused) => return *refused,
            };
            let retry = self.retry_copy(&parts, &body, &chosen);
            let sent = match self.outgoing(client, &mut parts, &chosen.upstream) {
                Ok(sent) => sent,
                Err(refused) => return *refused,
            };
            upgrade.asked = sent.upgrade;
            chosen.gunzip = sent.added_gzip;
            in_flight.sent_to(&chosen.url);
            let (body, too_large, progress) = self.outgoing_body(body).await;

            // 7. The round trip, under the response timeout (the next candidate
            //    when a connection fails, with --retries). Errors go to the
            //    ErrorHandler.
            let request = Request::from_parts(parts, body);
            let exchange = round_trip::Exchange::new(client, retry, too_large, progress, in_flight);
            let upstream_response = match self.round_trip(&mut chosen, request, exchange).await {
                Ok(response) => response,
                Err(answer) => return answer,
            };

            // 8. 101 Switching Protocols: the two connections are spliced.
            if upstream_response.status() == StatusCode::SWITCHING_PROTOCOLS {
                return self.switch_protocols(conn, chosen, upstream_response, upgrade);
            }

            // 9. Hop-by-hop headers of the upstream's hop are removed.
            let (response, trailers) = self.without_hop_headers(&mut chosen, upstream_response);

            // 10. ModifyResponse.
            let mut response = self.modify.apply(&chosen.method, response);
            // (Go's server guesses a missing Content-Type: --like-go.)
            if self.flavour.is_go() {
                // Boxed: the default path's future stays as small as it was.
                response = Box::pin(like_go::with_sniffed_type(&chosen.method, response)).await;
            }

            // 11. The headers go to the client as they are now, the trailers
            //     announced again so hyper sends them.
            headers::restore_trailers(response.headers_mut(), trailers);
            chosen.name_in(response.headers_mut());

            // 12. The status travels in the response head hyper writes.
            chosen.log_answer(response.status(), started);

            // 13. The body, flushed to the client as it comes (or per
            //     --flush-interval).
            self.flushed(response)
        }
    }
}

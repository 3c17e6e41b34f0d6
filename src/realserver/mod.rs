//! The article's RealServer (反向代理 section, "真实的服务代码实现"): the upstream
//! every proxy of the lab forwards to.
//!
//! Each server answers any path with an echo of what the request looked like
//! on arrival (its TCP peer, X-Forwarded-For, X-Real-Ip, every header), which
//! is how the labs *see* what a proxy changed. Beside the article's three
//! handlers it has the endpoints the later labs need: a delay, a chunked
//! stream with a trailer, a WebSocket echo and a response with hop-by-hop
//! headers (see [`routes`]).
//!
//! Like the article's `http.Server{WriteTimeout: 3s}`, a response that is not
//! ready [`Config::write_timeout`] after its request arrived is never sent: the
//! connection is closed and the client sees an empty reply. (Go only notices
//! when the handler returns, so a Go client waits the handler's full 6 s; here
//! the deadline is enforced when it passes, so the client waits 3 s. Either
//! way the client gets no response, which is the article's lesson.)
//!
//! With a [`ServerTls`] (`lab realserver --tls`) every server speaks HTTPS
//! instead, and the echo's first line says `https://`.
//!
//! With a [`Register`] (`lab realserver --register zk://…`) every server
//! registers itself in ZooKeeper once it listens, as the article's servers do
//! for `LoadBalanceZkConf` (服务发现): an ephemeral node named `HOST:PORT`
//! holding its [`upstream_spec`]. On shutdown the nodes are removed *before*
//! the servers drain, so proxies stop choosing them first.

mod echo;
mod extras;
mod handler;
mod routes;

pub use echo::{EchoReport, TextEcho, canonical_header_key};
pub use extras::pattern_byte;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::DRAIN_TIMEOUT;
use crate::tls::ServerTls;
use crate::zk::{self, ZkUrl};
use crate::{net, server};

/// The path the article's proxies join in front of every request (`/base`).
pub const BASE_PATH: &str = "/base";

/// Where and how `lab realserver --register` registers the servers.
#[derive(Debug, Clone)]
pub struct Register {
    /// `zk://HOST:PORT/PATH`: each server becomes `PATH/HOST:PORT`.
    pub url: ZkUrl,
    /// The weight in each server's spec (1 to 10000).
    pub weight: u32,
}

/// A server's upstream spec as the article's `GetConf()` returns it and as
/// `lab proxy --upstream` takes it: `http://127.0.0.1:2003/base,10`
/// (`https://` with TLS). The one place this string is built.
pub fn upstream_spec(tls: bool, addr: SocketAddr, weight: u32) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}{BASE_PATH},{weight}")
}

/// What can be tuned on a real server.
#[derive(Debug, Clone)]
pub struct Config {
    /// The article's `WriteTimeout: time.Second * 3`.
    pub write_timeout: Duration,
    /// What the listener refuses (`--max-body`, `--header-timeout`).
    pub limits: crate::server::Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            write_timeout: Duration::from_secs(3),
            limits: crate::server::Limits::default(),
        }
    }
}

/// Runs one real server per address in this process until `shutdown`
/// resolves, then drains them all (the article's `main` with rs1 and rs2).
///
/// Every address is bound before any server starts, so a port in use stops
/// the command at once with a message that names the port.
pub async fn run(
    addrs: &[SocketAddr],
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(addrs, config, None, shutdown).await
}

/// [`run`], serving HTTPS when `tls` is given (`lab realserver --tls`).
pub async fn run_with(
    addrs: &[SocketAddr],
    config: Config,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_registered(addrs, config, tls, None, shutdown).await
}

/// [`run_with`], registering every server in ZooKeeper when `register` is
/// given (`lab realserver --register`); a server that cannot be registered
/// stops them all, with the reason.
pub async fn run_registered(
    addrs: &[SocketAddr],
    config: Config,
    tls: Option<ServerTls>,
    register: Option<Register>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        listeners.push(net::bind(addr, "--addr").await?);
    }

    // One signal stops every server: a token fans the shutdown out.
    let stop = CancellationToken::new();
    let mut servers = Vec::with_capacity(listeners.len());
    let mut bound = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let addr = listener
            .local_addr()
            .context("listener has no local address")?;
        tracing::info!("Starting httpserver at {addr}");
        bound.push(addr);
        servers.push(tokio::spawn(serve_with(
            listener,
            config.clone(),
            tls.clone(),
            stop.clone().cancelled_owned(),
        )));
    }

    // Registered only now that every server accepts connections: a proxy
    // may send a request the moment it sees the node.
    let mut registrations = Vec::new();
    if let Some(register) = &register {
        match register_all(register, &bound, tls.is_some()).await {
            Ok(done) => registrations = done,
            Err(err) => {
                stop.cancel();
                for server in servers {
                    let _ = server.await;
                }
                return Err(err);
            }
        }
    }

    if let Some(first) = bound.first() {
        match tls.as_ref().map(ServerTls::cert_file) {
            None => tracing::info!("try: curl -s http://{first}/abc   (Ctrl-C stops the servers)"),
            Some(None) => {
                tracing::info!("try: curl -sk https://{first}/abc   (Ctrl-C stops the servers)")
            }
            Some(Some(cert)) => {
                let cert = cert.display().to_string();
                let cert = if cert.contains(char::is_whitespace) {
                    format!("'{cert}'")
                } else {
                    cert
                };
                tracing::info!(
                    "HTTPS with a certificate made just now for {}, signed by itself; \
                     clients trust it through its PEM, written to {cert}",
                    crate::tls::LOCAL_NAMES.join(", ")
                );
                tracing::info!(
                    "try: curl --cacert {cert} https://{first}/abc   (Ctrl-C stops the servers)"
                );
            }
        }
    }

    shutdown.await;
    // Leave ZooKeeper first, so proxies stop choosing these servers, then drain.
    for registration in registrations {
        let node = registration.node().to_string();
        match registration.deregister().await {
            Ok(()) => tracing::info!("deregistered {node}"),
            Err(err) => tracing::warn!("{err:#}"),
        }
    }
    tracing::info!("finishing the requests in flight (up to {DRAIN_TIMEOUT:?})");
    stop.cancel();
    for server in servers {
        server.await.context("a real server task panicked")??;
    }
    tracing::info!("all real servers stopped");
    Ok(())
}

/// Registers every address in `bound`, one ephemeral node each; on a
/// failure, the ones already made are removed again.
async fn register_all(
    register: &Register,
    bound: &[SocketAddr],
    tls: bool,
) -> anyhow::Result<Vec<zk::Registration>> {
    let mut done: Vec<zk::Registration> = Vec::with_capacity(bound.len());
    for &addr in bound {
        let spec = upstream_spec(tls, addr, register.weight);
        match zk::register(&register.url, &addr.to_string(), &spec).await {
            Ok(registration) => {
                tracing::info!(
                    "registered {addr} in ZooKeeper: {} = {spec}",
                    registration.node()
                );
                done.push(registration);
            }
            Err(err) => {
                for registration in done {
                    let _ = registration.deregister().await;
                }
                return Err(err.context(format!("cannot register {addr} at {}", register.url)));
            }
        }
    }
    Ok(done)
}

/// A real server running in the background of this process, for labs and tests.
pub struct RunningServer(server::Background);

impl RunningServer {
    /// Starts a real server on `listener` (bind port 0 to get a free port).
    pub fn start(listener: TcpListener, config: Config) -> anyhow::Result<Self> {
        Self::start_with(listener, config, None)
    }

    /// [`RunningServer::start`], serving HTTPS when `tls` is given.
    pub fn start_with(
        listener: TcpListener,
        config: Config,
        tls: Option<ServerTls>,
    ) -> anyhow::Result<Self> {
        server::Background::spawn(listener, |listener, shutdown| {
            serve_with(listener, config, tls, shutdown)
        })
        .map(RunningServer)
    }

    /// Binds `127.0.0.1:0` and starts a real server there.
    pub async fn start_on_free_port(config: Config) -> anyhow::Result<Self> {
        let listener = net::bind(SocketAddr::from(([127, 0, 0, 1], 0)), "--addr").await?;
        Self::start(listener, config)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Stops accepting, lets requests in flight finish, and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.0.shutdown().await
    }
}

/// Serves the real server on `listener` until `shutdown` resolves, then
/// drains (see [`crate::server::serve`]).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, config, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (see [`crate::server::serve_tls`]).
pub async fn serve_with(
    listener: TcpListener,
    config: Config,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let limits = config.limits.clone();
    let make_service = move |conn: server::Conn| {
        let ctx = handler::Ctx {
            server: conn.local,
            peer: conn.peer,
            scheme,
            write_timeout: config.write_timeout,
            stop: conn.stop,
            tasks: conn.tasks,
            tunneled: conn.tunneled,
        };
        hyper::service::service_fn(move |req| routes::handle(ctx.clone(), req))
    };
    match tls {
        None => server::serve(listener, limits, shutdown, make_service).await,
        Some(tls) => {
            server::serve_tls(listener, tls.acceptor(), limits, shutdown, make_service).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_spec_is_the_articles_get_conf_format() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 2003));
        assert_eq!(
            upstream_spec(false, addr, 10),
            "http://127.0.0.1:2003/base,10"
        );
        assert_eq!(
            upstream_spec(true, addr, 1),
            "https://127.0.0.1:2003/base,1"
        );
        // What the proxy's --upstream (and discovery) parses.
        let node = crate::balance::parse_upstream_spec(&upstream_spec(false, addr, 20)).unwrap();
        assert_eq!(node.weight, 20);
    }
}

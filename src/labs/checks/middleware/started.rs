//! What lab 19's experiment starts: real servers (one on a port that was
//! dead until the breaker section brings it up) and `lab proxy` runs, all
//! stopped at the end whatever the experiment returned; and a dead port, an
//! upstream nothing listens on.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::cli::launch::RunningProxy;
use crate::labs::checks::servers::{start_real_server, upstream_url as base};
use crate::realserver::{Config, RunningServer};

/// Everything the experiment started, stopped by [`Started::stop`] whatever
/// the experiment returned.
#[derive(Default)]
pub(super) struct Started {
    proxies: Vec<RunningProxy>,
    servers: Vec<RunningServer>,
}

impl Started {
    /// A real server on a free port, as `lab realserver` runs it.
    pub(super) async fn serve(&mut self) -> anyhow::Result<SocketAddr> {
        start_real_server(&mut self.servers).await
    }

    /// A real server on `addr`, a port that was dead until now.
    pub(super) async fn serve_on(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot start a real server on {addr} again"))?;
        self.servers
            .push(RunningServer::start(listener, Config::default())?);
        Ok(())
    }

    /// `lab proxy FLAGS` on a free port.
    pub(super) async fn proxy(&mut self, flags: &[&str]) -> anyhow::Result<SocketAddr> {
        let proxy = RunningProxy::start(flags).await?;
        let addr = proxy.addr();
        self.proxies.push(proxy);
        Ok(addr)
    }

    /// `lab proxy --lb round-robin --upstream A --upstream B FLAGS` over the
    /// real servers (or dead ports) `a` and `b`, on a free port.
    pub(super) async fn round_robin(
        &mut self,
        a: SocketAddr,
        b: SocketAddr,
        flags: &[&str],
    ) -> anyhow::Result<SocketAddr> {
        let (a, b) = (base(a), base(b));
        let mut all = vec!["--lb", "round-robin", "--upstream", &a, "--upstream", &b];
        all.extend_from_slice(flags);
        self.proxy(&all).await
    }

    /// Stops the proxies, then the servers; the first error is returned,
    /// after everything stopped.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for proxy in self.proxies {
            if let Err(err) = proxy.shutdown().await {
                first_error.get_or_insert(err);
            }
        }
        for server in self.servers {
            if let Err(err) = server.shutdown().await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A loopback port nothing listens on (bound, then released).
pub(super) async fn dead_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    Ok(listener.local_addr()?)
}

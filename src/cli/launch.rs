//! lab's own servers started inside this process from the flags a user
//! would type (`["--lb", "wrr", "--upstream", "http://…"]`): the labs'
//! experiments, `lab demo` and the tests run exactly what `lab proxy FLAGS`
//! runs, parsed by the same command line.
//!
//! It belongs to the command line (it parses an argv the way `lab proxy`
//! does), so nothing in the proxy depends on the command line.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;

use super::{Cli, Command};
use crate::proxy::reverse::ReverseProxy;
use crate::server;

/// A `lab proxy` running in the background of this process (labs, tests).
pub struct RunningProxy(server::Background);

impl RunningProxy {
    /// Starts a proxy on a free loopback port, configured by `lab proxy`
    /// flags (anything but `--listen`), e.g. `["--upstream", "http://…/base"]`.
    pub async fn start(flags: &[&str]) -> anyhow::Result<RunningProxy> {
        let listener = crate::net::bind(SocketAddr::from(([127, 0, 0, 1], 0)), "--listen").await?;
        Self::start_on(listener, flags).await
    }

    /// [`RunningProxy::start`] on a listener the caller bound.
    pub async fn start_on(listener: TcpListener, flags: &[&str]) -> anyhow::Result<RunningProxy> {
        let argv = ["lab", "proxy"].into_iter().chain(flags.iter().copied());
        let cli = Cli::try_parse_from(argv)
            .map_err(|e| anyhow::anyhow!("bad proxy flags {flags:?}: {e}"))?;
        let Command::Proxy(args) = cli.command else {
            anyhow::bail!("not a proxy command line");
        };
        let proxy = Arc::new(ReverseProxy::start(args.config()).await?);
        server::Background::spawn(listener, |listener, shutdown| {
            proxy.serve(listener, shutdown)
        })
        .map(RunningProxy)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Stops it and waits for requests in flight.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.0.shutdown().await
    }
}

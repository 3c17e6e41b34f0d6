//! `lab`: an interactive teaching lab for HTTP proxies, after the article
//! "Go与HTTP代理" (`../shared/seed/article.md` in the project's workspace).
//!
//! Learners run the article's real servers on loopback, fire requests at them,
//! and follow labs whose every claim the program verifies on real sockets.
//!
//! # Layout
//!
//! - [`balance`]: the four load balancers behind one trait, and their factory.
//! - [`cli`]: every command-line definition (clap derive), nothing else.
//! - [`output`]: presentation decided in one place: colour, tables, ✓/✗ marks.
//! - [`net`]: binding listeners with errors that say what to do, and the
//!   shutdown signal (Ctrl-C / SIGTERM).
//! - [`demo`]: `lab demo`, everything in one process and a trace.
//! - [`framing`]: a guard that refuses requests framed two ways (smuggling).
//! - [`server`]: the accept loop every listener shares, with graceful shutdown.
//! - [`proxy`]: the proxies (naive, reverse, forward) and their header rules.
//! - [`discovery`]: the observer: the live set of upstreams (fixed,
//!   health-checked, or discovered in ZooKeeper) and the balancer rebuilt
//!   from it.
//! - [`realserver`]: the article's RealServer, with the endpoints the labs add.
//! - [`probe`]: a one-request HTTP/1.1 client on its own TCP connection, which
//!   knows its local address (the `RemoteAddr` a server should see).
//! - [`trace`]: `lab trace`, the client side: fire requests through a proxy
//!   and show the balancer's choice beside what the upstream saw.
//! - [`zk`]: ZooKeeper for discovery (服务发现): a standalone server from
//!   Debian's package (`lab zk up`), registration of the real servers, and
//!   the watch a proxy follows.
//! - [`labs`]: the follow-along labs: catalogue, sheets, checks, answers,
//!   progress and hints.
//! - [`middleware`]: the layers around `lab proxy` (限流 熔断 降级 权限
//!   数据统计); `lab stats` reads the statistics.
//!
//! `main.rs` only parses the command line and calls [`run`].

pub mod balance;
pub mod body;
pub mod cidr;
pub mod cli;
pub mod demo;
pub mod discovery;
pub mod doctor;
pub mod framing;
pub mod labs;
pub mod middleware;
pub mod net;
pub mod output;
pub mod probe;
pub mod proxy;
pub mod realserver;
pub mod server;
pub mod stats_view;
pub mod tls;
pub mod trace;
pub mod zk;

use std::process::ExitCode;

use anyhow::Context;

use cli::{Cli, Command};

/// Runs one parsed command line to completion and says how the process should exit.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    output::init(cli.global.color);
    init_logging(cli.global.verbose);

    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Realserver(args) => {
                let config = realserver::Config {
                    write_timeout: args.write_timeout,
                    limits: args.limits.clone(),
                };
                let tls = if args.tls {
                    let cert_out = args.tls_cert_out.unwrap_or_else(tls::default_cert_path);
                    Some(tls::ServerTls::self_signed(&cert_out)?)
                } else {
                    None
                };
                let register = args.register.map(|url| realserver::Register {
                    url,
                    weight: args.weight,
                });
                realserver::run_registered(
                    &args.addrs,
                    config,
                    tls,
                    register,
                    net::shutdown_signal(),
                )
                .await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Naive(args) => {
                proxy::naive::run(
                    args.listen,
                    args.target,
                    args.limits,
                    net::shutdown_signal(),
                )
                .await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Forward(args) => {
                let listen = args.listen;
                let config = proxy::forward::ForwardConfig::from(args);
                proxy::forward::run(listen, config, net::shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Proxy(args) => {
                proxy::reverse::run(&args, net::shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Trace(args) => trace::run(&cli.global, &args).await,
            Command::Stats(args) => stats_view::run(&args).await,
            Command::Demo(args) => demo::run(&cli.global, &args).await,
            Command::Labs => labs::commands::list(&cli.global),
            Command::Show { lab } => labs::commands::show(&cli.global, &lab),
            Command::Hint { lab, reset } => labs::commands::hint(&cli.global, &lab, reset),
            Command::Check(args) => labs::commands::check(&cli.global, &args).await,
            Command::Tour(args) => labs::tour::run(&cli.global, &args).await,
            Command::Doctor(args) => doctor::run(&args).await,
            Command::Completions { shell } => {
                let mut command = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "lab", &mut std::io::stdout());
                Ok(ExitCode::SUCCESS)
            }
            Command::Zk(args) => match args.command {
                cli::ZkCommand::Up(up) => {
                    zk::server::up(up.listen, net::shutdown_signal()).await?;
                    Ok(ExitCode::SUCCESS)
                }
                cli::ZkCommand::Ls(ls) => zk::ls::run(&ls.url).await,
            },
        }
    })
}

/// Logs go to stderr so that stdout stays the command's answer (tables, echoes).
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "lab=info",
        1 => "lab=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::stderr_color())
        .with_target(false)
        .try_init();
}

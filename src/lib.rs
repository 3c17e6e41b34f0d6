//! `lab`: an interactive teaching lab for HTTP proxies, after the article
//! "Go与HTTP代理" (`../shared/seed/article.md` in the project's workspace).
//!
//! Learners run the article's real servers on loopback, fire requests at them,
//! and follow labs whose every claim the program verifies on real sockets.
//!
//! # Layout
//!
//! From the top down; a module uses only those below it (a test in
//! `tests/layering.rs` reads the code's paths and keeps it so).
//!
//! The command line and the commands:
//! - [`cli`]: every flag (clap derive), and the one place flags become configs.
//! - [`demo`]: `lab demo`, everything in one process and a trace.
//! - [`trace`]: `lab trace`: a proxy's choices beside what the upstream saw.
//! - [`stats_view`]: `lab stats`: what a running proxy counted, as tables.
//! - [`labs`]: the follow-along labs: sheets, checks, answers, progress, tour.
//! - [`doctor`]: `lab doctor`: ports, ZooKeeper, Java, curl, ip, nft, namespaces, versions.
//! - [`golang`]: `lab go`: the article's programs in Go (`labs/go/`), built and run.
//! - [`exercises`]: `lab exercise` and `lab verify`: the article's code, written by the learner.
//!
//! The servers:
//! - [`proxy`]: the proxies (naive, reverse, forward) and the relay; `serve_http` is the article's 13 steps;
//!   `--like-go` switches it to Go's behaviour where lab's differs (`docs/go-differences.md`).
//! - [`transparent`]: `lab transparent`, the third proxy (透明代理), in namespaces it builds.
//! - [`realserver`]: the article's RealServer, with the endpoints the labs add.
//! - [`discovery`]: the observer: the live upstream set (fixed, health-checked, ZooKeeper).
//! - [`zk`]: ZooKeeper for discovery (服务发现): a server, registration, the watch.
//! - [`middleware`]: the policies around `lab proxy` (限流 熔断 降级 权限 数据统计).
//! - [`balance`]: the four load balancers behind one trait, and their factory.
//!
//! The leaves:
//! - [`server`]: the accept loop every listener shares, with graceful shutdown.
//! - [`shutdown_watch`]: a connection's cheap wait for the shutdown signal.
//! - [`framing`]: a guard that refuses requests framed two ways (smuggling).
//! - [`body`]: the body wrappers: counted, limited, flushed; the proxies' body type.
//! - [`tls`]: certificates for `--tls` and trust for `https://` upstreams.
//! - [`probe`]: a one-request HTTP/1.1 client that knows its local address.
//! - [`upstream`]: an upstream as `--upstream` spells it.
//! - [`lab_headers`]: every `X-Lab-*` header name.
//! - [`header_list`]: comma-separated header lists (`Connection: a, b`).
//! - [`net`]: listeners with errors that say what to do, Ctrl-C, endpoints.
//! - [`cidr`]: address ranges (`--allow`, `--trusted-proxy`).
//! - [`parse`]: the text of durations, sizes, addresses, paths, header lines.
//! - [`markdown`]: the sheets' markdown on a terminal: prose wrapped, code as written.
//! - [`workers`]: which runtime a thread belongs to (`--threads`).
//! - [`memory`]: free memory given back to the system after a load has passed.
//! - [`timer`]: timers reused from one request to the next on the worker threads.
//! - [`output`]: presentation in one place: colour, tables, ✓/✗ marks, width, pager.
//!
//! `main.rs` only parses the command line and calls [`run`].

pub mod balance;
pub mod body;
pub mod cidr;
pub mod cli;
pub mod demo;
pub mod discovery;
pub mod doctor;
pub mod exercises;
pub mod framing;
pub mod golang;
pub mod header_list;
pub mod lab_headers;
pub mod labs;
pub mod markdown;
pub mod memory;
pub mod middleware;
pub mod net;
pub mod output;
pub mod parse;
pub mod probe;
pub mod proxy;
pub mod realserver;
pub mod server;
pub mod shutdown_watch;
pub mod stats_view;
pub mod timer;
pub mod tls;
pub mod trace;
pub mod transparent;
pub mod upstream;
pub mod workers;
pub mod zk;

use std::process::ExitCode;

use anyhow::Context;

use cli::{Cli, Command};

/// Runs one parsed command line to completion and says how the process should exit.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    output::init(cli.global.color);
    let log_verbosity = if cli.command.verbose_is_output() {
        0
    } else {
        cli.global.verbose
    };
    init_logging(log_verbosity, cli.global.quiet, cli.command.quiet_servers());

    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    // A server gives back what a passed load freed (see `memory`).
    if cli.command.serves() {
        runtime.spawn(memory::give_back_after_load());
    }
    runtime.block_on(async move {
        match cli.command {
            Command::Realserver(args) => {
                let tls = match args.tls_cert_path() {
                    Some(cert_out) => Some(tls::ServerTls::self_signed(&cert_out)?),
                    None => None,
                };
                realserver::run_registered(
                    &args.addrs,
                    args.config(),
                    tls,
                    args.register(),
                    net::shutdown_signal(),
                )
                .await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Naive(args) => {
                let limits = args.limits.config();
                proxy::naive::run(args.listen, args.target, limits, net::shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Relay(args) => {
                proxy::relay::run(args.listen, args.target, net::shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Transparent(args) => transparent::run(&args.config()).await,
            Command::Forward(args) => {
                proxy::forward::run(args.listen, args.config(), net::shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Proxy(args) => {
                proxy::reverse::run(args.config(), net::shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Trace(args) => trace::run(&args.config(cli.global.verbose)).await,
            Command::Stats(args) => stats_view::run(&args.proxy, args.json).await,
            Command::Demo(args) => demo::run(&cli.global, &args).await,
            Command::Labs => labs::commands::list(&cli.global),
            Command::Show {
                lab,
                reveal,
                no_pager,
            } => labs::commands::show(&cli.global, &lab, reveal, !no_pager),
            Command::Hint {
                lab,
                question,
                reset,
            } => labs::commands::hint(&cli.global, &lab, question.as_deref(), reset),
            Command::Check(args) => labs::commands::check(&cli.global, &args).await,
            Command::Tour(args) => labs::tour::run(&cli.global, &args).await,
            Command::Doctor(args) => doctor::run(&args.ports_to_check(), args.json).await,
            Command::Go(args) => {
                let module =
                    golang::GoModule::in_labs(&labs::resolve_dir(cli.global.labs_dir.as_deref())?);
                match args.command {
                    cli::GoCommand::List => golang::commands::list(&module),
                    cli::GoCommand::Show { name } => golang::commands::show(&module, &name),
                    cli::GoCommand::Run { name, args } => {
                        golang::commands::run(&module, &name, &args, net::shutdown_signal()).await
                    }
                }
            }
            Command::Exercise(args) => {
                let labs_dir = cli.global.labs_dir.as_deref();
                match args.command {
                    cli::ExerciseCommand::List => exercises::commands::list(labs_dir),
                    cli::ExerciseCommand::Start { exercise, dir, .. } => {
                        exercises::commands::start(labs_dir, &exercise, dir.as_deref())
                    }
                    cli::ExerciseCommand::Hint { exercise } => {
                        exercises::commands::hint(labs_dir, &exercise)
                    }
                    cli::ExerciseCommand::Solution { exercise, give_up } => {
                        exercises::commands::solution(labs_dir, &exercise, give_up)
                    }
                }
            }
            Command::Verify(args) => {
                let request = exercises::commands::VerifyRequest {
                    spec: &args.exercise,
                    dir: args.dir.as_deref(),
                    run: args.run.as_deref(),
                    watch: args.watch,
                    reference: args.reference,
                };
                exercises::commands::verify(cli.global.labs_dir.as_deref(), request).await
            }
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
/// A command with `quiet` servers (a lab's check) logs nothing unless `-v`:
/// the experiment's warnings (an upstream down on purpose) are not news.
/// `-q` logs errors only; `RUST_LOG` overrides everything: a list of
/// `target=level` and a bare default level (`RUST_LOG=lab=debug,hyper=info`,
/// `RUST_LOG=trace`); one that does not parse is ignored.
fn init_logging(verbose: u8, errors_only: bool, quiet: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match (verbose, quiet) {
        _ if errors_only => "lab=error",
        (0, true) => "off",
        (1, true) => "lab=info",
        (0, false) => "lab=info",
        (1, false) => "lab=debug",
        _ => "debug",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().unwrap_or_default());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(output::stderr_color())
                .with_target(false),
        )
        .with(filter)
        .try_init();
}

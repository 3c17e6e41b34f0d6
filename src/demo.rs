//! `lab demo`: the one-command first look. Two real servers and a `lab proxy`
//! in this process, a trace through them, what to look at, and the lab to
//! open next; then everything stops.
//!
//! The article's ports (2003, 2004 for the real servers, 2002 for the proxy)
//! are used when they are free, so the addresses match the article; when one
//! is taken (a `lab realserver` left running, say), a free port is used
//! instead and the demo says so.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use crate::cli::launch::RunningProxy;
use crate::cli::{Cli, Command, DemoArgs, GlobalArgs};
use crate::output;
use crate::realserver::{Config, RunningServer};

/// The article's weights for its two upstreams.
const WEIGHTS: [u32; 2] = [10, 20];

/// Runs the demo to the end.
pub async fn run(global: &GlobalArgs, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let a = listen_on("real server rs1", 2003).await?;
    let b = listen_on("real server rs2", 2004).await?;
    let servers = [
        RunningServer::start(a, Config::default())?,
        RunningServer::start(b, Config::default())?,
    ];
    let upstreams: Vec<String> = servers
        .iter()
        .zip(WEIGHTS)
        .map(|(server, weight)| format!("http://{}/base,{weight}", server.addr()))
        .collect();
    let lb = args.algorithm.to_string();
    let mut flags = vec!["--lb", lb.as_str()];
    for upstream in &upstreams {
        flags.extend(["--upstream", upstream.as_str()]);
    }
    let proxy = RunningProxy::start_on(listen_on("lab proxy", 2002).await?, &flags).await?;

    let width = output::width();
    let say = |text: &str, first: &str, indent: &str| {
        for line in output::wrap(text, width, first, indent) {
            println!("{line}");
        }
    };
    println!(
        "{}",
        output::heading(&output::ellipsize(
            "lab demo: the article's real servers and ReverseProxy, on loopback",
            width
        ))
    );
    let servers_line = format!(
        "{} and {} (the article's RealServer)",
        servers[0].addr(),
        servers[1].addr()
    );
    say(&servers_line, "  real servers  ", "                ");
    let proxy_line = format!(
        "{} ({} balancer) → {}",
        proxy.addr(),
        args.algorithm,
        upstreams.join(" and ")
    );
    say(&proxy_line, "  lab proxy     ", "                ");
    let trace_line = format!(
        "{} requests through the proxy, each asking the balancer why, with a client \
         X-Forwarded-For and a header named in Connection",
        args.requests
    );
    say(&trace_line, "  trace         ", "                ");
    println!();

    let code = trace(global, proxy.addr(), args).await;

    println!();
    println!("{}", output::heading("What to look at"));
    for point in [
        "pick: the balancer's state for each request; with weighted, the currentWeights \
         before → after, the chosen one marked * (the article's smooth weighted round robin \
         table, lab 14).",
        "RemoteAddr at the real server is the proxy, not you; X-Forwarded-For carries your \
         address (labs 01 and 02). The same peer port twice is the connection pool at work \
         (lab 10).",
        "The header diff: what the proxy added (X-Forwarded-For, X-Real-Ip, Via) and what it \
         removed (hop-by-hop headers, lab 08).",
        "The summary: requests per upstream beside the share the weights ask for.",
    ] {
        say(point, "  • ", "    ");
    }
    println!();
    let next = format!(
        "Next: `lab labs` lists the labs; start with `lab show 1`. Run the pieces yourself \
         with `lab realserver`, `lab proxy --lb {}` and `lab trace`.",
        args.algorithm
    );
    say(&next, "", "");

    proxy.shutdown().await?;
    for server in servers {
        server.shutdown().await?;
    }
    code
}

/// The article's port when it is free, else a free one (and a line saying so).
async fn listen_on(what: &str, port: u16) -> anyhow::Result<TcpListener> {
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpListener::bind(wanted).await {
        Ok(listener) => Ok(listener),
        Err(err) => {
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .with_context(|| format!("cannot listen for the {what}"))?;
            let note = format!(
                "{wanted} is not free ({err}); the {what} uses {} instead",
                listener.local_addr()?
            );
            for line in output::wrap(&note, output::width(), "note: ", "  ") {
                println!("{line}");
            }
            Ok(listener)
        }
    }
}

/// `lab trace --proxy http://PROXY -n N`, through the same code as the command.
async fn trace(
    global: &GlobalArgs,
    proxy: SocketAddr,
    args: &DemoArgs,
) -> anyhow::Result<ExitCode> {
    let url = format!("http://{proxy}");
    let n = args.requests.to_string();
    // A client X-Forwarded-For and a header made hop-by-hop by Connection,
    // so the header diff shows both what the proxy adds and what it removes.
    let cli = Cli::try_parse_from([
        "lab",
        "trace",
        "--proxy",
        &url,
        "-n",
        &n,
        "--xff",
        "203.0.113.7",
        "-H",
        "Connection: X-Demo",
        "-H",
        "X-Demo: hop-by-hop",
    ])
    .context("cannot build the demo's trace")?;
    let Command::Trace(trace_args) = cli.command else {
        anyhow::bail!("not a trace command line");
    };
    crate::trace::run(&trace_args.config(global.verbose)).await
}

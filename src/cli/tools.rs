//! The flags of the commands that do not serve: `lab demo`, `lab trace`,
//! `lab stats`, the labs (`check`, `tour`), `lab doctor` and `lab zk`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};

use crate::parse::{parse_duration, parse_listen_addr, parse_request_path};
use crate::trace::TraceConfig;
use crate::trace::fire::{Pace, Plan, Route};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The load balancer of the demo's proxy.
    #[arg(long = "lb", value_enum, default_value_t = crate::balance::Algorithm::Weighted)]
    pub algorithm: crate::balance::Algorithm,

    /// How many requests the trace sends (1 to 100000).
    #[arg(
        short = 'n',
        long = "requests",
        value_name = "N",
        default_value_t = 12,
        value_parser = clap::value_parser!(u64).range(1..=100_000)
    )]
    pub requests: u64,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The reverse proxy to send through (`lab proxy`, `lab naive`).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:2002",
        env = "LAB_TRACE_PROXY",
        conflicts_with_all = ["forward", "direct"]
    )]
    pub proxy: crate::net::Endpoint,

    /// How many requests to send.
    #[arg(
        short = 'n',
        long = "requests",
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=100_000)
    )]
    pub requests: u64,

    /// The path (and query) to ask for.
    #[arg(long, value_name = "PATH", default_value = "/", value_parser = parse_request_path)]
    pub path: String,

    /// A request header, 'Name: value' (repeatable; duplicates stay separate lines).
    #[arg(
        short = 'H',
        long = "header",
        value_name = "'NAME: VALUE'",
        value_parser = crate::parse::parse_header_line
    )]
    pub headers: Vec<(String, String)>,

    /// Send this X-Forwarded-For, as a client (or a spoofer) would.
    #[arg(long, value_name = "VALUE")]
    pub xff: Option<String>,

    /// The request method, as curl's -X [default: GET, or POST with a body].
    #[arg(short = 'X', long, value_name = "METHOD")]
    pub method: Option<http::Method>,

    /// A request body (Content-Length is set), as curl's -d: without -X the
    /// method is then POST.
    #[arg(short = 'd', long, visible_alias = "data", value_name = "TEXT")]
    pub body: Option<String>,

    /// Start one request every DURATION (e.g. 200ms) instead of all at once:
    /// a slow trace to watch the upstream set change (stop a real server
    /// meanwhile). With -c above 1 they may overlap.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// How many requests may be in flight at once.
    #[arg(
        short = 'c',
        long,
        value_name = "C",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub concurrency: u16,

    /// Send through this forward proxy (`lab forward`), asking it for --target.
    #[arg(
        long,
        value_name = "URL",
        requires = "target",
        conflicts_with = "direct"
    )]
    pub forward: Option<crate::net::Endpoint>,

    /// The server to ask the forward proxy for (absolute-form requests).
    #[arg(long, value_name = "URL", requires = "forward")]
    pub target: Option<crate::net::Endpoint>,

    /// Send straight to this server, no proxy: the before picture.
    #[arg(long, value_name = "URL")]
    pub direct: Option<crate::net::Endpoint>,

    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,

    /// A seed to note in the output; the random balancer's seed is the proxy's
    /// (`lab proxy --lb random --seed N`).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Also send the same requests through this second proxy and show the two
    /// upstream views side by side, differences marked.
    #[arg(long, value_name = "URL", conflicts_with = "forward")]
    pub compare: Option<crate::net::Endpoint>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The lab proxy to ask.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:2002",
        env = "LAB_STATS_PROXY"
    )]
    pub proxy: crate::net::Endpoint,

    /// Print the proxy's JSON as served instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["lab", "all"])))]
pub struct CheckArgs {
    /// The lab: its number (1, 01) or its name.
    pub lab: Option<String>,

    /// Check every lab, one after the other.
    #[arg(long)]
    pub all: bool,

    /// Seed for every random choice in the experiment (printed when drawn).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Read predictions from this file instead of the lab's answers.toml.
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    pub answers: Option<PathBuf>,

    /// Which programs the experiment runs: lab's, the article's in Go, or
    /// both side by side [default: both when Go is installed, else lab].
    #[arg(long = "impl", value_enum, value_name = "WHICH")]
    pub implementation: Option<crate::labs::findings::Implementations>,

    /// Show what happened for every question, answered or not (spoilers).
    #[arg(long)]
    pub reveal: bool,
}

/// `lab go`: the article's programs in Go.
#[derive(Debug, Args)]
pub struct GoArgs {
    #[command(subcommand)]
    pub command: GoCommand,
}

#[derive(Debug, Subcommand)]
pub enum GoCommand {
    /// Each Go program, the article section it follows, its flags.
    #[command(after_help = "\
Examples:
  lab go list
  lab --labs-dir ~/lab/labs go list          the programs of another checkout")]
    List,
    /// A program's source with line numbers (the sheets cite labs/go/NAME/main.go:LINE).
    #[command(after_help = "\
Examples:
  lab go show naive
  lab go show balancer | less                 the article's main.go, page by page")]
    Show {
        /// The program, as `lab go list` names it (realserver, forward, naive …).
        name: String,
    },
    /// Build a program once with your `go`, then run it; Ctrl-C stops it.
    #[command(after_help = "\
Flags after NAME go to the program (Go's flag package: -listen and --listen both work).

Examples:
  lab go run realserver                       127.0.0.1:2003 and :2004, as the article's main()
  lab go run naive --listen 127.0.0.1:2012    the article's hand-written proxy
  lab go run balancer --lb weighted-round-robin
  lab go run balancer -- --help               the program's own flags")]
    Run {
        /// The program, as `lab go list` names it.
        name: String,
        /// Its flags.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "FLAGS"
        )]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct TourArgs {
    /// The lab: its number (1, 01) or its name.
    pub lab: String,

    /// Read the answers from this file (the answers.toml format) instead of asking.
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,

    /// Seed for every random choice in the experiment.
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Check this port of 127.0.0.1 instead of the lab's (repeatable).
    /// Without it, the lab's ports: 2002, 2003, 2004, 8080 and 2181, or the
    /// ports of LAB_PROXY_LISTEN, LAB_NAIVE_LISTEN, LAB_REALSERVER_ADDRS,
    /// LAB_FORWARD_LISTEN and LAB_ZK_LISTEN when they are set.
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
}

impl DoctorArgs {
    /// The ports to look at: `--port`s, else the lab's, each moved where
    /// its `LAB_*` address variable says.
    pub fn ports_to_check(&self) -> Vec<crate::doctor::PortToCheck> {
        self.ports_from(|name| std::env::var(name).ok())
    }

    pub(crate) fn ports_from(
        &self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Vec<crate::doctor::PortToCheck> {
        use crate::doctor::PortToCheck;
        if !self.ports.is_empty() {
            return self
                .ports
                .iter()
                .map(|&port| PortToCheck {
                    port,
                    role_of: None,
                })
                .collect();
        }
        let port_of = |text: &str| {
            crate::parse::parse_listen_addr(text.trim())
                .ok()
                .map(|addr| addr.port())
        };
        let listen = |name: &str| var(name).and_then(|v| port_of(&v));
        let servers: Vec<u16> = var("LAB_REALSERVER_ADDRS")
            .map(|v| v.split(',').filter_map(port_of).collect())
            .unwrap_or_default();
        let mut ports = Vec::new();
        let mut add = |port: Option<u16>, role: u16| {
            let check = PortToCheck {
                port: port.unwrap_or(role),
                role_of: Some(role),
            };
            if !ports.iter().any(|p: &PortToCheck| p.port == check.port) {
                ports.push(check);
            }
        };
        add(listen("LAB_PROXY_LISTEN"), 2002);
        if let Some(naive) = listen("LAB_NAIVE_LISTEN") {
            add(Some(naive), 2002);
        }
        add(servers.first().copied(), 2003);
        add(servers.get(1).copied(), 2004);
        add(listen("LAB_FORWARD_LISTEN"), 8080);
        add(listen("LAB_ZK_LISTEN"), 2181);
        ports
    }
}

#[derive(Debug, Args)]
pub struct ZkArgs {
    #[command(subcommand)]
    pub command: ZkCommand,
}

#[derive(Debug, Subcommand)]
pub enum ZkCommand {
    /// Run a standalone ZooKeeper in the foreground, until Ctrl-C.
    #[command(after_help = "\
Runs Debian's zookeeper package (/usr/share/zookeeper/bin/zkServer.sh start-foreground) with
a config and data dir in a temp dir, removed when it stops. Loopback only, tickTime=1000 (so
sessions as short as 2 s are allowed), no AdminServer (its port 8080 is `lab forward`'s).
Not installed? sudo apt-get install zookeeper

Examples:
  lab zk up                                   zk://127.0.0.1:2181
  lab zk up --listen 127.0.0.1:2182           another port
  lab -v zk up                                also show ZooKeeper's own log")]
    Up(ZkUpArgs),

    /// List the children of a path and their data: who is registered.
    #[command(after_help = "\
Examples:
  lab zk ls                                   zk://127.0.0.1:2181/lab/realserver
  lab zk ls zk://127.0.0.1:2182/lab/realserver")]
    Ls(ZkLsArgs),
}

#[derive(Debug, Args)]
pub struct ZkUpArgs {
    /// Address for ZooKeeper's clients (port 0: a free port, shown when ready).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2181", env = "LAB_ZK_LISTEN", value_parser = parse_listen_addr)]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ZkLsArgs {
    /// The ensemble and the path whose children to list.
    #[arg(value_name = "zk://HOST:PORT/PATH", default_value = crate::zk::DEFAULT_URL, env = "LAB_ZK_URL")]
    pub url: crate::zk::ZkUrl,
}

impl TraceArgs {
    /// What `lab trace` is to do; `verbose` is the global `-v` count.
    pub fn config(&self, verbose: u8) -> TraceConfig {
        let route = match (&self.forward, &self.target, &self.direct) {
            (Some(proxy), Some(target), _) => Route::Forward {
                proxy: proxy.clone(),
                target: target.clone(),
            },
            (_, _, Some(server)) => Route::Direct(server.clone()),
            _ => Route::Reverse(self.proxy.clone()),
        };
        TraceConfig {
            route,
            plan: Plan {
                // curl's rule: a body without -X makes the request a POST.
                method: self.method.clone().unwrap_or(if self.body.is_some() {
                    http::Method::POST
                } else {
                    http::Method::GET
                }),
                path: self.path.clone(),
                headers: self.headers.clone(),
                xff: self.xff.clone(),
                body: Bytes::from(self.body.clone().unwrap_or_default()),
            },
            requests: self.requests,
            pace: Pace {
                concurrency: usize::from(self.concurrency),
                interval: self.interval.filter(|d| !d.is_zero()),
            },
            compare: self.compare.clone(),
            seed: self.seed,
            json: self.json,
            verbose,
        }
    }
}

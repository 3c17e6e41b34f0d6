//! The command line of `lab`: every flag, and the one place where flags
//! become the configs the code below runs on.
//!
//! Kept apart from the logic (as ripgrep does) so the whole command surface
//! can be read in one place. Dependencies point one way: this module uses the
//! domain's types (a balancer's [`crate::balance::Algorithm`], a
//! [`crate::proxy::reverse::ProxyConfig`]), and nothing below it imports it;
//! only `lib.rs` and the commands that read their own flags (`lab demo`, the
//! labs) sit above it.
//!
//! - [`servers`]: `lab realserver`, `lab naive`, `lab forward`, and the
//!   listener limits every server shares;
//! - [`proxy`]: `lab proxy` (balancing, Director, middleware, discovery,
//!   Transport) and its [`crate::proxy::reverse::ProxyConfig`];
//! - [`shared`]: the listener limits and the upstream Transport, which
//!   several commands share;
//! - [`launch`]: `lab proxy FLAGS` started inside this process (the labs'
//!   experiments, `lab demo`, the tests);
//! - [`tools`]: the commands that do not serve: demo, trace, stats, the
//!   labs, doctor, ZooKeeper.

pub mod exercise;
pub mod launch;
pub mod proxy;
pub mod servers;
pub mod shared;
pub mod tools;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::{self, ColorChoice};

pub use exercise::{ExerciseArgs, ExerciseCommand, VerifyArgs};
pub use proxy::{DiscoveryArgs, MiddlewareArgs, ProxyArgs};
pub use servers::{ForwardArgs, NaiveArgs, RealserverArgs, RelayArgs, TransparentArgs};
pub use shared::{LimitsArgs, TransportArgs};
pub use tools::{
    CheckArgs, DemoArgs, DoctorArgs, GoArgs, GoCommand, StatsArgs, TourArgs, TraceArgs, ZkArgs,
    ZkCommand, ZkLsArgs, ZkUpArgs,
};

/// Parses the process's command line; on a usage error, prints it (naming
/// the `LAB_*` variable behind a flag the learner did not type) and exits.
pub fn parse() -> Cli {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, FromArgMatches};
    // Help is wrapped to the screen like every other output (`COLUMNS`, the
    // terminal, else 100 columns). Its examples are laid out only when help
    // is shown: every other run would pay for it and print none of it.
    let width = crate::output::width();
    let parsed = match Cli::command().term_width(width).try_get_matches() {
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            fit_after_help(Cli::command(), width)
                .term_width(width)
                .try_get_matches()
        }
        parsed => parsed,
    }
    .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches));
    match parsed {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let rendered = err.render().to_string();
            eprint!("{rendered}");
            for note in env_notes(&Cli::command(), &rendered, |name| std::env::var_os(name)) {
                eprintln!("{note}");
            }
            std::process::exit(err.exit_code());
        }
    }
}

/// `command` and its subcommands with their `Examples:` laid out for
/// `width` columns (see [`fit_examples`]); clap wraps only what is wider.
fn fit_after_help(mut command: clap::Command, width: usize) -> clap::Command {
    if let Some(text) = command.get_after_help() {
        let fitted = fit_examples(&text.to_string(), width);
        command = command.after_help(fitted);
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| fit_after_help(sub, width));
    }
    command
}

/// An after-help text fitted to `width`: an example line keeps its command
/// whole (a command is pasted, never broken) and wraps its commentary under
/// the commentary's own column, or on the lines below when that column
/// leaves too little room; prose wraps at spaces. Lines indented deeper
/// than an example's commentary continue it (that is how they are written).
pub fn fit_examples(text: &str, width: usize) -> String {
    const ROOM: usize = 24;
    let mut out: Vec<String> = Vec::new();
    // The example being laid out: its command part and its commentary.
    let mut example: Option<(String, usize, String)> = None;
    let mut prose: Option<(String, String)> = None;
    let flush = |out: &mut Vec<String>, example: &mut Option<(String, usize, String)>| {
        let Some((command, column, commentary)) = example.take() else {
            return;
        };
        if commentary.is_empty() {
            out.push(command);
        } else if column.max(command.chars().count() + 2) + commentary.chars().count() <= width {
            let pad = column.saturating_sub(command.chars().count()).max(2);
            let line = format!("{command}{}{commentary}", " ".repeat(pad));
            out.push(line.trim_end().to_string());
        } else if width.saturating_sub(column) >= ROOM && command.chars().count() < column {
            let first = format!("{command:<column$}");
            let under = " ".repeat(column);
            out.extend(output::wrap(&commentary, width, &first, &under));
        } else {
            out.push(command);
            out.extend(output::wrap(&commentary, width, "      ", "      "));
        }
    };
    for line in text.lines() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if let Some((_, _, commentary)) = example.as_mut()
            && indent > 2
            && !body.is_empty()
        {
            commentary.push(' ');
            commentary.push_str(body);
            continue;
        }
        flush(&mut out, &mut example);
        if indent == 2 && !body.is_empty() {
            if let Some((lead, text)) = prose.take() {
                out.extend(output::wrap(&text, width, &lead, &lead));
            }
            // `  command   commentary`: two or more spaces end the command.
            match body.find("  ") {
                Some(end) => {
                    let rest = &body[end..];
                    let commentary = rest.trim_start();
                    let column = 2 + end + (rest.len() - commentary.len());
                    example = Some((line[..2 + end].to_string(), column, commentary.to_string()));
                }
                // No commentary: nothing continues it (a deeper line is its own).
                None => {
                    out.push(line.to_string());
                }
            }
            continue;
        }
        // Prose: consecutive lines are one paragraph, re-wrapped.
        match prose.as_mut() {
            Some((_, text)) if !body.is_empty() && !body.ends_with(':') => {
                text.push(' ');
                text.push_str(body);
            }
            _ => {
                if let Some((lead, text)) = prose.take() {
                    out.extend(output::wrap(&text, width, &lead, &lead));
                }
                if body.is_empty() {
                    out.push(String::new());
                } else if body.ends_with(':') {
                    out.push(line.to_string());
                } else {
                    prose = Some((line[..indent].to_string(), body.to_string()));
                }
            }
        }
    }
    flush(&mut out, &mut example);
    if let Some((lead, text)) = prose.take() {
        out.extend(output::wrap(&text, width, &lead, &lead));
    }
    out.join("\n")
}

/// For each flag named in a usage error that an exported `LAB_*` variable
/// gave (clap counts a variable as the flag given), a line that says so.
fn env_notes(
    command: &clap::Command,
    error: &str,
    var: impl Fn(&str) -> Option<std::ffi::OsString> + Copy,
) -> Vec<String> {
    let mut notes = Vec::new();
    for arg in command.get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let env = env.to_string_lossy();
        let named =
            error.contains(&format!("'--{long} ")) || error.contains(&format!("'--{long}'"));
        if named && var(&env).is_some() {
            let note = format!(
                "note: --{long} came from {env} in your environment; `unset {env}` if you did not mean it"
            );
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    for sub in command.get_subcommands() {
        for note in env_notes(sub, error, var) {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    notes
}

/// An interactive lab for HTTP proxies: run the servers and proxies of the
/// article "Go与HTTP代理" on loopback and see what every hop did.
#[derive(Debug, Parser)]
#[command(name = "lab", version, propagate_version = true)]
#[command(after_help = "\
Examples:
  lab demo                       everything at once: real servers, lab proxy and a trace
  lab realserver                 the article's two real servers on 127.0.0.1:2003 and :2004
  curl -s 127.0.0.1:2003/abc     ...then ask one of them what it saw
  lab proxy --lb wrr             the ReverseProxy on 127.0.0.1:2002, smooth weighted round robin
  lab trace                      what every hop did, request by request
  lab labs                       the follow-along labs and your progress
  lab show 1                     read lab 01
  lab check --all                verify every lab's claims on real sockets")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// When to use colour: auto (a terminal and no NO_COLOR), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// More detail: a server logs every request it handles (-vv:
    /// everything); `lab trace` shows each request's headers (-vv: bodies);
    /// `lab check` and `lab tour` show their servers' logs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Log errors only (RUST_LOG, e.g. RUST_LOG=lab=debug, overrides both).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Where the labs live (default: ./labs, else the labs of this checkout).
    #[arg(long, global = true, env = "LAB_LABS_DIR", value_name = "DIR")]
    pub labs_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The one-command first look: two real servers, a lab proxy and a trace through them.
    #[command(after_help = "\
Uses the article's ports (2003, 2004, 2002) when free, other free ports otherwise.

Examples:
  lab demo
  lab demo --lb consistent-hash
  lab demo --lb random -n 20")]
    Demo(DemoArgs),

    /// Run the article's RealServer: an echo of what each request looked like on arrival.
    #[command(after_help = "\
Endpoints (on every address):
  /ANY/PATH                  the article's three-line echo (RemoteAddr, X-Forwarded-For, X-Real-Ip, headers)
  -H 'Accept: application/json'   the same facts as JSON
  /base/error                500 \"error handler\"
  /test_http_string/test_http_string/aaa   sleeps 6 s; the 3 s write timeout closes the connection first
  .../delay?ms=N             answer after N milliseconds
  .../stream?n=N&ms=M        N chunks M ms apart, then a trailer (send 'TE: trailers' to receive it)
  .../ws                     WebSocket echo
  .../hop-headers            a response carrying hop-by-hop headers (Connection: X-Hop)
  .../bytes?n=N              N bytes of a verifiable pattern (byte i = i mod 251): a big download

Examples:
  lab realserver
  lab realserver --addr 127.0.0.1:2013 --addr 127.0.0.1:2014
  lab realserver --tls            HTTPS with a certificate made at start (its path is logged)
  lab realserver --register zk://127.0.0.1:2181/lab/realserver   registered for discovery (lab zk up)
  curl --cacert /tmp/lab-realserver-cert.pem https://127.0.0.1:2003/abc
  curl -s '127.0.0.1:2003/abc?x=1' -H 'X-Forwarded-For: 1.2.3.4'
  curl -s 127.0.0.1:2003/abc -H 'Accept: application/json'
  curl -s --raw -H 'TE: trailers' '127.0.0.1:2003/stream?n=3&ms=300'")]
    Realserver(RealserverArgs),

    /// Run the article's hand-written reverse proxy (简单版反向代理), flaws intact on purpose.
    #[command(after_help = "\
It only swaps the request's scheme and host for the target's: no X-Forwarded-For, hop-by-hop
headers passed on both ways, the client's Host kept, no path join. Compare with `lab proxy`.

Examples:
  lab naive                                   127.0.0.1:2002 → http://127.0.0.1:2003
  curl -s 127.0.0.1:2002/abc                  the real server sees no X-Forwarded-For
  curl -s 127.0.0.1:2002/abc -H 'Connection: X-Foo' -H 'X-Foo: 1'   X-Foo arrives (it should not)
  curl -si 127.0.0.1:2002/hop-headers         the upstream's hop-by-hop headers reach you
  lab naive --listen 127.0.0.1:2012 --target http://127.0.0.1:2004")]
    Naive(NaiveArgs),

    /// Forward TCP to a target, bytes unchanged (网络转发): a relay, not a proxy.
    #[command(after_help = "\
A layer-4 relay reads no HTTP: it adds and removes nothing, and the real server's RemoteAddr is
the relay's own socket. Put it beside `lab proxy` to see forwarding against proxying.

Examples:
  lab relay                                   127.0.0.1:2001 → 127.0.0.1:2003
  curl -s 127.0.0.1:2001/abc                  RemoteAddr is the relay; no X-Forwarded-For
  lab relay --listen 127.0.0.1:2011 --target 127.0.0.1:2004")]
    Relay(RelayArgs),

    /// Run a transparent proxy (透明代理) in a network of its own: the client has no proxy setting.
    #[command(after_help = "\
It builds three network namespaces (client, gateway, server) on documentation addresses, and an
nftables rule in the gateway hands the client's TCP to port 2003 to the proxy; port 2004 is only
routed. The namespaces live as long as this process: Ctrl-C, SIGTERM or a crash removes them.
Needs root, or unprivileged user namespaces (it then runs itself in one).

Examples:
  lab transparent                              redirect mode; Ctrl-C stops it
  lab transparent --mode tproxy                the real server sees the client's address
  lab transparent --run -- curl -s http://198.51.100.2:2003/abc   proxied, curl unaware
  lab transparent --run -- curl -s http://198.51.100.2:2004/abc   routed, not proxied
  lab transparent --run -- lab trace --direct http://198.51.100.2:2003
  lab transparent --run --in gateway -- nft list ruleset
  lab transparent --cleanup                    stop it, or tidy up after a crash")]
    Transparent(TransparentArgs),

    /// Run a forward proxy (正向代理): absolute URLs, X-Forwarded-For, CONNECT tunnels.
    #[command(after_help = "\
A client must be told to use it (curl -x, a browser's proxy setting); it then sends whole URLs.
CONNECT tunnels reach only ports 443, 2003 and 2004 (HTTPS and the real servers) unless --allow-connect-port.

Examples:
  lab forward                                 listens on 127.0.0.1:8080
  curl -s -x http://127.0.0.1:8080 http://127.0.0.1:2003/abc -H 'X-Forwarded-For: 1.2.3.4'
  curl -si -x http://127.0.0.1:8080 http://127.0.0.1:2003/hop-headers   hop-by-hop headers removed
  curl -s -p -x http://127.0.0.1:8080 http://127.0.0.1:2003/abc        through a CONNECT tunnel
  lab forward --allow-connect-port 2013
  lab forward --listen 127.0.0.1:8081 --parent-proxy http://127.0.0.1:8080   a chain of two")]
    Forward(ForwardArgs),

    /// Run the full ReverseProxy: Go's httputil.ReverseProxy, step by step.
    #[command(after_help = "\
Examples:
  lab proxy                                   127.0.0.1:2002 → http://127.0.0.1:2003/base
  curl -s 127.0.0.1:2002/abc                  the real server sees /base/abc and X-Forwarded-For
  lab proxy --upstream http://127.0.0.1:2004/base
  lab proxy --rewrite '^/dir(.*)=$1' --set-header token:ssss
  lab proxy --replace-body '{\"apple\":2,\"banana\":3,\"cherry\":4}'
  lab proxy --prefix-response 'hello ' --prefix-errors
  lab proxy --response-timeout 2s             then: curl -s 127.0.0.1:2002/delay?ms=5000 → 504
  lab proxy --like-go                         Go's ReverseProxy's behaviour where lab's differs (502s, no
                                              X-Real-IP/Via/X-Lab-*): docs/go-differences.md
  lab proxy --forwarded replace               nginx's X-Forwarded-For $remote_addr
  lab proxy --max-idle-per-host 0             no connection pool: a new upstream connection per request
  lab proxy --health-check / --health-interval 500ms   an upstream that stops leaves the set, then returns
  curl -s 127.0.0.1:2002/_lab/upstreams       the proxy's own page: the set, each upstream's health, changes
  lab proxy --discovery zk://127.0.0.1:2181/lab/realserver   upstreams from ZooKeeper (lab zk up,
                                              lab realserver --register zk://127.0.0.1:2181/lab/realserver)
  lab proxy --auth-token s3cret               then: curl -s -H 'Authorization: Bearer s3cret' 127.0.0.1:2002/abc
  lab proxy --rate-limit 5/s                  the sixth request in a second gets 429 and Retry-After
  lab proxy --breaker-failures 3 --fallback-body 'try again later'   stop a real server and watch
  lab stats                                   requests, statuses, latency and bytes per upstream
  curl -s 127.0.0.1:2002/_lab/metrics         the same in Prometheus' text format")]
    Proxy(Box<ProxyArgs>),

    /// Send requests through a proxy and see the balancer's choice beside what the upstream saw.
    #[command(after_help = "\
Every request asks the proxy to explain its pick (X-Lab-Explain: 1) and the real server for
its JSON echo (Accept: application/json). Against `lab naive`, a forward proxy or --direct there
is no balancer: the upstream is the server that answered. -v adds every request's headers,
-vv the bodies too. --json prints one document (its schema is in the docs of lab::trace).

Examples:
  lab trace                                   10 requests through lab proxy on 127.0.0.1:2002
  lab trace -n 30 --json                      the same as JSON: picks, upstream views, counts
  lab trace -H 'Connection: X-Foo' -H 'X-Foo: 1'   which headers the proxy removed (the diff)
  lab trace --xff 1.2.3.4                     a client that claims an X-Forwarded-For
  lab trace --proxy http://127.0.0.1:2012 --compare http://127.0.0.1:2002
                                              lab naive (on 2012) against lab proxy, side by side
  lab trace --forward http://127.0.0.1:8080 --target http://127.0.0.1:2003
  lab trace --direct http://127.0.0.1:2003    no proxy at all: the before picture
  lab trace -n 1000 --concurrency 8 --path /abc
  lab trace -d 'x=1' -n 4                     a POST with a body, as curl -d (-X PUT for another method)
  lab trace -n 40 --interval 100ms            slowly: stop a real server meanwhile and watch the
                                              upstream set change (lab proxy --health-check /)")]
    Trace(TraceArgs),

    /// Show what a running lab proxy has counted (数据统计): requests, statuses, latency, bytes.
    #[command(after_help = "\
Reads the proxy's /_lab/stats: per upstream the requests by status class, p50/p99 latency
(estimated from fixed buckets, as Prometheus does), body bytes in and out, requests in flight,
and which layer answered (the upstream, or the proxy itself: 502/504, auth, rate limit …).
The same numbers are at /_lab/metrics in the Prometheus text format, for a real Prometheus.
--json prints the page as served; its fields are described in docs/stats-json.md.

Examples:
  lab stats                                   lab proxy on 127.0.0.1:2002
  lab trace -n 30 && lab stats                30 requests, then what the proxy counted
  lab stats --json                            the same as JSON
  lab stats --proxy http://127.0.0.1:2012     a lab proxy on another port
  curl -s 127.0.0.1:2002/_lab/metrics         the Prometheus metrics")]
    Stats(StatsArgs),

    /// ZooKeeper for service discovery (服务发现): run one, see who registered.
    #[command(after_help = "\
The article's LoadBalanceZkConf: real servers register as ephemeral nodes under one path,
and a proxy watches the path's children. A server that stops leaves at once; one that is
killed leaves when its session expires (about 3 s).

Examples:
  lab zk up                                   ZooKeeper on 127.0.0.1:2181 (Debian's package)
  lab realserver --register zk://127.0.0.1:2181/lab/realserver
  lab zk ls                                   who is registered under /lab/realserver
  lab proxy --discovery zk://127.0.0.1:2181/lab/realserver")]
    Zk(ZkArgs),

    /// List the labs with your progress.
    #[command(after_help = "\
Status: ✓ pass, • predictions pending (fill in the lab's answers.toml), ✗ fail, · not checked.

The labs are the labs/ folder of the checkout you are in (here or above), or --labs-dir /
LAB_LABS_DIR. Your answers live in labs/NN-slug/answers.toml and your progress (checks,
hints seen, tour scores) in labs/.progress.json, beside the labs you use; neither is
committed.

Examples:
  lab labs
  lab --labs-dir ~/lab/labs labs")]
    Labs,

    /// Show a lab's sheet in the terminal.
    #[command(after_help = "\
A claim next to a question you have not answered in answers.toml is folded (it often states
the answer); --reveal shows every claim. Prose is wrapped to the terminal (or COLUMNS); code
blocks come out exactly as written, to be pasted. A sheet taller than the terminal goes
through $PAGER (less when unset; PAGER=cat or --no-pager prints it all).

Examples:
  lab show 1
  lab show special-headers
  lab show 14 --reveal
  lab show 8 --no-pager | grep claim")]
    Show {
        /// The lab: its number (1, 01) or its name (proxy-basics).
        lab: String,
        /// Show every claim, the answers of questions not answered yet included.
        #[arg(long)]
        reveal: bool,
        /// Print the whole sheet, never through $PAGER.
        #[arg(long)]
        no_pager: bool,
    },

    /// Run a lab's experiment on real sockets and verify every claim its sheet makes.
    #[command(after_help = "\
Your predictions are read from the lab's answers.toml; fill it in before checking. What
happened for a question you have not answered is not shown (answer it first, or --reveal),
nor are the claims next to it in the sheet.

What the marks mean, here, in `lab labs` and in `lab tour`:
  ✓ pass     every claim of the sheet held, and every question is answered
  • pending  every claim held; some questions are not answered yet
  ✗ fail     a claim did not hold, or the lab has a problem: its experiment failed, its sheet
             and its check disagree, or its answers file is broken or names no question
  ✗ wrong    (a prediction) answered, and not what happened: yours to learn from, counted
             in your score, never a failure of the lab
Exit status: 0 when no lab failed (pass or pending), 1 when one did.

With --all, one line per lab as it finishes, and the tables of what failed under it; the
servers' logs only with -v.

Examples:
  lab check 1
  lab check 1 --reveal                        what happened, answered or not
  lab check --all
  lab check 2 --seed 7 --answers my-answers.toml")]
    Check(CheckArgs),

    /// Walk through a lab in the terminal: read, predict, watch it run, score.
    #[command(after_help = "\
Each step shows a part of the lab's sheet; before each experiment you predict what will
happen, then the experiment runs on real sockets and shows what did. Your score and answers
are recorded: `lab labs` shows them. At a question, `?` shows that question's next hint,
`skip` leaves it unanswered and `q` stops the tour. A wrong prediction is yours to learn
from: it lowers your score, it does not fail the lab (`lab check --help`). A reveal never
holds the answer to a question still to come. With --answers FILE, or when stdin is not a
terminal, the answers are read instead of asked (one per line on stdin, or the answers.toml
format).

Examples:
  lab tour 14                                 the weighted round-robin lab
  lab tour weighted-round-robin
  lab tour 14 --answers my-answers.toml       no questions asked
  lab tour 14 < my-predictions.txt            answers from a file, one per line, in question order")]
    Tour(TourArgs),

    /// Check this machine for the labs: free ports, ZooKeeper, versions.
    #[command(after_help = "\
Looks at the ports the labs use (2002 lab proxy, 2003 and 2004 the real servers, 8080 the
forward proxy, 2181 ZooKeeper): free, or busy and by which process when it can tell (on
Linux, from /proc: a process of another user shows only as such). Then whether Debian's
zookeeper package, Java, curl and Go are installed, their versions, and lab's own and the OS's.
It ends with what to do about each problem. The ports follow LAB_PROXY_LISTEN,
LAB_NAIVE_LISTEN, LAB_REALSERVER_ADDRS, LAB_FORWARD_LISTEN and LAB_ZK_LISTEN when set.
Exit status: 1 when a port the lab needs is held by another program (a lab server on its
own port is fine), else 0; --json prints the same report as one document (its schema is in
the docs of lab::doctor) with the same exit status.

Examples:
  lab doctor
  lab doctor --json                           the same as JSON, for a script
  lab doctor --port 2012 --port 2013          these ports instead of the lab's
  LAB_PROXY_LISTEN=127.0.0.1:2012 lab doctor  the proxy's role on 2012")]
    Doctor(DoctorArgs),

    /// The article's programs in Go: list them, read one, run one.
    #[command(after_help = "\
Written for this lab with Go's standard library, one program per listing of the article;
where the article's code has a bug, the program keeps it and a comment says so. Needs Go
1.19 or newer (Debian: apt-get install golang-go); built once into ~/.cache/lab.

Examples:
  lab go list
  lab go show director
  lab go run realserver
  lab go run balancer --lb weighted-round-robin --listen 127.0.0.1:2002")]
    Go(GoArgs),

    /// Write the article's code yourself: list, start, hint, solution.
    #[command(after_help = "\
Each exercise is one code listing of the article; `lab verify N` checks your program with the
lab's experiment, on real sockets.

Examples:
  lab exercise list
  lab exercise start 8
  lab exercise hint 8
  lab exercise solution 8")]
    Exercise(ExerciseArgs),

    /// Check your program for an exercise with the lab's experiment.
    Verify(VerifyArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "\
Examples:
  lab completions bash > ~/.local/share/bash-completion/completions/lab
  lab completions zsh > \"${fpath[1]}/_lab\"
  lab completions fish > ~/.config/fish/completions/lab.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Show the next hint for a lab (one more each time).
    #[command(after_help = "\
Each hint names the question it helps with (or says it is about the whole lab). Without
QUESTION, the next hint in the lab's order; with it, that question's next hint (then the
lab's general ones). In `lab tour`, `?` at a question is this.

Examples:
  lab hint 1
  lab hint 14 pick4-currents                  the next hint for that question
  lab hint 1 --reset")]
    Hint {
        /// The lab: its number (1, 01) or its name.
        lab: String,
        /// The question (its id in the sheet, e.g. direct-port) to get a hint for.
        question: Option<String>,
        /// Start the hints of this lab over.
        #[arg(long)]
        reset: bool,
    },
}

impl Command {
    /// Whether the servers it starts inside itself (a lab's experiment) log
    /// only when asked (`-v`): the report is the command's output.
    pub fn quiet_servers(&self) -> bool {
        match self {
            Command::Check(_) | Command::Tour(_) => true,
            // The command's output is the point; the proxy's log is not.
            Command::Transparent(args) => args.run,
            _ => false,
        }
    }

    /// Whether `-v` asks for more output rather than more logging (`lab
    /// trace`: headers, then bodies).
    pub fn verbose_is_output(&self) -> bool {
        matches!(self, Command::Trace(_))
    }

    /// Whether the command runs until stopped (a server, ZooKeeper), as
    /// opposed to one that prints a result and ends.
    pub fn serves(&self) -> bool {
        match self {
            Command::Realserver(_)
            | Command::Naive(_)
            | Command::Relay(_)
            | Command::Transparent(_)
            | Command::Forward(_)
            | Command::Proxy(_) => true,
            Command::Go(args) => matches!(args.command, GoCommand::Run { .. }),
            Command::Verify(args) => args.watch,
            Command::Zk(args) => matches!(args.command, ZkCommand::Up(_)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples_keep_their_commands_whole_and_wrap_their_commentary() {
        let text = [
            "Some prose that is long enough to wrap at thirty columns.",
            "",
            "Examples:",
            "  lab proxy --lb wrr   the weighted balancer, with its table",
            "  lab proxy --discovery zk://127.0.0.1:2181/lab/realserver   upstreams",
            "                                                              from ZooKeeper",
            "  lab stats",
        ]
        .join("\n");
        let fitted = fit_examples(&text, 48);
        let expected = [
            "Some prose that is long enough to wrap at thirty",
            "columns.",
            "",
            "Examples:",
            "  lab proxy --lb wrr   the weighted balancer,",
            "                       with its table",
            "  lab proxy --discovery zk://127.0.0.1:2181/lab/realserver",
            "      upstreams from ZooKeeper",
            "  lab stats",
        ];
        assert_eq!(fitted.lines().collect::<Vec<_>>(), expected);
    }

    use std::time::Duration;

    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn doctor_follows_the_lab_addresses_in_the_environment() {
        let cli = Cli::parse_from(["lab", "doctor"]);
        let Command::Doctor(args) = cli.command else {
            panic!("expected doctor");
        };
        let env = |name: &str| match name {
            "LAB_PROXY_LISTEN" => Some("127.0.0.1:2012".to_string()),
            "LAB_REALSERVER_ADDRS" => Some("127.0.0.1:2013,127.0.0.1:2014".to_string()),
            _ => None,
        };
        let ports: Vec<(u16, Option<u16>)> = args
            .ports_from(env)
            .iter()
            .map(|p| (p.port, p.role_of))
            .collect();
        assert_eq!(
            ports,
            [
                (2012, Some(2002)),
                (2013, Some(2003)),
                (2014, Some(2004)),
                (8080, Some(8080)),
                (2181, Some(2181))
            ]
        );
        let plain: Vec<u16> = args.ports_from(|_| None).iter().map(|p| p.port).collect();
        assert_eq!(plain, crate::doctor::DEFAULT_PORTS);
    }

    #[test]
    fn trace_takes_curls_method_and_data_flags() {
        let method = |argv: &[&str]| {
            let mut all = vec!["lab", "trace"];
            all.extend_from_slice(argv);
            let Command::Trace(args) = Cli::parse_from(all).command else {
                panic!("expected trace");
            };
            let config = args.config(0);
            (config.plan.method.to_string(), config.plan.body.len())
        };
        assert_eq!(method(&[]), ("GET".to_string(), 0));
        assert_eq!(method(&["-d", "x=1"]), ("POST".to_string(), 3));
        assert_eq!(method(&["-X", "PUT", "-d", "x=1"]), ("PUT".to_string(), 3));
        assert_eq!(method(&["--data", "ab"]), ("POST".to_string(), 2));
        assert_eq!(method(&["--method", "DELETE"]), ("DELETE".to_string(), 0));
    }

    #[test]
    fn a_conflict_from_the_environment_names_the_variable() {
        let err = "error: the argument '--proxy <URL>' cannot be used with '--direct <URL>'";
        let set = |name: &str| (name == "LAB_TRACE_PROXY").then(|| "x".into());
        let notes = env_notes(&Cli::command(), err, set);
        assert_eq!(
            notes,
            [
                "note: --proxy came from LAB_TRACE_PROXY in your environment; `unset LAB_TRACE_PROXY` if you did not mean it"
            ]
        );
        assert!(env_notes(&Cli::command(), err, |_| None).is_empty());
    }

    #[test]
    fn realserver_defaults_are_the_articles() {
        let cli = Cli::parse_from(["lab", "realserver"]);
        let Command::Realserver(args) = cli.command else {
            panic!("expected realserver");
        };
        let addrs: Vec<String> = args.addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1:2003", "127.0.0.1:2004"]);
        assert_eq!(args.write_timeout, Duration::from_secs(3));
    }

    #[test]
    fn check_needs_a_lab_or_all() {
        assert!(Cli::try_parse_from(["lab", "check"]).is_err());
        assert!(Cli::try_parse_from(["lab", "check", "1", "--all"]).is_err());
        assert!(Cli::try_parse_from(["lab", "check", "--all"]).is_ok());
    }

    #[test]
    fn zk_defaults_are_the_labs() {
        let cli = Cli::parse_from(["lab", "zk", "up"]);
        let Command::Zk(ZkArgs {
            command: ZkCommand::Up(up),
        }) = cli.command
        else {
            panic!("expected zk up");
        };
        assert_eq!(up.listen.to_string(), "127.0.0.1:2181");
        let cli = Cli::parse_from(["lab", "zk", "ls"]);
        let Command::Zk(ZkArgs {
            command: ZkCommand::Ls(ls),
        }) = cli.command
        else {
            panic!("expected zk ls");
        };
        assert_eq!(ls.url.to_string(), crate::zk::DEFAULT_URL);
    }

    #[test]
    fn realserver_registers_with_a_weight() {
        let cli = Cli::parse_from([
            "lab",
            "realserver",
            "--register",
            "zk://127.0.0.1:2181/lab/realserver",
            "--weight",
            "7",
        ]);
        let Command::Realserver(args) = cli.command else {
            panic!("expected realserver");
        };
        assert_eq!(
            args.register.map(|url| url.to_string()).as_deref(),
            Some("zk://127.0.0.1:2181/lab/realserver")
        );
        assert_eq!(args.weight, 7);
        let bad = |args: &[&str]| {
            let mut argv = vec!["lab", "realserver"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).is_err()
        };
        let url = "zk://127.0.0.1:2181/lab/realserver";
        assert!(bad(&["--register", url, "--weight", "0"]));
        assert!(bad(&["--register", url, "--weight", "10001"]));
        assert!(bad(&["--weight", "3"]), "--weight needs --register");
        assert!(bad(&["--register", "http://127.0.0.1:2181/lab"]));
    }
}

//! Every command-line definition of `lab`, and nothing else.
//!
//! Kept apart from the logic (as ripgrep does) so the whole command surface can
//! be read in one place; `lib.rs` turns a parsed [`Cli`] into work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

    /// Log more: -v shows every request a server handles, -vv everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Where the labs live (default: ./labs, else the labs of this checkout).
    #[arg(long, global = true, env = "LAB_LABS_DIR", value_name = "DIR")]
    pub labs_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
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
  lab trace -n 40 --interval 100ms            slowly: stop a real server meanwhile and watch the
                                              upstream set change (lab proxy --health-check /)")]
    Trace(TraceArgs),

    /// Show what a running lab proxy has counted (数据统计): requests, statuses, latency, bytes.
    #[command(after_help = "\
Reads the proxy's /_lab/stats: per upstream the requests by status class, p50/p99 latency
(estimated from fixed buckets, as Prometheus does), body bytes in and out, requests in flight,
and which layer answered (the upstream, or the proxy itself: 502/504, auth, rate limit …).
The same numbers are at /_lab/metrics in the Prometheus text format, for a real Prometheus.
--json prints the page as served (its schema is in the docs of lab::middleware::stats).

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

Examples:
  lab labs
  lab --labs-dir ~/lab/labs labs")]
    Labs,

    /// Show a lab's sheet in the terminal.
    #[command(after_help = "Examples:\n  lab show 1\n  lab show special-headers")]
    Show {
        /// The lab: its number (1, 01) or its name (proxy-basics).
        lab: String,
    },

    /// Run a lab's experiment on real sockets and verify every claim its sheet makes.
    #[command(after_help = "\
Your predictions are read from the lab's answers.toml; fill it in before checking.

Examples:
  lab check 1
  lab check --all
  lab check 2 --seed 7 --answers my-answers.toml")]
    Check(CheckArgs),

    /// Walk through a lab in the terminal: read, predict, watch it run, score.
    #[command(after_help = "\
Each step shows a part of the lab's sheet; before each experiment you predict what will
happen, then the experiment runs on real sockets and shows what did. Your score and answers
are recorded: `lab labs` shows them. With --answers FILE, or when stdin is not a terminal,
the answers are read instead of asked (one per line on stdin, or the answers.toml format).

Examples:
  lab tour 13                                 the weighted round-robin lab
  lab tour weighted-round-robin
  lab tour 13 --answers my-answers.toml       no questions asked
  lab tour 13 < my-predictions.txt            answers from a file, one per line, in question order")]
    Tour(TourArgs),

    /// Check this machine for the labs: free ports, ZooKeeper, versions.
    #[command(after_help = "\
Looks at the ports the labs use (2002 lab proxy, 2003 and 2004 the real servers, 8080 the
forward proxy, 2181 ZooKeeper): free, or busy and by which process when it can tell (on
Linux, from /proc: a process of another user shows only as such). Then whether Debian's
zookeeper package, Java and curl are installed, their versions, and lab's own and the OS's.
It ends with what to do about each problem. It reports, it does not judge: the exit status
is 0 whatever it finds, and 1 only when the doctor itself fails. --json prints one document
(its schema is in the docs of lab::doctor).

Examples:
  lab doctor
  lab doctor --json                           the same as JSON, for a script
  lab doctor --port 2012 --port 2013          these ports instead of the lab's")]
    Doctor(DoctorArgs),

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
    #[command(after_help = "Examples:\n  lab hint 1\n  lab hint 1 --reset")]
    Hint {
        /// The lab: its number (1, 01) or its name.
        lab: String,
        /// Start the hints of this lab over.
        #[arg(long)]
        reset: bool,
    },
}

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
pub struct RealserverArgs {
    /// Address to listen on; repeat for several servers in one process.
    #[arg(
        long = "addr",
        value_name = "ADDR",
        default_values_t = default_realserver_addrs(),
        env = "LAB_REALSERVER_ADDRS",
        value_delimiter = ',',
        value_parser = parse_listen_addr
    )]
    pub addrs: Vec<SocketAddr>,

    /// Like Go's http.Server.WriteTimeout in the article: a response not ready
    /// this long after its request arrived is never sent (the connection closes).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Serve HTTPS (the article's 支持https代理) with a certificate made at
    /// start for localhost, 127.0.0.1 and ::1, signed by itself. Its PEM is
    /// written out for clients: curl --cacert PATH, or a proxy's --upstream-ca PATH.
    #[arg(long)]
    pub tls: bool,

    /// Where --tls writes the certificate (PEM) [default: lab-realserver-cert.pem
    /// in the system temp directory].
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub tls_cert_out: Option<PathBuf>,

    /// Register every server in ZooKeeper once it listens (服务注册): an
    /// ephemeral node PATH/HOST:PORT holding its upstream spec,
    /// http://HOST:PORT/base,WEIGHT. Removed on Ctrl-C before the servers
    /// drain, or by ZooKeeper when this process dies and its session expires.
    #[arg(long, value_name = "zk://HOST:PORT/PATH")]
    pub register: Option<crate::zk::ZkUrl>,

    /// The weight registered with --register (1 to 10000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        requires = "register",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub weight: u32,

    #[command(flatten)]
    pub limits: crate::server::Limits,
}

#[derive(Debug, Args)]
pub struct NaiveArgs {
    /// Address to listen on (the article's port 2002, on loopback).
    #[arg(long, value_name = "ADDR", default_value = crate::proxy::naive::DEFAULT_LISTEN, env = "LAB_NAIVE_LISTEN", value_parser = parse_listen_addr)]
    pub listen: SocketAddr,

    /// Where every request goes: only its scheme and host are used (the article's proxyAddr).
    #[arg(long, value_name = "URL", default_value = crate::proxy::naive::DEFAULT_TARGET, env = "LAB_NAIVE_TARGET")]
    pub target: crate::proxy::naive::Target,

    #[command(flatten)]
    pub limits: crate::server::Limits,
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Address to listen on (the article's :8080, on loopback). Beyond
    /// loopback other machines can reach it, and those --allow names can use it.
    #[arg(long, value_name = "ADDR", default_value = crate::proxy::forward::DEFAULT_LISTEN, env = "LAB_FORWARD_LISTEN", value_parser = parse_listen_addr)]
    pub listen: SocketAddr,

    /// Also allow CONNECT tunnels to this port (repeatable); by default only
    /// 443, 2003 and 2004 (HTTPS and the real servers; not the proxies' ports,
    /// whose /_lab/ pages a tunnel would reach).
    #[arg(long = "allow-connect-port", value_name = "PORT")]
    pub allow_connect_ports: Vec<u16>,

    /// Send every request and tunnel through this forward proxy (a chain).
    #[arg(long, value_name = "URL")]
    pub parent_proxy: Option<crate::proxy::forward::ParentProxy>,

    /// Serve clients from this address range (repeatable), e.g. 10.0.0.0/8 or
    /// 192.168.1.7; others get 403. By default only loopback (127.0.0.0/8,
    /// ::1): a proxy anyone can use is an open proxy. Replaces the default, so
    /// give 127.0.0.0/8 too to keep loopback.
    #[arg(long = "allow", value_name = "CIDR")]
    pub allow: Vec<crate::cidr::Cidr>,

    #[command(flatten)]
    pub transport: crate::proxy::transport::TransportConfig,

    #[command(flatten)]
    pub limits: crate::server::Limits,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on (the article's 127.0.0.1:2002).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002", env = "LAB_PROXY_LISTEN", value_parser = parse_listen_addr)]
    pub listen: SocketAddr,

    /// An upstream, URL[,WEIGHT] (repeatable): scheme, host, base path and
    /// weight (default 1). The defaults are the article's main().
    #[arg(
        long = "upstream",
        value_name = "URL[,WEIGHT]",
        default_values = ["http://127.0.0.1:2003/base,10", "http://127.0.0.1:2004/base,20"],
        env = "LAB_PROXY_UPSTREAMS",
        value_delimiter = ' ',
        value_parser = crate::balance::parse_upstream_spec,
        conflicts_with = "discovery"
    )]
    pub upstreams: Vec<crate::balance::Node>,

    /// The load balancer (负载均衡): random, round-robin (rr), weighted (wrr)
    /// or consistent-hash (hash).
    #[arg(long = "lb", value_enum, default_value_t = crate::balance::Algorithm::RoundRobin)]
    pub algorithm: crate::balance::Algorithm,

    /// The random balancer's seed, for a sequence you can repeat (drawn and
    /// logged when not given).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Consistent hash: virtual nodes per upstream per unit of weight (the
    /// article uses 10; nginx and ketama 160).
    #[arg(long, value_name = "N", default_value_t = crate::balance::DEFAULT_REPLICAS)]
    pub replicas: usize,

    /// Consistent hash: where virtual nodes land, the article's
    /// crc32("{i}{upstream}") or nginx's crc32 chain (evens out with replicas).
    #[arg(long, value_enum, default_value_t = crate::balance::RingPoints::Article)]
    pub ring: crate::balance::RingPoints,

    /// Consistent hash: what a request is hashed by: remote-ip,
    /// remote-addr (the article's, IP and port), header:NAME, path or query:NAME.
    #[arg(long, value_name = "KEY", default_value = "remote-ip")]
    pub hash_key: crate::balance::HashKey,

    /// Rewrite the request path before the join: REGEX=REPLACEMENT (repeatable).
    #[arg(long, value_name = "REGEX=REPLACEMENT")]
    pub rewrite: Vec<crate::proxy::director::Rewrite>,

    /// Set a request header: NAME:VALUE (repeatable), e.g. token:ssss.
    #[arg(long, value_name = "NAME:VALUE")]
    pub set_header: Vec<crate::proxy::director::SetHeader>,

    /// Replace every request body with this JSON document (Content-Length fixed).
    #[arg(long, value_name = "JSON")]
    pub replace_body: Option<crate::proxy::director::JsonBody>,

    /// ModifyResponse: prefix the body of 200 responses (Content-Length fixed).
    #[arg(long, value_name = "TEXT")]
    pub prefix_response: Option<String>,

    /// ModifyResponse, the multi-host rule: prefix non-200 bodies with "StatusCode error:".
    #[arg(long)]
    pub prefix_errors: bool,

    /// ErrorHandler as the article writes it: 500 "ErrorHandler error:…"
    /// instead of 502 Bad Gateway / 504 Gateway Timeout.
    #[arg(long)]
    pub article_errors: bool,

    /// Answer 504 when the upstream sends no response head within this time.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub response_timeout: Duration,

    /// Go's FlushInterval: send a body that need not stream (its length is
    /// known, it is not text/event-stream) in batches at most this often.
    /// Unset: every chunk goes out as it arrives.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub flush_interval: Option<Duration>,

    /// How to treat the X-Forwarded-* and X-Real-IP headers a client sends.
    #[arg(long, value_enum, default_value_t = crate::proxy::headers::ForwardedPolicy::Append)]
    pub forwarded: crate::proxy::headers::ForwardedPolicy,

    /// When the connection to an upstream fails (refused, timed out, TLS
    /// handshake), try up to N other upstreams (nginx's proxy_next_upstream
    /// error), for idempotent requests without a body only: nothing was sent,
    /// so nothing happens twice. 0 is Go's ReverseProxy, the article's: one
    /// upstream per request, 502 when it is down. Each try counts against the
    /// failed upstream (health, breaker) and has its own --response-timeout;
    /// the answer names the failures in X-Lab-Retried.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,

    /// A proxy in front of this one (repeatable: an address or a range such
    /// as 10.0.0.0/8) whose X-Forwarded-For is believed: the client's address
    /// (for --rate-limit-by ip, --hash-key remote-ip, X-Real-IP) is then
    /// the last address in X-Forwarded-For that is not a trusted proxy. From
    /// any other peer the header is only passed on, never believed.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<crate::cidr::Cidr>,

    #[command(flatten)]
    pub limits: crate::server::Limits,

    #[command(flatten)]
    pub discovery: DiscoveryArgs,

    #[command(flatten)]
    pub middleware: MiddlewareArgs,

    #[command(flatten)]
    pub transport: crate::proxy::transport::TransportConfig,
}

/// The middleware layers of `lab proxy`, each off unless asked for (the
/// article's 限流 熔断 降级 权限 数据统计; statistics are always kept).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Middleware")]
#[command(group(clap::ArgGroup::new("breaker").args(["breaker_failures", "breaker_error_rate"]).multiple(true)))]
pub struct MiddlewareArgs {
    /// 权限 auth: require `Authorization: Bearer TOKEN` (401 otherwise); the
    /// header is never forwarded upstream.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LAB_AUTH_TOKEN",
        hide_env_values = true,
        value_parser = parse_bearer_token
    )]
    pub auth_token: Option<String>,

    /// 限流 rate limiting: at most RATE requests per client IP (10/s,
    /// 600/min, 5/100ms); the excess gets 429 with Retry-After.
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<crate::middleware::rate_limit::Rate>,

    /// Whose requests one limit counts: each client IP's, or everyone's together.
    #[arg(
        long,
        value_enum,
        value_name = "WHO",
        default_value_t,
        requires = "rate_limit"
    )]
    pub rate_limit_by: crate::middleware::rate_limit::LimitBy,

    /// How many requests may come at once before the rate applies [default: 1, a smooth rate].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000), requires = "rate_limit")]
    pub rate_burst: Option<u32>,

    /// 熔断 circuit breaking: open an upstream's breaker after N failures in
    /// a row (unreachable, too slow, or a 5xx); while open its requests go
    /// to the other upstreams, or fail fast with 503.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub breaker_failures: Option<u32>,

    /// …or when this share of the requests in --breaker-window failed (50%, 0.5).
    #[arg(long, value_name = "RATE", value_parser = crate::middleware::breaker::parse_error_rate)]
    pub breaker_error_rate: Option<f64>,

    /// The window of --breaker-error-rate.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration, requires = "breaker")]
    pub breaker_window: Duration,

    /// The fewest requests in the window for --breaker-error-rate to judge.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000), requires = "breaker")]
    pub breaker_min_requests: u32,

    /// How long an open breaker waits before one trial request (half-open).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration, requires = "breaker")]
    pub breaker_cooldown: Duration,

    /// 降级 degradation: instead of an error of the proxy's own (502, 503,
    /// 504: every upstream down, breakers open), answer this status…
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(200..=599))]
    pub fallback_status: Option<u16>,

    /// …with this body (text/plain) [default status with a body: 200].
    #[arg(long, value_name = "TEXT")]
    pub fallback_body: Option<String>,
}

/// Where `lab proxy` finds its upstreams and how it checks them (the
/// article's LoadBalanceZkConf and LoadBalanceCheckConf).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Discovery and health checks")]
pub struct DiscoveryArgs {
    /// Take the upstreams from ZooKeeper instead of --upstream: the children
    /// of PATH, as `lab realserver --register` creates them, watched while
    /// the proxy runs (服务发现).
    #[arg(long, value_name = "zk://HOST:PORT/PATH")]
    pub discovery: Option<crate::zk::ZkUrl>,

    /// Probe every upstream's PATH (e.g. / or /healthz) every
    /// --health-interval; a 2xx or 3xx answer is healthy (健康检查).
    #[arg(long, value_name = "PATH", value_parser = parse_health_path)]
    pub health_check: Option<String>,

    /// How often to probe.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration, requires = "health_check")]
    pub health_interval: Duration,

    /// How long one probe may take [default: the interval, at most 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, requires = "health_check")]
    pub health_timeout: Option<Duration>,

    /// Failures in a row (probes or proxied requests) that take an upstream out of the set.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100), requires = "health_check")]
    pub unhealthy_after: u32,

    /// Successful probes in a row that bring it back.
    #[arg(long, value_name = "M", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100), requires = "health_check")]
    pub healthy_after: u32,
}

impl DiscoveryArgs {
    /// The health-check settings, when `--health-check` is given.
    pub fn health(&self) -> Option<crate::discovery::HealthConfig> {
        let path = self.health_check.clone()?;
        Some(crate::discovery::HealthConfig {
            path,
            interval: self.health_interval,
            timeout: self
                .health_timeout
                .unwrap_or_else(|| self.health_interval.min(Duration::from_secs(1))),
            unhealthy_after: self.unhealthy_after,
            healthy_after: self.healthy_after,
        })
    }
}

/// A bearer token (RFC 6750 `b64token`): letters, digits and `-._~+/`, then
/// optional `=` padding; never empty.
fn parse_bearer_token(s: &str) -> Result<String, String> {
    let body = s.trim_end_matches('=');
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    if body.is_empty() || !body.chars().all(allowed) {
        return Err(format!(
            "{s:?} is not a bearer token: write letters, digits and -._~+/ (e.g. s3cret), not empty"
        ));
    }
    Ok(s.to_string())
}

fn parse_health_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!(
            "{s:?} does not start with '/'; write a path such as / or /healthz"
        ));
    }
    let path: http::uri::PathAndQuery = s
        .parse()
        .map_err(|_| format!("{s:?} is not a path; write one such as / or /healthz"))?;
    Ok(path.as_str().to_string())
}

pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_duration(s)?;
    if duration < Duration::from_millis(10) {
        return Err(format!(
            "{s} is too short; write at least 10ms, e.g. 500ms or 1s"
        ));
    }
    if duration > Duration::from_secs(3600) {
        return Err(format!("{s} is too long; write at most 1h"));
    }
    Ok(duration)
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
    pub proxy: crate::trace::Endpoint,

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
        value_parser = crate::trace::parse_header_line
    )]
    pub headers: Vec<(String, String)>,

    /// Send this X-Forwarded-For, as a client (or a spoofer) would.
    #[arg(long, value_name = "VALUE")]
    pub xff: Option<String>,

    /// The request method.
    #[arg(long, value_name = "METHOD", default_value = "GET")]
    pub method: http::Method,

    /// A request body (Content-Length is set).
    #[arg(long, value_name = "TEXT")]
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
    pub forward: Option<crate::trace::Endpoint>,

    /// The server to ask the forward proxy for (absolute-form requests).
    #[arg(long, value_name = "URL", requires = "forward")]
    pub target: Option<crate::trace::Endpoint>,

    /// Send straight to this server, no proxy: the before picture.
    #[arg(long, value_name = "URL")]
    pub direct: Option<crate::trace::Endpoint>,

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
    pub compare: Option<crate::trace::Endpoint>,
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
    pub proxy: crate::trace::Endpoint,

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
}

impl Command {
    /// Whether the command runs until stopped (a server, ZooKeeper), as
    /// opposed to one that prints a result and ends.
    pub fn serves(&self) -> bool {
        match self {
            Command::Realserver(_)
            | Command::Naive(_)
            | Command::Forward(_)
            | Command::Proxy(_) => true,
            Command::Zk(args) => matches!(args.command, ZkCommand::Up(_)),
            _ => false,
        }
    }
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
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
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

fn default_realserver_addrs() -> Vec<SocketAddr> {
    // The article's main(): rs1 on 127.0.0.1:2003, rs2 on 127.0.0.1:2004.
    vec![
        SocketAddr::from(([127, 0, 0, 1], 2003)),
        SocketAddr::from(([127, 0, 0, 1], 2004)),
    ]
}

/// A listen address: `IP:PORT`, `localhost:PORT`, `:PORT` or a bare `PORT`.
/// The short forms mean loopback (unlike Go's `:2003`, which means every
/// interface): the lab never listens beyond this machine unless told to.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let port_only = s
        .strip_prefix("localhost:")
        .or_else(|| s.strip_prefix(':'))
        .unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not a listen address; write IP:PORT such as 127.0.0.1:2003, or just a port"
        )
    })
}

/// A request path: it starts with `/` (`/abc?x=1`).
pub fn parse_request_path(s: &str) -> Result<String, String> {
    match s.parse::<http::uri::PathAndQuery>() {
        Ok(pq) if s.starts_with('/') => Ok(pq.to_string()),
        _ => Err(format!(
            "{s:?} is not a path; write one that starts with /, e.g. /abc?x=1"
        )),
    }
}

/// Parses `3s`, `500ms`, `1m` (humantime), so flags read like Go's durations.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 3s, 500ms or 1m"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
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
    fn listen_addresses_default_to_loopback() {
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parse_listen_addr("2013"), Ok(loopback(2013)));
        assert_eq!(parse_listen_addr(":2013"), Ok(loopback(2013)));
        assert_eq!(parse_listen_addr("localhost:2013"), Ok(loopback(2013)));
        assert_eq!(
            parse_listen_addr("0.0.0.0:80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        let err = parse_listen_addr("nonsense").unwrap_err();
        assert!(err.contains("such as 127.0.0.1:2003"), "{err}");
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

    #[test]
    fn bad_duration_says_what_to_write() {
        let err = parse_duration("3 parsecs").unwrap_err();
        assert!(err.contains("such as 3s"), "{err}");
    }
}

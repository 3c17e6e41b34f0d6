//! The flags of the servers: `lab realserver`, `lab naive`, `lab forward`,
//! the listener limits every server shares, and what each becomes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::parse::{parse_duration, parse_listen_addr};
use crate::proxy::forward::ForwardConfig;

use super::shared::{LimitsArgs, TransportArgs};

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
    pub limits: LimitsArgs,
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
    pub limits: LimitsArgs,
}

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = crate::proxy::relay::DEFAULT_LISTEN, env = "LAB_RELAY_LISTEN", value_parser = parse_listen_addr)]
    pub listen: SocketAddr,

    /// Where every connection goes: an address (IP:PORT), not a URL: the
    /// relay speaks TCP, not HTTP.
    #[arg(long, value_name = "ADDR", default_value = crate::proxy::relay::DEFAULT_TARGET, env = "LAB_RELAY_TARGET")]
    pub target: SocketAddr,
}

#[derive(Debug, Args)]
pub struct TransparentArgs {
    /// How the gateway hands connections to the proxy: `redirect` (NAT; the
    /// proxy reads SO_ORIGINAL_DST and the real server sees the gateway) or
    /// `tproxy` (the packets unchanged; the real server sees the client).
    #[arg(long, value_name = "MODE", default_value = "redirect")]
    pub mode: crate::transparent::Mode,

    /// Intercept TCP to this port (repeatable); the gateway routes the rest.
    #[arg(
        long = "intercept",
        value_name = "PORT",
        default_values_t = [2003u16],
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub ports: Vec<u16>,

    /// Run the command after `--` inside the network (by default in the
    /// client's namespace), then stop: in the `lab transparent` already
    /// running if there is one, else in one made for it and removed after.
    #[arg(long, requires = "command")]
    pub run: bool,

    /// The command --run runs, after `--`.
    #[arg(value_name = "CMD", last = true, requires = "run")]
    pub command: Vec<std::ffi::OsString>,

    /// Where --run runs CMD: client, gateway or server.
    #[arg(long = "in", value_name = "NAMESPACE", default_value = "client")]
    pub place: crate::transparent::Place,

    /// Stop a running `lab transparent`, or remove what a crashed one left.
    #[arg(long, conflicts_with_all = ["run", "mode", "ports"])]
    pub cleanup: bool,

    #[command(flatten)]
    pub limits: LimitsArgs,
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

    /// Pass on request headers whose names have an underscore (`X_Real_IP`),
    /// dropped by default as nginx does: a CGI, WSGI or PHP backend reads
    /// `X_Real_IP` as X-Real-IP, so a client could spoof it.
    #[arg(long)]
    pub underscores_in_headers: bool,

    #[command(flatten)]
    pub transport: TransportArgs,

    #[command(flatten)]
    pub limits: LimitsArgs,
}

impl RealserverArgs {
    /// The servers' settings (every address gets the same).
    pub fn config(&self) -> crate::realserver::Config {
        crate::realserver::Config {
            write_timeout: self.write_timeout,
            limits: self.limits.config(),
        }
    }

    /// Where `--tls` writes its certificate, when HTTPS is asked for.
    pub fn tls_cert_path(&self) -> Option<PathBuf> {
        self.tls.then(|| {
            self.tls_cert_out
                .clone()
                .unwrap_or_else(crate::tls::default_cert_path)
        })
    }

    /// The ZooKeeper registration `--register` asks for.
    pub fn register(&self) -> Option<crate::realserver::Register> {
        self.register
            .clone()
            .map(|url| crate::realserver::Register {
                url,
                weight: self.weight,
            })
    }
}

impl TransparentArgs {
    /// What `lab transparent` is asked to do.
    pub fn config(&self) -> crate::transparent::Config {
        crate::transparent::Config {
            mode: self.mode,
            ports: self.ports.clone(),
            run: self.command.clone(),
            place: self.place,
            cleanup: self.cleanup,
            realserver: crate::realserver::Config::default(),
            limits: self.limits.config(),
        }
    }
}

impl ForwardArgs {
    /// The forward proxy these flags describe.
    pub fn config(&self) -> ForwardConfig {
        let mut config = ForwardConfig {
            transport: self.transport.config(),
            limits: self.limits.config(),
            ..ForwardConfig::default()
        };
        if !self.allow.is_empty() {
            config.allowed_clients = self.allow.clone();
        }
        config
            .connect_ports
            .extend(self.allow_connect_ports.iter().copied());
        config.parent_proxy = self.parent_proxy.clone();
        config.keep_underscores = self.underscores_in_headers;
        config
    }
}

fn default_realserver_addrs() -> Vec<SocketAddr> {
    // The article's main(): rs1 on 127.0.0.1:2003, rs2 on 127.0.0.1:2004.
    vec![
        SocketAddr::from(([127, 0, 0, 1], 2003)),
        SocketAddr::from(([127, 0, 0, 1], 2004)),
    ]
}

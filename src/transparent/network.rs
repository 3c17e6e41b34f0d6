//! The little network `lab transparent` builds: three namespaces in a row,
//! joined by two veth pairs (a virtual cable: what goes in one end comes
//! out of the other), on the documentation address ranges (RFC 5737), so
//! nothing in it can be mistaken for, or reach, a real network.
//!
//! ```text
//!   client                 gateway                        server
//!   192.0.2.2 ─c0═══g0─ 192.0.2.1                          
//!                        proxy on 192.0.2.1:3129
//!                        198.51.100.1 ─g1═══s0─ 198.51.100.2
//!                                                 real servers :2003, :2004
//! ```
//!
//! The client's default route is the gateway, and the gateway routes
//! between its two sides (`ip_forward`): a router. The one thing that
//! makes it a *transparent proxy* is an nftables rule in the gateway that
//! takes TCP arriving from the client for the intercepted ports (2003 by
//! default) and hands it to the proxy instead of routing it on
//! ([`rules`]); every other packet, port 2004 included, is routed, which
//! is forwarding (网络转发) at layer 3.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;

use super::mode::Mode;
use super::netns::Namespace;

/// The client's address (TEST-NET-1).
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The gateway on the client's side: the client's default route.
pub const GATEWAY_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The gateway on the servers' side (TEST-NET-2).
pub const GATEWAY_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The real servers' address.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The real servers' ports, as in the article.
pub const SERVER_PORTS: [u16; 2] = [2003, 2004];
/// Where the proxy listens in the gateway (Squid's customary intercept port).
pub const PROXY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(GATEWAY_CLIENT_SIDE), 3129);
/// The firewall mark that sends a packet to the gateway's own sockets
/// (tproxy), and the routing table that does it.
const MARK: u32 = 1;
const TABLE: u32 = 100;

/// One of the three namespaces (where `--run` runs its command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Client,
    Gateway,
    Server,
}

impl Place {
    const ALL: [Place; 3] = [Place::Client, Place::Gateway, Place::Server];

    /// `client`, `gateway` or `server`.
    pub fn name(self) -> &'static str {
        match self {
            Place::Client => "client",
            Place::Gateway => "gateway",
            Place::Server => "server",
        }
    }
}

impl std::str::FromStr for Place {
    type Err = String;
    fn from_str(s: &str) -> Result<Place, String> {
        Place::ALL
            .into_iter()
            .find(|place| place.name() == s)
            .ok_or_else(|| format!("{s:?} is not a namespace: client, gateway or server"))
    }
}

/// The three namespaces, set up. Dropping it removes everything: the
/// namespaces go with their last descriptor, and their interfaces, routes
/// and rules with them.
#[derive(Debug)]
pub struct Network {
    pub client: Namespace,
    pub gateway: Namespace,
    pub server: Namespace,
}

/// A step of the setup that failed, with the command and what it said.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot create a network namespace: {0}")]
    Namespace(std::io::Error),
    #[error(
        "`{program}` is not installed: Debian and Ubuntu have it in the package `{package}` \
         (apt-get install {package})"
    )]
    Missing {
        program: &'static str,
        package: &'static str,
    },
    #[error("in the {namespace} namespace, `{command}` failed: {output}")]
    Failed {
        namespace: &'static str,
        command: String,
        output: String,
    },
}

impl Network {
    /// Builds the network for `mode`, intercepting TCP to `ports`.
    pub fn build(mode: Mode, ports: &[u16]) -> Result<Network, SetupError> {
        let new = |place: Place| Namespace::new(place.name()).map_err(SetupError::Namespace);
        let network = Network {
            client: new(Place::Client)?,
            gateway: new(Place::Gateway)?,
            server: new(Place::Server)?,
        };
        network.wire(mode, ports)?;
        Ok(network)
    }

    /// The namespace `place` names.
    pub fn place(&self, place: Place) -> &Namespace {
        match place {
            Place::Client => &self.client,
            Place::Gateway => &self.gateway,
            Place::Server => &self.server,
        }
    }

    fn wire(&self, mode: Mode, ports: &[u16]) -> Result<(), SetupError> {
        let (gateway, server) = (self.gateway.path(), self.server.path());
        ip_batch(
            &self.client,
            &[
                "link set lo up".into(),
                format!("link add c0 type veth peer name g0 netns {gateway}"),
                format!("addr add {CLIENT}/24 dev c0"),
                "link set c0 up".into(),
            ],
        )?;
        let mut gateway_commands = vec![
            "link set lo up".into(),
            format!("addr add {GATEWAY_CLIENT_SIDE}/24 dev g0"),
            "link set g0 up".into(),
            format!("link add g1 type veth peer name s0 netns {server}"),
            format!("addr add {GATEWAY_SERVER_SIDE}/24 dev g1"),
            "link set g1 up".into(),
        ];
        if mode == Mode::Tproxy {
            // A packet marked by the tproxy rules is delivered here, to the
            // proxy's socket, whatever its destination address says.
            gateway_commands.push(format!("rule add fwmark {MARK} lookup {TABLE}"));
            gateway_commands.push(format!("route add local 0.0.0.0/0 dev lo table {TABLE}"));
        }
        ip_batch(&self.gateway, &gateway_commands)?;
        ip_batch(
            &self.server,
            &[
                "link set lo up".into(),
                format!("addr add {SERVER}/24 dev s0"),
                "link set s0 up".into(),
                format!("route add default via {GATEWAY_SERVER_SIDE}"),
            ],
        )?;
        ip_batch(
            &self.client,
            &[format!("route add default via {GATEWAY_CLIENT_SIDE}")],
        )?;
        // A router: packets not meant for the gateway itself go on.
        self.gateway
            .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1\n"))
            .map_err(|err| SetupError::Failed {
                namespace: "gateway",
                command: "echo 1 > /proc/sys/net/ipv4/ip_forward".into(),
                output: err.to_string(),
            })?;
        run(&self.gateway, "nft", &["-f", "-"], &rules(mode, ports))
    }
}

/// The gateway's nftables ruleset for `mode`, intercepting `ports`.
pub fn rules(mode: Mode, ports: &[u16]) -> String {
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (hook, rules) = match mode {
        // NAT: the destination is rewritten to the proxy's address, and
        // conntrack remembers the original (SO_ORIGINAL_DST reads it back).
        Mode::Redirect => (
            "type nat hook prerouting priority dstnat; policy accept;",
            format!(
                "iifname \"g0\" tcp dport {{ {ports} }} redirect to :{}",
                PROXY.port()
            ),
        ),
        // No rewriting: the packet is handed to the proxy's socket as it
        // is (its local address is the original destination), marked so
        // that routing delivers it here; packets of connections the proxy
        // already holds (both ways) are marked the same way.
        Mode::Tproxy => (
            "type filter hook prerouting priority mangle; policy accept;",
            format!(
                "meta l4proto tcp socket transparent 1 meta mark set {MARK} accept\n    \
                 iifname \"g0\" tcp dport {{ {ports} }} tproxy to {PROXY} meta mark set {MARK} accept"
            ),
        ),
    };
    format!(
        "table ip lab_transparent {{\n  chain intercept {{\n    {hook}\n    {rules}\n  }}\n}}\n"
    )
}

/// Runs `ip -batch -` in `namespace` with `commands`, one per line.
fn ip_batch(namespace: &Namespace, commands: &[String]) -> Result<(), SetupError> {
    run(
        namespace,
        "ip",
        &["-batch", "-"],
        &(commands.join("\n") + "\n"),
    )
}

/// Runs `program args` in `namespace` with `input` on its stdin.
fn run(
    namespace: &Namespace,
    program: &'static str,
    args: &[&str],
    input: &str,
) -> Result<(), SetupError> {
    let described = || format!("{program} {} <<< {:?}", args.join(" "), input.trim_end());
    let mut child = namespace
        .command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => SetupError::Missing {
                program,
                package: package_of(program),
            },
            _ => SetupError::Failed {
                namespace: namespace.name(),
                command: described(),
                output: err.to_string(),
            },
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(|err| SetupError::Failed {
        namespace: namespace.name(),
        command: described(),
        output: err.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(SetupError::Failed {
        namespace: namespace.name(),
        command: described(),
        output: if said.is_empty() {
            output.status.to_string()
        } else {
            said
        },
    })
}

/// The Debian package a program comes in.
pub fn package_of(program: &str) -> &'static str {
    match program {
        "nft" => "nftables",
        _ => "iproute2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rewrites_the_destination_in_nat_prerouting() {
        let text = rules(Mode::Redirect, &[2003]);
        assert!(text.contains("type nat hook prerouting priority dstnat"));
        assert!(text.contains("iifname \"g0\" tcp dport { 2003 } redirect to :3129"));
        assert!(!text.contains("tproxy"));
    }

    #[test]
    fn tproxy_hands_packets_over_unchanged_and_marks_them() {
        let text = rules(Mode::Tproxy, &[2003, 2004]);
        assert!(text.contains("type filter hook prerouting priority mangle"));
        assert!(text.contains("socket transparent 1 meta mark set 1 accept"));
        assert!(text.contains("tcp dport { 2003, 2004 } tproxy to 192.0.2.1:3129"));
        assert!(!text.contains("redirect"));
    }
}

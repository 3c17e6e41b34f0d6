//! The ports the lab's servers listen on by default, who is expected there,
//! and the check that tells a free port from a busy one: binding
//! `127.0.0.1:PORT`, as the lab's servers bind (with `SO_REUSEADDR`, so a
//! connection in TIME_WAIT does not count). Who holds a busy port is asked
//! of `/proc` (`owners.rs`); whether that is the lab itself (a `lab` command
//! that uses the port, or ZooKeeper on 2181) is decided here.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

use super::owners::owners_of;
use super::report::{Owner, PortReport, PortStatus};

/// A port the lab uses by default, and how to move off it.
pub(super) struct KnownPort {
    pub(super) port: u16,
    pub(super) role: &'static str,
    /// `lab` subcommands that listen there by default.
    lab_commands: &'static [&'static str],
    /// The commands that use another port, given the suggested one.
    pub(super) elsewhere: fn(u16) -> String,
}

/// The lab's ports, in the order the article starts its servers.
pub(super) const LAB_PORTS: [KnownPort; 5] = [
    KnownPort {
        port: 2002,
        role: "lab proxy / lab naive",
        lab_commands: &["proxy", "naive", "demo"],
        elsewhere: |alt| {
            format!(
                "`lab proxy --listen 127.0.0.1:{alt}`, then `lab trace --proxy http://127.0.0.1:{alt}`"
            )
        },
    },
    KnownPort {
        port: 2003,
        role: "real server rs1",
        lab_commands: &["realserver", "demo"],
        elsewhere: |alt| {
            format!(
                "`lab realserver --addr 127.0.0.1:{alt}`, then `lab proxy --upstream http://127.0.0.1:{alt}/base`"
            )
        },
    },
    KnownPort {
        port: 2004,
        role: "real server rs2",
        lab_commands: &["realserver", "demo"],
        elsewhere: |alt| {
            format!(
                "`lab realserver --addr 127.0.0.1:{alt}`, then `lab proxy --upstream http://127.0.0.1:{alt}/base`"
            )
        },
    },
    KnownPort {
        port: 8080,
        role: "lab forward",
        lab_commands: &["forward"],
        elsewhere: |alt| {
            format!(
                "`lab forward --listen 127.0.0.1:{alt}`, then `curl -x http://127.0.0.1:{alt} …`"
            )
        },
    },
    KnownPort {
        port: 2181,
        role: "ZooKeeper / lab zk up",
        lab_commands: &["zk"],
        elsewhere: |alt| {
            format!(
                "`lab zk up --listen 127.0.0.1:{alt}`, then zk://127.0.0.1:{alt}/lab/realserver"
            )
        },
    },
];

/// The ports checked when `--port` is not given.
pub const DEFAULT_PORTS: [u16; 5] = [2002, 2003, 2004, 8080, 2181];

/// A port to look at, and which of the lab's default ports it stands in
/// for (a `LAB_*_LISTEN` address moves a role to another port), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortToCheck {
    pub port: u16,
    /// The default port whose role this port plays (2002 for `lab proxy`).
    pub role_of: Option<u16>,
}

impl PortToCheck {
    /// The lab's default ports, each in its own role.
    pub fn defaults() -> Vec<PortToCheck> {
        DEFAULT_PORTS
            .iter()
            .map(|&port| PortToCheck {
                port,
                role_of: Some(port),
            })
            .collect()
    }
}

/// Binds each port to see whether it is free, then asks /proc who holds the busy ones.
pub(super) fn check_ports(ports: &[PortToCheck]) -> Vec<PortReport> {
    // Bind first and let go at once, so the doctor's own sockets are never in the scan.
    let roles: HashMap<u16, u16> = ports
        .iter()
        .filter_map(|p| p.role_of.map(|role| (p.port, role)))
        .collect();
    let verdicts: Vec<(u16, PortStatus, Option<String>)> = ports
        .iter()
        .map(|p| p.port)
        .map(
            |port| match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                Ok(_) => (port, PortStatus::Free, None),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                    (port, PortStatus::Busy, None)
                }
                Err(err) => (port, PortStatus::Unknown, Some(err.to_string())),
            },
        )
        .collect();

    let busy: Vec<u16> = verdicts
        .iter()
        .filter(|(_, status, _)| *status == PortStatus::Busy)
        .map(|(port, _, _)| *port)
        .collect();
    let owners: HashMap<u16, Vec<Owner>> = owners_of(&busy);

    verdicts
        .into_iter()
        .map(|(port, status, error)| {
            let role = roles.get(&port).copied();
            let known = LAB_PORTS.iter().find(|known| Some(known.port) == role);
            let owners = owners.get(&port).cloned().unwrap_or_default();
            let expected = known.is_some_and(|known| {
                owners
                    .iter()
                    .any(|owner| is_expected(known, &owner.cmdline))
            });
            PortReport {
                port,
                role: known.map_or("asked for (--port)", |k| k.role).to_string(),
                status,
                error,
                expected,
                owners,
            }
        })
        .collect()
}

/// The `lab` subcommand of a command line (`proxy` in `lab -v proxy --lb wrr`).
fn lab_subcommand(cmdline: &[String]) -> Option<&str> {
    let (program, args) = cmdline.split_first()?;
    if Path::new(program).file_name()? != "lab" {
        return None;
    }
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--color" | "--labs-dir" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            command => return Some(command),
        }
    }
    None
}

/// Whether this command line is what the lab itself runs on `known`'s port.
fn is_expected(known: &KnownPort, cmdline: &[String]) -> bool {
    if let Some(command) = lab_subcommand(cmdline) {
        return known.lab_commands.contains(&command);
    }
    known.port == 2181 && is_zookeeper(cmdline)
}

fn is_zookeeper(cmdline: &[String]) -> bool {
    cmdline
        .iter()
        .any(|arg| arg.starts_with("org.apache.zookeeper.server."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::args;

    #[test]
    fn the_lab_is_expected_on_its_own_ports() {
        let proxy = &LAB_PORTS[0];
        let zk = &LAB_PORTS[4];
        assert!(is_expected(
            proxy,
            &args(&["lab", "-v", "--color", "never", "proxy"])
        ));
        assert!(is_expected(
            proxy,
            &args(&["/x/lab", "naive", "--listen", "2002"])
        ));
        assert!(!is_expected(proxy, &args(&["lab", "realserver"])));
        assert!(!is_expected(proxy, &args(&["nginx", "-g", "daemon off;"])));
        let java = args(&[
            "java",
            "-cp",
            "x",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ]);
        assert!(is_expected(zk, &java));
        assert!(!is_expected(proxy, &java));
    }

    #[test]
    fn default_ports_are_the_articles() {
        let known: Vec<u16> = LAB_PORTS.iter().map(|k| k.port).collect();
        assert_eq!(known, DEFAULT_PORTS);
        assert_eq!(DEFAULT_PORTS, [2002, 2003, 2004, 8080, 2181]);
    }
}

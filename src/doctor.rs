//! `lab doctor`: is this machine ready for the labs? It looks before the
//! learner trips: the ports the article's servers use (2002 the lab proxy,
//! 2003 and 2004 the real servers, 8080 the forward proxy, 2181 ZooKeeper),
//! whether each is free and, when busy, which process holds it; then
//! Debian's ZooKeeper, Java and curl, and the versions of lab and the OS.
//! It ends with what to do about each problem.
//!
//! A port is free when binding `127.0.0.1:PORT` works (as the lab's servers
//! bind, with `SO_REUSEADDR`, so a connection in TIME_WAIT does not count).
//! Who holds a busy one comes from Linux's `/proc`: the listening socket's
//! inode in `/proc/net/tcp` and `tcp6`, the process whose `/proc/PID/fd`
//! links to that inode, and its `/proc/PID/cmdline`. Only this user's
//! processes can be read (root's are all readable); another user's shows as
//! "a process of another user (NAME)", the owner `/proc/net/tcp` names.
//!
//! It reports, it does not judge: the exit status is 0 whatever it finds,
//! and 1 only when the doctor itself fails.
//!
//! # `--json`
//!
//! One [`Report`] document:
//!
//! - `lab_version`, `lab_path`: this binary.
//! - `system`: `os` (`linux`), `arch` (`x86_64`), `kernel` (the release,
//!   `6.1.0-18-amd64`, or null), `distribution` (`/etc/os-release`'s
//!   `PRETTY_NAME`, or null).
//! - `ports`: one [`PortReport`] per port, in order: `port`, `role` (what
//!   the lab runs there), `status` (`free`, `busy` or `unknown`), `error`
//!   (why `unknown`), `expected` (what listens is what the lab puts there: a
//!   `lab` command that uses the port, or ZooKeeper on 2181) and `owners`
//!   (for a busy port, one [`Owner`] per process or unseen socket:
//!   `address` of the socket, `uid`, `user`, `other_user` (not the user
//!   running the doctor), and when visible `pid`,
//!   `command` (shortened) and `cmdline` (every argument)).
//! - `zookeeper`: `installed`, `script` (the package's `zkServer.sh`),
//!   `version` (from the jar's file name, or null).
//! - `tools`: one [`Tool`] per program looked up on `PATH` (java, curl,
//!   rustc): `name`, `needed_for`, `required` (a lab needs it), `found`,
//!   `path`, `version`, `version_line` (the line the version came from),
//!   `error`.
//! - `next_steps`: [`NextStep`]s, `kind` (`problem` or `note`) and `text`;
//!   empty when there is nothing to do.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use colored::Colorize;
use comfy_table::{Cell, Color};
use serde::{Deserialize, Serialize};

use crate::cli::DoctorArgs;
use crate::output;
use crate::zk::server::{ZK_SERVER_SCRIPT, is_installed as zookeeper_installed};

/// A port the lab uses by default, and how to move off it.
struct KnownPort {
    port: u16,
    role: &'static str,
    /// `lab` subcommands that listen there by default.
    lab_commands: &'static [&'static str],
    /// The commands that use another port, given the suggested one.
    elsewhere: fn(u16) -> String,
}

/// The lab's ports, in the order the article starts its servers.
const LAB_PORTS: [KnownPort; 5] = [
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

/// How long asking a program its version may take (a JVM starts in ~0.5 s).
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a command is shown in a table or a sentence.
const COMMAND_WIDTH: usize = 72;

/// Where Debian keeps ZooKeeper's jars (`zookeeper-3.8.0.jar`).
const ZOOKEEPER_JAR_DIRS: [&str; 3] = [
    "/usr/share/zookeeper/lib",
    "/usr/share/zookeeper",
    "/usr/share/java",
];

/// Everything the doctor found; `lab doctor --json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// This binary's version (Cargo's package version).
    pub lab_version: String,
    /// This binary's path, when the OS tells.
    pub lab_path: Option<String>,
    pub system: System,
    pub ports: Vec<PortReport>,
    pub zookeeper: ZooKeeper,
    pub tools: Vec<Tool>,
    /// What to do next, one sentence per problem or note.
    pub next_steps: Vec<NextStep>,
}

/// The operating system, as far as it is cheap to tell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct System {
    /// `linux`, `macos`… (Rust's `std::env::consts::OS`).
    pub os: String,
    /// `x86_64`, `aarch64`…
    pub arch: String,
    /// The kernel release (`uname -r`), when `/proc` tells.
    pub kernel: Option<String>,
    /// `/etc/os-release`'s `PRETTY_NAME` (`Debian GNU/Linux 12 (bookworm)`).
    pub distribution: Option<String>,
}

/// One port of 127.0.0.1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortReport {
    pub port: u16,
    /// What the lab runs there (`real server rs1`), or `asked for (--port)`.
    pub role: String,
    pub status: PortStatus,
    /// Why the status is `unknown`.
    pub error: Option<String>,
    /// What holds the port is what the lab puts there (a `lab` command that
    /// listens there by default, or ZooKeeper on 2181).
    pub expected: bool,
    /// Who holds a busy port: one entry per process (or per socket whose
    /// process cannot be seen). Empty when free, or when the OS cannot tell.
    pub owners: Vec<Owner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortStatus {
    /// Binding 127.0.0.1:PORT works.
    Free,
    /// Something listens there (binding fails with "address in use").
    Busy,
    /// Binding failed for another reason (see `error`).
    Unknown,
}

/// A socket that holds a port, and its process when this user may see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owner {
    /// The socket's local address (`0.0.0.0:2002`, `[::]:2002`).
    pub address: String,
    /// The socket's owner.
    pub uid: u32,
    /// The owner's name, from `/etc/passwd`.
    pub user: Option<String>,
    /// The owner is not the user running the doctor (whose processes alone it may read).
    pub other_user: bool,
    /// The process, when visible.
    pub pid: Option<u32>,
    /// The command, shortened for reading (`lab proxy --lb wrr`).
    pub command: Option<String>,
    /// Every argument of the command line.
    pub cmdline: Vec<String>,
}

/// Debian's `zookeeper` package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZooKeeper {
    pub installed: bool,
    /// The script `lab zk up` runs.
    pub script: String,
    /// From the jar's file name (`zookeeper-3.8.0.jar`).
    pub version: Option<String>,
}

/// A program looked up on `PATH`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    /// What the lab uses it for.
    pub needed_for: String,
    /// Whether a lab needs it (rustc only builds lab itself).
    pub required: bool,
    pub found: bool,
    pub path: Option<String>,
    /// The version number (`17.0.15`).
    pub version: Option<String>,
    /// The line of its `--version` output the number came from.
    pub version_line: Option<String>,
    /// Why asking its version failed.
    pub error: Option<String>,
}

/// One thing to do, or to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NextStep {
    pub kind: StepKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Something in the way of a lab.
    Problem,
    /// Worth knowing, nothing wrong (a lab server already running).
    Note,
}

/// `lab doctor`: look, then print tables or the JSON document.
pub async fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = examine(&args.ports).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot write the report")?;
        println!("{json}");
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Looks at `ports` (the lab's when empty), the packages and the programs.
pub async fn examine(ports: &[u16]) -> anyhow::Result<Report> {
    let ports = if ports.is_empty() {
        DEFAULT_PORTS.to_vec()
    } else {
        ports.to_vec()
    };
    // /proc and bind are quick, but still blocking system calls: off the runtime.
    let ports = tokio::task::spawn_blocking(move || check_ports(&ports));
    let machine = tokio::task::spawn_blocking(|| {
        let paths = ["java", "curl", "rustc"].map(which);
        (system(), zookeeper(), paths)
    });
    let ports = ports.await.context("the port check panicked")?;
    let (system, zookeeper, [java, curl, rustc]) =
        machine.await.context("the package check panicked")?;

    let (java, curl, rustc) = tokio::join!(
        tool("java", java, &["-version"], "ZooKeeper runs on it", true),
        tool("curl", curl, &["--version"], "the sheets' examples", true),
        tool("rustc", rustc, &["--version"], "building lab only", false),
    );
    let tools = vec![java, curl, rustc];
    let next_steps = next_steps(&ports, &zookeeper, &tools);
    Ok(Report {
        lab_version: env!("CARGO_PKG_VERSION").to_string(),
        lab_path: std::env::current_exe()
            .ok()
            .map(|path| path.display().to_string()),
        system,
        ports,
        zookeeper,
        tools,
        next_steps,
    })
}

// ---------------------------------------------------------------------------
// Ports

/// Binds each port to see whether it is free, then asks /proc who holds the busy ones.
fn check_ports(ports: &[u16]) -> Vec<PortReport> {
    // Bind first and let go at once, so the doctor's own sockets are never in the scan.
    let verdicts: Vec<(u16, PortStatus, Option<String>)> = ports
        .iter()
        .map(
            |&port| match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                Ok(_) => (port, PortStatus::Free, None),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                    (port, PortStatus::Busy, None)
                }
                Err(err) => (port, PortStatus::Unknown, Some(err.to_string())),
            },
        )
        .collect();

    let sockets = read_sockets();
    let busy: Vec<u16> = verdicts
        .iter()
        .filter(|(_, status, _)| *status == PortStatus::Busy)
        .map(|(port, _, _)| *port)
        .collect();
    let holders: HashMap<u16, Vec<&Socket>> = busy
        .iter()
        .map(|&port| (port, holders_of(&sockets, port)))
        .collect();
    let inodes: HashSet<u64> = holders.values().flatten().map(|s| s.inode).collect();
    let pids = if inodes.is_empty() {
        HashMap::new()
    } else {
        socket_pids(&inodes)
    };
    let my_uid = my_uid();
    let users = if inodes.is_empty() {
        HashMap::new()
    } else {
        user_names()
    };
    let user_of = |uid: u32| users.get(&uid).cloned();

    verdicts
        .into_iter()
        .map(|(port, status, error)| {
            let known = LAB_PORTS.iter().find(|known| known.port == port);
            let mut owners = Vec::new();
            let mut seen_pids = HashSet::new();
            for socket in holders.get(&port).into_iter().flatten() {
                let found = pids.get(&socket.inode).map(Vec::as_slice).unwrap_or(&[]);
                if found.is_empty() {
                    owners.push(Owner {
                        address: socket.addr.to_string(),
                        uid: socket.uid,
                        user: user_of(socket.uid),
                        other_user: Some(socket.uid) != my_uid,
                        pid: None,
                        command: None,
                        cmdline: Vec::new(),
                    });
                }
                for &pid in found {
                    if !seen_pids.insert(pid) {
                        continue;
                    }
                    let cmdline = read_cmdline(pid);
                    owners.push(Owner {
                        address: socket.addr.to_string(),
                        uid: socket.uid,
                        user: user_of(socket.uid),
                        other_user: Some(socket.uid) != my_uid,
                        pid: Some(pid),
                        command: (!cmdline.is_empty()).then(|| display_command(&cmdline)),
                        cmdline,
                    });
                }
            }
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

/// A TCP socket from /proc/net/tcp or tcp6.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Socket {
    addr: SocketAddr,
    /// The kernel's state number: 0x0A is LISTEN, 0x06 TIME_WAIT.
    state: u8,
    uid: u32,
    inode: u64,
}

const TCP_LISTEN: u8 = 0x0A;
const TCP_TIME_WAIT: u8 = 0x06;

/// Every TCP socket of this network namespace; empty where there is no /proc.
fn read_sockets() -> Vec<Socket> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_socket_line)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One line of /proc/net/tcp:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`,
/// e.g. `0: 0100007F:07D2 00000000:0000 0A … 1000 0 123456 …`.
fn parse_socket_line(line: &str) -> Option<Socket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let uid = fields.get(7)?.parse().ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(Socket {
        addr: SocketAddr::new(parse_proc_ip(ip)?, port),
        state,
        uid,
        inode,
    })
}

/// The kernel prints an address as 32-bit words in the machine's byte order
/// (`0100007F` is 127.0.0.1 on x86): each word back to its bytes.
fn parse_proc_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// The sockets that stand in the way of binding 127.0.0.1:`port`: ones on
/// 127.0.0.1 itself or on every address (0.0.0.0, ::), listeners first.
fn holders_of(sockets: &[Socket], port: u16) -> Vec<&Socket> {
    let blocks = |socket: &&Socket| {
        let ip = match socket.addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        socket.addr.port() == port && (ip.is_unspecified() || ip == Ipv4Addr::LOCALHOST)
    };
    let listeners: Vec<&Socket> = sockets
        .iter()
        .filter(blocks)
        .filter(|s| s.state == TCP_LISTEN)
        .collect();
    if !listeners.is_empty() {
        return listeners;
    }
    // Bound but not listening (or connected from that port) blocks a bind as well.
    sockets
        .iter()
        .filter(blocks)
        .filter(|s| s.state != TCP_TIME_WAIT)
        .collect()
}

/// Which processes hold the sockets with these inodes: every
/// /proc/PID/fd/N that links to `socket:[INODE]`. Processes this user may
/// not read are skipped.
fn socket_pids(inodes: &HashSet<u64>) -> HashMap<u64, Vec<u32>> {
    let mut found: HashMap<u64, Vec<u32>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    let mut pids: Vec<u32> = procs
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|inode| inodes.contains(inode)) {
                let pids = found.entry(inode).or_default();
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    found
}

/// A process's arguments; its name (`comm`) when it has none (a kernel thread).
fn read_cmdline(pid: u32) -> Vec<String> {
    let args: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&b| b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !args.is_empty() {
        return args;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| vec![comm.trim().to_string()])
        .unwrap_or_default()
}

/// The effective uid of this process (the second field of `Uid:` in /proc/self/status).
fn my_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// uid → name, from /etc/passwd.
fn user_names() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// A command line for reading: the program's file name, arguments quoted
/// when they need it, Java's flags and class path left out, and cut at
/// [`COMMAND_WIDTH`].
fn display_command(cmdline: &[String]) -> String {
    let Some((program, args)) = cmdline.split_first() else {
        return String::new();
    };
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
    let mut words = vec![name.clone()];
    if name == "java" {
        // `java -Xmx… -cp LONG org.example.Main ARGS`: the class and its arguments say what it is.
        let mut rest = args.iter();
        let mut skipped = false;
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "-cp" | "-classpath" | "--class-path" | "-p" | "--module-path" => {
                    rest.next();
                    skipped = true;
                }
                "-jar" => {
                    words.push("-jar".into());
                    if let Some(jar) = rest.next() {
                        words.push(quote(jar));
                    }
                    break;
                }
                flag if flag.starts_with('-') => skipped = true,
                class => {
                    words.push(quote(class));
                    break;
                }
            }
        }
        if skipped {
            words.insert(1, "…".into());
        }
        words.extend(rest.map(|arg| quote(arg)));
    } else {
        words.extend(args.iter().map(|arg| quote(arg)));
    }
    let line = words.join(" ");
    if line.chars().count() <= COMMAND_WIDTH {
        return line;
    }
    let cut: String = line.chars().take(COMMAND_WIDTH - 1).collect();
    format!("{cut}…")
}

/// An argument as a shell would need it written.
fn quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+~^".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
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

// ---------------------------------------------------------------------------
// Packages, programs, the system

/// Debian's ZooKeeper package and its version, from a jar's file name.
fn zookeeper() -> ZooKeeper {
    let installed = zookeeper_installed();
    let version = installed
        .then(|| {
            ZOOKEEPER_JAR_DIRS
                .iter()
                .find_map(|dir| jar_version(Path::new(dir)))
        })
        .flatten();
    ZooKeeper {
        installed,
        script: ZK_SERVER_SCRIPT.to_string(),
        version,
    }
}

/// The highest `N.N.N` of the `zookeeper-N.N.N.jar` files in `dir`.
fn jar_version(dir: &Path) -> Option<String> {
    let mut versions: Vec<Vec<u32>> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let version = name.strip_prefix("zookeeper-")?.strip_suffix(".jar")?;
            version.split('.').map(|n| n.parse().ok()).collect()
        })
        .collect();
    versions.sort();
    let best = versions.pop()?;
    Some(
        best.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The first executable file called `name` in a directory of `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Asks a program found on PATH for its version (`java -version` answers on stderr).
async fn tool(
    name: &str,
    path: Option<PathBuf>,
    version_args: &[&str],
    needed_for: &str,
    required: bool,
) -> Tool {
    let mut report = Tool {
        name: name.to_string(),
        needed_for: needed_for.to_string(),
        required,
        found: path.is_some(),
        path: path.as_ref().map(|p| p.display().to_string()),
        version: None,
        version_line: None,
        error: None,
    };
    let Some(path) = path else {
        return report;
    };
    let output = tokio::process::Command::new(&path)
        .args(version_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(VERSION_TIMEOUT, output).await {
        Err(_) => {
            report.error = Some(format!(
                "`{name} {}` did not answer within {VERSION_TIMEOUT:?}",
                version_args.join(" ")
            ));
        }
        Ok(Err(err)) => report.error = Some(format!("cannot run {}: {err}", path.display())),
        Ok(Ok(output)) => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            match version_line(&text) {
                Some((line, version)) => {
                    report.version_line = Some(line);
                    report.version = Some(version);
                }
                None => {
                    report.error = Some(format!(
                        "`{name} {}` printed no version ({})",
                        version_args.join(" "),
                        output.status
                    ));
                }
            }
        }
    }
    report
}

/// The first line that carries a version, and the version: the first word
/// that starts with a digit (`openjdk version "17.0.15" 2025-04-15`,
/// `curl 7.88.1 (x86_64-pc-linux-gnu) …`). Java's "Picked up
/// JAVA_TOOL_OPTIONS" notice is skipped.
fn version_line(text: &str) -> Option<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Picked up"))
        .find_map(|line| {
            let version = line
                .split_whitespace()
                .map(|word| word.trim_matches(|c| c == '"' || c == '\''))
                .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
            Some((line.to_string(), version.to_string()))
        })
}

/// The OS, the kernel's release and the distribution, from /proc and /etc.
fn system() -> System {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
    };
    let distribution = read("/etc/os-release").and_then(|text| {
        text.lines().find_map(|line| {
            let value = line.strip_prefix("PRETTY_NAME=")?;
            Some(value.trim_matches('"').to_string())
        })
    });
    System {
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        kernel: read("/proc/sys/kernel/osrelease"),
        distribution,
    }
}

// ---------------------------------------------------------------------------
// What to do next

fn next_steps(ports: &[PortReport], zookeeper: &ZooKeeper, tools: &[Tool]) -> Vec<NextStep> {
    let mut steps: Vec<NextStep> = ports.iter().filter_map(port_step).collect();
    if !zookeeper.installed {
        steps.push(NextStep {
            kind: StepKind::Problem,
            text: format!(
                "ZooKeeper is missing (the discovery lab and `lab zk up` run it): \
                 sudo apt-get install zookeeper (it provides {})",
                zookeeper.script
            ),
        });
    }
    for tool in tools.iter().filter(|tool| tool.required) {
        let package = match tool.name.as_str() {
            "java" => "default-jre-headless",
            other => other,
        };
        if !tool.found {
            steps.push(NextStep {
                kind: StepKind::Problem,
                text: format!(
                    "{} is missing ({}): sudo apt-get install {package}",
                    tool.name, tool.needed_for
                ),
            });
        } else if let Some(error) = &tool.error {
            steps.push(NextStep {
                kind: StepKind::Problem,
                text: format!(
                    "{} is on PATH but did not say its version ({error}): reinstall it, \
                     sudo apt-get install --reinstall {package}",
                    tool.name
                ),
            });
        }
    }
    steps
}

/// What to do about one port, if anything.
fn port_step(port: &PortReport) -> Option<NextStep> {
    let number = port.port;
    let known = LAB_PORTS.iter().find(|known| known.port == number);
    let alt = number.saturating_add(10).max(1024);
    let elsewhere = match known {
        Some(known) => format!("or use another port: {}", (known.elsewhere)(alt)),
        None => format!("or choose another port (such as {alt})"),
    };
    let name = match known {
        Some(known) => format!("port {number} ({})", known.role),
        None => format!("port {number}"),
    };
    match port.status {
        PortStatus::Free => None,
        PortStatus::Unknown => Some(NextStep {
            kind: StepKind::Problem,
            text: format!(
                "{name} could not be checked: {}; try `ss -ltn 'sport = :{number}'`",
                port.error.as_deref().unwrap_or("binding failed")
            ),
        }),
        PortStatus::Busy => {
            let who = describe_owner(port, number);
            let owner = port.owners.first();
            let pid = owner.and_then(|owner| owner.pid);
            let text = match (port.expected, pid) {
                (true, Some(pid)) => format!(
                    "{name} is used by {who}, the lab's own: fine while you follow a lab; to free it, \
                     stop it (Ctrl-C in its terminal, or kill {pid})"
                ),
                (false, Some(pid)) => {
                    format!("{name} is used by {who}: stop it (kill {pid}) {elsewhere}")
                }
                (_, None) if owner.is_some() => format!(
                    "{name} is used by {who}: ask its owner (or root) to stop it \
                     (`sudo ss -ltnp 'sport = :{number}'` names it), {elsewhere}"
                ),
                (_, None) => format!(
                    "{name} is used by {who}: `ss -ltnp 'sport = :{number}'` (with sudo for another \
                     user's) names it; stop it {elsewhere}"
                ),
            };
            let kind = if port.expected {
                StepKind::Note
            } else {
                StepKind::Problem
            };
            Some(NextStep { kind, text })
        }
    }
}

/// Who holds a busy port, in words: "`lab proxy` (PID 1234)",
/// "a process of another user (zookeeper)".
fn describe_owner(port: &PortReport, number: u16) -> String {
    let Some(owner) = port.owners.first() else {
        return format!("a process this doctor cannot see (try `ss -ltnp 'sport = :{number}'`)");
    };
    let mut text = match (owner.pid, &owner.command) {
        (Some(pid), Some(command)) => format!("`{command}` (PID {pid})"),
        (Some(pid), None) => format!("PID {pid}"),
        (None, _) if owner.other_user => format!(
            "a process of another user ({})",
            owner
                .user
                .clone()
                .unwrap_or_else(|| format!("uid {}", owner.uid))
        ),
        (None, _) => "a process this doctor cannot see (in another container?)".to_string(),
    };
    if owner.pid.is_some() && owner.other_user {
        let user = owner
            .user
            .clone()
            .unwrap_or_else(|| format!("uid {}", owner.uid));
        text.push_str(&format!(" of user {user}"));
    }
    let more = port.owners.len() - 1;
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

// ---------------------------------------------------------------------------
// Rendering

/// The report as tables, then the next steps.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let system = &report.system;
    let mut machine = format!("{} {}", system.os, system.arch);
    if let Some(kernel) = &system.kernel {
        machine = format!("{} {kernel} {}", system.os, system.arch);
    }
    if let Some(distribution) = &system.distribution {
        machine.push_str(&format!(", {distribution}"));
    }
    out.push_str(&output::heading(&format!(
        "lab {} on {machine}",
        report.lab_version
    )));
    out.push_str("\n\n");

    out.push_str(&output::heading("Ports on 127.0.0.1"));
    out.push('\n');
    let mut ports = output::table(&["port", "for", "state", "used by"]);
    for port in &report.ports {
        let state = match port.status {
            PortStatus::Free => mark_cell(Look::Good, "✓ free"),
            PortStatus::Busy if port.expected => mark_cell(Look::Note, "• busy (lab)"),
            PortStatus::Busy => mark_cell(Look::Bad, "✗ busy"),
            PortStatus::Unknown => mark_cell(Look::Bad, "✗ unknown"),
        };
        let used_by = match port.status {
            PortStatus::Free => "—".to_string(),
            PortStatus::Busy => describe_owner(port, port.port),
            PortStatus::Unknown => port.error.clone().unwrap_or_default(),
        };
        ports.add_row(vec![
            Cell::new(port.port),
            Cell::new(&port.role),
            state,
            Cell::new(used_by),
        ]);
    }
    out.push_str(&format!("{ports}\n\n"));

    out.push_str(&output::heading("Software"));
    out.push('\n');
    let mut software = output::table(&["what", "state", "version", "where", "for"]);
    let zk = &report.zookeeper;
    software.add_row(vec![
        Cell::new("ZooKeeper"),
        if zk.installed {
            mark_cell(Look::Good, "✓ installed")
        } else {
            mark_cell(Look::Bad, "✗ missing")
        },
        Cell::new(zk.version.as_deref().unwrap_or("—")),
        Cell::new(&zk.script),
        Cell::new("lab zk up, discovery"),
    ]);
    for tool in &report.tools {
        let state = match (tool.found, tool.required, &tool.error) {
            (true, _, None) => mark_cell(Look::Good, "✓ found"),
            (true, _, Some(_)) => mark_cell(Look::Bad, "✗ no version"),
            (false, true, _) => mark_cell(Look::Bad, "✗ missing"),
            (false, false, _) => mark_cell(Look::Note, "· not found"),
        };
        software.add_row(vec![
            Cell::new(&tool.name),
            state,
            Cell::new(tool.version.as_deref().unwrap_or("—")),
            Cell::new(tool.path.as_deref().unwrap_or("not on PATH")),
            Cell::new(&tool.needed_for),
        ]);
    }
    out.push_str(&format!("{software}\n\n"));

    out.push_str(&output::heading("Next steps"));
    out.push('\n');
    if report.next_steps.is_empty() {
        out.push_str(&format!(
            "{} nothing to do: the ports are free and everything the labs need is installed.\n",
            "✓".green()
        ));
    }
    for step in &report.next_steps {
        let mark = match step.kind {
            StepKind::Problem => "✗".red().bold(),
            StepKind::Note => "•".yellow(),
        };
        out.push_str(&format!("{mark} {}\n", step.text));
    }
    out
}

#[derive(Clone, Copy)]
enum Look {
    Good,
    Bad,
    Note,
}

/// A cell whose text carries the meaning (✓ ✗ •); the colour only repeats it.
fn mark_cell(look: Look, text: &str) -> Cell {
    let cell = Cell::new(text);
    match look {
        Look::Good => cell.fg(Color::Green),
        Look::Bad => cell.fg(Color::Red),
        Look::Note => cell.fg(Color::Yellow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn proc_addresses_are_words_in_machine_order() {
        // 127.0.0.1 is the bytes 7F 00 00 01; read as a little-endian word
        // the kernel prints 0100007F (a big-endian machine prints 7F000001).
        let word = u32::from_ne_bytes([127, 0, 0, 1]);
        let hex = format!("{word:08X}");
        assert_eq!(parse_proc_ip(&hex), Some(IpAddr::from([127, 0, 0, 1])));
        let any6 = "0".repeat(32);
        assert_eq!(
            parse_proc_ip(&any6),
            Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        );
        assert_eq!(parse_proc_ip("12"), None);
    }

    #[test]
    fn a_listen_line_is_parsed() {
        let local = format!("{:08X}:07D2", u32::from_ne_bytes([127, 0, 0, 1]));
        let line = format!(
            "   0: {local} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0"
        );
        let socket = parse_socket_line(&line).expect("parses");
        assert_eq!(socket.addr, "127.0.0.1:2002".parse().unwrap());
        assert_eq!(socket.state, TCP_LISTEN);
        assert_eq!(socket.uid, 1000);
        assert_eq!(socket.inode, 424242);
    }

    #[test]
    fn holders_are_loopback_or_every_address_listeners_first() {
        let socket = |addr: &str, state, inode| Socket {
            addr: addr.parse().unwrap(),
            state,
            uid: 0,
            inode,
        };
        let sockets = [
            socket("127.0.0.2:2002", TCP_LISTEN, 1),
            socket("127.0.0.1:2002", TCP_TIME_WAIT, 2),
            socket("[::]:2002", TCP_LISTEN, 3),
            socket("0.0.0.0:2003", TCP_LISTEN, 4),
            socket("127.0.0.1:2004", 0x07, 5),
        ];
        let inodes = |port| {
            holders_of(&sockets, port)
                .iter()
                .map(|s| s.inode)
                .collect::<Vec<_>>()
        };
        assert_eq!(inodes(2002), [3]);
        assert_eq!(inodes(2003), [4]);
        assert_eq!(inodes(2004), [5], "bound, not listening, still blocks");
        assert_eq!(inodes(2005), Vec::<u64>::new());
    }

    #[test]
    fn commands_are_shortened_for_reading() {
        assert_eq!(
            display_command(&args(&["/work/target/debug/lab", "proxy", "--lb", "wrr"])),
            "lab proxy --lb wrr"
        );
        assert_eq!(
            display_command(&args(&["python3", "-c", "print('hi there')"])),
            r"python3 -c 'print('\''hi there'\'')'"
        );
        let zk = args(&[
            "/usr/bin/java",
            "-Dzookeeper.log.dir=/tmp/x",
            "-cp",
            "/usr/share/java/zookeeper.jar:/etc/zookeeper/conf",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            "/tmp/zoo.cfg",
        ]);
        assert_eq!(
            display_command(&zk),
            "java … org.apache.zookeeper.server.quorum.QuorumPeerMain /tmp/zoo.cfg"
        );
        let long = display_command(&args(&["sleep", &"9".repeat(200)]));
        assert_eq!(long.chars().count(), COMMAND_WIDTH);
        assert!(long.ends_with('…'));
    }

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
    fn versions_come_from_the_first_line_with_a_number() {
        let java = "Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime";
        assert_eq!(
            version_line(java).map(|(_, v)| v).as_deref(),
            Some("17.0.15")
        );
        let curl = "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1\nRelease-Date: 2023-02-20";
        assert_eq!(
            version_line(curl).map(|(_, v)| v).as_deref(),
            Some("7.88.1")
        );
        assert_eq!(version_line("no digits here\n"), None);
    }

    #[test]
    fn default_ports_are_the_articles() {
        let known: Vec<u16> = LAB_PORTS.iter().map(|k| k.port).collect();
        assert_eq!(known, DEFAULT_PORTS);
        assert_eq!(DEFAULT_PORTS, [2002, 2003, 2004, 8080, 2181]);
    }

    #[test]
    fn a_busy_port_says_who_and_what_to_do() {
        let port = PortReport {
            port: 2002,
            role: "lab proxy / lab naive".into(),
            status: PortStatus::Busy,
            error: None,
            expected: false,
            owners: vec![Owner {
                address: "127.0.0.1:2002".into(),
                uid: 1000,
                user: None,
                other_user: false,
                pid: Some(1234),
                command: Some("python3 -m http.server 2002".into()),
                cmdline: Vec::new(),
            }],
        };
        let step = port_step(&port).expect("a step");
        assert_eq!(step.kind, StepKind::Problem);
        assert!(
            step.text
                .contains("`python3 -m http.server 2002` (PID 1234)"),
            "{}",
            step.text
        );
        assert!(step.text.contains("kill 1234"), "{}", step.text);
        assert!(
            step.text.contains("--listen 127.0.0.1:2012"),
            "{}",
            step.text
        );
        let free = PortReport {
            status: PortStatus::Free,
            owners: Vec::new(),
            ..port
        };
        assert!(port_step(&free).is_none());
    }
}

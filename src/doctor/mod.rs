//! `lab doctor`: is this machine ready for the labs? It looks before the
//! learner trips: the ports the article's servers use (2002 the lab proxy,
//! 2003 and 2004 the real servers, 8080 the forward proxy, 2181 ZooKeeper),
//! whether each is free and, when busy, which process holds it; then
//! Debian's ZooKeeper, Java, curl and Go, `ip` and `nft` with whether network
//! namespaces can be made (`lab transparent`), and the versions of lab and the OS.
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
//! The parts, in the order the doctor uses them: `ports.rs` (the lab's ports
//! and the bind that tells free from busy), `owners.rs` (who holds a busy
//! port, read from `/proc`), `tools.rs` (ZooKeeper, the programs on `PATH`
//! and their versions, the system), `next_steps.rs` (what to do about what
//! was found) and `report.rs` (the [`Report`] document and its tables).
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
//! - `tools`: one [`Tool`] per program looked up on `PATH` (java, curl, go,
//!   ip, nft, rustc): `name`, `needed_for`, `required` (a lab needs it),
//!   `found`, `path`, `version`, `version_line` (the line the version came
//!   from), `error`.
//! - `namespaces`: whether `lab transparent` can build its network here:
//!   `available`, `how` (`as root`, or `without root, in a user
//!   namespace`), `problem` (why not, and how to allow it).
//! - `next_steps`: [`NextStep`]s, `kind` (`problem` or `note`) and `text`;
//!   empty when there is nothing to do.

mod next_steps;
mod owners;
mod ports;
mod report;
mod tools;

use std::process::ExitCode;

use anyhow::Context;

use next_steps::next_steps;
use ports::check_ports;
use tools::{system, tool, which, zookeeper};

pub use ports::{DEFAULT_PORTS, PortToCheck};
pub use report::{
    Namespaces, NextStep, Owner, PortReport, PortStatus, Report, StepKind, System, Tool, ZooKeeper,
    render,
};

/// `lab doctor`: look, then print tables or the JSON document. Exits 1
/// when a port the lab needs is held by another program (the one problem
/// that stops a lab from starting); the report is the same either way.
pub async fn run(ports: &[PortToCheck], json: bool) -> anyhow::Result<ExitCode> {
    let report = examine(ports).await?;
    if json {
        let json = serde_json::to_string_pretty(&report).context("cannot write the report")?;
        println!("{json}");
    } else {
        print!("{}", render(&report));
    }
    let blocked = report
        .ports
        .iter()
        .any(|p| p.status == PortStatus::Busy && !p.expected);
    Ok(if blocked {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Looks at `ports` (the lab's when empty), the packages and the programs.
pub async fn examine(ports: &[PortToCheck]) -> anyhow::Result<Report> {
    let ports = if ports.is_empty() {
        PortToCheck::defaults()
    } else {
        ports.to_vec()
    };
    // /proc and bind are quick, but still blocking system calls: off the runtime.
    let ports = tokio::task::spawn_blocking(move || check_ports(&ports));
    let machine = tokio::task::spawn_blocking(|| {
        let paths = ["java", "curl", "go", "ip", "nft", "rustc"].map(which);
        (system(), zookeeper(), paths, namespaces())
    });
    let ports = ports.await.context("the port check panicked")?;
    let (system, zookeeper, [java, curl, go, ip, nft, rustc], namespaces) =
        machine.await.context("the package check panicked")?;

    let (java, curl, go, ip, nft, rustc) = tokio::join!(
        tool("java", java, &["-version"], "ZooKeeper runs on it", true),
        tool("curl", curl, &["--version"], "the sheets' examples", true),
        tool(
            "go",
            go,
            &["version"],
            "lab go, the Go side of checks",
            true
        ),
        tool("ip", ip, &["-V"], "lab transparent's network", true),
        tool("nft", nft, &["--version"], "lab transparent's rules", true),
        tool("rustc", rustc, &["--version"], "building lab only", false),
    );
    let tools = vec![java, curl, go, ip, nft, rustc];
    let next_steps = next_steps(&ports, &zookeeper, &tools, &namespaces);
    Ok(Report {
        lab_version: env!("CARGO_PKG_VERSION").to_string(),
        lab_path: std::env::current_exe()
            .ok()
            .map(|path| path.display().to_string()),
        system,
        ports,
        zookeeper,
        tools,
        namespaces,
        next_steps,
    })
}

/// Whether `lab transparent` can make its namespaces here, and how.
fn namespaces() -> Namespaces {
    match crate::transparent::privileges::probe() {
        Ok(how) => Namespaces {
            available: true,
            how: Some(how.to_string()),
            problem: None,
        },
        Err(problem) => Namespaces {
            available: false,
            how: None,
            problem: Some(problem),
        },
    }
}

/// A command line from words, for the tests of the parts.
#[cfg(test)]
fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

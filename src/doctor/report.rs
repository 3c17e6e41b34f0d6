//! What the doctor found, as one document: the [`Report`] that `lab doctor
//! --json` prints (its schema is in the docs of [`crate::doctor`]) and
//! the tables `lab doctor` prints without `--json`. The tables carry their
//! meaning in text (✓ ✗ •); colour only repeats it.

use colored::Colorize;
use comfy_table::{Cell, Color};
use serde::{Deserialize, Serialize};

use crate::output;

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
    pub namespaces: Namespaces,
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

/// Whether network namespaces can be made here (`lab transparent`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespaces {
    pub available: bool,
    /// `as root`, or `without root, in a user namespace`.
    pub how: Option<String>,
    /// Why not, and how to allow it.
    pub problem: Option<String>,
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

/// Who holds a busy port, in words: "`lab proxy` (PID 1234)",
/// "a process of another user (zookeeper)".
pub(super) fn describe_owner(port: &PortReport, number: u16) -> String {
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
    let namespaces = &report.namespaces;
    software.add_row(vec![
        Cell::new("namespaces"),
        if namespaces.available {
            mark_cell(Look::Good, "✓ can make")
        } else {
            mark_cell(Look::Bad, "✗ refused")
        },
        Cell::new("—"),
        Cell::new(namespaces.how.as_deref().unwrap_or("—")),
        Cell::new("lab transparent"),
    ]);
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

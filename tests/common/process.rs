//! The `lab` binary as a child process: run to completion, or started as a
//! server whose log is read line by line for the address it listens on.
//! And curl, the learner's other client.
//!
//! A child gets its environment here, through its `Command` (no colour, no
//! `RUST_LOG`, no proxy variables for curl); nothing sets the environment
//! of the test process, which every test shares.

use std::net::SocketAddr;
use std::process::{ExitStatus, Output, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::STEP;

/// What `lab realserver` logs before each address it listens on.
pub const REALSERVER_AT: &str = "Starting httpserver at ";
/// What `lab proxy` logs before the address it listens on.
pub const PROXY_AT: &str = "Starting ReverseProxy at ";
/// What `lab naive` and `lab forward` log before the address they listen on.
pub const SERVER_ON: &str = "server on ";

/// `lab ARGS` with plain, predictable logs on a pipe and nothing on stdin.
pub fn lab_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lab"));
    command
        .arg("--color")
        .arg("never")
        .args(args)
        .env_remove("RUST_LOG")
        // The screens' width is the default (100) unless a test sets it.
        .env_remove("COLUMNS")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `lab ARGS` to completion (bounded) and returns its status and stderr.
pub async fn run_lab(args: &[&str]) -> (ExitStatus, String) {
    let output = tokio::time::timeout(STEP, lab_command(args).output())
        .await
        .unwrap_or_else(|_| panic!("lab {args:?} did not exit within {STEP:?}"))
        .expect("run lab");
    (output.status, stderr(&output))
}

/// What one `lab` run printed: its status, stdout and stderr.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `lab ARGS` to completion (bounded), stdout and stderr captured.
pub async fn run_lab_captured(args: &[&str]) -> Run {
    run_lab_captured_with(args, &[]).await
}

/// [`run_lab_captured`] with these environment variables set.
pub async fn run_lab_captured_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = lab_command(args);
    command.stdout(Stdio::piped()).envs(env.iter().copied());
    let output = tokio::time::timeout(STEP, command.output())
        .await
        .unwrap_or_else(|_| panic!("lab {args:?} did not exit within {STEP:?}"))
        .unwrap_or_else(|err| panic!("run lab {args:?}: {err}"));
    Run {
        status: output.status,
        stdout: stdout(&output),
        stderr: stderr(&output),
    }
}

/// A finished process's stdout, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A finished process's stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The address right after `mark` in a log line (`…MARK ADDR …`).
pub fn addr_in(line: &str, mark: &str) -> SocketAddr {
    let (_, rest) = line.split_once(mark).unwrap_or_default();
    let addr = rest.split_whitespace().next().unwrap_or_default();
    addr.parse()
        .unwrap_or_else(|_| panic!("bad address in log line {line:?}"))
}

/// A running `lab`, its stderr read line by line; killed if the test ends first.
pub struct LabProcess {
    pub child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stderr line read so far.
    log: Vec<String>,
}

impl LabProcess {
    pub fn spawn(args: &[&str]) -> LabProcess {
        LabProcess::from_command(lab_command(args))
    }

    /// Starts `command` (made by [`lab_command`], then adjusted).
    pub fn from_command(mut command: Command) -> LabProcess {
        let mut child = command.spawn().expect("spawn lab");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::unbounded_channel();
        // Drain stderr for the whole life of the process, so it never blocks on a full pipe.
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LabProcess {
            child,
            lines,
            log: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Reads stderr until a line contains `mark`; returns that line.
    pub async fn wait_for(&mut self, mark: &str) -> String {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!(
                    "lab exited before logging {mark:?}; stderr:\n{}",
                    self.log()
                ),
                Err(_) => panic!(
                    "lab did not log {mark:?} within {STEP:?}; stderr:\n{}",
                    self.log()
                ),
            };
            self.log.push(line.clone());
            if line.contains(mark) {
                return line;
            }
        }
    }

    /// Waits for a line `…MARK ADDR…` and returns ADDR.
    pub async fn addr_after(&mut self, mark: &str) -> SocketAddr {
        let line = self.wait_for(mark).await;
        addr_in(&line, mark)
    }

    /// The addresses of `count` lines `…MARK ADDR…`, in order.
    pub async fn addrs_after(&mut self, mark: &str, count: usize) -> Vec<SocketAddr> {
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            addrs.push(self.addr_after(mark).await);
        }
        addrs
    }

    /// Sends `signal` (`TERM`, `KILL`, …) with kill(1).
    pub fn signal(&self, signal: &str) {
        let kill = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -{signal} failed");
    }

    /// Sends SIGTERM, then waits for the exit (bounded).
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.exit().await
    }

    /// Waits for the process to exit, then collects the rest of its stderr.
    pub async fn exit(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("lab did not exit within {STEP:?}"))
            .expect("wait for lab");
        // The pipe closes with the process: the reader task ends the channel.
        while let Ok(Some(line)) = tokio::time::timeout(STEP, self.lines.recv()).await {
            self.log.push(line);
        }
        status
    }

    /// The stderr lines read so far, in order.
    pub fn lines(&self) -> &[String] {
        &self.log
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.join("\n")
    }
}

/// `lab realserver --addr ADDR EXTRA…` (port 0 for a free one), once it
/// logs where it listens: the process and that address.
pub async fn realserver_process(addr: &str, extra: &[&str]) -> (LabProcess, SocketAddr) {
    let mut args = vec!["realserver", "--addr", addr];
    args.extend_from_slice(extra);
    let mut process = LabProcess::spawn(&args);
    let addr = process.addr_after(REALSERVER_AT).await;
    (process, addr)
}

/// `lab proxy --listen 127.0.0.1:0 ARGS`, once it logs where it listens:
/// the process and that address.
pub async fn proxy_process(args: &[&str]) -> (LabProcess, SocketAddr) {
    let mut argv = vec!["proxy", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let mut process = LabProcess::spawn(&argv);
    let addr = process.addr_after(PROXY_AT).await;
    (process, addr)
}

/// `lab naive --listen 127.0.0.1:0 ARGS`, once it logs where it listens:
/// the process and that address.
pub async fn naive_process(args: &[&str]) -> (LabProcess, SocketAddr) {
    let mut argv = vec!["naive", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let mut process = LabProcess::spawn(&argv);
    let addr = process.addr_after(SERVER_ON).await;
    (process, addr)
}

/// `lab forward --listen 127.0.0.1:0 ARGS`, once it logs where it listens:
/// the process and that address.
pub async fn forward_process(args: &[&str]) -> (LabProcess, SocketAddr) {
    let mut argv = vec!["forward", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let mut process = LabProcess::spawn(&argv);
    let addr = process.addr_after(SERVER_ON).await;
    (process, addr)
}

/// Runs curl (bounded), with no proxy settings from the environment.
pub async fn curl(args: &[&str]) -> Output {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        command.env_remove(var);
    }
    tokio::time::timeout(STEP, command.output())
        .await
        .unwrap_or_else(|_| panic!("curl {args:?} did not finish within {STEP:?}"))
        .expect("run curl (.ci/run installs it)")
}

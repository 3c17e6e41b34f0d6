//! The learner's program, built and started as `lab verify`'s subject.
//!
//! It is a black box: built with `go build` in its directory (or run with
//! the learner's own `--run` command, any language), told where to listen
//! and where its real servers are by environment variables, and judged
//! only by what it does on its socket. Everything it prints is kept, so a
//! program that does not build, never listens, or crashes is reported with
//! its own words.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::golang::program::output_lines;
use crate::golang::toolchain::Toolchain;

/// How long `go build` may take (a first build compiles the standard
/// library's packages into Go's cache).
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// How long the program may take from its start to accepting connections.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of its output a report shows: the last lines.
const OUTPUT_LINES: usize = 30;

/// How to run the learner's program.
#[derive(Debug, Clone)]
pub enum Launch {
    /// `go build` in the directory, then the binary.
    Go { dir: PathBuf },
    /// `sh -c COMMAND` in the directory: any language.
    Command { dir: PathBuf, command: String },
}

impl Launch {
    /// The directory it runs in.
    pub fn dir(&self) -> &Path {
        match self {
            Launch::Go { dir } | Launch::Command { dir, .. } => dir,
        }
    }

    /// How a report names it: `go build` or the command.
    pub fn describe(&self) -> String {
        match self {
            Launch::Go { dir } => format!("go build in {}", crate::output::display_path(dir)),
            Launch::Command { command, .. } => format!("`{command}`"),
        }
    }
}

/// Why the program could not be judged; each says what it printed.
#[derive(Debug, Clone)]
pub enum Trouble {
    DidNotBuild { output: String },
    Exited { status: String, output: String },
    NotListening { output: String },
    CannotStart { why: String },
}

impl Trouble {
    /// One line: what went wrong.
    pub fn headline(&self) -> String {
        match self {
            Trouble::DidNotBuild { .. } => "your program does not build".into(),
            Trouble::Exited { status, .. } => {
                format!("your program stopped ({status}) before it accepted a connection")
            }
            Trouble::NotListening { .. } => format!(
                "your program did not accept connections on $LISTEN within {LISTEN_TIMEOUT:?}"
            ),
            Trouble::CannotStart { why } => format!("your program could not start: {why}"),
        }
    }

    /// What it printed, if anything.
    pub fn output(&self) -> &str {
        match self {
            Trouble::DidNotBuild { output }
            | Trouble::Exited { output, .. }
            | Trouble::NotListening { output } => output,
            Trouble::CannotStart { .. } => "",
        }
    }

    /// The next step.
    pub fn next_step(&self) -> &'static str {
        match self {
            Trouble::DidNotBuild { .. } => {
                "fix the compiler's first error above, then verify again"
            }
            Trouble::Exited { .. } => {
                "read its last lines above; it must listen on the address in $LISTEN and keep running"
            }
            Trouble::NotListening { .. } => {
                "listen on the address in $LISTEN (e.g. http.ListenAndServe(os.Getenv(\"LISTEN\"), …))"
            }
            Trouble::CannotStart { .. } => "check the command and the directory",
        }
    }
}

/// The learner's program, running.
pub struct Subject {
    child: Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
}

impl Subject {
    /// Builds (for Go) and starts the program with `env`, listening on
    /// `addr`, and waits until it accepts a connection there.
    pub async fn start(
        launch: &Launch,
        addr: SocketAddr,
        env: &[(String, String)],
        build_dir: &Path,
    ) -> Result<Subject, Trouble> {
        let mut command = match launch {
            Launch::Go { dir } => {
                let binary = go_build(dir, build_dir).await?;
                let mut command = Command::new(binary);
                command.current_dir(dir);
                command
            }
            Launch::Command { dir, command: line } => {
                let mut command = Command::new("sh");
                command.arg("-c").arg(line).current_dir(dir);
                command
            }
        };
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: stopping it stops what it started (`go run`).
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| Trouble::CannotStart { why: e.to_string() })?;
        let output = Arc::new(Mutex::new(Vec::new()));
        // Its words are kept (the last ones), to show when it goes wrong.
        let mut lines = output_lines(&mut child, "your program");
        let kept = output.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                kept.push(line);
                if kept.len() > 4 * OUTPUT_LINES {
                    kept.drain(..2 * OUTPUT_LINES);
                }
            }
        });
        let mut subject = Subject {
            child,
            addr,
            output,
        };
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        loop {
            if let Ok(Some(status)) = subject.child.try_wait() {
                // Let the readers catch its last words.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(Trouble::Exited {
                    status: status_text(status),
                    output: subject.output(),
                });
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(subject);
            }
            if tokio::time::Instant::now() >= deadline {
                let output = subject.output();
                subject.stop().await;
                return Err(Trouble::NotListening { output });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its last lines of output.
    pub fn output(&self) -> String {
        let lines = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let from = lines.len().saturating_sub(OUTPUT_LINES);
        lines[from..].join("\n")
    }

    /// Whether it has stopped, and how.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(status_text)
    }

    /// SIGTERM to its process group; killed when it does not stop in 2 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on the process group of a child this owns.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            if let Some(pid) = self.child.id() {
                // SAFETY: as above, with SIGKILL.
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
            }
            let _ = self.child.wait().await;
        }
    }
}

fn status_text(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// `go build -o BUILD_DIR/exercise` in `dir`, offline (the exercises use
/// the standard library only).
async fn go_build(dir: &Path, build_dir: &Path) -> Result<PathBuf, Trouble> {
    let toolchain = Toolchain::find().map_err(|e| Trouble::CannotStart {
        why: format!("{e:#} (or verify another language with --run 'COMMAND')"),
    })?;
    let binary = build_dir.join("exercise");
    let run = Command::new(&toolchain.go)
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(".")
        .current_dir(dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "on")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(BUILD_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(Trouble::CannotStart {
                why: format!("cannot run {}: {e}", toolchain.go.display()),
            });
        }
        Err(_) => {
            return Err(Trouble::DidNotBuild {
                output: format!("go build did not finish within {BUILD_TIMEOUT:?}"),
            });
        }
    };
    if output.status.success() {
        Ok(binary)
    } else {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(Trouble::DidNotBuild {
            output: text.trim_end().to_string(),
        })
    }
}

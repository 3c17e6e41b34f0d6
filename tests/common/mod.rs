//! What the integration tests share: the `lab` binary as a child process,
//! its log read line by line, and the address it says it listens on.
//!
//! Each test file uses a part of this module, so the rest looks unused there.
#![allow(dead_code)]

pub mod zookeeper;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The longest any single step of a test may wait.
pub const STEP: Duration = Duration::from_secs(15);

/// `lab ARGS` with plain, predictable logs on a pipe and nothing on stdin.
pub fn lab_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lab"));
    command
        .arg("--color")
        .arg("never")
        .args(args)
        .env_remove("RUST_LOG")
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
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A private copy of the checkout's `labs/` in a temporary directory, so a
/// test neither touches the checkout's progress nor races other tests.
pub struct LabsCopy {
    /// The temporary directory (removed on drop); `labs` is inside it.
    pub dir: tempfile::TempDir,
    pub labs: PathBuf,
}

/// Copies the checkout's `labs/` (without progress) into a temporary directory.
pub fn labs_copy() -> LabsCopy {
    let dir = tempfile::tempdir().unwrap();
    let labs = dir.path().join("labs");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"), &labs);
    let _ = std::fs::remove_file(labs.join(".progress.json"));
    LabsCopy { dir, labs }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `lab ARGS --labs-dir LABS` (a [`labs_copy`]), colours off; the caller
/// chooses stdin and how to run it.
pub fn labs_command(labs: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lab"));
    command
        .args(args)
        .arg("--labs-dir")
        .arg(labs)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    command
}

/// A finished process's stdout, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A finished process's stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What one `lab` run printed: its status, stdout and stderr.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `lab ARGS` to completion (bounded), stdout and stderr captured.
pub async fn run_lab_captured(args: &[&str]) -> Run {
    let mut command = lab_command(args);
    command.stdout(Stdio::piped());
    let output = tokio::time::timeout(STEP, command.output())
        .await
        .unwrap_or_else(|_| panic!("lab {args:?} did not exit within {STEP:?}"))
        .unwrap_or_else(|err| panic!("run lab {args:?}: {err}"));
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
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
        let mut child = lab_command(args).spawn().expect("spawn lab");
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

    /// Sends SIGTERM, then waits for the exit (bounded).
    pub async fn terminate(&mut self) -> ExitStatus {
        let kill = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM failed");
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

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.join("\n")
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A chunked body (RFC 9112 §7.1), decoded strictly: the chunks as sent and
/// the trailer fields after the last one.
#[derive(Debug)]
pub struct Chunked {
    pub chunks: Vec<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
}

impl Chunked {
    /// The chunks joined, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.chunks.concat()).into_owned()
    }
}

pub fn decode_chunked(mut body: &[u8]) -> Chunked {
    let mut chunks = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").expect("chunk size line ends in CRLF");
        let size_line = std::str::from_utf8(&body[..line_end]).expect("chunk size is text");
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        body = &body[line_end + 2..];
        if size == 0 {
            break;
        }
        assert!(body.len() >= size + 2, "chunk of {size} bytes cut off");
        chunks.push(body[..size].to_vec());
        assert_eq!(&body[size..size + 2], b"\r\n", "chunk data ends in CRLF");
        body = &body[size + 2..];
    }
    let mut trailers = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").expect("trailer section ends in CRLF");
        let line = std::str::from_utf8(&body[..line_end]).expect("trailer is text");
        body = &body[line_end + 2..];
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad trailer line {line:?}"));
        trailers.push((name.to_string(), value.trim().to_string()));
    }
    assert!(
        body.is_empty(),
        "bytes after the chunked body: {:?}",
        String::from_utf8_lossy(body)
    );
    Chunked { chunks, trailers }
}

/// Sends a close frame and collects what follows until the stream ends
/// (bounded): a well-behaved peer answers with exactly one close frame
/// (RFC 6455 §5.5.1), then the stream ends cleanly.
pub async fn close_and_drain<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> Vec<Result<tokio_tungstenite::tungstenite::Message, String>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    ws.close(None).await.expect("send a close frame");
    tokio::time::timeout(STEP, async {
        let mut rest = Vec::new();
        while let Some(item) = ws.next().await {
            rest.push(item.map_err(|err| err.to_string()));
        }
        rest
    })
    .await
    .expect("the WebSocket closes within the step timeout")
}

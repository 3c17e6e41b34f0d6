//! One of the Go programs, started as a child process on loopback: how a
//! lab's check runs the article's code next to `lab`'s.
//!
//! Every program prints `listening on ADDR` on stderr once per listener,
//! with the address it really bound (`--listen 127.0.0.1:0` picks a free
//! port), so the caller learns its ports from the program itself rather than
//! guessing a free one and racing for it. The rest of its output goes to the
//! log at debug level: on screen with `-v` only.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::{GoModule, build};

/// How long a program may take from its start to its last `listening on`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a program may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// A running Go program; killed if dropped without [`GoProgram::shutdown`].
#[derive(Debug)]
pub struct GoProgram {
    pub name: String,
    child: Child,
    addrs: Vec<SocketAddr>,
}

impl GoProgram {
    /// Builds (once) and starts program `name` of `module` with `args`, and
    /// waits for `listeners` `listening on` lines.
    pub async fn start(
        module: &GoModule,
        name: &str,
        args: &[&str],
        listeners: usize,
    ) -> anyhow::Result<GoProgram> {
        let binary = build::program(module, name).await?;
        let mut child = Command::new(&binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;

        let mut incoming = output_lines(&mut child, &format!("go {name}"));

        let mut addrs = Vec::new();
        let mut said = Vec::new();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while addrs.len() < listeners {
            match tokio::time::timeout_at(deadline, incoming.recv()).await {
                Ok(Some(line)) => {
                    if let Some(addr) = listening_on(&line) {
                        addrs.push(addr);
                    }
                    said.push(line);
                }
                Ok(None) => {
                    let status = child.wait().await.ok();
                    bail!(
                        "the Go program {name} ({}) stopped before listening ({}); it said:\n{}",
                        args.join(" "),
                        status.map_or("no exit status".into(), |s| s.to_string()),
                        said.join("\n")
                    );
                }
                Err(_) => bail!(
                    "the Go program {name} did not say `listening on` within {START_TIMEOUT:?}; it said:\n{}",
                    said.join("\n")
                ),
            }
        }
        // Keep draining, so the reader tasks never wait on a full channel.
        tokio::spawn(async move { while incoming.recv().await.is_some() {} });
        Ok(GoProgram {
            name: name.to_string(),
            child,
            addrs,
        })
    }

    /// The (first) address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every address, in the order it printed them.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, as Ctrl-C would; killed when it does not stop in time.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on a child this struct owns and has not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// Every line `child` prints on stdout and stderr, as it comes, each also
/// logged at debug level after `label`. Both streams are read to the end by
/// tasks of their own, so a chatty program never blocks on a full pipe.
pub fn output_lines(child: &mut Child, label: &str) -> mpsc::UnboundedReceiver<String> {
    let (lines, incoming) = mpsc::unbounded_channel();
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ];
    for stream in streams.into_iter().flatten() {
        let lines = lines.clone();
        let label = label.to_string();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                tracing::debug!("{label}: {line}");
                let _ = lines.send(line);
            }
        });
    }
    incoming
}

/// The address of a `listening on ADDR` line, wherever the log put it.
fn listening_on(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    let word = rest.split_whitespace().next()?;
    word.trim_start_matches("http://").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_a_log_line() {
        assert_eq!(
            listening_on("2026/12/02 11:00:00 listening on 127.0.0.1:2003"),
            Some("127.0.0.1:2003".parse().unwrap())
        );
        assert_eq!(
            listening_on("listening on http://127.0.0.1:41234 (forward proxy)"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(listening_on("Starting httpserver at 127.0.0.1:2003"), None);
    }
}

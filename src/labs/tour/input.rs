//! Where a tour's answers come from: a prompt in a terminal, one line per
//! question from a pipe, or an answers file named with `--answers`. stdin is
//! read on a thread of its own, and every read also ends at Ctrl-C, which
//! stops the tour (with its score so far) instead of killing the process.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::labs::answers::{self, Answers};

/// The learner's predictions: asked, piped or read from a file.
pub(super) enum Input {
    /// `--answers FILE`: nothing is read from stdin.
    File { path: PathBuf, answers: Answers },
    /// stdin is a terminal: a prompt for each question.
    Terminal(mpsc::UnboundedReceiver<String>),
    /// stdin is a pipe or a file: one answer per line, in question order.
    Piped(mpsc::UnboundedReceiver<String>),
}

impl Input {
    pub(super) fn choose(file: Option<&Path>) -> anyhow::Result<Input> {
        if let Some(path) = file {
            // answers::load takes a missing file for "no answers yet"; a file
            // named on the command line must exist.
            if !path.is_file() {
                anyhow::bail!(
                    "no answers file {}: write one as the lab's answers.toml is written (id = \"answer\"), or leave out --answers to be asked",
                    path.display()
                );
            }
            let answers = answers::load(path)?;
            return Ok(Input::File {
                path: path.to_path_buf(),
                answers,
            });
        }
        let lines = stdin_lines()?;
        Ok(if std::io::stdin().is_terminal() {
            Input::Terminal(lines)
        } else {
            Input::Piped(lines)
        })
    }

    pub(super) fn is_terminal(&self) -> bool {
        matches!(self, Input::Terminal(_))
    }
}

/// stdin's lines, read on a thread of their own. A plain thread, not tokio's
/// blocking pool: a read that waits for the learner cannot be cancelled, and
/// the runtime would wait for it at exit, after Ctrl-C.
fn stdin_lines() -> anyhow::Result<mpsc::UnboundedReceiver<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("tour-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = line.trim_end_matches(['\n', '\r']).to_string();
                        if tx.send(text).is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .context("cannot start reading stdin")?;
    Ok(rx)
}

/// Cancelled at the first Ctrl-C, which from then on no longer kills the process.
pub(super) fn stop_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    token
}

/// One line from the learner, the end of stdin, or Ctrl-C.
pub(super) enum Read {
    Line(String),
    Eof,
    Interrupted,
}

pub(super) async fn read(
    lines: &mut mpsc::UnboundedReceiver<String>,
    stop: &CancellationToken,
) -> Read {
    tokio::select! {
        biased;
        _ = stop.cancelled() => Read::Interrupted,
        line = lines.recv() => line.map_or(Read::Eof, Read::Line),
    }
}

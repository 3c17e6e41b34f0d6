//! The proxy a check sends its probes through, on whichever program it
//! measures: `lab proxy` started in this process with its flags, or one of
//! the article's Go programs (`labs/go/`) started beside it. A check runs the
//! same probes through each and records the claims on the program that
//! answered ([`Findings::measure_on`]).

use std::net::SocketAddr;

use crate::cli::launch::RunningProxy;
use crate::golang::GoProgram;
use crate::labs::findings::{Findings, Subject};

/// The programs this run measures, `lab`'s first: a check runs its probes
/// once on each, after [`Findings::measure_on`].
pub(super) fn subjects(f: &Findings) -> Vec<Subject> {
    let mut subjects = Vec::new();
    if f.lab {
        subjects.push(Subject::Lab);
    }
    if f.go.is_some() {
        subjects.push(Subject::Go);
    }
    subjects
}

/// A running proxy: `lab`'s or a Go program.
pub(super) enum Front {
    Lab(RunningProxy),
    Go(GoProgram),
}

impl Front {
    /// `lab proxy FLAGS` on a free loopback port; the step is noted.
    pub(super) async fn lab(f: &mut Findings, flags: &[&str]) -> anyhow::Result<Front> {
        let proxy = RunningProxy::start(flags).await?;
        f.step(format!(
            "started `lab proxy {}` on {}",
            shell_words(flags),
            proxy.addr()
        ));
        Ok(Front::Lab(proxy))
    }

    /// The Go program `name` on a free loopback port (`--listen
    /// 127.0.0.1:0`) with `args`, when this run includes Go; the step is
    /// noted.
    pub(super) async fn go(
        f: &mut Findings,
        name: &str,
        args: &[&str],
    ) -> anyhow::Result<Option<Front>> {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Ok(f.start_go(name, &all).await?.map(Front::Go))
    }

    /// The proxy of the program claims are measured on now: `lab proxy
    /// LAB_FLAGS`, or the Go program `go_name` with `go_args` (`None` when
    /// Go does not run in this check).
    pub(super) async fn start(
        f: &mut Findings,
        lab_flags: &[&str],
        go_name: &str,
        go_args: &[&str],
    ) -> anyhow::Result<Option<Front>> {
        match f.subject() {
            Subject::Lab => Ok(Some(Front::lab(f, lab_flags).await?)),
            Subject::Go => Front::go(f, go_name, go_args).await,
        }
    }

    /// The address it listens on.
    pub(super) fn addr(&self) -> SocketAddr {
        match self {
            Front::Lab(proxy) => proxy.addr(),
            Front::Go(program) => program.addr(),
        }
    }

    /// Stops it.
    pub(super) async fn shutdown(self) -> anyhow::Result<()> {
        match self {
            Front::Lab(proxy) => proxy.shutdown().await,
            Front::Go(program) => program.shutdown().await,
        }
    }
}

/// Flags as a learner would type them: a word with a space, or an empty one,
/// in single quotes.
fn shell_words(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(char::is_whitespace) {
                format!("'{w}'")
            } else {
                (*w).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_written_as_typed() {
        assert_eq!(
            super::shell_words(&["--prefix-response", "hello ", "--prefix-errors"]),
            "--prefix-response 'hello ' --prefix-errors"
        );
    }
}

//! Finding the learner's `go`: on the PATH (or `LAB_GO`), version 1.19 or
//! newer. Nothing is downloaded: the module uses the standard library only,
//! so a plain Debian `golang-go` builds it offline.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The oldest Go the programs are written for (Debian 12's `golang-go`).
pub const MINIMUM: (u32, u32) = (1, 19);

/// An installed Go toolchain.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub go: PathBuf,
    /// As `go version` prints it: `go1.19.8`.
    pub version: String,
}

/// What to tell a learner who has no Go: what to install and what works
/// without it.
pub fn missing() -> String {
    "Go is not installed (no `go` on the PATH). Install Go 1.19 or newer: \
     `sudo apt-get install golang-go` on Debian or Ubuntu, or https://go.dev/dl. \
     Without Go, lab's own servers and proxies, `lab trace` and the checks of \
     lab's implementations all work; only the Go programs (`lab go run`, the \
     Go side of `lab check`) need it"
        .to_string()
}

impl Toolchain {
    /// The `go` named by `LAB_GO`, else the one on the PATH.
    pub fn find() -> anyhow::Result<Toolchain> {
        let go = std::env::var_os("LAB_GO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("go"));
        let output = match Command::new(&go).arg("version").output() {
            Ok(output) => output,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!("{}", missing()),
            Err(err) => {
                return Err(err).with_context(|| format!("cannot run `{} version`", go.display()));
            }
        };
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let version = text
            .split_whitespace()
            .find(|word| word.starts_with("go1"))
            .with_context(|| format!("`{} version` printed {text:?}", go.display()))?
            .to_string();
        match parse_version(&version) {
            Some(found) if found >= MINIMUM => Ok(Toolchain { go, version }),
            _ => bail!(
                "{} is {version}; the lab's Go programs need go1.{} or newer \
                 (`sudo apt-get install golang-go`, or https://go.dev/dl)",
                go.display(),
                MINIMUM.1
            ),
        }
    }

    /// Whether a usable Go is installed.
    pub fn available() -> bool {
        Toolchain::find().is_ok()
    }
}

/// `go1.19.8` → (1, 19); `go1.22rc1` → (1, 22).
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let rest = version.strip_prefix("go")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert_eq!(parse_version("go1.19.8"), Some((1, 19)));
        assert_eq!(parse_version("go1.22rc1"), Some((1, 22)));
        assert_eq!(parse_version("go1.9"), Some((1, 9)));
        assert!(parse_version("go1.9").unwrap() < MINIMUM);
        assert_eq!(parse_version("devel"), None);
    }
}

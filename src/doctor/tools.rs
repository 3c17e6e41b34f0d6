//! The software the labs need, and the system it runs on: Debian's
//! ZooKeeper package (`lab zk up` runs its script; the version comes from
//! the jar's file name), the programs looked up on `PATH` (java for
//! ZooKeeper, curl for the sheets' examples, rustc to build lab) with the
//! version each reports, and the OS, kernel and distribution.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::report::{System, Tool, ZooKeeper};
use crate::zk::server::{ZK_SERVER_SCRIPT, is_installed as zookeeper_installed};

/// How long asking a program its version may take (a JVM starts in ~0.5 s).
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Debian keeps ZooKeeper's jars (`zookeeper-3.8.0.jar`).
const ZOOKEEPER_JAR_DIRS: [&str; 3] = [
    "/usr/share/zookeeper/lib",
    "/usr/share/zookeeper",
    "/usr/share/java",
];

/// Debian's ZooKeeper package and its version, from a jar's file name.
pub(super) fn zookeeper() -> ZooKeeper {
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
pub(super) fn which(name: &str) -> Option<PathBuf> {
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
pub(super) async fn tool(
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
                // Go says `go version go1.19.8 linux/amd64`.
                // `ip -V`: `ip utility, iproute2-6.1.0, libbpf 1.1.0`;
                // `nft --version`: `nftables v1.0.6 (Lester Gooch #5)`.
                .map(|word| {
                    ["go", "iproute2-", "v"]
                        .iter()
                        .find_map(|prefix| {
                            word.strip_prefix(prefix)
                                .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                        })
                        .unwrap_or(word)
                        .trim_end_matches(',')
                })
                .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
            Some((line.to_string(), version.to_string()))
        })
}

/// The OS, the kernel's release and the distribution, from /proc and /etc.
pub(super) fn system() -> System {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_first_line_with_a_number() {
        let java = "Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime";
        assert_eq!(
            version_line(java).map(|(_, v)| v).as_deref(),
            Some("17.0.15")
        );
        let go = "go version go1.19.8 linux/amd64";
        assert_eq!(version_line(go).map(|(_, v)| v).as_deref(), Some("1.19.8"));
        let curl = "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1\nRelease-Date: 2023-02-20";
        assert_eq!(
            version_line(curl).map(|(_, v)| v).as_deref(),
            Some("7.88.1")
        );
        let ip = "ip utility, iproute2-6.1.0, libbpf 1.1.0";
        assert_eq!(version_line(ip).map(|(_, v)| v).as_deref(), Some("6.1.0"));
        let nft = "nftables v1.0.6 (Lester Gooch #5)";
        assert_eq!(version_line(nft).map(|(_, v)| v).as_deref(), Some("1.0.6"));
        assert_eq!(version_line("no digits here\n"), None);
    }
}

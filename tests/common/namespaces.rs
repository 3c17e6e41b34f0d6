//! What `lab transparent`'s tests need: root (or user namespaces), `ip`
//! and `nft`, and a way to see that nothing of its network is left.
//!
//! Where they are missing a test prints why it is skipped and returns,
//! unless `LAB_REQUIRE_NAMESPACES=1` (set by CI, which runs as root and
//! installs iproute2 and nftables), where a skip is a failure.

use std::path::Path;
use std::process::Command;

/// Whether the transparent-proxy tests (and lab 04's check) can run here; see the module.
pub fn available() -> bool {
    let missing = why_not();
    let Some(why) = missing else {
        return true;
    };
    if std::env::var("LAB_REQUIRE_NAMESPACES").is_ok_and(|v| v == "1") {
        panic!("LAB_REQUIRE_NAMESPACES=1 but {why}");
    }
    eprintln!("skipped: {why}");
    false
}

fn why_not() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: the transparent-proxy tests build namespaces as root".into());
    }
    for (program, version, package) in [
        ("ip", "-V", "iproute2"),
        ("nft", "--version", "nftables"),
        ("curl", "--version", "curl"),
    ] {
        let found = Command::new(program)
            .arg(version)
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "`{program}` is missing (sudo apt-get install {package})"
            ));
        }
    }
    if let Err(why) = lab::transparent::privileges::probe() {
        return Some(why);
    }
    None
}

/// The host's own network, as the commands a learner would use print it:
/// named namespaces, interfaces, and the nftables ruleset.
#[derive(Debug, PartialEq, Eq)]
pub struct Host {
    pub named_namespaces: String,
    pub links: String,
    pub ruleset: String,
}

impl Host {
    pub fn now() -> Host {
        let run = |program: &str, args: &[&str]| {
            let output = Command::new(program).args(args).output().expect(program);
            assert!(output.status.success(), "{program} {args:?} failed");
            // Interface counters and the like change; names and flags do not.
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        Host {
            named_namespaces: run("ip", &["netns", "list"]),
            links: run("ip", &["-o", "link", "show"])
                .lines()
                .map(|line| line.split(" state ").next().unwrap_or(line).to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            ruleset: run("nft", &["list", "ruleset"]),
        }
    }
}

/// The namespace a `/proc/PID/fd/N` or `/proc/PID/ns/net` link names
/// (`net:[4026532xyz]`), if it can be read.
pub fn namespace_id(path: &str) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|target| target.to_string_lossy().into_owned())
}

/// Every process's namespace link or descriptor that names `id`: what
/// keeps a namespace alive. (A bind mount would too: `ip netns list`.)
pub fn holders_of(id: &str) -> Vec<String> {
    let mut holders = Vec::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return holders;
    };
    for process in processes.flatten() {
        let dir = process.path();
        if !dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let mut links = vec![dir.join("ns/net")];
        if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
            links.extend(fds.flatten().map(|fd| fd.path()));
        }
        for link in links {
            if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(id)) {
                holders.push(link.display().to_string());
            }
        }
    }
    holders
}

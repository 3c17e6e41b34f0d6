//! `lab transparent` (透明代理), the real binary on this machine's kernel:
//! curl with no proxy setting, in the client's namespace, reaches the real
//! server through the proxy in both modes; what the server saw says which
//! mode it was; port 2004 is routed, not proxied; a running one is joined;
//! and when it stops (SIGTERM, `kill -9`, no privileges at all) no
//! namespace, interface or rule is left, on the host or anywhere.
//!
//! These need root, `ip` and `nft` (see `common::namespaces`): elsewhere
//! they say what they skipped; in CI a skip is a failure.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::STEP;
use crate::common::namespaces::{self, Host, holders_of, namespace_id};
use crate::common::process::{LabProcess, Run, lab_command, run_lab_captured_with};
use lab::realserver::EchoReport;
use lab::transparent::state::{self, STATE_ENV};

/// A private note path, so that tests running at once never meet.
fn note_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("transparent.json")
}

/// `lab transparent ARGS` to completion, with its note at `note`.
async fn transparent(args: &[&str], note: &Path) -> Run {
    let mut argv = vec!["transparent"];
    argv.extend_from_slice(args);
    let note = note.to_str().unwrap();
    run_lab_captured_with(&argv, &[(STATE_ENV, note)]).await
}

/// curl's arguments for the real server's JSON echo of `url`.
fn curl_echo(url: &str) -> Vec<&str> {
    vec![
        "--",
        "curl",
        "-sS",
        "-m",
        "5",
        "-H",
        "Accept: application/json",
        url,
    ]
}

fn echo_of(run: &Run) -> EchoReport {
    assert!(
        run.status.success(),
        "lab transparent failed: {}\n{}",
        run.status,
        run.stderr
    );
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("not the echo ({err}): {}\n{}", run.stdout, run.stderr))
}

/// The address part of `IP:PORT`.
fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(ip, _)| ip)
}

#[tokio::test]
async fn redirect_the_server_sees_the_gateway_and_the_client_in_x_forwarded_for() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = Host::now();
    let mut args = vec!["--run"];
    args.extend(curl_echo("http://198.51.100.2:2003/abc"));
    let run = transparent(&args, &note_in(&dir)).await;
    let echo = echo_of(&run);
    // SO_ORIGINAL_DST told the proxy where to go; it went from the gateway.
    assert_eq!(ip_of(&echo.remote_addr), "198.51.100.1", "{echo:?}");
    assert_eq!(echo.header_values("x-forwarded-for"), ["192.0.2.2"]);
    assert_eq!(echo.header_values("host"), ["198.51.100.2:2003"]);
    assert_eq!(echo.server, "198.51.100.2:2003");
    assert!(echo.header_values("via")[0].starts_with("1.1 lab-transparent-"));
    assert_eq!(Host::now(), before, "the host's network changed");
    assert!(!note_in(&dir).exists(), "the note outlived the run");
}

#[tokio::test]
async fn tproxy_the_server_sees_the_client_itself() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = Host::now();
    let mut args = vec!["--mode", "tproxy", "--run"];
    args.extend(curl_echo("http://198.51.100.2:2003/abc"));
    let echo = echo_of(&transparent(&args, &note_in(&dir)).await);
    // The proxy's connection was bound to the client's address.
    assert_eq!(ip_of(&echo.remote_addr), "192.0.2.2", "{echo:?}");
    assert_eq!(echo.header_values("x-forwarded-for"), ["192.0.2.2"]);
    assert_eq!(echo.header_values("host"), ["198.51.100.2:2003"]);
    assert_eq!(Host::now(), before, "the host's network changed");
}

#[tokio::test]
async fn port_2004_is_routed_not_proxied() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--run"];
    args.extend(curl_echo("http://198.51.100.2:2004/abc"));
    let echo = echo_of(&transparent(&args, &note_in(&dir)).await);
    // Forwarding: the client's own connection, not a header added.
    assert_eq!(ip_of(&echo.remote_addr), "192.0.2.2", "{echo:?}");
    assert!(echo.header_values("x-forwarded-for").is_empty(), "{echo:?}");
    assert!(echo.header_values("via").is_empty(), "{echo:?}");
}

#[tokio::test]
async fn a_dead_original_destination_is_a_502_that_says_so() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--intercept",
        "2005",
        "--run",
        "--",
        "curl",
        "-sS",
        "-m",
        "5",
        "-w",
        "\n%{http_code}",
        "http://198.51.100.2:2005/abc",
    ];
    let run = transparent(&args, &note_in(&dir)).await;
    assert!(run.status.success(), "{}", run.stderr);
    // Without the proxy curl would see "connection refused"; now the
    // proxy accepted, so the refusal comes back as a gateway's 502.
    assert!(run.stdout.ends_with("\n502"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("198.51.100.2:2005 cannot be reached from the gateway"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn lab_trace_shows_the_original_destination_the_proxy_recovered() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--run",
        "--",
        "lab",
        "trace",
        "--direct",
        "http://198.51.100.2:2003",
        "-n",
        "2",
        "--json",
    ];
    let run = transparent(&args, &note_in(&dir)).await;
    assert!(run.status.success(), "{}", run.stderr);
    let trace: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    for request in trace["requests"].as_array().unwrap() {
        assert_eq!(
            request["intercepted"], "redirect 198.51.100.2:2003",
            "{request}"
        );
    }
}

/// A `lab transparent` left running, and the ids of its three namespaces.
async fn start_running(mode: &str, note: &Path) -> (LabProcess, Vec<String>) {
    let note_text = note.to_str().unwrap();
    let mut command = lab_command(&["transparent", "--mode", mode]);
    command.env(STATE_ENV, note_text);
    let mut process = LabProcess::from_command(command);
    process
        .wait_for("transparent proxy on 192.0.2.1:3129")
        .await;
    let state = state::read(note).expect("the note is written before the ready line");
    assert_eq!(state.pid, process.pid());
    let ids: Vec<String> = [&state.client, &state.gateway, &state.server]
        .iter()
        .map(|path| namespace_id(path).expect("a namespace link"))
        .collect();
    assert!(ids.iter().all(|id| id.starts_with("net:[")), "{ids:?}");
    (process, ids)
}

/// Nothing holds any of `ids` any more (no process, no descriptor).
fn assert_gone(ids: &[String]) {
    for id in ids {
        let holders = holders_of(id);
        assert!(holders.is_empty(), "{id} is still held by {holders:?}");
    }
}

#[tokio::test]
async fn a_running_one_is_joined_and_sigterm_leaves_nothing() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let note = note_in(&dir);
    let before = Host::now();
    let (mut running, ids) = start_running("tproxy", &note).await;

    // Another terminal: --run joins the running network (tproxy mode).
    let mut args = vec!["--run"];
    args.extend(curl_echo("http://198.51.100.2:2003/abc"));
    let echo = echo_of(&transparent(&args, &note).await);
    assert_eq!(ip_of(&echo.remote_addr), "192.0.2.2", "{echo:?}");
    let rules = transparent(
        &["--run", "--in", "gateway", "--", "nft", "list", "ruleset"],
        &note,
    )
    .await;
    assert!(rules.status.success(), "{}", rules.stderr);
    assert!(
        rules.stdout.contains("tproxy to 192.0.2.1:3129"),
        "{}",
        rules.stdout
    );
    // Only one at a time.
    let second = transparent(&[], &note).await;
    assert!(!second.status.success());
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );

    assert_eq!(
        running.terminate().await.code(),
        Some(0),
        "{}",
        running.log()
    );
    assert_gone(&ids);
    assert!(!note.exists(), "the note outlived the process");
    assert_eq!(Host::now(), before, "the host's network changed");
}

#[tokio::test]
async fn after_kill_9_nothing_is_left_and_cleanup_removes_the_note() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let note = note_in(&dir);
    let before = Host::now();
    let (mut running, ids) = start_running("redirect", &note).await;
    running.signal("KILL");
    running.exit().await;
    // The kernel removed the namespaces with the process that held them.
    assert_gone(&ids);
    assert_eq!(Host::now(), before, "the host's network changed");
    assert!(note.exists(), "a crash leaves only its note");

    let cleanup = transparent(&["--cleanup"], &note).await;
    assert!(cleanup.status.success(), "{}", cleanup.stderr);
    assert!(cleanup.stdout.contains("is gone"), "{}", cleanup.stdout);
    assert!(!note.exists());
    let again = transparent(&["--cleanup"], &note).await;
    assert!(
        again.stdout.contains("Nothing to clean up"),
        "{}",
        again.stdout
    );
}

/// The lab binary, copied where an unprivileged user may run it.
fn binary_for_anyone(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let copy = dir.join("lab");
    std::fs::copy(env!("CARGO_BIN_EXE_lab"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another test's child, forked while the copy was open for writing,
    // holds that descriptor until it execs: running the copy then fails
    // with "Text file busy" (ETXTBSY). Once one run of it succeeds, no such
    // child is left, and children forked later never had the descriptor.
    for attempt in 1.. {
        match std::process::Command::new(&copy)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
        {
            Ok(status) => {
                assert!(status.success(), "{copy:?} --version: {status}");
                break;
            }
            Err(err) if err.raw_os_error() == Some(libc::ETXTBSY) && attempt < 100 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => panic!("{copy:?}: {err}"),
        }
    }
    copy
}

/// The unprivileged user the tests become.
const NOBODY: u32 = 65534;

#[tokio::test]
async fn without_root_it_runs_in_a_user_namespace() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = binary_for_anyone(dir.path());
    let note = note_in(&dir);
    let mut command = tokio::process::Command::new(&lab);
    command
        .args([
            "--color",
            "never",
            "transparent",
            "--mode",
            "tproxy",
            "--run",
        ])
        .args(curl_echo("http://198.51.100.2:2003/abc"))
        .env(STATE_ENV, &note)
        .env_remove("RUST_LOG")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(STEP, command.output())
        .await
        .expect("bounded")
        .unwrap();
    let run = Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let echo = echo_of(&run);
    assert_eq!(ip_of(&echo.remote_addr), "192.0.2.2", "{echo:?}");
    assert!(!note.exists());
}

#[tokio::test]
async fn without_privileges_it_explains_and_sets_nothing_up() {
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = binary_for_anyone(dir.path());
    let note = note_in(&dir);
    let before = Host::now();
    // A user namespace of the test's own in which user namespaces are
    // forbidden (user.max_user_namespaces = 0, as on RHEL 7), and in it an
    // ordinary user: no root, and no way around it.
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            // Once the parent has mapped root, a new exec gives root's
            // capabilities in the namespace (sh started before the map).
            "read _ && exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && \
             exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\"' sh \"$@\"",
            "sh",
        ])
        .arg(&lab)
        .args(["--color", "never", "transparent", "--run", "--", "true"])
        .env(STATE_ENV, &note)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: unshare is a system call.
    unsafe {
        command.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("sh in a new user namespace");
    let pid = child.id();
    // Root outside may map several ids: root and nobody, as they are.
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 1\n65534 65534 1\n").unwrap();
    }
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "it ran without privileges: {stderr}"
    );
    assert!(stderr.contains("needs root (CAP_SYS_ADMIN)"), "{stderr}");
    assert!(stderr.contains("user.max_user_namespaces is 0"), "{stderr}");
    assert!(stderr.contains("sudo lab transparent"), "{stderr}");
    assert!(stderr.contains("Nothing was set up."), "{stderr}");
    assert!(!note.exists(), "a note was left");
    assert_eq!(Host::now(), before, "the host's network changed");
}

/// Runs `work` on a thread inside the client namespace of the running
/// `lab transparent` whose note is `note`, with a runtime of its own:
/// the test itself as the client, with no proxy setting.
async fn as_client<T, F, Fut>(note: &Path, work: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let state = state::read(note).expect("a running lab transparent");
    let client = lab::transparent::netns::Namespace::open("client", Path::new(&state.client))
        .expect("its client namespace");
    let thread = client
        .spawn_thread(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(work())
        })
        .unwrap();
    tokio::task::spawn_blocking(move || thread.join().expect("the client thread"))
        .await
        .unwrap()
}

#[tokio::test]
async fn hop_by_hop_headers_stop_and_a_websocket_goes_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    if !namespaces::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let note = note_in(&dir);
    let (mut running, _) = start_running("redirect", &note).await;
    let server: std::net::SocketAddr = "198.51.100.2:2003".parse().unwrap();

    let echo = as_client(&note, move || async move {
        lab::probe::Probe::get("/abc")
            .header("Accept", "application/json")
            .header("Connection", "X-Foo")
            .header("X-Foo", "1")
            .header("X-Forwarded-For", "1.2.3.4")
            .send(server)
            .await
            .unwrap()
            .json_echo()
            .unwrap()
    })
    .await;
    assert!(echo.header_values("x-foo").is_empty(), "{echo:?}");
    assert!(echo.header_values("connection").is_empty(), "{echo:?}");
    assert_eq!(
        echo.header_values("x-forwarded-for"),
        ["1.2.3.4, 192.0.2.2"]
    );

    let replies = as_client(&note, || async {
        let (mut socket, response) = tokio_tungstenite::connect_async("ws://198.51.100.2:2003/ws")
            .await
            .expect("a WebSocket through the intercepting proxy");
        assert_eq!(response.status(), 101);
        let mut replies = Vec::new();
        for text in ["one", "two"] {
            socket.send(Message::text(text)).await.unwrap();
            let reply = socket.next().await.unwrap().unwrap();
            replies.push(reply.into_text().unwrap().to_string());
        }
        let _ = socket.close(None).await;
        replies
    })
    .await;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].contains("one") && replies[1].contains("two"),
        "{replies:?}"
    );
    assert_eq!(
        running.terminate().await.code(),
        Some(0),
        "{}",
        running.log()
    );
}

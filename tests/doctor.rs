//! `lab doctor`, the real binary: a port this test keeps busy is reported
//! busy with this test's own PID and command (found through /proc), a port
//! it lets go is reported free, `--json` is one document with the
//! documented fields, and Debian's ZooKeeper is reported as installed.
//!
//! The port checks use `--port` with ports the test picks (127.0.0.1 port
//! 0), so they do not depend on the lab's own ports being free here; one
//! test runs the default list to see that it is the lab's.

use std::net::TcpListener;
use std::process::{ExitStatus, Stdio};

use crate::common::STEP;
use crate::common::process::lab_command;
use crate::common::servers::dead_port;
use crate::common::zookeeper;
use serde_json::Value;

/// Runs `lab doctor ARGS` and returns its status, stdout and stderr.
async fn doctor(args: &[&str]) -> (ExitStatus, String, String) {
    let mut argv = vec!["doctor"];
    argv.extend_from_slice(args);
    let output = tokio::time::timeout(STEP, lab_command(&argv).stdout(Stdio::piped()).output())
        .await
        .unwrap_or_else(|_| panic!("lab {argv:?} did not exit within {STEP:?}"))
        .expect("run lab doctor");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `lab doctor --json ARGS`, parsed; it must exit 0.
async fn doctor_json(args: &[&str]) -> Value {
    doctor_json_exiting(args, 0).await
}

/// `lab doctor --json ARGS`, parsed; it must exit with `code`.
async fn doctor_json_exiting(args: &[&str], code: i32) -> Value {
    let mut argv = vec!["--json"];
    argv.extend_from_slice(args);
    let (status, stdout, stderr) = doctor(&argv).await;
    assert_eq!(
        status.code(),
        Some(code),
        "lab doctor {argv:?}: {status}\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("--json is not one JSON document ({err}):\n{stdout}"))
}

/// The entry of `port` in the report's `ports`.
fn port_entry(report: &Value, port: u16) -> &Value {
    report["ports"]
        .as_array()
        .expect("ports is a list")
        .iter()
        .find(|entry| entry["port"] == port)
        .unwrap_or_else(|| panic!("port {port} is not in the report: {report:#}"))
}

/// The file name of this test binary, as /proc/PID/cmdline shows it.
fn own_program() -> String {
    let exe = std::env::current_exe().expect("current exe");
    exe.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn a_busy_port_is_reported_with_its_process() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local addr").port();
    let port_arg = port.to_string();
    let pid = std::process::id();

    // A port asked for and held by another program: reported, and exit 1.
    let report = doctor_json_exiting(&["--port", &port_arg], 1).await;
    let entry = port_entry(&report, port);
    assert_eq!(entry["status"], "busy", "{entry:#}");
    assert_eq!(entry["role"], "asked for (--port)", "{entry:#}");
    assert_eq!(entry["expected"], false, "{entry:#}");
    let owners = entry["owners"].as_array().expect("owners is a list");
    let me = owners
        .iter()
        .find(|owner| owner["pid"] == pid)
        .unwrap_or_else(|| panic!("this test (PID {pid}) is not among the owners: {entry:#}"));
    assert_eq!(me["address"], format!("127.0.0.1:{port}"), "{me:#}");
    assert_eq!(me["other_user"], false, "{me:#}");
    let program = own_program();
    let command = me["command"].as_str().expect("a command");
    assert!(
        command.starts_with(&program),
        "command {command:?} should start with {program:?}"
    );
    let argv0 = me["cmdline"][0].as_str().expect("cmdline[0]");
    assert!(argv0.ends_with(&program), "{argv0:?}");
    // The problem is named, with what to do.
    let steps = report["next_steps"].to_string();
    assert!(steps.contains(&format!("(PID {pid})")), "{steps}");
    assert!(steps.contains(&format!("kill {pid}")), "{steps}");

    // The tables say the same, with a mark that is not colour.
    let (status, stdout, stderr) = doctor(&["--port", &port_arg]).await;
    assert_eq!(status.code(), Some(1), "{status}\n{stderr}");
    let row = stdout
        .lines()
        .find(|line| line.contains(&format!(" {port} ")))
        .unwrap_or_else(|| panic!("no row for port {port}:\n{stdout}"));
    assert!(row.contains("✗ busy"), "{row}");
    assert!(row.contains(&format!("(PID {pid})")), "{row}");
    assert!(stdout.contains("Next steps"), "{stdout}");
    assert!(
        stdout.contains(&format!("port {port} is used by `{program}")),
        "{stdout}"
    );
    drop(listener);
}

#[tokio::test]
async fn a_free_port_is_reported_free() {
    let port = dead_port().port();
    let port_arg = port.to_string();
    let report = doctor_json(&["--port", &port_arg]).await;
    let entry = port_entry(&report, port);
    assert_eq!(entry["status"], "free", "{entry:#}");
    assert_eq!(entry["owners"], Value::Array(Vec::new()), "{entry:#}");
    assert_eq!(
        report["ports"].as_array().map(Vec::len),
        Some(1),
        "--port replaces the lab's ports"
    );

    let (status, stdout, _) = doctor(&["--port", &port_arg]).await;
    assert!(status.success());
    let row = stdout
        .lines()
        .find(|line| line.contains(&format!(" {port} ")))
        .unwrap_or_else(|| panic!("no row for port {port}:\n{stdout}"));
    assert!(row.contains("✓ free"), "{row}");
}

#[tokio::test]
async fn json_has_the_documented_fields() {
    let port = dead_port().port().to_string();
    let report = doctor_json(&["--port", &port]).await;
    assert_eq!(report["lab_version"], env!("CARGO_PKG_VERSION"));
    assert!(report["lab_path"].is_string(), "{report:#}");
    assert_eq!(report["system"]["os"], std::env::consts::OS);
    assert_eq!(report["system"]["arch"], std::env::consts::ARCH);
    if cfg!(target_os = "linux") {
        assert!(report["system"]["kernel"].is_string(), "{report:#}");
    }
    for field in ["port", "role", "status", "error", "expected", "owners"] {
        assert!(
            report["ports"][0].get(field).is_some(),
            "ports[].{field} is missing: {report:#}"
        );
    }
    let tools = report["tools"].as_array().expect("tools is a list");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["java", "curl", "go", "ip", "nft", "rustc"]);
    let namespaces = &report["namespaces"];
    for field in ["available", "how", "problem"] {
        assert!(
            namespaces.get(field).is_some(),
            "namespaces.{field}: {namespaces:#}"
        );
    }
    for tool in tools {
        for field in [
            "needed_for",
            "required",
            "found",
            "path",
            "version",
            "version_line",
            "error",
        ] {
            assert!(tool.get(field).is_some(), "tools[].{field}: {tool:#}");
        }
        if tool["found"] == true {
            assert!(
                tool["version"].is_string(),
                "a found tool says its version: {tool:#}"
            );
        }
    }
    assert!(report["next_steps"].is_array(), "{report:#}");
    // The document is the library's Report, field for field.
    let typed: lab::doctor::Report =
        serde_json::from_value(report.clone()).expect("the JSON is a lab::doctor::Report");
    assert_eq!(typed.ports.len(), 1);
}

#[tokio::test]
async fn zookeeper_is_reported_installed() {
    let report = doctor_json(&["--port", &dead_port().port().to_string()]).await;
    let zookeeper = &report["zookeeper"];
    assert_eq!(zookeeper["script"], lab::zk::server::ZK_SERVER_SCRIPT);
    if !zookeeper::available() {
        assert_eq!(zookeeper["installed"], false, "{zookeeper:#}");
        let steps = report["next_steps"].to_string();
        assert!(steps.contains("sudo apt-get install zookeeper"), "{steps}");
        return;
    }
    assert_eq!(zookeeper["installed"], true, "{zookeeper:#}");
    let version = zookeeper["version"].as_str().unwrap_or_default();
    assert!(
        version.split('.').all(|n| n.parse::<u32>().is_ok()) && !version.is_empty(),
        "the version comes from the jar's name: {zookeeper:#}"
    );
    // ZooKeeper runs on Java, so a machine with ZooKeeper has it.
    let java = &report["tools"][0];
    assert_eq!(java["name"], "java");
    assert_eq!(java["found"], true, "{java:#}");
    assert!(java["version"].is_string(), "{java:#}");
}

#[tokio::test]
async fn port_zero_is_refused() {
    let (status, _, stderr) = doctor(&["--port", "0"]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--port"), "{stderr}");
}

//! `lab demo` through the real binary: it starts everything, traces, explains
//! and exits 0.

use crate::common::STEP;
use crate::common::process::lab_command;

#[tokio::test]
async fn demo_runs_a_trace_through_both_upstreams_and_exits_0() {
    let mut command = lab_command(&["demo", "--lb", "wrr", "-n", "6"]);
    command.stdout(std::process::Stdio::piped());
    let output = tokio::time::timeout(STEP, command.output())
        .await
        .expect("the demo finishes in time")
        .expect("run lab demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // Both upstreams are shown, and both served (weights 10 and 20: 2 and 4 of 6).
    assert!(
        stdout.contains("upstreams (balanced by weighted): a = http://"),
        "{stdout}"
    );
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("a http://") || l.trim_start().starts_with("b http://")
        })
        .collect();
    assert_eq!(summary.len(), 2, "{stdout}");
    assert!(summary[0].contains(" 2 (33%)"), "{}", summary[0]);
    assert!(summary[1].contains(" 4 (67%)"), "{}", summary[1]);
    // The header diff shows what the proxy adds and removes.
    assert!(stdout.contains("X-Forwarded-For"), "{stdout}");
    assert!(stdout.contains("− removed ┆ X-Demo"), "{stdout}");
    assert!(stdout.contains("Next: `lab labs`"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

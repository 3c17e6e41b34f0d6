//! `lab demo` through the real binary: it starts everything, traces, explains
//! and exits 0.

use crate::common::STEP;
use crate::common::process::lab_command;
use crate::common::screen::{WIDTHS, assert_fits, run_at_width};

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
        stdout.contains("upstreams (balanced by weighted):\n  a = http://"),
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

/// At 80 and 120 columns: no line wider, no address, port or URL split.
#[tokio::test]
async fn demo_fits_80_and_120_columns() {
    for width in WIDTHS {
        let run = run_at_width(&["demo", "-n", "4"], width).await;
        assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
        // Every address and URL the demo printed, as printed whole somewhere.
        let values: Vec<String> = run
            .stdout
            .split([' ', ',', '(', ')', '│', '┆'])
            .filter(|w| w.starts_with("http://") || w.starts_with("127.0.0.1:"))
            .map(|w| w.trim_end_matches(['.', ';']).to_string())
            .filter(|w| !w.ends_with('…'))
            .collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        assert!(values.len() >= 4, "{}", run.stdout);
        assert_fits(&run.stdout, width, &values);
        assert!(run.stdout.contains("peer port"), "{}", run.stdout);
    }
}

//! `lab exercise` and `lab verify` on real programs: every reference
//! solution passes; the unmodified starting files fail and say what to do
//! first; every deliberate mistake an exercise.toml lists fails its point
//! with expected against actual; a Python program passes through `--run`;
//! `--watch` re-verifies on save; `start` never overwrites.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::go;
use crate::common::labs::{checkout_labs, copy_dir, labs_command, labs_copy};
use crate::common::process::{stderr, stdout};
use lab::exercises::{Exercise, Exercises};

fn verify(labs: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = labs_command(labs, args)
        .env("COLUMNS", "100")
        .output()
        .expect("run lab verify");
    let text = format!("{}{}", stdout(&output), stderr(&output));
    (output.status.code(), text)
}

/// The reference, the start and each mistake of one exercise.
fn check_exercise(labs: &Path, exercise: &Exercise) {
    let n = exercise.number.to_string();
    let (code, out) = verify(labs, &["verify", &n, "--reference"]);
    assert_eq!(code, Some(0), "the reference of exercise {n} fails:\n{out}");
    assert!(out.contains("points hold"), "{out}");

    let work = tempfile::tempdir().unwrap();
    let start = work.path().join("start");
    let dir = start.to_str().unwrap();
    let output = labs_command(labs, &["exercise", "start", &n, "--dir", dir])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let (code, out) = verify(labs, &["verify", &n, "--dir", dir]);
    assert_eq!(code, Some(1), "exercise {n}'s starting files pass:\n{out}");
    assert!(
        out.contains("Next step ("),
        "no next step for the start of {n}:\n{out}"
    );
    assert!(
        out.contains("TODO"),
        "the next step names no TODO for {n}:\n{out}"
    );

    let solution = std::fs::read_to_string(exercise.solution_dir().join("main.go")).unwrap();
    assert!(
        !exercise.meta.mistakes.is_empty(),
        "exercise {n} lists no mistakes"
    );
    for mistake in &exercise.meta.mistakes {
        assert_eq!(
            solution.matches(&mistake.replace).count(),
            1,
            "mistake {} of exercise {n}: {:?} is not in the solution exactly once",
            mistake.name,
            mistake.replace
        );
        let broken = work.path().join(&mistake.name);
        copy_dir(&exercise.solution_dir(), &broken);
        std::fs::write(
            broken.join("main.go"),
            solution.replacen(&mistake.replace, &mistake.with, 1),
        )
        .unwrap();
        let (code, out) = verify(labs, &["verify", &n, "--dir", broken.to_str().unwrap()]);
        assert_eq!(
            code,
            Some(1),
            "mistake {} of exercise {n} passes:\n{out}",
            mistake.name
        );
        assert!(
            out.contains(&format!("✗ fail {}:", mistake.fails)),
            "mistake {} of exercise {n} does not fail `{}`:\n{out}",
            mistake.name,
            mistake.fails
        );
        assert!(
            out.contains("expected:") && out.contains("actual:"),
            "{out}"
        );
        assert!(!out.contains("panicked"), "{out}");
    }
}

#[test]
fn references_pass_starts_fail_first_and_every_mistake_fails_its_point() {
    if !go::available() {
        return;
    }
    let copy = labs_copy();
    let exercises = Exercises::load(&copy.labs).unwrap();
    assert!(exercises.list.len() >= 3);
    // Two at a time: the real server's write timeout takes 6 s a run, and
    // the machine's other tests keep their timing (a thread per exercise
    // starved the timing tests beside it on two cores).
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(exercise) = exercises.list.get(i) else {
                        break;
                    };
                    check_exercise(&copy.labs, exercise);
                }
            });
        }
    });
}

#[test]
fn a_python_program_passes_the_proxy_and_round_robin_exercises() {
    let copy = labs_copy();
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exercises_data/proxy.py");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&program, dir.path().join("proxy.py")).unwrap();
    for n in ["3", "8"] {
        let (code, out) = verify(
            &copy.labs,
            &[
                "verify",
                n,
                "--dir",
                dir.path().to_str().unwrap(),
                "--run",
                "python3 proxy.py",
            ],
        );
        assert_eq!(code, Some(0), "exercise {n} in Python:\n{out}");
    }
}

#[test]
fn a_program_that_never_listens_is_reported_with_its_output() {
    let copy = labs_copy();
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = verify(
        &copy.labs,
        &[
            "verify",
            "8",
            "--dir",
            dir.path().to_str().unwrap(),
            "--run",
            "echo 'I forgot to listen'; exit 3",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("stopped (exit status 3)"), "{out}");
    assert!(out.contains("I forgot to listen"), "{out}");
    assert!(out.contains("next step:"), "{out}");
}

#[test]
fn start_never_overwrites_and_never_writes_into_the_labs() {
    let copy = labs_copy();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("rr");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("main.go"), "my own work").unwrap();
    let output = labs_command(
        &copy.labs,
        &["exercise", "start", "8", "--dir", target.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("nothing overwritten"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(target.join("main.go")).unwrap(),
        "my own work"
    );

    let inside = copy.labs.join("13-round-robin/mine");
    let output = labs_command(
        &copy.labs,
        &["exercise", "start", "8", "--dir", inside.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("inside the labs"),
        "{}",
        stderr(&output)
    );
    assert!(!inside.exists());
}

#[test]
fn progress_shows_in_the_list_and_the_solution_waits_for_a_pass() {
    if !go::available() {
        return;
    }
    let copy = labs_copy();
    let list = |labs: &Path| stdout(&labs_command(labs, &["exercise", "list"]).output().unwrap());
    assert!(
        list(&copy.labs).contains("not started"),
        "{}",
        list(&copy.labs)
    );

    let output = labs_command(&copy.labs, &["exercise", "solution", "8"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("--give-up"), "{}", stdout(&output));

    // The learner's copy of the solution passes: recorded, and the reference opens.
    let exercises = Exercises::load(&copy.labs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&exercises.find("8").unwrap().solution_dir(), dir.path());
    let (code, out) = verify(
        &copy.labs,
        &["verify", "8", "--dir", dir.path().to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{out}");
    let listed = list(&copy.labs);
    let row = listed.lines().find(|l| l.contains("Round robin")).unwrap();
    assert!(row.contains("✓ pass"), "{listed}");
    let output = labs_command(&copy.labs, &["exercise", "solution", "8"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(stdout(&output).contains("func (r *RoundRobinBalance) Next() string"));
    // A hint after a pass says none is needed.
    let output = labs_command(&copy.labs, &["exercise", "hint", "8"])
        .output()
        .unwrap();
    assert!(
        stdout(&output).contains("no hint needed"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn watch_verifies_again_within_two_seconds_of_a_save() {
    if !go::available() {
        return;
    }
    let copy = labs_copy();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("rr");
    let output = labs_command(
        &copy.labs,
        &["exercise", "start", "8", "--dir", work.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut child = labs_command(
        &copy.labs,
        &["verify", "8", "--watch", "--dir", work.to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Lines come through a channel from a thread of their own, so a wait
    // has a deadline even when no line comes at all.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |mark: &str, within: Duration| -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(mark);
                    seen.push(line);
                    if found {
                        return Instant::now();
                    }
                }
                Err(_) => {
                    let _ = Command::new("kill").arg(child.id().to_string()).status();
                    panic!(
                        "no {mark:?} within {within:?}; it printed:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    };
    wait_for("watching", Duration::from_secs(120));
    let exercises = Exercises::load(&copy.labs).unwrap();
    let solution = exercises.find("8").unwrap().solution_dir().join("main.go");
    let saved = Instant::now();
    std::fs::copy(&solution, work.join("main.go")).unwrap();
    let again = wait_for("verifying again", Duration::from_secs(10));
    assert!(
        again - saved < Duration::from_secs(2),
        "re-run after {:?}",
        again - saved
    );
    wait_for("all 4 points hold", Duration::from_secs(120));
    // SIGINT, as Ctrl-C: it stops.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the last verify passed");
}

#[test]
fn the_exercises_are_the_checkouts() {
    // Every exercise folder is read, and numbers are unique (load checks).
    let exercises = Exercises::load(&checkout_labs()).unwrap();
    for exercise in &exercises.list {
        assert!(
            exercise.start_dir().join("main.go").is_file(),
            "{}",
            exercise.folder()
        );
        assert!(
            exercise.solution_dir().join("main.go").is_file(),
            "{}",
            exercise.folder()
        );
        assert!(lab::exercises::checks::scenario(&exercise.meta.check).is_some());
    }
}

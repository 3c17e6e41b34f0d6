//! `lab tour` through the real binary, answers piped or read from a file (the
//! non-interactive mode), on a private copy of `labs/` so the progress each
//! test records is its own.
//!
//! Lab 14 (weighted round robin) is deterministic: smooth WRR with weights
//! 5, 1, 1 has no randomness, and `--seed` pins the rest. Its right answers
//! are what `lab check 14` shows in the "what happened" column:
//! `a a b a c a a`, `6,-3,4`, `0`, `3` and `a` (the unit tests of the
//! balancer, and the lab's check, draw the same table; the last is the
//! article's balancer, which never hears of the failure).

use crate::common::labs::{labs_command, labs_copy};
use crate::common::process::{stderr, stdout};

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

/// The questions of lab 14, in sheet order, with the answers `lab check 14` finds.
const RIGHT: [(&str, &str); 5] = [
    ("next-seven", "a a b a c a a"),
    ("pick4-currents", "6,-3,4"),
    ("effective-after-failure", "0"),
    ("picks-before-a-returns", "3"),
    ("article-request-16", "a"),
];

/// `lab ARGS` on the copy, with `stdin` piped in (so not a terminal).
fn lab(labs: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = labs_command(labs, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A child that reads none of it (--answers, an unknown lab) may be gone already.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// The reveal of prediction `id`: its verdict line and the lines under it.
fn reveal<'a>(out: &'a str, id: &str) -> &'a str {
    let start = out
        .find(&format!(" {id} · "))
        .unwrap_or_else(|| panic!("no reveal of {id} in:\n{out}"));
    let start = out[..start].rfind('\n').map_or(0, |i| i + 1);
    let end = out[start..]
        .find("    why:")
        .and_then(|why| out[start + why..].find('\n').map(|nl| start + why + nl))
        .unwrap_or(out.len());
    &out[start..end]
}

/// The row of `lab labs` (one physical line) that names `title`.
fn listed_row(labs: &Path, title: &str) -> String {
    let out = stdout(&lab(labs, &["labs"], ""));
    out.lines()
        .find(|line| line.contains(title))
        .unwrap_or_else(|| panic!("no row for {title} in:\n{out}"))
        .to_string()
}

#[test]
fn right_answers_piped_score_all_and_pass_the_lab() {
    let copy = labs_copy();
    let lines: String = RIGHT.iter().map(|(_, a)| format!("{a}\n")).collect();
    let output = lab(&copy.labs, &["tour", "14", "--seed", "7"], &lines);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));

    // The sheet is shown section by section, with each question in order.
    assert!(out.contains("# Lab 14 · Weighted round robin"), "{out}");
    assert!(
        out.contains("## An upstream fails: effectiveWeight"),
        "{out}"
    );
    let asked: Vec<usize> = RIGHT
        .iter()
        .map(|(id, _)| out.find(&format!("Predict `{id}`")).unwrap())
        .collect();
    assert!(asked.is_sorted(), "questions out of order:\n{out}");
    // No prompts off a terminal, and no "Check yourself" (the tour does that).
    assert!(!out.contains("your prediction ("), "{out}");
    assert!(!out.contains("## Check yourself"), "{out}");

    for (id, answer) in RIGHT {
        let shown = reveal(&out, id);
        assert!(shown.starts_with("✓ pass"), "{shown}");
        assert!(
            shown.contains(&format!("you predicted: {answer}")),
            "{shown}"
        );
    }
    // The experiment ran once, after the first question, and every claim held.
    assert_eq!(out.matches("▶ running the experiment").count(), 1, "{out}");
    assert!(
        out.find("▶ running the experiment").unwrap() > asked[0],
        "the experiment ran before the first prediction:\n{out}"
    );
    assert!(
        out.contains(
            "✓ pass Article claim smooth-sequence: the first 7 requests go to a a b a c a a"
        ),
        "{out}"
    );
    assert!(!out.contains("✗"), "{out}");
    assert!(out.contains("What the experiment did"), "{out}");

    let last = out.lines().last().unwrap();
    assert!(last.starts_with("score: 5 of 5 · 0 wrong"), "{last}");
    assert!(last.contains("claims: 9 of 9 verified"), "{last}");
    assert!(last.contains("seed 7"), "{last}");

    // Recorded: `lab labs` shows the lab passed, with the tour's score.
    let row = listed_row(&copy.labs, "Weighted round robin");
    assert!(row.contains("✓ pass"), "{row}");
    assert!(row.contains("┆ 5/5"), "{row}");

    // The answers went into the lab's answers.toml, comments kept: `lab check` agrees.
    let answers_path = copy.labs.join("14-weighted-round-robin/answers.toml");
    let saved = std::fs::read_to_string(&answers_path).unwrap();
    assert!(saved.contains("next-seven = \"a a b a c a a\""), "{saved}");
    assert!(
        saved.starts_with("# Your predictions for lab 14"),
        "{saved}"
    );
    let check = lab(&copy.labs, &["check", "14", "--seed", "7"], "");
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("5 right, 0 wrong, 0 unanswered"),
        "{}",
        stdout(&check)
    );
}

#[test]
fn wrong_answers_from_a_file_are_counted_and_explained() {
    let copy = labs_copy();
    let file = copy.dir.path().join("mine.toml");
    std::fs::write(
        &file,
        "next-seven = \"a a a a a b c\"\n\
         pick4-currents = \"6,-3,4\"\n\
         effective-after-failure = \"4\"\n",
    )
    .unwrap();
    let output = lab(
        &copy.labs,
        &[
            "tour",
            "weighted-round-robin",
            "--answers",
            file.to_str().unwrap(),
            "--seed",
            "7",
        ],
        // Ignored: with --answers nothing is read from stdin.
        "a a b a c a a\n",
    );
    let out = stdout(&output);
    // Every claim held: wrong predictions are the learner's, not the tour's failure.
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    // (Prose is wrapped to the screen: read it as words.)
    let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("not a failure of the tour"), "{out}");

    let wrong = reveal(&out, "next-seven");
    assert!(wrong.starts_with("✗ wrong next-seven · wrong"), "{wrong}");
    assert!(wrong.contains("you predicted: a a a a a b c"), "{wrong}");
    assert!(wrong.contains("what happened: a a b a c a a"), "{wrong}");
    assert!(
        wrong.contains("why:           currentWeights (after step a) 5,1,1 → a"),
        "{wrong}"
    );
    // Question 1's why walks through pick 4, whose currentWeights are
    // question 2's answer: cut out, since question 2 comes later.
    assert!(!wrong.contains("6,-3,4"), "{wrong}");
    assert!(wrong.contains("[hidden: `pick4-currents`]"), "{wrong}");
    let wrong = reveal(&out, "effective-after-failure");
    assert!(wrong.starts_with("✗ wrong"), "{wrong}");
    assert!(wrong.contains("you predicted: 4"), "{wrong}");
    assert!(wrong.contains("what happened: 0"), "{wrong}");
    assert!(wrong.contains("why:           5 - 5/1"), "{wrong}");
    assert!(
        reveal(&out, "pick4-currents").starts_with("✓ pass"),
        "{out}"
    );
    let unanswered = reveal(&out, "picks-before-a-returns");
    assert!(unanswered.starts_with("• pending"), "{unanswered}");
    assert!(
        unanswered.contains("you predicted: (no answer)"),
        "{unanswered}"
    );

    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("score: 1 of 5 · 2 wrong · 2 unanswered"),
        "{last}"
    );
    assert!(out.contains("2 question(s) unanswered"), "{out}");

    // `lab labs`: pending, because of the unanswered; the wrong ones are in the score.
    let row = listed_row(&copy.labs, "Weighted round robin");
    assert!(row.contains("• pending"), "{row}");
    assert!(row.contains("┆ 1/5"), "{row}");
    // The answers file named on the command line is the record: answers.toml is untouched.
    let template =
        std::fs::read_to_string(copy.labs.join("14-weighted-round-robin/answers.toml")).unwrap();
    assert!(template.contains("next-seven = \"\""), "{template}");
}

#[test]
fn a_missing_line_is_unanswered_and_the_lab_pending() {
    let copy = labs_copy();
    // Two answers, then the pipe ends; `skip` leaves one on purpose.
    let output = lab(
        &copy.labs,
        &["tour", "14", "--seed", "7"],
        "a a b a c a a\nskip\n",
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(reveal(&out, "next-seven").starts_with("✓ pass"), "{out}");
    for id in [
        "pick4-currents",
        "effective-after-failure",
        "picks-before-a-returns",
        "article-request-16",
    ] {
        assert!(reveal(&out, id).starts_with("• pending"), "{id}:\n{out}");
    }
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("score: 1 of 5 · 0 wrong · 4 unanswered"),
        "{last}"
    );
    let row = listed_row(&copy.labs, "Weighted round robin");
    assert!(row.contains("• pending"), "{row}");
}

#[test]
fn an_unknown_lab_exits_1_and_lists_the_labs() {
    let copy = labs_copy();
    let output = lab(&copy.labs, &["tour", "99"], "");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no lab \"99\""), "{err}");
    assert!(err.contains("14 (weighted-round-robin)"), "{err}");
    assert!(err.contains("`lab labs` lists them"), "{err}");
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    // Nothing recorded.
    assert!(!copy.labs.join(".progress.json").exists());
}

#[test]
fn a_missing_answers_file_is_an_error_not_an_empty_tour() {
    let copy = labs_copy();
    let missing = copy.dir.path().join("nope.toml");
    let output = lab(
        &copy.labs,
        &["tour", "14", "--answers", missing.to_str().unwrap()],
        "",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no answers file"),
        "{}",
        stderr(&output)
    );
}

/// `lab tour ARGS` on a pseudo-terminal (util-linux `script`), `keys` typed
/// line by line; `None` when `script` is not installed.
fn lab_on_a_terminal(labs: &Path, args: &str, keys: &str) -> Option<Output> {
    let bin = env!("CARGO_BIN_EXE_lab");
    let command = format!("{bin} --labs-dir {} {args}", labs.display());
    let mut child = match std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            eprintln!("skipped: util-linux `script` (a pseudo-terminal) is not installed");
            return None;
        }
    };
    let _ = child.stdin.take().unwrap().write_all(keys.as_bytes());
    Some(child.wait_with_output().unwrap())
}

#[test]
fn at_a_prompt_question_mark_gives_its_hint_and_q_quits_unscored() {
    let copy = labs_copy();
    // Enter through the sections before the first question (an Enter at the
    // prompt only asks again), then `?`, then `q`.
    let keys = format!("{}?\nq\n", "\n".repeat(20));
    let Some(output) = lab_on_a_terminal(&copy.labs, "tour 14 --seed 7", &keys) else {
        return;
    };
    let out = stdout(&output);
    assert!(out.contains("your prediction (next-seven)"), "{out}");
    // `?` at the first question: that question's first hint, named.
    assert!(
        out.contains("Hint 1/5 for `next-seven`: Keep a table"),
        "{out}"
    );
    // `q` stopped the tour: it was not taken for a prediction.
    assert!(out.contains("tour stopped: nothing recorded"), "{out}");
    assert!(!out.contains("running the experiment"), "{out}");
    assert!(!out.contains("next-seven · "), "{out}");
    assert!(output.status.success(), "{out}");
    assert!(
        !copy
            .labs
            .join("14-weighted-round-robin/answers.toml")
            .exists()
            || !std::fs::read_to_string(copy.labs.join("14-weighted-round-robin/answers.toml"))
                .unwrap()
                .contains("next-seven = \"q\"")
    );
}

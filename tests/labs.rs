//! The lab framework through the real binary: `lab check`, `lab labs`,
//! `lab show` and `lab hint`, each on a private copy of `labs/` so tests
//! neither touch the checkout's progress nor race each other.

use crate::common::labs::{checkout_labs, labs_command, labs_copy};
use crate::common::process::{stderr, stdout};
use crate::common::screen::{WIDTHS, assert_fits};

use std::path::Path;
use std::process::Output;

fn lab(labs: &Path, args: &[&str]) -> Output {
    labs_command(labs, args).output().unwrap()
}

fn write_answers(labs: &Path, lab_folder: &str, text: &str) {
    std::fs::write(labs.join(lab_folder).join("answers.toml"), text).unwrap();
}

/// The summary that ends a `lab check`: its last line (the verdict), then
/// the line of totals before it.
fn summary_of(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let n = lines.len();
    assert!(n >= 2, "{out}");
    format!("{} · {}", lines[n - 1], lines[n - 2])
}

/// The table row (one physical line) whose second cell starts with `id`.
fn row_with<'a>(out: &'a str, id: &str) -> &'a str {
    out.lines()
        .find(|line| line.contains(&format!("┆ {id}")))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{out}"))
}

/// The block of prediction `id` in a `lab check` report: its verdict line
/// (`✗ wrong direct-port: …`) and the indented lines under it.
fn prediction(out: &str, id: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|line| {
            line.contains(&format!(" {id}: "))
                && ["✓", "✗", "•", "·"].iter().any(|m| line.starts_with(m))
        })
        .unwrap_or_else(|| panic!("no prediction {id} in:\n{out}"));
    let mut block = vec![lines[start]];
    block.extend(
        lines[start + 1..]
            .iter()
            .take_while(|l| l.starts_with("  ")),
    );
    block.join("\n")
}

#[test]
fn check_all_passes_with_every_claim_verified() {
    let copy = labs_copy();
    // Whatever the checkout's learner predicted, this test judges the claims alone.
    for entry in std::fs::read_dir(&copy.labs).unwrap() {
        let _ = std::fs::remove_file(entry.unwrap().path().join("answers.toml"));
    }
    // The ZooKeeper lab needs Debian's package: without it (and outside CI,
    // which sets LAB_REQUIRE_ZOOKEEPER=1) it is left out, and said so.
    if !lab::zk::server::is_installed() {
        assert_ne!(
            std::env::var("LAB_REQUIRE_ZOOKEEPER").as_deref(),
            Ok("1"),
            "LAB_REQUIRE_ZOOKEEPER=1 but ZooKeeper is not installed: sudo apt-get install zookeeper"
        );
        eprintln!(
            "skipped lab 18 (ZooKeeper discovery): ZooKeeper is not installed (sudo apt-get install zookeeper)"
        );
        std::fs::remove_dir_all(copy.labs.join("18-zookeeper-discovery")).unwrap();
    }
    // The transparent-proxy lab builds network namespaces: root or user
    // namespaces, and `ip` and `nft` (CI sets LAB_REQUIRE_NAMESPACES=1).
    if !crate::common::namespaces::available() {
        eprintln!("skipped lab 04 (the transparent proxy): see the line above");
        std::fs::remove_dir_all(copy.labs.join("04-transparent-proxy")).unwrap();
    }
    let output = lab(&copy.labs, &["check", "--all", "--seed", "42"]);
    let out = stdout(&output);
    let err = stderr(&output);
    assert!(output.status.success(), "{out}\n{err}");
    // Quiet: no server's log line without -v, on either stream.
    for level in [" WARN ", " INFO ", " ERROR ", " DEBUG "] {
        assert!(!err.contains(level), "a log line without -v:\n{err}");
        assert!(!out.contains(level), "a log line without -v:\n{out}");
    }
    // Nothing answered: every lab is pending, and the summary says so (never
    // "✓ pass" over labs that wait for predictions).
    let summary = summary_of(&out);
    assert!(summary.starts_with("• pending"), "{summary}");
    assert!(summary.contains(" 0 pass, "), "{summary}");
    assert!(summary.contains(" 0 fail · "), "{summary}");
    assert!(summary.contains(" hold, 0 failed"), "{summary}");
    assert!(summary.contains("seed 42"), "{summary}");
    let catalogue = lab::labs::Catalogue::load(&copy.labs).unwrap();
    let n = catalogue.labs.len();
    assert!(n > 0, "no lab in {}", copy.labs.display());
    // At most one line per lab when everything holds: the lab lines, the
    // opening line (seed) and the summary's two; a note when Go is missing.
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let note = usize::from(out.starts_with("Checking lab's programs only"));
    assert_eq!(lines.len(), n + 3 + note, "{out}");
    assert!(out.contains("seed 42 (--seed repeats it)"), "{out}");
    // The opening line fits 80 columns with the longest seed.
    let opening = lines[note].replace("seed 42", &format!("seed {}", u64::MAX));
    assert!(opening.chars().count() <= 80, "{opening}");
    // Every lab of the catalogue ran, in order, and kept every claim.
    for (i, one) in catalogue.labs.iter().enumerate() {
        let prefix = format!(
            "[{:>w$}/{n}] {} {} ",
            i + 1,
            one.id(),
            one.slug,
            w = n.to_string().len()
        );
        let line = lines
            .iter()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{out}"));
        let claims = lab::labs::sheet::marks(&one.sheet).claims.len();
        assert!(
            line.contains(&format!("• pending · {claims}/{claims} claims")),
            "lab {} makes {claims} claims: {line}",
            one.id()
        );
    }
    assert!(summary.contains(&format!(" {n} lab(s): ")), "{summary}");
    assert!(!out.contains("✗"), "{out}");
}

#[test]
fn a_wrong_prediction_is_reported_not_failed_with_a_readable_row() {
    let copy = labs_copy();
    write_answers(
        &copy.labs,
        "01-proxy-basics",
        "direct-port = \"server\"\nspoofed-remote-ip = \"127.0.0.1\"\n",
    );
    let output = lab(&copy.labs, &["check", "1"]);
    let out = stdout(&output);
    // A wrong prediction is the learner's to learn from, not a broken lab.
    assert!(output.status.success(), "{out}");

    let row = prediction(&out, "direct-port");
    assert!(row.contains("✗ wrong"), "{row}");
    assert!(
        row.contains("server"),
        "the learner's answer is shown: {row}"
    );
    assert!(row.contains("client"), "what happened is shown: {row}");
    assert!(
        out.contains("client's ephemeral port"),
        "the why is shown:\n{out}"
    );

    let right = prediction(&out, "spoofed-remote-ip");
    assert!(right.contains("✓ pass"), "{right}");
    let pending = prediction(&out, "relay-remote-addr");
    assert!(pending.contains("• pending"), "{pending}");
    assert!(pending.contains("answer it first"), "{pending}");

    let summary = summary_of(&out);
    assert!(summary.starts_with("• pending"), "{summary}");
    assert!(
        summary.contains("1 right, 1 wrong, 1 unanswered"),
        "{summary}"
    );
    let listed = stdout(&lab(&copy.labs, &["labs"]));
    assert!(
        row_with(&listed, "Proxy basics").contains("• pending"),
        "{listed}"
    );

    // Every question answered, one wrong: the lab passes, the score says it.
    write_answers(
        &copy.labs,
        "01-proxy-basics",
        "direct-port = \"server\"\nspoofed-remote-ip = \"127.0.0.1\"\nrelay-remote-addr = \"relay\"\n",
    );
    let output = lab(&copy.labs, &["check", "1"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    let summary = summary_of(&out);
    assert!(summary.starts_with("✓ pass"), "{summary}");
    assert!(
        summary.contains("2 right, 1 wrong, 0 unanswered"),
        "{summary}"
    );
    let listed = stdout(&lab(&copy.labs, &["labs"]));
    assert!(
        row_with(&listed, "Proxy basics").contains("✓ pass"),
        "{listed}"
    );
}

#[test]
fn right_predictions_pass_and_show_in_the_list() {
    let copy = labs_copy();
    write_answers(
        &copy.labs,
        "02-special-headers",
        "xff-direct = \"1.2.3.4\"\nreal-ip-direct = \" 9.9.9.9 \"\ntwo-lines = \"`1.1.1.1`\"\n",
    );
    let output = lab(&copy.labs, &["check", "special-headers"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("lab 02: ✓ pass"), "{out}");
    assert!(out.contains("3 right, 0 wrong, 0 unanswered"), "{out}");

    let listed = stdout(&lab(&copy.labs, &["labs"]));
    assert!(
        row_with(&listed, "Special headers").contains("✓ pass"),
        "{listed}"
    );
    assert!(
        row_with(&listed, "Proxy basics").contains("not checked"),
        "{listed}"
    );
}

#[test]
fn answers_can_come_from_another_file() {
    let copy = labs_copy();
    let answers = copy.labs.join("mine.toml");
    std::fs::write(&answers, "relay-remote-addr = \"client\"\n").unwrap();
    let output = lab(
        &copy.labs,
        &["check", "1", "--answers", answers.to_str().unwrap()],
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        prediction(&out, "relay-remote-addr").contains("✗ wrong"),
        "{out}"
    );
}

#[test]
fn an_answer_to_no_question_is_reported() {
    let copy = labs_copy();
    write_answers(&copy.labs, "01-proxy-basics", "direct-prot = \"client\"\n");
    let output = lab(&copy.labs, &["check", "1"]);
    let out = stdout(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("`direct-prot`, which is not a question of this lab"),
        "{out}"
    );
}

#[test]
fn a_broken_answers_file_says_how_to_write_answers() {
    let copy = labs_copy();
    write_answers(&copy.labs, "01-proxy-basics", "direct-port = client\n");
    let output = lab(&copy.labs, &["check", "1"]);
    let out = stdout(&output);
    assert!(!output.status.success(), "{out}");
    assert!(out.contains("id = \"your answer\""), "{out}");
}

#[test]
fn hints_come_one_at_a_time_and_can_start_over() {
    let copy = labs_copy();
    let first = stdout(&lab(&copy.labs, &["hint", "1"]));
    let second = stdout(&lab(&copy.labs, &["hint", "01"]));
    assert!(first.starts_with("Hint 1/"), "{first}");
    assert!(second.starts_with("Hint 2/"), "{second}");
    assert_ne!(first[7..], second[7..]);

    let listed = stdout(&lab(&copy.labs, &["labs"]));
    assert!(
        row_with(&listed, "Proxy basics").contains("┆ 2/"),
        "{listed}"
    );

    for _ in 0..10 {
        lab(&copy.labs, &["hint", "1"]);
    }
    let exhausted = stdout(&lab(&copy.labs, &["hint", "1"]));
    assert!(exhausted.contains("No more hints"), "{exhausted}");
    lab(&copy.labs, &["hint", "1", "--reset"]);
    let again = stdout(&lab(&copy.labs, &["hint", "1"]));
    assert_eq!(again, first);
}

#[test]
fn each_hint_names_its_question_and_a_question_gets_its_own() {
    let copy = labs_copy();
    let first = stdout(&lab(&copy.labs, &["hint", "14"]));
    assert!(first.starts_with("Hint 1/5 for `next-seven`: "), "{first}");
    let asked = stdout(&lab(&copy.labs, &["hint", "14", "effective-after-failure"]));
    assert!(
        asked.starts_with("Hint 2/5 for `effective-after-failure`: "),
        "{asked}"
    );
    assert!(asked.contains("5 - 5/1"), "{asked}");
    // The next in order skips what was shown: pick4-currents' hint.
    let next = stdout(&lab(&copy.labs, &["hint", "14"]));
    assert!(
        next.starts_with("Hint 3/5 for `pick4-currents`: "),
        "{next}"
    );
    let none = stdout(&lab(&copy.labs, &["hint", "14", "effective-after-failure"]));
    assert!(
        none.starts_with("No more hints for `effective-after-failure`"),
        "{none}"
    );
    let unknown = lab(&copy.labs, &["hint", "14", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("next-seven"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn show_prints_the_sheet_and_what_to_do_next() {
    let copy = labs_copy();
    let output = lab(&copy.labs, &["show", "2"]);
    let out = stdout(&output);
    assert!(output.status.success());
    assert!(out.starts_with("# Lab 02 · Special headers"), "{out}");
    assert!(out.contains("特殊请求头"), "{out}");
    assert!(out.contains("**Predict** `xff-direct`"), "{out}");
    assert!(out.contains("then run `lab check 2`"), "{out}");
}

#[test]
fn an_unknown_lab_lists_the_labs() {
    let copy = labs_copy();
    let output = lab(&copy.labs, &["show", "99"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no lab \"99\""), "{err}");
    assert!(err.contains("1 (proxy-basics)"), "{err}");
}

#[test]
fn a_missing_labs_dir_says_where_to_point() {
    let output = lab(Path::new("/nonexistent/labs"), &["labs"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--labs-dir"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_labs_dir_without_labs_says_so_and_fails() {
    let empty = tempfile::tempdir().expect("a temp dir");
    let output = lab(empty.path(), &["labs"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("holds no labs"), "{err}");
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn outside_a_checkout_lab_check_says_it_cannot_find_the_labs() {
    // Not the labs of the tree the binary was built from: the learner's
    // progress would land there, silently.
    let elsewhere = tempfile::tempdir().expect("a temp dir");
    for args in [&["labs"][..], &["check", "1"]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
            .args(args)
            .current_dir(elsewhere.path())
            .env_remove("LAB_LABS_DIR")
            .env("NO_COLOR", "1")
            .output()
            .expect("run lab");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert!(err.contains("cannot find the labs"), "{err}");
        assert!(err.contains("--labs-dir"), "{err}");
    }
    // From a folder inside a checkout, its labs are found, as git finds its repository.
    let copy = labs_copy();
    let inside = copy.dir.path().join("notes");
    std::fs::create_dir_all(&inside).expect("a dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg("labs")
        .current_dir(&inside)
        .env_remove("LAB_LABS_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run lab");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Proxy basics"));
}

#[test]
fn every_sheet_marks_claims_and_predictions_the_answers_file_names() {
    // The answers template of each lab names exactly the sheet's questions.
    let labs = checkout_labs();
    let catalogue = lab::labs::Catalogue::load(&labs).unwrap();
    assert!(catalogue.labs.len() >= 2);
    for one in &catalogue.labs {
        let marks = lab::labs::sheet::marks(&one.sheet);
        assert!(!marks.claims.is_empty(), "{} makes no claim", one.slug);
        let template: toml::Table =
            toml::from_str(&std::fs::read_to_string(one.answers_path()).unwrap()).unwrap();
        let mut keys: Vec<&str> = template.keys().map(String::as_str).collect();
        let mut questions: Vec<&str> = marks.predictions.iter().map(|p| p.id.as_str()).collect();
        keys.sort_unstable();
        questions.sort_unstable();
        assert_eq!(keys, questions, "answers.toml of {}", one.slug);
        assert!(!one.meta.hints.is_empty(), "{} has no hints", one.slug);
        // Each hint is for a question of the sheet, or `general`.
        for key in one.meta.hints.keys() {
            assert!(
                key == lab::labs::GENERAL_HINTS || questions.contains(&key.as_str()),
                "{}: hints for `{key}`, which is no question of the sheet ({questions:?})",
                one.slug
            );
        }
    }
}

/// The article's section headings, from `tests/data/article-headings.txt`
/// (the article itself is not part of the checkout). A missing or empty file
/// fails the test: the check it feeds must not pass by having nothing to check.
fn article_headings(root: &Path) -> Vec<String> {
    let path = root.join("tests/data/article-headings.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("the article's headings, {}: {err}", path.display()));
    let headings: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect();
    assert!(!headings.is_empty(), "{} lists no heading", path.display());
    headings
}

/// Every sheet opens by naming the article section it follows, by a heading
/// of the article (so a reader of either can find the other), and names the
/// article's Chinese terms; every lab has hints.
#[test]
fn every_sheet_names_its_article_section_by_heading_and_has_hints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let headings = article_headings(root);
    let mut sheets = 0;
    for entry in std::fs::read_dir(checkout_labs()).unwrap() {
        let folder = entry.unwrap().path();
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        // Lab folders only (`NN-slug`): labs/go is the Go module.
        if !folder.is_dir() || lab::labs::parse_folder_name(&name).is_none() {
            continue;
        }
        sheets += 1;
        let sheet = std::fs::read_to_string(folder.join("README.md")).unwrap();
        let opening = sheet.split("\n## ").next().unwrap();
        assert!(
            opening.contains("Follows"),
            "{}: no 'Follows'",
            folder.display()
        );
        let named: Vec<&str> = opening.split("**").skip(1).step_by(2).collect();
        assert!(
            named
                .iter()
                .any(|bold| headings.iter().any(|heading| heading.contains(bold.trim()))),
            "{}: none of {named:?} is an article heading ({headings:?})",
            folder.display()
        );
        let chinese = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
        assert!(
            sheet.chars().any(chinese),
            "{}: no Chinese term",
            folder.display()
        );
        let lab_toml: toml::Value =
            toml::from_str(&std::fs::read_to_string(folder.join("lab.toml")).unwrap()).unwrap();
        let hints: usize = lab_toml["hints"].as_table().map_or(0, |t| {
            t.values().filter_map(|v| v.as_array()).map(Vec::len).sum()
        });
        assert!(hints > 0, "{}: no hints", folder.display());
        assert!(
            lab_toml["article_section"]
                .as_str()
                .is_some_and(|s| s.chars().any(chinese)),
            "{}: article_section",
            folder.display()
        );
    }
    assert!(sheets >= 18, "{sheets} sheets");
}

#[test]
#[should_panic(expected = "the article's headings")]
fn without_the_article_headings_the_sheet_check_fails_rather_than_skips() {
    article_headings(Path::new("/nonexistent"));
}

/// Lab 14's answers that no other text holds by chance (the lab is
/// deterministic; `tests/tour.rs` draws its table): `next-seven` and
/// `pick4-currents`, in the spellings a sheet or a report may use.
const LAB14_SPOILERS: [&str; 3] = ["a a b a c a a", "6,-3,4", "6, -3, 4"];

fn spoilers_in(out: &str) -> Vec<&'static str> {
    LAB14_SPOILERS
        .into_iter()
        .filter(|answer| out.contains(answer))
        .collect()
}

#[test]
fn unanswered_questions_are_not_spoiled_until_answered_or_revealed() {
    let copy = labs_copy();
    // The learner has answered nothing.
    write_answers(&copy.labs, "14-weighted-round-robin", "");

    let output = lab(&copy.labs, &["check", "14", "--seed", "7", "--impl", "lab"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert_eq!(spoilers_in(&out), Vec::<&str>::new(), "{out}");
    assert!(
        prediction(&out, "next-seven").contains("answer it first, or `--reveal`"),
        "{out}"
    );
    assert!(
        row_with(&out, "smooth-sequence").contains("folded"),
        "{out}"
    );

    let shown = stdout(&lab(&copy.labs, &["show", "14"]));
    assert_eq!(spoilers_in(&shown), Vec::<&str>::new(), "{shown}");
    assert!(
        shown.contains("**Article claim** `smooth-sequence`: *(folded"),
        "{shown}"
    );
    assert!(shown.contains("`lab show 14 --reveal`"), "{shown}");

    // --reveal shows it all.
    let revealed = stdout(&lab(
        &copy.labs,
        &["check", "14", "--seed", "7", "--impl", "lab", "--reveal"],
    ));
    assert!(revealed.contains("a a b a c a a"), "{revealed}");
    assert!(revealed.contains("6,-3,4"), "{revealed}");
    let shown = stdout(&lab(&copy.labs, &["show", "14", "--reveal"]));
    assert!(shown.contains("go to a a b a c a a"), "{shown}");

    // Once answered (wrongly, even), what happened is shown.
    write_answers(
        &copy.labs,
        "14-weighted-round-robin",
        "next-seven = \"a a a a a b c\"\npick4-currents = \"1,2,3\"\n",
    );
    let out = stdout(&lab(
        &copy.labs,
        &["check", "14", "--seed", "7", "--impl", "lab"],
    ));
    assert!(
        prediction(&out, "next-seven").contains("a a b a c a a"),
        "{out}"
    );
    assert!(
        prediction(&out, "pick4-currents").contains("6,-3,4"),
        "{out}"
    );
    // The questions of the other section stay hidden.
    assert!(
        prediction(&out, "effective-after-failure").contains("answer it first"),
        "{out}"
    );
    let shown = stdout(&lab(&copy.labs, &["show", "14"]));
    assert!(shown.contains("go to a a b a c a a"), "{shown}");
    assert!(
        shown.contains("**Lab claim** `effective-climbs-back`: *(folded"),
        "{shown}"
    );
}

#[test]
fn check_all_details_only_the_lab_that_fails_and_exits_1() {
    let copy = labs_copy();
    // Two labs: 01 with a claim its check never verifies, 02 as it is.
    for entry in std::fs::read_dir(&copy.labs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !name.starts_with("01-") && !name.starts_with("02-") {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    let sheet = copy.labs.join("01-proxy-basics/README.md");
    let mut text = std::fs::read_to_string(&sheet).unwrap();
    text.push_str("\n> **Lab claim** `never-checked`: no check verifies this.\n");
    std::fs::write(&sheet, text).unwrap();

    let output = lab(
        &copy.labs,
        &["check", "--all", "--seed", "3", "--impl", "lab"],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let first = out
        .lines()
        .find(|l| l.starts_with("[1/2] 01 proxy-basics "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(first.contains("✗ fail"), "{first}");
    // The failed claim's row, and only it: no passing claim, no prediction.
    let details: &str = out
        .split(first)
        .nth(1)
        .unwrap()
        .split("[2/2]")
        .next()
        .unwrap();
    assert!(details.contains("never-checked"), "{out}");
    assert!(!details.contains("✓ pass"), "{details}");
    assert!(!details.contains("direct-port"), "{details}");
    let second = out
        .lines()
        .find(|l| l.starts_with("[2/2] 02 special-headers "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(second.contains("• pending"), "{second}");
    let after_second = out.split(second).nth(1).unwrap();
    assert_eq!(after_second.trim().lines().count(), 2, "{out}");
    let summary = summary_of(&out);
    assert!(
        summary.starts_with("✗ fail 2 lab(s): 0 pass, 1 pending, 1 fail"),
        "{summary}"
    );
}

/// `--impl go` runs only the Go programs: a Lab claim does not run, and
/// counts neither as holding nor as failing.
#[test]
fn under_impl_go_a_lab_claim_that_did_not_run_is_not_a_failure() {
    if !crate::common::go::available() {
        return;
    }
    let copy = labs_copy();
    let output = lab(&copy.labs, &["check", "14", "--seed", "7", "--impl", "go"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let marks = lab::labs::sheet::marks(
        &std::fs::read_to_string(copy.labs.join("14-weighted-round-robin/README.md")).unwrap(),
    );
    let lab_claims = marks
        .claims
        .iter()
        .filter(|c| c.tag == Some(lab::labs::sheet::ClaimTag::Lab))
        .count();
    let run = marks.claims.len() - lab_claims;
    let result = out
        .lines()
        .find(|l| l.starts_with("lab 14: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        result.contains(&format!("{run}/{run} claims hold · {lab_claims} not run")),
        "{result}"
    );
    let summary = summary_of(&out);
    assert!(
        summary.contains(&format!(
            "claims: {run} hold, 0 failed, {lab_claims} not run"
        )),
        "{summary}"
    );
    assert!(!out.contains("✗"), "{out}");
}

/// The fenced code blocks of a sheet, each with its fences, as written.
fn code_blocks(sheet: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<Vec<&str>> = None;
    for line in sheet.lines() {
        let fence = line.trim_start().starts_with("```");
        match open.as_mut() {
            None if fence => open = Some(vec![line]),
            None => {}
            Some(block) => {
                block.push(line);
                if fence {
                    blocks.push(block.join("\n"));
                    open = None;
                }
            }
        }
    }
    blocks
}

/// `text` without its fenced code blocks (which are never re-wrapped).
fn prose_of(text: &str) -> String {
    let mut in_code = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_lab_screens_fit_80_and_120_columns_and_code_is_kept_byte_for_byte() {
    let copy = labs_copy();
    let catalogue = lab::labs::Catalogue::load(&copy.labs).unwrap();
    for width in WIDTHS {
        let at = |args: &[&str]| {
            let output = labs_command(&copy.labs, args)
                .env("COLUMNS", width.to_string())
                .output()
                .unwrap();
            assert!(output.status.success(), "{args:?}: {}", stderr(&output));
            stdout(&output)
        };
        assert_fits(&at(&["labs"]), width, &[]);
        for lab in &catalogue.labs {
            let n = lab.number.to_string();
            for reveal in [false, true] {
                let mut args = vec!["show", n.as_str(), "--no-pager"];
                if reveal {
                    args.push("--reveal");
                }
                let shown = at(&args);
                assert_fits(&prose_of(&shown), width, &[]);
                for block in code_blocks(&lab.sheet) {
                    assert!(
                        shown.contains(&block),
                        "lab {n} at {width} columns re-wrapped a code block:\n{block}\n\nin\n{shown}"
                    );
                }
            }
            let hint = at(&["hint", n.as_str()]);
            assert_fits(&hint, width, &[]);
        }
        for args in [
            &["check", "14", "--impl", "lab", "--seed", "7"][..],
            &["check", "14", "--impl", "lab", "--seed", "7", "--reveal"],
            &["check", "8", "--seed", "7", "--reveal"],
            &["check", "1", "--reveal"],
        ] {
            assert_fits(&at(args), width, &[]);
        }
    }
}

//! Properties of the lab files: the sheet's marks ([`sheet::marks`]),
//! `answers.toml` ([`answers::parse`], [`answers::normalize`]), `lab.toml`
//! ([`LabMeta`]), the folder names `NN-slug` and `.progress.json`.

use super::{any_text, config, soup};
use lab::labs::progress::{Progress, Status, TourScore};
use lab::labs::{LabMeta, answers, parse_folder_name, sheet};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// One line of a generated sheet: prose (which can hold no mark: no `*`),
/// or a mark with its expected id and text.
#[derive(Debug, Clone)]
enum SheetLine {
    Prose(String),
    Mark {
        claim: bool,
        line: String,
        id: String,
        text: String,
    },
}

fn sheet_line() -> impl Strategy<Value = SheetLine> {
    let prose = prop::collection::vec(
        any::<char>().prop_map(|c| if matches!(c, '*' | '\n') { ' ' } else { c }),
        0..40,
    )
    .prop_map(|chars| SheetLine::Prose(String::from_iter(chars)));
    let mark = (
        any::<bool>(),
        prop::sample::select(&["", "> ", "- ", "  ", "1. "][..]),
        "[ \t]{1,2}",
        "[a-z0-9][a-z0-9-]{0,12}",
        prop::sample::select(&[":", " —", " -", "—", ""][..]),
        any_text(30).prop_map(|t| t.replace('\n', " ")),
    )
        .prop_map(|(claim, lead, space, id, sep, text)| {
            // Without a separator, a text that starts with one would give
            // it to the separator: that is the format, so avoid it here.
            let text = if sep.is_empty() {
                text.trim_start_matches(|c: char| c.is_whitespace() || ":—-".contains(c))
                    .to_string()
            } else {
                text
            };
            let word = if claim { "Claim" } else { "Predict" };
            SheetLine::Mark {
                claim,
                line: format!("{lead}**{word}**{space}`{id}`{sep} {text}"),
                id,
                text: text.trim().to_string(),
            }
        });
    prop_oneof![2 => prose, 1 => mark]
}

/// A value of an `answers.toml` line: what TOML can hold for an answer.
#[derive(Debug, Clone)]
enum AnswerValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

fn answer_value() -> impl Strategy<Value = AnswerValue> {
    prop_oneof![
        3 => any_text(16).prop_map(AnswerValue::Text),
        1 => prop::sample::select(&["client", " Client ", "`server`", "6, -3, 4", "", "  "][..])
            .prop_map(|s| AnswerValue::Text(s.to_string())),
        1 => any::<i64>().prop_map(AnswerValue::Integer),
        1 => any::<bool>().prop_map(AnswerValue::Boolean),
    ]
}

const ANSWER_PIECES: &[&str] = &[
    "a", "=", " ", "\"", "'", "\n", "[", "]", "{", "}", ".", "#", "\"\"\"", "1", "true", "-",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sheet_marks_never_panic(text in any_text(200)) {
        let found = sheet::marks(&text);
        for mark in found.claims.iter().chain(&found.predictions) {
            prop_assert!(!mark.id.is_empty());
            prop_assert_eq!(mark.text.trim(), mark.text.as_str());
        }
    }

    #[test]
    fn a_generated_sheet_gives_its_marks_in_order(
        lines in prop::collection::vec(sheet_line(), 0..20),
        crlf in any::<bool>(),
    ) {
        let text: Vec<&str> = lines
            .iter()
            .map(|line| match line {
                SheetLine::Prose(text) => text.as_str(),
                SheetLine::Mark { line, .. } => line.as_str(),
            })
            .collect();
        let sheet = text.join(if crlf { "\r\n" } else { "\n" });
        let found = sheet::marks(&sheet);
        let expected = |want_claim: bool| -> Vec<(String, String)> {
            lines
                .iter()
                .filter_map(|line| match line {
                    SheetLine::Mark { claim, id, text, .. } if *claim == want_claim => {
                        Some((id.clone(), text.clone()))
                    }
                    _ => None,
                })
                .collect()
        };
        let got = |marks: &[sheet::Marked]| -> Vec<(String, String)> {
            marks.iter().map(|m| (m.id.clone(), m.text.clone())).collect()
        };
        prop_assert_eq!(got(&found.claims), expected(true));
        prop_assert_eq!(got(&found.predictions), expected(false));
    }

    #[test]
    fn answers_files_never_panic(
        text in prop_oneof![any_text(60), soup(ANSWER_PIECES, 20)],
    ) {
        if let Ok(answers) = answers::parse(&text) {
            for answer in answers.values() {
                prop_assert!(!answers::normalize(answer).is_empty());
            }
        }
    }

    #[test]
    fn generated_answers_read_back(
        given in prop::collection::btree_map("[a-z0-9][a-z0-9-]{0,12}", answer_value(), 0..8),
        spaced in any::<bool>(),
    ) {
        // Written as `lab tour` writes them: `id = <TOML value>`.
        let eq = if spaced { " = " } else { "=" };
        let mut text = String::from("# my predictions\n");
        let mut expected = BTreeMap::new();
        for (id, value) in &given {
            let (toml, answer) = match value {
                AnswerValue::Text(s) => (toml::Value::String(s.clone()), s.clone()),
                AnswerValue::Integer(i) => (toml::Value::Integer(*i), i.to_string()),
                AnswerValue::Boolean(b) => (toml::Value::Boolean(*b), b.to_string()),
            };
            text.push_str(&format!("{id}{eq}{toml}\n"));
            if !answers::normalize(&answer).is_empty() {
                expected.insert(id.clone(), answer);
            }
        }
        let read = answers::parse(&text).map_err(|e| TestCaseError::fail(format!("{e:#}\n{text}")))?;
        prop_assert_eq!(read, expected, "{}", text);
    }

    #[test]
    fn normalizing_twice_is_normalizing_once(answer in prop_oneof![
        any_text(16),
        soup(&["\"", "'", "`", " ", ",", "a", "B", "\t", "é", "İ"], 10),
    ]) {
        let once = answers::normalize(&answer);
        prop_assert_eq!(answers::normalize(&once), once.clone(), "{:?}", answer);
    }

    #[test]
    fn case_spacing_and_quotes_do_not_change_an_answer(
        words in prop::collection::vec(prop::collection::vec("[a-zA-Z0-9.:-]{1,6}", 1..3), 1..4),
        spaces in prop::collection::vec("[ \t]{0,2}", 16),
        quote in prop::sample::select(&["", "\"", "'", "`"][..]),
        upper in any::<bool>(),
    ) {
        // `6, -3, 4` is `6,-3,4`; ` Client ` is `client`; `"a  b"` is `a b`.
        let plain = words
            .iter()
            .map(|part| part.join(" "))
            .collect::<Vec<_>>()
            .join(",");
        let mut space = spaces.iter().cycle();
        let mut decorated = String::new();
        decorated.push_str(space.next().expect("cycled"));
        decorated.push_str(quote);
        for (i, part) in words.iter().enumerate() {
            if i > 0 {
                decorated.push_str(space.next().expect("cycled"));
                decorated.push(',');
                decorated.push_str(space.next().expect("cycled"));
            }
            decorated.push_str(&part.join(&format!(" {}", space.next().expect("cycled"))));
        }
        decorated.push_str(quote);
        decorated.push_str(space.next().expect("cycled"));
        if upper {
            decorated = decorated.to_uppercase();
        }
        prop_assert_eq!(answers::normalize(&decorated), answers::normalize(&plain), "{:?}", decorated);
        prop_assert_eq!(answers::normalize(&plain), plain.to_lowercase());
    }

    #[test]
    fn lab_toml_never_panics_and_generated_ones_read_back(
        junk in prop_oneof![any_text(60), soup(&["title", "article_section", "hints", " = ", "\"x\"", "[", "]", ",", "\n"], 20)],
        title in any_text(20),
        section in any_text(20),
        hints in prop::collection::vec(any_text(12), 0..3),
    ) {
        let _ = toml::from_str::<LabMeta>(&junk);
        let hints_toml = toml::Value::Array(hints.iter().cloned().map(toml::Value::String).collect());
        let text = format!(
            "title = {}\narticle_section = {}\n[hints]\nsome-question = {hints_toml}\n",
            toml::Value::String(title.clone()),
            toml::Value::String(section.clone()),
        );
        let meta: LabMeta = toml::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(meta.title, title);
        prop_assert_eq!(meta.article_section, section);
        prop_assert_eq!(meta.hints.get("some-question"), Some(&hints));
    }

    #[test]
    fn lab_folder_names_are_two_digits_a_dash_and_a_slug(
        name in prop_oneof![
            any_text(12),
            soup(&["0", "1", "12", "-", "é", "a", " "], 5),
            "[0-9+ -]{2}-[a-z-]{0,3}",
        ],
        number in 0u32..100,
        slug in any_text(12).prop_filter("a slug", |s| !s.is_empty()),
    ) {
        // Whatever is accepted is written `NN-slug` with `NN` the number.
        if let Some((n, s)) = parse_folder_name(&name) {
            prop_assert_eq!(format!("{n:02}-{s}"), name);
        }
        prop_assert_eq!(
            parse_folder_name(&format!("{number:02}-{slug}")),
            Some((number, slug))
        );
    }
}

#[test]
fn a_sign_is_not_a_lab_number() {
    // Found by `lab_folder_names_are_two_digits_a_dash_and_a_slug` (minimal
    // input `+0--`, taken for lab 00): `+1` is two characters that
    // `u32::from_str` takes for 1, so a folder `+1-notes` was lab 01 (and
    // then "two labs share number 01" beside `01-proxy-basics`).
    assert_eq!(parse_folder_name("+0--"), None);
    assert_eq!(parse_folder_name("+1-notes"), None);
    assert_eq!(
        parse_folder_name("01-notes"),
        Some((1, "notes".to_string()))
    );
}

#[test]
fn nested_quotes_are_dropped_too() {
    // Found by `normalizing_twice_is_normalizing_once` (minimal input
    // `" ",`: once `",`, twice `,`): spaces were trimmed, then quotes, then
    // spaces, once each, so `" 'client' "` (a quote, a space, a quote)
    // stayed `'client'` and did not match `client`.
    assert_eq!(answers::normalize("\" \","), ",");
    assert_eq!(answers::normalize("\" 'client' \""), "client");
    assert_eq!(answers::normalize("` \"a b\" `"), "a b");
}

/// `.progress.json` is read back as written, and a file that is not one is
/// no progress (the command goes on). Touches the disk, so fewer cases.
#[test]
fn progress_files_round_trip_and_garbage_is_empty() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let entry = (
        prop::option::of(prop::sample::select(
            &[Status::Pass, Status::Pending, Status::Fail][..],
        )),
        0usize..5,
        prop::option::of((0usize..5, 0usize..5)),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: config().cases / 4,
        ..config()
    });
    runner
        .run(
            &(
                prop::collection::btree_map(any_text(10), entry, 0..4),
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..64),
                    soup(&["{", "}", "\"labs\"", ":", "null", "[", "1"], 8)
                        .prop_map(String::into_bytes),
                ],
            ),
            |(labs, garbage)| {
                let path = Progress::path_in(dir.path());
                let _ = std::fs::remove_file(&path);
                let mut progress = Progress::load(dir.path());
                for (slug, (last_check, hints_shown, tour)) in &labs {
                    let lab = progress.lab_mut(slug);
                    lab.last_check = *last_check;
                    lab.hints_shown = *hints_shown;
                    lab.last_tour = tour.map(|(right, questions)| TourScore { right, questions });
                }
                progress
                    .save()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let again = Progress::load(dir.path());
                prop_assert_eq!(
                    serde_json::to_value(&again.labs).expect("serialisable"),
                    serde_json::to_value(&progress.labs).expect("serialisable")
                );
                std::fs::write(&path, &garbage).expect("write the file");
                let loaded = Progress::load(dir.path());
                if serde_json::from_slice::<serde_json::Value>(&garbage).is_err() {
                    prop_assert!(loaded.labs.is_empty());
                }
                Ok(())
            },
        )
        .unwrap_or_else(|failure| panic!("{failure}"));
}

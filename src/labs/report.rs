//! Holding a run against its sheet and the learner's answers: one row per
//! claim (expected, actual, why) and one per prediction (your answer, what
//! happened, why), rendered as tables with a one-line verdict.

use super::answers::{Answers, normalize};
use super::findings::{Findings, Subject};
use super::progress::Status;
use super::sheet::{ClaimTag, Marked, SheetMarks};
use super::spoilers::Spoilers;
use crate::output::{self, Column, Mark};

/// A claim of the sheet and how the run bore it out, on each program it ran on.
#[derive(Debug, Clone)]
pub struct ClaimRow {
    pub id: String,
    pub tag: Option<ClaimTag>,
    /// Measured on the article's program in Go.
    pub go: Option<Outcome>,
    /// Measured on `lab`'s program.
    pub lab: Option<Outcome>,
    pub mark: Mark,
    pub why: String,
    /// Why the claim fails although no measurement did (untagged, never
    /// measured, not measured on Go).
    pub problem: Option<String>,
}

/// One measurement of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub expected: String,
    pub actual: String,
    pub passed: bool,
    /// `lab` deliberately differs from Go here, for this reason.
    pub lab_choice: Option<String>,
}

impl Outcome {
    /// The result in a few words: `✓ 502`, `✗ 504, expected 502`, or
    /// `≠ 504: lab's choice`.
    pub fn summary(&self) -> String {
        match (self.passed, &self.lab_choice) {
            (true, None) => format!("✓ {}", self.actual),
            (true, Some(_)) => format!("≠ {} (lab's choice)", self.actual),
            (false, _) => format!("✗ {}, expected {}", self.actual, self.expected),
        }
    }
}

impl ClaimRow {
    /// The Go and lab cells of the row: `Go: ✓ 502 · lab: ≠ 504 (lab's choice)`.
    pub fn results(&self) -> String {
        let mut parts = Vec::new();
        if let Some(go) = &self.go {
            parts.push(format!("Go: {}", go.summary()));
        }
        if let Some(lab) = &self.lab {
            parts.push(format!("lab: {}", lab.summary()));
        }
        if parts.is_empty() {
            return self
                .problem
                .clone()
                .unwrap_or_else(|| "not measured in this run".into());
        }
        parts.join(" · ")
    }
}

/// The measurements of claim `id` on `subject`, merged: failed if any failed.
fn outcome(findings: &Findings, id: &str, subject: Subject) -> Option<(Outcome, String)> {
    let mut found = findings
        .claims
        .iter()
        .filter(|c| c.id == id && c.subject == subject);
    let first = found.next()?;
    let worst = std::iter::once(first)
        .chain(found)
        .find(|c| !c.passed)
        .unwrap_or(first);
    Some((
        Outcome {
            expected: worst.expected.clone(),
            actual: worst.actual.clone(),
            passed: worst.passed,
            lab_choice: worst.lab_choice.clone(),
        },
        worst.why.clone(),
    ))
}

/// Holds one marked claim against what the run measured.
fn claim_row(marked: &Marked, findings: &Findings) -> ClaimRow {
    let go = outcome(findings, &marked.id, Subject::Go);
    let lab = outcome(findings, &marked.id, Subject::Lab);
    let why = lab
        .as_ref()
        .filter(|(o, _)| o.lab_choice.is_none())
        .or(go.as_ref())
        .or(lab.as_ref())
        .map(|(_, why)| why.clone())
        .unwrap_or_default();
    let go_ran = findings.go.is_some();
    let about_go = matches!(marked.tag, Some(ClaimTag::Go | ClaimTag::Article));
    let problem = if marked.tag.is_none() {
        Some(format!(
            "the sheet does not say what claim `{}` is about: mark it **Go claim**, **Article claim** or **Lab claim**",
            marked.id
        ))
    } else if go.is_none() && lab.is_none() {
        let covered =
            (findings.lab && marked.tag != Some(ClaimTag::Article)) || (go_ran && about_go);
        covered.then(|| {
            "not verified: the experiment stopped before this claim, or its check does not test it"
                .to_string()
        })
    } else if go_ran && about_go && go.is_none() {
        Some(format!(
            "a claim about {} that the check did not run against Go",
            if marked.tag == Some(ClaimTag::Go) {
                "Go"
            } else {
                "the article's code"
            }
        ))
    } else {
        None
    };
    let measured_failure = [&go, &lab].into_iter().flatten().any(|(o, _)| !o.passed);
    let measured = go.is_some() || lab.is_some();
    let mark = if problem.is_some() || measured_failure {
        Mark::Fail
    } else if measured {
        Mark::Pass
    } else {
        Mark::NotStarted
    };
    ClaimRow {
        id: marked.id.clone(),
        tag: marked.tag,
        go: go.map(|(o, _)| o),
        lab: lab.map(|(o, _)| o),
        mark,
        why,
        problem,
    }
}

/// A prediction question, the learner's answer and what happened.
#[derive(Debug, Clone)]
pub struct PredictionRow {
    pub id: String,
    pub question: String,
    pub answer: Option<String>,
    pub actual: String,
    pub mark: Mark,
    pub why: String,
}

/// The verdict of one `lab check`.
#[derive(Debug, Clone)]
pub struct Report {
    pub claims: Vec<ClaimRow>,
    pub predictions: Vec<PredictionRow>,
    /// Mismatches between sheet, check and answers file; each fails the lab.
    pub problems: Vec<String>,
}

impl Report {
    /// Compares what the run found with what the sheet says and the learner predicted.
    pub fn build(marks: &SheetMarks, findings: &Findings, answers: &Answers) -> Report {
        let mut problems = Vec::new();

        let claims: Vec<ClaimRow> = marks
            .claims
            .iter()
            .map(|marked| claim_row(marked, findings))
            .collect();
        let mut unknown: Vec<&str> = Vec::new();
        for found in &findings.claims {
            if !marks.claims.iter().any(|m| m.id == found.id)
                && !unknown.contains(&found.id.as_str())
            {
                unknown.push(&found.id);
                problems.push(format!(
                    "the check verifies claim `{}`, which the sheet does not make (mark it **Go claim**, **Article claim** or **Lab claim** `{}` in README.md)",
                    found.id, found.id
                ));
            }
        }

        let mut predictions = Vec::new();
        for marked in &marks.predictions {
            let answer = answers.get(&marked.id).cloned();
            let (actual, why, observed) =
                match findings.observations.iter().find(|o| o.id == marked.id) {
                    Some(o) => (o.actual.clone(), o.why.clone(), true),
                    None => (
                        "not observed".into(),
                        "the experiment stopped before this question was answered".into(),
                        false,
                    ),
                };
            let mark = match (&answer, observed) {
                (_, false) => Mark::Fail,
                (None, true) => Mark::Pending,
                (Some(a), true) if normalize(a) == normalize(&actual) => Mark::Pass,
                // The learner's to learn from: counted in the score, not a failure.
                (Some(_), true) => Mark::Wrong,
            };
            predictions.push(PredictionRow {
                id: marked.id.clone(),
                question: marked.text.clone(),
                answer,
                actual,
                mark,
                why,
            });
        }
        for found in &findings.observations {
            if !marks.predictions.iter().any(|m| m.id == found.id) {
                problems.push(format!(
                    "the check answers question `{}`, which the sheet does not ask (mark it **Predict** `{}` in README.md)",
                    found.id, found.id
                ));
            }
        }
        for id in answers.keys() {
            if !marks.predictions.iter().any(|m| &m.id == id) {
                problems.push(format!(
                    "the answers file has `{id}`, which is not a question of this lab (the questions: {})",
                    marks
                        .predictions
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }

        Report {
            claims,
            predictions,
            problems,
        }
    }

    /// Fail if a claim did not hold or the lab has a problem (a question
    /// the experiment never answered is one); pending if predictions wait for
    /// answers; else pass, whether the predictions were right or wrong.
    pub fn status(&self) -> Status {
        let failed = !self.problems.is_empty()
            || self.claims.iter().any(|c| c.mark == Mark::Fail)
            || self.predictions.iter().any(|p| p.mark == Mark::Fail);
        if failed {
            Status::Fail
        } else if self.predictions.iter().any(|p| p.mark == Mark::Pending) {
            Status::Pending
        } else {
            Status::Pass
        }
    }

    /// The claims this run measured: a Lab claim does not run under `--impl go`.
    pub fn claims_run(&self) -> usize {
        self.claims.len() - self.count_claims(Mark::NotStarted)
    }

    /// `8/8 claims hold` (`· 1 not run` when some did not run).
    pub fn claims_line(&self) -> String {
        let mut text = format!(
            "{}/{} claims hold",
            self.count_claims(Mark::Pass),
            self.claims_run()
        );
        let not_run = self.count_claims(Mark::NotStarted);
        if not_run > 0 {
            text.push_str(&format!(
                " · {not_run} not run (about a program --impl left out)"
            ));
        }
        text
    }

    /// `2 right, 1 wrong, 3 unanswered`, or nothing for a lab without questions.
    pub fn predictions_line(&self) -> Option<String> {
        if self.predictions.is_empty() {
            return None;
        }
        Some(format!(
            "predictions: {} right, {} wrong, {} unanswered",
            self.count_predictions(Mark::Pass),
            self.count_predictions(Mark::Wrong),
            self.count_predictions(Mark::Pending)
        ))
    }

    pub fn count_claims(&self, mark: Mark) -> usize {
        self.claims.iter().filter(|c| c.mark == mark).count()
    }

    pub fn count_predictions(&self, mark: Mark) -> usize {
        self.predictions.iter().filter(|p| p.mark == mark).count()
    }

    /// The tables and problems, ready to print, with what `spoilers` hides
    /// left out (a claim that failed is shown whole all the same: the lab
    /// is broken, and that comes first).
    pub fn render(&self, spoilers: &Spoilers) -> String {
        self.render_rows(spoilers, |_| true)
    }

    /// Only what failed: the failed claims and the problems (`lab check --all`).
    pub fn render_failures(&self, spoilers: &Spoilers) -> String {
        self.render_rows(spoilers, |mark| mark == Mark::Fail)
    }

    fn render_rows(&self, spoilers: &Spoilers, keep: impl Fn(Mark) -> bool) -> String {
        let mut out = String::new();
        let claims: Vec<&ClaimRow> = self.claims.iter().filter(|c| keep(c.mark)).collect();
        if !claims.is_empty() {
            // An id is never cut: its column is at least as wide as the longest.
            // (Borders and the result column take 21; measured and why get 10 at least.)
            let width = output::width();
            let ids = claims.iter().map(|c| c.id.len()).max().unwrap_or(0);
            let columns = [
                Column::keep("result"),
                Column::wrap("claim", ids.clamp(12, width.saturating_sub(41).max(12))),
                Column::wrap("measured", 10),
                Column::wrap("why", 10),
            ];
            let mut rows = Vec::new();
            for row in claims {
                // The claim's sentence is in the sheet; its id, what it is
                // about, the results and the "why" suffice here.
                let about = row.tag.map_or("untagged", ClaimTag::word);
                let (measured, why) = match spoilers.folds(&row.id) {
                    Some(questions) if row.mark != Mark::Fail => (
                        format!(
                            "(folded: it answers {}; answer first, or `--reveal`)",
                            questions
                                .iter()
                                .map(|q| format!("`{q}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        String::new(),
                    ),
                    _ => (spoilers.redact(&row.results()), spoilers.redact(&row.why)),
                };
                rows.push(vec![
                    row.mark.text(),
                    (format!("{}\n({about})", row.id), None),
                    (measured, None),
                    (why, None),
                ]);
            }
            let table = output::fitted(&columns, rows, width);
            out.push_str(&format!("{}\n{table}\n", output::heading("Claims")));
        }
        let predictions: Vec<&PredictionRow> =
            self.predictions.iter().filter(|p| keep(p.mark)).collect();
        if !predictions.is_empty() {
            // One block each, not a table: a question and its why are
            // sentences, which five columns of an 80-column screen crush.
            let width = output::width();
            out.push_str(&format!("{}\n", output::heading("Your predictions")));
            for row in predictions {
                let head = format!("{} {}: {}", row.mark.styled(), row.id, row.question);
                for line in output::wrap(&head, width, "", "  ") {
                    out.push_str(&line);
                    out.push('\n');
                }
                out.push_str(&output::field(
                    "you predicted",
                    row.answer.as_deref().unwrap_or("(not answered yet)"),
                    width,
                ));
                if spoilers.hides(&row.id) && row.mark != Mark::Fail {
                    out.push_str(&output::field(
                        "what happened",
                        "answer it first, or `--reveal`",
                        width,
                    ));
                } else {
                    out.push_str(&output::field(
                        "what happened",
                        &spoilers.redact(&row.actual),
                        width,
                    ));
                    out.push_str(&output::field("why", &spoilers.redact(&row.why), width));
                }
            }
        }
        for problem in &self.problems {
            out.push_str(&output::wrapped(
                &format!("{} {problem}", Mark::Fail.styled()),
                output::width(),
            ));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labs::sheet::marks;

    const SHEET: &str = "> **Go claim** `a`: A holds.\n> **Lab claim** `b`: B holds.\n\
                         > **Predict** `q1`: which? (`x` or `y`)\n> **Predict** `q2`: what?\n";

    fn findings() -> Findings {
        let mut f = Findings::new(7);
        f.claim_eq("a", "1", "1", "because");
        f.claim_eq("b", "2", "2", "because");
        f.observe("q1", "x", "x happened");
        f.observe("q2", "127.0.0.1", "the peer");
        f
    }

    fn answers(pairs: &[(&str, &str)]) -> Answers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn all_claims_hold_and_no_answers_is_pending() {
        let report = Report::build(&marks(SHEET), &findings(), &Answers::new());
        assert_eq!(report.status(), Status::Pending);
        assert_eq!(report.count_claims(Mark::Pass), 2);
        assert_eq!(report.count_predictions(Mark::Pending), 2);
    }

    #[test]
    fn right_answers_pass_whatever_their_case() {
        let report = Report::build(
            &marks(SHEET),
            &findings(),
            &answers(&[("q1", " X "), ("q2", "127.0.0.1")]),
        );
        assert_eq!(report.status(), Status::Pass);
    }

    #[test]
    fn a_wrong_answer_is_the_learners_not_a_failure_with_both_values_in_its_row() {
        let report = Report::build(&marks(SHEET), &findings(), &answers(&[("q1", "y")]));
        // q2 is not answered yet.
        assert_eq!(report.status(), Status::Pending);
        let row = &report.predictions[0];
        assert_eq!(row.mark, Mark::Wrong);
        assert_eq!(row.answer.as_deref(), Some("y"));
        assert_eq!(row.actual, "x");
        let text = report.render(&Spoilers::none());
        assert!(text.contains("✗ wrong"), "{text}");
        assert!(text.contains("x happened"), "{text}");
        let both = Report::build(
            &marks(SHEET),
            &findings(),
            &answers(&[("q1", "y"), ("q2", "127.0.0.1")]),
        );
        assert_eq!(both.status(), Status::Pass);
    }

    #[test]
    fn an_unanswered_question_hides_what_happened_until_revealed() {
        let report = Report::build(&marks(SHEET), &findings(), &answers(&[("q1", "x")]));
        let spoilers = Spoilers::new(SHEET, |q| q == "q2").with_findings(&findings());
        let text = report.render(&spoilers);
        assert!(!text.contains("127.0.0.1"), "{text}");
        assert!(text.contains("answer it first, or `--reveal`"), "{text}");
        assert!(text.contains("x happened"), "{text}");
        assert!(report.render(&Spoilers::none()).contains("127.0.0.1"));
    }

    #[test]
    fn a_lab_claim_not_run_under_impl_go_neither_holds_nor_fails() {
        let mut f = Findings::with_programs(7, false, Some(crate::golang::GoModule::built_in()));
        f.measure_on(Subject::Go);
        f.claim_eq("a", "1", "1", "because");
        f.observe("q1", "x", "x happened");
        f.observe("q2", "127.0.0.1", "the peer");
        let report = Report::build(&marks(SHEET), &f, &Answers::new());
        assert_eq!(report.claims[1].mark, Mark::NotStarted);
        assert_eq!(report.status(), Status::Pending);
        assert_eq!(report.claims_run(), 1);
        assert!(
            report
                .claims_line()
                .starts_with("1/1 claims hold · 1 not run"),
            "{}",
            report.claims_line()
        );
    }

    #[test]
    fn a_claim_the_check_skips_fails() {
        let mut f = findings();
        f.claims.retain(|c| c.id != "b");
        let report = Report::build(&marks(SHEET), &f, &Answers::new());
        assert_eq!(report.status(), Status::Fail);
        assert!(report.claims[1].results().starts_with("not verified"));
    }

    fn go_findings() -> Findings {
        let mut f = Findings::with_programs(7, true, Some(crate::golang::GoModule::built_in()));
        f.claim_eq("a", "502", "502", "Go answers 502");
        f.claim_lab_choice("a", "504", "504", "a timeout is a 504 in lab");
        f.claim_eq("b", "2", "2", "because");
        f.observe("q1", "x", "x happened");
        f.observe("q2", "127.0.0.1", "the peer");
        f
    }

    #[test]
    fn a_difference_lab_chose_holds_and_shows_both_results() {
        let mut f = go_findings();
        f.claims[0].subject = Subject::Go;
        let report = Report::build(&marks(SHEET), &f, &Answers::new());
        assert_eq!(report.claims[0].mark, Mark::Pass, "{:?}", report.claims[0]);
        assert_eq!(
            report.claims[0].results(),
            "Go: ✓ 502 · lab: ≠ 504 (lab's choice)"
        );
        assert_eq!(report.claims[0].why, "Go answers 502");
    }

    #[test]
    fn a_go_claim_not_run_on_go_fails_when_go_ran() {
        let f = go_findings();
        // Every claim above was recorded on lab: nothing on Go.
        let report = Report::build(&marks(SHEET), &f, &Answers::new());
        assert_eq!(report.claims[0].mark, Mark::Fail);
        assert!(
            report.claims[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("did not run against Go"),
            "{:?}",
            report.claims[0]
        );
        // A lab claim needs no Go.
        assert_eq!(report.claims[1].mark, Mark::Pass);
    }

    #[test]
    fn a_lab_difference_that_changed_fails() {
        let mut f = go_findings();
        f.claims[0].subject = Subject::Go;
        f.claims[1].actual = "502".into();
        f.claims[1].passed = false;
        let report = Report::build(&marks(SHEET), &f, &Answers::new());
        assert_eq!(report.claims[0].mark, Mark::Fail);
        assert!(
            report.claims[0]
                .results()
                .contains("lab: ✗ 502, expected 504")
        );
    }

    #[test]
    fn an_untagged_claim_fails_and_says_how_to_tag_it() {
        let sheet = "> **Claim** `a`: A holds.\n";
        let mut f = Findings::new(1);
        f.claim_eq("a", "1", "1", "because");
        let report = Report::build(&marks(sheet), &f, &Answers::new());
        assert_eq!(report.status(), Status::Fail);
        assert!(
            report.claims[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("**Go claim**")
        );
    }

    #[test]
    fn a_claim_the_sheet_does_not_make_is_a_problem() {
        let mut f = findings();
        f.claim_eq("c", "3", "3", "extra");
        let report = Report::build(&marks(SHEET), &f, &Answers::new());
        assert_eq!(report.status(), Status::Fail);
        assert!(report.problems[0].contains("`c`"));
    }

    #[test]
    fn an_unknown_answer_id_is_a_problem() {
        let report = Report::build(&marks(SHEET), &findings(), &answers(&[("q9", "x")]));
        assert_eq!(report.status(), Status::Fail);
        assert!(report.problems[0].contains("q9"), "{:?}", report.problems);
    }
}

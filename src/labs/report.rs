//! Holding a run against its sheet and the learner's answers: one row per
//! claim (expected, actual, why) and one per prediction (your answer, what
//! happened, why), rendered as tables with a one-line verdict.

use comfy_table::Cell;

use super::answers::{Answers, normalize};
use super::findings::Findings;
use super::progress::Status;
use super::sheet::SheetMarks;
use crate::output::{self, Mark};

/// A claim of the sheet and how the run bore it out.
#[derive(Debug, Clone)]
pub struct ClaimRow {
    pub id: String,
    pub expected: String,
    pub actual: String,
    pub mark: Mark,
    pub why: String,
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

        let mut claims = Vec::new();
        for marked in &marks.claims {
            let row = match findings.claims.iter().find(|c| c.id == marked.id) {
                Some(found) => ClaimRow {
                    id: marked.id.clone(),
                    expected: found.expected.clone(),
                    actual: found.actual.clone(),
                    mark: if found.passed { Mark::Pass } else { Mark::Fail },
                    why: found.why.clone(),
                },
                None => ClaimRow {
                    id: marked.id.clone(),
                    expected: "verified by the check".into(),
                    actual: "not verified".into(),
                    mark: Mark::Fail,
                    why: "the experiment stopped before this claim, or its check does not test it"
                        .into(),
                },
            };
            claims.push(row);
        }
        for found in &findings.claims {
            if !marks.claims.iter().any(|m| m.id == found.id) {
                problems.push(format!(
                    "the check verifies claim `{}`, which the sheet does not make (mark it **Claim** `{}` in README.md)",
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
                (Some(_), true) => Mark::Fail,
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

    /// Fail if anything failed, pending if predictions wait for answers, else pass.
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

    pub fn count_claims(&self, mark: Mark) -> usize {
        self.claims.iter().filter(|c| c.mark == mark).count()
    }

    pub fn count_predictions(&self, mark: Mark) -> usize {
        self.predictions.iter().filter(|p| p.mark == mark).count()
    }

    /// The tables and problems, ready to print.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.claims.is_empty() {
            let mut table = output::table(&["result", "claim", "expected", "actual", "why"]);
            for row in &self.claims {
                // The claim's sentence is in the sheet; its id and the "why" suffice here.
                table.add_row(vec![
                    row.mark.cell(),
                    Cell::new(&row.id),
                    Cell::new(&row.expected),
                    Cell::new(&row.actual),
                    Cell::new(&row.why),
                ]);
            }
            out.push_str(&format!("{}\n{table}\n", output::heading("Claims")));
        }
        if !self.predictions.is_empty() {
            let mut table = output::table(&[
                "result",
                "question",
                "you predicted",
                "what happened",
                "why",
            ]);
            for row in &self.predictions {
                table.add_row(vec![
                    row.mark.cell(),
                    Cell::new(format!("{}\n{}", row.id, row.question)),
                    Cell::new(row.answer.as_deref().unwrap_or("(not answered yet)")),
                    Cell::new(&row.actual),
                    Cell::new(&row.why),
                ]);
            }
            out.push_str(&format!(
                "{}\n{table}\n",
                output::heading("Your predictions")
            ));
        }
        for problem in &self.problems {
            out.push_str(&format!("{} {problem}\n", Mark::Fail.styled()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labs::sheet::marks;

    const SHEET: &str = "> **Claim** `a`: A holds.\n> **Claim** `b`: B holds.\n\
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
    fn a_wrong_answer_fails_with_both_values_in_its_row() {
        let report = Report::build(&marks(SHEET), &findings(), &answers(&[("q1", "y")]));
        assert_eq!(report.status(), Status::Fail);
        let row = &report.predictions[0];
        assert_eq!(row.mark, Mark::Fail);
        assert_eq!(row.answer.as_deref(), Some("y"));
        assert_eq!(row.actual, "x");
        let text = report.render();
        assert!(text.contains("✗ fail"), "{text}");
        assert!(text.contains("x happened"), "{text}");
    }

    #[test]
    fn a_claim_the_check_skips_fails() {
        let mut f = findings();
        f.claims.retain(|c| c.id != "b");
        let report = Report::build(&marks(SHEET), &f, &Answers::new());
        assert_eq!(report.status(), Status::Fail);
        assert_eq!(report.claims[1].actual, "not verified");
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

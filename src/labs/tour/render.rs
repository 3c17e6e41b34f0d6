//! How a tour shows things: the sheet's prose as `lab show` renders it, a
//! spinner while the experiment runs, each prediction beside what happened
//! and why, each claim with its verified result, and the closing score.

use std::io::IsTerminal;
use std::time::Duration;

use crate::labs::report::{ClaimRow, PredictionRow, Report};
use crate::labs::sheet::ClaimTag;
use crate::output::{self, Mark};

/// Markdown as `lab show` prints it: rendered in colour, as it is otherwise.
pub(super) fn print_markdown(text: &str) {
    if text.is_empty() {
        return;
    }
    if output::color() {
        termimad::print_text(text);
    } else {
        print!("\n{text}");
    }
}

/// A marked sentence, its inline markdown rendered when colour is on.
pub(super) fn inline(text: &str) -> String {
    if output::color() {
        termimad::inline(text).to_string()
    } else {
        text.to_string()
    }
}

/// A spinner on stdout while the experiment runs; nothing off a terminal,
/// nor with `-v`, when the servers' log lines would cut through it.
pub(super) fn spinner(message: &str, verbose: bool) -> indicatif::ProgressBar {
    if verbose || !std::io::stdout().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// The learner's answer beside what happened and why.
pub(super) fn render_prediction(row: &PredictionRow, observed: bool) -> String {
    let verdict = match row.mark {
        Mark::Pass => "right",
        Mark::Pending => "not answered",
        Mark::Wrong => "wrong: yours to learn from, see why",
        _ if !observed => "not observed: the experiment stopped before it",
        _ => "not observed",
    };
    format!(
        "{} {} · {verdict}\n    you predicted: {}\n    what happened: {}\n    why:           {}\n",
        row.mark.styled(),
        row.id,
        row.answer.as_deref().unwrap_or("(no answer)"),
        row.actual,
        row.why
    )
}

/// A claim of the sheet with its verified result.
pub(super) fn render_claim(row: &ClaimRow, text: &str) -> String {
    let about = row.tag.map_or("untagged", ClaimTag::word);
    let mut out = format!(
        "{} {about} claim {}: {}\n",
        row.mark.styled(),
        row.id,
        inline(text)
    );
    let mut shown = false;
    for (who, outcome) in [("Go", &row.go), ("lab", &row.lab)] {
        let Some(outcome) = outcome else { continue };
        shown = true;
        let label = format!("{who}:");
        if outcome.passed && outcome.lab_choice.is_none() {
            out.push_str(&format!("    {label:<15}✓ {}\n", outcome.actual));
        } else if outcome.passed {
            out.push_str(&format!(
                "    {label:<15}{} (lab's choice: {})\n",
                outcome.actual,
                outcome.lab_choice.as_deref().unwrap_or_default()
            ));
        } else {
            out.push_str(&format!(
                "    {label:<15}✗ {}, expected {}\n",
                outcome.actual, outcome.expected
            ));
        }
    }
    if let Some(problem) = &row.problem {
        out.push_str(&format!("    problem:       {problem}\n"));
    } else if !shown {
        out.push_str("    not measured in this run\n");
    }
    out.push_str(&format!("    why:           {}\n", row.why));
    out
}

/// The line that ends a finished tour: `score: 2 of 3 · …`.
pub(super) fn score_line(report: &Report, seed: u64) -> String {
    format!(
        "score: {} of {} · {} wrong · {} unanswered · claims: {} of {} verified · seed {seed}",
        report.count_predictions(Mark::Pass),
        report.predictions.len(),
        report.count_predictions(Mark::Wrong),
        report.count_predictions(Mark::Pending),
        report.count_claims(Mark::Pass),
        report.claims_run(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_prediction_shows_answer_outcome_and_why() {
        let row = PredictionRow {
            id: "q1".into(),
            question: "which?".into(),
            answer: Some("y".into()),
            actual: "x".into(),
            mark: Mark::Wrong,
            why: "because".into(),
        };
        let text = render_prediction(&row, true);
        assert!(text.starts_with("✗ wrong q1 · wrong"), "{text}");
        assert!(text.contains("you predicted: y\n"), "{text}");
        assert!(text.contains("what happened: x\n"), "{text}");
        assert!(text.contains("why:           because\n"), "{text}");
    }
}

//! How a tour shows things: the sheet's prose as `lab show` renders it, a
//! spinner while the experiment runs, each prediction beside what happened
//! and why, each claim with its verified result, and the closing score.

use std::io::IsTerminal;
use std::time::Duration;

use crate::labs::report::{ClaimRow, PredictionRow, Report};
use crate::labs::sheet::ClaimTag;
use crate::markdown;
use crate::output::{self, Mark};

/// Markdown as `lab show` prints it: rendered in colour, as it is otherwise.
pub(super) fn print_markdown(text: &str) {
    if text.is_empty() {
        return;
    }
    print!(
        "\n{}",
        markdown::render(text, output::width(), output::color())
    );
}

/// A marked sentence, its inline markdown rendered when colour is on.
pub(super) fn inline(text: &str) -> String {
    markdown::inline(text, output::color())
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
    let width = output::width();
    let head = format!("{} {} · {verdict}", row.mark.styled(), row.id);
    let mut out = output::wrap(&head, width, "", "  ").join("\n");
    out.push('\n');
    out.push_str(&output::field(
        "you predicted",
        row.answer.as_deref().unwrap_or("(no answer)"),
        width,
    ));
    out.push_str(&output::field("what happened", &row.actual, width));
    out.push_str(&output::field("why", &row.why, width));
    out
}

/// A claim of the sheet with its verified result.
pub(super) fn render_claim(row: &ClaimRow, text: &str) -> String {
    let about = row.tag.map_or("untagged", ClaimTag::word);
    let width = output::width();
    let head = format!(
        "{} {about} claim {}: {}",
        row.mark.styled(),
        row.id,
        inline(text)
    );
    let mut out = output::wrap(&head, width, "", "  ").join("\n");
    out.push('\n');
    let mut shown = false;
    for (who, outcome) in [("Go", &row.go), ("lab", &row.lab)] {
        let Some(outcome) = outcome else { continue };
        shown = true;
        let value = if outcome.passed && outcome.lab_choice.is_none() {
            format!("✓ {}", outcome.actual)
        } else if outcome.passed {
            format!(
                "{} (lab's choice: {})",
                outcome.actual,
                outcome.lab_choice.as_deref().unwrap_or_default()
            )
        } else {
            format!("✗ {}, expected {}", outcome.actual, outcome.expected)
        };
        out.push_str(&output::field(who, &value, width));
    }
    if let Some(problem) = &row.problem {
        out.push_str(&output::field("problem", problem, width));
    } else if !shown {
        out.push_str("    not measured in this run\n");
    }
    out.push_str(&output::field("why", &row.why, width));
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

//! `lab labs`, `lab show`, `lab hint` and `lab check`: the learner's side of
//! the labs (`lab tour` is in [`super::tour`] and shares what is here).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use comfy_table::Cell;

use super::checks::Scenario;
use super::findings::{Findings, Implementations};
use super::progress::{Progress, Status};
use super::report::Report;
use super::spoilers::Spoilers;
use super::{Catalogue, GENERAL_HINTS, Hint, Lab, answers, checks, resolve_dir, sheet};
use crate::cli::{CheckArgs, GlobalArgs};
use crate::golang::GoModule;
use crate::golang::toolchain::Toolchain;
use crate::markdown;
use crate::output::{self, Mark};

/// A scenario that runs longer than this is stopped and fails its lab.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn catalogue(global: &GlobalArgs) -> anyhow::Result<Catalogue> {
    let dir = resolve_dir(global.labs_dir.as_deref())?;
    Catalogue::load(&dir)
}

/// `lab labs`: every lab with its article section and the learner's status.
pub fn list(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue(global)?;
    let progress = Progress::load(&catalogue.dir);
    let mut table = output::table(&["#", "lab", "article section", "status", "hints", "tour"]);
    for lab in &catalogue.labs {
        let mine = progress.lab(&lab.slug);
        let mark = mine.last_check.map_or(Mark::NotStarted, Status::mark);
        table.add_row(vec![
            Cell::new(lab.id()),
            Cell::new(&lab.meta.title),
            Cell::new(&lab.meta.article_section),
            mark.cell(),
            Cell::new(format!("{}/{}", mine.hints_shown, lab.hints().len())),
            // The last finished tour's score: right predictions of the questions.
            Cell::new(
                mine.last_tour
                    .map_or(String::new(), |t| format!("{}/{}", t.right, t.questions)),
            ),
        ]);
    }
    println!("{table}");
    let legend = "Read one with `lab show N`, check it with `lab check N`, or walk through \
         it with `lab tour N`.\n\n\
         ✓ pass: every claim held, every question answered · • pending: questions to \
         answer · ✗ fail: a claim did not hold or the lab has a problem (`lab check \
         --help`). A wrong prediction is no failure: tour is the right predictions of \
         the last tour.\n";
    print!(
        "{}",
        markdown::render(legend, output::width(), output::color())
    );
    if let Ok(exercises) = crate::exercises::Exercises::load(&catalogue.dir)
        && !exercises.list.is_empty()
    {
        let passed = exercises
            .list
            .iter()
            .filter(|e| progress.exercises.get(&e.slug).is_some_and(|p| p.passed))
            .count();
        output::say(&format!(
            "\nExercises (write the article's code yourself): {passed} of {} passed · \
             `lab exercise list`",
            exercises.list.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab show N`: the sheet, rendered for the terminal when colour is on,
/// each claim next to a question the learner has not answered folded
/// (unless `reveal`): the claim often states the answer.
pub fn show(
    global: &GlobalArgs,
    spec: &str,
    reveal: bool,
    paging: bool,
) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue(global)?;
    let lab = catalogue.find(spec)?;
    let answered = answers::load(&lab.answers_path()).unwrap_or_default();
    let spoilers = if reveal {
        Spoilers::none()
    } else {
        Spoilers::new(&lab.sheet, |q| !answered.contains_key(q))
    };
    let mut folded = 0;
    let sheet = sheet::fold_claims(&lab.sheet, |claim| {
        let questions = spoilers.folds(claim)?;
        folded += 1;
        Some(format!(
            "*(folded: it answers {}; predict first)*",
            questions
                .iter()
                .map(|q| format!("`{q}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    });
    // The sheet opens with its own title and names its article section.
    let width = output::width();
    let mut text = markdown::render(&sheet, width, output::color());
    let answers = display_path(&lab.answers_path());
    let n = lab.number;
    let mut footer = String::new();
    if folded > 0 {
        footer.push_str(&format!(
            "{folded} claim(s) folded until you answer their question in {answers}: \
             `lab show {n} --reveal` shows them.\n\n"
        ));
    }
    footer.push_str(&format!(
        "Predictions go in {answers}; then run `lab check {n}`. Stuck? `lab hint {n}`."
    ));
    text.push('\n');
    text.push_str(&markdown::render(&footer, width, output::color()));
    text.push('\n');
    output::page(&text, paging);
    Ok(ExitCode::SUCCESS)
}

/// `lab hint N [QUESTION]`: one more hint each call, naming the question it
/// is for: the next of QUESTION's (then of the lab's general ones), or
/// without QUESTION the next in the lab's order. `lab tour`'s `?` is this
/// with the question asked.
pub fn hint(
    global: &GlobalArgs,
    spec: &str,
    question: Option<&str>,
    reset: bool,
) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue(global)?;
    let lab = catalogue.find(spec)?;
    let hints = lab.hints();
    let questions = sheet::marks(&lab.sheet).predictions;
    if let Some(q) = question
        && q != GENERAL_HINTS
        && !questions.iter().any(|m| m.id == q)
    {
        anyhow::bail!(
            "lab {} asks no question `{q}`; its questions: {}",
            lab.id(),
            questions
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut progress = Progress::load(&catalogue.dir);
    let mine = progress.lab_mut(&lab.slug);
    let unseen = |h: &&Hint<'_>| h.nth >= mine.hints_seen.get(h.key).copied().unwrap_or(0);
    let next = match question {
        _ if reset => None,
        Some(q) => hints
            .iter()
            .filter(unseen)
            .find(|h| h.key == q)
            .or_else(|| hints.iter().filter(unseen).find(|h| h.key == GENERAL_HINTS)),
        None => hints.iter().find(unseen),
    }
    .copied();
    if reset {
        mine.hints_seen.clear();
        println!("The hints of lab {} start over.", lab.id());
    } else if let Some(hint) = next {
        let shown: usize = mine.hints_seen.values().sum();
        let about = match hint.key {
            GENERAL_HINTS => "the whole lab".to_string(),
            key => format!("`{key}`"),
        };
        let since = match question {
            Some(q) if q != hint.key => format!(" (`{q}` has no more hints of its own)"),
            _ => String::new(),
        };
        output::say(&format!(
            "{} for {about}{since}: {}",
            output::heading(&format!("Hint {}/{}", shown + 1, hints.len())),
            hint.text
        ));
        *mine.hints_seen.entry(hint.key.to_string()).or_default() = hint.nth + 1;
    } else if hints.is_empty() {
        println!("Lab {} has no hints.", lab.id());
    } else if let Some(q) = question
        && !hints.iter().any(|h| h.key == q)
    {
        let general = if hints.iter().any(|h| h.key == GENERAL_HINTS) {
            format!(
                ", and the lab's general ones are all shown (`lab hint {} --reset` shows them \
                 again)",
                lab.number
            )
        } else {
            format!(
                "; `lab hint {}` gives the next hint of the others",
                lab.number
            )
        };
        output::say(&format!("`{q}` has no hints of its own{general}."));
    } else {
        let whose = question.map_or(format!("lab {}", lab.id()), |q| format!("`{q}`"));
        output::say(&format!(
            "No more hints for {whose}: all shown. `lab hint {} --reset` shows them again.",
            lab.number
        ));
    }
    mine.hints_shown = mine.hints_seen.values().sum();
    progress.save()?;
    Ok(ExitCode::SUCCESS)
}

/// `lab check N` / `lab check --all`: run, compare, print, record.
///
/// One lab: its steps and tables. Every lab: one line per lab as it
/// finishes, the tables of what failed under it. Either way, what happened
/// for a question not answered yet stays hidden unless `--reveal`
/// ([`Spoilers`]), and the exit status is 1 only when a lab failed (see
/// [`Status`]).
pub async fn check(global: &GlobalArgs, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue(global)?;
    let one = args.lab.as_deref().filter(|_| !args.all);
    let labs: Vec<&Lab> = match one {
        Some(spec) => vec![catalogue.find(spec)?],
        None => catalogue.labs.iter().collect(),
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let programs = Programs::choose(&catalogue.dir, args.implementation)?;
    if let Some(note) = &programs.note {
        output::say(&format!("{note}\n"));
    }
    if one.is_none() {
        // Short: a seed is up to 20 digits, and the screen may be 80 wide.
        println!(
            "Checking {} labs, seed {seed} (--seed repeats it)",
            labs.len()
        );
    }
    let mut progress = Progress::load(&catalogue.dir);

    let mut tally = Tally::default();
    let width = labs.len().to_string().len();
    for (i, lab) in labs.iter().enumerate() {
        let answers_path = args.answers.clone().unwrap_or_else(|| lab.answers_path());
        if one.is_some() {
            println!(
                "{}",
                output::heading(&format!("Lab {} · {}", lab.id(), lab.meta.title))
            );
            output::say(&format!(
                "article: {} · seed {seed} (rerun with `--seed {seed}`)",
                lab.meta.article_section
            ));
        }
        let checked = check_one(lab, seed, &programs, &answers_path).await;
        let report = &checked.report;
        let spoilers = if args.reveal {
            Spoilers::none()
        } else {
            Spoilers::new(&lab.sheet, |q| !checked.answers.contains_key(q))
                .with_findings(&checked.findings)
        };
        let status = report.status();
        progress.lab_mut(&lab.slug).last_check = Some(status);
        if one.is_some() {
            print_steps(&checked.findings, &spoilers);
            print!("{}", report.render(&spoilers));
            output::say(&format!(
                "lab {}: {} · {}\n",
                lab.id(),
                status.mark().styled(),
                lab_summary(report, &answers_path)
            ));
        } else {
            output::say(&format!(
                "[{:>width$}/{}] {} {} {} · {}",
                i + 1,
                labs.len(),
                lab.id(),
                lab.slug,
                status.mark().styled(),
                lab_line(report)
            ));
            if status == Status::Fail {
                print!("{}", indent(&report.render_failures(&spoilers)));
            }
        }
        tally.add(status, report);
    }
    progress
        .save()
        .context("cannot record your progress (the check results above stand)")?;

    println!("{}", tally.line(seed));
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the experiment did; hidden while a question is, since the steps
/// show what happened.
fn print_steps(findings: &Findings, spoilers: &Spoilers) {
    if spoilers.any() && !findings.steps.is_empty() {
        output::say(&format!(
            "  → {} step(s) of the experiment, hidden until your predictions are in (they show \
             what happened): answer first, or `--reveal`",
            findings.steps.len()
        ));
        return;
    }
    for step in &findings.steps {
        output::say(&format!("  → {step}"));
    }
}

/// Every line of `text` two spaces in.
fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// One lab's check: the report, and what it was made of.
struct Checked {
    report: Report,
    findings: Findings,
    answers: answers::Answers,
}

/// Runs one lab's scenario and builds its report; a scenario error becomes a
/// problem in the report rather than an early exit, so `--all` checks every lab.
async fn check_one(lab: &Lab, seed: u64, programs: &Programs, answers_path: &Path) -> Checked {
    let marks = sheet::marks(&lab.sheet);
    let mut findings = programs.findings(lab, seed);
    let mut problems = Vec::new();
    match checks::scenario(&lab.slug) {
        Some(scenario) => problems.extend(run_scenario(scenario, &mut findings).await),
        None => problems.push(no_scenario(&lab.slug)),
    }

    let answers = match answers::load(answers_path) {
        Ok(answers) => answers,
        Err(err) => {
            problems.push(format!("{err:#}"));
            answers::Answers::new()
        }
    };
    let mut report = Report::build(&marks, &findings, &answers);
    report.problems.extend(problems);
    Checked {
        report,
        findings,
        answers,
    }
}

/// The programs a check runs: `lab`'s, the Go module's, or both (`--impl`).
#[derive(Debug, Clone)]
pub(super) struct Programs {
    lab: bool,
    go: Option<GoModule>,
    /// What the learner should know about the choice (Go missing).
    pub(super) note: Option<String>,
}

impl Programs {
    /// `--impl` as asked; without it, both when Go is installed. Go asked
    /// for and missing is an error; missing when not asked for is a note,
    /// unless `LAB_REQUIRE_GO=1` (CI) makes it an error too.
    pub(super) fn choose(
        labs_dir: &Path,
        asked: Option<Implementations>,
    ) -> anyhow::Result<Programs> {
        let module = GoModule::in_labs(labs_dir);
        let go = Toolchain::find();
        let required = std::env::var("LAB_REQUIRE_GO").is_ok_and(|v| v == "1");
        match (asked, go) {
            (Some(Implementations::Lab), _) => Ok(Programs {
                lab: true,
                go: None,
                note: None,
            }),
            (Some(Implementations::Go), Ok(_)) => Ok(Programs {
                lab: false,
                go: Some(module),
                note: None,
            }),
            (Some(Implementations::Both) | None, Ok(_)) => Ok(Programs {
                lab: true,
                go: Some(module),
                note: None,
            }),
            (Some(_), Err(err)) => Err(err.context("`--impl go` and `--impl both` need Go")),
            (None, Err(err)) if required => {
                Err(err.context("LAB_REQUIRE_GO=1: the Go side of the checks must run"))
            }
            (None, Err(err)) => Ok(Programs {
                lab: true,
                go: None,
                note: Some(format!(
                    "Checking lab's programs only. {err:#}. Claims about Go are then shown \
                     on lab alone."
                )),
            }),
        }
    }

    /// `lab`'s programs only.
    pub(super) fn lab_only() -> Programs {
        Programs {
            lab: true,
            go: None,
            note: None,
        }
    }

    /// The findings of one run of `lab`'s experiment: Go runs only for a
    /// lab with Go programs (`go = [...]` in its lab.toml).
    pub(super) fn findings(&self, lab: &Lab, seed: u64) -> Findings {
        let go = self.go.clone().filter(|_| !lab.meta.go.is_empty());
        Findings::with_programs(seed, self.lab || go.is_none(), go)
    }
}

/// Runs a lab's scenario, stopped after [`SCENARIO_TIMEOUT`]: what kept it
/// from finishing, as a problem of the lab's report (`lab check` and `lab
/// tour` say the same).
pub(super) async fn run_scenario(scenario: Scenario, findings: &mut Findings) -> Option<String> {
    match tokio::time::timeout(SCENARIO_TIMEOUT, scenario(findings)).await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(format!("the experiment failed: {err:#}")),
        Err(_) => Some(format!(
            "the experiment did not finish within {SCENARIO_TIMEOUT:?}"
        )),
    }
}

/// The problem of a lab that has no scenario in [`checks`].
pub(super) fn no_scenario(slug: &str) -> String {
    format!("no check is registered for lab `{slug}`: add one in src/labs/checks/")
}

fn lab_summary(report: &Report, answers_path: &Path) -> String {
    let mut text = report.claims_line();
    if let Some(predictions) = report.predictions_line() {
        text.push_str(&format!(" · {predictions}"));
        if report.count_predictions(Mark::Pending) > 0 {
            text.push_str(&format!(" (fill in {})", display_path(answers_path)));
        }
    }
    if !report.problems.is_empty() {
        text.push_str(&format!(" · {} problem(s) above", report.problems.len()));
    }
    text
}

/// The short form for `lab check --all`: `9/9 claims · 2 right, 3 to answer`.
fn lab_line(report: &Report) -> String {
    let mut parts = vec![format!(
        "{}/{} claims",
        report.count_claims(Mark::Pass),
        report.claims_run()
    )];
    let not_run = report.count_claims(Mark::NotStarted);
    if not_run > 0 {
        parts.push(format!("{not_run} not run"));
    }
    let predictions: Vec<String> = [
        (Mark::Pass, "right"),
        (Mark::Wrong, "wrong"),
        (Mark::Pending, "to answer"),
    ]
    .into_iter()
    .map(|(mark, word)| (report.count_predictions(mark), word))
    .filter(|(n, _)| *n > 0)
    .map(|(n, word)| format!("{n} {word}"))
    .collect();
    if !predictions.is_empty() {
        parts.push(predictions.join(", "));
    }
    if !report.problems.is_empty() {
        parts.push(format!("{} problem(s)", report.problems.len()));
    }
    parts.join(" · ")
}

/// Totals over the labs of one `lab check` run.
#[derive(Debug, Default)]
struct Tally {
    labs: usize,
    passed: usize,
    pending: usize,
    failed: usize,
    claims_held: usize,
    claims_failed: usize,
    claims_not_run: usize,
    right: usize,
    wrong: usize,
    unanswered: usize,
}

impl Tally {
    fn add(&mut self, status: Status, report: &Report) {
        self.labs += 1;
        match status {
            Status::Pass => self.passed += 1,
            Status::Pending => self.pending += 1,
            Status::Fail => self.failed += 1,
        }
        self.claims_held += report.count_claims(Mark::Pass);
        self.claims_failed += report.count_claims(Mark::Fail);
        self.claims_not_run += report.count_claims(Mark::NotStarted);
        self.right += report.count_predictions(Mark::Pass);
        self.wrong += report.count_predictions(Mark::Wrong);
        self.unanswered += report.count_predictions(Mark::Pending);
    }

    /// The summary that ends every `lab check`, its last line led by the worst
    /// status of its labs (so never `✓ pass` over labs still pending).
    fn line(&self, seed: u64) -> String {
        let verdict = if self.failed > 0 {
            Status::Fail
        } else if self.pending > 0 {
            Status::Pending
        } else {
            Status::Pass
        };
        let not_run = if self.claims_not_run > 0 {
            format!(", {} not run", self.claims_not_run)
        } else {
            String::new()
        };
        // Two lines, each short enough for an 80-column terminal.
        format!(
            "claims: {} hold, {} failed{not_run} · predictions: {} right, {} wrong, {} unanswered\n\
             {} {} lab(s): {} pass, {} pending, {} fail · seed {seed}",
            self.claims_held,
            self.claims_failed,
            self.right,
            self.wrong,
            self.unanswered,
            verdict.mark().styled(),
            self.labs,
            self.passed,
            self.pending,
            self.failed,
        )
    }
}

pub(super) use crate::output::display_path;

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
use super::{Catalogue, Lab, answers, checks, resolve_dir, sheet};
use crate::cli::{CheckArgs, GlobalArgs};
use crate::golang::GoModule;
use crate::golang::toolchain::Toolchain;
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
            Cell::new(format!("{}/{}", mine.hints_shown, lab.meta.hints.len())),
            // The last finished tour's score: right predictions of the questions.
            Cell::new(
                mine.last_tour
                    .map_or(String::new(), |t| format!("{}/{}", t.right, t.questions)),
            ),
        ]);
    }
    println!("{table}");
    println!(
        "Read one with `lab show N`, check it with `lab check N`, or walk through it with `lab tour N` \
         (✓ pass, • predictions pending, ✗ fail; tour: right predictions of the last tour)."
    );
    Ok(ExitCode::SUCCESS)
}

/// `lab show N`: the sheet, rendered for the terminal when colour is on.
pub fn show(global: &GlobalArgs, spec: &str) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue(global)?;
    let lab = catalogue.find(spec)?;
    // The sheet opens with its own title and names its article section.
    if output::color() {
        termimad::print_text(&lab.sheet);
    } else {
        // Plain markdown reads well as it is, in a pipe or a file.
        print!("{}", lab.sheet);
    }
    println!(
        "\nPredictions go in {}; then run `lab check {}`. Stuck? `lab hint {}`.",
        display_path(&lab.answers_path()),
        lab.number,
        lab.number
    );
    Ok(ExitCode::SUCCESS)
}

/// `lab hint N`: one more hint each call.
pub fn hint(global: &GlobalArgs, spec: &str, reset: bool) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue(global)?;
    let lab = catalogue.find(spec)?;
    let mut progress = Progress::load(&catalogue.dir);
    let total = lab.meta.hints.len();
    let shown = &mut progress.lab_mut(&lab.slug).hints_shown;
    if reset {
        *shown = 0;
        println!("The hints of lab {} start over.", lab.id());
    } else if total == 0 {
        println!("Lab {} has no hints.", lab.id());
    } else if *shown >= total {
        println!(
            "No more hints for lab {}: all {total} shown. `lab hint {} --reset` shows them again.",
            lab.id(),
            lab.number
        );
    } else {
        println!(
            "{} {}",
            output::heading(&format!("Hint {}/{total}:", *shown + 1)),
            lab.meta.hints[*shown]
        );
        *shown += 1;
    }
    progress.save()?;
    Ok(ExitCode::SUCCESS)
}

/// `lab check N` / `lab check --all`: run, compare, print, record.
pub async fn check(global: &GlobalArgs, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue(global)?;
    let labs: Vec<&Lab> = match &args.lab {
        Some(spec) if !args.all => vec![catalogue.find(spec)?],
        _ => catalogue.labs.iter().collect(),
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let programs = Programs::choose(&catalogue.dir, args.implementation)?;
    if let Some(note) = &programs.note {
        println!("{note}\n");
    }
    let mut progress = Progress::load(&catalogue.dir);

    let mut tally = Tally::default();
    for lab in labs {
        let answers_path = args.answers.clone().unwrap_or_else(|| lab.answers_path());
        let report = check_one(lab, seed, &programs, &answers_path).await;
        let status = report.status();
        progress.lab_mut(&lab.slug).last_check = Some(status);
        println!(
            "lab {}: {} · {}\n",
            lab.id(),
            status.mark().styled(),
            lab_summary(&report, &answers_path)
        );
        tally.add(status, &report);
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

/// Runs one lab's scenario and builds its report; a scenario error becomes a
/// problem in the report rather than an early exit, so `--all` checks every lab.
async fn check_one(lab: &Lab, seed: u64, programs: &Programs, answers_path: &Path) -> Report {
    println!(
        "{}",
        output::heading(&format!("Lab {} · {}", lab.id(), lab.meta.title))
    );
    println!(
        "article: {} · seed {seed} (rerun with --seed {seed})",
        lab.meta.article_section
    );

    let marks = sheet::marks(&lab.sheet);
    let mut findings = programs.findings(lab, seed);
    let mut problems = Vec::new();
    match checks::scenario(&lab.slug) {
        Some(scenario) => problems.extend(run_scenario(scenario, &mut findings).await),
        None => problems.push(no_scenario(&lab.slug)),
    }
    for step in &findings.steps {
        println!("  → {step}");
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
    print!("{}", report.render());
    report
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
    let mut text = format!(
        "{}/{} claims hold",
        report.count_claims(Mark::Pass),
        report.claims.len()
    );
    if !report.predictions.is_empty() {
        text.push_str(&format!(
            "; predictions: {} right, {} wrong, {} unanswered",
            report.count_predictions(Mark::Pass),
            report.count_predictions(Mark::Fail),
            report.count_predictions(Mark::Pending)
        ));
        if report.count_predictions(Mark::Pending) > 0 {
            text.push_str(&format!(" (fill in {})", display_path(answers_path)));
        }
    }
    if !report.problems.is_empty() {
        text.push_str(&format!("; {} problem(s) above", report.problems.len()));
    }
    text
}

/// Totals over the labs of one `lab check` run.
#[derive(Debug, Default)]
struct Tally {
    labs: usize,
    passed: usize,
    pending: usize,
    failed: usize,
    claims: usize,
    claims_failed: usize,
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
        self.claims += report.claims.len();
        self.claims_failed += report.count_claims(Mark::Fail);
        self.right += report.count_predictions(Mark::Pass);
        self.wrong += report.count_predictions(Mark::Fail);
        self.unanswered += report.count_predictions(Mark::Pending);
    }

    /// The one-line summary that ends every `lab check`.
    fn line(&self, seed: u64) -> String {
        let verdict = if self.failed > 0 {
            Mark::Fail
        } else {
            Mark::Pass
        };
        format!(
            "{} {} lab(s): {} passed, {} pending, {} failed · claims: {} verified, {} failed · \
             predictions: {} right, {} wrong, {} unanswered · seed {seed}",
            verdict.styled(),
            self.labs,
            self.passed,
            self.pending,
            self.failed,
            self.claims - self.claims_failed,
            self.claims_failed,
            self.right,
            self.wrong,
            self.unanswered,
        )
    }
}

/// A path relative to the current directory when it is under it.
pub(super) fn display_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

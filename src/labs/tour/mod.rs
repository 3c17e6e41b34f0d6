//! `lab tour N`: one lab, step by step in the terminal.
//!
//! The tour reads the sheet section by section (rendered as `lab show`
//! renders it) and stops at each `**Predict**` question to ask for the
//! learner's prediction. The lab's experiment (its scenario in
//! [`super::checks`], the one `lab check` runs) runs once on real sockets, as
//! soon as the first result is to be shown: usually right after the first
//! prediction. Then each prediction is revealed beside what happened and why,
//! and each claim with its verified result. A claim that stands before a
//! question of its section is held back until that question is answered, so
//! the sheet never gives an answer away before it is asked for.
//!
//! A reveal has the answers of the questions still to come cut out
//! ([`Spoilers::redact`]).
//!
//! The answers come from the terminal (prompts, `?` for the question's next
//! hint, `skip`, `q` to stop), from
//! a pipe (one per line, in question order) or from `--answers FILE`. They are
//! compared as `lab check` compares them ([`Report`]), and a finished tour is
//! recorded as `lab check` records its result, so `lab labs` shows it.
//!
//! The walk is here; where the answers come from is in `input.rs`, how each
//! thing is shown in `render.rs`. The sheet's sections come from
//! [`super::sheet`], and answers typed or piped are saved with
//! [`super::answers::save`].

mod input;
mod render;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::answers::{self, Answers, normalize};
use super::commands::{self, display_path};
use super::findings::Findings;
use super::progress::{Progress, Status, TourScore};
use super::report::{ClaimRow, Report};
use super::sheet::{self, Block, Marked, Section, SheetMarks, sections, tidy};
use super::spoilers::Spoilers;
use super::{Lab, checks};
use crate::cli::{GlobalArgs, TourArgs};
use crate::output::{self, Mark};
use input::{Input, Read, read, stop_on_ctrl_c};
use render::{inline, print_markdown, render_claim, render_prediction, score_line, spinner};

/// `lab tour N`.
pub async fn run(global: &GlobalArgs, args: &TourArgs) -> anyhow::Result<ExitCode> {
    let catalogue = commands::catalogue(global)?;
    let lab = catalogue.find(&args.lab)?;
    let input = Input::choose(args.answers.as_deref())?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let programs = commands::Programs::choose(&catalogue.dir, None)?;
    if let Some(note) = &programs.note {
        output::say(note);
    }
    let mut tour = Tour::new(global, &catalogue.dir, lab, seed, input, stop_on_ctrl_c());
    tour.programs = programs;
    tour.walk().await?;
    tour.finish().await
}

/// Why a tour ended before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D, or `q` between sections.
    Quit,
}

// ---------------------------------------------------------------------------
// The tour.

/// One run of the lab's scenario.
struct Ran {
    findings: Findings,
    /// The scenario's error or time-out, if it did not finish.
    failure: Option<String>,
}

struct Tour<'a> {
    global: &'a GlobalArgs,
    /// The labs directory, where the progress file is.
    labs_dir: &'a Path,
    lab: &'a Lab,
    marks: SheetMarks,
    seed: u64,
    /// `lab`'s programs and, when Go is installed, the Go programs too.
    programs: commands::Programs,
    input: Input,
    stop: CancellationToken,
    /// The answers given so far (questions of this lab only).
    answers: Answers,
    /// The questions asked so far, in order.
    asked: Vec<String>,
    revealed_claims: HashSet<String>,
    ran: Option<Ran>,
    stopped: Option<Stop>,
}

impl<'a> Tour<'a> {
    fn new(
        global: &'a GlobalArgs,
        labs_dir: &'a Path,
        lab: &'a Lab,
        seed: u64,
        input: Input,
        stop: CancellationToken,
    ) -> Tour<'a> {
        Tour {
            global,
            labs_dir,
            lab,
            marks: sheet::marks(&lab.sheet),
            seed,
            programs: commands::Programs::lab_only(),
            input,
            stop,
            answers: Answers::new(),
            asked: Vec::new(),
            revealed_claims: HashSet::new(),
            ran: None,
            stopped: None,
        }
    }

    /// Every section in order: prose, questions, reveals.
    async fn walk(&mut self) -> anyhow::Result<()> {
        let sections: Vec<Section> = sections(&self.lab.sheet)
            .into_iter()
            .filter(|s| !s.is_check_yourself())
            .collect();
        for (i, section) in sections.iter().enumerate() {
            if i == 1 {
                self.introduce();
            }
            if i > 0 && self.input.is_terminal() {
                self.pause(section.heading.as_deref().unwrap_or("")).await;
            }
            if self.stopped.is_some() {
                return Ok(());
            }
            self.section(section).await?;
            if self.stopped.is_some() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// After the title: how the tour goes, said once.
    fn introduce(&self) {
        let questions: Vec<&str> = self
            .marks
            .predictions
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        let how = match &self.input {
            Input::Terminal(_) => {
                "At each question type your prediction and Enter; `?` shows a hint, `skip` leaves \
                 one unanswered, `q`, Ctrl-D or Ctrl-C ends the tour."
                    .to_string()
            }
            Input::Piped(_) => format!(
                "Your answers are read from stdin, one a line in question order ({}); a missing \
                 line leaves a question unanswered.",
                questions.join(", ")
            ),
            Input::File { path, .. } => {
                format!("Your answers are read from {}.", display_path(path))
            }
        };
        output::say(&format!(
            "\n{} {} question(s), {} claim(s) checked on real sockets (seed {}). {how}",
            output::heading("Tour:"),
            self.marks.predictions.len(),
            self.marks.claims.len(),
            self.seed,
        ));
        if let Input::File { path, answers } = &self.input {
            for id in answers.keys() {
                if !questions.contains(&id.as_str()) {
                    output::say(&format!(
                        "{} {} has `{id}`, which is not a question of this lab (the questions: {}); it is left out",
                        Mark::Pending.styled(),
                        display_path(path),
                        questions.join(", ")
                    ));
                }
            }
        }
    }

    /// Between sections in a terminal: Enter goes on, `q` stops.
    async fn pause(&mut self, next: &str) {
        let Input::Terminal(lines) = &mut self.input else {
            return;
        };
        print!("\n── Enter: next, {next} · q: stop ── ");
        let _ = std::io::stdout().flush();
        match read(lines, &self.stop).await {
            Read::Line(line) if matches!(line.trim(), "q" | "quit") => {
                self.stopped = Some(Stop::Quit);
            }
            Read::Line(_) => println!(),
            Read::Eof => {
                println!();
                self.stopped = Some(Stop::Quit);
            }
            Read::Interrupted => {
                println!();
                self.stopped = Some(Stop::Interrupted);
            }
        }
    }

    async fn section(&mut self, section: &Section) -> anyhow::Result<()> {
        let mut prose: Vec<String> = Vec::new();
        let mut held: Vec<&Marked> = Vec::new();
        for (i, block) in section.blocks.iter().enumerate() {
            match block {
                Block::Text(line) => prose.push(line.clone()),
                Block::Claim(claim) => {
                    // Before the first question, a claim waits for the next
                    // question of its section: the experiment runs after a
                    // prediction, not before. Once it ran, claims show where
                    // the sheet makes them.
                    let question_follows = section.blocks[i + 1..]
                        .iter()
                        .any(|b| matches!(b, Block::Predict(_)));
                    if self.ran.is_none() && question_follows {
                        held.push(claim);
                    } else {
                        print_markdown(&tidy(&prose));
                        prose.clear();
                        self.reveal_claim(claim).await;
                    }
                }
                Block::Predict(question) => {
                    print_markdown(&tidy(&prose));
                    prose.clear();
                    self.ask(question).await?;
                    if self.stopped.is_some() {
                        return Ok(());
                    }
                    self.reveal_prediction(question).await;
                    for claim in held.drain(..) {
                        self.reveal_claim(claim).await;
                    }
                }
            }
            if self.stopped.is_some() {
                return Ok(());
            }
        }
        print_markdown(&tidy(&prose));
        Ok(())
    }

    /// Asks one question (or reads its answer) and keeps the answer.
    async fn ask(&mut self, question: &Marked) -> anyhow::Result<()> {
        output::say(&format!(
            "\n{} `{}`: {}",
            output::heading("Predict"),
            question.id,
            inline(&question.text)
        ));
        let answer = match &mut self.input {
            Input::File { answers, .. } => answers.get(&question.id).cloned(),
            Input::Piped(lines) => match read(lines, &self.stop).await {
                Read::Line(line) if line.trim() != "skip" => Some(line),
                Read::Line(_) | Read::Eof => None,
                Read::Interrupted => {
                    self.stopped = Some(Stop::Interrupted);
                    return Ok(());
                }
            },
            Input::Terminal(_) => match self.prompt(&question.id).await? {
                Ok(answer) => answer,
                Err(stop) => {
                    self.stopped = Some(stop);
                    return Ok(());
                }
            },
        };
        let answer = answer.filter(|a| !normalize(a).is_empty());
        if let Some(answer) = answer {
            self.answers.insert(question.id.clone(), answer);
        }
        self.asked.push(question.id.clone());
        Ok(())
    }

    /// `your prediction (id): ` until an answer, `skip`, or the end.
    async fn prompt(&mut self, id: &str) -> anyhow::Result<Result<Option<String>, Stop>> {
        loop {
            print!("your prediction ({id}): ");
            let _ = std::io::stdout().flush();
            let Input::Terminal(lines) = &mut self.input else {
                return Ok(Ok(None));
            };
            let line = match read(lines, &self.stop).await {
                Read::Line(line) => line,
                Read::Eof => {
                    println!();
                    return Ok(Err(Stop::Quit));
                }
                Read::Interrupted => {
                    println!();
                    return Ok(Err(Stop::Interrupted));
                }
            };
            match line.trim() {
                "" => output::say(
                    "(type your prediction; `?` for a hint, `skip` to leave it, `q` to stop)",
                ),
                "?" | "hint" => {
                    // `lab hint N QUESTION`: this question's next hint, counted.
                    commands::hint(self.global, &self.lab.slug, Some(id), false)?;
                }
                "skip" => return Ok(Ok(None)),
                // `q` is no prediction of any question: it stops, as between sections.
                "q" | "quit" => return Ok(Err(Stop::Quit)),
                _ => return Ok(Ok(Some(line))),
            }
        }
    }

    /// Runs the experiment, once, the first time a result is needed.
    async fn experiment(&mut self) -> Option<&Ran> {
        if self.ran.is_none() && self.stopped.is_none() {
            self.ran = self.run_experiment().await;
        }
        self.ran.as_ref()
    }

    async fn run_experiment(&mut self) -> Option<Ran> {
        let Some(scenario) = checks::scenario(&self.lab.slug) else {
            return Some(Ran {
                findings: self.programs.findings(self.lab, self.seed),
                failure: Some(commands::no_scenario(&self.lab.slug)),
            });
        };
        let what = format!(
            "running the experiment on real sockets (seed {}; rerun with --seed {})",
            self.seed, self.seed
        );
        let spinner = spinner(&what, self.global.verbose > 0);
        let started = Instant::now();
        let mut findings = self.programs.findings(self.lab, self.seed);
        let outcome = tokio::select! {
            biased;
            _ = self.stop.cancelled() => None,
            failure = commands::run_scenario(scenario, &mut findings) => Some(failure),
        };
        spinner.finish_and_clear();
        let Some(failure) = outcome else {
            output::say(&format!("\n{what}: stopped by Ctrl-C"));
            self.stopped = Some(Stop::Interrupted);
            return None;
        };
        let took = started.elapsed();
        match &failure {
            None => output::say(&format!(
                "\n▶ {what}: done in {}, {} step(s), shown at the end.\n",
                humantime::format_duration(Duration::from_millis(took.as_millis() as u64)),
                findings.steps.len()
            )),
            Some(failure) => output::say(&format!("\n{} {what}: {failure}\n", Mark::Fail.styled())),
        }
        Some(Ran { findings, failure })
    }

    /// The report of the run so far against the answers so far: `lab check`'s comparison.
    fn report(&self) -> Option<Report> {
        let ran = self.ran.as_ref()?;
        let mut report = Report::build(&self.marks, &ran.findings, &self.answers);
        report.problems.extend(ran.failure.clone());
        Some(report)
    }

    /// The answers of the questions not asked yet, to cut out of what a
    /// reveal shows (question 1's "why" may hold question 2's answer).
    fn spoilers(&self) -> Spoilers {
        let spoilers = Spoilers::new(&self.lab.sheet, |q| !self.asked.iter().any(|a| a == q));
        match &self.ran {
            Some(ran) => spoilers.with_findings(&ran.findings),
            None => spoilers,
        }
    }

    async fn reveal_prediction(&mut self, question: &Marked) {
        if self.experiment().await.is_none() {
            return;
        }
        let Some(report) = self.report() else { return };
        if let Some(row) = report.predictions.iter().find(|p| p.id == question.id) {
            let observed = self.ran.as_ref().is_some_and(|ran| {
                ran.findings
                    .observations
                    .iter()
                    .any(|o| o.id == question.id)
            });
            print!(
                "{}",
                self.spoilers().redact(&render_prediction(row, observed))
            );
        }
    }

    async fn reveal_claim(&mut self, claim: &Marked) {
        if self.experiment().await.is_none() {
            return;
        }
        let Some(report) = self.report() else { return };
        if let Some(row) = report.claims.iter().find(|c| c.id == claim.id) {
            print!(
                "{}",
                self.spoilers().redact(&render_claim(row, &claim.text))
            );
            self.revealed_claims.insert(claim.id.clone());
        }
    }

    /// The end: what the experiment did, the score, and the record.
    async fn finish(mut self) -> anyhow::Result<ExitCode> {
        if self.stopped.is_none() {
            // A sheet whose marks all sit where the walk does not show them
            // still gets its claims checked.
            self.experiment().await;
        }
        let Some(report) = self.report() else {
            // Stopped before the experiment ran: nothing was verified.
            output::say(&format!("\n{}", self.stopped_line(None)));
            return Ok(self.stopped_code(None));
        };

        let unrevealed: Vec<&ClaimRow> = report
            .claims
            .iter()
            .filter(|c| !self.revealed_claims.contains(&c.id))
            .collect();
        if self.stopped.is_none() && !unrevealed.is_empty() {
            output::say(&format!("\n{}", output::heading("Also verified")));
            for row in unrevealed {
                let text = self
                    .marks
                    .claims
                    .iter()
                    .find(|m| m.id == row.id)
                    .map_or("", |m| m.text.as_str());
                print!("{}", render_claim(row, text));
            }
        }
        if let Some(ran) = &self.ran
            && !ran.findings.steps.is_empty()
        {
            output::say(&format!("\n{}", output::heading("What the experiment did")));
            let spoilers = self.spoilers();
            for step in &ran.findings.steps {
                output::say(&format!("  → {}", spoilers.redact(step)));
            }
        }
        for problem in &report.problems {
            output::say(&format!("{} {problem}", Mark::Fail.styled()));
        }

        if self.stopped.is_some() {
            output::say(&format!("\n{}", self.stopped_line(Some(&report))));
            return Ok(self.stopped_code(Some(&report)));
        }

        let claims_failed = report.count_claims(Mark::Fail);
        let held = claims_failed == 0 && report.problems.is_empty();
        println!();
        if held {
            output::say(&format!(
                "{} every claim of the sheet held on real sockets. A wrong prediction is yours to \
                 learn from, not a failure of the tour.",
                Mark::Pass.styled()
            ));
        } else {
            output::say(&format!(
                "{} {} of {} claim(s) did not hold{}: the lab, not your predictions, is at fault \
                 (rerun with --seed {}; `lab doctor` looks at this machine).",
                Mark::Fail.styled(),
                claims_failed,
                report.claims.len(),
                if report.problems.is_empty() {
                    ""
                } else {
                    ", and the problems above"
                },
                self.seed
            ));
        }
        self.record(&report)?;
        output::say(&score_line(&report, self.seed));
        Ok(if held {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// A finished tour is recorded as `lab check` records its result, with
    /// its score; answers typed or piped are written into the lab's
    /// answers.toml, so `lab check N` reads the same predictions.
    fn record(&self, report: &Report) -> anyhow::Result<()> {
        let status = report.status();
        let score = TourScore {
            right: report.count_predictions(Mark::Pass),
            questions: report.predictions.len(),
        };
        let mut progress = Progress::load(self.labs_dir);
        let mine = progress.lab_mut(&self.lab.slug);
        mine.last_check = Some(status);
        mine.last_tour = Some(score);
        progress
            .save()
            .context("cannot record your progress (the tour's results above stand)")?;
        let why = match status {
            Status::Pass => format!(
                "every claim verified, every question answered, {} wrong",
                report.count_predictions(Mark::Wrong)
            ),
            Status::Pending => format!(
                "{} question(s) unanswered",
                report.count_predictions(Mark::Pending)
            ),
            Status::Fail => "a claim did not hold, or the lab has a problem".to_string(),
        };
        output::say(&format!(
            "recorded: lab {} is {} in `lab labs` ({why}; tour {}/{})",
            self.lab.id(),
            status.mark().styled(),
            score.right,
            score.questions
        ));

        if !matches!(self.input, Input::File { .. }) && !self.answers.is_empty() {
            let path = self.lab.answers_path();
            match answers::save(&path, &self.answers) {
                Ok(()) => output::say(&format!(
                    "your answers are in {}: `lab check {}` reads them",
                    display_path(&path),
                    self.lab.number
                )),
                Err(err) => output::say(&format!(
                    "{} your answers were not saved: {err:#}",
                    Mark::Pending.styled()
                )),
            }
        }
        Ok(())
    }

    fn stopped_line(&self, report: Option<&Report>) -> String {
        let right = report.map_or(0, |r| {
            r.predictions
                .iter()
                .filter(|p| self.asked.contains(&p.id) && p.mark == Mark::Pass)
                .count()
        });
        format!(
            "tour stopped: nothing recorded; `lab tour {}` starts again.\n\
             score: {right} of {} so far ({} question(s) in all) · seed {}",
            self.lab.number,
            self.asked.len(),
            self.marks.predictions.len(),
            self.seed
        )
    }

    /// 130 after Ctrl-C, as shells expect; 1 if a claim shown failed; else 0.
    fn stopped_code(&self, report: Option<&Report>) -> ExitCode {
        let failed = report.is_some_and(|r| {
            r.claims
                .iter()
                .any(|c| self.revealed_claims.contains(&c.id) && c.mark == Mark::Fail)
        });
        if failed {
            ExitCode::FAILURE
        } else if self.stopped == Some(Stop::Interrupted) {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        }
    }
}

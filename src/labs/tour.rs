//! `lab tour N`: one lab, step by step in the terminal.
//!
//! The tour reads the sheet section by section (rendered as `lab show`
//! renders it) and stops at each `**Predict**` question to ask for the
//! learner's prediction. The lab's experiment (its scenario in
//! [`super::checks`], the one `lab check` runs) runs once on real sockets, as
//! soon as the first result is to be shown: usually right after the first
//! prediction. Then each prediction is revealed beside what happened and why,
//! and each `**Claim**` with its verified result. A claim that stands before a
//! question of its section is held back until that question is answered, so
//! the sheet never gives an answer away before it is asked for.
//!
//! The answers come from the terminal (prompts, `?` for a hint, `skip`), from
//! a pipe (one per line, in question order) or from `--answers FILE`. They are
//! compared as `lab check` compares them ([`Report`]), and a finished tour is
//! recorded as `lab check` records its result, so `lab labs` shows it.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::answers::{self, Answers, normalize};
use super::commands::{self, SCENARIO_TIMEOUT, display_path};
use super::findings::Findings;
use super::progress::{Progress, Status, TourScore};
use super::report::{ClaimRow, PredictionRow, Report};
use super::sheet::{self, Marked, SheetMarks};
use super::{Lab, checks};
use crate::cli::{GlobalArgs, TourArgs};
use crate::output::{self, Mark};

/// `lab tour N`.
pub async fn run(global: &GlobalArgs, args: &TourArgs) -> anyhow::Result<ExitCode> {
    let catalogue = commands::catalogue(global)?;
    let lab = catalogue.find(&args.lab)?;
    let input = Input::choose(args.answers.as_deref())?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut tour = Tour::new(global, &catalogue.dir, lab, seed, input, stop_on_ctrl_c());
    tour.walk().await?;
    tour.finish().await
}

// ---------------------------------------------------------------------------
// The sheet, cut into sections and blocks.

/// A piece of a section: prose, or a marked sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    /// One line of markdown, marks excluded.
    Text(String),
    Predict(Marked),
    Claim(Marked),
}

/// The sheet from one `## ` heading to the next (the first one: the title
/// and what comes before the first `## `).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    heading: Option<String>,
    blocks: Vec<Block>,
}

impl Section {
    fn has_marks(&self) -> bool {
        self.blocks.iter().any(|b| !matches!(b, Block::Text(_)))
    }

    /// "Check yourself" tells a reader of the sheet to fill in answers.toml
    /// and run `lab check`: the tour does that part itself.
    fn is_check_yourself(&self) -> bool {
        self.heading.as_deref() == Some("Check yourself") && !self.has_marks()
    }
}

/// Cuts a sheet at its `## ` headings (not inside code fences) and picks out
/// its marks with [`sheet::marks`], so the tour sees exactly the marks `lab
/// check` sees, in the same order.
fn sections(sheet: &str) -> Vec<Section> {
    let mut sections = vec![Section {
        heading: None,
        blocks: Vec::new(),
    }];
    let mut in_fence = false;
    for line in sheet.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        if !in_fence && let Some(heading) = line.strip_prefix("## ") {
            sections.push(Section {
                heading: Some(heading.trim().to_string()),
                blocks: Vec::new(),
            });
        }
        let marked = sheet::marks(line);
        let block = if let Some(m) = marked.predictions.into_iter().next() {
            Block::Predict(m)
        } else if let Some(m) = marked.claims.into_iter().next() {
            Block::Claim(m)
        } else {
            Block::Text(line.to_string())
        };
        if let Some(section) = sections.last_mut() {
            section.blocks.push(block);
        }
    }
    sections.retain(|s| {
        s.blocks
            .iter()
            .any(|b| !matches!(b, Block::Text(t) if t.trim().is_empty()))
    });
    sections
}

/// Prose lines as one markdown text: runs of blank lines (left where marks
/// were taken out) collapsed, none at either end.
fn tidy(lines: &[String]) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in lines {
        if line.trim().is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// Where the answers come from.

/// The learner's predictions: asked, piped or read from a file.
enum Input {
    /// `--answers FILE`: nothing is read from stdin.
    File { path: PathBuf, answers: Answers },
    /// stdin is a terminal: a prompt for each question.
    Terminal(mpsc::UnboundedReceiver<String>),
    /// stdin is a pipe or a file: one answer per line, in question order.
    Piped(mpsc::UnboundedReceiver<String>),
}

impl Input {
    fn choose(file: Option<&Path>) -> anyhow::Result<Input> {
        if let Some(path) = file {
            // answers::load takes a missing file for "no answers yet"; a file
            // named on the command line must exist.
            if !path.is_file() {
                anyhow::bail!(
                    "no answers file {}: write one as the lab's answers.toml is written (id = \"answer\"), or leave out --answers to be asked",
                    path.display()
                );
            }
            let answers = answers::load(path)?;
            return Ok(Input::File {
                path: path.to_path_buf(),
                answers,
            });
        }
        let lines = stdin_lines()?;
        Ok(if std::io::stdin().is_terminal() {
            Input::Terminal(lines)
        } else {
            Input::Piped(lines)
        })
    }

    fn is_terminal(&self) -> bool {
        matches!(self, Input::Terminal(_))
    }
}

/// stdin's lines, read on a thread of their own. A plain thread, not tokio's
/// blocking pool: a read that waits for the learner cannot be cancelled, and
/// the runtime would wait for it at exit, after Ctrl-C.
fn stdin_lines() -> anyhow::Result<mpsc::UnboundedReceiver<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("tour-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = line.trim_end_matches(['\n', '\r']).to_string();
                        if tx.send(text).is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .context("cannot start reading stdin")?;
    Ok(rx)
}

/// Cancelled at the first Ctrl-C, which from then on no longer kills the process.
fn stop_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    token
}

/// One line from the learner, the end of stdin, or Ctrl-C.
enum Read {
    Line(String),
    Eof,
    Interrupted,
}

async fn read(lines: &mut mpsc::UnboundedReceiver<String>, stop: &CancellationToken) -> Read {
    tokio::select! {
        biased;
        _ = stop.cancelled() => Read::Interrupted,
        line = lines.recv() => line.map_or(Read::Eof, Read::Line),
    }
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
                 one unanswered, Ctrl-D or Ctrl-C ends the tour."
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
        println!(
            "\n{} {} question(s), {} claim(s) checked on real sockets (seed {}). {how}",
            output::heading("Tour:"),
            self.marks.predictions.len(),
            self.marks.claims.len(),
            self.seed,
        );
        if let Input::File { path, answers } = &self.input {
            for id in answers.keys() {
                if !questions.contains(&id.as_str()) {
                    println!(
                        "{} {} has `{id}`, which is not a question of this lab (the questions: {}); it is left out",
                        Mark::Pending.styled(),
                        display_path(path),
                        questions.join(", ")
                    );
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
        println!(
            "\n{} `{}`: {}",
            output::heading("Predict"),
            question.id,
            inline(&question.text)
        );
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
                "" => println!("(type your prediction; `?` for a hint, `skip` to leave it)"),
                "?" | "hint" => {
                    // The hint machinery of `lab hint N`: the next hint, counted.
                    commands::hint(self.global, &self.lab.slug, false)?;
                }
                "skip" => return Ok(Ok(None)),
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
                findings: Findings::new(self.seed),
                failure: Some(format!(
                    "no check is registered for lab `{}`: add one in src/labs/checks/",
                    self.lab.slug
                )),
            });
        };
        let what = format!(
            "running the experiment on real sockets (seed {}; rerun with --seed {})",
            self.seed, self.seed
        );
        let spinner = spinner(&what);
        let started = Instant::now();
        let mut findings = Findings::new(self.seed);
        let outcome = tokio::select! {
            biased;
            _ = self.stop.cancelled() => None,
            result = tokio::time::timeout(SCENARIO_TIMEOUT, scenario(&mut findings)) => Some(result),
        };
        spinner.finish_and_clear();
        let failure = match outcome {
            None => {
                println!("\n{what}: stopped by Ctrl-C");
                self.stopped = Some(Stop::Interrupted);
                return None;
            }
            Some(Ok(Ok(()))) => None,
            Some(Ok(Err(err))) => Some(format!("the experiment failed: {err:#}")),
            Some(Err(_)) => Some(format!(
                "the experiment did not finish within {SCENARIO_TIMEOUT:?}"
            )),
        };
        let took = started.elapsed();
        match &failure {
            None => println!(
                "\n▶ {what}: done in {}, {} step(s), shown at the end.\n",
                humantime::format_duration(Duration::from_millis(took.as_millis() as u64)),
                findings.steps.len()
            ),
            Some(failure) => println!("\n{} {what}: {failure}\n", Mark::Fail.styled()),
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
            print!("{}", render_prediction(row, observed));
        }
    }

    async fn reveal_claim(&mut self, claim: &Marked) {
        if self.experiment().await.is_none() {
            return;
        }
        let Some(report) = self.report() else { return };
        if let Some(row) = report.claims.iter().find(|c| c.id == claim.id) {
            print!("{}", render_claim(row, &claim.text));
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
            println!("\n{}", self.stopped_line(None));
            return Ok(self.stopped_code(None));
        };

        let unrevealed: Vec<&ClaimRow> = report
            .claims
            .iter()
            .filter(|c| !self.revealed_claims.contains(&c.id))
            .collect();
        if self.stopped.is_none() && !unrevealed.is_empty() {
            println!("\n{}", output::heading("Also verified"));
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
            println!("\n{}", output::heading("What the experiment did"));
            for step in &ran.findings.steps {
                println!("  → {step}");
            }
        }
        for problem in &report.problems {
            println!("{} {problem}", Mark::Fail.styled());
        }

        if self.stopped.is_some() {
            println!("\n{}", self.stopped_line(Some(&report)));
            return Ok(self.stopped_code(Some(&report)));
        }

        let claims_failed = report.count_claims(Mark::Fail);
        let held = claims_failed == 0 && report.problems.is_empty();
        println!();
        if held {
            println!(
                "{} every claim of the sheet held on real sockets. A wrong prediction is yours to \
                 learn from, not a failure of the tour.",
                Mark::Pass.styled()
            );
        } else {
            println!(
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
            );
        }
        self.record(&report)?;
        println!("{}", score_line(&report, self.seed));
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
            Status::Pass => "every prediction right, every claim verified".to_string(),
            Status::Pending => format!(
                "{} question(s) unanswered",
                report.count_predictions(Mark::Pending)
            ),
            Status::Fail if report.count_claims(Mark::Fail) > 0 || !report.problems.is_empty() => {
                "a claim did not hold".to_string()
            }
            Status::Fail => format!(
                "{} prediction(s) wrong",
                report.count_predictions(Mark::Fail)
            ),
        };
        println!(
            "recorded: lab {} is {} in `lab labs` ({why}; tour {}/{})",
            self.lab.id(),
            status.mark().styled(),
            score.right,
            score.questions
        );

        if !matches!(self.input, Input::File { .. }) && !self.answers.is_empty() {
            let path = self.lab.answers_path();
            match save_answers(&path, &self.answers) {
                Ok(()) => println!(
                    "your answers are in {}: `lab check {}` reads them",
                    display_path(&path),
                    self.lab.number
                ),
                Err(err) => println!(
                    "{} your answers were not saved: {err:#}",
                    Mark::Pending.styled()
                ),
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

// ---------------------------------------------------------------------------
// Presentation.

/// Markdown as `lab show` prints it: rendered in colour, as it is otherwise.
fn print_markdown(text: &str) {
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
fn inline(text: &str) -> String {
    if output::color() {
        termimad::inline(text).to_string()
    } else {
        text.to_string()
    }
}

/// A spinner on stdout while the experiment runs; nothing off a terminal.
fn spinner(message: &str) -> indicatif::ProgressBar {
    if !std::io::stdout().is_terminal() {
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
fn render_prediction(row: &PredictionRow, observed: bool) -> String {
    let verdict = match row.mark {
        Mark::Pass => "right",
        Mark::Pending => "not answered",
        _ if !observed => "not observed: the experiment stopped before it",
        _ => "wrong",
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
fn render_claim(row: &ClaimRow, text: &str) -> String {
    let mut out = format!("{} claim {}: {}\n", row.mark.styled(), row.id, inline(text));
    if row.mark == Mark::Pass && row.expected == row.actual {
        out.push_str(&format!("    seen:          {}\n", row.actual));
    } else {
        out.push_str(&format!(
            "    expected:      {}\n    actual:        {}\n",
            row.expected, row.actual
        ));
    }
    out.push_str(&format!("    why:           {}\n", row.why));
    out
}

/// The line that ends a finished tour: `score: 2 of 3 · …`.
fn score_line(report: &Report, seed: u64) -> String {
    format!(
        "score: {} of {} · {} wrong · {} unanswered · claims: {} of {} verified · seed {seed}",
        report.count_predictions(Mark::Pass),
        report.predictions.len(),
        report.count_predictions(Mark::Fail),
        report.count_predictions(Mark::Pending),
        report.count_claims(Mark::Pass),
        report.claims.len(),
    )
}

// ---------------------------------------------------------------------------
// answers.toml.

/// Writes each answer into the answers file: the line `id = "…"` is replaced
/// (comments and other answers stay as the learner left them), or added.
fn save_answers(path: &Path, given: &Answers) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let updated = with_answers(&text, given);
    // Never write a file `lab check` could not read back.
    let back = answers::parse(&updated).context("the updated answers would not parse")?;
    for (id, answer) in given {
        anyhow::ensure!(
            back.get(id) == Some(answer),
            "answer `{id}` would not read back"
        );
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, updated).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `text` with each answer of `given` in its `id = …` line.
fn with_answers(text: &str, given: &Answers) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (id, answer) in given {
        let line = format!("{id} = {}", toml::Value::String(answer.clone()));
        let existing = lines.iter_mut().find(|l| {
            l.trim_start()
                .strip_prefix(id.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        match existing {
            Some(existing) => *existing = line,
            None => lines.push(line),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHEET: &str = "# Lab 99 · Title\n\
        Intro.\n\
        \n\
        ## First\n\
        \n\
        > **Claim** `c1`: before the question.\n\
        \n\
        Context for q1.\n\
        \n\
        > **Predict** `q1`: which? (`x` or `y`)\n\
        \n\
        > **Claim** `c2`: after it.\n\
        \n\
        ```sh\n\
        ## not a heading, in a fence\n\
        ```\n\
        ## Check yourself\n\
        \n\
        Fill in answers.toml.\n";

    #[test]
    fn sections_cut_at_headings_outside_fences_with_marks_in_order() {
        let found = sections(SHEET);
        let headings: Vec<Option<&str>> = found.iter().map(|s| s.heading.as_deref()).collect();
        assert_eq!(headings, [None, Some("First"), Some("Check yourself")]);
        let marks: Vec<String> = found[1]
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Predict(m) => Some(format!("predict {}", m.id)),
                Block::Claim(m) => Some(format!("claim {}", m.id)),
                Block::Text(_) => None,
            })
            .collect();
        assert_eq!(marks, ["claim c1", "predict q1", "claim c2"]);
        assert!(
            found[1]
                .blocks
                .contains(&Block::Text("## not a heading, in a fence".into()))
        );
        assert!(!found[1].is_check_yourself());
        assert!(found[2].is_check_yourself());
        // The tour sees the marks `lab check` sees.
        let all = sheet::marks(SHEET);
        assert_eq!(all.claims.len() + all.predictions.len(), marks.len());
    }

    #[test]
    fn prose_loses_the_blank_lines_left_by_marks() {
        let lines: Vec<String> = ["", "a", "", "", "b", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(tidy(&lines), "a\n\nb\n");
        assert_eq!(tidy(&[String::new()]), "");
    }

    #[test]
    fn answers_go_into_their_lines_and_comments_stay() {
        let template = "# Which? \"x\" or \"y\".\nq1 = \"\"\n\n# What?\nq2 = \"old\"\n";
        let given: Answers = [("q1", "a \"b\""), ("q3", "6,-3,4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let text = with_answers(template, &given);
        assert!(text.starts_with("# Which? \"x\" or \"y\".\n"), "{text}");
        assert!(text.contains("# What?\nq2 = \"old\"\n"), "{text}");
        let back = answers::parse(&text).unwrap();
        assert_eq!(back.get("q1").map(String::as_str), Some("a \"b\""));
        assert_eq!(back.get("q2").map(String::as_str), Some("old"));
        assert_eq!(back.get("q3").map(String::as_str), Some("6,-3,4"));
    }

    #[test]
    fn a_key_that_starts_like_another_is_not_taken_for_it() {
        let given: Answers = [("q1".to_string(), "x".to_string())].into();
        let text = with_answers("q10 = \"keep\"\n", &given);
        assert_eq!(text, "q10 = \"keep\"\nq1 = \"x\"\n");
    }

    #[test]
    fn a_wrong_prediction_shows_answer_outcome_and_why() {
        let row = PredictionRow {
            id: "q1".into(),
            question: "which?".into(),
            answer: Some("y".into()),
            actual: "x".into(),
            mark: Mark::Fail,
            why: "because".into(),
        };
        let text = render_prediction(&row, true);
        assert!(text.starts_with("✗ fail q1 · wrong\n"), "{text}");
        assert!(text.contains("you predicted: y\n"), "{text}");
        assert!(text.contains("what happened: x\n"), "{text}");
        assert!(text.contains("why:           because\n"), "{text}");
    }
}

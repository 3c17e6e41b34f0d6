//! What a lab's scenario records while it runs: the steps it took, each claim
//! with the expected and the actual value, and the actual answer to each
//! prediction question. [`super::report`] holds these against the sheet.
//!
//! A scenario may run its experiment twice: once against `lab`'s program and
//! once against the article's program in Go ([`crate::golang`]). Each claim
//! result says which of the two it was measured on (its [`Subject`]), so the
//! report can show "holds for Go, holds for lab" or the difference.

use std::fmt::Display;

use crate::golang::{GoModule, GoProgram};

/// Which programs `lab check` runs (`--impl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Implementations {
    /// `lab`'s own programs only.
    Lab,
    /// The article's programs in Go only.
    Go,
    /// Both, side by side.
    Both,
}

/// The program a claim was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Lab,
    Go,
}

/// A claim of the sheet, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimResult {
    pub id: String,
    /// Measured on `lab`'s program or on the Go program.
    pub subject: Subject,
    /// Set when `lab` deliberately differs from Go here: `expected` is then
    /// `lab`'s own behaviour, and this says why it was chosen.
    pub lab_choice: Option<String>,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
    /// Why the expected value is what it is (the lesson in one sentence).
    pub why: String,
}

/// What actually happened for a prediction question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub id: String,
    /// The answer, in the words the question asks for.
    pub actual: String,
    pub why: String,
}

/// Everything one run of a scenario found.
#[derive(Debug, Clone)]
pub struct Findings {
    /// The seed of every random choice in this run.
    pub seed: u64,
    /// Whether `lab`'s programs run.
    pub lab: bool,
    /// The Go module, when the Go programs run.
    pub go: Option<GoModule>,
    /// The program the claims recorded now are measured on.
    subject: Subject,
    /// What the scenario did, in order, in a line each.
    pub steps: Vec<String>,
    pub claims: Vec<ClaimResult>,
    pub observations: Vec<Observation>,
}

impl Findings {
    /// Findings of a run of `lab`'s programs only.
    pub fn new(seed: u64) -> Findings {
        Findings {
            seed,
            lab: true,
            go: None,
            subject: Subject::Lab,
            steps: Vec::new(),
            claims: Vec::new(),
            observations: Vec::new(),
        }
    }

    /// Findings of a run of `lab`'s programs, the Go programs of `go`, or both.
    pub fn with_programs(seed: u64, lab: bool, go: Option<GoModule>) -> Findings {
        Findings {
            lab,
            go,
            ..Findings::new(seed)
        }
    }

    /// The program claims are now measured on.
    pub fn subject(&self) -> Subject {
        self.subject
    }

    /// From now on, claims are measured on `subject`.
    pub fn measure_on(&mut self, subject: Subject) {
        self.subject = subject;
    }

    /// Starts the Go program `name` with `args` when this run includes Go
    /// (`None` when it does not), waiting for its first listener, and notes
    /// the step.
    pub async fn start_go(
        &mut self,
        name: &str,
        args: &[&str],
    ) -> anyhow::Result<Option<GoProgram>> {
        let Some(module) = self.go.clone() else {
            return Ok(None);
        };
        let program = GoProgram::start(&module, name, args, 1).await?;
        self.steps.push(format!(
            "[Go] started labs/go/{name} {} on {}",
            args.join(" "),
            program.addr()
        ));
        Ok(Some(program))
    }

    /// Notes a step of the experiment ("GET /abc directly from 127.0.0.1:50312").
    /// Steps of a Go run say so.
    pub fn step(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.steps.push(match self.subject {
            Subject::Lab => text,
            Subject::Go => format!("[Go] {text}"),
        });
    }

    /// Records a claim that holds when `actual` equals `expected`.
    pub fn claim_eq(
        &mut self,
        id: &str,
        expected: impl Display,
        actual: impl Display,
        why: impl Into<String>,
    ) {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        let passed = expected == actual;
        self.claim(id, passed, expected, actual, why);
    }

    /// Records a claim whose test is more than equality.
    pub fn claim(
        &mut self,
        id: &str,
        passed: bool,
        expected: impl Display,
        actual: impl Display,
        why: impl Into<String>,
    ) {
        self.claims.push(ClaimResult {
            id: id.to_string(),
            subject: self.subject,
            lab_choice: None,
            expected: expected.to_string(),
            actual: actual.to_string(),
            passed,
            why: why.into(),
        });
    }

    /// Records, for `lab`'s program, a claim about Go on which `lab`
    /// deliberately differs: `expected` is `lab`'s own behaviour and `choice`
    /// says why (the report shows it beside Go's result).
    pub fn claim_lab_choice(
        &mut self,
        id: &str,
        expected: impl Display,
        actual: impl Display,
        choice: impl Into<String>,
    ) {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        let passed = expected == actual;
        let choice = choice.into();
        self.claims.push(ClaimResult {
            id: id.to_string(),
            subject: Subject::Lab,
            lab_choice: Some(choice.clone()),
            expected,
            actual,
            passed,
            why: choice,
        });
    }

    /// Records what happened for prediction `id`.
    pub fn observe(&mut self, id: &str, actual: impl Display, why: impl Into<String>) {
        self.observations.push(Observation {
            id: id.to_string(),
            actual: actual.to_string(),
            why: why.into(),
        });
    }
}

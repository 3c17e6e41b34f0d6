//! What a lab's scenario records while it runs: the steps it took, each claim
//! with the expected and the actual value, and the actual answer to each
//! prediction question. [`super::report`] holds these against the sheet.

use std::fmt::Display;

/// A claim of the sheet, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimResult {
    pub id: String,
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
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// The seed of every random choice in this run.
    pub seed: u64,
    /// What the scenario did, in order, in a line each.
    pub steps: Vec<String>,
    pub claims: Vec<ClaimResult>,
    pub observations: Vec<Observation>,
}

impl Findings {
    pub fn new(seed: u64) -> Findings {
        Findings {
            seed,
            ..Findings::default()
        }
    }

    /// Notes a step of the experiment ("GET /abc directly from 127.0.0.1:50312").
    pub fn step(&mut self, text: impl Into<String>) {
        self.steps.push(text.into());
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
            expected: expected.to_string(),
            actual: actual.to_string(),
            passed,
            why: why.into(),
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

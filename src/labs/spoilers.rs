//! No spoilers: what happened for a question the learner has not answered
//! stays hidden until they answer it (or ask for it with `--reveal`).
//!
//! A sheet states its answers in its claims: the claims of a `## ` section
//! that asks a question are what the question is about (the tour holds them
//! back until it is answered, for the same reason). So `lab show` and `lab
//! check` fold each claim of a section that asks a question not answered
//! yet, `lab check` hides what happened for such a question, and every text
//! shown meanwhile (a claim's measurement, the "why" of another answer) has
//! the hidden answers cut out ([`Spoilers::redact`]).

use std::collections::BTreeMap;

use super::findings::Findings;
use super::sheet::{Block, sections};

/// What to keep from the learner for now.
#[derive(Debug, Clone, Default)]
pub struct Spoilers {
    /// Claim id → the hidden questions of its section.
    folded: BTreeMap<String, Vec<String>>,
    /// The hidden questions, in sheet order.
    hidden: Vec<String>,
    /// The hidden questions' answers, once the experiment ran.
    answers: Vec<(String, String)>,
}

impl Spoilers {
    /// Nothing hidden (`--reveal`).
    pub fn none() -> Spoilers {
        Spoilers::default()
    }

    /// Hides the questions of `sheet` for which `hide` says so, and folds
    /// the claims of their sections.
    pub fn new(sheet: &str, hide: impl Fn(&str) -> bool) -> Spoilers {
        let mut spoilers = Spoilers::default();
        for section in sections(sheet) {
            let questions: Vec<String> = section
                .blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Predict(m) if hide(&m.id) => Some(m.id.clone()),
                    _ => None,
                })
                .collect();
            if questions.is_empty() {
                continue;
            }
            for block in &section.blocks {
                if let Block::Claim(claim) = block {
                    spoilers.folded.insert(claim.id.clone(), questions.clone());
                }
            }
            spoilers.hidden.extend(questions);
        }
        spoilers
    }

    /// Learns the hidden questions' answers from a run, to cut them out of
    /// whatever else is shown.
    pub fn with_findings(mut self, findings: &Findings) -> Spoilers {
        self.answers = findings
            .observations
            .iter()
            .filter(|o| self.hides(&o.id))
            .map(|o| (o.id.clone(), o.actual.clone()))
            .collect();
        self
    }

    /// Whether what happened for question `id` is hidden.
    pub fn hides(&self, id: &str) -> bool {
        self.hidden.iter().any(|q| q == id)
    }

    /// Whether anything is hidden.
    pub fn any(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// The hidden questions claim `id` answers, if it is folded.
    pub fn folds(&self, claim: &str) -> Option<&[String]> {
        self.folded.get(claim).map(Vec::as_slice)
    }

    /// `text` with each hidden answer that is a value cut out where it
    /// stands as a whole: three characters or more, not one plain word
    /// (`6,-3,4`, `a a b a c a a`, `127.0.0.1`, `502`; not `a`, `0`, or
    /// `client`, which would cut words out of every sentence).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (id, answer) in &self.answers {
            let answer = answer.trim();
            if answer.chars().count() < 3 || answer.chars().all(char::is_alphabetic) {
                continue;
            }
            let spaced = answer.replace(", ", ",").replace(',', ", ");
            let tight = answer.replace(", ", ",");
            for variant in [answer.to_string(), spaced, tight] {
                out = replace_whole(&out, &variant, &format!("[hidden: `{id}`]"));
            }
        }
        out
    }
}

/// `text` with `needle` replaced where it is not part of a longer word.
fn replace_whole(text: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return text.to_string();
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + needle.len()..].chars().next();
        let first = needle.chars().next();
        let last = needle.chars().next_back();
        // A boundary is needed only where the needle itself starts or ends
        // with a word character.
        let bounded = !(word(first) && word(before) || word(last) && word(after));
        out.push_str(&rest[..at]);
        if bounded {
            out.push_str(with);
        } else {
            out.push_str(needle);
        }
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHEET: &str = "# Lab\n\n## One\n\n> **Predict** `q1`: which?\n\n\
        > **Lab claim** `c1`: it is a a b.\n\n## Two\n\n> **Lab claim** `c2`: other.\n\n\
        ## Three\n\n> **Lab claim** `c3`: before.\n\n> **Predict** `q2`: what?\n";

    fn findings() -> Findings {
        let mut f = Findings::new(1);
        f.observe("q1", "a a b", "because");
        f.observe("q2", "6,-3,4", "because");
        f
    }

    #[test]
    fn claims_of_a_section_with_a_hidden_question_fold() {
        let spoilers = Spoilers::new(SHEET, |q| q == "q2");
        assert!(spoilers.hides("q2") && !spoilers.hides("q1"));
        assert_eq!(spoilers.folds("c3"), Some(&["q2".to_string()][..]));
        assert_eq!(spoilers.folds("c1"), None);
        assert_eq!(spoilers.folds("c2"), None);
        let all = Spoilers::new(SHEET, |_| true);
        assert!(all.folds("c1").is_some() && all.folds("c2").is_none());
        assert!(!Spoilers::none().any());
    }

    #[test]
    fn hidden_answers_are_cut_out_as_whole_words_in_any_spacing() {
        let spoilers = Spoilers::new(SHEET, |_| true).with_findings(&findings());
        assert_eq!(
            spoilers.redact("picks a a b, then [6, -3, 4] and 6,-3,4 → a a bc"),
            "picks [hidden: `q1`], then [[hidden: `q2`]] and [hidden: `q2`] → a a bc"
        );
        let shown = Spoilers::new(SHEET, |q| q == "q1").with_findings(&findings());
        assert_eq!(shown.redact("6,-3,4"), "6,-3,4");
        let mut words = Findings::new(1);
        words.observe("q1", "client", "because");
        let words = Spoilers::new(SHEET, |_| true).with_findings(&words);
        assert_eq!(words.redact("the client writes"), "the client writes");
    }
}

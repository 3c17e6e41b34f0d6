//! The marks a sheet uses for what the program verifies, and the sheet cut
//! into sections for `lab tour`.
//!
//! A sheet is ordinary markdown. Two marks make sentences checkable:
//!
//! ```markdown
//! > **Go claim** `remote-addr-is-peer`: the real server's RemoteAddr is the TCP peer.
//! > **Predict** `direct-port`: whose port does RemoteAddr show? (`client` or `server`)
//! ```
//!
//! The id ties the sentence to the check: every claim must be verified by the
//! lab's scenario and every prediction answered by what happened, or the check
//! fails, so a sheet cannot say something the program does not test.
//!
//! A claim says what it is about ([`ClaimTag`]): **Go claim** (Go's standard
//! library: checked by running Go), **Article claim** (the article's own code,
//! bugs included: checked by running our Go program of its listing) or **Lab
//! claim** (something `lab` adds: checked on `lab`).
//!
//! `lab tour` walks a sheet one `## ` section at a time, its lines taken as
//! prose or as marked sentences (`sections`, with the marks found here, so
//! the tour and `lab check` see the same marks in the same order).

use std::sync::LazyLock;

use regex_lite::Regex;

/// What a claim is about, and so what it is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimTag {
    /// Go's standard library (ReverseProxy, Transport, the server): the Go
    /// program must show it; `lab` shows it too or says why it differs.
    Go,
    /// The article's own code, its bugs included: the Go program of the
    /// listing must show it.
    Article,
    /// Something `lab` adds: checked on `lab` only.
    Lab,
}

impl ClaimTag {
    /// The word of the mark: `Go` in `**Go claim**`.
    pub fn word(self) -> &'static str {
        match self {
            ClaimTag::Go => "Go",
            ClaimTag::Article => "Article",
            ClaimTag::Lab => "Lab",
        }
    }
}

/// One marked sentence of a sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub id: String,
    /// A claim's tag; `None` for a prediction, or a claim marked only
    /// `**Claim**` (which the report asks to be tagged).
    pub tag: Option<ClaimTag>,
    /// The sentence after the id, for the report.
    pub text: String,
}

/// The claims and predictions a sheet makes, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SheetMarks {
    pub claims: Vec<Marked>,
    pub predictions: Vec<Marked>,
}

static MARK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\*\*((?:Go |Article |Lab )?[Cc]laim|Predict)\*\*\s+`([a-z0-9][a-z0-9-]*)`\s*[:—-]?\s*(.*)$",
    )
        .expect("the mark pattern is valid")
});

/// Finds every mark of a sheet.
pub fn marks(sheet: &str) -> SheetMarks {
    let mut found = SheetMarks::default();
    for line in sheet.lines() {
        let Some(caps) = MARK.captures(line) else {
            continue;
        };
        let kind = &caps[1];
        let tag = match kind.split_whitespace().next() {
            Some("Go") => Some(ClaimTag::Go),
            Some("Article") => Some(ClaimTag::Article),
            Some("Lab") => Some(ClaimTag::Lab),
            _ => None,
        };
        let marked = Marked {
            id: caps[2].to_string(),
            tag,
            text: caps[3].trim().to_string(),
        };
        if kind == "Predict" {
            found.predictions.push(marked);
        } else {
            found.claims.push(marked);
        }
    }
    found
}

/// The sheet with the sentence of each claim for which `fold` gives a
/// replacement replaced by it; the mark and the id stay, and every other
/// byte of the sheet (fenced code above all) is left as it is.
pub fn fold_claims(sheet: &str, mut fold: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sheet.len());
    for line in sheet.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let folded = MARK
            .captures(body)
            .filter(|caps| &caps[1] != "Predict")
            .and_then(|caps| {
                let sentence = caps.get(3)?;
                fold(&caps[2]).map(|with| format!("{}{with}", &body[..sentence.start()]))
            });
        match folded {
            Some(text) => {
                out.push_str(&text);
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A piece of a section: prose, or a marked sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Block {
    /// One line of markdown, marks excluded.
    Text(String),
    Predict(Marked),
    Claim(Marked),
}

/// The sheet from one `## ` heading to the next (the first one: the title
/// and what comes before the first `## `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Section {
    pub(super) heading: Option<String>,
    pub(super) blocks: Vec<Block>,
}

impl Section {
    fn has_marks(&self) -> bool {
        self.blocks.iter().any(|b| !matches!(b, Block::Text(_)))
    }

    /// "Check yourself" tells a reader of the sheet to fill in answers.toml
    /// and run `lab check`: the tour does that part itself.
    pub(super) fn is_check_yourself(&self) -> bool {
        self.heading.as_deref() == Some("Check yourself") && !self.has_marks()
    }
}

/// Cuts a sheet at its `## ` headings (not inside code fences) and picks out
/// its marks with [`marks`], so the tour sees exactly the marks `lab
/// check` sees, in the same order.
pub(super) fn sections(sheet: &str) -> Vec<Section> {
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
        let marked = marks(line);
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
pub(super) fn tidy(lines: &[String]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_claims_and_predictions_with_their_text() {
        let sheet = "# Lab\n\
            Some prose, **not** a claim.\n\
            > **Go claim** `peer-is-remote-addr`: RemoteAddr is the TCP peer.\n\
            > **Predict** `direct-port` — whose port? (`client` or `server`)\n\
            - **Claim** `two-servers`:   both answer\n\
            - **Article claim** `leak`: it leaks.\n\
            - **Lab claim** `extra`: lab adds it.\n";
        let found = marks(sheet);
        assert_eq!(
            found.claims,
            vec![
                Marked {
                    id: "peer-is-remote-addr".into(),
                    tag: Some(ClaimTag::Go),
                    text: "RemoteAddr is the TCP peer.".into()
                },
                Marked {
                    id: "two-servers".into(),
                    tag: None,
                    text: "both answer".into()
                },
                Marked {
                    id: "leak".into(),
                    tag: Some(ClaimTag::Article),
                    text: "it leaks.".into()
                },
                Marked {
                    id: "extra".into(),
                    tag: Some(ClaimTag::Lab),
                    text: "lab adds it.".into()
                },
            ]
        );
        assert_eq!(found.predictions.len(), 1);
        assert_eq!(found.predictions[0].id, "direct-port");
        assert_eq!(
            found.predictions[0].text,
            "whose port? (`client` or `server`)"
        );
    }

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
        let all = super::marks(SHEET);
        assert_eq!(all.claims.len() + all.predictions.len(), marks.len());
    }

    #[test]
    fn folding_replaces_a_claims_sentence_and_nothing_else() {
        let folded = fold_claims(SHEET, |id| (id == "c2").then(|| "(folded)".to_string()));
        assert!(folded.contains("> **Claim** `c2`: (folded)\n"), "{folded}");
        assert!(folded.contains("> **Claim** `c1`: before the question.\n"));
        assert_eq!(fold_claims(SHEET, |_| None), SHEET);
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
}

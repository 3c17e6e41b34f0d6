//! The follow-along labs: one folder per lab under `labs/`, one check per lab
//! in [`checks`].
//!
//! A lab folder `labs/NN-slug/` holds:
//! - `README.md`, the sheet. Sentences the program verifies are marked
//!   `**Go claim** \`id\`` (or Article, Lab), questions for the learner `**Predict** \`id\``
//!   (see [`sheet`]);
//! - `lab.toml`: title, the article section it follows, hints by question
//!   (`[hints]`, `question-id = ["…", …]`, and `general` for the whole lab);
//! - `answers.toml`: the learner's predictions, `id = "answer"`.
//!
//! `lab check N` runs the lab's scenario (registered under its slug in
//! [`checks`]) on real sockets, then holds what happened against the sheet
//! and the answers ([`report`]). Adding a lab is adding a folder and a check.

pub mod answers;
pub mod checks;
pub mod commands;
pub mod findings;
pub mod progress;
pub mod report;
pub mod sheet;
pub mod spoilers;
pub mod tour;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// One lab, as read from its folder.
#[derive(Debug, Clone)]
pub struct Lab {
    /// From the folder name `NN-slug`.
    pub number: u32,
    pub slug: String,
    pub dir: PathBuf,
    pub meta: LabMeta,
    /// The sheet's markdown.
    pub sheet: String,
}

/// `lab.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabMeta {
    pub title: String,
    /// The article heading(s) the lab follows, as written in the article.
    pub article_section: String,
    /// `[hints]`: each question's hints by its id, `general` for hints
    /// about the whole lab; [`Lab::hints`] puts them in order.
    #[serde(default)]
    pub hints: BTreeMap<String, Vec<String>>,
    /// The Go programs (`labs/go/NAME`) the lab's experiment also runs;
    /// empty when the article has no Go program for it.
    #[serde(default)]
    pub go: Vec<String>,
}

impl Lab {
    /// `01`, as the folder writes it.
    pub fn id(&self) -> String {
        format!("{:02}", self.number)
    }

    /// Every hint in the order `lab hint` gives them: each question's, in
    /// the sheet's order, then the general ones (then any under a key the
    /// sheet does not ask, which a test forbids).
    pub fn hints(&self) -> Vec<Hint<'_>> {
        let questions = sheet::marks(&self.sheet).predictions;
        let mut keys: Vec<&str> = questions
            .iter()
            .map(|q| q.id.as_str())
            .filter(|id| self.meta.hints.contains_key(*id))
            .collect();
        keys.push(GENERAL_HINTS);
        for key in self.meta.hints.keys() {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        let mut hints = Vec::new();
        for key in keys {
            let Some((key, texts)) = self.meta.hints.get_key_value(key) else {
                continue;
            };
            for (i, text) in texts.iter().enumerate() {
                hints.push(Hint { key, nth: i, text });
            }
        }
        hints
    }

    /// The learner's answers file.
    pub fn answers_path(&self) -> PathBuf {
        self.dir.join("answers.toml")
    }
}

/// The `[hints]` key of hints about the whole lab rather than one question.
pub const GENERAL_HINTS: &str = "general";

/// One hint of a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint<'a> {
    /// The question's id, or [`GENERAL_HINTS`].
    pub key: &'a str,
    /// Its place among the hints of its key, from 0.
    pub nth: usize,
    pub text: &'a str,
}

/// Every lab in a labs directory, in number order.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub dir: PathBuf,
    pub labs: Vec<Lab>,
}

impl Catalogue {
    /// Reads every `NN-slug` folder of `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Catalogue> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the labs directory {}", dir.display()))?;
        let mut labs = Vec::new();
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((number, slug)) = parse_folder_name(&name) else {
                continue;
            };
            labs.push(load_lab(&entry.path(), number, slug)?);
        }
        labs.sort_by_key(|lab| lab.number);
        if let Some(pair) = labs.windows(2).find(|w| w[0].number == w[1].number) {
            bail!(
                "two labs share number {:02}: {} and {}",
                pair[0].number,
                pair[0].dir.display(),
                pair[1].dir.display()
            );
        }
        Ok(Catalogue {
            dir: dir.to_path_buf(),
            labs,
        })
    }

    /// Finds a lab by number (`1`, `01`) or slug (`proxy-basics`).
    pub fn find(&self, spec: &str) -> anyhow::Result<&Lab> {
        let spec = spec.trim();
        let found = match spec.parse::<u32>() {
            Ok(number) => self.labs.iter().find(|lab| lab.number == number),
            Err(_) => self.labs.iter().find(|lab| lab.slug == spec),
        };
        found.with_context(|| {
            let known: Vec<String> = self
                .labs
                .iter()
                .map(|lab| format!("{} ({})", lab.number, lab.slug))
                .collect();
            format!(
                "no lab {spec:?}; the labs are: {}. `lab labs` lists them",
                known.join(", ")
            )
        })
    }
}

/// `01-proxy-basics` → (1, "proxy-basics").
pub fn parse_folder_name(name: &str) -> Option<(u32, String)> {
    let (digits, slug) = name.split_once('-')?;
    if digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_digit()) || slug.is_empty() {
        return None;
    }
    Some((digits.parse().ok()?, slug.to_string()))
}

fn load_lab(dir: &Path, number: u32, slug: String) -> anyhow::Result<Lab> {
    let meta_path = dir.join("lab.toml");
    let meta_text = std::fs::read_to_string(&meta_path)
        .with_context(|| format!("cannot read {}", meta_path.display()))?;
    let meta: LabMeta = toml::from_str(&meta_text)
        .with_context(|| format!("{} is not a valid lab.toml", meta_path.display()))?;
    let sheet_path = dir.join("README.md");
    let sheet = std::fs::read_to_string(&sheet_path)
        .with_context(|| format!("cannot read {}", sheet_path.display()))?;
    Ok(Lab {
        number,
        slug,
        dir: dir.to_path_buf(),
        meta,
        sheet,
    })
}

/// Where the labs are: `--labs-dir` / `LAB_LABS_DIR` when given (it must
/// hold labs), else the `labs/` folder of the checkout the current
/// directory is in (here or in a parent, as `git` finds its repository).
///
/// Never, silently, the tree the binary was built from: the learner's
/// answers and progress live beside the labs (`labs/NN-slug/answers.toml`,
/// `labs/.progress.json`), so the labs used are always the ones they chose.
pub fn resolve_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        if !dir.is_dir() {
            bail!(
                "the labs directory {} does not exist; point --labs-dir (or LAB_LABS_DIR) at \
                 the labs/ folder of a lab checkout",
                dir.display()
            );
        }
        if !holds_labs(dir) {
            bail!(
                "{} holds no labs (folders like 01-proxy-basics with a lab.toml); point \
                 --labs-dir (or LAB_LABS_DIR) at the labs/ folder of a lab checkout",
                dir.display()
            );
        }
        return Ok(dir.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    for dir in cwd.ancestors() {
        let labs = dir.join("labs");
        if holds_labs(&labs) {
            // Relative when it is right here: what the learner would type.
            return Ok(if dir == cwd {
                PathBuf::from("labs")
            } else {
                labs
            });
        }
    }
    bail!(
        "cannot find the labs: no labs/ folder here or above {}. Run `lab` inside a lab \
         checkout, or pass --labs-dir PATH/TO/labs (or set LAB_LABS_DIR)",
        cwd.display()
    )
}

/// Whether `dir` has at least one lab: an `NN-slug` folder with a lab.toml.
fn holds_labs(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            parse_folder_name(&e.file_name().to_string_lossy()).is_some()
                && e.path().join("lab.toml").is_file()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_give_number_and_slug() {
        assert_eq!(
            parse_folder_name("01-proxy-basics"),
            Some((1, "proxy-basics".into()))
        );
        assert_eq!(
            parse_folder_name("12-zk-discovery"),
            Some((12, "zk-discovery".into()))
        );
        assert_eq!(parse_folder_name("1-short"), None);
        assert_eq!(parse_folder_name("ab-cd"), None);
        assert_eq!(parse_folder_name("01-"), None);
        assert_eq!(parse_folder_name("README.md"), None);
    }
}

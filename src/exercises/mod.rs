//! The exercises (练习): the article's code listings, written by the
//! learner and verified by `lab verify` on real sockets.
//!
//! An exercise lives beside the lab that teaches it,
//! `labs/NN-slug/exercises/EE-slug/`: `exercise.toml` (title, article
//! section, the verify scenario, hints by point, and the deliberate mistakes
//! the tests make), `start/` (the skeleton with `TODO`s, copied into the
//! learner's own directory by `lab exercise start`) and `solution/` (the
//! reference, shown by `lab exercise solution` after a pass).
//!
//! The learner's program is a black box over HTTP, in any language: it
//! listens on `$LISTEN` (`$PORT` holds the port alone) and finds its real
//! servers in `$UPSTREAM` (one) or `$UPSTREAMS` (several, separated by
//! spaces), with their weights in `$WEIGHTS` where the exercise has any. `lab verify` starts the lab's real servers, starts the program,
//! drives the same experiment the lab's check runs and reports each point
//! as expected against actual, with the next step.

pub mod checks;
pub mod commands;
pub mod session;
pub mod subject;
pub mod verify;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::labs::parse_folder_name;

/// What `exercise.toml` says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub title: String,
    pub article_section: String,
    /// One line: what the learner writes.
    pub summary: String,
    /// The verify scenario, by name ([`checks::scenario`]).
    pub check: String,
    /// How many of the lab's real servers run behind the program (0: the
    /// program is the real server).
    pub upstreams: usize,
    /// The path of the upstream URLs the program is given (`/base`, as in
    /// the article's `main()`), empty for none.
    #[serde(default)]
    pub upstream_path: String,
    /// The upstreams' weights, given as `$WEIGHTS` (space-separated, in
    /// `$UPSTREAMS`' order); none when empty.
    #[serde(default)]
    pub weights: Vec<u32>,
    /// Hints by point id, in the order they are given.
    #[serde(default)]
    pub hints: BTreeMap<String, Vec<String>>,
    /// Broken copies of the solution: each must fail its point.
    #[serde(default)]
    pub mistakes: Vec<Mistake>,
}

/// A deliberate mistake: `replace` in the solution becomes `with`, and
/// `lab verify` must then fail point `fails`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mistake {
    pub name: String,
    pub replace: String,
    pub with: String,
    pub fails: String,
}

/// One exercise.
#[derive(Debug, Clone)]
pub struct Exercise {
    pub number: u32,
    pub slug: String,
    /// Its folder, `labs/NN-slug/exercises/EE-slug`.
    pub dir: PathBuf,
    /// The lab it belongs to: its number and slug.
    pub lab: (u32, String),
    pub meta: Meta,
}

impl Exercise {
    /// `08`, as the folders spell it.
    pub fn id(&self) -> String {
        format!("{:02}", self.number)
    }

    /// `08-round-robin`: the name of its folders.
    pub fn folder(&self) -> String {
        format!("{}-{}", self.id(), self.slug)
    }

    /// The skeleton the learner starts from.
    pub fn start_dir(&self) -> PathBuf {
        self.dir.join("start")
    }

    /// The reference solution.
    pub fn solution_dir(&self) -> PathBuf {
        self.dir.join("solution")
    }

    /// The learner's directory when they name none: `./lab-exercises/08-round-robin`.
    pub fn default_workdir(&self) -> PathBuf {
        Path::new("lab-exercises").join(self.folder())
    }

    /// The hints of point `id`.
    pub fn hints(&self, id: &str) -> &[String] {
        self.meta.hints.get(id).map_or(&[], Vec::as_slice)
    }
}

/// Every exercise of a labs directory, by number.
#[derive(Debug, Clone)]
pub struct Exercises {
    pub list: Vec<Exercise>,
}

impl Exercises {
    /// Reads `labs_dir/*/exercises/*/exercise.toml`.
    pub fn load(labs_dir: &Path) -> anyhow::Result<Exercises> {
        let mut list = Vec::new();
        let labs = std::fs::read_dir(labs_dir)
            .with_context(|| format!("cannot read {}", labs_dir.display()))?;
        for lab in labs.flatten() {
            let Some(lab_id) = parse_folder_name(&lab.file_name().to_string_lossy()) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(lab.path().join("exercises")) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some((number, slug)) = parse_folder_name(&name) else {
                    continue;
                };
                let toml_path = entry.path().join("exercise.toml");
                let text = std::fs::read_to_string(&toml_path)
                    .with_context(|| format!("cannot read {}", toml_path.display()))?;
                let meta: Meta = toml::from_str(&text)
                    .with_context(|| format!("{} is not valid", toml_path.display()))?;
                list.push(Exercise {
                    number,
                    slug,
                    dir: entry.path(),
                    lab: lab_id.clone(),
                    meta,
                });
            }
        }
        list.sort_by_key(|e| e.number);
        if let Some(twice) = list.windows(2).find(|w| w[0].number == w[1].number) {
            bail!(
                "two exercises are numbered {}: {} and {}",
                twice[0].number,
                twice[0].dir.display(),
                twice[1].dir.display()
            );
        }
        Ok(Exercises { list })
    }

    /// The exercise `spec` names: its number (8, 08) or its slug.
    pub fn find(&self, spec: &str) -> anyhow::Result<&Exercise> {
        let found = match spec.trim().parse::<u32>() {
            Ok(n) => self.list.iter().find(|e| e.number == n),
            Err(_) => self.list.iter().find(|e| e.slug == spec.trim()),
        };
        found.with_context(|| {
            let known: Vec<String> = self
                .list
                .iter()
                .map(|e| format!("{} ({})", e.number, e.slug))
                .collect();
            format!(
                "no exercise {spec:?}; the exercises are: {} (`lab exercise list`)",
                known.join(", ")
            )
        })
    }
}

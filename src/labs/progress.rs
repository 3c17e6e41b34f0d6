//! The learner's progress: each lab's last check (or tour), its last tour's
//! score and how many hints were shown, in `.progress.json` inside the labs
//! directory (git-ignored).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::output::Mark;

/// The outcome of a lab's last check or tour: one meaning in `lab check`
/// (its labels and exit status), `lab labs` and `lab tour`. A wrong
/// prediction is the learner's to learn from: it lowers the score, it does
/// not fail the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every claim held and every question is answered, right or wrong.
    Pass,
    /// Every claim held; some questions are not answered yet.
    Pending,
    /// A claim did not hold, or the lab has a problem (its experiment
    /// failed, the sheet and its check disagree, the answers file is
    /// broken or names no question): exit status 1.
    Fail,
}

impl Status {
    pub fn mark(self) -> Mark {
        match self {
            Status::Pass => Mark::Pass,
            Status::Pending => Mark::Pending,
            Status::Fail => Mark::Fail,
        }
    }
}

/// One lab's progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabProgress {
    /// The outcome of the last `lab check` or finished `lab tour`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<Status>,
    /// How many hints were shown in all (`lab labs`).
    #[serde(default)]
    pub hints_shown: usize,
    /// How many of each question's hints were shown, by question id (or
    /// `general`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hints_seen: BTreeMap<String, usize>,
    /// The score of the last finished `lab tour`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tour: Option<TourScore>,
}

/// Right predictions of a tour out of the lab's questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TourScore {
    pub right: usize,
    pub questions: usize,
}

/// One exercise's progress (`lab exercise list`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExerciseProgress {
    /// Where `lab exercise start` wrote the starting files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The last `lab verify`: points failed of points checked (0 failed: passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verify: Option<(usize, usize)>,
    /// Passed once (a later failing verify does not take it back).
    #[serde(default)]
    pub passed: bool,
    /// The point the last verify failed first: `lab exercise hint` follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failing: Option<String>,
    /// The last verify could not judge the program (it did not build, did
    /// not listen, or stopped) and failed no point.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
    /// How many of each point's hints were shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hints_seen: BTreeMap<String, usize>,
    /// The reference was shown before a pass (`--give-up`).
    #[serde(default)]
    pub gave_up: bool,
}

/// Progress of every lab and exercise, by slug (stable if renumbered).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub labs: BTreeMap<String, LabProgress>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exercises: BTreeMap<String, ExerciseProgress>,
    #[serde(skip)]
    path: PathBuf,
}

impl Progress {
    /// The progress file of a labs directory.
    pub fn path_in(labs_dir: &Path) -> PathBuf {
        labs_dir.join(".progress.json")
    }

    /// Loads the progress of `labs_dir`; none yet is empty progress. A file
    /// that cannot be parsed is set aside rather than failing the command.
    pub fn load(labs_dir: &Path) -> Progress {
        let path = Self::path_in(labs_dir);
        let mut progress = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Progress>(&bytes).ok())
            .unwrap_or_default();
        progress.path = path;
        progress
    }

    pub fn lab(&self, slug: &str) -> LabProgress {
        self.labs.get(slug).cloned().unwrap_or_default()
    }

    pub fn lab_mut(&mut self, slug: &str) -> &mut LabProgress {
        self.labs.entry(slug.to_string()).or_default()
    }

    /// Writes the file (via a temporary file, so a crash cannot leave half of it).
    pub fn save(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(&tmp, json).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut progress = Progress::load(dir.path());
        progress.lab_mut("proxy-basics").last_check = Some(Status::Pending);
        progress.lab_mut("proxy-basics").hints_shown = 2;
        progress.save().unwrap();
        let again = Progress::load(dir.path());
        let lab = again.lab("proxy-basics");
        assert_eq!(lab.last_check, Some(Status::Pending));
        assert_eq!(lab.hints_shown, 2);
        assert_eq!(lab.last_tour, None);
        assert_eq!(again.lab("other").hints_shown, 0);
    }

    #[test]
    fn a_tour_score_round_trips_and_old_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            Progress::path_in(dir.path()),
            r#"{"labs":{"random":{"last_check":"pass","hints_shown":1}}}"#,
        )
        .unwrap();
        let mut progress = Progress::load(dir.path());
        assert_eq!(progress.lab("random").last_check, Some(Status::Pass));
        progress.lab_mut("random").last_tour = Some(TourScore {
            right: 2,
            questions: 3,
        });
        progress.save().unwrap();
        let again = Progress::load(dir.path()).lab("random");
        assert_eq!(
            again.last_tour,
            Some(TourScore {
                right: 2,
                questions: 3
            })
        );
        assert_eq!(again.hints_shown, 1);
    }

    #[test]
    fn hints_seen_by_question_round_trip_and_old_files_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut progress = Progress::load(dir.path());
        let mine = progress.lab_mut("random");
        mine.hints_seen.insert("odd-draw-node".into(), 1);
        mine.hints_shown = 1;
        progress.save().unwrap();
        let again = Progress::load(dir.path()).lab("random");
        assert_eq!(again.hints_seen.get("odd-draw-node"), Some(&1));
        std::fs::write(
            Progress::path_in(dir.path()),
            r#"{"labs":{"random":{"hints_shown":2}}}"#,
        )
        .unwrap();
        assert!(
            Progress::load(dir.path())
                .lab("random")
                .hints_seen
                .is_empty()
        );
    }

    #[test]
    fn a_corrupt_file_is_empty_progress() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Progress::path_in(dir.path()), "{not json").unwrap();
        assert!(Progress::load(dir.path()).labs.is_empty());
    }
}

//! `lab verify N --watch`: verify again each time a file of the exercise
//! directory is saved, as rustlings watches its exercises.
//!
//! The kernel tells us about changes (inotify, through the `notify` crate);
//! an editor's save is often several events (a temporary file, a rename),
//! so events are gathered for a short quiet spell before one re-run.
//!
//! Beside inotify, the same crate's polling watcher compares the files'
//! metadata twice a second: inotify can miss a change (a network or
//! container file system, a full event queue, a watch lost to a rename),
//! and a watch mode that silently stops watching is worse than none. Both
//! feed one channel; the quiet spell merges their reports of one save.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the directory must be quiet after a change before a re-run.
const SETTLE: Duration = Duration::from_millis(200);

/// How often the polling watcher compares the files.
const POLL: Duration = Duration::from_millis(500);

/// Changes to the files of one directory, as they come.
pub struct Changes {
    // Kept alive: dropping a watcher stops its events.
    _watcher: notify::RecommendedWatcher,
    _poller: notify::PollWatcher,
    events: mpsc::UnboundedReceiver<PathBuf>,
}

impl Changes {
    /// Watches `dir` and everything under it.
    pub fn watch(dir: &Path) -> anyhow::Result<Changes> {
        let (tx, events) = mpsc::unbounded_channel();
        // notify calls the handler on its own thread; the channel brings the
        // paths into the async world.
        let handler = |tx: mpsc::UnboundedSender<PathBuf>| {
            move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && (event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove())
                {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            }
        };
        let mut watcher = notify::recommended_watcher(handler(tx.clone()))
            .context("cannot watch files on this system")?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        let mut poller = notify::PollWatcher::new(
            handler(tx),
            notify::Config::default().with_poll_interval(POLL),
        )
        .context("cannot poll files on this system")?;
        poller
            .watch(dir, RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        Ok(Changes {
            _watcher: watcher,
            _poller: poller,
            events,
        })
    }

    /// Waits for the next saved change, then for the directory to settle;
    /// the path that changed. Editors' scratch files (`.x.swp`, `x~`) do
    /// not count.
    pub async fn next(&mut self) -> Option<PathBuf> {
        let changed = loop {
            let path = self.events.recv().await?;
            if !scratch(&path) {
                break path;
            }
        };
        while let Ok(Some(_)) = tokio::time::timeout(SETTLE, self.events.recv()).await {}
        Some(changed)
    }
}

/// An editor's temporary file rather than the learner's.
fn scratch(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name == "4913"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_scratch_files_are_not_changes() {
        assert!(scratch(Path::new("/x/.main.go.swp")));
        assert!(scratch(Path::new("/x/main.go~")));
        assert!(scratch(Path::new("/x/4913")));
        assert!(!scratch(Path::new("/x/main.go")));
    }
}

//! The note a running `lab transparent` leaves for other commands: where
//! its namespaces are, so that `lab transparent --run -- CMD` in another
//! terminal runs CMD inside them, and `--cleanup` can tell a running one
//! from one that crashed.
//!
//! The namespaces themselves cannot be left behind (see
//! [`super::netns`]); the note can, after a crash, and the next start or
//! `--cleanup` removes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::network::Place;

/// Where the note is written; also passed to the copy that runs in a user
/// namespace (where the uid reads 0).
pub const STATE_ENV: &str = "LAB_TRANSPARENT_STATE";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// The process that holds the namespaces.
    pub pid: u32,
    /// `redirect` or `tproxy`.
    pub mode: String,
    /// The intercepted ports.
    pub ports: Vec<u16>,
    /// `/proc/PID/fd/N` of each namespace: client, gateway, server.
    pub client: String,
    pub gateway: String,
    pub server: String,
    /// `/proc/PID/ns/user` when it runs in a user namespace of its own
    /// (without root): a joiner enters that first.
    pub user_namespace: Option<String>,
}

/// The note's path: `$LAB_TRANSPARENT_STATE`, or one per user in the
/// temporary directory.
pub fn path() -> PathBuf {
    if let Some(path) = std::env::var_os(STATE_ENV) {
        return PathBuf::from(path);
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("lab-transparent-{uid}.json"))
}

/// What the note says, if there is one.
pub fn read(path: &Path) -> Option<State> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the note (replacing any).
pub fn write(path: &Path, state: &State) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

impl State {
    /// The path of the namespace `place` names.
    pub fn path_of(&self, place: Place) -> &str {
        match place {
            Place::Client => &self.client,
            Place::Gateway => &self.gateway,
            Place::Server => &self.server,
        }
    }
}

/// Whether the process a note names still runs and still holds the
/// namespaces it lists: its descriptor must still be a network namespace,
/// not whatever a process that reused the pid opened there (`--cleanup`
/// sends that pid a SIGTERM).
pub fn alive(state: &State) -> bool {
    std::fs::read_link(&state.client)
        .is_ok_and(|target| target.to_string_lossy().starts_with("net:["))
}

/// Removes the note if it is `pid`'s (a later start may have replaced it).
pub fn remove_if_ours(path: &Path, pid: u32) {
    if read(path).is_some_and(|state| state.pid == pid) {
        let _ = std::fs::remove_file(path);
    }
}

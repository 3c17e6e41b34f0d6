//! A private copy of the checkout's `labs/` for each test that runs
//! `lab check`, `lab hint` or `lab tour`, so a test neither touches the
//! checkout's progress nor races other tests.

use std::path::{Path, PathBuf};

/// A copy of `labs/` in a temporary directory.
pub struct LabsCopy {
    /// The temporary directory (removed on drop); `labs` is inside it.
    pub dir: tempfile::TempDir,
    pub labs: PathBuf,
}

/// The checkout's `labs/`.
pub fn checkout_labs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("labs")
}

/// Copies the checkout's `labs/` (without progress) into a temporary directory.
pub fn labs_copy() -> LabsCopy {
    let dir = tempfile::tempdir().expect("a temp dir");
    let labs = dir.path().join("labs");
    copy_dir(&checkout_labs(), &labs);
    let _ = std::fs::remove_file(labs.join(".progress.json"));
    LabsCopy { dir, labs }
}

/// Copies the tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a dir");
    for entry in std::fs::read_dir(from).expect("read a dir") {
        let entry = entry.expect("a dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a file");
        }
    }
}

/// `lab ARGS --labs-dir LABS` (a [`labs_copy`]), colours off; the caller
/// chooses stdin and how to run it.
pub fn labs_command(labs: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lab"));
    command
        .args(args)
        .arg("--labs-dir")
        .arg(labs)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    command
}

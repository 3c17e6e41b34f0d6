//! The article's programs in Go, beside `lab`'s own: the Go module under
//! `labs/go/` (standard library only), its catalogue, and how `lab` builds and
//! runs its programs with the `go` the learner installed.
//!
//! The article teaches Go, so every claim a sheet makes about Go is checked by
//! running Go: a lab's check starts the Go program of its listing next to
//! `lab`'s implementation ([`program::GoProgram`]) and holds both to the same
//! claims. The programs are built once per version of their sources into a
//! cache directory ([`build`]); without Go, everything else in `lab` works and
//! [`toolchain::missing`] says what to install.

pub mod build;
pub mod catalogue;
pub mod commands;
pub mod program;
pub mod toolchain;

use std::path::{Path, PathBuf};

pub use catalogue::{Catalogue, Entry};
pub use program::GoProgram;

/// The Go module of a labs directory: `labs/go`.
#[derive(Debug, Clone)]
pub struct GoModule {
    pub dir: PathBuf,
}

impl GoModule {
    /// The module beside the labs in `labs_dir`.
    pub fn in_labs(labs_dir: &Path) -> GoModule {
        GoModule {
            dir: labs_dir.join("go"),
        }
    }

    /// The module of the checkout this binary was built from (tests, and a
    /// `lab` run outside its checkout).
    pub fn built_in() -> GoModule {
        GoModule::in_labs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"))
    }

    pub fn catalogue(&self) -> anyhow::Result<Catalogue> {
        Catalogue::load(&self.dir)
    }
}

//! Building the Go module once per version of its sources: `go build -o DIR/
//! ./...` puts every program of the module in DIR, a directory of the cache
//! named by a hash of the sources and the Go version. A second run, or a
//! second check, finds them there.
//!
//! Two `lab`s may build at once (tests run in parallel): each builds into a
//! directory of its own and renames it into place; the loser of the race
//! throws its copy away. Within one process a lock keeps it to one build.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::GoModule;
use super::toolchain::Toolchain;

/// One build at a time in this process.
static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where built programs are kept: `LAB_CACHE_DIR`, else `$XDG_CACHE_HOME/lab`,
/// else `~/.cache/lab`, else the temporary directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LAB_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("lab");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache").join("lab");
    }
    std::env::temp_dir().join("lab-cache")
}

/// The built program `name` of `module`, building the module first when
/// this version of it has not been built yet.
pub async fn program(module: &GoModule, name: &str) -> anyhow::Result<PathBuf> {
    let toolchain = Toolchain::find()?;
    let bin = binaries(module, &toolchain).await?;
    let path = bin.join(name);
    if !path.is_file() {
        bail!(
            "the Go module in {} has no program {name:?} (`lab go list` lists them)",
            module.dir.display()
        );
    }
    Ok(path)
}

/// The directory that holds every program of `module`, built if need be.
pub async fn binaries(module: &GoModule, toolchain: &Toolchain) -> anyhow::Result<PathBuf> {
    let key = source_hash(&module.dir, &toolchain.version)?;
    let root = cache_dir().join("go");
    let done = root.join(format!("{key:016x}"));
    if done.is_dir() {
        return Ok(done);
    }
    let _one_at_a_time = BUILD_LOCK.lock().await;
    if done.is_dir() {
        return Ok(done);
    }
    std::fs::create_dir_all(&root)
        .with_context(|| format!("cannot create the cache directory {}", root.display()))?;
    let scratch = root.join(format!("{key:016x}.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    tracing::info!(
        "building the Go programs of {} with {} (once per change of their sources)",
        module.dir.display(),
        toolchain.version
    );
    let mut command = tokio::process::Command::new(&toolchain.go);
    command
        .arg("build")
        .arg("-o")
        .arg(format!("{}/", scratch.display()))
        .arg("./...")
        .current_dir(&module.dir)
        // Standard library only: nothing to fetch, so never try to.
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "on");
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        command.env("GOCACHE", cache_dir().join("go-build"));
    }
    let output = command
        .output()
        .await
        .with_context(|| format!("cannot run {}", toolchain.go.display()))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&scratch);
        bail!(
            "`go build ./...` in {} failed:\n{}{}",
            module.dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if std::fs::rename(&scratch, &done).is_err() {
        // Another lab finished the same build first: use its copy.
        let _ = std::fs::remove_dir_all(&scratch);
        if !done.is_dir() {
            bail!("cannot move the built Go programs into {}", done.display());
        }
    }
    Ok(done)
}

/// FNV-1a over every file of the module (path and bytes, in name order) and
/// the Go version: a new hash, a new build.
fn source_hash(dir: &Path, go_version: &str) -> anyhow::Result<u64> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)
        .with_context(|| format!("cannot read the Go module in {}", dir.display()))?;
    files.sort();
    let mut hash = Fnv1a::default();
    hash.write(go_version.as_bytes());
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        hash.write(relative.to_string_lossy().as_bytes());
        hash.write(&[0]);
        hash.write(&std::fs::read(&file)?);
        hash.write(&[0]);
    }
    Ok(hash.finish())
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|x| x == "go" || x == "mod" || x == "sum")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// The 64-bit FNV-1a hash: stable across Rust versions, unlike
/// `DefaultHasher`, so the cache outlives a toolchain update.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_changes_with_a_source_and_with_the_go_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module x\n").unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/main.go"), "package main\n").unwrap();
        std::fs::write(dir.path().join("a/notes.txt"), "ignored").unwrap();
        let first = source_hash(dir.path(), "go1.19.8").unwrap();
        assert_eq!(first, source_hash(dir.path(), "go1.19.8").unwrap());
        assert_ne!(first, source_hash(dir.path(), "go1.22.0").unwrap());
        std::fs::write(dir.path().join("a/notes.txt"), "still ignored").unwrap();
        assert_eq!(first, source_hash(dir.path(), "go1.19.8").unwrap());
        std::fs::write(dir.path().join("a/main.go"), "package main\n\n").unwrap();
        assert_ne!(first, source_hash(dir.path(), "go1.19.8").unwrap());
    }
}

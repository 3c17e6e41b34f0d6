//! `labs/go/programs.toml`: each Go program, the article section whose
//! listing it follows, its flags and an example, in article order.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// One program of the Go module.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Its directory under `labs/go`, and the name `lab go run` takes.
    pub name: String,
    /// The article heading(s) of its listing.
    pub section: String,
    pub summary: String,
    pub flags: String,
    pub example: String,
}

/// Every program, as `programs.toml` lists them.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub dir: PathBuf,
    pub programs: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    program: Vec<Entry>,
}

impl Catalogue {
    pub fn load(dir: &Path) -> anyhow::Result<Catalogue> {
        let path = dir.join("programs.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: is --labs-dir a lab checkout's labs/ folder?",
                path.display()
            )
        })?;
        let file: File =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        Ok(Catalogue {
            dir: dir.to_path_buf(),
            programs: file.program,
        })
    }

    /// The program called `name`, or an error that lists them.
    pub fn find(&self, name: &str) -> anyhow::Result<&Entry> {
        if let Some(entry) = self.programs.iter().find(|p| p.name == name) {
            return Ok(entry);
        }
        let names: Vec<&str> = self.programs.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "no Go program {name:?}; the programs are: {}. `lab go list` describes them",
            names.join(", ")
        )
    }

    /// The source files of program `name`, its `main` package first.
    pub fn sources(&self, name: &str) -> anyhow::Result<Vec<PathBuf>> {
        let entry = self.find(name)?;
        let dir = self.dir.join(&entry.name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "go"))
            .collect();
        // main.go first, then the rest by name; tests last.
        files.sort_by_key(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name != "main.go", name.ends_with("_test.go"), name)
        });
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalogue_names_a_directory_for_every_program() {
        let module = crate::golang::GoModule::built_in();
        let catalogue = module.catalogue().unwrap();
        assert!(catalogue.programs.len() >= 9, "{:?}", catalogue.programs);
        for entry in &catalogue.programs {
            let sources = catalogue.sources(&entry.name).unwrap();
            assert!(
                sources.iter().any(|p| p.ends_with("main.go")),
                "{} has no main.go",
                entry.name
            );
        }
        assert!(catalogue.find("nope").is_err());
        // `lab go list` prints each as "  article: SECTION" and "  SUMMARY":
        // both fit an 80-column terminal (a Chinese character takes two).
        let columns = |s: &str| -> usize {
            s.chars()
                .map(|c| {
                    if ('\u{2e80}'..='\u{9fff}').contains(&c) {
                        2
                    } else {
                        1
                    }
                })
                .sum()
        };
        for entry in &catalogue.programs {
            assert!(columns(&entry.section) + 11 <= 80, "{}", entry.section);
            assert!(columns(&entry.summary) + 2 <= 80, "{}", entry.summary);
        }
    }
}

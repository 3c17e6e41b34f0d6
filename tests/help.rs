//! `--help` and completions: every command of `lab`, nested ones included,
//! ends its help with an `Examples:` section in the house format, every
//! `lab …` example in it parses (so the examples cannot rot when a flag is
//! renamed), and each command has at least one example of itself (a group
//! such as `lab zk`, of one of its commands). Then
//! `lab completions bash|zsh|fish`, the real binary, prints a script that
//! knows the subcommands.
//!
//! An example line is indented two spaces; after the command, two or more
//! spaces start the commentary (`  lab trace -n 30    what it does`), and
//! lines indented further continue the commentary. A line may chain
//! commands (`lab trace && lab stats`, `printf … | lab tour 14`): each
//! `lab` in it is checked; redirections (`> FILE`) are left out.

use std::process::Command;

use clap::{CommandFactory, Parser};
use lab::cli::Cli;

/// Every command under `lab` (itself included): its path of names and its after_help.
fn commands() -> Vec<(Vec<String>, Option<String>)> {
    fn walk(
        command: &clap::Command,
        path: Vec<String>,
        out: &mut Vec<(Vec<String>, Option<String>)>,
    ) {
        out.push((
            path.clone(),
            command.get_after_help().map(|h| h.to_string()),
        ));
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_string());
            walk(sub, sub_path, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut out);
    out
}

/// The `lab …` command lines of an after_help's `Examples:` section, split into words.
fn lab_examples(after_help: &str) -> Vec<Vec<String>> {
    let Some((_, section)) = after_help.split_once("Examples:") else {
        return Vec::new();
    };
    let mut examples = Vec::new();
    for line in section.lines() {
        // An example starts at two spaces; deeper lines continue the commentary.
        let Some(text) = line.strip_prefix("  ") else {
            continue;
        };
        if text.starts_with(' ') {
            continue;
        }
        let command = text.split("  ").next().unwrap_or_default();
        let words = shell_words::split(command)
            .unwrap_or_else(|err| panic!("example {command:?} is not shell words: {err}"));
        let mut segment: Vec<String> = Vec::new();
        let mut words = words.into_iter();
        while let Some(word) = words.next() {
            match word.as_str() {
                "&&" | "||" | "|" | ";" => {
                    if segment.first().is_some_and(|w| w == "lab") {
                        examples.push(std::mem::take(&mut segment));
                    }
                    segment.clear();
                }
                ">" | ">>" | "<" | "2>" => {
                    words.next();
                }
                _ => segment.push(word),
            }
        }
        if segment.first().is_some_and(|w| w == "lab") {
            examples.push(segment);
        }
    }
    examples
}

/// The subcommand names a command line reaches (`["zk", "ls"]`).
fn subcommand_path(words: &[String]) -> Vec<String> {
    let mut path = Vec::new();
    let Ok(matches) = Cli::command().try_get_matches_from(words) else {
        return path;
    };
    let mut current = &matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(name.to_string());
        current = sub;
    }
    path
}

#[test]
fn every_command_has_examples_that_parse() {
    let mut problems = Vec::new();
    for (path, after_help) in commands() {
        let name = format!("lab {}", path.join(" ")).trim_end().to_string();
        let Some(after_help) = after_help else {
            problems.push(format!("`{name} --help` has no after_help"));
            continue;
        };
        if !after_help.contains("\nExamples:\n") && !after_help.starts_with("Examples:\n") {
            problems.push(format!("`{name} --help` has no \"Examples:\" section"));
            continue;
        }
        let examples = lab_examples(&after_help);
        for words in &examples {
            if let Err(err) = Cli::try_parse_from(words) {
                problems.push(format!(
                    "`{name} --help`: the example `{}` does not parse:\n{}",
                    words.join(" "),
                    err.render()
                ));
            }
        }
        let of_itself = examples
            .iter()
            .any(|words| subcommand_path(words).starts_with(&path));
        if !of_itself {
            problems.push(format!("`{name} --help` has no example of `{name}` itself"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn examples_are_read_as_the_house_writes_them() {
    let help = "\
Intro.

Examples:
  lab trace -n 30 && lab stats                30 requests, then the counts
  lab completions zsh > \"${fpath[1]}/_lab\"
  printf '20\\nb\\n' | lab tour 14            answers from a pipe
  curl -s 127.0.0.1:2002/abc                  not lab
  lab trace --proxy http://127.0.0.1:2012
                                              lab naive (on 2012): commentary";
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(
        lab_examples(help),
        [
            words("lab trace -n 30"),
            words("lab stats"),
            words("lab completions zsh"),
            words("lab tour 14"),
            words("lab trace --proxy http://127.0.0.1:2012"),
        ]
    );
    assert_eq!(subcommand_path(&words("lab -v zk up")), ["zk", "up"]);
}

#[test]
fn completions_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(env!("CARGO_BIN_EXE_lab"))
            .args(["completions", shell])
            .output()
            .expect("run lab completions");
        assert!(
            output.status.success(),
            "lab completions {shell}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        assert!(script.contains("lab"), "{shell}: no mention of lab");
        for subcommand in [
            "realserver",
            "proxy",
            "trace",
            "doctor",
            "zk",
            "completions",
        ] {
            assert!(
                script.contains(subcommand),
                "{shell}: the script does not know `{subcommand}`"
            );
        }
    }
}

#[test]
fn every_help_fits_80_and_120_columns_with_commands_whole() {
    for (path, after_help) in commands() {
        for width in crate::common::screen::WIDTHS {
            let output = Command::new(env!("CARGO_BIN_EXE_lab"))
                .args(&path)
                .arg("--help")
                .env("COLUMNS", width.to_string())
                .env("NO_COLOR", "1")
                .output()
                .expect("run lab --help");
            assert!(output.status.success(), "{path:?}");
            let help = String::from_utf8_lossy(&output.stdout);
            crate::common::screen::assert_fits(&help, width, &[]);
            // Each example's command is printed whole, on one line.
            for example in lab_examples(after_help.as_deref().unwrap_or_default()) {
                let command = example.join(" ");
                // (The words come unquoted, as the shell would pass them.)
                let unquoted = |l: &str| l.replace(['\'', '"'], "");
                if command.len() + 2 <= width {
                    assert!(
                        help.lines()
                            .any(|l| unquoted(l).contains(&unquoted(&command))),
                        "{command:?} is not whole in `lab {} --help` at {width}:\n{help}",
                        path.join(" ")
                    );
                }
            }
        }
    }
}

#[test]
fn the_readme_samples_fit_100_columns() {
    // The README's samples are `lab`'s output at its default width (100).
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut in_block = false;
    for (n, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_block = !in_block;
        } else if in_block {
            let width = lab::output::text_width(line);
            assert!(width <= 100, "README.md:{}: {width} columns: {line}", n + 1);
        }
    }
}

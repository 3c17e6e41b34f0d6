//! The flags of `lab exercise …` and `lab verify`: writing the article's
//! code yourself, checked by the lab's experiments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `lab exercise`: the article's code listings, to write yourself.
#[derive(Debug, Args)]
pub struct ExerciseArgs {
    #[command(subcommand)]
    pub command: ExerciseCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExerciseCommand {
    /// Every exercise, its lab, and your status (not started, failing N of M, passed).
    #[command(after_help = "\
Examples:
  lab exercise list")]
    List,
    /// Write an exercise's starting files (with TODOs) into a directory of your own.
    #[command(after_help = "\
The files go to ./lab-exercises/NN-slug/ unless --dir says otherwise, never inside labs/,
and never over files already there.

Examples:
  lab exercise start 8                        ./lab-exercises/08-round-robin/main.go
  lab exercise start 3 --dir ~/code/naive     anywhere you like")]
    Start {
        /// The exercise: its number (8, 08) or its name (round-robin).
        exercise: String,
        /// Where to write the files (default: ./lab-exercises/NN-slug).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The language of the starting files (Go, the article's; any language
        /// verifies with `lab verify N --run`).
        #[arg(long, value_name = "LANG", default_value = "go", value_parser = ["go"])]
        lang: String,
    },
    /// The next hint for the first point your last `lab verify` found failing.
    #[command(after_help = "\
Examples:
  lab exercise hint 8")]
    Hint {
        /// The exercise: its number or its name.
        exercise: String,
    },
    /// The reference solution: after your program passes, or with --give-up.
    #[command(after_help = "\
Examples:
  lab exercise solution 8                     once `lab verify 8` has passed
  lab exercise solution 8 --give-up           now (your progress records it)")]
    Solution {
        /// The exercise: its number or its name.
        exercise: String,
        /// Show it before a pass; recorded in your progress.
        #[arg(long)]
        give_up: bool,
    },
}

/// `lab verify N`: your program against the lab's experiment.
#[derive(Debug, Args)]
#[command(after_help = "\
Your program is a black box over HTTP: it listens on $LISTEN (host:port; $PORT is the port
alone) and finds the lab's real servers in $UPSTREAM (the first) and $UPSTREAMS (all,
separated by spaces). Without --run, lab builds the Go program in the directory with
`go build`; with --run, any command in any language. Exit status 0 when every point holds.

Examples:
  lab verify 8                                ./lab-exercises/08-round-robin, built with go
  lab verify 8 --watch                        again each time you save a file
  lab verify 3 --run 'python3 proxy.py'       your program in another language
  lab verify 8 --reference                    the reference solution, for comparison")]
pub struct VerifyArgs {
    /// The exercise: its number (8, 08) or its name (round-robin).
    pub exercise: String,
    /// Your program's directory (default: where `lab exercise start` wrote it).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Run your program with this shell command (in DIR) instead of `go build`.
    #[arg(long, value_name = "COMMAND")]
    pub run: Option<String>,
    /// Verify again each time a file in DIR is saved; Ctrl-C stops.
    #[arg(long)]
    pub watch: bool,
    /// Verify the reference solution instead of your program.
    #[arg(long, conflicts_with_all = ["dir", "watch"])]
    pub reference: bool,
}

//! The `lab` binary: parse the command line, set up output, run, report.
//!
//! Everything interesting lives in the library (`lab::…`); this file only maps
//! a result to an exit code, printing errors with their whole context chain.

use clap::Parser;

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    let cli = lab::cli::Cli::parse();
    match lab::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so `lab trace | head` would make the next print
/// panic on the closed pipe. Like other Unix tools, `lab` should just stop.
#[cfg(unix)]
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; it only
    // sets the signal's disposition back to the default (terminate).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}

//! The `lab` binary: parse the command line, set up output, run, report.
//!
//! Everything interesting lives in the library (`lab::…`); this file only maps
//! a result to an exit code, printing errors with their whole context chain.

fn main() -> std::process::ExitCode {
    let cli = lab::cli::parse();
    // A server whose log pipe closes keeps serving (and cleans up when
    // stopped); a command that prints a result stops like `head` expects.
    if !cli.command.serves() {
        restore_sigpipe();
    }
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
    // SAFETY: called in main before any thread exists; it only
    // sets the signal's disposition back to the default (terminate).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}

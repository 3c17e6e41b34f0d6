//! The `lab` binary: parse the command line, set up output, run, report.
//!
//! Everything interesting lives in the library (`lab::…`); this file only maps
//! a result to an exit code, printing errors with their whole context chain.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = lab::cli::Cli::parse();
    match lab::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

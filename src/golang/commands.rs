//! `lab go list`, `lab go show NAME` and `lab go run NAME [FLAGS]`: the
//! article's programs in Go, to read and run beside `lab`'s.

use std::process::{ExitCode, Stdio};

use anyhow::Context;

use super::toolchain::{self, Toolchain};
use super::{GoModule, build};
use crate::output;

/// `lab go list`: each program with its article section, flags and an example.
pub fn list(module: &GoModule) -> anyhow::Result<ExitCode> {
    let catalogue = module.catalogue()?;
    for entry in &catalogue.programs {
        println!("{}", output::heading(&entry.name));
        let width = output::width();
        output::say(&format!("  {}", entry.summary));
        output::say(&format!("  article: {}", entry.section));
        for (i, line) in wrap_flags(&entry.flags, width - 9).iter().enumerate() {
            let first = if i == 0 { "  flags: " } else { "         " };
            for part in output::wrap(line, width, first, "           ") {
                println!("{part}");
            }
        }
        output::say(&format!("  run:   {}", entry.example));
        println!();
    }
    match Toolchain::find() {
        Ok(go) => output::say(&format!(
            "Sources in {} ({} programs); built with {} on first run.\n\
             `lab go show NAME` prints one, `lab go run NAME` runs one.",
            output::display_path(&module.dir),
            catalogue.programs.len(),
            go.version
        )),
        Err(err) => output::say(&format!("{err:#}")),
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab go show NAME`: the program's source files with line numbers, as the
/// sheets cite them (`labs/go/NAME/main.go:LINE`).
pub fn show(module: &GoModule, name: &str) -> anyhow::Result<ExitCode> {
    let catalogue = module.catalogue()?;
    for (i, path) in catalogue.sources(name)?.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        println!(
            "{}",
            output::heading(&format!("── {} ──", output::display_path(path)))
        );
        for (number, line) in text.lines().enumerate() {
            println!("{:>4}  {line}", number + 1);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab go run NAME [FLAGS]`: builds once, then runs the program in the
/// foreground with the terminal as its own. Ctrl-C reaches it directly (it
/// is in the terminal's process group); a SIGTERM sent to `lab` is passed on.
/// `lab` exits with the program's status.
pub async fn run(
    module: &GoModule,
    name: &str,
    args: &[String],
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    module.catalogue()?.find(name)?;
    if Toolchain::find().is_err() {
        anyhow::bail!("{}", toolchain::missing());
    }
    let binary = build::program(module, name).await?;
    let mut child = tokio::process::Command::new(&binary)
        .args(args)
        .stdin(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let status = tokio::select! {
        status = child.wait() => status?,
        () = shutdown => {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on our own child, not yet reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
            child.wait().await?
        }
    };
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Ended by a signal: the program was stopped, as asked.
        None => ExitCode::SUCCESS,
    })
}

/// The flags text in lines of at most `width` columns, broken only before a
/// `--flag`, so no flag is split from its value.
fn wrap_flags(flags: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for (i, part) in flags.split(" --").enumerate() {
        let part = if i == 0 {
            part.to_string()
        } else {
            format!("--{part}")
        };
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + part.chars().count() <= width => {
                line.push(' ');
                line.push_str(&part);
            }
            _ => lines.push(part),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_wrap_before_a_flag_never_inside_one() {
        let lines = wrap_flags(
            "--listen ADDR (default 127.0.0.1:8080) --target URL (default http://127.0.0.1:2003/base) --max-idle-per-host 200",
            71,
        );
        assert_eq!(
            lines,
            [
                "--listen ADDR (default 127.0.0.1:8080)",
                "--target URL (default http://127.0.0.1:2003/base)",
                "--max-idle-per-host 200",
            ]
        );
        assert_eq!(
            wrap_flags("--addr A --write-timeout 3s", 71),
            ["--addr A --write-timeout 3s"]
        );
    }
}

//! The exercise commands: `lab exercise list|start|hint|solution` and
//! `lab verify`. Each resolves the labs directory, does its one job, and
//! records the learner's progress beside the labs (`labs/.progress.json`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::subject::Launch;
use super::watch::Changes;
use super::{Exercise, Exercises, verify};
use crate::labs::progress::{ExerciseProgress, Progress};
use crate::labs::resolve_dir;
use crate::output::{self, Column, Mark, display_path};

/// `lab exercise list`: every exercise, its lab and the learner's status.
pub fn list(labs_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = resolve_dir(labs_dir)?;
    let exercises = Exercises::load(&dir)?;
    let progress = Progress::load(&dir);
    let columns = [
        Column::keep("#"),
        Column::wrap("exercise and article section", 16),
        Column::keep("lab"),
        Column::wrap("status", 12),
    ];
    let rows = exercises
        .list
        .iter()
        .map(|e| {
            let mine = progress.exercises.get(&e.slug).cloned().unwrap_or_default();
            let (status, mark) = status_of(&mine);
            vec![
                (e.id(), None),
                (
                    format!("{}\n{}", e.meta.title, e.meta.article_section),
                    None,
                ),
                (format!("{:02}", e.lab.0), None),
                // The mark's symbol: its word is the status's own.
                (
                    format!("{} {status}", mark.label().split(' ').next().unwrap_or("")),
                    None,
                ),
            ]
        })
        .collect();
    println!("{}", output::fitted(&columns, rows, output::width()));
    output::say(
        "Start one with `lab exercise start N` (it writes the starting files into \
         ./lab-exercises/, never over yours), then `lab verify N` or `lab verify N --watch`.",
    );
    Ok(ExitCode::SUCCESS)
}

/// The labs directory and the exercise `spec` names in it.
fn find(labs_dir: Option<&Path>, spec: &str) -> anyhow::Result<(PathBuf, Exercise)> {
    let labs = resolve_dir(labs_dir)?;
    let exercise = Exercises::load(&labs)?.find(spec)?.clone();
    Ok((labs, exercise))
}

/// The status of an exercise in a few words, and its mark.
pub fn status_of(mine: &ExerciseProgress) -> (String, Mark) {
    let gave_up = if mine.gave_up {
        " · solution seen"
    } else {
        ""
    };
    match (mine.passed, mine.last_verify, &mine.dir) {
        (true, _, _) => (format!("passed{gave_up}"), Mark::Pass),
        (false, Some((failed, points)), _) => {
            (format!("failing {failed} of {points}{gave_up}"), Mark::Fail)
        }
        (false, None, Some(_)) => (format!("started{gave_up}"), Mark::Pending),
        (false, None, None) => (format!("not started{gave_up}"), Mark::NotStarted),
    }
}

/// `lab exercise start N [--dir DIR]`: the starting files in the learner's
/// directory. A directory with files in it is never written into.
pub fn start(labs_dir: Option<&Path>, spec: &str, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (labs, exercise) = find(labs_dir, spec)?;
    let exercise = &exercise;
    let target = dir.map_or_else(|| exercise.default_workdir(), Path::to_path_buf);
    if inside(&target, &labs) {
        bail!(
            "{} is inside the labs ({}): your code belongs in a directory of your own; \
             choose another --dir",
            target.display(),
            labs.display()
        );
    }
    if std::fs::read_dir(&target).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} already has files: nothing was written, nothing overwritten. Verify them with \
             `lab verify {}{}`, or start afresh in another directory with --dir",
            target.display(),
            exercise.number,
            dir_flag(exercise, &target)
        );
    }
    std::fs::create_dir_all(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(exercise.start_dir())
        .with_context(|| format!("cannot read {}", exercise.start_dir().display()))?
    {
        let entry = entry?;
        let to = target.join(entry.file_name());
        std::fs::copy(entry.path(), &to)
            .with_context(|| format!("cannot write {}", to.display()))?;
        written.push(display_path(&to));
    }
    written.sort();
    let mut progress = Progress::load(&labs);
    progress
        .exercises
        .entry(exercise.slug.clone())
        .or_default()
        .dir = Some(std::path::absolute(&target).unwrap_or(target.clone()));
    progress.save()?;

    let n = exercise.number;
    let flag = dir_flag(exercise, &target);
    println!("{}", title_line(exercise));
    output::say(&format!(
        "article: {} · lab {:02} (`lab show {}`)",
        exercise.meta.article_section, exercise.lab.0, exercise.lab.0
    ));
    output::say(&format!("wrote {}", written.join(", ")));
    output::say(&format!(
        "\nWhat to write: {} The TODOs are numbered in the order `lab verify` checks them.\n\nNext:",
        exercise.meta.summary
    ));
    // The commands whole, their commentary in one column beside them.
    let next = [
        (
            format!("lab verify {n}{flag}"),
            "build it, run it, check it",
        ),
        (
            format!("lab verify {n}{flag} --watch"),
            "again on every save",
        ),
        (
            format!("lab exercise hint {n}"),
            "when stuck: the next hint for the first failing point",
        ),
    ];
    let column = next.iter().map(|(c, _)| c.len()).max().unwrap_or(0) + 4;
    for (command, what) in next {
        let first = format!("  {command:<column$}");
        let under = " ".repeat(column + 2);
        for line in output::wrap(what, output::width(), &first, &under) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `Exercise 08 · Round robin (轮询负载均衡)`, as a heading.
fn title_line(exercise: &Exercise) -> String {
    output::heading(&format!(
        "Exercise {} · {}",
        exercise.id(),
        exercise.meta.title
    ))
}

/// ` --dir DIR` when DIR is not the exercise's default.
fn dir_flag(exercise: &Exercise, dir: &Path) -> String {
    if dir == exercise.default_workdir() {
        String::new()
    } else {
        format!(" --dir {}", display_path(dir))
    }
}

/// Whether `path` is `root` or under it (both made absolute).
fn inside(path: &Path, root: &Path) -> bool {
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .ok()
            .map(|p| p.canonicalize().unwrap_or(p))
    };
    // The target may not exist yet: compare its nearest existing ancestor.
    let mut probe = path.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    match (absolute(&probe), absolute(root)) {
        (Some(p), Some(r)) => p.starts_with(r),
        _ => false,
    }
}

/// What `lab verify` runs.
pub struct VerifyRequest<'a> {
    pub spec: &'a str,
    pub dir: Option<&'a Path>,
    pub run: Option<&'a str>,
    pub watch: bool,
    /// Verify the reference solution instead of the learner's program.
    pub reference: bool,
}

/// `lab verify N`: builds and runs the learner's program against the
/// exercise's experiment; with `watch`, again on every save until Ctrl-C.
pub async fn verify(
    labs_dir: Option<&Path>,
    request: VerifyRequest<'_>,
) -> anyhow::Result<ExitCode> {
    let (labs, exercise) = find(labs_dir, request.spec)?;
    let exercise = &exercise;
    let dir = if request.reference {
        exercise.solution_dir()
    } else {
        match request.dir {
            Some(dir) => dir.to_path_buf(),
            None => Progress::load(&labs)
                .exercises
                .get(&exercise.slug)
                .and_then(|p| p.dir.clone())
                .filter(|d| d.is_dir())
                .unwrap_or_else(|| exercise.default_workdir()),
        }
    };
    if !dir.is_dir() {
        bail!(
            "{} does not exist: `lab exercise start {}` writes the starting files there \
             (or point --dir at your program)",
            display_path(&dir),
            exercise.number
        );
    }
    let launch = match request.run {
        Some(command) => Launch::Command {
            dir: dir.clone(),
            command: command.to_string(),
        },
        None => Launch::Go { dir: dir.clone() },
    };
    if !request.watch {
        return verify_once(&labs, exercise, &launch, request.reference).await;
    }
    let mut changes = Changes::watch(&dir)?;
    // One Ctrl-C listener for the whole watch, made before the first run: a
    // listener made per wait would miss a Ctrl-C pressed during a run (the
    // handler stays installed, so the default exit would not happen either).
    let shutdown = crate::net::shutdown_signal();
    tokio::pin!(shutdown);
    let mut code = ExitCode::FAILURE;
    loop {
        if std::io::stdout().is_terminal() {
            // Clear the screen and go home, as rustlings does.
            print!("\x1b[2J\x1b[H");
        }
        // Ctrl-C during a run stops it: the program is killed with it.
        code = tokio::select! {
            run = verify_once(&labs, exercise, &launch, request.reference) => run?,
            () = &mut shutdown => break,
        };
        output::say(&format!(
            "\nwatching {} for changes (Ctrl-C stops)",
            display_path(&dir)
        ));
        tokio::select! {
            changed = changes.next() => match changed {
                Some(path) => {
                    output::say(&format!("{} changed: verifying again", display_path(&path)));
                }
                None => break,
            },
            () = &mut shutdown => break,
        }
    }
    Ok(code)
}

/// One verify: run, print the report, record the progress.
async fn verify_once(
    labs: &Path,
    exercise: &Exercise,
    launch: &Launch,
    reference: bool,
) -> anyhow::Result<ExitCode> {
    let width = output::width();
    println!("{}", title_line(exercise));
    let subject = if reference {
        format!("the reference solution ({})", launch.describe())
    } else {
        launch.describe()
    };
    let role = match exercise.meta.upstreams {
        0 => format!(
            "as the real server, with lab {:02}'s probes",
            exercise.lab.0
        ),
        n => format!(
            "in front of {n} of lab {:02}'s real servers",
            exercise.lab.0
        ),
    };
    output::say(&format!("verifying {subject} {role}"));
    let outcome = verify::run(exercise, launch).await?;
    print!("{}", outcome.render(exercise, width));
    let n = exercise.number;
    let points = outcome.points.len();
    if outcome.passed() {
        output::say(&format!(
            "\n{} exercise {n}: all {points} points hold. `lab exercise solution {n}` shows the \
             reference to compare with.",
            Mark::Pass.styled()
        ));
    } else if outcome.trouble.is_some() {
        output::say(&format!(
            "\n{} exercise {n}: not verified",
            Mark::Fail.styled()
        ));
    } else {
        output::say(&format!(
            "\n{} exercise {n}: {} of {points} points fail. Stuck? `lab exercise hint {n}`.",
            Mark::Fail.styled(),
            outcome.failed()
        ));
    }
    if !reference {
        let mut progress = Progress::load(labs);
        let mine = progress.exercises.entry(exercise.slug.clone()).or_default();
        if outcome.trouble.is_none() {
            mine.last_verify = Some((outcome.failed(), points));
        }
        mine.passed |= outcome.passed();
        mine.first_failing = outcome.first_failure().map(|p| p.id.clone());
        mine.unverified = mine.first_failing.is_none() && !outcome.passed();
        progress.save()?;
    }
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `lab exercise hint N`: the next hint of the point the last verify
/// failed first.
pub fn hint(labs_dir: Option<&Path>, spec: &str) -> anyhow::Result<ExitCode> {
    let (labs, exercise) = find(labs_dir, spec)?;
    let exercise = &exercise;
    let n = exercise.number;
    let mut progress = Progress::load(&labs);
    let mine = progress.exercises.entry(exercise.slug.clone()).or_default();
    let point = match mine.first_failing.clone() {
        Some(point) => point,
        None if mine.unverified => {
            output::say(&format!(
                "Your program could not be verified (see `lab verify {n}`): make it build and \
                 listen on $LISTEN first."
            ));
            return Ok(ExitCode::SUCCESS);
        }
        None if mine.passed => {
            output::say(&format!(
                "Exercise {n} passed: no hint needed. `lab exercise solution {n}` shows the reference."
            ));
            return Ok(ExitCode::SUCCESS);
        }
        None => {
            output::say(&format!(
                "Run `lab verify {n}` first: the hint follows the first point it finds failing."
            ));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let hints = exercise.hints(&point);
    // `lab verify` printed the first hint as its "Next step": start after it.
    let seen = mine
        .hints_seen
        .entry(point.clone())
        .or_insert(usize::from(hints.len() > 1));
    match hints.get(*seen) {
        Some(text) => {
            output::say(&format!(
                "{} for `{point}`: {text}",
                output::heading(&format!("Hint {}/{}", *seen + 1, hints.len()))
            ));
            *seen += 1;
        }
        None if hints.is_empty() => output::say(&format!("`{point}` has no hints.")),
        None => output::say(&format!(
            "No more hints for `{point}`: all {} shown. `lab exercise solution {n} --give-up` \
             shows the reference (and records that you looked).",
            hints.len()
        )),
    }
    progress.save()?;
    Ok(ExitCode::SUCCESS)
}

/// `lab exercise solution N`: the reference, after a pass or with `give_up`
/// (recorded).
pub fn solution(labs_dir: Option<&Path>, spec: &str, give_up: bool) -> anyhow::Result<ExitCode> {
    let (labs, exercise) = find(labs_dir, spec)?;
    let exercise = &exercise;
    let n = exercise.number;
    let mut progress = Progress::load(&labs);
    let mine = progress.exercises.entry(exercise.slug.clone()).or_default();
    if !mine.passed && !give_up {
        output::say(&format!(
            "The reference is shown once your program passes `lab verify {n}`. To see it now, \
             `lab exercise solution {n} --give-up` (your progress records that you looked)."
        ));
        return Ok(ExitCode::FAILURE);
    }
    if !mine.passed {
        mine.gave_up = true;
        progress.save()?;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(exercise.solution_dir())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x != "mod"))
        .collect();
    files.sort();
    for file in files {
        println!(
            "{}",
            output::heading(&format!("── {}", display_path(&file)))
        );
        // Code as written: to compare line by line, or to paste.
        print!("{}", std::fs::read_to_string(&file)?);
    }
    Ok(ExitCode::SUCCESS)
}

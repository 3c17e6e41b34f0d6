//! Issue 8: every `lab …` command a sheet (`labs/*/README.md`) tells the
//! learner to type runs for real, on free ports, and none fails: no sheet can
//! drift from the program.
//!
//! How it works:
//!
//! - **Extract.** Each fenced ` ```sh ` block is read like a very small shell:
//!   `\` continuations joined, quotes honoured, `# comments` set aside, lines
//!   split at `;`, `&`, `&&`, `||` and `|`, redirections dropped, and
//!   `for V in WORDS; do … done` unrolled when its words are written out.
//!   Every command whose first word is `lab` is taken (piped *into* something,
//!   `lab trace | head`, it runs whole; piped *from* something, it cannot get
//!   its input and must be marked). `kill $!` and `kill -9 $!` stop the last
//!   `lab` server started, as in the shell. Everything else (`curl`, `sleep`)
//!   is the learner's, not the program's, and is left out. A `lab` anywhere
//!   else on a line (`sudo lab …`, `$(lab …)`) is an error, so none slips by.
//! - **Ports.** Every port a command names (`127.0.0.1:2003`, `zk://…:2181`,
//!   `--listen 2012`) and every port in one of the program's default
//!   addresses gets a free loopback port of its own, and the words are
//!   rewritten. Defaults reach the program through the `LAB_*` variables that
//!   `src/cli.rs` declares on its default addresses (`lab proxy` without
//!   `--listen` reads `LAB_PROXY_LISTEN`); the values are clap's own defaults
//!   with their ports mapped, so this file never restates a default.
//! - **Run.** A sheet is one session, block after block, like a learner with
//!   a few terminals: `lab realserver`, `lab proxy`, `lab naive`,
//!   `lab forward` and `lab zk up` start in the background and must log their
//!   ready line (`… (Ctrl-C stops …)`) on the addresses planned for them; one
//!   that will listen where an earlier one listens replaces it ("Ctrl-C it and
//!   start the next"). Every other command runs to completion and must exit 0.
//!   At the end every server gets SIGTERM, must exit 0 (a clean Ctrl-C), and
//!   its ports must be free again. Each sheet gets a private copy of `labs/`
//!   (`LAB_LABS_DIR`), so `lab check` and `lab hint` never touch the
//!   checkout's progress. Sheets run in parallel, each on its own ports.
//! - **Exceptions** are written in the sheet, as the line's comment:
//!   `# exits N: why` (the command is meant to fail with status N) and
//!   `# not run: why` (it cannot run in a test, e.g. it needs a terminal).
//!   `lab transparent` is never run here (its network lives in namespaces
//!   on fixed addresses): lab 04's check and tests/transparent.rs run it.
//! - Sheets that need ZooKeeper (`lab zk …`, a `zk://` URL) run when Debian's
//!   package is installed and are skipped with a message otherwise (see
//!   `common::zookeeper::available`).

use crate::common::labs::{LabsCopy, checkout_labs, labs_copy};
use crate::common::zookeeper;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::CommandFactory;

/// How many sheets run at once (most of a sheet's time is spent waiting).
const JOBS: usize = 4;
/// How long a server may take to log its ready line (ZooKeeper starts a JVM).
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long any other command may run.
const FINITE_WITHIN: Duration = Duration::from_secs(60);
/// How long a server may take to stop after SIGTERM (a real server drains for up to 10 s).
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// What every `lab` server logs once it is ready: its "try: …" line.
const READY_MARK: &str = "(Ctrl-C stops";
/// The commands that run until stopped.
const SERVERS: &[&[&str]] = &[
    &["realserver"],
    &["proxy"],
    &["naive"],
    &["forward"],
    &["zk", "up"],
    &["go", "run"],
];
/// Log marks followed by an address a server listens on.
const LISTEN_MARKS: &[&str] = &[
    "Starting httpserver at ",
    "Starting ReverseProxy at ",
    "server on ",
    "ZooKeeper ready at zk://",
    // The Go programs of labs/go.
    "listening on ",
];
/// How much of a failed command's output a report shows.
const TAIL: usize = 25;

#[test]
fn every_lab_command_in_the_sheets_runs() {
    let started = Instant::now();
    let labs = checkout_labs();
    let mut sheets = Vec::new();
    let mut errors = Vec::new();
    for path in sheet_paths(&labs) {
        let text = std::fs::read_to_string(&path).expect("read a sheet");
        match parse_sheet(&path, &text) {
            Ok(sheet) => sheets.push(sheet),
            Err(errs) => errors.extend(errs),
        }
    }
    assert!(
        errors.is_empty(),
        "the harness cannot read these sheet lines:\n{}",
        errors.join("\n")
    );
    assert!(!sheets.is_empty(), "no sheets under {}", labs.display());

    let zookeeper = sheets.iter().any(Sheet::needs_zookeeper) && zookeeper::available();
    // The slowest first (ZooKeeper, then the most commands), so the pool ends together.
    sheets.sort_by_key(|s| (!s.needs_zookeeper(), std::cmp::Reverse(s.steps.len())));

    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..JOBS.min(sheets.len()) {
            scope.spawn(|| {
                while let Some(sheet) = sheets.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let report = if sheet.needs_zookeeper() && !zookeeper {
                        Report::skipped(sheet, zookeeper::SKIPPED)
                    } else {
                        Session::run(sheet)
                    };
                    eprintln!("{}", report.line());
                    reports.lock().unwrap().push(report);
                }
            });
        }
    });

    let mut reports = reports.into_inner().unwrap();
    reports.sort_by(|a, b| a.sheet.cmp(&b.sheet));
    let ran: usize = reports.iter().map(|r| r.ran).sum();
    let mut summary = String::new();
    for report in &reports {
        summary.push_str(&report.line());
        summary.push('\n');
    }
    eprintln!(
        "\n{summary}{ran} commands from {} sheets in {:.1} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    let failures: Vec<&String> = reports.iter().flat_map(|r| &r.failures).collect();
    assert!(
        failures.is_empty(),
        "{} sheet command(s) failed:\n\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// `labs/*/README.md`, in order.
fn sheet_paths(labs: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(labs)
        .expect("read labs/")
        .map(|entry| entry.expect("a labs/ entry").path())
        // Lab folders only (`NN-slug`): labs/go is the Go module.
        .filter(|dir| {
            dir.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| lab::labs::parse_folder_name(n).is_some())
        })
        .map(|dir| dir.join("README.md"))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
}

// ---------------------------------------------------------------------------
// Reading the sheets: a very small shell.
// ---------------------------------------------------------------------------

/// A sheet and the steps its ```sh blocks hold, in order.
#[derive(Debug)]
struct Sheet {
    /// `labs/NN-slug/README.md`, for reports.
    name: String,
    steps: Vec<Step>,
}

impl Sheet {
    fn needs_zookeeper(&self) -> bool {
        self.steps.iter().any(|step| match &step.action {
            Action::Run { argv, .. } => {
                argv.first().is_some_and(|w| w == "zk") || argv.iter().any(|w| w.contains("zk://"))
            }
            _ => false,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    /// The sheet's line number (1-based) where the command's line starts.
    line: usize,
    /// The line as written (continuation lines included).
    written: String,
    action: Action,
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// `lab ARGV…`, expected to exit with this status (0 unless `# exits N: why`);
    /// a server expected to exit 0 runs until stopped.
    Run { argv: Vec<String>, expect: i32 },
    /// `# not run: why`.
    NotRun(Vec<String>, String),
    /// `kill $!` (SIGTERM) or `kill -9 $!` (SIGKILL): the last server started.
    Kill(i32),
}

/// One word of a command: its pieces, each marked whether a shell would
/// expand `$NAME` in it (unquoted or double-quoted) or not (single-quoted).
#[derive(Debug, Clone, Default, PartialEq)]
struct Word {
    parts: Vec<(String, bool)>,
}

impl Word {
    fn value(&self) -> String {
        self.parts.iter().map(|(text, _)| text.as_str()).collect()
    }

    /// An unquoted keyword such as `for`, `do`, `lab`.
    fn is(&self, keyword: &str) -> bool {
        self.parts.iter().all(|(_, expands)| *expands) && self.value() == keyword
    }

    /// The word with `$var` / `${var}` replaced by `value` where a shell would.
    fn expand(&self, var: &str, value: &str) -> Word {
        let mut parts = Vec::new();
        for (text, expands) in &self.parts {
            if !expands {
                parts.push((text.clone(), false));
                continue;
            }
            let mut plain = String::new();
            let mut rest = text.as_str();
            while let Some(at) = rest.find('$') {
                plain.push_str(&rest[..at]);
                let after = &rest[at + 1..];
                let (name, len) = match after.strip_prefix('{') {
                    Some(inner) => match inner.find('}') {
                        Some(end) => (&inner[..end], end + 2),
                        None => ("", 0),
                    },
                    None => {
                        let end = after
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(after.len());
                        (&after[..end], end)
                    }
                };
                if !name.is_empty() && name == var {
                    parts.push((std::mem::take(&mut plain), true));
                    parts.push((value.to_string(), false));
                    rest = &after[len..];
                } else {
                    plain.push('$');
                    rest = after;
                }
            }
            plain.push_str(rest);
            parts.push((plain, true));
        }
        Word { parts }
    }

    /// A `$…` a shell would still expand (a variable, `$(…)`, `$!`), if any.
    fn unexpanded(&self) -> Option<String> {
        self.parts
            .iter()
            .filter(|(_, expands)| *expands)
            .find(|(text, _)| {
                text.char_indices().any(|(i, c)| {
                    c == '$'
                        && text[i + 1..].starts_with(|n: char| {
                            n.is_ascii_alphanumeric() || "_{(!?#@*-$".contains(n)
                        })
                })
            })
            .map(|(text, _)| text.clone())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(Word),
    /// `;` `&` `&&` `|` `||`.
    Op(&'static str),
}

/// Splits one logical line into words and operators; returns them and the
/// comment (the text after an unquoted `#` that starts a word).
fn tokenize(line: &str) -> Result<(Vec<Token>, Option<String>), String> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    loop {
        while at(i).is_some_and(|c| c == ' ' || c == '\t') {
            i += 1;
        }
        let Some(c) = at(i) else { break };
        match c {
            '#' => {
                let comment: String = chars[i + 1..].iter().collect();
                return Ok((tokens, Some(comment.trim().to_string())));
            }
            ';' => {
                tokens.push(Token::Op(";"));
                i += 1;
            }
            '&' | '|' => {
                let double = at(i + 1) == Some(c);
                tokens.push(Token::Op(match (c, double) {
                    ('&', true) => "&&",
                    ('&', false) => "&",
                    ('|', true) => "||",
                    _ => "|",
                }));
                i += if double { 2 } else { 1 };
            }
            _ if is_redirect(&chars[i..]) => {
                // `2>/dev/null`, `> out`, `2>&1`, `< in`: output is captured
                // anyway and no sheet feeds a file in, so the whole thing goes.
                while at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                while at(i).is_some_and(|c| "<>&".contains(c)) {
                    i += 1;
                }
                while at(i).is_some_and(|c| c == ' ' || c == '\t') {
                    i += 1;
                }
                let (_, end) = word(&chars, i)?;
                i = end;
            }
            _ => {
                let (word, end) = word(&chars, i)?;
                tokens.push(Token::Word(word));
                i = end;
            }
        }
    }
    Ok((tokens, None))
}

/// `>`, `<`, or digits right before one, at the start of a word.
fn is_redirect(chars: &[char]) -> bool {
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    matches!(chars.get(digits), Some('>' | '<'))
}

/// The word starting at `start`; returns it and where it ends.
fn word(chars: &[char], start: usize) -> Result<(Word, usize), String> {
    let mut parts: Vec<(String, bool)> = Vec::new();
    let mut push = |text: String, expands: bool| match parts.last_mut() {
        Some((last, e)) if *e == expands => last.push_str(&text),
        _ => parts.push((text, expands)),
    };
    let mut i = start;
    while let Some(&c) = chars.get(i) {
        match c {
            ' ' | '\t' | ';' | '&' | '|' | '<' | '>' => break,
            '\'' => {
                let end = (i + 1..chars.len())
                    .find(|&j| chars[j] == '\'')
                    .ok_or("a ' is never closed")?;
                push(chars[i + 1..end].iter().collect(), false);
                i = end + 1;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("a \" is never closed".into()),
                        Some('"') => break,
                        Some('\\') if chars.get(i + 1).is_some_and(|n| "\"\\$`".contains(*n)) => {
                            text.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&other) => {
                            text.push(other);
                            i += 1;
                        }
                    }
                }
                push(text, true);
                i += 1;
            }
            '\\' => {
                if let Some(&next) = chars.get(i + 1) {
                    push(next.to_string(), false);
                }
                i += 2;
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                // A command substitution: one word, spaces and all, kept as written.
                let mut depth = 0;
                let mut end = i + 1;
                while let Some(&c) = chars.get(end) {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    end += 1;
                    if depth == 0 {
                        break;
                    }
                }
                if depth != 0 {
                    return Err("a $( is never closed".into());
                }
                push(chars[i..end].iter().collect(), true);
                i = end;
            }
            other => {
                push(other.to_string(), true);
                i += 1;
            }
        }
    }
    Ok((Word { parts }, i))
}

/// A command between two operators, on one logical line.
#[derive(Debug, Clone)]
struct Simple {
    words: Vec<Word>,
    /// Index of its logical line.
    line: usize,
    /// Its input comes from a pipe (`… | lab …`).
    piped_in: bool,
}

/// A line of a block as the shell sees it: continuation lines joined.
#[derive(Debug)]
struct Logical {
    number: usize,
    written: String,
    comment: Option<String>,
}

#[derive(Debug)]
enum Node {
    Simple(Simple),
    For {
        var: String,
        /// `None` when a word is not written out (`$(seq 8)`).
        items: Option<Vec<String>>,
        body: Vec<Node>,
        line: usize,
    },
}

/// Reads a sheet's ```sh blocks into steps; every line it cannot read is an error.
fn parse_sheet(path: &Path, text: &str) -> Result<Sheet, Vec<String>> {
    let name = path
        .iter()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<PathBuf>()
        .display()
        .to_string();
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (first_line, block) in sh_blocks(text) {
        match parse_block(first_line, &block) {
            Ok(mut block_steps) => steps.append(&mut block_steps),
            Err(err) => errors.push(format!("{name}:{err}")),
        }
    }
    if errors.is_empty() {
        Ok(Sheet { name, steps })
    } else {
        Err(errors)
    }
}

/// The ```sh (or bash, shell) blocks: the number of their first line and their lines.
fn sh_blocks(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for (index, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match current.take() {
            None => {
                if let Some(info) = fence.strip_prefix("```") {
                    let lang = info.split_whitespace().next().unwrap_or("");
                    if ["sh", "bash", "shell"].contains(&lang) {
                        current = Some((index + 2, Vec::new()));
                    }
                }
            }
            Some((first, lines)) if fence.starts_with("```") => blocks.push((first, lines)),
            Some((first, mut lines)) => {
                lines.push(line.to_string());
                current = Some((first, lines));
            }
        }
    }
    blocks
}

/// One block into steps. Errors name the line: `LINE: what`.
fn parse_block(first_line: usize, lines: &[String]) -> Result<Vec<Step>, String> {
    // Join `\` continuations.
    let mut logical: Vec<(usize, String, String)> = Vec::new(); // number, written, joined
    let mut pending: Option<(usize, String, String)> = None;
    for (offset, line) in lines.iter().enumerate() {
        let number = first_line + offset;
        let (start, mut written, mut joined) =
            pending
                .take()
                .unwrap_or((number, String::new(), String::new()));
        if !written.is_empty() {
            written.push('\n');
        }
        written.push_str(line);
        match line.trim_end().strip_suffix('\\') {
            Some(body) => {
                joined.push_str(body);
                pending = Some((start, written, joined));
            }
            None => {
                joined.push_str(line);
                logical.push((start, written, joined));
            }
        }
    }
    if let Some((number, _, _)) = pending {
        return Err(format!(
            "{number}: the block ends inside a `\\` continuation"
        ));
    }

    let mut lines = Vec::new();
    let mut simples: Vec<Simple> = Vec::new();
    let mut piped = false;
    for (index, (number, written, joined)) in logical.into_iter().enumerate() {
        let (tokens, comment) = tokenize(&joined).map_err(|err| format!("{number}: {err}"))?;
        let mut current: Vec<Word> = Vec::new();
        for token in tokens {
            match token {
                Token::Word(word) => current.push(word),
                Token::Op(op) => {
                    if !current.is_empty() {
                        simples.push(Simple {
                            words: std::mem::take(&mut current),
                            line: index,
                            piped_in: piped,
                        });
                    }
                    piped = op == "|";
                }
            }
        }
        if !current.is_empty() {
            simples.push(Simple {
                words: current,
                line: index,
                piped_in: piped,
            });
            piped = false;
        }
        lines.push(Logical {
            number,
            written: written.trim().to_string(),
            comment,
        });
    }
    // `do` only opens a loop's body: drop it from the body's first command.
    simples.retain_mut(|s| {
        if s.words[0].is("do") {
            s.words.remove(0);
        }
        !s.words.is_empty()
    });

    let at = |s: &Simple| lines[s.line].number;
    let mut index = 0;
    let nodes = structure(&simples, &mut index, false, &at)?;
    let mut unrolled = Vec::new();
    unroll(&nodes, &[], &mut unrolled)?;

    let mut steps = Vec::new();
    for simple in unrolled {
        let line = &lines[simple.line];
        let step = |action| Step {
            line: line.number,
            written: line.written.clone(),
            action,
        };
        let first = &simple.words[0];
        if first.is("lab") {
            let marker =
                marker(line.comment.as_deref()).map_err(|e| format!("{}: {e}", line.number))?;
            let argv: Vec<String> = simple.words[1..].iter().map(Word::value).collect();
            if let Some(Marker::NotRun(why)) = marker {
                steps.push(step(Action::NotRun(argv, why)));
                continue;
            }
            // Its network is on fixed documentation addresses inside
            // namespaces, where the ports cannot be mapped: lab 04's check
            // and tests/transparent.rs run these commands for real.
            if argv.first().map(String::as_str) == Some("transparent") {
                let why = "lab transparent builds its own namespaces (lab check 4 runs it)";
                steps.push(step(Action::NotRun(argv, why.to_string())));
                continue;
            }
            if simple.piped_in {
                return Err(format!(
                    "{}: `lab` reads from a pipe, which a test cannot give it; mark the line `# not run: why`",
                    line.number
                ));
            }
            if let Some(text) = simple.words.iter().find_map(Word::unexpanded) {
                return Err(format!(
                    "{}: {text:?} is left for the shell to expand; write the value, or mark the line `# not run: why`",
                    line.number
                ));
            }
            steps.push(step(match marker {
                Some(Marker::Exits(expect)) => Action::Run { argv, expect },
                _ => Action::Run { argv, expect: 0 },
            }));
        } else if first.is("kill") && simple.words.last().is_some_and(|w| w.is("$!")) {
            let kill = simple.words[1..simple.words.len() - 1]
                .iter()
                .any(|w| ["-9", "-KILL", "-SIGKILL"].contains(&w.value().as_str()));
            steps.push(step(Action::Kill(if kill {
                libc::SIGKILL
            } else {
                libc::SIGTERM
            })));
        } else if let Some(stray) = simple.words[1..]
            .iter()
            .find(|w| w.is("lab") || w.value().contains("$(lab ") || w.value().contains(" lab "))
        {
            return Err(format!(
                "{}: `lab` inside another command ({:?}): the harness runs commands that start with `lab`; \
                 give it a command of its own, or mark the line `# not run: why`",
                line.number,
                stray.value()
            ));
        }
    }
    Ok(steps)
}

/// Groups `for … do … done` (the `do` already dropped) into nodes.
fn structure(
    simples: &[Simple],
    index: &mut usize,
    in_loop: bool,
    at: &dyn Fn(&Simple) -> usize,
) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while let Some(simple) = simples.get(*index) {
        *index += 1;
        let first = &simple.words[0];
        if first.is("done") {
            if in_loop {
                return Ok(nodes);
            }
            return Err(format!("{}: `done` without a `for`", at(simple)));
        }
        if first.is("for") {
            let var = simple.words.get(1).map(Word::value).unwrap_or_default();
            if !simple.words.get(2).is_some_and(|w| w.is("in")) || var.is_empty() {
                return Err(format!("{}: read `for NAME in WORDS…` only", at(simple)));
            }
            let items = simple.words[3..]
                .iter()
                .map(|w| w.unexpanded().is_none().then(|| w.value()))
                .collect();
            let body = structure(simples, index, true, at)?;
            nodes.push(Node::For {
                var,
                items,
                body,
                line: at(simple),
            });
            continue;
        }
        if ["while", "until", "if", "case", "select"]
            .iter()
            .any(|k| first.is(k))
        {
            return Err(format!(
                "{}: `{}` is more shell than the harness reads; use `for NAME in WORDS`, \
                 or mark the line `# not run: why`",
                at(simple),
                first.value()
            ));
        }
        nodes.push(Node::Simple(simple.clone()));
    }
    if in_loop {
        return Err("a `for` loop is never closed with `done`".into());
    }
    Ok(nodes)
}

/// Unrolls loops with written-out words; loops over anything else may only hold
/// commands the harness does not run.
fn unroll(
    nodes: &[Node],
    bindings: &[(String, String)],
    out: &mut Vec<Simple>,
) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Simple(simple) => {
                let mut simple = simple.clone();
                for (var, value) in bindings {
                    simple.words = simple.words.iter().map(|w| w.expand(var, value)).collect();
                }
                out.push(simple);
            }
            Node::For {
                var,
                items,
                body,
                line,
            } => match items {
                Some(items) => {
                    for item in items {
                        let mut inner = bindings.to_vec();
                        inner.push((var.clone(), item.clone()));
                        unroll(body, &inner, out)?;
                    }
                }
                None => {
                    let mut probe = Vec::new();
                    unroll(body, bindings, &mut probe)?;
                    if probe.iter().any(|s| s.words[0].is("lab")) {
                        return Err(format!(
                            "{line}: a `for` over words that are not written out holds a `lab` command; \
                             write the words, or mark the line `# not run: why`"
                        ));
                    }
                }
            },
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Marker {
    Exits(i32),
    NotRun(String),
}

/// `# exits N: why` or `# not run: why`, from a line's comment.
fn marker(comment: Option<&str>) -> Result<Option<Marker>, String> {
    let Some(comment) = comment else {
        return Ok(None);
    };
    if let Some(rest) = comment.strip_prefix("not run") {
        return match rest.strip_prefix(':').map(str::trim) {
            Some(why) if !why.is_empty() => Ok(Some(Marker::NotRun(why.to_string()))),
            _ => Err("write `# not run: why` (the reason is required)".into()),
        };
    }
    if let Some(rest) = comment.strip_prefix("exits ") {
        let parsed = rest.split_once(':').and_then(|(code, why)| {
            let code = code.trim().parse::<i32>().ok()?;
            (!why.trim().is_empty()).then_some(code)
        });
        return match parsed {
            Some(code) => Ok(Some(Marker::Exits(code))),
            None => Err("write `# exits N: why` (a status and a reason)".into()),
        };
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// Ports and the program's defaults.
// ---------------------------------------------------------------------------

/// Where `text` names a port after a loopback host (`127.0.0.1:2003`,
/// `localhost:2003`, `[::1]:2003`): the byte range of the digits and the port.
fn port_spans(text: &str) -> Vec<(usize, usize, u16)> {
    let mut spans = Vec::new();
    for host in ["127.0.0.1:", "localhost:", "[::1]:"] {
        for (at, _) in text.match_indices(host) {
            let start = at + host.len();
            let end = text[start..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(text.len(), |n| start + n);
            if let Ok(port) = text[start..end].parse::<u16>()
                && port != 0
            {
                spans.push((start, end, port));
            }
        }
    }
    spans.sort();
    spans
}

/// Flags whose value may be a bare port (`--listen 2012`, `--addr :2013`).
const PORT_FLAGS: &[&str] = &["--addr", "--listen", "--allow-connect-port"];

/// Every port the words name.
fn ports_in(argv: &[String]) -> Vec<u16> {
    let mut ports = Vec::new();
    for (i, word) in argv.iter().enumerate() {
        ports.extend(port_spans(word).into_iter().map(|(_, _, p)| p));
        if let Some(port) = bare_port(argv, i) {
            ports.push(port);
        }
    }
    ports
}

/// The port a `PORT_FLAGS` value is, when written as `2012` or `:2012`.
fn bare_port(argv: &[String], i: usize) -> Option<u16> {
    let word = &argv[i];
    let value = match PORT_FLAGS
        .iter()
        .find_map(|f| word.strip_prefix(&format!("{f}=")))
    {
        Some(value) => value,
        None if i > 0 && PORT_FLAGS.contains(&argv[i - 1].as_str()) => word.as_str(),
        None => return None,
    };
    value
        .strip_prefix(':')
        .unwrap_or(value)
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
}

/// The sheet's ports and the free ones standing in for them.
struct Ports(BTreeMap<u16, u16>);

impl Ports {
    fn port(&self, port: u16) -> u16 {
        self.0.get(&port).copied().unwrap_or(port)
    }

    fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (start, end, port) in port_spans(text).into_iter().rev() {
            out.replace_range(start..end, &self.port(port).to_string());
        }
        out
    }

    fn argv(&self, argv: &[String]) -> Vec<String> {
        (0..argv.len())
            .map(|i| match bare_port(argv, i) {
                Some(port) => argv[i].replace(&port.to_string(), &self.port(port).to_string()),
                None => self.text(&argv[i]),
            })
            .collect()
    }
}

/// Ports handed out by this process, so parallel sheets never share one.
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free loopback port below the kernel's ephemeral range, so that an
/// outgoing connection's local port cannot take it before the server binds.
fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let mut taken = TAKEN.lock().unwrap();
    if low > 12_000 {
        let (from, to) = (low - 10_000, low);
        let span = u32::from(to - from);
        let start = std::process::id().wrapping_mul(7919) % span;
        for offset in 0..span {
            let port = from + ((start + offset) % span) as u16;
            if !taken.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                taken.insert(port);
                return port;
            }
        }
    }
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("its address").port();
        if taken.insert(port) {
            return port;
        }
    }
}

/// The program's command line, built (global flags propagated).
fn cli() -> clap::Command {
    let mut command = lab::cli::Cli::command();
    command.build();
    command
}

/// Every port in a default value the `LAB_*` variables can redirect.
fn default_ports() -> Vec<u16> {
    fn walk(command: &clap::Command, ports: &mut Vec<u16>) {
        for arg in command.get_arguments() {
            if arg.get_env().is_some() {
                for value in arg.get_default_values() {
                    let value = value.to_string_lossy();
                    ports.extend(port_spans(&value).into_iter().map(|(_, _, p)| p));
                }
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, ports);
        }
    }
    let mut ports = Vec::new();
    walk(&cli(), &mut ports);
    ports
}

/// What a command line resolves to.
struct Resolved {
    /// The subcommand path: `["zk", "up"]`.
    path: Vec<String>,
    /// `LAB_*` variables that move its defaulted addresses onto the sheet's ports.
    env: Vec<(String, String)>,
    /// Where it will listen, if it is a server: explicit or default.
    listens: Vec<SocketAddr>,
}

fn resolve(argv: &[String], ports: &Ports) -> Resolved {
    let root = cli();
    let mut command = &root;
    let mut path = Vec::new();
    let mut i = 0;
    let mut positional = false;
    let takes_value = |command: &clap::Command, word: &str| {
        let found = match word.strip_prefix("--") {
            Some(long) => command.get_arguments().find(|a| a.get_long() == Some(long)),
            None => {
                let short = word.chars().last();
                command.get_arguments().find(|a| a.get_short() == short)
            }
        };
        found.is_some_and(|a| a.get_action().takes_values())
    };
    while let Some(word) = argv.get(i) {
        if word.starts_with('-') && word.len() > 1 {
            let attached = word.contains('=') || (!word.starts_with("--") && word.len() > 2);
            if !attached && takes_value(command, word) {
                i += 1;
            }
        } else if let Some(sub) = command.find_subcommand(word) {
            path.push(sub.get_name().to_string());
            command = sub;
        } else {
            positional = true;
            break;
        }
        i += 1;
    }

    let given = |arg: &clap::Arg| {
        if arg.is_positional() {
            return positional;
        }
        argv.iter().any(|w| {
            arg.get_long()
                .is_some_and(|l| w == &format!("--{l}") || w.starts_with(&format!("--{l}=")))
                || arg
                    .get_short()
                    .is_some_and(|s| !w.starts_with("--") && w.starts_with(&format!("-{s}")))
        })
    };
    let mut env = Vec::new();
    let mut defaults: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for arg in command.get_arguments() {
        let Some(name) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else {
            continue;
        };
        let values: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| ports.text(&v.to_string_lossy()))
            .collect();
        if !name.starts_with("LAB_") || values.is_empty() {
            continue;
        }
        defaults.insert(arg.get_id().to_string(), values.clone());
        // An explicit flag wins anyway; and a value from the environment
        // counts as given for clap's conflicts (`lab proxy --discovery` with
        // LAB_PROXY_UPSTREAMS set is refused), so leave those out.
        let conflicts = command.get_arg_conflicts_with(arg);
        let conflicts_back = command
            .get_arguments()
            .filter(|other| {
                command
                    .get_arg_conflicts_with(other)
                    .iter()
                    .any(|c| c.get_id() == arg.get_id())
            })
            .collect::<Vec<_>>();
        if given(arg) || conflicts.iter().chain(&conflicts_back).any(|c| given(c)) {
            continue;
        }
        let delimiter = match (values.len(), arg.get_value_delimiter()) {
            (1, _) => String::new(),
            (_, Some(d)) => d.to_string(),
            (_, None) => panic!("{name} has several defaults but no value_delimiter"),
        };
        env.push((name, values.join(&delimiter)));
    }

    let mut listens = Vec::new();
    if SERVERS.iter().any(|s| *s == path) {
        for id in ["addrs", "listen"] {
            let Some(arg) = command.get_arguments().find(|a| a.get_id() == id) else {
                continue;
            };
            let long = format!("--{}", arg.get_long().unwrap_or(id));
            let mut explicit = Vec::new();
            for (i, word) in argv.iter().enumerate() {
                if let Some(value) = word.strip_prefix(&format!("{long}=")) {
                    explicit.push(value.to_string());
                } else if word == &long {
                    explicit.extend(argv.get(i + 1).cloned());
                }
            }
            let values = if explicit.is_empty() {
                defaults.get(id).cloned().unwrap_or_default()
            } else {
                explicit
            };
            for value in values {
                for one in value.split(',') {
                    if let Ok(addr) = lab::parse::parse_listen_addr(one) {
                        listens.push(addr);
                    }
                }
            }
        }
    }
    if path == ["go", "run"] {
        // A Go program's flags are Go's (labs/go), not clap's: the sheet
        // names its addresses with --listen or --addr (-listen, -addr).
        for (i, word) in argv.iter().enumerate() {
            let flag = word.trim_start_matches('-');
            let value = match flag.split_once('=') {
                Some((name, value)) if name == "listen" || name == "addr" => Some(value),
                None if word.starts_with('-') && (flag == "listen" || flag == "addr") => {
                    argv.get(i + 1).map(String::as_str)
                }
                _ => None,
            };
            if let Some(addr) = value.and_then(|v| lab::parse::parse_listen_addr(v).ok()) {
                listens.push(addr);
            }
        }
    }
    Resolved { path, env, listens }
}

/// `NAME=value … lab ARGV…`, quoted for a shell.
fn as_run(env: &[(String, String)], argv: &[String]) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut words: Vec<String> = env
        .iter()
        .map(|(name, value)| format!("{name}={}", quote(value)))
        .collect();
    words.push("lab".into());
    words.extend(argv.iter().map(|a| quote(a)));
    words.join(" ")
}

// ---------------------------------------------------------------------------
// Running a sheet.
// ---------------------------------------------------------------------------

/// What a sheet's run came to.
struct Report {
    sheet: String,
    ran: usize,
    servers: usize,
    not_run: usize,
    elapsed: Duration,
    skipped: Option<String>,
    failures: Vec<String>,
}

impl Report {
    fn new(sheet: &Sheet) -> Report {
        Report {
            sheet: sheet.name.clone(),
            ran: 0,
            servers: 0,
            not_run: 0,
            elapsed: Duration::ZERO,
            skipped: None,
            failures: Vec::new(),
        }
    }

    fn skipped(sheet: &Sheet, why: &str) -> Report {
        Report {
            skipped: Some(why.to_string()),
            ..Report::new(sheet)
        }
    }

    fn line(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("{}: {why}", self.sheet);
        }
        let mark = if self.failures.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        let not_run = match self.not_run {
            0 => String::new(),
            n => format!(", {n} marked not run"),
        };
        format!(
            "{}: {mark}: {} lab commands ({} servers, {} to completion){not_run} in {:.1} s",
            self.sheet,
            self.ran,
            self.servers,
            self.ran - self.servers,
            self.elapsed.as_secs_f64()
        )
    }
}

/// A lab server started by a sheet.
struct Server {
    process: Process,
    line: usize,
    written: String,
    run: String,
    listens: Vec<SocketAddr>,
    /// Stopped by a `kill -9 $!` of the sheet: its exit status is no one's business.
    killed: bool,
    /// Already stopped (and checked).
    stopped: bool,
}

struct Session<'a> {
    sheet: &'a Sheet,
    dir: tempfile::TempDir,
    ports: Ports,
    servers: Vec<Server>,
    report: Report,
}

impl<'a> Session<'a> {
    fn run(sheet: &'a Sheet) -> Report {
        let started = Instant::now();
        // A private copy of labs/ (`LAB_LABS_DIR`), without progress.
        let LabsCopy { dir, .. } = labs_copy();

        let mut wanted: BTreeSet<u16> = default_ports().into_iter().collect();
        for step in &sheet.steps {
            if let Action::Run { argv, .. } = &step.action {
                wanted.extend(ports_in(argv));
            }
        }
        let ports = Ports(wanted.into_iter().map(|p| (p, free_port())).collect());

        let mut session = Session {
            sheet,
            dir,
            ports,
            servers: Vec::new(),
            report: Report::new(sheet),
        };
        for (index, step) in sheet.steps.iter().enumerate() {
            if let Err(failure) = session.step(step) {
                let left = sheet.steps.len() - index - 1;
                let rest = match left {
                    0 => String::new(),
                    n => format!("\n  ({n} later step(s) of this sheet not run)"),
                };
                session.report.failures.push(format!("{failure}{rest}"));
                break;
            }
        }
        session.stop_all();
        session.report.elapsed = started.elapsed();
        session.report
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match &step.action {
            Action::NotRun(..) => {
                self.report.not_run += 1;
                Ok(())
            }
            Action::Kill(signal) => {
                let sheet = &self.sheet.name;
                let Some(server) = self.servers.iter_mut().rev().find(|s| !s.stopped) else {
                    return Err(format!(
                        "{sheet}:{}: {}\n  `kill $!` but no lab server is running",
                        step.line, step.written
                    ));
                };
                if *signal == libc::SIGKILL {
                    server.killed = true;
                }
                stop(sheet, server, *signal)
            }
            Action::Run { argv, expect } => self.lab(step, argv, *expect),
        }
    }

    fn lab(&mut self, step: &Step, argv: &[String], expect: i32) -> Result<(), String> {
        let argv = self.ports.argv(argv);
        let resolved = resolve(&argv, &self.ports);
        let labs_dir = self.dir.path().join("labs").display().to_string();
        let mut env = resolved.env.clone();
        env.push(("LAB_LABS_DIR".into(), labs_dir));
        let run = as_run(&resolved.env, &argv);
        let sheet = self.sheet.name.clone();
        let head = format!("{sheet}:{}: {}\n  ran: {run}", step.line, step.written);
        self.report.ran += 1;
        eprintln!("{sheet}:{}: {run}", step.line);
        let is_server = SERVERS.iter().any(|s| *s == resolved.path) && expect == 0;

        if is_server {
            // Ctrl-C the one that listens there first, as the sheets say.
            for earlier in self.servers.iter_mut().filter(|s| !s.stopped) {
                if earlier.listens.iter().any(|a| resolved.listens.contains(a)) {
                    stop(&sheet, earlier, libc::SIGTERM)?;
                }
            }
            self.report.servers += 1;
            let mut process = Process::spawn(&argv, &env, self.dir.path());
            if let Err(why) = process.wait_ready(READY_WITHIN) {
                return Err(format!("{head}\n  {why}{}", process.tails()));
            }
            let logged = process.listening();
            let strays: Vec<&SocketAddr> = logged
                .iter()
                .filter(|a| !resolved.listens.contains(a))
                .collect();
            if logged.is_empty() || !strays.is_empty() {
                return Err(format!(
                    "{head}\n  listens on {logged:?}, but the harness planned {:?} (a LAB_* default not applied?){}",
                    resolved.listens,
                    process.tails()
                ));
            }
            self.servers.push(Server {
                process,
                line: step.line,
                written: step.written.clone(),
                run,
                listens: resolved.listens,
                killed: false,
                stopped: false,
            });
            return Ok(());
        }

        let mut process = Process::spawn(&argv, &env, self.dir.path());
        match process.wait_exit(FINITE_WITHIN) {
            None => {
                process.kill_group();
                Err(format!(
                    "{head}\n  did not finish within {FINITE_WITHIN:?}{}",
                    process.tails()
                ))
            }
            Some(status) if status.code() == Some(expect) => Ok(()),
            Some(status) => Err(format!(
                "{head}\n  {} (the sheet expects exit {expect}{}){}",
                describe(status),
                if expect == 0 {
                    "; a line meant to fail says so: `# exits N: why`"
                } else {
                    ""
                },
                process.tails()
            )),
        }
    }

    /// Stops every server still running (the last started first), then checks their ports are free.
    fn stop_all(&mut self) {
        let sheet = self.sheet.name.clone();
        for server in self.servers.iter_mut().rev() {
            if !server.stopped
                && let Err(failure) = stop(&sheet, server, libc::SIGTERM)
            {
                self.report.failures.push(failure);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for server in &self.servers {
            for addr in &server.listens {
                while !port_free(*addr) {
                    if Instant::now() > deadline {
                        self.report.failures.push(format!(
                            "{sheet}:{}: {}\n  ran: {}\n  {addr} is still taken after the server stopped",
                            server.line, server.written, server.run
                        ));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// Sends `signal` to a server and waits for it to exit; after SIGTERM it must
/// exit 0 (the sheets promise a clean Ctrl-C), and it must not have exited before.
fn stop(sheet: &str, server: &mut Server, signal: i32) -> Result<(), String> {
    server.stopped = true;
    let head = format!(
        "{sheet}:{}: {}\n  ran: {}",
        server.line, server.written, server.run
    );
    if let Some(status) = server.process.try_wait() {
        server.process.drain();
        return Err(format!(
            "{head}\n  exited on its own ({}) while the sheet still relied on it{}",
            describe(status),
            server.process.tails()
        ));
    }
    server.process.signal(signal);
    match server.process.wait_exit(STOP_WITHIN) {
        None => {
            server.process.kill_group();
            Err(format!(
                "{head}\n  still running {STOP_WITHIN:?} after SIGTERM{}",
                server.process.tails()
            ))
        }
        Some(_) if server.killed => Ok(()),
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!(
            "{head}\n  {} after SIGTERM (a clean stop exits 0){}",
            describe(status),
            server.process.tails()
        )),
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Whether a server could listen on `addr` now (SO_REUSEADDR, as `lab` binds).
fn port_free(addr: SocketAddr) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("a socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(addr).is_ok() && socket.listen(1).is_ok()
    })
}

// ---------------------------------------------------------------------------
// A `lab` process: its output read line by line, in its own process group.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Captured {
    stdout: Vec<String>,
    stderr: Vec<String>,
    open_pipes: usize,
}

struct Process {
    child: Child,
    output: Arc<(Mutex<Captured>, Condvar)>,
    status: Option<ExitStatus>,
}

impl Process {
    fn spawn(argv: &[String], env: &[(String, String)], dir: &Path) -> Process {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lab"));
        command.args(argv);
        // The learner's settings must not leak in (LAB_AUTH_TOKEN, RUST_LOG …).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LAB_") {
                command.env_remove(name);
            }
        }
        command
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a cleanup reaches whatever it started (ZooKeeper's JVM).
            .process_group(0);
        let mut child = command.spawn().expect("spawn lab");
        let output = Arc::new((
            Mutex::new(Captured {
                open_pipes: 2,
                ..Captured::default()
            }),
            Condvar::new(),
        ));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        read_lines(stdout, output.clone(), false);
        read_lines(stderr, output.clone(), true);
        Process {
            child,
            output,
            status: None,
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("wait for lab");
        }
        self.status
    }

    /// Waits for the ready mark on stderr; an exit or the deadline first is an error.
    fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            {
                let (lock, changed) = &*self.output;
                let captured = lock.lock().unwrap();
                if captured.stderr.iter().any(|l| l.contains(READY_MARK)) {
                    return Ok(());
                }
                drop(
                    changed
                        .wait_timeout(captured, Duration::from_millis(50))
                        .unwrap(),
                );
            }
            if let Some(status) = self.try_wait() {
                self.drain();
                return Err(format!(
                    "exited ({}) before logging its ready line {READY_MARK:?}",
                    describe(status)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "did not log its ready line {READY_MARK:?} within {within:?}"
                ));
            }
        }
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                self.drain();
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After the exit: waits (briefly) until both pipes are read to the end.
    fn drain(&self) {
        let (lock, changed) = &*self.output;
        let captured = lock.lock().unwrap();
        drop(
            changed
                .wait_timeout_while(captured, Duration::from_secs(2), |c| c.open_pipes > 0)
                .unwrap(),
        );
    }

    fn signal(&mut self, signal: i32) {
        if self.try_wait().is_none() {
            let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
            // SAFETY: kill(2) on our own child, which has not been reaped
            // (try_wait said it is running), so the pid is still its.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// SIGKILL to the whole group, for a process that will not stop.
    fn kill_group(&mut self) {
        if self.try_wait().is_none() {
            let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
            // SAFETY: the group was made for this child (process_group(0)) and
            // the child, its leader, is not reaped, so the id is still ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }

    /// The addresses its log says it listens on.
    fn listening(&self) -> Vec<SocketAddr> {
        let captured = self.output.0.lock().unwrap();
        let mut addrs = Vec::new();
        for line in &captured.stderr {
            for mark in LISTEN_MARKS {
                if let Some((_, rest)) = line.split_once(mark) {
                    let word = rest.split_whitespace().next().unwrap_or_default();
                    if let Ok(addr) = word.parse() {
                        addrs.push(addr);
                    }
                }
            }
        }
        addrs
    }

    /// The last lines of its stderr and stdout, for a report.
    fn tails(&self) -> String {
        let captured = self.output.0.lock().unwrap();
        let mut out = String::new();
        for (name, lines) in [("stderr", &captured.stderr), ("stdout", &captured.stdout)] {
            let skip = lines.len().saturating_sub(TAIL);
            let shown = if skip > 0 {
                format!(" (last {TAIL} of {} lines)", lines.len())
            } else {
                String::new()
            };
            if lines.is_empty() {
                out.push_str(&format!("\n  {name}: (empty)"));
                continue;
            }
            out.push_str(&format!("\n  {name}{shown}:"));
            for line in &lines[skip..] {
                out.push_str("\n    ");
                out.push_str(line);
            }
        }
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_group();
    }
}

fn read_lines(
    pipe: impl Read + Send + 'static,
    output: Arc<(Mutex<Captured>, Condvar)>,
    stderr: bool,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let done = !matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0);
            let (lock, changed) = &*output;
            let mut captured = lock.lock().unwrap();
            if done {
                captured.open_pipes -= 1;
                changed.notify_all();
                return;
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            if stderr {
                captured.stderr.push(line);
            } else {
                captured.stdout.push(line);
            }
            changed.notify_all();
        }
    });
}

// ---------------------------------------------------------------------------
// The reader itself.
// ---------------------------------------------------------------------------

fn steps_of(block: &str) -> Result<Vec<Step>, String> {
    let lines: Vec<String> = block.lines().map(str::to_string).collect();
    parse_block(1, &lines)
}

fn runs(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match &s.action {
            Action::Run { argv, expect: 0 } => argv.join(" "),
            Action::Run { argv, expect } => format!("{} [exits {expect}]", argv.join(" ")),
            Action::NotRun(argv, why) => format!("{} [not run: {why}]", argv.join(" ")),
            Action::Kill(signal) => format!("kill {signal}"),
        })
        .collect()
}

#[test]
fn the_reader_takes_lab_commands_like_a_shell() {
    let steps = steps_of(
        "\
lab realserver                                  # :2003 and :2004
lab proxy --lb random --seed 7 \\
  --upstream 'http://127.0.0.1:2003/base?name=123' --upstream http://127.0.0.1:2004/base
curl -s 127.0.0.1:2002/abc | grep -i x-lab-upstream
for lb in random rr; do
  lab proxy --lb $lb --listen 127.0.0.1:2012 2>/dev/null & sleep 0.5
  echo \"$lb: $(for i in $(seq 12); do curl -s 127.0.0.1:2012/abc; done | sort | uniq -c)\"
  kill $!; wait $! 2>/dev/null
done
for i in $(seq 8); do curl -s 127.0.0.1:2002/abc; done
lab trace -n 3 -H 'Connection: X-Foo' | head -5   # a trace, cut short
lab realserver --addr 127.0.0.1:2003 &  # in the background
kill -9 $!
lab check 99 # exits 1: there is no lab 99
lab tour 14 # not run: asks questions at a terminal
lab stats && lab labs; lab show 1",
    )
    .unwrap();
    assert_eq!(
        runs(&steps),
        [
            "realserver",
            "proxy --lb random --seed 7 --upstream http://127.0.0.1:2003/base?name=123 --upstream http://127.0.0.1:2004/base",
            "proxy --lb random --listen 127.0.0.1:2012",
            "kill 15",
            "proxy --lb rr --listen 127.0.0.1:2012",
            "kill 15",
            "trace -n 3 -H Connection: X-Foo",
            "realserver --addr 127.0.0.1:2003",
            "kill 9",
            "check 99 [exits 1]",
            "tour 14 [not run: asks questions at a terminal]",
            "stats",
            "labs",
            "show 1",
        ]
    );
    assert_eq!(steps[1].line, 2);
    assert!(
        steps[1].written.ends_with("http://127.0.0.1:2004/base"),
        "{:?}",
        steps[1]
    );
    assert_eq!(steps[2].line, 6);
}

#[test]
fn the_reader_refuses_what_it_cannot_run() {
    for (block, why) in [
        ("sudo lab realserver", "inside another command"),
        ("echo \"$(lab trace -n 1)\"", "inside another command"),
        ("lab proxy --lb $LB", "left for the shell"),
        ("printf '20\\n' | lab tour 14", "reads from a pipe"),
        ("for i in $(seq 3); do lab trace; done", "not written out"),
        ("if true; then lab trace; fi", "more shell"),
        ("lab check 1 # exits one: oops", "# exits N: why"),
        ("lab tour 1 # not run", "# not run: why"),
        ("lab proxy --rewrite 'x", "never closed"),
    ] {
        let err = steps_of(block).unwrap_err();
        assert!(err.contains(why), "{block}: {err}");
    }
}

#[test]
fn ports_are_rewritten_where_they_are_named() {
    let ports = Ports([(2002, 31002), (2003, 31003), (2012, 31012), (2181, 31181)].into());
    let argv: Vec<String> = [
        "proxy",
        "--upstream",
        "http://127.0.0.1:2003/base,10",
        "--listen",
        "2012",
        "--discovery",
        "zk://localhost:2181/lab/realserver",
        "-n",
        "2002",
        "--path=/x:2003",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        ports.argv(&argv),
        [
            "proxy",
            "--upstream",
            "http://127.0.0.1:31003/base,10",
            "--listen",
            "31012",
            "--discovery",
            "zk://localhost:31181/lab/realserver",
            "-n",
            "2002",
            "--path=/x:2003",
        ]
    );
    let mut found = ports_in(&argv);
    found.sort();
    assert_eq!(found, [2003, 2012, 2181]);
}

#[test]
fn defaults_move_through_the_environment() {
    let ports = Ports(
        default_ports()
            .into_iter()
            .map(|p| (p, p + 30_000))
            .collect(),
    );
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let env = |s: &str| resolve(&words(s), &ports).env;
    let has = |env: &[(String, String)], name: &str| env.iter().any(|(n, _)| n == name);

    let realserver = resolve(&words("realserver"), &ports);
    assert_eq!(realserver.path, ["realserver"]);
    let addrs: Vec<String> = realserver.listens.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["127.0.0.1:32003", "127.0.0.1:32004"]);

    let proxy = env("proxy --lb rr");
    assert!(
        has(&proxy, "LAB_PROXY_LISTEN") && has(&proxy, "LAB_PROXY_UPSTREAMS"),
        "{proxy:?}"
    );
    // --discovery conflicts with --upstream: its variable would count as given.
    let discovery = env("proxy --discovery zk://127.0.0.1:2181/lab/realserver");
    assert!(!has(&discovery, "LAB_PROXY_UPSTREAMS"), "{discovery:?}");
    assert!(has(&env("trace -n 3"), "LAB_TRACE_PROXY"));
    assert!(!has(
        &env("trace --direct http://127.0.0.1:2003"),
        "LAB_TRACE_PROXY"
    ));
    // An explicit flag needs no variable.
    assert!(!has(
        &env("proxy --listen 127.0.0.1:2012"),
        "LAB_PROXY_LISTEN"
    ));
    assert!(has(&env("-v zk up"), "LAB_ZK_LISTEN"));
    assert!(!has(&env("zk ls zk://127.0.0.1:2181/x"), "LAB_ZK_URL"));
    let listens = resolve(&words("zk up"), &ports).listens;
    assert_eq!(listens, ["127.0.0.1:32181".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn a_failing_command_is_reported_with_what_ran() {
    let sheet = parse_sheet(
        Path::new("labs/99-harness/README.md"),
        "\
```sh
lab realserver
lab realserver --addr 127.0.0.1:2003   # replaces the first: both listen on :2003
lab realserver --addr 127.0.0.1:2005 &
kill -9 $!
lab check 99   # exits 1: there is no lab 99
lab proxy --no-such-flag
lab trace
```",
    )
    .unwrap();
    let report = Session::run(&sheet);
    assert_eq!(
        (report.ran, report.servers),
        (5, 4),
        "{:#?}",
        report.failures
    );
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    let failure = &report.failures[0];
    for expected in [
        "labs/99-harness/README.md:7: lab proxy --no-such-flag\n",
        "ran: LAB_PROXY_LISTEN=127.0.0.1:",
        " LAB_PROXY_UPSTREAMS='http://127.0.0.1:",
        "exited (exit 2) before logging its ready line",
        "unexpected argument '--no-such-flag'",
        "(1 later step(s) of this sheet not run)",
    ] {
        assert!(failure.contains(expected), "{expected:?} in:\n{failure}");
    }

    let sheet = parse_sheet(
        Path::new("labs/99-harness/README.md"),
        "```sh\nlab realserver\nlab show 99\n```",
    )
    .unwrap();
    let report = Session::run(&sheet);
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    let failure = &report.failures[0];
    for expected in [
        "labs/99-harness/README.md:3: lab show 99\n  ran: lab show 99\n",
        "exit 1 (the sheet expects exit 0; a line meant to fail says so: `# exits N: why`)",
        "stderr:\n    error:",
    ] {
        assert!(failure.contains(expected), "{expected:?} in:\n{failure}");
    }
}

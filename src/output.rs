//! Presentation in one place: whether to colour, how tables look, and the
//! marks that carry meaning without colour (✓ pass, ✗ fail, • pending).
//!
//! Colour is decided once, at start-up, from `--color`, `NO_COLOR` and whether
//! the stream is a terminal; everything else asks [`color`].

use std::io::IsTerminal;
use std::sync::OnceLock;

use colored::Colorize;
use comfy_table::{Cell, Color, ContentArrangement, Table, presets};

/// When to colour: `--color auto|always|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

static STDOUT_COLOR: OnceLock<bool> = OnceLock::new();
static STDERR_COLOR: OnceLock<bool> = OnceLock::new();

/// Decides colour for stdout and stderr once; later calls change nothing.
pub fn init(choice: ColorChoice) {
    let decide = |is_tty: bool| match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let out = *STDOUT_COLOR.get_or_init(|| decide(std::io::stdout().is_terminal()));
    STDERR_COLOR.get_or_init(|| decide(std::io::stderr().is_terminal()));
    colored::control::set_override(out);
}

/// Whether stdout is coloured (false until [`init`] runs, e.g. in tests).
pub fn color() -> bool {
    STDOUT_COLOR.get().copied().unwrap_or(false)
}

/// Whether stderr (the logs) is coloured.
pub fn stderr_color() -> bool {
    STDERR_COLOR.get().copied().unwrap_or(false)
}

/// A table in the lab's house style; styled only when colour is on.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    // The screen's width ([`width`]): the terminal's, `COLUMNS`, or the default.
    table.set_width(u16::try_from(width()).unwrap_or(u16::MAX));
    if color() {
        table.enforce_styling();
        table.set_header(header.iter().map(|h| Cell::new(h).fg(Color::Cyan)));
    } else {
        table.force_no_tty();
        table.set_header(header.to_vec());
    }
    table
}

/// The outcome of a claim, a prediction or a whole lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Fail,
    Pending,
    NotStarted,
    /// A prediction that was answered and did not come true: the learner's
    /// to learn from, not a failure of the lab.
    Wrong,
}

impl Mark {
    /// The symbol and word, e.g. `✓ pass`: meaning never rests on colour alone.
    pub fn label(self) -> &'static str {
        match self {
            Mark::Pass => "✓ pass",
            Mark::Fail => "✗ fail",
            Mark::Pending => "• pending",
            Mark::NotStarted => "· not checked",
            Mark::Wrong => "✗ wrong",
        }
    }

    /// A table cell holding [`Mark::label`], coloured when colour is on.
    pub fn cell(self) -> Cell {
        let cell = Cell::new(self.label());
        match self.colour() {
            Some(c) => cell.fg(c),
            None => cell,
        }
    }

    /// [`Mark::label`] as the text of a [`fitted`] table's cell.
    pub fn text(self) -> Text {
        (self.label().to_string(), self.colour())
    }

    fn colour(self) -> Option<Color> {
        match self {
            Mark::Pass => Some(Color::Green),
            Mark::Fail => Some(Color::Red),
            Mark::Pending => Some(Color::Yellow),
            Mark::NotStarted => None,
            Mark::Wrong => Some(Color::Magenta),
        }
    }

    /// [`Mark::label`] for running text, coloured when colour is on.
    pub fn styled(self) -> String {
        let label = self.label();
        match self {
            Mark::Pass => label.green().to_string(),
            Mark::Fail => label.red().bold().to_string(),
            Mark::Pending => label.yellow().to_string(),
            Mark::NotStarted => label.dimmed().to_string(),
            Mark::Wrong => label.magenta().to_string(),
        }
    }
}

/// A heading line for running output (bold when colour is on).
pub fn heading(text: &str) -> String {
    text.bold().to_string()
}

/// What a screen is drawn in when nothing says otherwise: not a terminal,
/// no `COLUMNS`. The README's samples are drawn at this width.
pub const DEFAULT_WIDTH: usize = 100;

/// The narrowest width a screen is fitted to; below it lines may overflow.
const MIN_WIDTH: usize = 40;

/// The width to fit the screens to: `COLUMNS` when it is set to a number
/// (tests set it; so can a user, as with `git` or `ls`), else the width of
/// the terminal stdout is, else [`DEFAULT_WIDTH`].
pub fn width() -> usize {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    let terminal = || {
        std::io::stdout()
            .is_terminal()
            .then(|| Table::new().width().map(usize::from))
            .flatten()
    };
    columns
        .or_else(terminal)
        .unwrap_or(DEFAULT_WIDTH)
        .max(MIN_WIDTH)
}

/// How many columns `text` takes on a terminal (colour codes take none).
pub fn text_width(text: &str) -> usize {
    if !text.contains('\x1b') {
        return unicode_width::UnicodeWidthStr::width(text);
    }
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        width += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
    }
    width
}

/// Prints `text` with each line wrapped to the screen ([`width`]) by
/// [`wrap`]: continuation lines keep the line's indent, and two more after
/// a leading `→ `, `- ` or `• `.
pub fn say(text: &str) {
    println!("{}", wrapped(text, width()));
}

/// `text` as [`say`] prints it at `width` columns.
pub fn wrapped(text: &str, width: usize) -> String {
    text.lines()
        .flat_map(|line| {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            let hang = if ["→ ", "- ", "• "].iter().any(|b| body.starts_with(b)) {
                "  "
            } else {
                ""
            };
            let rest = format!("{indent}{hang}");
            wrap(body, width, indent, &rest)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` cut to at most `max` columns, ending in `…` when it was cut.
pub fn ellipsize(text: &str, max: usize) -> String {
    if text_width(text) <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// `text` wrapped at spaces into lines of at most `width` columns, each
/// after `indent` (the first after `first`, which may differ: a bullet). A
/// word never breaks (an address, a port, a URL, a `command` in backticks
/// stays whole on one line); a word wider than a line is cut with `…`.
pub fn wrap(text: &str, width: usize, first: &str, indent: &str) -> Vec<String> {
    // Spaces inside `backticks` do not break: a command is one word here.
    let mut words: Vec<String> = Vec::new();
    let mut in_code = false;
    for piece in text.split(' ') {
        match words.last_mut() {
            Some(last) if in_code => {
                last.push(' ');
                last.push_str(piece);
            }
            // A run of spaces is kept (aligned columns stay aligned), unless
            // the line breaks there.
            Some(last) if piece.is_empty() => last.push(' '),
            _ => words.push(piece.to_string()),
        }
        if piece.matches('`').count() % 2 == 1 {
            in_code = !in_code;
        }
    }
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in words.into_iter().filter(|w| !w.is_empty()) {
        let room = width.saturating_sub(text_width(&line));
        if !empty && text_width(word.trim_end()) + 1 > room {
            let done = std::mem::replace(&mut line, indent.to_string());
            lines.push(done.trim_end().to_string());
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        let room = width.saturating_sub(text_width(&line));
        line.push_str(&ellipsize(&word, room));
        empty = false;
    }
    lines.push(line.trim_end().to_string());
    lines
}

/// How a column of a [`fitted`] table gives way when the table is too wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never narrowed: a number, an address, a short label.
    Keep,
    /// Values cut with `…`, down to this many columns.
    Cut(usize),
    /// Prose, wrapped at spaces, down to this many columns.
    Wrap(usize),
}

/// One column of a [`fitted`] table.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    pub header: &'a str,
    pub fit: Fit,
    /// Right-aligned (numbers).
    pub right: bool,
}

impl<'a> Column<'a> {
    pub fn keep(header: &'a str) -> Column<'a> {
        Column {
            header,
            fit: Fit::Keep,
            right: false,
        }
    }

    pub fn cut(header: &'a str, min: usize) -> Column<'a> {
        Column {
            header,
            fit: Fit::Cut(min),
            right: false,
        }
    }

    pub fn wrap(header: &'a str, min: usize) -> Column<'a> {
        Column {
            header,
            fit: Fit::Wrap(min),
            right: false,
        }
    }

    pub fn right(self) -> Column<'a> {
        Column {
            right: true,
            ..self
        }
    }
}

/// A table cell's text, and its colour when colour is on.
pub type Text = (String, Option<Color>);

/// The width a table of columns this wide takes, borders included
/// (`│ a ┆ b │`).
pub fn table_width(widths: &[usize]) -> usize {
    widths.iter().sum::<usize>() + 3 * widths.len() + 1
}

/// Column widths that fit `width`: each column's widest cell, then the
/// columns that may give way narrowed to their minimum, the most slack
/// first: prose (wrapped) before values (cut).
pub fn fit_widths(columns: &[Column<'_>], rows: &[Vec<Text>], width: usize) -> Vec<usize> {
    let mut widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .flat_map(|(text, _)| text.lines())
                .map(text_width)
                .chain([text_width(column.header)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Prose gives way first (it wraps), then values (they are cut).
    for wraps in [true, false] {
        while table_width(&widths) > width {
            let slack = |i: usize| match columns[i].fit {
                Fit::Wrap(min) if wraps => widths[i].saturating_sub(min),
                Fit::Cut(min) if !wraps => widths[i].saturating_sub(min),
                _ => 0,
            };
            match (0..columns.len())
                .filter(|&i| slack(i) > 0)
                .max_by_key(|&i| slack(i))
            {
                Some(i) => widths[i] -= 1,
                None => break,
            }
        }
    }
    widths
}

/// A table in the house style that fits `width` columns without the
/// terminal ever wrapping a line: cells cut with `…` or prose wrapped at
/// spaces as each column allows ([`Fit`]), never a value broken across
/// lines.
pub fn fitted(columns: &[Column<'_>], rows: Vec<Vec<Text>>, width: usize) -> Table {
    let widths = fit_widths(columns, &rows, width);
    let shaped = |i: usize, text: &str| -> String {
        let w = widths[i];
        match columns[i].fit {
            Fit::Wrap(_) => text
                .lines()
                .flat_map(|line| wrap(line, w, "", ""))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => text
                .lines()
                .map(|line| ellipsize(line, w))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    };
    let headers: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| ellipsize(c.header, widths[i]))
        .collect();
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if color() {
        table.enforce_styling();
        table.set_header(headers.iter().map(|h| Cell::new(h).fg(Color::Cyan)));
    } else {
        table.force_no_tty();
        table.set_header(headers);
    }
    for row in rows {
        table.add_row(row.iter().enumerate().map(|(i, (text, colour))| {
            let cell = Cell::new(shaped(i, text));
            match colour {
                Some(c) => cell.fg(*c),
                None => cell,
            }
        }));
    }
    for (i, column) in columns.iter().enumerate() {
        if let Some(c) = table.column_mut(i)
            && column.right
        {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    table
}

/// `    label:         value`: a labelled line of a block (a prediction, a
/// claim), the value wrapped under itself at `width` columns, each of its
/// lines in turn.
pub fn field(label: &str, value: &str, width: usize) -> String {
    let first = format!("    {:<15}", format!("{label}:"));
    let under = " ".repeat(text_width(&first));
    let mut out = String::new();
    for (i, line) in value.lines().enumerate() {
        let lead = if i == 0 {
            first.as_str()
        } else {
            under.as_str()
        };
        for part in wrap(line, width, lead, &under) {
            out.push_str(&part);
            out.push('\n');
        }
    }
    if value.is_empty() {
        out.push_str(first.trim_end());
        out.push('\n');
    }
    out
}

/// `label  value` lines with the values aligned, each cut to `width`
/// with `…` (whole with `-v` or `--json`).
pub fn aligned(pairs: &[(String, String)], indent: &str, width: usize) -> String {
    let label = pairs.iter().map(|(l, _)| text_width(l)).max().unwrap_or(0);
    let mut out = String::new();
    for (l, value) in pairs {
        let pad = " ".repeat(label - text_width(l));
        let head = format!("{indent}{l}{pad}  ");
        let room = width.saturating_sub(text_width(&head));
        out.push_str(&head);
        out.push_str(&ellipsize(value, room));
        out.push('\n');
    }
    out
}

/// Prints `text` to stdout, through `$PAGER` when stdout is a terminal and
/// `text` is taller than it, as `git help` does (`less` with `LESS=FRX`
/// when neither is set: quit when it fits, colours kept, the screen not
/// cleared). `PAGER=cat` or an empty `PAGER` turns it off; so does
/// `paging = false` (`--no-pager`). A pager that cannot start is no error:
/// the text is printed as it is.
pub fn page(text: &str, paging: bool) {
    use std::io::Write;
    let tall = || terminal_height().is_some_and(|rows| text.lines().count() >= rows);
    let pager = std::env::var("PAGER").unwrap_or_else(|_| "less".into());
    let pager = pager.trim();
    if paging && !pager.is_empty() && pager != "cat" && std::io::stdout().is_terminal() && tall() {
        let mut parts = pager.split_whitespace();
        let program = parts.next().unwrap_or("less");
        let mut command = std::process::Command::new(program);
        command.args(parts).stdin(std::process::Stdio::piped());
        if std::env::var_os("LESS").is_none() {
            command.env("LESS", "FRX");
        }
        if let Ok(mut child) = command.spawn() {
            // Ctrl-C belongs to the pager now (less uses it to stop a
            // search): `lab` must not die under it and leave it orphaned.
            // SAFETY: setting a signal's disposition to ignore.
            unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
            if let Some(mut stdin) = child.stdin.take() {
                // A learner quitting the pager early closes the pipe: not an error.
                let _ = stdin.write_all(text.as_bytes());
            }
            if child.wait().is_ok() {
                return;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// How many rows the terminal on stdout has, if it is one.
fn terminal_height() -> Option<usize> {
    // SAFETY: TIOCGWINSZ only fills the winsize it is given.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0).then_some(usize::from(size.ws_row))
}

/// A path relative to the current directory when it is under it (what a
/// learner would type), else as it is.
pub fn display_path(path: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            path.strip_prefix(cwd)
                .ok()
                .map(std::path::Path::to_path_buf)
        })
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsize_cuts_to_the_width_with_a_mark() {
        assert_eq!(ellipsize("127.0.0.1:2003", 20), "127.0.0.1:2003");
        assert_eq!(ellipsize("http://127.0.0.1:2003/base", 10), "http://12…");
        assert_eq!(text_width(&ellipsize("http://127.0.0.1:2003/base", 10)), 10);
    }

    #[test]
    fn wrap_breaks_at_spaces_and_keeps_commands_whole() {
        let lines = wrap(
            "repeat it with `lab proxy --lb random --seed 7` and see",
            40,
            "  ",
            "    ",
        );
        assert_eq!(
            lines,
            [
                "  repeat it with",
                "    `lab proxy --lb random --seed 7` and",
                "    see"
            ]
        );
        assert_eq!(wrap("a b c", 80, "", ""), ["a b c"]);
    }

    #[test]
    fn fitted_tables_fit_and_cut_only_what_may_give_way() {
        let columns = [
            Column::keep("#").right(),
            Column::cut("value", 6),
            Column::wrap("why", 8),
        ];
        let rows = vec![vec![
            ("1".to_string(), None),
            ("http://127.0.0.1:2003/base".to_string(), None),
            ("the proxy names itself, as RFC 9110 asks".to_string(), None),
        ]];
        let text = fitted(&columns, rows, 40).to_string();
        for line in text.lines() {
            assert!(text_width(line) <= 40, "{line:?} in\n{text}");
        }
        assert!(text.contains('…'), "{text}");
        assert!(text.contains("names"), "{text}");
    }
}

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
    // Off a terminal there is no width to fit; wrap long cells at a readable one.
    if table.width().is_none() {
        table.set_width(110);
    }
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
        match self {
            Mark::Pass => cell.fg(Color::Green),
            Mark::Fail => cell.fg(Color::Red),
            Mark::Pending => cell.fg(Color::Yellow),
            Mark::NotStarted => cell,
            Mark::Wrong => cell.fg(Color::Magenta),
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

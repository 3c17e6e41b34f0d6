//! The sheets' markdown on a terminal: prose wrapped to the screen's width,
//! fenced code printed exactly as written.
//!
//! Why not a general markdown renderer: the two rules that matter here are
//! the ones they do not keep. A wrapped line of fenced code, pasted into a
//! shell, runs half a command (a `--upstream` URL on its own line is run as
//! a program), so code is copied out byte for byte, never re-wrapped. And a
//! line of prose never breaks inside a value: an address, a port, a URL or
//! a short `command` in backticks stays whole on one line (the same rule as
//! the tables of `lab trace`, in [`crate::output::wrap`]).
//!
//! What the sheets use, and nothing more: headings, paragraphs, `-`/`1.`
//! lists, `>` quotes (the claims and predictions), pipe tables (drawn as
//! fitted tables), fenced code, and inline `**bold**`, `*italic*` and
//! `` `code` ``. Without colour the markdown is kept as written (it reads
//! well as it is, in a pipe or a file), only re-flowed; with colour the
//! marks become styles.

use colored::{ColoredString, Colorize};

use crate::output::{self, Column, Text};

/// `markdown` laid out in `width` columns: every line but fenced code's
/// fits; with `color`, inline marks are rendered as styles.
pub fn render(markdown: &str, width: usize, color: bool) -> String {
    let mut out = Vec::new();
    render_into(&mut out, markdown, width, color);
    let mut text = out.join("\n");
    if markdown.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// One sentence's inline marks as styles (colour) or as written (none).
pub fn inline(text: &str, color: bool) -> String {
    words(text, color)
        .into_iter()
        .map(|w| w.rendered)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text`'s words, inline marks rendered, in lines of at most `width`
/// columns: the first after `first`, the others after `indent`.
pub fn wrap_inline(
    text: &str,
    width: usize,
    first: &str,
    indent: &str,
    color: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut used = output::text_width(first);
    let mut empty = true;
    let room = width.saturating_sub(output::text_width(indent)).max(1);
    for word in words(text, color)
        .into_iter()
        .flat_map(|w| w.split_to(room))
    {
        if !empty && used + 1 + word.width > width {
            lines.push(std::mem::replace(&mut line, indent.to_string()));
            used = output::text_width(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
            used += 1;
        }
        line.push_str(&word.rendered);
        used += word.width;
        empty = false;
    }
    lines.push(line);
    lines
}

fn render_into(out: &mut Vec<String>, markdown: &str, width: usize, color: bool) {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut paragraph: Option<Paragraph> = None;
    let flush = |out: &mut Vec<String>, paragraph: &mut Option<Paragraph>| {
        if let Some(p) = paragraph.take() {
            out.extend(wrap_inline(&p.text, width, &p.first, &p.indent, color));
        }
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(fence) = fence_of(trimmed) {
            // Code: every line as written, up to the closing fence.
            flush(out, &mut paragraph);
            let start = i;
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with(fence) {
                i += 1;
            }
            let end = i.min(lines.len() - 1);
            for (k, code) in lines[start..=end].iter().enumerate() {
                let is_fence = k == 0 || (start + k == i && i < lines.len());
                match (color, is_fence) {
                    (false, _) => out.push(code.to_string()),
                    (true, true) => {}
                    (true, false) => out.push(code.cyan().to_string()),
                }
            }
            i += 1;
            continue;
        }
        if trimmed.is_empty() {
            flush(out, &mut paragraph);
            out.push(String::new());
        } else if let Some(rest) = quoted(line) {
            // A quote: its lines, rendered as markdown of their own, narrower.
            flush(out, &mut paragraph);
            let mut inner = vec![rest];
            while i + 1 < lines.len() {
                match quoted(lines[i + 1]) {
                    Some(more) => inner.push(more),
                    None => break,
                }
                i += 1;
            }
            let bar = if color {
                "│ ".dimmed().to_string()
            } else {
                "> ".into()
            };
            let mut body = Vec::new();
            render_into(&mut body, &inner.join("\n"), width.saturating_sub(2), color);
            for l in body {
                out.push(if l.is_empty() {
                    bar.trim_end().to_string()
                } else {
                    format!("{bar}{l}")
                });
            }
        } else if trimmed.starts_with('|') {
            flush(out, &mut paragraph);
            let mut rows = vec![line];
            while i + 1 < lines.len() && lines[i + 1].trim_start().starts_with('|') {
                rows.push(lines[i + 1]);
                i += 1;
            }
            out.extend(table(&rows, width));
        } else if let Some((level, title)) = heading(trimmed) {
            flush(out, &mut paragraph);
            if color {
                let text = title.trim();
                for l in wrap_inline(text, width, "", "", false) {
                    out.push(if level == 1 {
                        l.bold().underline().to_string()
                    } else {
                        l.bold().cyan().to_string()
                    });
                }
            } else {
                let marks = format!("{} ", "#".repeat(level));
                out.extend(wrap_inline(title.trim(), width, &marks, "", false));
            }
        } else if let Some((marker, text)) = list_item(line) {
            flush(out, &mut paragraph);
            paragraph = Some(Paragraph {
                indent: " ".repeat(output::text_width(&marker)),
                first: marker,
                text: text.to_string(),
            });
        } else if let Some(p) = paragraph.as_mut() {
            p.text.push(' ');
            p.text.push_str(trimmed);
        } else {
            let indent = line[..line.len() - trimmed.len()].to_string();
            paragraph = Some(Paragraph {
                first: indent.clone(),
                indent,
                text: trimmed.to_string(),
            });
        }
        i += 1;
    }
    flush(out, &mut paragraph);
}

/// Lines being joined into one paragraph or list item.
struct Paragraph {
    first: String,
    indent: String,
    text: String,
}

/// The fence a line of code opens with, if it does.
fn fence_of(trimmed: &str) -> Option<&'static str> {
    ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f))
}

fn quoted(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('>')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

fn heading(trimmed: &str) -> Option<(usize, &str)> {
    let level = trimmed.chars().take_while(|&c| c == '#').count();
    let rest = &trimmed[level..];
    (1..=6)
        .contains(&level)
        .then_some(())
        .and_then(|_| rest.strip_prefix(' '))
        .map(|title| (level, title))
}

/// `- text`, `* text` or `12. text` (any indent): the marker with its
/// indent and one space, and the text.
fn list_item(line: &str) -> Option<(String, &str)> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    let marker = if digits > 0 {
        trimmed[digits..]
            .starts_with(['.', ')'])
            .then_some(digits + 1)?
    } else if trimmed.starts_with(['-', '*', '+']) {
        1
    } else {
        return None;
    };
    let text = trimmed[marker..].strip_prefix(' ')?;
    Some((format!("{}{} ", &line[..indent], &trimmed[..marker]), text))
}

/// A pipe table as a fitted table: every column may wrap, the first the least.
fn table(rows: &[&str], width: usize) -> Vec<String> {
    let cells = |row: &str| -> Vec<String> {
        let row = row.trim().trim_start_matches('|').trim_end_matches('|');
        // As written: a cell is fitted by width, which styles would upset.
        row.split('|').map(|c| c.trim().to_string()).collect()
    };
    let is_rule = |row: &str| row.chars().all(|c| "|-: ".contains(c));
    let header = cells(rows[0]);
    let body: Vec<Vec<Text>> = rows[1..]
        .iter()
        .filter(|r| !is_rule(r))
        .map(|r| cells(r).into_iter().map(|c| (c, None)).collect())
        .collect();
    // The widths a fitted table would give, then each cell wrapped to its
    // column here, where a long code span breaks at its spaces rather than
    // being cut short.
    let wrapping: Vec<Column<'_>> = header.iter().map(|h| Column::wrap(h, 8)).collect();
    let widths = output::fit_widths(&wrapping, &body, width);
    let body = body
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(&widths)
                .map(|((cell, colour), &w)| {
                    (wrap_inline(&cell, w, "", "", false).join("\n"), colour)
                })
                .collect()
        })
        .collect();
    let columns: Vec<Column<'_>> = header.iter().map(|h| Column::keep(h)).collect();
    output::fitted(&columns, body, width)
        .to_string()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A word as printed: what it looks like and how many columns it takes.
#[derive(Debug, Clone)]
struct Word {
    rendered: String,
    width: usize,
    /// Its pieces, each a run of one style: a word wider than a line is
    /// split between them (at the spaces of a long code span, first).
    pieces: Vec<(String, Style)>,
    color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Style {
    bold: bool,
    italic: bool,
    code: bool,
}

impl Style {
    fn paint(self, text: &str, color: bool) -> String {
        if !color || self == Style::default() {
            return text.to_string();
        }
        let mut s: ColoredString = text.normal();
        if self.code {
            s = s.cyan();
        }
        if self.bold {
            s = s.bold();
        }
        if self.italic {
            s = s.italic();
        }
        s.to_string()
    }
}

impl Word {
    fn new(pieces: Vec<(String, Style)>, color: bool) -> Word {
        let rendered = pieces.iter().map(|(t, s)| s.paint(t, color)).collect();
        let width = pieces.iter().map(|(t, _)| output::text_width(t)).sum();
        Word {
            rendered,
            width,
            pieces,
            color,
        }
    }

    /// This word as words of at most `room` columns: whole when it fits; a
    /// code span with spaces broken at them; a single longer token cut.
    fn split_to(self, room: usize) -> Vec<Word> {
        if self.width <= room {
            return vec![self];
        }
        let color = self.color;
        // Every character with its style, and where the spaces are.
        let chars: Vec<(char, Style)> = self
            .pieces
            .iter()
            .flat_map(|(t, s)| t.chars().map(move |c| (c, *s)))
            .collect();
        let mut out = Vec::new();
        for part in chars.split(|(c, _)| *c == ' ') {
            let mut line: Vec<(char, Style)> = Vec::new();
            let mut used = 0;
            for &(c, s) in part {
                let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
                if used + w > room && !line.is_empty() {
                    out.push(Word::new(group(&line), color));
                    line.clear();
                    used = 0;
                }
                line.push((c, s));
                used += w;
            }
            if !line.is_empty() {
                out.push(Word::new(group(&line), color));
            }
        }
        out
    }
}

/// Characters with styles as runs of one style.
fn group(chars: &[(char, Style)]) -> Vec<(String, Style)> {
    let mut pieces: Vec<(String, Style)> = Vec::new();
    for &(c, s) in chars {
        match pieces.last_mut() {
            Some((text, style)) if *style == s => text.push(c),
            _ => pieces.push((c.to_string(), s)),
        }
    }
    pieces
}

/// The words of a paragraph, a code span with spaces being one word. With
/// colour the marks are taken out and become the pieces' styles; without,
/// they stay in the text as written.
fn words(text: &str, color: bool) -> Vec<Word> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut current: Vec<(char, Style)> = Vec::new();
    let mut style = Style::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev = i.checked_sub(1).map(|k| chars[k]);
        let mut mark = 0;
        if c == '`' {
            style.code = !style.code;
            mark = 1;
        } else if !style.code && c == '*' && next == Some('*') {
            style.bold = !style.bold;
            mark = 2;
        } else if !style.code && c == '*' {
            // An emphasis mark touches its word: `*word*`, not `a * b`.
            let opens = !style.italic && next.is_some_and(|n| !n.is_whitespace());
            let closes = style.italic && prev.is_some_and(|p| !p.is_whitespace());
            if opens || closes {
                style.italic = !style.italic;
                mark = 1;
            }
        }
        if mark > 0 {
            if !color {
                for k in 0..mark {
                    current.push((chars[i + k], Style::default()));
                }
            }
            i += mark;
            continue;
        }
        if c.is_whitespace() && !style.code {
            if !current.is_empty() {
                words.push(Word::new(group(&current), color));
                current.clear();
            }
        } else {
            current.push((if c.is_whitespace() { ' ' } else { c }, style));
        }
        i += 1;
    }
    if !current.is_empty() {
        words.push(Word::new(group(&current), color));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widest(text: &str) -> usize {
        text.lines().map(output::text_width).max().unwrap_or(0)
    }

    #[test]
    fn prose_is_wrapped_and_code_is_kept() {
        let md = "# Title\n\nOne two three four five six seven eight nine ten eleven twelve.\n\n```sh\nlab proxy --upstream http://127.0.0.1:2003 --upstream http://127.0.0.1:2004 --lb weighted\n```\n";
        let out = render(md, 30, false);
        assert!(out.contains(
            "\n```sh\nlab proxy --upstream http://127.0.0.1:2003 --upstream http://127.0.0.1:2004 --lb weighted\n```\n"
        ));
        let prose: String = out.split("```").next().unwrap().to_string();
        assert!(widest(&prose) <= 30, "{out}");
        assert!(out.starts_with("# Title\n\nOne two three four five six\nseven"));
    }

    #[test]
    fn a_code_span_stays_on_one_line() {
        let out = render(
            "Run it with `lab trace -n 7` and watch 127.0.0.1:2002 answer.",
            24,
            false,
        );
        assert!(out.lines().any(|l| l.contains("`lab trace -n 7`")), "{out}");
        assert!(out.lines().any(|l| l.contains("127.0.0.1:2002")), "{out}");
        assert!(widest(&out) <= 24, "{out}");
    }

    #[test]
    fn lists_hang_and_quotes_keep_their_bar() {
        let md = "- first item that is long enough to wrap around\n  continued here\n\n> **Go claim** `id`: a claim that is long enough to wrap.\n";
        let out = render(md, 24, false);
        assert!(
            out.starts_with("- first item that is\n  long enough"),
            "{out}"
        );
        for line in out.lines().skip_while(|l| !l.starts_with('>')) {
            assert!(line.starts_with('>'), "{out}");
        }
        assert!(widest(&out) <= 24, "{out}");
    }

    #[test]
    fn colour_takes_the_marks_out() {
        let out = inline("a **b** `c d` *e*", true);
        assert!(!out.contains("**") && !out.contains('`'), "{out}");
        assert_eq!(
            inline("a **b** `c d` *e* 2 * 3", false),
            "a **b** `c d` *e* 2 * 3"
        );
    }

    #[test]
    fn a_long_code_span_breaks_at_its_spaces() {
        let lines = wrap_inline("see `one two three four five`", 12, "", "", false);
        assert!(
            lines.iter().all(|l| output::text_width(l) <= 12),
            "{lines:?}"
        );
        assert_eq!(lines.join(" "), "see `one two three four five`");
    }

    #[test]
    fn tables_fit() {
        let md =
            "| a long header | b |\n|---|---|\n| some long cell text that goes on and on | `x` |\n";
        let out = render(md, 30, false);
        assert!(widest(&out) <= 30, "{out}");
        assert!(out.contains("`x`"));
    }
}

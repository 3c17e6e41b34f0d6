//! The screens at a fixed width: `lab` run with `COLUMNS` set (the width
//! its renderers fit), and the checks every screen must pass there: no
//! line wider than the width, and no address, port or URL split across
//! two lines.

use super::process::{Run, run_lab_captured_with};

/// The widths the screens are tested at: a small terminal and a common one.
pub const WIDTHS: [usize; 2] = [80, 120];

/// Runs `lab ARGS` with `COLUMNS=width`, output captured.
pub async fn run_at_width(args: &[&str], width: usize) -> Run {
    run_lab_captured_with(args, &[("COLUMNS", &width.to_string())]).await
}

/// Fails unless every line of `text` fits `width` columns and none of
/// `values` (addresses, URLs) is split across lines; any `IP:PORT` in the
/// text is whole on its line too.
pub fn assert_fits(text: &str, width: usize, values: &[&str]) {
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines {
        let w = lab::output::text_width(line);
        assert!(
            w <= width,
            "a line of {w} columns at {width}: {line:?} in\n{text}"
        );
    }
    // What a cell or a line holds, without the table's borders.
    let content = |line: &str| {
        line.trim_matches(|c: char| c.is_whitespace() || "│┆".contains(c))
            .to_string()
    };
    for pair in lines.windows(2) {
        let (end, start) = (content(pair[0]), content(pair[1]));
        for value in values {
            for k in 3..value.len() {
                let (head, tail) = value.split_at(k);
                assert!(
                    !(end.ends_with(head) && start.starts_with(tail)),
                    "{value} is split after {head:?} at {width} columns:\n{text}"
                );
            }
        }
        // An address never ends a line with its port on the next.
        let ends_with_ip = end.rsplit(' ').next().is_some_and(|last| {
            last.split('.').count() == 4
                && last.split('.').all(|p| {
                    !p.is_empty() && p.trim_end_matches(':').chars().all(|c| c.is_ascii_digit())
                })
        });
        // (`IP:` then a port, or `IP` then `:port`; not `IP:` ending a phrase.)
        let port_next = start
            .trim_start_matches(':')
            .starts_with(|c: char| c.is_ascii_digit());
        assert!(
            !(ends_with_ip && port_next && (start.starts_with(':') || end.ends_with(':'))),
            "an address is split at {width} columns:\n{text}"
        );
    }
    for value in values {
        assert!(
            text.contains(value) || text.contains('…'),
            "{value} is neither whole nor cut with … at {width} columns:\n{text}"
        );
    }
}

//! The rows of `lab trace` as the requests complete (on a terminal, or with
//! `--interval`): one line each, in sequence order (a row that completes
//! early waits for those before it), so a slow trace can be watched while a
//! server is stopped and started. The rest of the report follows at the end
//! ([`super::render_after_live`]).
//!
//! The letters are the balancer's node indexes (a = node 0) when the first
//! request's pick names its node, as the final legend does; otherwise the
//! upstreams in the order first seen.

use std::collections::BTreeMap;

use super::names::ABSENT;
use crate::balance::Explanation;
use crate::output;
use crate::trace::model::{Mode, Record, Sent};
use crate::trace::pick::letter;

/// The rows printed so far, and those waiting for an earlier one.
pub struct Rows {
    width: usize,
    next: u64,
    waiting: BTreeMap<u64, Record>,
    /// Letters by node index (decided by the first row printed).
    by_index: Option<bool>,
    /// Upstreams in the order first seen (when not by index).
    seen: Vec<String>,
}

impl Rows {
    pub fn new(width: usize) -> Rows {
        Rows {
            width,
            next: 1,
            waiting: BTreeMap::new(),
            by_index: None,
            seen: Vec::new(),
        }
    }

    /// The line above the rows.
    pub fn header(&self) -> String {
        let line = format!(
            "{:>4}  {:<8}  {:<14}  {:>7}  {:>9}  pick\n",
            "#", "upstream", "status", "ms", "peer port"
        );
        output::heading(&line)
    }

    /// Takes a completed record; returns the rows now ready, in order.
    pub fn push(&mut self, record: Record) -> String {
        self.waiting.insert(record.seq, record);
        let mut out = String::new();
        while let Some(record) = self.waiting.remove(&self.next) {
            out.push_str(&self.row(&record));
            self.next += 1;
        }
        out
    }

    fn row(&mut self, record: &Record) -> String {
        let explained = record
            .pick
            .as_ref()
            .and_then(Explanation::read)
            .filter(|_| !record.passed_over);
        let by_index = *self
            .by_index
            .get_or_insert_with(|| explained.as_ref().and_then(Explanation::chosen).is_some());
        let upstream = match (&explained, &record.upstream) {
            (Some(e), Some(_)) if by_index && e.chosen().is_some() => {
                e.chosen().map_or_else(|| ABSENT.to_string(), letter)
            }
            (_, Some(url)) => {
                let i = match self.seen.iter().position(|u| u == url) {
                    Some(i) => i,
                    None => {
                        self.seen.push(url.clone());
                        self.seen.len() - 1
                    }
                };
                letter(i)
            }
            (_, None) => ABSENT.to_string(),
        };
        let pick = match (&explained, record.pick.as_ref()) {
            (Some(e), _) if by_index => e.cell(),
            (Some(e), _) => e.cell_naming(|i| format!("#{i}")),
            (None, Some(raw)) => raw.to_string(),
            (None, None) => ABSENT.to_string(),
        };
        let status = match (record.status, record.layer.as_deref()) {
            (None, _) => "✗ no response".to_string(),
            (Some(s), Some(layer)) => format!("{s} {layer}"),
            (Some(s), None) => s.to_string(),
        };
        let port = record
            .upstream_saw
            .as_ref()
            .and_then(|s| s.remote_addr.rsplit_once(':'))
            .map_or(ABSENT, |(_, port)| port);
        let head = format!(
            "{:>4}  {upstream:<8}  {status:<14}  {:>7.1}  {port:>9}  ",
            record.seq, record.latency_ms
        );
        let room = self.width.saturating_sub(output::text_width(&head));
        format!("{head}{}\n", output::ellipsize(&pick, room))
    }
}

/// The report's first line, wrapped to `width`.
pub fn title(mode: Mode, sent: &Sent, requests: u64, proxy: &str, width: usize) -> String {
    let text = super::title_of(mode, sent, requests, proxy);
    let mut out = String::new();
    for line in output::wrap(&text, width, "", "  ") {
        out.push_str(&output::heading(&line));
        out.push('\n');
    }
    out
}

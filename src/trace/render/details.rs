//! `-v` and `-vv`: under a heading per request, the headers the upstream
//! received and the response's headers; with `-vv` the bodies too, cut at
//! [`BODY_LIMIT`] characters.

use std::fmt::Write;

use super::names::{ABSENT, Names};
use crate::output;
use crate::trace::model::Trace;

/// The most body text `-vv` shows per body.
const BODY_LIMIT: usize = 2000;

/// `-v`: each request's headers as the upstream received them, and the
/// response's; `-vv`: the bodies too.
pub(super) fn details(out: &mut String, trace: &Trace, names: &Names, verbose: u8) {
    for record in &trace.requests {
        let status = record
            .status
            .map_or_else(|| "no response".to_string(), |s| s.to_string());
        let upstream = record.upstream.as_deref().unwrap_or(ABSENT);
        let _ = writeln!(
            out,
            "\n{}",
            output::heading(&format!(
                "#{} → {} {upstream}: {status}, {:.1} ms",
                record.seq,
                names.letter_of(record.upstream.as_ref()),
                record.latency_ms
            ))
        );
        if verbose > 1 {
            body(out, "request body sent", &trace.sent.body);
        }
        match &record.upstream_saw {
            Some(saw) => {
                let _ = writeln!(
                    out,
                    "  upstream received: {} {} from {} ({} body bytes)",
                    trace.sent.method, saw.uri, saw.remote_addr, saw.body_bytes
                );
                header_lines(out, &saw.headers);
            }
            None => {
                let _ = writeln!(
                    out,
                    "  upstream received: {ABSENT} (the answer was not an echo)"
                );
            }
        }
        if record.status.is_some() {
            let _ = writeln!(out, "  response headers:");
            header_lines(out, &record.response.headers);
            if verbose > 1 {
                body(out, "response body", &record.response.body);
            }
        }
    }
}

fn header_lines(out: &mut String, headers: &[(String, String)]) {
    for (name, value) in headers {
        let _ = writeln!(out, "    {name}: {value}");
    }
}

fn body(out: &mut String, what: &str, text: &str) {
    let _ = writeln!(out, "  {what} ({} bytes):", text.len());
    if text.is_empty() {
        return;
    }
    let shown = match text.char_indices().nth(BODY_LIMIT) {
        Some((cut, _)) => format!("{}\n… ({} more bytes)", &text[..cut], text.len() - cut),
        None => text.to_string(),
    };
    for line in shown.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

//! Issue 10, item 3: property tests (proptest) for the parsers the lab writes
//! by hand, the ones a learner reads and a hostile client or a typo feeds:
//!
//! 1. `--upstream URL[,WEIGHT]` ([`parse_upstream_spec`]);
//! 2. `--rewrite REGEX=REPLACEMENT` ([`Rewrite`]) and its `apply`;
//! 3. `--hash-key` ([`HashKey`]) and the key it takes from a request;
//! 4. the lab files: the sheet's marks ([`sheet::marks`]), `answers.toml`
//!    ([`answers::parse`], [`answers::normalize`]), `lab.toml`
//!    ([`LabMeta`]), the folder names `NN-slug` and `.progress.json`;
//! 5. ZooKeeper: the node data a proxy reads back (the upstream spec
//!    `lab realserver --register` writes), the child names
//!    ([`check_name`]) and `zk://` URLs;
//! 6. the request-framing guard ([`FramingGuard`]) that sits in front of
//!    hyper on every listener;
//! 7. sizes (`--max-body`), address ranges (`--allow`, `--trusted-proxy`)
//!    and the client address a trusted proxy vouches for.
//!
//! One file each: [`upstream`], [`rewrite`], [`hash_key`], [`lab_files`],
//! [`zookeeper`], [`framing`], [`sizes_and_ranges`]; the strategies they
//! share and the case count are here.
//!
//! Each parser gets the same two kinds of property: on arbitrary input
//! (unicode, control characters, huge numbers, commas where they hurt) it
//! returns an answer and never panics, and on generated *valid* input it
//! gives back what was generated, checked against an oracle from outside the
//! parser where there is one (`str::replace`, `form_urlencoded`,
//! ZooKeeper's own path rules, `httparse`). Unit tests next to each parser
//! pin the documented examples; these properties look between them.
//!
//! Why properties: every one of these parsers splits strings at a separator
//! it chooses (the last comma, the last `=`, the first `:`, a `-`, a LF) and
//! the bugs of such code live in the inputs nobody writes down. A failing
//! case found here is kept beside its property as a plain `#[test]`.
//!
//! Runs in-process, with no sockets: the guard is driven by
//! `now_or_never` over an in-memory client that sends its bytes in pieces
//! of random sizes and sometimes answers "not yet". Case counts are modest
//! (`CASES`), so they run in a few seconds in a debug build; set
//! `PROPTEST_CASES` for a longer run. Failures are not persisted to disk
//! (`failure_persistence: None`): proptest prints the minimal input.

mod framing;
mod hash_key;
mod lab_files;
mod rewrite;
mod sizes_and_ranges;
mod upstream;
mod zookeeper;

use proptest::prelude::*;

/// Cases per property, unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any text at all: every char, controls and unassigned ones included
/// (`any::<String>()` only makes printable ones).
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Text made of pieces that mean something to the parser under test, glued
/// in any order, with some arbitrary text among them: reaches the parser's
/// branches far more often than uniformly random text.
fn soup(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::sample::select(pieces).prop_map(str::to_string),
        1 => any_text(4),
        1 => "[0-9]{1,25}",
    ];
    prop::collection::vec(piece, 0..max).prop_map(|pieces| pieces.concat())
}

/// Any casing of `word`.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

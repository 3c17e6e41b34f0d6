//! Properties of `--rewrite REGEX=REPLACEMENT` ([`Rewrite`]) and its `apply`.

use super::{any_text, config, soup};
use lab::proxy::director::Rewrite;
use proptest::prelude::*;

const RULE_PIECES: &[&str] = &[
    "^", "$", "/", "/dir", "(.*)", ".*", "(", ")", "[", "]", "{", "}", "=", "$1", "${1}", "$$",
    "\\", "\\d", "+", "*", "?", "|", "(?P<x>a)", "$x", "é",
];

/// A regex that always compiles: a run of self-contained atoms.
fn valid_regex() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        "[a-z/]{1,3}",
        Just(".".to_string()),
        Just(".*".to_string()),
        Just("(.*)".to_string()),
        Just("^".to_string()),
        Just("$".to_string()),
        Just("[a-z]+".to_string()),
        Just("\\d".to_string()),
        Just("(a|b)".to_string()),
        Just("=".to_string()),
    ];
    prop::collection::vec(atom, 0..6).prop_map(|atoms| atoms.concat())
}

/// A request path: mostly path-like, sometimes any text.
fn request_path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "(/[a-z0-9%.=-]{0,6}){0,4}",
        1 => any_text(20),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rewrite_rules_never_panic_nor_their_apply(
        rule in prop_oneof![any_text(30), soup(RULE_PIECES, 8)],
        path in request_path(),
    ) {
        match rule.parse::<Rewrite>() {
            Ok(rewrite) => {
                // The replacement is what follows the last '='.
                prop_assert!(!rewrite.replacement.contains('='));
                let _ = rewrite.apply(&path);
            }
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }

    #[test]
    fn a_rule_splits_at_its_last_equals_sign(
        pattern in valid_regex(),
        replacement in "[a-z/$0-9{}]{0,10}",
    ) {
        let rewrite: Rewrite = format!("{pattern}={replacement}")
            .parse()
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(rewrite.pattern.as_str(), pattern.as_str());
        prop_assert_eq!(&rewrite.replacement, &replacement);
        let err = pattern.replace('=', "").parse::<Rewrite>().unwrap_err();
        prop_assert!(err.contains("REGEX=REPLACEMENT"), "{}", err);
    }

    #[test]
    fn a_literal_rule_replaces_like_str_replace(
        literal in "[a-z/.+*?()=-]{1,4}",
        replacement in "[a-z/]{0,4}",
        path in "[a-z/.+*?()=-]{0,24}",
    ) {
        // `regex_lite::escape` leaves '=' alone: the pattern keeps it, the split
        // is at the replacement's side.
        let rewrite: Rewrite = format!("{}={replacement}", regex_lite::escape(&literal))
            .parse()
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(rewrite.apply(&path), path.replace(&literal, &replacement));
    }

    #[test]
    fn the_articles_rule_strips_a_prefix_and_leaves_other_paths(
        prefix in "[a-z0-9]{1,6}",
        rest in request_path(),
        other in request_path(),
    ) {
        // `^/dir(.*)=$1`: `/dir/abc` → `/abc`, anything else untouched.
        let rewrite: Rewrite = format!("^/{prefix}(.*)=$1").parse().map_err(TestCaseError::fail)?;
        prop_assert_eq!(rewrite.apply(&format!("/{prefix}{rest}")), rest.as_str());
        if !other.starts_with(&format!("/{prefix}")) {
            prop_assert_eq!(rewrite.apply(&other), other.as_str());
        }
    }
}

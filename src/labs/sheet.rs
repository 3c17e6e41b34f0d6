//! The marks a sheet uses for what the program verifies.
//!
//! A sheet is ordinary markdown. Two marks make sentences checkable:
//!
//! ```markdown
//! > **Claim** `remote-addr-is-peer`: the real server's RemoteAddr is the TCP peer.
//! > **Predict** `direct-port`: whose port does RemoteAddr show? (`client` or `server`)
//! ```
//!
//! The id ties the sentence to the check: every claim must be verified by the
//! lab's scenario and every prediction answered by what happened, or the check
//! fails, so a sheet cannot say something the program does not test.

use std::sync::LazyLock;

use regex::Regex;

/// One marked sentence of a sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub id: String,
    /// The sentence after the id, for the report.
    pub text: String,
}

/// The claims and predictions a sheet makes, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SheetMarks {
    pub claims: Vec<Marked>,
    pub predictions: Vec<Marked>,
}

static MARK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\*\*(Claim|Predict)\*\*\s+`([a-z0-9][a-z0-9-]*)`\s*[:—-]?\s*(.*)$")
        .expect("the mark pattern is valid")
});

/// Finds every mark of a sheet.
pub fn marks(sheet: &str) -> SheetMarks {
    let mut found = SheetMarks::default();
    for line in sheet.lines() {
        let Some(caps) = MARK.captures(line) else {
            continue;
        };
        let marked = Marked {
            id: caps[2].to_string(),
            text: caps[3].trim().to_string(),
        };
        match &caps[1] {
            "Claim" => found.claims.push(marked),
            _ => found.predictions.push(marked),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_claims_and_predictions_with_their_text() {
        let sheet = "# Lab\n\
            Some prose, **not** a claim.\n\
            > **Claim** `peer-is-remote-addr`: RemoteAddr is the TCP peer.\n\
            > **Predict** `direct-port` — whose port? (`client` or `server`)\n\
            - **Claim** `two-servers`:   both answer\n";
        let found = marks(sheet);
        assert_eq!(
            found.claims,
            vec![
                Marked {
                    id: "peer-is-remote-addr".into(),
                    text: "RemoteAddr is the TCP peer.".into()
                },
                Marked {
                    id: "two-servers".into(),
                    text: "both answer".into()
                },
            ]
        );
        assert_eq!(found.predictions.len(), 1);
        assert_eq!(found.predictions[0].id, "direct-port");
        assert_eq!(
            found.predictions[0].text,
            "whose port? (`client` or `server`)"
        );
    }
}

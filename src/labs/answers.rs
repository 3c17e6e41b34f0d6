//! The learner's predictions: `answers.toml` in the lab folder, `id = "answer"`.
//!
//! Answers are compared after [`normalize`], so `Client`, ` client ` and
//! `"client"` are the same answer; an empty string means "not answered yet".

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

/// Predictions by id; unanswered ones are absent.
pub type Answers = BTreeMap<String, String>;

/// Reads an answers file; a missing file means no answers yet.
pub fn load(path: &Path) -> anyhow::Result<Answers> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Answers::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    parse(&text).with_context(|| format!("{} is not a valid answers file", path.display()))
}

/// Parses `id = "answer"` lines (TOML); numbers and booleans are taken as text.
pub fn parse(text: &str) -> anyhow::Result<Answers> {
    let table: toml::Table = toml::from_str(text)
        .context("write each answer as  id = \"your answer\"  (TOML), one per line")?;
    let mut answers = Answers::new();
    for (id, value) in table {
        let answer = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!("answer {id} should be text, found {}", other.type_str()),
        };
        if !normalize(&answer).is_empty() {
            answers.insert(id, answer);
        }
    }
    Ok(answers)
}

/// Lower case, trimmed, inner whitespace collapsed, no space around commas,
/// surrounding quotes or backticks dropped: what makes two answers the same
/// answer (`6, -3, 4` is `6,-3,4`).
pub fn normalize(answer: &str) -> String {
    // Quotes and spaces together, so `" 'client' "` is `client` too.
    let trimmed =
        answer.trim_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`');
    trimmed
        .split(',')
        .map(|part| part.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_blank_ones_skipped() {
        let answers = parse("a = \"client\"\nb = \"\"\nc = 127\n").unwrap();
        assert_eq!(answers.get("a").map(String::as_str), Some("client"));
        assert!(!answers.contains_key("b"));
        assert_eq!(answers.get("c").map(String::as_str), Some("127"));
    }

    #[test]
    fn normalizing_ignores_case_space_and_quotes() {
        assert_eq!(normalize("  `Client` "), "client");
        assert_eq!(normalize("1.2.3.4,  5.6.7.8"), "1.2.3.4,5.6.7.8");
        assert_eq!(normalize("6, -3, 4"), normalize("6,-3,4"));
        assert_eq!(normalize("a  a b"), "a a b");
    }

    #[test]
    fn a_broken_file_says_how_to_write_it() {
        let err = parse("a = client").unwrap_err();
        assert!(format!("{err:#}").contains("id = \"your answer\""));
    }

    #[test]
    fn a_missing_file_is_no_answers() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("answers.toml")).unwrap().is_empty());
    }
}

//! The learner's predictions: `answers.toml` in the lab folder, `id = "answer"`.
//!
//! Answers are compared after [`normalize`], so `Client`, ` client ` and
//! `"client"` are the same answer; an empty string means "not answered yet".
//! `lab tour` writes the answers typed during a tour back into the file
//! ([`save`]), each in its own line, the learner's comments left as they are.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

/// Predictions by id; unanswered ones are absent.
pub type Answers = BTreeMap<String, String>;

/// Reads an answers file; a missing file means no answers yet.
pub fn load(path: &Path) -> anyhow::Result<Answers> {
    let text = read(path)?;
    parse(&text).with_context(|| format!("{} is not a valid answers file", path.display()))
}

/// The file's text; a missing file is an empty one.
fn read(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
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

/// Writes each answer into the answers file: the line `id = "…"` is replaced
/// (comments and other answers stay as the learner left them), or added.
pub fn save(path: &Path, given: &Answers) -> anyhow::Result<()> {
    let text = read(path)?;
    let updated = with_answers(&text, given);
    // Never write a file `lab check` could not read back.
    let back = parse(&updated).context("the updated answers would not parse")?;
    for (id, answer) in given {
        anyhow::ensure!(
            back.get(id) == Some(answer),
            "answer `{id}` would not read back"
        );
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, updated).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `text` with each answer of `given` in its `id = …` line.
fn with_answers(text: &str, given: &Answers) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (id, answer) in given {
        let line = format!("{id} = {}", toml::Value::String(answer.clone()));
        let existing = lines.iter_mut().find(|l| {
            l.trim_start()
                .strip_prefix(id.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        match existing {
            Some(existing) => *existing = line,
            None => lines.push(line),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
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

    #[test]
    fn answers_go_into_their_lines_and_comments_stay() {
        let template = "# Which? \"x\" or \"y\".\nq1 = \"\"\n\n# What?\nq2 = \"old\"\n";
        let given: Answers = [("q1", "a \"b\""), ("q3", "6,-3,4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let text = with_answers(template, &given);
        assert!(text.starts_with("# Which? \"x\" or \"y\".\n"), "{text}");
        assert!(text.contains("# What?\nq2 = \"old\"\n"), "{text}");
        let back = parse(&text).unwrap();
        assert_eq!(back.get("q1").map(String::as_str), Some("a \"b\""));
        assert_eq!(back.get("q2").map(String::as_str), Some("old"));
        assert_eq!(back.get("q3").map(String::as_str), Some("6,-3,4"));
    }

    #[test]
    fn a_key_that_starts_like_another_is_not_taken_for_it() {
        let given: Answers = [("q1".to_string(), "x".to_string())].into();
        let text = with_answers("q10 = \"keep\"\n", &given);
        assert_eq!(text, "q10 = \"keep\"\nq1 = \"x\"\n");
    }
}

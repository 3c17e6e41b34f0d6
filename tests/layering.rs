//! The layering of `src/`, read from the code's own paths: dependencies point
//! one way. The command line (`src/cli/`) sits on top of the domain, and no
//! module below the command layer names it; no two files of `src/` import
//! each other, directly or round a circle.
//!
//! The paths are read as text: every `crate::…`, `super::…` and `self::…`
//! path in a file (in `use` lines, braces expanded, and in the code), outside
//! its `#[cfg(test)]` module, resolved to the file that defines the longest
//! prefix of it. `mod x;` declarations are not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files that may use the command line: the binary and the library's
/// entry point, the command line itself (with `cli/launch.rs`, which starts
/// `lab proxy FLAGS` in-process), and the commands that read their own
/// flags (`lab demo`, the labs). The other commands (trace, stats, doctor)
/// take configs the command line makes.
const ABOVE_CLI: &[&str] = &["main.rs", "lib.rs", "cli/", "demo.rs", "labs/"];

#[test]
fn nothing_below_the_command_layer_uses_the_command_line() {
    let graph = Graph::read();
    let mut offenders = Vec::new();
    for (file, targets) in &graph.edges {
        let above = ABOVE_CLI.iter().any(|prefix| file.starts_with(prefix));
        if !above && targets.iter().any(|t| t.starts_with("cli/")) {
            offenders.push(file.clone());
        }
    }
    assert!(
        offenders.is_empty(),
        "these files import crate::cli but sit below the command layer: {offenders:?}"
    );
}

#[test]
fn no_import_circle_among_the_files_of_src() {
    let graph = Graph::read();
    let circles: Vec<Vec<String>> = graph
        .strongly_connected()
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .collect();
    assert!(
        circles.is_empty(),
        "files that import each other round a circle:\n{}",
        circles
            .iter()
            .map(|c| format!("  {}", c.join(" ⇄ ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_reader_resolves_paths_as_rust_does() {
    let files: BTreeSet<String> = [
        "lib.rs",
        "proxy/mod.rs",
        "proxy/reverse/mod.rs",
        "proxy/reverse/choose.rs",
        "balance/mod.rs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let graph = Graph::from_sources(&files, |file| {
        match file {
            "proxy/reverse/choose.rs" => "use super::ReverseProxy;\nuse crate::balance::{Node, Pick};\nfn f() { crate::proxy::empty(); }\n#[cfg(test)]\nmod tests { use crate::lib_only; }".to_string(),
            // A path through re-exports (two, one renaming) leads to the file
            // that defines the name.
            "balance/mod.rs" => "//! crate::proxy in a comment is not an import\nuse crate::proxy::Picked;".to_string(),
            // `pub use` forwards a name and is no use of it; a path into a
            // child module is (`choose::helper`); `std::choose::y` is not.
            "proxy/reverse/mod.rs" => "mod choose;\npub use choose::Chosen;\nfn g() { choose::helper(); let x = std::choose::y; }".to_string(),
            "proxy/mod.rs" => "pub mod reverse;\npub use reverse::Chosen as Picked;".to_string(),
            // …unless the file's own code uses the name it brings in.
            "lib.rs" => "pub mod balance;\npub use balance::Node;\nfn h(_: Node) {}".to_string(),
            _ => String::new(),
        }
    });
    let targets = &graph.edges["proxy/reverse/choose.rs"];
    assert_eq!(
        targets.iter().map(String::as_str).collect::<Vec<_>>(),
        ["balance/mod.rs", "proxy/mod.rs", "proxy/reverse/mod.rs"]
    );
    assert_eq!(
        graph.edges["balance/mod.rs"].iter().collect::<Vec<_>>(),
        ["proxy/reverse/choose.rs"]
    );
    assert!(graph.edges["proxy/mod.rs"].is_empty());
    assert_eq!(
        graph.edges["lib.rs"].iter().collect::<Vec<_>>(),
        ["balance/mod.rs"]
    );
    assert_eq!(
        graph.edges["proxy/reverse/mod.rs"]
            .iter()
            .collect::<Vec<_>>(),
        ["proxy/reverse/choose.rs"]
    );
    let circles: Vec<_> = graph
        .strongly_connected()
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    assert_eq!(
        circles,
        [vec![
            "balance/mod.rs",
            "proxy/reverse/choose.rs",
            "proxy/reverse/mod.rs"
        ]]
    );
}

/// Files of `src/` (relative paths) and the files each one's paths lead to.
struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn read() -> Graph {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = BTreeSet::new();
        collect(&src, &src, &mut files);
        Graph::from_sources(&files, |file| {
            std::fs::read_to_string(src.join(file)).expect("read a source file")
        })
    }

    fn from_sources(files: &BTreeSet<String>, read: impl Fn(&str) -> String) -> Graph {
        // What each file re-exports (`pub use child::Name`): a path to a
        // re-exported name leads on to the file that defines it, and the
        // `pub use` itself is no use of it.
        let found: BTreeMap<&String, Vec<Found>> = files
            .iter()
            .map(|file| (file, paths_in(&read(file))))
            .collect();
        let mut reexports: Reexports = BTreeMap::new();
        for (file, paths) in &found {
            let module = module_of(file);
            for found in paths {
                if let Some(name) = &found.reexported_as
                    && let Some(absolute) = absolute(&module, &found.path)
                {
                    reexports
                        .entry(file.to_string())
                        .or_default()
                        .insert(name.clone(), absolute);
                }
            }
        }
        let mut edges = BTreeMap::new();
        for (file, paths) in found {
            let module = module_of(file);
            let mut targets = BTreeSet::new();
            for found in paths
                .iter()
                .filter(|f| f.reexported_as.is_none() || f.used_here)
            {
                if let Some(absolute) = absolute(&module, &found.path)
                    && let Some(target) = resolve(files, &reexports, &absolute, 0)
                    && &target != file
                {
                    targets.insert(target);
                }
            }
            edges.insert(file.clone(), targets);
        }
        Graph { edges }
    }

    /// Tarjan's strongly connected components: each is a set of files that
    /// all reach one another.
    fn strongly_connected(&self) -> Vec<Vec<String>> {
        struct State<'a> {
            graph: &'a Graph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            out: Vec<Vec<String>>,
        }
        fn visit<'a>(s: &mut State<'a>, v: &'a str) {
            let n = s.index.len();
            s.index.insert(v, n);
            s.low.insert(v, n);
            s.stack.push(v);
            s.on_stack.insert(v);
            for w in s.graph.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                component.sort();
                s.out.push(component);
            }
        }
        let mut state = State {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !state.index.contains_key(v.as_str()) {
                visit(&mut state, v);
            }
        }
        state.out
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path: PathBuf = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("inside src/");
            files.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// `proxy/reverse/mod.rs` → `["proxy", "reverse"]`; `lib.rs`, `main.rs` → `[]`.
fn module_of(file: &str) -> Vec<String> {
    let stem = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(String::from).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// A path found in a file; `reexported_as` when it is a `pub use`, which
/// forwards a name to where it is defined rather than using it.
struct Found {
    path: String,
    reexported_as: Option<String>,
    /// A re-exported name the file's own code uses too (`pub use` also
    /// brings the name into scope): then it is a use as well.
    used_here: bool,
}

/// How often `word` stands in `code` as a whole word.
fn occurrences(code: &str, word: &str) -> usize {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(word)
        .filter(|(at, _)| {
            let before = code[..*at].chars().next_back();
            let after = code[at + word.len()..].chars().next();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        })
        .count()
}

/// The child modules a file declares (`mod config;`, `pub mod chain;`,
/// `pub(crate) mod x;`).
fn child_modules(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let mut line = line.trim();
            if let Some(rest) = line.strip_prefix("pub") {
                line = match rest.strip_prefix('(') {
                    Some(scoped) => scoped.split_once(')')?.1,
                    None => rest,
                }
                .trim_start();
            }
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?.trim();
            let valid = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            valid.then(|| name.to_string())
        })
        .collect()
}

/// Every path that starts with `crate::`, `super::` or `self::` in `code`,
/// or with the name of a child module the file declares (read as
/// `self::child::…`), comments and the `#[cfg(test)]` module left out,
/// braces expanded: `use crate::a::{b, c::d};` gives `crate::a::b` and
/// `crate::a::c::d`.
fn paths_in(code: &str) -> Vec<Found> {
    let children = child_modules(code);
    // Everything from the first `#[cfg(test)]` module on is the tests'.
    let code = code
        .match_indices("#[cfg(test)]\n")
        .find(|(at, attr)| {
            let next = code[at + attr.len()..].lines().next().unwrap_or_default();
            let next = next.trim_start();
            ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
                .iter()
                .any(|start| next.starts_with(start))
        })
        .map_or(code, |(at, _)| &code[..at]);
    let code: String = code
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let child = children
            .iter()
            .any(|c| rest.starts_with(c.as_str()) && rest[c.len()..].starts_with("::"));
        let starts = child
            || ["crate::", "super::", "self::"]
                .iter()
                .any(|p| rest.starts_with(p));
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if starts && boundary {
            let mut end = path_end(rest);
            // `pub use a::B as C;`: the alias belongs to the path.
            if let Some(alias) = rest[end..].strip_prefix(" as ") {
                end += 4 + alias
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(alias.len());
            }
            let path = &rest[..end];
            let before = code[..i].trim_end();
            let reexport = before.ends_with("pub use")
                || (before.ends_with(") use") && before.trim_end_matches(") use").contains("pub("));
            let mut expanded = Vec::new();
            if child {
                expand(&format!("self::{path}"), &mut expanded);
            } else {
                expand(path, &mut expanded);
            }
            paths.extend(expanded.into_iter().map(|(path, name)| Found {
                path,
                used_here: reexport && occurrences(&code, &name) > 1,
                reexported_as: reexport.then_some(name),
            }));
            i += end.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    paths
}

/// Where a path (with any brace groups) ends.
fn path_end(text: &str) -> usize {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => return at,
            _ => {}
        }
    }
    text.len()
}

/// `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e`, each with the
/// name it is known by where it is imported (`b`, `d`, `f`).
fn expand(path: &str, out: &mut Vec<(String, String)>) {
    let Some(open) = path.find('{') else {
        let (path, alias) = match path.split_once(" as ") {
            Some((path, alias)) => (path.trim(), Some(alias.trim())),
            None => (path.trim(), None),
        };
        let path = path.trim_end_matches(':');
        let name = alias.unwrap_or_else(|| path.rsplit("::").next().unwrap_or(path));
        out.push((path.to_string(), name.to_string()));
        return;
    };
    let prefix = &path[..open];
    let inner = &path[open + 1..path.len().saturating_sub(1)];
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if item == "self" {
            expand(prefix.trim_end_matches(':'), out);
        } else {
            expand(&format!("{prefix}{item}"), out);
        }
    }
}

/// A path made absolute from the crate's root, as segments.
fn absolute(module: &[String], path: &str) -> Option<Vec<String>> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let mut base: Vec<String> = match segments.next()? {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let mut base = module.to_vec();
            base.pop()?;
            base
        }
        _ => return None,
    };
    for segment in segments {
        if segment == "*" {
            break;
        }
        if segment == "super" {
            base.pop()?;
        } else {
            base.push(segment.to_string());
        }
    }
    Some(base)
}

/// Per file, the names it re-exports and the absolute paths they stand for.
type Reexports = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The file that defines `path`: the one that defines its longest prefix,
/// followed through that file's re-exports.
fn resolve(
    files: &BTreeSet<String>,
    reexports: &Reexports,
    path: &[String],
    depth: usize,
) -> Option<String> {
    for len in (0..=path.len()).rev() {
        let prefix = path[..len].join("/");
        let candidates = if len == 0 {
            vec!["lib.rs".to_string()]
        } else {
            vec![format!("{prefix}.rs"), format!("{prefix}/mod.rs")]
        };
        if let Some(found) = candidates.into_iter().find(|c| files.contains(c)) {
            let forwarded = path
                .get(len)
                .and_then(|name| reexports.get(&found)?.get(name));
            if let Some(target) = forwarded
                && depth < 8
            {
                let mut onward = target.clone();
                onward.extend_from_slice(&path[len + 1..]);
                return resolve(files, reexports, &onward, depth + 1).or(Some(found));
            }
            return Some(found);
        }
    }
    None
}

#[test]
fn the_module_map_in_lib_rs_names_every_module() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("read src/lib.rs");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    let mapped: BTreeSet<&str> = lib
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("//! - [`")?;
            Some(&rest[..rest.find('`')?])
        })
        .collect();
    assert!(!declared.is_empty(), "no `pub mod` lines in src/lib.rs");
    assert_eq!(
        declared, mapped,
        "the Layout list at the top of src/lib.rs should name each module once"
    );
}

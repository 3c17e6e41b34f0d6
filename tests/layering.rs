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
/// entry point, the command line itself, and the commands above it (they
/// read their flags, or start lab's servers from an argv).
const ABOVE_CLI: &[&str] = &[
    "main.rs",
    "lib.rs",
    "cli/",
    "launch.rs",
    "demo.rs",
    "doctor",
    "labs/",
    "trace/",
    "stats_view.rs",
];

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
            "balance/mod.rs" => "//! crate::proxy in a comment is not an import\nuse crate::proxy::reverse::choose::X;".to_string(),
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
    let circles: Vec<_> = graph
        .strongly_connected()
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    assert_eq!(circles, [vec!["balance/mod.rs", "proxy/reverse/choose.rs"]]);
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
        let mut edges = BTreeMap::new();
        for file in files {
            let module = module_of(file);
            let mut targets = BTreeSet::new();
            for path in paths_in(&read(file)) {
                if let Some(absolute) = absolute(&module, &path)
                    && let Some(target) = resolve(files, &absolute)
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

/// Every path that starts with `crate::`, `super::` or `self::` in `code`
/// (comments and the `#[cfg(test)]` module left out), braces expanded:
/// `use crate::a::{b, c::d};` gives `crate::a::b` and `crate::a::c::d`.
fn paths_in(code: &str) -> Vec<String> {
    let code = match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => &code[..at],
        None => code,
    };
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
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| rest.starts_with(p));
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if starts && boundary {
            let end = path_end(rest);
            expand(&rest[..end], &mut paths);
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

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str, out: &mut Vec<String>) {
    let Some(open) = path.find('{') else {
        out.push(path.trim_end_matches(':').to_string());
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
        let item = item.split(" as ").next().unwrap_or_default().trim();
        if item.is_empty() {
            continue;
        }
        if item == "self" {
            out.push(prefix.trim_end_matches(':').to_string());
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
        if segment == "super" {
            base.pop()?;
        } else {
            base.push(segment.to_string());
        }
    }
    Some(base)
}

/// The file that defines the longest prefix of `path`.
fn resolve(files: &BTreeSet<String>, path: &[String]) -> Option<String> {
    for len in (0..=path.len()).rev() {
        let prefix = path[..len].join("/");
        let candidates = if len == 0 {
            vec!["lib.rs".to_string()]
        } else {
            vec![format!("{prefix}.rs"), format!("{prefix}/mod.rs")]
        };
        if let Some(found) = candidates.into_iter().find(|c| files.contains(c)) {
            return Some(found);
        }
    }
    None
}

//! The module graph of `src/`, as a specification: dependencies go one way.
//!
//! Every file under `src/` is read, mapped to its module path (`src/verify/report.rs` is
//! `verify::report`, `src/verify/mod.rs` is `verify`), and scanned for the modules it
//! names: `use` trees (braces expanded) and `crate::`/`super::`/`self::` paths anywhere in
//! the code, with comments and string literals skipped and inline `mod x { .. }` blocks
//! (the unit tests) resolved in their own scope. Then:
//!
//! - the top-level modules of `src/` form no cycle;
//! - the sibling modules inside any module directory (`verify/*`, `facts/*`, ...) form
//!   no cycle;
//! - `cli` is imported by `main.rs` only.
//!
//! A failure prints each cycle with the file and line of every edge in it.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Files that still import `cli` although only `main.rs` may (none).
const CLI_IMPORT_ALLOWED: [&str; 0] = [];

/// Sibling edges that close a known cycle which this branch cannot break yet.
const KNOWN_SIBLING_EDGES: [(&str, &str); 0] = [];

/// A module path, `[]` being the crate root.
type ModulePath = Vec<String>;

/// One source file of the crate.
struct SourceFile {
    /// Path relative to the repository root, with `/` separators (`src/verify/report.rs`).
    display: String,
    /// Its module path; `None` for `main.rs`, the binary crate.
    module: Option<ModulePath>,
    /// Its text.
    text: String,
}

/// A dependency found in a file: the module path it names and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    target: ModulePath,
    line: usize,
}

/// A directed graph of named nodes; each edge keeps where it was seen, for messages.
#[derive(Debug, Default)]
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl Graph {
    fn add(&mut self, from: &str, to: &str, seen_at: String) {
        if from != to {
            self.edges
                .entry(from.to_owned())
                .or_default()
                .entry(to.to_owned())
                .or_insert(seen_at);
        }
        self.edges.entry(to.to_owned()).or_default();
    }

    fn remove(&mut self, from: &str, to: &str) {
        if let Some(targets) = self.edges.get_mut(from) {
            targets.remove(to);
        }
    }

    /// One cycle per strongly connected component of two or more nodes, each as the
    /// component's members and one circle through them `[a, b, .., a]`; empty when the
    /// graph is acyclic.
    fn cycles(&self) -> Vec<(BTreeSet<String>, Vec<String>)> {
        let mut cycles = Vec::new();
        for component in self.components() {
            if component.len() < 2 {
                continue;
            }
            let start = component.iter().next().cloned().unwrap_or_default();
            let mut path = vec![start.clone()];
            if self.cycle_from(&start, &start, &component, &mut path) {
                cycles.push((component, path));
            }
        }
        cycles
    }

    /// Every circle as text: its members, then one cycle with where each edge was seen.
    fn report(&self, context: &str) -> String {
        let mut out = String::new();
        for (members, cycle) in self.cycles() {
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "  {context}{} depend on each other; for example {}:",
                members.join(", "),
                cycle.join(" -> ")
            );
            out.push_str(&self.describe(&cycle));
        }
        out
    }

    /// Depth-first search for a path back to `start` inside `component`.
    fn cycle_from(
        &self,
        node: &str,
        start: &str,
        component: &BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> bool {
        for next in self.edges.get(node).into_iter().flat_map(BTreeMap::keys) {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if component.contains(next) && !path.contains(next) {
                path.push(next.clone());
                if self.cycle_from(next, start, component, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }

    /// Strongly connected components: nodes that reach each other both ways.
    fn components(&self) -> Vec<BTreeSet<String>> {
        let reach = |from: &str| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from.to_owned()];
            while let Some(node) = stack.pop() {
                for next in self.edges.get(&node).into_iter().flat_map(BTreeMap::keys) {
                    if seen.insert(next.clone()) {
                        stack.push(next.clone());
                    }
                }
            }
            seen
        };
        let reachable: BTreeMap<&String, BTreeSet<String>> =
            self.edges.keys().map(|n| (n, reach(n))).collect();
        let mut assigned = BTreeSet::new();
        let mut components = Vec::new();
        for node in self.edges.keys() {
            if assigned.contains(node) {
                continue;
            }
            let mut component = BTreeSet::from([node.clone()]);
            for other in &reachable[node] {
                if reachable[other].contains(node) {
                    component.insert(other.clone());
                }
            }
            assigned.extend(component.iter().cloned());
            components.push(component);
        }
        components
    }

    /// A cycle as text, one edge per line with where it was seen.
    fn describe(&self, cycle: &[String]) -> String {
        let mut out = String::new();
        for pair in cycle.windows(2) {
            let at = &self.edges[&pair[0]][&pair[1]];
            let _ = writeln!(out, "    {} -> {}  ({at})", pair[0], pair[1]);
        }
        out
    }
}

/// Every `.rs` file under `src/`, in path order.
fn source_files() -> Vec<SourceFile> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect_rs(&root.join("src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).unwrap_or(&path);
            let display = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {display}: {e}"));
            SourceFile {
                module: module_of(&display),
                display,
                text,
            }
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file `src/...`; `None` for `src/main.rs`.
fn module_of(display: &str) -> Option<ModulePath> {
    let inner = display.strip_prefix("src/").unwrap_or(display);
    match inner {
        "main.rs" => None,
        "lib.rs" => Some(Vec::new()),
        _ => {
            let mut parts: Vec<String> = inner.split('/').map(str::to_owned).collect();
            let last = parts.pop().unwrap_or_default();
            if last != "mod.rs" {
                parts.push(last.trim_end_matches(".rs").to_owned());
            }
            Some(parts)
        }
    }
}

/// A token of Rust source, as far as module paths are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Tokens with their line numbers; comments, strings and char literals are dropped.
fn tokenize(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' || ((c == 'r' || c == 'b') && starts_raw_or_byte_string(&chars, i)) {
            i = skip_string(&chars, i, &mut line);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push((Token::Ident(word.trim_start_matches("r#").to_owned()), line));
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push((Token::PathSep, line));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

/// `r"`, `r#"`, `b"`, `br"`, `br#"` start here (and not an identifier like `bar`).
fn starts_raw_or_byte_string(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) == Some(&'r') {
        j += 1;
        while chars.get(j) == Some(&'#') {
            j += 1;
        }
    }
    j > i && chars.get(j) == Some(&'"')
}

/// Skips a string literal starting at `i`; returns the index after it.
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut raw = false;
    while let Some(prefix @ ('b' | 'r')) = chars.get(i) {
        raw |= *prefix == 'r';
        i += 1;
    }
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    while i < chars.len() {
        match chars[i] {
            '\n' => *line += 1,
            '\\' if !raw => i += 1,
            '"' if (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) => {
                return i + 1 + hashes;
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// What a file says about modules: the paths it names, and the names its `use`
/// declarations bind (so that `super::Report` can be followed to `report::Report`).
#[derive(Debug, Default)]
struct Scan {
    references: Vec<Reference>,
    /// `(scope::name, what the name stands for)`.
    bindings: Vec<(ModulePath, ModulePath)>,
}

/// Scans a file whose module is `module`. `root_alias` is what names the crate root
/// besides `crate` (`meshup` in `main.rs`).
fn scan(text: &str, module: &[String], root_alias: Option<&str>) -> Scan {
    let tokens = tokenize(text);
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(word), _)) => Some(word.as_str()),
        _ => None,
    };
    // Names declared with `mod`: the only names a relative path can start from.
    let declared: BTreeSet<&str> = (0..tokens.len())
        .filter(|&i| ident(i) == Some("mod"))
        .filter_map(|i| ident(i + 1))
        .collect();
    let resolve = |path: &[String], scope: &[String]| resolve(path, scope, root_alias, &declared);
    let mut out = Scan::default();
    // Inline modules: (scope, brace depth at which it closes).
    let mut scopes: Vec<(ModulePath, usize)> = vec![(module.to_vec(), 0)];
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let scope = scopes.last().map(|(s, _)| s.clone()).unwrap_or_default();
        let line = tokens[i].1;
        match &tokens[i].0 {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth -= 1;
                if scopes.len() > 1 && scopes.last().is_some_and(|(_, d)| *d == depth) {
                    scopes.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(name), Some((Token::Punct('{'), _))) =
                    (ident(i + 1), tokens.get(i + 2))
                {
                    let mut inner = scope.clone();
                    inner.push(name.to_owned());
                    scopes.push((inner, depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Token::Ident(word) if word == "use" => {
                let end = (i..tokens.len())
                    .find(|&j| tokens[j].0 == Token::Punct(';'))
                    .unwrap_or(tokens.len());
                for item in expand_use_tree(&tokens[i + 1..end]) {
                    let Some(target) = resolve(&item.path, &scope) else {
                        continue;
                    };
                    if let Some(name) = item.binding {
                        let mut bound = scope.clone();
                        bound.push(name);
                        out.bindings.push((bound, target.clone()));
                    }
                    out.references.push(Reference { target, line });
                }
                i = end + 1;
                continue;
            }
            Token::Ident(word)
                if (word == "crate"
                    || word == "super"
                    || word == "self"
                    || Some(word.as_str()) == root_alias)
                    && tokens.get(i + 1).map(|t| &t.0) == Some(&Token::PathSep)
                    && i.checked_sub(1).map(|p| &tokens[p].0) != Some(&Token::PathSep) =>
            {
                let mut path = vec![word.clone()];
                let mut j = i + 1;
                while tokens.get(j).map(|t| &t.0) == Some(&Token::PathSep) {
                    match ident(j + 1) {
                        Some(next) => path.push(next.to_owned()),
                        None => break,
                    }
                    j += 2;
                }
                if let Some(target) = resolve(&path, &scope) {
                    out.references.push(Reference { target, line });
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module paths a file names (see [`scan`]).
fn references(text: &str, module: &[String], root_alias: Option<&str>) -> Vec<Reference> {
    scan(text, module, root_alias).references
}

/// One path of a `use` tree and the name it binds (`None` for a glob or `as _`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct UseItem {
    path: Vec<String>,
    binding: Option<String>,
}

/// The paths of a `use` tree: `a::{b, c::{d, e as f}, self}` gives `a::b` (binds `b`),
/// `a::c::d` (`d`), `a::c::e` (`f`) and `a` (`a`); `a::*` gives `a`, binding nothing.
fn expand_use_tree(tokens: &[(Token, usize)]) -> Vec<UseItem> {
    fn tree(tokens: &[(Token, usize)], i: &mut usize, prefix: &[String], out: &mut Vec<UseItem>) {
        let mut path = prefix.to_vec();
        let mut binding = None;
        let mut glob = false;
        while let Some((token, _)) = tokens.get(*i) {
            match token {
                Token::Ident(word) if word == "as" => {
                    binding = match tokens.get(*i + 1) {
                        Some((Token::Ident(alias), _)) => Some(alias.clone()),
                        _ => None,
                    };
                    glob = binding.is_none();
                    *i += 2;
                }
                // `{self, ..}`: the prefix itself.
                Token::Ident(word) if word == "self" && !prefix.is_empty() => *i += 1,
                Token::Ident(word) => {
                    path.push(word.clone());
                    *i += 1;
                }
                Token::Punct('*') => {
                    glob = true;
                    *i += 1;
                }
                Token::PathSep => *i += 1,
                Token::Punct('{') => {
                    *i += 1;
                    loop {
                        tree(tokens, i, &path, out);
                        match tokens.get(*i).map(|t| &t.0) {
                            Some(Token::Punct(',')) => *i += 1,
                            Some(Token::Punct('}')) => {
                                *i += 1;
                                break;
                            }
                            _ => break,
                        }
                    }
                    return;
                }
                _ => break,
            }
        }
        if !path.is_empty() {
            let binding = if glob {
                None
            } else {
                binding.or_else(|| path.last().cloned())
            };
            out.push(UseItem { path, binding });
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    tree(tokens, &mut i, &[], &mut out);
    out
}

/// A path as written in `scope`, made absolute; `None` for other crates (`std`, `serde`)
/// and for names that are not module paths of this crate. A relative path counts when it
/// starts with a module the file declares (`pub use report::Report` in `verify/mod.rs`).
fn resolve(
    path: &[String],
    scope: &[String],
    root_alias: Option<&str>,
    declared: &BTreeSet<&str>,
) -> Option<ModulePath> {
    let (first, rest) = path.split_first()?;
    let mut base: ModulePath = match first.as_str() {
        "crate" => Vec::new(),
        word if Some(word) == root_alias => Vec::new(),
        "self" => scope.to_vec(),
        "super" => {
            let mut base = scope.to_vec();
            base.pop()?;
            let mut rest = rest;
            while rest.first().is_some_and(|w| w == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return Some(base);
        }
        word if declared.contains(word) => {
            let mut base = scope.to_vec();
            base.push(first.clone());
            base
        }
        _ => return None,
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Follows `use` bindings until the target names a module at `depth + 1` segments
/// (`verify::Report` → `verify::report::Report`); `None` when it never does.
fn follow(
    target: &ModulePath,
    depth: usize,
    modules: &BTreeSet<ModulePath>,
    bindings: &BTreeMap<ModulePath, ModulePath>,
) -> Option<ModulePath> {
    let mut target = target.clone();
    for _ in 0..8 {
        if target.len() > depth && modules.contains(&target[..=depth].to_vec()) {
            return Some(target);
        }
        let (len, bound) = (1..=target.len())
            .rev()
            .find_map(|len| Some((len, bindings.get(&target[..len].to_vec())?)))?;
        let mut next = bound.clone();
        next.extend(target[len..].iter().cloned());
        target = next;
    }
    None
}

/// The crate's module graph at one level: the children of `parent`, with an edge
/// `a -> b` when a file inside `parent::a` names something inside `parent::b`.
fn level_graph(
    files: &[SourceFile],
    modules: &BTreeSet<ModulePath>,
    parent: &[String],
    skip: impl Fn(&SourceFile, &ModulePath) -> bool,
) -> Graph {
    let depth = parent.len();
    let name = |m: &[String]| m[..=depth].join("::");
    let scans: Vec<(&SourceFile, &ModulePath, Scan)> = files
        .iter()
        .filter_map(|f| Some((f, f.module.as_ref()?)))
        .map(|(f, m)| (f, m, scan(&f.text, m, None)))
        .collect();
    let bindings: BTreeMap<ModulePath, ModulePath> = scans
        .iter()
        .flat_map(|(_, _, s)| s.bindings.iter().cloned())
        .collect();
    let mut graph = Graph::default();
    for (file, module, scan) in &scans {
        if module.len() <= depth || !module.starts_with(parent) {
            continue;
        }
        for reference in &scan.references {
            if !reference.target.starts_with(parent) {
                continue;
            }
            let Some(target) = follow(&reference.target, depth, modules, &bindings) else {
                continue;
            };
            if target.starts_with(parent) && !skip(file, &target) {
                let at = format!("{}:{}", file.display, reference.line);
                graph.add(&name(module), &name(&target), at);
            }
        }
    }
    graph
}

/// Module paths of every file, and every directory module (those with children).
fn modules(files: &[SourceFile]) -> (BTreeSet<ModulePath>, BTreeSet<ModulePath>) {
    let all: BTreeSet<ModulePath> = files.iter().filter_map(|f| f.module.clone()).collect();
    let parents = all
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    (all, parents)
}

fn is_cli(target: &[String]) -> bool {
    target.first().is_some_and(|m| m == "cli")
}

/// Edges into `cli` from the allow-listed files are left out of the top-level graph.
fn allowed_cli_import(file: &SourceFile, target: &ModulePath) -> bool {
    is_cli(target) && CLI_IMPORT_ALLOWED.contains(&file.display.as_str())
}

#[test]
fn top_level_modules_form_no_cycle() {
    let files = source_files();
    let (all, _) = modules(&files);
    let graph = level_graph(&files, &all, &[], allowed_cli_import);
    let report = graph.report("");
    assert!(
        report.is_empty(),
        "top-level modules of src/ depend on each other in a circle:\n{report}"
    );
}

#[test]
fn sibling_modules_form_no_cycle() {
    let files = source_files();
    let (all, parents) = modules(&files);
    let mut report = String::new();
    for parent in parents.iter().filter(|p| !p.is_empty()) {
        let mut graph = level_graph(&files, &all, parent, |_, _| false);
        for (from, to) in KNOWN_SIBLING_EDGES {
            graph.remove(from, to);
        }
        report.push_str(&graph.report(&format!("in {}/: ", parent.join("/"))));
    }
    assert!(
        report.is_empty(),
        "sibling modules depend on each other in a circle:\n{report}"
    );
}

#[test]
fn known_sibling_edges_still_exist() {
    // When one of these goes away, remove it from KNOWN_SIBLING_EDGES.
    let files = source_files();
    let (all, _) = modules(&files);
    for (from, to) in KNOWN_SIBLING_EDGES {
        let parent: ModulePath = from.split("::").map(str::to_owned).collect();
        let graph = level_graph(&files, &all, &parent[..parent.len() - 1], |_, _| false);
        assert!(
            graph.edges.get(from).is_some_and(|t| t.contains_key(to)),
            "{from} no longer imports {to}: remove the pair from KNOWN_SIBLING_EDGES"
        );
    }
}

#[test]
fn only_main_imports_cli() {
    let files = source_files();
    let mut importers: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let (module, alias) = match &file.module {
            Some(module) => (module.clone(), None),
            None => (Vec::new(), Some("meshup")),
        };
        if file.display == "src/main.rs" || module.first().is_some_and(|m| m == "cli") {
            continue;
        }
        for reference in references(&file.text, &module, alias) {
            if is_cli(&reference.target) {
                importers
                    .entry(file.display.clone())
                    .or_insert(reference.line);
            }
        }
    }
    let unexpected: Vec<String> = importers
        .iter()
        .filter(|(file, _)| !CLI_IMPORT_ALLOWED.contains(&file.as_str()))
        .map(|(file, line)| format!("{file}:{line}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "only main.rs may import cli; also imported by: {unexpected:?}"
    );
    let stale: Vec<&str> = CLI_IMPORT_ALLOWED
        .into_iter()
        .filter(|file| !importers.contains_key(*file))
        .collect();
    assert!(
        stale.is_empty(),
        "{stale:?} no longer import cli: remove them from CLI_IMPORT_ALLOWED"
    );
}

#[test]
fn main_imports_cli_through_the_library() {
    // Guards the scanner: if it stopped seeing `meshup::cli` in main.rs, the check above
    // would pass for the wrong reason.
    let files = source_files();
    let main = files
        .iter()
        .find(|f| f.module.is_none())
        .expect("src/main.rs");
    let refs = references(&main.text, &[], Some("meshup"));
    assert!(refs.iter().any(|r| is_cli(&r.target)), "{refs:?}");
}

/// A graph from `(from, to)` pairs; each edge is seen at `<from>.rs:1`.
fn graph(edges: &[(&str, &str)]) -> Graph {
    let mut g = Graph::default();
    for (from, to) in edges {
        g.add(from, to, format!("{from}.rs:1"));
    }
    g
}

/// The cycles of a graph, without their members.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    graph.cycles().into_iter().map(|(_, cycle)| cycle).collect()
}

#[test]
fn cycle_detector_finds_a_cycle_and_nothing_else() {
    let g = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("c", "e")]);
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c", "a"]]);
    assert_eq!(
        g.report("in x/: "),
        "  in x/: a, b, c depend on each other; for example a -> b -> c -> a:\n\
         \x20   a -> b  (a.rs:1)\n    b -> c  (b.rs:1)\n    c -> a  (c.rs:1)\n"
    );
}

#[test]
fn cycle_detector_accepts_a_dag_and_ignores_self_edges() {
    let g = graph(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "d")]);
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new());
    assert_eq!(g.report(""), "");
}

#[test]
fn cycle_detector_reports_each_circle_once_and_an_edge_removed_breaks_it() {
    let mut g = graph(&[("a", "b"), ("b", "a"), ("x", "y"), ("y", "z"), ("z", "x")]);
    assert_eq!(
        cycles(&g),
        vec![vec!["a", "b", "a"], vec!["x", "y", "z", "x"]]
    );
    g.remove("b", "a");
    assert_eq!(cycles(&g), vec![vec!["x", "y", "z", "x"]]);
}

#[test]
fn references_resolve_use_trees_paths_and_inline_modules() {
    let text = r##"
//! Doc naming crate::cli::Cli is not a dependency.
use std::fmt;
use super::{evidence::{PairEvidence, PairStatus}, report};
use crate::facts::{self, WgPeerDump as Peer};
pub(crate) use self::inner::Thing;
const S: &str = "crate::render::x";
const R: &str = r#"super::ignored"#;
fn f<'a>(c: char) -> bool { c == '{' && crate::keys::check() }
#[cfg(test)]
mod tests {
    use super::*;
    use super::super::probe::parse;
}
fn g() { super::ping::run() }
"##;
    let module = ["verify".to_owned(), "evaluate".to_owned()];
    let found: Vec<String> = references(text, &module, None)
        .into_iter()
        .map(|r| format!("{}@{}", r.target.join("::"), r.line))
        .collect();
    assert_eq!(
        found,
        [
            "verify::evidence::PairEvidence@4",
            "verify::evidence::PairStatus@4",
            "verify::report@4",
            "facts@5",
            "facts::WgPeerDump@5",
            "verify::evaluate::inner::Thing@6",
            "keys::check@9",
            "verify::evaluate@12",
            "verify::probe::parse@13",
            "verify::ping::run@15",
        ]
    );
}

#[test]
fn files_map_to_module_paths() {
    assert_eq!(module_of("src/lib.rs"), Some(vec![]));
    assert_eq!(module_of("src/main.rs"), None);
    assert_eq!(
        module_of("src/verify/mod.rs"),
        Some(vec!["verify".to_owned()])
    );
    assert_eq!(
        module_of("src/inventory/validate/node.rs"),
        Some(vec![
            "inventory".to_owned(),
            "validate".to_owned(),
            "node".to_owned()
        ])
    );
}

#[test]
fn names_imported_through_a_parent_lead_to_the_module_that_defines_them() {
    let path = |p: &str| p.split("::").map(str::to_owned).collect::<ModulePath>();
    let modules = BTreeSet::from([path("verify"), path("verify::report")]);
    let bindings = BTreeMap::from([(path("verify::Report"), path("verify::report::Report"))]);
    assert_eq!(
        follow(&path("verify::Report::new"), 1, &modules, &bindings),
        Some(path("verify::report::Report::new"))
    );
    assert_eq!(
        follow(&path("verify::Unknown"), 1, &modules, &bindings),
        None
    );
}

/// The bound on a source file's own code: the lines before its unit tests (a trailing
/// `#[cfg(test)]` module, or none). Test files (`tests.rs`, `*_tests.rs`) are not bound.
const MAX_SOURCE_LINES: usize = 500;

/// The lines of a file's own code: up to its first `#[cfg(test)]` line.
fn code_lines(text: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .unwrap_or_else(|| text.lines().count())
}

#[test]
fn no_source_file_holds_more_than_500_lines_of_code() {
    let over: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !f.display.ends_with("/tests.rs") && !f.display.ends_with("_tests.rs"))
        .filter_map(|f| {
            let n = code_lines(&f.text);
            (n > MAX_SOURCE_LINES).then(|| format!("{}: {n} lines", f.display))
        })
        .collect();
    assert!(
        over.is_empty(),
        "source files over {MAX_SOURCE_LINES} lines of code (split them):\n{}",
        over.join("\n")
    );
}

#[test]
fn code_lines_stop_at_the_unit_tests() {
    assert_eq!(code_lines("a\nb\n"), 2);
    assert_eq!(code_lines("a\nb\n#[cfg(test)]\nmod tests {\n}\n"), 2);
}

/// One module layout: a module with a test file of its own is a directory (`x/mod.rs`
/// beside `x/tests.rs`), never `x.rs` next to a directory `x/` that holds only `tests.rs`.
#[test]
fn no_module_folder_holds_only_a_tests_file_beside_a_same_named_file() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src dir").flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            dirs.push(path.clone());
            let names: Vec<String> = std::fs::read_dir(&path)
                .expect("read dir")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if names == ["tests.rs"] && path.with_extension("rs").exists() {
                bad.push(
                    path.strip_prefix(&root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(bad.is_empty(), "use x/mod.rs + x/tests.rs for: {bad:?}");
}

/// Every subcommand starts in its own file under `src/commands/` (`Command::Plan` in
/// `src/commands/plan.rs`), and `cli` dispatches each one there.
#[test]
fn every_command_lives_under_src_commands() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cli = std::fs::read_to_string(root.join("src/cli.rs")).expect("read cli.rs");
    let start = cli.find("pub enum Command {").expect("the Command enum");
    let body = &cli[start..start + cli[start..].find("\n}").expect("enum end")];
    let variants: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .filter_map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .map(str::to_owned)
        })
        .collect();
    assert!(variants.len() >= 10, "{variants:?}");
    for variant in &variants {
        let module = variant.to_lowercase();
        assert!(
            root.join(format!("src/commands/{module}.rs")).exists(),
            "Command::{variant} has no src/commands/{module}.rs"
        );
        assert!(
            cli.contains(&format!("commands::{module}::run(")),
            "cli.rs does not dispatch Command::{variant} to commands::{module}::run"
        );
    }
}

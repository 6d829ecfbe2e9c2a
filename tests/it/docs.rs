//! The README and the user guide under `docs/`, as a specification:
//!
//! - the README stays short (at most [`README_MAX_LINES`] lines); the rest is in `docs/`;
//! - every relative link in `README.md` and `docs/*.md` points to a file that exists, and a
//!   `#anchor` to a heading of the Markdown file it names (GitHub's heading ids);
//! - the README's test command is the one `.ci/run` runs, so "run the tests" means what CI
//!   means.
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The README's length bound (issue #31).
const README_MAX_LINES: usize = 250;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// `README.md` and every `docs/*.md`, as paths relative to the repository root.
fn documents() -> Vec<String> {
    let mut out = vec!["README.md".to_owned()];
    let mut pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    out.extend(pages);
    out
}

/// The lines of a Markdown text outside fenced code blocks, with their line numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// A line without its inline code spans (`` `…` ``): a `](` inside code is not a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` on a line.
fn link_targets(line: &str) -> Vec<String> {
    let text = without_code_spans(line);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        out.push(after[..end].trim().to_owned());
        rest = &after[end..];
    }
    out
}

/// GitHub's id for a heading: lower case, letters, digits, `-` and `_` kept, spaces made
/// `-`, everything else (punctuation, backticks) dropped.
fn heading_id(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The heading ids of a Markdown text, a repeated id numbered as GitHub does (`x`, `x-1`).
fn heading_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = heading_id(heading);
        let mut id = base.clone();
        let mut n = 0;
        while ids.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        ids.insert(id);
    }
    ids
}

/// `dir/../x` and `dir/./x` resolved lexically, relative to the repository root.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// Every broken relative link of one document: `file:line: target: why`.
fn broken_links(doc: &str) -> Vec<String> {
    let text = read(doc);
    let dir = Path::new(doc).parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for (line_no, line) in prose_lines(&text) {
        for target in link_targets(line) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                doc.to_owned()
            } else {
                normalize(&dir.join(file))
            };
            let path = root().join(&resolved);
            if !path.exists() {
                out.push(format!(
                    "{doc}:{line_no}: {target}: {resolved} does not exist"
                ));
                continue;
            }
            if let Some(anchor) = anchor
                && resolved.ends_with(".md")
                && !heading_ids(&read(&resolved)).contains(anchor)
            {
                out.push(format!(
                    "{doc}:{line_no}: {target}: {resolved} has no heading #{anchor}"
                ));
            }
        }
    }
    out
}

#[test]
fn docs_readme_is_short() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move the detail into docs/"
    );
}

#[test]
fn docs_every_relative_link_points_to_a_file_and_heading_that_exist() {
    let docs = documents();
    assert!(
        docs.len() > 1,
        "docs/ holds no page: {docs:?} (the user guide lives there)"
    );
    let broken: Vec<String> = docs.iter().flat_map(|d| broken_links(d)).collect();
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn docs_link_check_sees_links_anchors_and_code() {
    // The checker itself, on the shapes the guide uses.
    assert_eq!(
        link_targets("see [a](x.md#y) and [`b`](../c.md), not `[c](d.md)`"),
        vec!["x.md#y", "../c.md"]
    );
    assert_eq!(heading_id("What `apply` does"), "what-apply-does");
    assert_eq!(
        heading_id("One run per mesh: the run hold"),
        "one-run-per-mesh-the-run-hold"
    );
    assert_eq!(
        heading_id("FAQ: why /32 in AllowedIPs instead of the whole /24?"),
        "faq-why-32-in-allowedips-instead-of-the-whole-24"
    );
    let ids = heading_ids("# A\n```\n# not a heading\n```\n## A\n#no\n");
    assert_eq!(ids, BTreeSet::from(["a".to_owned(), "a-1".to_owned()]));
    assert_eq!(
        normalize(Path::new("docs/../tests/lab/README.md")),
        "tests/lab/README.md"
    );
}

#[test]
fn docs_readme_test_command_is_what_ci_runs() {
    // The command .ci/run ends with, after installing packages: its last line that is
    // neither empty nor a comment.
    let ci = read(".ci/run");
    let command = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .expect(".ci/run runs a command");
    // The README gives it as a code block of its own.
    let readme = read("README.md");
    let blocks: Vec<Vec<&str>> = readme
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| {
            b.lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .collect();
    assert!(
        blocks.iter().any(|b| b.as_slice() == [command]),
        "README.md has no code block holding exactly `{command}`, the command .ci/run runs"
    );
}

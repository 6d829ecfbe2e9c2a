//! Splitting gather output into named sections.

use std::collections::BTreeMap;

use crate::scripts::output::{self, Line};

/// First line of a gather run; the version changes when the format does.
pub const HEADER: &str = "@@meshup:gather:v1";
/// Last line of a complete gather run.
pub const DONE: &str = "@@meshup:done";

/// One section of gather output: its body and the exit status of the commands behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// Body text with marker escaping undone, lines joined by `\n`.
    pub body: String,
    /// Exit status from the `@@meshup:status:` line; `None` when the run was cut off.
    pub status: Option<i32>,
}

impl Section {
    /// True when the section's commands exited 0.
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }

    /// The body lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.body.lines()
    }
}

/// All sections of one gather run, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sections {
    /// Sections by name; a name seen twice keeps the first.
    pub sections: BTreeMap<String, Section>,
    /// The header line was present.
    pub has_header: bool,
    /// The final `@@meshup:done` line was present (the run was not cut off).
    pub complete: bool,
}

impl Sections {
    /// Splits raw gather output. Never fails: unknown marker lines and text outside
    /// sections are ignored, a section without a status line keeps `status: None`.
    pub fn split(output: &str) -> Sections {
        let mut result = Sections::default();
        let mut current: Option<(String, Vec<&str>)> = None;
        for line in output::lines(output) {
            match line {
                Line::Marker {
                    kind: "gather",
                    value: "v1",
                } => result.has_header = true,
                Line::Marker { kind: "done", .. } => {
                    result.finish(current.take(), None);
                    result.complete = true;
                }
                Line::Marker {
                    kind: "section",
                    value: name,
                } => {
                    result.finish(current.take(), None);
                    current = Some((name.to_string(), Vec::new()));
                }
                Line::Marker {
                    kind: "status",
                    value: status,
                } => {
                    let (name, code) = status.rsplit_once(':').unwrap_or((status, ""));
                    let code = code.trim().parse::<i32>().ok();
                    match current.take() {
                        Some((open, body)) if open == name => {
                            result.finish(Some((open, body)), Some(code.unwrap_or(-1)))
                        }
                        other => result.finish(other, None),
                    }
                }
                Line::Marker { .. } => {}
                Line::Body(text) => {
                    if let Some((_, body)) = current.as_mut() {
                        body.push(text);
                    }
                }
            }
        }
        result.finish(current.take(), None);
        result
    }

    fn finish(&mut self, section: Option<(String, Vec<&str>)>, status: Option<i32>) {
        let Some((name, lines)) = section else { return };
        self.sections.entry(name).or_insert(Section {
            body: lines.join("\n"),
            status,
        });
    }

    /// The section called `name`, if the output had it.
    pub fn get(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// The body of a section that ran and exited 0, else `None`.
    pub fn ok_body(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|s| s.ok()).map(|s| s.body.as_str())
    }
}

/// Parses `key=value` lines (no quoting); later duplicates are kept in order.
pub fn key_values(body: &str) -> Vec<(&str, &str)> {
    body.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The first value for `key` in `key=value` lines.
pub fn value<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// `yes`/`no` as a bool; anything else is unknown.
pub fn yes_no(value: Option<&str>) -> Option<bool> {
    match value {
        Some("yes") => Some(true),
        Some("no") => Some(false),
        _ => None,
    }
}

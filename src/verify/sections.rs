//! Splits probe output into its marked sections.
use crate::scripts::output::{self, Line};

/// One section of probe output: the marker's words, the body, and the status the
/// script recorded for it (when it records one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// Section kind, the first word after the marker (`ping`, `wg-dump`, …).
    pub kind: &'a str,
    /// The remaining words of the marker line.
    pub args: Vec<&'a str>,
    /// Body lines between this marker and the next.
    pub body: Vec<&'a str>,
    /// Status from an `exit` marker inside the section.
    pub exit: Option<i32>,
}

impl Section<'_> {
    /// The body joined back into text.
    pub fn text(&self) -> String {
        let mut out = self.body.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// The kind of the probe's markers in the one marker protocol (`@@meshup:KIND:VALUE`).
pub const MARKER_KIND: &str = "verify";

/// Splits `output` into sections; text before the first marker is dropped. Probe
/// markers are `@@meshup:verify:<kind> <args…>` in the one marker protocol
/// ([`crate::scripts::output`]); markers of other kinds (the facts gather running
/// inside the probe) are left to their own parser.
pub fn split(output: &str) -> Vec<Section<'_>> {
    let mut sections: Vec<Section<'_>> = Vec::new();
    for line in output::lines(output) {
        match line {
            Line::Marker {
                kind: MARKER_KIND,
                value,
            } => {
                let mut words = value.split_whitespace();
                let kind = words.next().unwrap_or("");
                if kind == "exit" {
                    if let Some(section) = sections.last_mut() {
                        section.exit = words.next().and_then(|w| w.parse().ok());
                    }
                    continue;
                }
                sections.push(Section {
                    kind,
                    args: words.collect(),
                    body: Vec::new(),
                    exit: None,
                });
            }
            Line::Marker { .. } => {}
            Line::Body(text) => {
                if let Some(section) = sections.last_mut() {
                    section.body.push(text);
                }
            }
        }
    }
    sections
}

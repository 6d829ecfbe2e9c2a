//! The one marker protocol of meshup's remote scripts, and its one splitter.
//!
//! A script's standard output is body text interleaved with marker lines
//! `@@meshup:KIND:VALUE`. A body line that itself starts with `@@` is escaped by the
//! script with one more `@` (the gather does this for every section body), so it can
//! never pass for a marker; [`lines`] undoes the escape.

/// The prefix of every marker line.
pub const PREFIX: &str = "@@meshup:";

/// One line of script output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// `@@meshup:KIND:VALUE` (a marker without `:VALUE` has an empty value).
    Marker {
        /// The word after the prefix: `section`, `status`, `step`, `fail`, `done`, …
        kind: &'a str,
        /// Everything after the kind's colon.
        value: &'a str,
    },
    /// Any other line, unescaped.
    Body(&'a str),
}

/// Splits output into lines, telling markers from body text. Carriage returns at line
/// ends are dropped.
pub fn lines(output: &str) -> impl Iterator<Item = Line<'_>> {
    output.lines().map(|raw| {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = line.strip_prefix(PREFIX) {
            let (kind, value) = rest.split_once(':').unwrap_or((rest, ""));
            Line::Marker { kind, value }
        } else if line.starts_with("@@@") {
            Line::Body(&line[1..])
        } else {
            Line::Body(line)
        }
    })
}

/// One marker line, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The marker's kind.
    pub kind: String,
    /// The marker's value.
    pub value: String,
}

/// The marker lines of `output`, in order.
pub fn markers(output: &str) -> Vec<Marker> {
    lines(output)
        .filter_map(|l| match l {
            Line::Marker { kind, value } => Some(Marker {
                kind: kind.to_string(),
                value: value.to_string(),
            }),
            Line::Body(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_escaped_body_lines() {
        let out = "@@meshup:section:os\r\nID=debian\n@@@@meshup:fake\n@@meshup:done\n";
        let got: Vec<Line<'_>> = lines(out).collect();
        assert_eq!(
            got,
            [
                Line::Marker {
                    kind: "section",
                    value: "os"
                },
                Line::Body("ID=debian"),
                Line::Body("@@@meshup:fake"),
                Line::Marker {
                    kind: "done",
                    value: ""
                },
            ]
        );
        assert_eq!(markers(out).len(), 2);
    }
}

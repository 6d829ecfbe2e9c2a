//! Command templates with `{name}` placeholders filled by shell-quoted values.

use std::fmt;

/// A command template: text with `{name}` placeholders (`name` = `[a-z_][a-z0-9_]*`); any other
/// brace is literal. Placeholders are checked against an allowed list at load time.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Template(String);

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.0)
    }
}

/// A value for a placeholder: one or several shell words.
pub(crate) enum Fill<'a> {
    /// One word.
    One(&'a str),
    /// Several words, each quoted, joined by spaces.
    Many(&'a [String]),
}

impl Template {
    /// A template from text (placeholders are checked by the caller).
    pub(crate) fn new(text: &str) -> Template {
        Template(text.to_string())
    }

    /// The raw template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Placeholder names in order of appearance.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find('{') {
            let after = &rest[start + 1..];
            match after.find('}') {
                Some(end) if is_name(&after[..end]) => {
                    names.push(&after[..end]);
                    rest = &after[end + 1..];
                }
                _ => rest = after,
            }
        }
        names
    }

    /// Checks that every placeholder is one of `allowed`.
    pub(crate) fn check(&self, allowed: &[&str]) -> Result<(), String> {
        match self
            .placeholders()
            .into_iter()
            .find(|p| !allowed.contains(p))
        {
            Some(bad) => Err(format!(
                "unknown placeholder {{{bad}}} in {:?} (allowed: {})",
                self.0,
                allowed.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// Like [`Template::render`], but `None` when some placeholder has no value: a
    /// command that needs a path this distribution does not have is left out.
    pub(crate) fn render_if_filled(&self, values: &[(&str, Fill<'_>)]) -> Option<String> {
        self.placeholders()
            .iter()
            .all(|p| values.iter().any(|(n, _)| n == p))
            .then(|| self.render(values))
    }

    /// Fills the placeholders; each value is shell-quoted with `shlex::try_quote`.
    /// Values are validated by the callers, so a value that cannot be quoted (NUL) or a
    /// missing value renders as `''`, which makes the command fail rather than misbehave.
    pub(crate) fn render(&self, values: &[(&str, Fill<'_>)]) -> String {
        let mut out = String::with_capacity(self.0.len() + 16);
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            match after.find('}') {
                Some(end) if is_name(&after[..end]) => {
                    let name = &after[..end];
                    let fill = values.iter().find(|(n, _)| *n == name).map(|(_, f)| f);
                    out.push_str(&match fill {
                        Some(Fill::One(v)) => quote(v),
                        Some(Fill::Many(vs)) => {
                            vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(" ")
                        }
                        None => "''".to_string(),
                    });
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn quote(value: &str) -> String {
    if value.is_empty() {
        return "''".to_string();
    }
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".to_string())
}

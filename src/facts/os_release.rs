//! The `os-release` fact: which distribution a host runs.

use serde::Serialize;

/// The identifying fields of `/etc/os-release` (os-release(5)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `ID`, lowercased (e.g. `debian`, `rocky`); empty when unknown.
    pub id: String,
    /// `ID_LIKE`, split on whitespace, lowercased.
    pub id_like: Vec<String>,
    /// `VERSION_ID` (e.g. `12`, `3.20.3`).
    pub version_id: Option<String>,
    /// `PRETTY_NAME`, for messages.
    pub pretty_name: Option<String>,
    /// `VARIANT_ID`, lowercased (e.g. `coreos`, `silverblue`); tells image-based
    /// editions apart from the classic one with the same `ID`.
    pub variant_id: Option<String>,
}

impl OsRelease {
    /// Parses os-release text: `KEY=value` lines, values optionally single- or
    /// double-quoted with shell-style backslash escapes; comments and junk are skipped.
    pub fn parse(text: &str) -> OsRelease {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(raw.trim());
            match key.trim() {
                "ID" => os.id = value.to_lowercase(),
                "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_lowercase).collect(),
                "VERSION_ID" => os.version_id = Some(value).filter(|v| !v.is_empty()),
                "PRETTY_NAME" => os.pretty_name = Some(value).filter(|v| !v.is_empty()),
                "VARIANT_ID" => {
                    os.variant_id = Some(value.to_lowercase()).filter(|v| !v.is_empty())
                }
                _ => {}
            }
        }
        if os.id.is_empty() && !text.trim().is_empty() {
            // os-release(5): a missing ID means "linux".
            os.id = "linux".to_string();
        }
        os
    }

    /// A short description for messages: PRETTY_NAME, else `ID VERSION_ID`.
    pub fn describe(&self) -> String {
        match (&self.pretty_name, &self.version_id) {
            (Some(pretty), _) => pretty.clone(),
            (None, Some(version)) => format!("{} {version}", self.id),
            (None, None) => self.id.clone(),
        }
    }
}

fn unquote(raw: &str) -> String {
    let mut chars = raw.chars();
    match chars.next() {
        Some(q @ ('"' | '\'')) => {
            let mut out = String::new();
            let mut escaped = false;
            for c in chars {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    break;
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => raw.to_string(),
    }
}

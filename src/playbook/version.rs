//! Release versions and version ranges (`VersionRange`), compared component-wise.

use std::cmp::Ordering;
use std::fmt;

/// A dotted release version (`8.9`, `24.04`, `3.20.3`, `v24.06`): numbers compared
/// component-wise, missing components count as 0 (`9` == `9.0`, `8.9` < `9`).
#[derive(Debug, Clone)]
pub struct Version(Vec<u64>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Version {
    /// Parses `VERSION_ID`; `None` when it is not dotted numbers (`edge`, `rolling`).
    /// A leading `v` (postmarketOS `v24.06`) is ignored.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        if text.is_empty() {
            return None;
        }
        text.split('.')
            .map(|part| {
                if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
                    part.parse::<u64>().ok()
                } else {
                    None
                }
            })
            .collect::<Option<Vec<u64>>>()
            .map(Version)
    }

    fn component(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }

    /// `self` starts with `prefix` (`8.9` starts with `8`; `8` starts with `8.0`).
    fn starts_with(&self, prefix: &Version) -> bool {
        (0..prefix.0.len()).all(|i| self.component(i) == prefix.component(i))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| self.component(i).cmp(&other.component(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    /// Same release line: `=8` matches `8`, `8.9`, but not `9`.
    Eq,
}

/// A `VERSION_ID` range from a playbook: `">=8, <9"`, `"=24.04"`, `"<11"`, or `"none"`
/// (only hosts whose os-release has no usable `VERSION_ID`: Arch, Debian sid).
/// All comma-separated constraints must hold. A host without a usable `VERSION_ID`
/// never satisfies a numeric constraint.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRange {
    text: String,
    constraints: Vec<(Op, Version)>,
    none: bool,
}

impl fmt::Debug for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionRange({:?})", self.text)
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl VersionRange {
    /// Parses a range; the error says what is wrong.
    pub fn parse(text: &str) -> Result<VersionRange, String> {
        let trimmed = text.trim();
        if trimmed == "none" {
            return Ok(VersionRange {
                text: trimmed.to_string(),
                constraints: Vec::new(),
                none: true,
            });
        }
        let mut constraints = Vec::new();
        for part in trimmed.split(',') {
            let part = part.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .into_iter()
            .find_map(|(sym, op)| part.strip_prefix(sym).map(|r| (op, r)))
            .ok_or_else(|| {
                format!(
                    "invalid version range {text:?}: {part:?} must start with >=, >, <=, < or = \
                     (or the whole range be \"none\")"
                )
            })?;
            let version = Version::parse(rest).ok_or_else(|| {
                format!("invalid version range {text:?}: {rest:?} is not a dotted version")
            })?;
            constraints.push((op, version));
        }
        Ok(VersionRange {
            text: trimmed.to_string(),
            constraints,
            none: false,
        })
    }

    /// `version_id` (raw os-release value, possibly missing) is inside the range.
    pub fn matches(&self, version_id: Option<&str>) -> bool {
        let version = version_id.and_then(Version::parse);
        if self.none {
            return version.is_none();
        }
        let Some(v) = version else {
            return false;
        };
        self.constraints.iter().all(|(op, bound)| match op {
            Op::Lt => v < *bound,
            Op::Le => v <= *bound,
            Op::Gt => v > *bound,
            Op::Ge => v >= *bound,
            Op::Eq => v.starts_with(bound),
        })
    }
}

impl<'de> serde::Deserialize<'de> for VersionRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        VersionRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_component_wise() {
        let v = |s| Version::parse(s).expect(s);
        assert!(v("8.9") < v("9"));
        assert!(v("24.04") > v("22.04"));
        assert!(v("3.20.3") > v("3.9"));
        assert_eq!(v("9"), v("9.0"));
        assert_eq!(v("v24.06"), v("24.6"));
        assert_eq!(Version::parse("edge"), None);
        assert_eq!(Version::parse(""), None);
        assert_eq!(Version::parse("1..2"), None);
    }

    #[test]
    fn ranges() {
        let cases: [(&str, Option<&str>, bool); 16] = [
            (">=8, <9", Some("8.9"), true),
            (">=8, <9", Some("8"), true),
            (">=8, <9", Some("9.0"), false),
            (">=8, <9", Some("7.9.2009"), false),
            (">=8, <9", None, false),
            ("=24.04", Some("24.04"), true),
            ("=24.04", Some("22.04"), false),
            ("=8", Some("8.10"), true),
            ("=8", Some("9"), false),
            ("<11", Some("10"), true),
            (">22.04", Some("24.04"), true),
            ("<=2", Some("2"), true),
            ("none", None, true),
            ("none", Some("12"), false),
            ("none", Some("edge"), true),
            (">=3", Some("edge"), false),
        ];
        for (range, version, expected) in cases {
            let r = VersionRange::parse(range).expect(range);
            assert_eq!(r.matches(version), expected, "{range} vs {version:?}");
        }
    }

    #[test]
    fn bad_ranges_are_errors() {
        for bad in ["8", ">=x", ">=8,", "~8", ""] {
            assert!(VersionRange::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The `hosts-file` fact: meshup's own block of `/etc/hosts` (the peer names of one
//! interface), never the rest of the file.

use serde::Serialize;

/// What `/etc/hosts` itself is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostsFileKind {
    /// The section is missing from the output (a cut-off or foreign run).
    #[default]
    NotGathered,
    /// The section ran but failed (the file could not be read).
    Unreadable,
    /// There is no `/etc/hosts`.
    Absent,
    /// A regular file.
    Regular,
    /// A symlink: meshup edits its target (empty when `readlink -f` is missing).
    Symlink {
        /// The resolved target.
        target: String,
    },
    /// Something else (a directory, a device): never touched.
    Other,
}

/// meshup's block of `/etc/hosts`: the lines between `# BEGIN meshup <interface>` and
/// `# END meshup <interface>`, markers excluded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostsFileFacts {
    /// What the file is.
    pub kind: HostsFileKind,
    /// How many blocks of this interface the file holds (one when converged).
    pub blocks: usize,
    /// The lines of the block(s), each ending in `\n`; empty without a block.
    pub block: String,
    /// Why the markers cannot be trusted (a BEGIN without END, …): meshup then leaves
    /// the file alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

impl HostsFileFacts {
    /// The fact of a section that failed.
    pub fn unreadable() -> HostsFileFacts {
        HostsFileFacts {
            kind: HostsFileKind::Unreadable,
            ..HostsFileFacts::default()
        }
    }

    /// Parses the body of a `hosts-file` section that exited 0: `file=`, `target=`,
    /// `line=` per block line (kept byte for byte), `blocks=`, `malformed=`.
    pub fn parse(body: &str) -> HostsFileFacts {
        let mut facts = HostsFileFacts::default();
        let mut file = "";
        let mut target = String::new();
        for line in body.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "line" => {
                    facts.block.push_str(value);
                    facts.block.push('\n');
                }
                "file" => file = value,
                "target" => target = value.to_string(),
                "blocks" => facts.blocks = value.trim().parse().unwrap_or(0),
                "malformed" => facts.malformed = Some(value.to_string()),
                _ => {}
            }
        }
        facts.kind = match file {
            "regular" => HostsFileKind::Regular,
            "symlink" => HostsFileKind::Symlink { target },
            "absent" => HostsFileKind::Absent,
            "other" => HostsFileKind::Other,
            _ => HostsFileKind::Unreadable,
        };
        facts
    }

    /// The block as it stands, `None` when the file has none.
    pub fn current_block(&self) -> Option<&str> {
        (self.blocks > 0).then_some(self.block.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_become_facts() {
        let cases: Vec<(&str, HostsFileFacts)> = vec![
            (
                "file=regular\nblocks=0",
                HostsFileFacts {
                    kind: HostsFileKind::Regular,
                    ..HostsFileFacts::default()
                },
            ),
            (
                "file=regular\nline=# managed by meshup\nline=10.10.0.1\tnode-a node-a.mesh\nline=\nline=fd10::1  node-a\nblocks=1",
                HostsFileFacts {
                    kind: HostsFileKind::Regular,
                    blocks: 1,
                    block:
                        "# managed by meshup\n10.10.0.1\tnode-a node-a.mesh\n\nfd10::1  node-a\n"
                            .into(),
                    malformed: None,
                },
            ),
            (
                "file=symlink\ntarget=/run/hosts\nline=a=b\nblocks=2",
                HostsFileFacts {
                    kind: HostsFileKind::Symlink {
                        target: "/run/hosts".into(),
                    },
                    blocks: 2,
                    block: "a=b\n".into(),
                    malformed: None,
                },
            ),
            (
                "file=regular\nline=10.10.0.1 node-a\nblocks=1\nmalformed=BEGIN without END",
                HostsFileFacts {
                    kind: HostsFileKind::Regular,
                    blocks: 1,
                    block: "10.10.0.1 node-a\n".into(),
                    malformed: Some("BEGIN without END".into()),
                },
            ),
            (
                "file=absent",
                HostsFileFacts {
                    kind: HostsFileKind::Absent,
                    ..HostsFileFacts::default()
                },
            ),
            (
                "file=other",
                HostsFileFacts {
                    kind: HostsFileKind::Other,
                    ..HostsFileFacts::default()
                },
            ),
            ("", HostsFileFacts::unreadable()),
            ("garbage\nblocks=x", HostsFileFacts::unreadable()),
        ];
        for (body, want) in cases {
            assert_eq!(HostsFileFacts::parse(body), want, "{body:?}");
        }
    }

    #[test]
    fn current_block_only_with_a_block() {
        let none = HostsFileFacts::parse("file=regular\nblocks=0");
        assert_eq!(none.current_block(), None);
        let empty = HostsFileFacts::parse("file=regular\nblocks=1");
        assert_eq!(empty.current_block(), Some(""));
    }
}

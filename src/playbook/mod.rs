//! Playbooks: distributions and firewalls as data.
//!
//! `playbooks/distros/*.yaml` say how to recognise a distribution, install WireGuard and
//! enable its service; `playbooks/firewalls/*.yaml` say how to open the WireGuard port
//! and allow forwarding on each firewall backend. The defaults are embedded in the
//! binary; [`Playbooks::load_dir`] lets a directory override or extend them by file name.
//! Commands are templates: `{port}`, `{interface}`, `{packages}`, ... are filled only
//! with validated values, each shell-quoted.

mod distro;
mod firewall;
mod template;

use std::path::{Path, PathBuf};

pub use distro::{Detect, Distro, InitKind, InstallNeeds, Packages};
pub use firewall::{Firewall, FirewallAction, FirewallKind};
pub use template::Template;

use crate::facts::OsRelease;

/// Embedded default playbooks: (file stem, YAML).
const EMBEDDED_DISTROS: [(&str, &str); 5] = [
    (
        "alpine",
        include_str!("../../playbooks/distros/alpine.yaml"),
    ),
    ("arch", include_str!("../../playbooks/distros/arch.yaml")),
    (
        "debian",
        include_str!("../../playbooks/distros/debian.yaml"),
    ),
    (
        "fedora",
        include_str!("../../playbooks/distros/fedora.yaml"),
    ),
    ("suse", include_str!("../../playbooks/distros/suse.yaml")),
];

/// Embedded default firewall playbooks: (file stem, YAML).
const EMBEDDED_FIREWALLS: [(&str, &str); 4] = [
    (
        "firewalld",
        include_str!("../../playbooks/firewalls/firewalld.yaml"),
    ),
    (
        "iptables",
        include_str!("../../playbooks/firewalls/iptables.yaml"),
    ),
    (
        "nftables",
        include_str!("../../playbooks/firewalls/nftables.yaml"),
    ),
    ("ufw", include_str!("../../playbooks/firewalls/ufw.yaml")),
];

/// Errors from loading playbooks.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    /// A playbook file could not be read.
    #[error("cannot read playbook {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A playbook is not valid YAML for its schema.
    #[error("invalid playbook {file}: {message}")]
    Parse {
        /// File name (or `embedded:<name>`).
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A playbook parsed but breaks a rule (bad package name, unknown placeholder...).
    #[error("invalid playbook {file}: {message}")]
    Invalid {
        /// File name (or `embedded:<name>`).
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// No distro playbook matches a host's os-release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no playbook for this distribution (ID={id:?}, ID_LIKE={id_like:?}, {pretty}); \
     known: {known}. Add playbooks/distros/<name>.yaml to support it"
)]
pub struct UnknownDistro {
    /// os-release ID.
    pub id: String,
    /// os-release ID_LIKE.
    pub id_like: String,
    /// PRETTY_NAME or ID VERSION_ID.
    pub pretty: String,
    /// Names of the known playbooks.
    pub known: String,
}

/// All distro and firewall playbooks in effect.
#[derive(Debug, Clone)]
pub struct Playbooks {
    distros: Vec<Distro>,
    firewalls: Vec<Firewall>,
}

impl Playbooks {
    /// The playbooks embedded in the binary.
    pub fn embedded() -> Result<Playbooks, PlaybookError> {
        let mut playbooks = Playbooks {
            distros: Vec::new(),
            firewalls: Vec::new(),
        };
        for (stem, text) in EMBEDDED_DISTROS {
            playbooks.put_distro(Distro::from_yaml(stem, &format!("embedded:{stem}"), text)?);
        }
        for (stem, text) in EMBEDDED_FIREWALLS {
            playbooks.put_firewall(Firewall::from_yaml(
                stem,
                &format!("embedded:{stem}"),
                text,
            )?);
        }
        Ok(playbooks)
    }

    /// The embedded playbooks, overridden and extended by `dir/distros/*.yaml` and
    /// `dir/firewalls/*.yaml` (a file replaces the embedded one with the same name).
    pub fn load_dir(dir: &Path) -> Result<Playbooks, PlaybookError> {
        let mut playbooks = Playbooks::embedded()?;
        if !dir.is_dir() {
            return Err(PlaybookError::Read {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        for (stem, path, text) in yaml_files(&dir.join("distros"))? {
            let file = path.display().to_string();
            playbooks.put_distro(Distro::from_yaml(&stem, &file, &text)?);
        }
        for (stem, path, text) in yaml_files(&dir.join("firewalls"))? {
            let file = path.display().to_string();
            playbooks.put_firewall(Firewall::from_yaml(&stem, &file, &text)?);
        }
        Ok(playbooks)
    }

    fn put_distro(&mut self, distro: Distro) {
        self.distros.retain(|d| d.file != distro.file);
        self.distros.push(distro);
        self.distros.sort_by(|a, b| a.file.cmp(&b.file));
    }

    fn put_firewall(&mut self, firewall: Firewall) {
        self.firewalls.retain(|f| f.file != firewall.file);
        self.firewalls.push(firewall);
        self.firewalls.sort_by(|a, b| a.file.cmp(&b.file));
    }

    /// Every distro playbook, by file name.
    pub fn distros(&self) -> &[Distro] {
        &self.distros
    }

    /// Every firewall playbook, by file name.
    pub fn firewalls(&self) -> &[Firewall] {
        &self.firewalls
    }

    /// The playbook for a host: an exact `ID` match wins, then the first `ID_LIKE`
    /// entry (in os-release order) that some playbook lists.
    pub fn detect(&self, os: &OsRelease) -> Result<&Distro, UnknownDistro> {
        if let Some(d) = self.distros.iter().find(|d| d.detect.ids.contains(&os.id)) {
            return Ok(d);
        }
        for like in &os.id_like {
            if let Some(d) = self
                .distros
                .iter()
                .find(|d| d.detect.id_like.contains(like))
            {
                return Ok(d);
            }
        }
        Err(UnknownDistro {
            id: os.id.clone(),
            id_like: os.id_like.join(" "),
            pretty: os.describe(),
            known: self
                .distros
                .iter()
                .map(|d| d.file.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The playbook for a firewall backend.
    pub fn firewall(&self, kind: FirewallKind) -> Option<&Firewall> {
        self.firewalls.iter().find(|f| f.kind == kind)
    }

    /// The playbook of the firewall that filters this host's traffic, `None` when no
    /// firewall is active and restrictive (nothing to open).
    pub fn detect_firewall(&self, facts: &crate::facts::FirewallFacts) -> Option<&Firewall> {
        FirewallKind::detect(facts).and_then(|kind| self.firewall(kind))
    }
}

fn yaml_files(dir: &Path) -> Result<Vec<(String, PathBuf, String)>, PlaybookError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let read_err = |path: &Path, source| PlaybookError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let path = entry.map_err(|e| read_err(dir, e))?.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if is_yaml && path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
            out.push((stem.to_string(), path.clone(), text));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

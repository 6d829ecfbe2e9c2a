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
mod firewall_mesh;
mod firewall_paths;
mod lock;
mod mesh_acl;
mod mesh_marks;
mod service;
mod template;
mod version;

use std::path::{Path, PathBuf};

pub use distro::{
    Detect, Distro, FirewallPaths, InitKind, InstallNeeds, Packages, ServiceError, ServiceRecipe,
    Services,
};
pub use firewall::{Firewall, FirewallAction, FirewallKind, firewalld_forward_supported};
pub use firewall_mesh::MeshGap;
pub use lock::{LockFile, LockKind, PackageLock};
pub use mesh_acl::{
    ACL_CHAIN_HEADER, AclGap, acl_rules, acl_script, acl_table_exists, present_rules,
};
pub use mesh_marks::MeshMarks;
pub use template::Template;
pub use version::{Version, VersionRange};

/// The POSIX sh function `mu_wait_lock TIMEOUT NAME KIND:PATH...` (see the file); put it
/// once before the [`Distro::lock_wait_call`] it serves.
pub const WAIT_LOCK_SH: &str = crate::scripts::WAIT_LOCK;

use crate::facts::OsRelease;

/// Embedded default playbooks: (file stem, YAML).
const EMBEDDED_DISTROS: [(&str, &str); 8] = [
    (
        "alpine",
        include_str!("../../playbooks/distros/alpine.yaml"),
    ),
    (
        "amazon",
        include_str!("../../playbooks/distros/amazon.yaml"),
    ),
    ("arch", include_str!("../../playbooks/distros/arch.yaml")),
    (
        "debian",
        include_str!("../../playbooks/distros/debian.yaml"),
    ),
    ("el", include_str!("../../playbooks/distros/el.yaml")),
    (
        "fedora",
        include_str!("../../playbooks/distros/fedora.yaml"),
    ),
    ("suse", include_str!("../../playbooks/distros/suse.yaml")),
    (
        "ubuntu",
        include_str!("../../playbooks/distros/ubuntu.yaml"),
    ),
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

/// No distro playbook serves a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// No playbook matches the host's os-release.
    #[error(
        "no playbook for this distribution (ID={id:?}, ID_LIKE={id_like:?}, VERSION_ID={version:?}, {pretty}); \
         known: {known}. Add playbooks/distros/<name>.yaml to support it"
    )]
    Unknown {
        /// os-release ID.
        id: String,
        /// os-release ID_LIKE.
        id_like: String,
        /// os-release VERSION_ID (empty when missing).
        version: String,
        /// PRETTY_NAME or ID VERSION_ID.
        pretty: String,
        /// Names of the known playbooks.
        known: String,
    },
    /// The best match is a release the playbooks mark unsupported.
    #[error("{host} is not supported ({release} in playbook {file}): {reason}")]
    Unsupported {
        /// The host's release: `PRETTY_NAME (ID="centos", VERSION_ID="7")`.
        host: String,
        /// The playbook entry's name.
        release: String,
        /// The playbook file.
        file: String,
        /// Why, and what to do instead.
        reason: String,
    },
}

/// The error of [`Playbooks::detect`] under its former name.
pub type UnknownDistro = DetectError;

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

    /// Replaces every release of the file the given releases come from.
    fn put_distro(&mut self, releases: Vec<Distro>) {
        let Some(file) = releases.first().map(|d| d.file.clone()) else {
            return;
        };
        self.distros.retain(|d| d.file != file);
        self.distros.extend(releases);
        // Stable: releases keep their file order.
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

    /// The playbook (release) for a host. The most specific match wins: an exact `ID`
    /// match over an `ID_LIKE` one (earlier `ID_LIKE` entries first), then an entry
    /// naming the `VARIANT_ID`, then one with a `VERSION_ID` range; ties go to the first
    /// entry by file name and order in the file. A best match marked `unsupported` is
    /// an error naming the release.
    pub fn detect(&self, os: &OsRelease) -> Result<&Distro, DetectError> {
        let best = self
            .distros
            .iter()
            .filter_map(|d| d.detect.rank(os).map(|r| (r, d)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, d)| d);
        let version = os.version_id.clone().unwrap_or_default();
        match best {
            Some(d) => match &d.unsupported {
                None => Ok(d),
                Some(reason) => Err(DetectError::Unsupported {
                    host: format!("{} (ID={:?}, VERSION_ID={version:?})", os.describe(), os.id),
                    release: d.name.clone(),
                    file: d.file.clone(),
                    reason: reason.clone(),
                }),
            },
            None => {
                let mut known: Vec<&str> = self.distros.iter().map(|d| d.file.as_str()).collect();
                known.dedup();
                Err(DetectError::Unknown {
                    id: os.id.clone(),
                    id_like: os.id_like.join(" "),
                    version,
                    pretty: os.describe(),
                    known: known.join(", "),
                })
            }
        }
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

//! The `commands` fact: which relevant programs are on the host's PATH.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sections::key_values;

/// A package manager meshup knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    /// Debian, Ubuntu.
    AptGet,
    /// Fedora, RHEL 8+ and rebuilds.
    Dnf,
    /// Older RHEL/CentOS.
    Yum,
    /// Arch and derivatives.
    Pacman,
    /// Alpine.
    Apk,
    /// openSUSE, SLES.
    Zypper,
}

impl PackageManager {
    /// Every known package manager, in the order they are probed.
    pub const ALL: [PackageManager; 6] = [
        PackageManager::AptGet,
        PackageManager::Dnf,
        PackageManager::Yum,
        PackageManager::Pacman,
        PackageManager::Apk,
        PackageManager::Zypper,
    ];

    /// The command name, as used in playbooks (`apt-get`, `dnf`, ...).
    pub fn command(self) -> &'static str {
        match self {
            PackageManager::AptGet => "apt-get",
            PackageManager::Dnf => "dnf",
            PackageManager::Yum => "yum",
            PackageManager::Pacman => "pacman",
            PackageManager::Apk => "apk",
            PackageManager::Zypper => "zypper",
        }
    }

    /// The package manager whose command is `name`.
    pub fn from_command(name: &str) -> Option<PackageManager> {
        PackageManager::ALL
            .into_iter()
            .find(|pm| pm.command() == name)
    }
}

/// Programs found on the host (`command -v` for a fixed list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Commands {
    /// Program name -> resolved path, only for programs that were found.
    pub found: BTreeMap<String, String>,
}

impl Commands {
    /// Parses `name=path` lines; an empty path means "not found".
    pub fn parse(body: &str) -> Commands {
        let found = key_values(body)
            .into_iter()
            .filter(|(name, path)| !name.is_empty() && !path.is_empty())
            .map(|(name, path)| (name.to_string(), path.to_string()))
            .collect();
        Commands { found }
    }

    /// True when `name` was found.
    pub fn has(&self, name: &str) -> bool {
        self.found.contains_key(name)
    }

    /// Package managers present, in probe order.
    pub fn package_managers(&self) -> Vec<PackageManager> {
        PackageManager::ALL
            .into_iter()
            .filter(|pm| self.has(pm.command()))
            .collect()
    }
}

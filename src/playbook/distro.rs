//! A distribution playbook: detection, packages, install and service commands.

use serde::Deserialize;

use super::PlaybookError;
use super::template::{Fill, Template};
use crate::facts::{HostFacts, PackageManager, valid_interface};

/// How a distribution is recognised from os-release.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// `ID` values that match exactly.
    #[serde(default)]
    pub ids: Vec<String>,
    /// `ID_LIKE` entries that match.
    #[serde(default)]
    pub id_like: Vec<String>,
}

/// Packages to install.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// wg and wg-quick.
    pub tools: Vec<String>,
    /// The userspace implementation for kernels without the module; empty when the
    /// distribution does not ship one.
    #[serde(default)]
    pub userspace: Vec<String>,
}

/// The init system a playbook's service commands are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// systemd units.
    Systemd,
    /// OpenRC services.
    Openrc,
}

/// What a host is missing, from its facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallNeeds {
    /// wg/wg-quick are missing.
    pub tools: bool,
    /// The kernel lacks WireGuard and wireguard-go is missing.
    pub userspace: bool,
}

impl InstallNeeds {
    /// Computes the needs from gathered facts.
    pub fn from_facts(facts: &HostFacts) -> InstallNeeds {
        InstallNeeds {
            tools: !facts.wireguard_tools_installed(),
            userspace: !facts.wireguard.kernel_support() && !facts.commands.has("wireguard-go"),
        }
    }

    /// Nothing to install.
    pub fn is_empty(&self) -> bool {
        !self.tools && !self.userspace
    }
}

/// One distribution family's playbook (`playbooks/distros/<file>.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distro {
    /// File stem; the name a user file overrides.
    #[serde(skip)]
    pub file: String,
    /// Human name.
    pub name: String,
    /// Detection rules.
    pub detect: Detect,
    /// The package manager command (`apt-get`, `dnf`, `pacman`, `apk`, `zypper`, `yum`).
    pub package_manager: String,
    /// Packages.
    pub packages: Packages,
    /// Install command template; placeholder `{packages}`.
    pub install: Template,
    /// Init system.
    pub init: InitKind,
    /// Commands that enable and start wg-quick for `{interface}`.
    pub service_enable: Vec<Template>,
    /// Remarks shown with the plan.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Distro {
    pub(crate) fn from_yaml(stem: &str, file: &str, text: &str) -> Result<Distro, PlaybookError> {
        let mut distro: Distro =
            serde_saphyr::from_str(text).map_err(|e| PlaybookError::Parse {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        distro.file = stem.to_string();
        distro
            .validate()
            .map_err(|message| PlaybookError::Invalid {
                file: file.to_string(),
                message,
            })?;
        Ok(distro)
    }

    fn validate(&self) -> Result<(), String> {
        if self.detect.ids.is_empty() && self.detect.id_like.is_empty() {
            return Err("detect needs at least one of ids, id_like".into());
        }
        if PackageManager::from_command(&self.package_manager).is_none() {
            return Err(format!(
                "unknown package_manager {:?}",
                self.package_manager
            ));
        }
        if self.packages.tools.is_empty() {
            return Err("packages.tools is empty".into());
        }
        for pkg in self.packages.tools.iter().chain(&self.packages.userspace) {
            if !valid_package(pkg) {
                return Err(format!("invalid package name {pkg:?}"));
            }
        }
        self.install.check(&["packages"])?;
        if !self.install.placeholders().contains(&"packages") {
            return Err("install must use {packages}".into());
        }
        for t in &self.service_enable {
            t.check(&["interface"])?;
        }
        Ok(())
    }

    /// The package manager.
    pub fn package_manager(&self) -> Option<PackageManager> {
        PackageManager::from_command(&self.package_manager)
    }

    /// Packages for `needs`, in playbook order.
    pub fn packages_for(&self, needs: &InstallNeeds) -> Vec<String> {
        let mut out = Vec::new();
        if needs.tools {
            out.extend(self.packages.tools.iter().cloned());
        }
        if needs.userspace {
            out.extend(self.packages.userspace.iter().cloned());
        }
        out
    }

    /// The install command for `needs`; `None` when nothing is needed or the distro
    /// ships nothing that would help (e.g. no userspace implementation packaged).
    pub fn install_command(&self, needs: &InstallNeeds) -> Option<String> {
        let packages = self.packages_for(needs);
        if packages.is_empty() {
            return None;
        }
        Some(self.install.render(&[("packages", Fill::Many(&packages))]))
    }

    /// Commands that enable and start the service for `interface` (validated here).
    pub fn service_enable_commands(&self, interface: &str) -> Option<Vec<String>> {
        if !valid_interface(interface) {
            return None;
        }
        Some(
            self.service_enable
                .iter()
                .map(|t| t.render(&[("interface", Fill::One(interface))]))
                .collect(),
        )
    }
}

/// A package name every supported package manager accepts.
fn valid_package(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '_' | '-'))
}

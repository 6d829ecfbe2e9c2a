//! Service recipes per init system: how a distro brings the interface up at boot.
use serde::Deserialize;

use super::template::Template;
use crate::facts::InitSystem;

/// An init system (service manager) that can bring the interface up at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// systemd units.
    Systemd,
    /// OpenRC services.
    Openrc,
    /// SysV init scripts (`/etc/init.d` + `update-rc.d`), e.g. Devuan's default.
    Sysvinit,
}

impl InitKind {
    /// The init system a host actually runs: systemd > OpenRC > SysV init; `None` when
    /// none of them is PID 1 (a container, runit, s6...).
    pub fn from_facts(init: &InitSystem) -> Option<InitKind> {
        if init.systemd {
            Some(InitKind::Systemd)
        } else if init.openrc {
            Some(InitKind::Openrc)
        } else if init.sysvinit {
            Some(InitKind::Sysvinit)
        } else {
            None
        }
    }

    /// Lowercase name as in playbooks.
    pub fn as_str(self) -> &'static str {
        match self {
            InitKind::Systemd => "systemd",
            InitKind::Openrc => "openrc",
            InitKind::Sysvinit => "sysvinit",
        }
    }
}

/// Service recipes per init system; `{interface}` is the only placeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// Under systemd.
    #[serde(default)]
    pub systemd: Option<Vec<Template>>,
    /// Under OpenRC.
    #[serde(default)]
    pub openrc: Option<Vec<Template>>,
    /// Under SysV init.
    #[serde(default)]
    pub sysvinit: Option<Vec<Template>>,
}

impl Services {
    pub(super) fn get(&self, init: InitKind) -> Option<&Vec<Template>> {
        match init {
            InitKind::Systemd => self.systemd.as_ref(),
            InitKind::Openrc => self.openrc.as_ref(),
            InitKind::Sysvinit => self.sysvinit.as_ref(),
        }
    }

    pub(super) fn set(&mut self, init: InitKind, templates: Vec<Template>) {
        match init {
            InitKind::Systemd => self.systemd = Some(templates),
            InitKind::Openrc => self.openrc = Some(templates),
            InitKind::Sysvinit => self.sysvinit = Some(templates),
        }
    }

    pub(super) fn merged_over(self, base: &Services) -> Services {
        Services {
            systemd: self.systemd.or_else(|| base.systemd.clone()),
            openrc: self.openrc.or_else(|| base.openrc.clone()),
            sysvinit: self.sysvinit.or_else(|| base.sysvinit.clone()),
        }
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &Template> {
        [&self.systemd, &self.openrc, &self.sysvinit]
            .into_iter()
            .flatten()
            .flatten()
    }
}

/// The commands that enable and start the WireGuard service on one init system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecipe {
    /// The init system they are for.
    pub init: InitKind,
    /// Commands, in order; run them joined with `&&`.
    pub commands: Vec<String>,
}

/// Why there is no service recipe for a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The host runs no init system meshup knows.
    #[error(
        "no known init system runs this host (PID 1 is {pid1}): nothing would bring {interface} back after a reboot"
    )]
    NoInit {
        /// PID 1's name, or `unknown`.
        pid1: String,
        /// The interface.
        interface: String,
    },
    /// The playbook has no recipe for the host's init system.
    #[error("the {distro} playbook has no service recipe for {init} (it has: {known})")]
    NoRecipe {
        /// Release name.
        distro: String,
        /// The host's init system.
        init: &'static str,
        /// Init systems the playbook covers.
        known: String,
    },
    /// The interface name is not a valid Linux interface name.
    #[error("{0:?} is not a valid interface name")]
    InvalidInterface(String),
}

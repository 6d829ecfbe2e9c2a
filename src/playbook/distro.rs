//! A distribution playbook: detection, packages, install, service and lock recipes.
//!
//! A file (`playbooks/distros/<file>.yaml`) holds a family's defaults and, optionally,
//! `releases:` that override any of them for some `ID`/`ID_LIKE`/`VARIANT_ID`/
//! `VERSION_ID` range. Each release resolves into its own [`Distro`] at load time.

use serde::Deserialize;

use super::PlaybookError;
pub use super::firewall_paths::FirewallPaths;
use super::lock::PackageLock;
pub use super::service::{InitKind, ServiceError, ServiceRecipe, Services};
use super::template::{Fill, Template};
use super::version::VersionRange;
use crate::facts::{HostFacts, InitSystem, OsRelease, PackageManager, valid_interface};

/// How a distribution (release) is recognised from os-release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// `ID` values that match exactly.
    #[serde(default)]
    pub ids: Vec<String>,
    /// `ID_LIKE` entries that match.
    #[serde(default)]
    pub id_like: Vec<String>,
    /// `VARIANT_ID` values (e.g. `coreos`); empty matches any variant.
    #[serde(default)]
    pub variants: Vec<String>,
    /// `VERSION_ID` range (e.g. `">=8, <9"`, `"none"`); absent matches any version.
    #[serde(default)]
    pub versions: Option<VersionRange>,
}

/// How well a playbook entry matches a host; smaller is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MatchRank {
    /// 0: `ID` matched; 1 + i: the i-th `ID_LIKE` entry matched.
    by_id: usize,
    /// 0 when the entry names the variant, 1 when it takes any.
    by_variant: u8,
    /// 0 when the entry has a version range, 1 when it takes any version.
    by_version: u8,
}

impl Detect {
    /// How this rule matches `os`, `None` when it does not.
    pub(crate) fn rank(&self, os: &OsRelease) -> Option<MatchRank> {
        let by_id = if self.ids.contains(&os.id) {
            0
        } else {
            1 + os.id_like.iter().position(|l| self.id_like.contains(l))?
        };
        let by_variant = if self.variants.is_empty() {
            1
        } else if os
            .variant_id
            .as_ref()
            .is_some_and(|v| self.variants.contains(v))
        {
            0
        } else {
            return None;
        };
        let by_version = match &self.versions {
            None => 1,
            Some(range) if range.matches(os.version_id.as_deref()) => 0,
            Some(_) => return None,
        };
        Some(MatchRank {
            by_id,
            by_variant,
            by_version,
        })
    }
}

/// Packages to install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// wg and wg-quick.
    pub tools: Vec<String>,
    /// The userspace implementation for kernels without the module; empty when the
    /// distribution does not ship one.
    #[serde(default)]
    pub userspace: Vec<String>,
    /// A kernel module package for kernels without WireGuard (EL8: `kmod-wireguard`),
    /// installed before `userspace` when the kernel lacks the module.
    #[serde(default)]
    pub kernel: Vec<String>,
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

/// One entry of a playbook file as written: the family's defaults at the top level, and
/// the same keys (all optional) per release.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DistroSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    detect: Option<Detect>,
    #[serde(default)]
    package_manager: Option<String>,
    #[serde(default)]
    packages: Option<Packages>,
    #[serde(default)]
    install: Option<Template>,
    #[serde(default)]
    init: Option<InitKind>,
    /// Legacy form: commands for `init`.
    #[serde(default)]
    service_enable: Option<Vec<Template>>,
    #[serde(default)]
    services: Option<Services>,
    #[serde(default)]
    lock: Option<PackageLock>,
    #[serde(default)]
    firewall: Option<FirewallPaths>,
    #[serde(default)]
    unsupported: Option<String>,
    #[serde(default)]
    notes: Option<Vec<String>>,
    #[serde(default)]
    releases: Option<Vec<DistroSpec>>,
}

/// One distribution release's resolved playbook.
#[derive(Debug, Clone)]
pub struct Distro {
    /// File stem; the name a user file overrides.
    pub file: String,
    /// Human name of the release (e.g. `Rocky/Alma/RHEL/Oracle 8`).
    pub name: String,
    /// Detection rules.
    pub detect: Detect,
    /// The package manager command (`apt-get`, `dnf`, `yum`, `pacman`, `apk`, `zypper`,
    /// `rpm-ostree`, `transactional-update`).
    pub package_manager: String,
    /// Packages.
    pub packages: Packages,
    /// Install command template; placeholder `{packages}`.
    pub install: Template,
    /// The init system the legacy [`Distro::service_enable_commands`] uses.
    pub init: InitKind,
    /// Commands for `init` (legacy view of `services`).
    pub service_enable: Vec<Template>,
    /// Service recipes per init system.
    pub services: Services,
    /// The package manager's lock, waited for before installing.
    pub lock: Option<PackageLock>,
    /// Firewall persistence paths.
    pub firewall: FirewallPaths,
    /// Set for a recognised release meshup cannot serve: why, and what to do.
    pub unsupported: Option<String>,
    /// Remarks shown with the plan.
    pub notes: Vec<String>,
}

/// Package managers a playbook may name: the ones facts know, plus image-based ones.
const IMAGE_PACKAGE_MANAGERS: [&str; 2] = ["rpm-ostree", "transactional-update"];

impl Distro {
    /// Every release of one playbook file, in file order (the family itself when the
    /// file has no `releases`).
    pub(crate) fn from_yaml(
        stem: &str,
        file: &str,
        text: &str,
    ) -> Result<Vec<Distro>, PlaybookError> {
        let spec: DistroSpec = serde_saphyr::from_str(text).map_err(|e| PlaybookError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| PlaybookError::Invalid {
            file: file.to_string(),
            message,
        };
        let mut base = spec;
        let releases = base.releases.take().unwrap_or_default();
        let mut out = Vec::new();
        if releases.is_empty() {
            out.push(resolve(stem, &DistroSpec::default(), &base).map_err(invalid)?);
        }
        for (i, release) in releases.iter().enumerate() {
            if release.releases.is_some() {
                return Err(invalid(format!("releases[{i}] has nested releases")));
            }
            let d = resolve(stem, release, &base)
                .map_err(|m| invalid(format!("releases[{i}] ({}): {m}", label(release, i))))?;
            out.push(d);
        }
        Ok(out)
    }

    /// The package manager, when meshup's facts know it (`None` for rpm-ostree and
    /// transactional-update).
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
            out.extend(self.packages.kernel.iter().cloned());
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

    /// The shell call that waits (at most `timeout_secs`) while another process holds
    /// this package manager's lock, e.g.
    /// `mu_wait_lock 120 dpkg fcntl:/var/lib/dpkg/lock-frontend ...`. It needs
    /// [`super::WAIT_LOCK_SH`] defined earlier in the same script; chain the install
    /// with `&&`. `None` when the package manager has no lock to wait for.
    pub fn lock_wait_call(&self, timeout_secs: u32) -> Option<String> {
        self.lock.as_ref().map(|l| l.call(timeout_secs))
    }

    /// [`super::WAIT_LOCK_SH`] followed by [`Distro::lock_wait_call`]: a self-contained
    /// snippet that ends in the call, so `{snippet} && {install}` installs only once the
    /// lock is free (exit status 75 and a `@@meshup:fail:` line on timeout).
    pub fn lock_wait_command(&self, timeout_secs: u32) -> Option<String> {
        self.lock_wait_call(timeout_secs)
            .map(|call| format!("{}{call}", super::WAIT_LOCK_SH))
    }

    /// The service recipe for the host's actual init system.
    pub fn service_commands(
        &self,
        init: InitKind,
        interface: &str,
    ) -> Result<ServiceRecipe, ServiceError> {
        if !valid_interface(interface) {
            return Err(ServiceError::InvalidInterface(interface.to_string()));
        }
        let templates = self
            .services
            .get(init)
            .ok_or_else(|| ServiceError::NoRecipe {
                distro: self.name.clone(),
                init: init.as_str(),
                known: [InitKind::Systemd, InitKind::Openrc, InitKind::Sysvinit]
                    .into_iter()
                    .filter(|k| self.services.get(*k).is_some())
                    .map(InitKind::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(ServiceRecipe {
            init,
            commands: templates
                .iter()
                .map(|t| t.render(&[("interface", Fill::One(interface))]))
                .collect(),
        })
    }

    /// [`Distro::service_commands`] for the init system in the host's facts.
    pub fn service_commands_for(
        &self,
        init: &InitSystem,
        interface: &str,
    ) -> Result<ServiceRecipe, ServiceError> {
        let kind = InitKind::from_facts(init).ok_or_else(|| ServiceError::NoInit {
            pid1: init.pid1.clone().unwrap_or_else(|| "unknown".into()),
            interface: interface.to_string(),
        })?;
        self.service_commands(kind, interface)
    }

    /// Commands that enable and start the service for `interface` (validated here) on
    /// the playbook's primary init system. Prefer [`Distro::service_commands`] with the
    /// host's actual init system; this is kept for callers that predate it.
    pub fn service_enable_commands(&self, interface: &str) -> Option<Vec<String>> {
        self.service_commands(self.init, interface)
            .ok()
            .map(|r| r.commands)
    }
}

fn label(spec: &DistroSpec, i: usize) -> String {
    spec.name.clone().unwrap_or_else(|| format!("#{i}"))
}

/// Merges `release` over the file's `base` and checks the result.
fn resolve(stem: &str, release: &DistroSpec, base: &DistroSpec) -> Result<Distro, String> {
    let pick = |r: &Option<String>, b: &Option<String>| r.clone().or_else(|| b.clone());
    let unsupported = release.unsupported.clone().or_else(|| {
        // A family-level `unsupported` applies only to a file without releases.
        base.releases
            .is_none()
            .then(|| base.unsupported.clone())
            .flatten()
    });
    let name = pick(&release.name, &base.name).ok_or("name is missing")?;
    let detect = merge_detect(release.detect.clone(), base.detect.as_ref());
    if detect.ids.is_empty() && detect.id_like.is_empty() {
        return Err("detect needs at least one of ids, id_like".into());
    }
    let required = |what: &str| -> String {
        format!("{what} is missing (set it at the top of the file or in the release)")
    };
    let is_unsupported = unsupported.is_some();
    let package_manager = match pick(&release.package_manager, &base.package_manager) {
        Some(pm) => pm,
        None if is_unsupported => String::new(),
        None => return Err(required("package_manager")),
    };
    let packages = match release.packages.clone().or_else(|| base.packages.clone()) {
        Some(p) => p,
        None if is_unsupported => Packages::default(),
        None => return Err(required("packages")),
    };
    let install = match release.install.clone().or_else(|| base.install.clone()) {
        Some(t) => t,
        None if is_unsupported => Template::new(""),
        None => return Err(required("install")),
    };
    let explicit_init = release.init.or(base.init);
    let mut services = release
        .services
        .clone()
        .unwrap_or_default()
        .merged_over(&base.services.clone().unwrap_or_default());
    // Legacy `init` + `service_enable`: the commands are that init system's recipe.
    let legacy = release
        .service_enable
        .clone()
        .or_else(|| base.service_enable.clone());
    if let Some(cmds) = legacy {
        let init = explicit_init.ok_or("service_enable needs init")?;
        if services.get(init).is_none() {
            services.set(init, cmds);
        }
    }
    let init = explicit_init
        .or_else(|| {
            [InitKind::Systemd, InitKind::Openrc, InitKind::Sysvinit]
                .into_iter()
                .find(|k| services.get(*k).is_some())
        })
        .unwrap_or(InitKind::Systemd);
    let service_enable = services.get(init).cloned().unwrap_or_default();
    // A release with its own package manager does not inherit the family's lock.
    let own_manager =
        release.package_manager.is_some() && release.package_manager != base.package_manager;
    let lock = match (&release.lock, own_manager) {
        (Some(l), _) => Some(l.clone()),
        (None, true) => None,
        (None, false) => base.lock.clone(),
    };
    let firewall = release
        .firewall
        .clone()
        .unwrap_or_default()
        .merged_over(&base.firewall.clone().unwrap_or_default());
    let mut notes = base.notes.clone().unwrap_or_default();
    notes.extend(release.notes.clone().unwrap_or_default());
    let distro = Distro {
        file: stem.to_string(),
        name,
        detect,
        package_manager,
        packages,
        install,
        init,
        service_enable,
        services,
        lock,
        firewall,
        unsupported,
        notes,
    };
    if !is_unsupported {
        distro.validate()?;
    }
    Ok(distro)
}

fn merge_detect(release: Option<Detect>, base: Option<&Detect>) -> Detect {
    let base = base.cloned().unwrap_or_default();
    let Some(r) = release else {
        return base;
    };
    let own_ids = !r.ids.is_empty() || !r.id_like.is_empty();
    Detect {
        ids: if own_ids { r.ids } else { base.ids },
        id_like: if own_ids { r.id_like } else { base.id_like },
        variants: if r.variants.is_empty() {
            base.variants
        } else {
            r.variants
        },
        versions: r.versions.or(base.versions),
    }
}

impl Distro {
    fn validate(&self) -> Result<(), String> {
        if PackageManager::from_command(&self.package_manager).is_none()
            && !IMAGE_PACKAGE_MANAGERS.contains(&self.package_manager.as_str())
        {
            return Err(format!(
                "unknown package_manager {:?}",
                self.package_manager
            ));
        }
        if self.packages.tools.is_empty() {
            return Err("packages.tools is empty".into());
        }
        for pkg in self
            .packages
            .tools
            .iter()
            .chain(&self.packages.userspace)
            .chain(&self.packages.kernel)
        {
            if !valid_package(pkg) {
                return Err(format!("invalid package name {pkg:?}"));
            }
        }
        self.install.check(&["packages"])?;
        if !self.install.placeholders().contains(&"packages") {
            return Err("install must use {packages}".into());
        }
        for t in self.services.all() {
            t.check(&["interface"])?;
        }
        if let Some(lock) = &self.lock {
            lock.validate()?;
        }
        self.firewall.validate()?;
        Ok(())
    }
}

/// A package name every supported package manager accepts.
fn valid_package(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '_' | '-'))
}

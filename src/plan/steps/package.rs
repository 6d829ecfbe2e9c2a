//! Installing WireGuard with the host's package manager.
use super::HostInput;
use crate::host_error::HostError;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::playbook::InstallNeeds;
use crate::scripts;

/// The install step's shell: wait for the package manager's lock (when the playbook
/// names one) at most `mesh.package_lock_timeout` seconds, then install.
fn install_shell(lock_wait: Option<String>, install: &str) -> String {
    let install = scripts::call("mu_install", &[install]);
    match lock_wait {
        Some(wait) => format!("{wait} || exit 75\n{install}"),
        None => install,
    }
}

/// Installs wg/wg-quick (and a userspace implementation when the kernel has no module).
pub fn install(h: &HostInput<'_>) -> Result<Vec<Decision>, HostError> {
    let needs = InstallNeeds::from_facts(h.facts);
    if needs.is_empty() {
        return Ok(vec![Decision::unchanged(format!(
            "WireGuard installed ({})",
            h.facts.wireguard.tools_version().unwrap_or("wg present")
        ))]);
    }
    let packages = h.distro.packages_for(&needs);
    match h.distro.install_command(&needs) {
        Some(cmd) => {
            let reason = if needs.tools {
                "wg / wg-quick not found"
            } else {
                "the kernel has no WireGuard module and no userspace implementation is installed"
            };
            Ok(vec![Decision::Change(Step::new(
                Action::Create,
                StepKind::Install,
                format!(
                    "install {} ({})",
                    packages.join(" "),
                    h.distro.package_manager
                ),
                reason,
                install_shell(
                    h.distro
                        .lock_wait_call(u32::from(h.settings().package_lock_timeout)),
                    &cmd,
                ),
            ))])
        }
        None if needs.tools => Err(HostError::blocked(format!(
            "WireGuard tools are missing and the {} playbook has no package for them",
            h.distro.name
        ))),
        None => Ok(vec![Decision::warning(
            "the kernel has no WireGuard module and the distro packages no userspace implementation",
        )]),
    }
}

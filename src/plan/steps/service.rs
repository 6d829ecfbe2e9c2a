//! Bringing the interface to its config: a live reload of a running interface, a start
//! of a stopped one, the service at boot, and the removal of a node that left.
use std::collections::{BTreeMap, BTreeSet};

use super::{HostInput, conf_path, standard_dir};
use crate::facts::HostFacts;
use crate::inventory::MeshSettings;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;
use crate::shell;

/// How the interface gets its config. `config_changed` says an earlier step writes a
/// new config or key; a running interface that differs from its config (changed by
/// hand) is reloaded too. Running tunnels are never restarted.
pub fn activation(h: &HostInput<'_>, config_changed: bool) -> Vec<Decision> {
    let iface = h.iface();
    let settings = h.settings();
    let facts = h.facts;
    let mut out = Vec::new();
    if !facts.interface_up() {
        let (cmd, warning) = start_command(settings, facts, h.distro);
        if let Some(w) = warning {
            out.push(Decision::Warning(w));
        }
        out.push(Decision::Change(Step::new(
            Action::Create,
            StepKind::Service,
            format!("bring {iface} up"),
            format!("{iface} is not running"),
            scripts::call("mu_start", &[&cmd]),
        )));
        return out;
    }
    let live_drift = live_differs(h);
    if config_changed || live_drift {
        let reason = if config_changed {
            "the running interface gets the new config without a restart (one `wg set` of what differs)"
        } else if !facts.watchdog.fallbacks.is_empty() {
            "the running interface differs from its config: the watchdog moved a dead direct path to its relay"
        } else {
            "the running interface differs from its config (changed by hand?)"
        };
        let addresses: Vec<String> = h
            .spec
            .interface_addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        let mtu = h.spec.mtu.map(|m| m.to_string()).unwrap_or_default();
        out.push(Decision::Change(Step::new(
            Action::Update,
            StepKind::Reload,
            format!("live reload {iface}: peers, addresses, routes"),
            reason,
            scripts::call("mu_live_reload", &[&addresses.join(" "), &mtu]),
        )));
    } else {
        out.push(Decision::unchanged(format!(
            "{iface} is up with the configured peers"
        )));
    }
    if facts.init.systemd && standard_dir(settings) {
        if facts.service.enabled() {
            out.push(Decision::unchanged(format!(
                "wg-quick@{iface} enabled at boot"
            )));
        } else {
            out.push(Decision::Change(Step::new(
                Action::Create,
                StepKind::Service,
                format!("enable wg-quick@{iface} at boot"),
                format!("{iface} is up but would not come back after a reboot"),
                scripts::call(
                    "mu_enable",
                    &[&format!("systemctl enable wg-quick@{iface}")],
                ),
            )));
        }
    }
    out
}

/// The command that brings the interface up when it is down: the playbook's recipe for
/// the host's actual init system, else `wg-quick up` with a warning that nothing would
/// bring it back after a reboot.
fn start_command(
    settings: &MeshSettings,
    facts: &HostFacts,
    distro: &crate::playbook::Distro,
) -> (String, Option<String>) {
    let iface = &settings.interface;
    let warning = if !standard_dir(settings) {
        format!(
            "config dir {} is not /etc/wireguard: the service cannot load it, so the interface is started with wg-quick and will not come back after a reboot",
            settings.config_dir
        )
    } else {
        match distro.service_commands_for(&facts.init, iface.as_str()) {
            Ok(recipe) if !recipe.commands.is_empty() => {
                return (recipe.commands.join(" && "), None);
            }
            Ok(_) => "the playbook has no service recipe for this init system: the interface is started with wg-quick up and nothing will bring it back after a reboot".to_string(),
            Err(e) => format!(
                "{e}: the interface is started with wg-quick up and nothing will bring it back after a reboot"
            ),
        }
    };
    (
        format!("wg-quick up {}", shell::quote(&conf_path(settings))),
        Some(warning),
    )
}

/// The running interface's peers differ from what the config says (keys, AllowedIPs,
/// listen port).
fn live_differs(h: &HostInput<'_>) -> bool {
    let dump = &h.facts.wg_dump;
    let live: BTreeMap<String, BTreeSet<String>> = dump
        .peers
        .iter()
        .map(|p| {
            (
                p.public_key.to_string(),
                p.allowed_ips.iter().map(|n| n.to_string()).collect(),
            )
        })
        .collect();
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &h.peers {
        match h.keys.get(&p.name) {
            Some(k) => {
                want.insert(
                    k.to_string(),
                    p.allowed_ips.iter().map(|n| n.to_string()).collect(),
                );
            }
            None => return true,
        }
    }
    if let Some(i) = &dump.interface
        && i.listen_port != h.spec.listen_port
    {
        return true;
    }
    live != want
}

/// Stops and removes the interface of a node marked `state: absent` (its config is
/// kept aside as `.meshup-removed`, its keys stay), and deletes its preshared keys.
pub fn removal(settings: &MeshSettings, facts: &HostFacts) -> Vec<Decision> {
    let iface = settings.interface.as_str();
    let path = conf_path(settings);
    if !(facts.config.present || facts.interface_up() || facts.service.enabled()) {
        return vec![Decision::unchanged(format!("{iface} already removed"))];
    }
    let mut cmds = Vec::new();
    if facts.init.systemd {
        cmds.push(format!("systemctl disable --now wg-quick@{iface} || true"));
    }
    cmds.push(format!("wg-quick down {} || true", shell::quote(&path)));
    let mut out = vec![Decision::Change(Step::new(
        Action::Delete,
        StepKind::Remove,
        format!(
            "stop {iface}, disable its service, remove {path} (kept as {iface}.conf.meshup-removed; keys kept)"
        ),
        "node is marked `state: absent` in the inventory",
        scripts::call("mu_teardown", &[&cmds.join("; ")]),
    ))];
    for file in &facts.files.psk_files {
        if let Some(peer) = super::keys::psk_file_peer(file) {
            out.push(Decision::Change(Step::new(
                Action::Delete,
                StepKind::Psk,
                format!("remove {file}"),
                "the node leaves the mesh",
                scripts::call("mu_remove_psk", &[peer]),
            )));
        }
    }
    out
}

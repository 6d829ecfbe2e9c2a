//! The firewall (the WireGuard port, forwarding on transit nodes) and IP forwarding.
use super::HostInput;
use crate::inventory::NodeName;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;

/// Path of meshup's sysctl drop-in (written by `mu_forwarding`).
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/99-meshup-forward.conf";

/// Opens the listen port in the active firewall, and forwarding on transit nodes. A
/// firewall that is not active is never switched on.
pub fn firewall(h: &HostInput<'_>) -> Vec<Decision> {
    let port = h.spec.listen_port;
    let Some(fw) = h.playbooks.detect_firewall(&h.facts.firewall) else {
        return vec![Decision::unchanged(format!(
            "no active firewall filters {port}/udp (none is switched on)"
        ))];
    };
    let mut out = Vec::new();
    let mut decide = |action: crate::playbook::FirewallAction, summary: String| {
        if action.commands.is_empty() {
            out.push(Decision::Unchanged(action.reason));
        } else {
            let shell: Vec<String> = action
                .commands
                .iter()
                .map(|c| scripts::call("mu_firewall", &[c]))
                .collect();
            out.push(Decision::Change(Step::new(
                Action::Create,
                StepKind::Firewall,
                summary,
                action.reason,
                shell.join("\n"),
            )));
        }
    };
    decide(
        fw.open_port_commands_for(&h.facts.firewall, port, h.distro),
        format!("open {port}/udp in {}", fw.name),
    );
    if h.spec.is_transit {
        let iface = h.iface();
        decide(
            fw.forward_commands_for(&h.facts.firewall, iface, h.distro),
            format!("allow forwarding on {iface} in {}", fw.name),
        );
    }
    out
}

/// Enables and persists IP forwarding on transit nodes (relays, subnet routers).
pub fn forwarding(h: &HostInput<'_>) -> Vec<Decision> {
    let spec = h.spec;
    if !spec.is_transit {
        return Vec::new();
    }
    let facts = h.facts;
    let ipv6 = h.settings().network6.is_some()
        || spec
            .subnets
            .iter()
            .any(|s| matches!(s, ipnet::IpNet::V6(_)));
    let live_ok = facts.forward.ipv4 == Some(true) && (!ipv6 || facts.forward.ipv6 == Some(true));
    if live_ok && facts.files.sysctl_forward {
        return vec![Decision::unchanged("IP forwarding enabled and persisted")];
    }
    let names = |list: &[NodeName]| {
        list.iter()
            .map(NodeName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut roles = Vec::new();
    if !spec.subnets.is_empty() {
        roles.push("subnet router".to_string());
    }
    if !spec.relay_for.is_empty() {
        roles.push(format!("relay for {}", names(&spec.relay_for)));
    }
    if !spec.clients.is_empty() {
        roles.push(format!(
            "clients connect through it: {}",
            names(&spec.clients)
        ));
    }
    let why = roles.join("; ");
    vec![Decision::Change(Step::new(
        Action::Create,
        StepKind::Forwarding,
        format!(
            "enable IP forwarding{} (persisted in {SYSCTL_FILE})",
            if ipv6 { " (IPv4 + IPv6)" } else { "" },
        ),
        format!(
            "transit node ({why}); net.ipv4.ip_forward is {}",
            match facts.forward.ipv4 {
                Some(true) => "1 but not persisted",
                Some(false) => "0",
                None => "unknown",
            }
        ),
        scripts::call("mu_forwarding", &[if ipv6 { "46" } else { "4" }]),
    ))]
}

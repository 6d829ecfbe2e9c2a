//! The firewall (the WireGuard port, forwarding on transit nodes) and IP forwarding.
use super::HostInput;
use crate::facts::FirewallFacts;
use crate::inventory::{FirewallMode, NodeName};
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::playbook::{FirewallAction, FirewallKind, FirewallPaths, MeshMarks, Playbooks};
use crate::scripts;

/// Path of meshup's sysctl drop-in (written by `mu_forwarding`).
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/99-meshup-forward.conf";

/// `mesh.firewall: trust` (default): in every active firewall, opens the listen port,
/// accepts what arrives on the mesh interface and, on transit nodes, forwards to and from
/// it. `none`: changes nothing but takes out the rules an earlier run added, and warns
/// where a firewall would stop the mesh. A firewall that is not active is never switched on.
pub fn firewall(h: &HostInput<'_>) -> Vec<Decision> {
    let marks = MeshMarks::new(h.iface()).with_config_dir(h.settings().config_dir.as_str());
    let facts = &h.facts.firewall;
    match h.settings().firewall {
        FirewallMode::Trust => trust(h, &marks),
        FirewallMode::None => {
            let mut out = untrust(h.playbooks, facts, &marks, &h.distro.firewall);
            out.extend(none_warnings(h, &marks));
            if out.is_empty() {
                out.push(Decision::unchanged(
                    "mesh.firewall is none: firewalls left as they are",
                ));
            }
            out
        }
    }
}

fn trust(h: &HostInput<'_>, marks: &MeshMarks) -> Vec<Decision> {
    let port = h.spec.listen_port;
    let facts = &h.facts.firewall;
    let active: Vec<_> = FirewallKind::active(facts)
        .into_iter()
        .filter_map(|k| h.playbooks.firewall(k))
        .collect();
    if active.is_empty() {
        return vec![Decision::unchanged(format!(
            "no active firewall filters {port}/udp or {} (none is switched on)",
            marks.interface
        ))];
    }
    let mut out = Vec::new();
    for fw in active {
        let open = fw.open_port_commands_on(facts, port, &h.distro.firewall, marks);
        out.push(decide(
            open,
            format!("open {port}/udp in {}", fw.name),
            Action::Create,
        ));
        let (gaps, warnings) = fw.trust_gaps(facts, marks, h.spec.is_transit, &h.distro.firewall);
        if gaps.is_empty() {
            out.push(Decision::unchanged(format!(
                "{} accepts mesh traffic on {}{}",
                fw.name,
                marks.interface,
                if h.spec.is_transit {
                    " and forwards it"
                } else {
                    ""
                }
            )));
        }
        for gap in gaps {
            out.push(decide(gap.action, gap.summary, Action::Create));
        }
        out.extend(warnings.into_iter().map(Decision::Warning));
    }
    out
}

/// Removes the rules meshup added for this interface from every backend that has some
/// (`mesh.firewall: none`, or the node leaving the mesh).
pub fn untrust(
    playbooks: &Playbooks,
    facts: &FirewallFacts,
    marks: &MeshMarks,
    paths: &FirewallPaths,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for fw in playbooks.firewalls() {
        if fw.kind == FirewallKind::Ufw && !facts.ufw.installed {
            continue;
        }
        if fw.kind == FirewallKind::Firewalld && !facts.firewalld.running {
            continue;
        }
        let marked = fw.marked(facts, marks);
        if let Some(action) = fw.untrust_commands(facts, marks, paths) {
            let diff = marked.iter().map(|r| format!("-{r}\n")).collect::<String>();
            if let Decision::Change(step) = decide(
                action,
                format!("remove meshup's {} rules from {}", marks.marker, fw.name),
                Action::Delete,
            ) {
                out.push(Decision::Change(step.with_diff(diff)));
            }
        }
    }
    out
}

fn none_warnings(h: &HostInput<'_>, marks: &MeshMarks) -> Vec<Decision> {
    let facts = &h.facts.firewall;
    let port = h.spec.listen_port;
    let mut out = Vec::new();
    for kind in FirewallKind::active(facts) {
        let Some(fw) = h.playbooks.firewall(kind) else {
            continue;
        };
        if !fw.port_open(facts, port) {
            out.push(Decision::warning(format!(
                "mesh.firewall is none, but {} does not allow {port}/udp: peers cannot reach {}",
                fw.name, h.spec.name
            )));
        }
        for why in fw.mesh_blockers(facts, marks, h.spec.is_transit) {
            out.push(Decision::warning(format!(
                "mesh.firewall is none, but {} filters mesh traffic: {why}",
                fw.name
            )));
        }
    }
    out
}

pub(super) fn decide(action: FirewallAction, summary: String, kind: Action) -> Decision {
    if action.commands.is_empty() {
        return Decision::Unchanged(action.reason);
    }
    let shell: Vec<String> = action
        .commands
        .iter()
        .map(|c| scripts::call("mu_firewall", &[c]))
        .collect();
    Decision::Change(Step::new(
        kind,
        StepKind::Firewall,
        summary,
        action.reason,
        shell.join("\n"),
    ))
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
    if spec.hub {
        roles.push("hub".to_string());
    }
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

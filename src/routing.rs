//! meshup's routing script of one node (`scripts/route.sh` after a header of values):
//! the exit route of a node with `exit_via`, and what a transit node does to the
//! traffic it forwards (MSS clamping, masquerade on an exit node, Docker's chain). Pure:
//! which node gets one, its text, and the parts its `status` must report.
use std::collections::BTreeSet;

use crate::shell;
use crate::topology::{Mesh, NodeSpec};

/// Routing table and fwmark of the exit route: wg-quick's choice for a `0.0.0.0/0` peer,
/// so a boot by wg-quick and a live apply end in the same state.
pub const EXIT_TABLE: u32 = 51820;

pub use crate::topology::route_script_path as script_path;

/// Whether `node` runs the script: a transit node (relay, subnet router, exit, clients'
/// entry) or a node going through an exit.
pub fn has_script(node: &NodeSpec) -> bool {
    node.route_file.is_some()
}

/// The exit's IPv4 mesh address, when `node` goes through one.
fn exit_address(mesh: &Mesh, node: &NodeSpec) -> Option<String> {
    let exit = node.exit_via.as_ref()?;
    mesh.node(exit).map(|e| e.address.to_string())
}

/// `mesh.firewall: trust`: meshup may add netfilter rules (the clamp, Docker's chain);
/// with `none` it leaves them to the user, and only an exit's masquerade stays.
fn rules_allowed(mesh: &Mesh) -> bool {
    mesh.settings.firewall == crate::inventory::FirewallMode::Trust
}

/// The node clamps the MSS of what it forwards.
fn clamps(mesh: &Mesh, node: &NodeSpec) -> bool {
    node.is_transit && mesh.settings.mss_clamp && rules_allowed(mesh)
}

/// The script's text for `node` (`None`: it has none).
pub fn script(mesh: &Mesh, node: &NodeSpec) -> Option<String> {
    if !has_script(node) {
        return None;
    }
    let settings = &mesh.settings;
    let iface = settings.interface.as_str();
    let flag = |b: bool| if b { "1" } else { "0" };
    let masq4 = if node.exit_node {
        settings.network.to_string()
    } else {
        String::new()
    };
    let masq6 = match settings.network6 {
        Some(n) if node.exit_node => n.to_string(),
        _ => String::new(),
    };
    let exit4 = exit_address(mesh, node).unwrap_or_default();
    let values = [
        ("IF", iface.to_string()),
        ("TABLE", EXIT_TABLE.to_string()),
        ("CLAMP", flag(clamps(mesh, node)).into()),
        ("MTU", node.mtu.map(|m| m.to_string()).unwrap_or_default()),
        ("MASQ4", masq4),
        ("MASQ6", masq6),
        ("EXIT4", exit4),
        (
            "EXIT6",
            flag(node.exit_via.is_some() && settings.network6.is_some()).into(),
        ),
        (
            "FORWARD",
            flag(node.is_transit && rules_allowed(mesh)).into(),
        ),
        ("MARKER", format!("meshup:{iface}")),
    ];
    let mut out = String::from("#!/bin/sh\n# Written by meshup: replaced on the next apply.\n");
    for (name, value) in values {
        out.push_str(name);
        out.push('=');
        out.push_str(&shell::quote(&value));
        out.push('\n');
    }
    out.push_str(crate::scripts::ROUTE);
    Some(out)
}

/// The exit `node` goes through, when that exit takes up its role in this run (its
/// masquerade is not in place yet): `node` moves its default route only after the exit
/// has converged, and not at all if the exit fails (rule 9).
pub fn exit_dependency(
    mesh: &Mesh,
    node: &NodeSpec,
    exit_facts: &dyn Fn(&crate::inventory::NodeName) -> Option<crate::facts::RouteFacts>,
) -> Option<(crate::inventory::NodeName, String)> {
    let exit = mesh.node(node.exit_via.as_ref()?)?;
    let facts = exit_facts(&exit.name)?;
    (!facts.status.contains("masq")).then(|| {
        (
            exit.name.clone(),
            "exit role (forwarding, masquerade)".to_string(),
        )
    })
}

/// The parts the script's `status` reports when everything is in place.
pub fn wanted_status(mesh: &Mesh, node: &NodeSpec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if clamps(mesh, node) {
        out.insert("clamp".to_string());
    }
    if node.exit_node {
        out.insert("masq".to_string());
    }
    if node.exit_via.is_some() {
        out.insert("exit4".to_string());
        if mesh.settings.network6.is_some() {
            out.insert("exit6".to_string());
        }
    }
    out
}

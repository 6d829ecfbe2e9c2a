//! The order of the converge phase across hosts. When a running node moves what its
//! peers reach it by (its listen port or its mesh addresses), the peers are changed only
//! after that node has applied the move; if it fails (and rolls back), they are left as
//! they are, still pointing at what works.
use std::collections::{BTreeMap, BTreeSet};

use crate::facts::HostFacts;
use crate::inventory::NodeName;
use crate::topology::{Mesh, NodeSpec};

use super::keys::FactsMap;

/// What a running node changes that its peers depend on, in words ("listen port 51820 →
/// 51821"), or `None` when nothing its peers use moves.
pub fn identity_move(spec: &NodeSpec, facts: &HostFacts) -> Option<String> {
    let live = facts.wg_dump.interface.as_ref()?;
    let mut moves = Vec::new();
    if live.listen_port != spec.listen_port {
        moves.push(format!(
            "listen port {} → {}",
            live.listen_port, spec.listen_port
        ));
    }
    let global: BTreeSet<String> = facts
        .addresses
        .addresses
        .iter()
        .filter(|a| !is_link_local(a))
        .map(ToString::to_string)
        .collect();
    let wanted: BTreeSet<String> = spec
        .interface_addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    if !global.is_empty() && global != wanted {
        moves.push(format!(
            "addresses {} → {}",
            global.into_iter().collect::<Vec<_>>().join(", "),
            wanted.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    (!moves.is_empty()).then(|| moves.join(", "))
}

fn is_link_local(net: &ipnet::IpNet) -> bool {
    match net {
        ipnet::IpNet::V6(n) => n.addr().segments()[0] & 0xffc0 == 0xfe80,
        ipnet::IpNet::V4(n) => n.addr().is_link_local(),
    }
}

/// The running nodes that move what their peers reach them by, with what they move.
/// `eligible` says which nodes may change in this run (inside `--limit`, not blocked).
/// Each changing peer of a mover waits for it; a mover waits for nobody.
pub fn movers(
    mesh: &Mesh,
    facts: &FactsMap,
    eligible: &dyn Fn(&NodeName) -> bool,
) -> BTreeMap<NodeName, String> {
    mesh.nodes
        .iter()
        .filter(|spec| eligible(&spec.name))
        .filter_map(|spec| match facts.get(&spec.name) {
            Some(Ok(f)) => identity_move(spec, f).map(|m| (spec.name.clone(), m)),
            _ => None,
        })
        .collect()
}

/// A node that moves what its peers use (`moving`) and is `name` or one of its peers:
/// then `name` does not converge in the same wave as all its peers this run, so nothing
/// that needs `name` and a peer at one instant (a key flip, a punch) can run.
pub fn mover_near<'m>(
    mesh: &Mesh,
    name: &NodeName,
    moving: &'m BTreeMap<NodeName, String>,
) -> Option<(&'m NodeName, &'m String)> {
    let spec = mesh.node(name)?;
    moving
        .iter()
        .find(|(m, _)| *m == name || mesh.node(m).is_some_and(|other| mesh.is_peer(spec, other)))
}

//! Direct paths between NAT nodes as the hosts run them: which NAT pairs peer directly
//! (punched, or over a LAN), so the expectation follows the live mesh, and which of those
//! paths went silent (a NAT rebooted or renumbered). Pure.
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::expectation::{Expectation, NodeName};
use super::from_mesh::HostKeys;
use super::probe::NodeProbe;
use crate::nat_path::{PathKind, SILENT_AFTER_SECS};
use crate::topology::Mesh;

/// The path of one NAT pair as verify found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatPathView {
    /// First node (name order).
    pub a: String,
    /// Second node.
    pub b: String,
    /// Punched, LAN or relayed.
    pub kind: PathKind,
    /// The endpoint `a` uses for `b` (direct paths).
    pub a_to_b: Option<String>,
    /// The endpoint `b` uses for `a` (direct paths).
    pub b_to_a: Option<String>,
    /// Seconds since the latest handshake of the direct path (the older side).
    pub handshake_age: Option<u64>,
    /// The relay that carries the pair when it is relayed, or after a fall back.
    pub relay: Option<String>,
    /// Why the direct path is dead, when it is.
    pub dead: Option<String>,
}

impl NatPathView {
    /// The kind as a label (`punched`, `LAN`, `relayed`).
    pub fn label(&self) -> &'static str {
        self.kind.label()
    }
}

/// Each NAT node's live entries for other NAT nodes: (holder, peer) → (endpoint,
/// handshake age). Keys are matched with what the peers' interfaces run.
fn live_entries(
    mesh: &Mesh,
    probes: &BTreeMap<NodeName, NodeProbe>,
    keys: &BTreeMap<NodeName, HostKeys>,
) -> BTreeMap<(NodeName, NodeName), (String, Option<u64>)> {
    let mut out = BTreeMap::new();
    let nat: Vec<&NodeName> = mesh
        .nodes
        .iter()
        .filter(|n| !n.is_public())
        .map(|n| &n.name)
        .collect();
    for holder in &nat {
        let Some(probe) = probes.get(*holder) else {
            continue;
        };
        let Some(dump) = &probe.dump else { continue };
        for peer in nat.iter().filter(|p| *p != holder) {
            let Some(key) = keys.get(*peer).and_then(|k| k.live.or(k.derived)) else {
                continue;
            };
            let Some(entry) = dump.peer(&key) else {
                continue;
            };
            let Some(endpoint) = entry.endpoint.clone() else {
                continue;
            };
            let age = entry
                .latest_handshake
                .zip(probe.now)
                .map(|(t, now)| now.saturating_sub(t));
            out.insert(((*holder).clone(), (*peer).clone()), (endpoint, age));
        }
    }
    out
}

/// The NAT pairs the hosts run directly (both sides hold an entry for the other).
pub fn live_direct(
    mesh: &Mesh,
    probes: &BTreeMap<NodeName, NodeProbe>,
    keys: &BTreeMap<NodeName, HostKeys>,
) -> BTreeMap<(NodeName, NodeName), String> {
    live_entries(mesh, probes, keys)
        .into_iter()
        .map(|(pair, (endpoint, _))| (pair, endpoint))
        .collect()
}

/// The expectation with the live direct NAT pairs: each NAT node's expected entries are
/// the topology's with those pairs direct (the relay no longer carries their addresses).
pub fn expect_direct(
    expectation: &mut Expectation,
    mesh: &Mesh,
    direct: BTreeMap<(NodeName, NodeName), String>,
) {
    if direct.is_empty() {
        return;
    }
    let live = mesh.clone().with_direct_nat(direct);
    for node in &mut expectation.nodes {
        let Some(spec) = live.node(&node.name).filter(|s| !s.is_public()) else {
            continue;
        };
        node.peers = super::from_mesh::expected_peers(&live, spec);
    }
}

fn private(endpoint: &str) -> bool {
    match endpoint.parse::<SocketAddr>().map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) => ip.is_private(),
        Ok(IpAddr::V6(ip)) => (ip.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

/// Every NAT pair's path, and which direct ones are dead: a handshake older than
/// [`SILENT_AFTER_SECS`], or pings failing on the pair (`failing(from, to)`).
pub fn paths(
    mesh: &Mesh,
    probes: &BTreeMap<NodeName, NodeProbe>,
    keys: &BTreeMap<NodeName, HostKeys>,
    failing: &dyn Fn(&str, &str) -> bool,
) -> Vec<NatPathView> {
    let entries = live_entries(mesh, probes, keys);
    let nat: Vec<_> = mesh.nodes.iter().filter(|n| !n.is_public()).collect();
    let mut out = Vec::new();
    for (i, a) in nat.iter().enumerate() {
        for b in &nat[i + 1..] {
            if !mesh.topology_pair(a, b) || mesh.shared_network(a, b).is_some() {
                continue;
            }
            let ab = entries.get(&(a.name.clone(), b.name.clone()));
            let ba = entries.get(&(b.name.clone(), a.name.clone()));
            let relay = a.relay.as_ref().map(ToString::to_string);
            let mut view = NatPathView {
                a: a.name.to_string(),
                b: b.name.to_string(),
                kind: PathKind::Relayed,
                a_to_b: ab.map(|e| e.0.clone()),
                b_to_a: ba.map(|e| e.0.clone()),
                handshake_age: None,
                relay: relay.clone(),
                dead: None,
            };
            if ab.is_none() && ba.is_none() {
                out.push(view);
                continue;
            }
            let lan = [ab, ba].iter().flatten().all(|e| private(&e.0));
            view.kind = if lan {
                PathKind::Lan
            } else {
                PathKind::Punched
            };
            let ages: Vec<Option<u64>> = [ab, ba].iter().flatten().map(|e| e.1).collect();
            view.handshake_age = if ages.contains(&None) {
                None
            } else {
                ages.iter().flatten().max().copied()
            };
            let failing = failing(&view.a, &view.b) || failing(&view.b, &view.a);
            let silent = view.handshake_age.is_none_or(|a| a > SILENT_AFTER_SECS);
            if failing || silent || ab.is_none() || ba.is_none() {
                let since = match view.handshake_age {
                    Some(age) => format!("silent for {age} s"),
                    None => "silent (no handshake yet)".to_string(),
                };
                // Between runs the host's watchdog moves a dead direct path back to the
                // relay by itself; an apply does it at once (and punches again later).
                let fallback = relay.map_or_else(String::new, |r| {
                    format!(" or fall back to {r} (the hosts' watchdog falls back by itself within about 2.5 min)")
                });
                view.dead = Some(format!(
                    "{} ↔ {}: {} path {since}; run apply to re-punch{fallback}",
                    view.a,
                    view.b,
                    view.label()
                ));
            }
            out.push(view);
        }
    }
    out
}

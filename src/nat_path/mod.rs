//! NAT to NAT without a relay: how each NAT node's router maps its WireGuard port, as the
//! public nodes see it (learned from their `wg show dump`), and how each pair of NAT nodes
//! talks: hole punched, over a LAN they share, or through the relay. Pure: the caller
//! passes what it gathered; the topology gets the direct pairs ([`PathBook::direct`]).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::facts::{Fallback, WgDump};
use crate::inventory::NodeName;
use crate::keys::PublicKey;
use crate::topology::{Mesh, NodeSpec};

mod decide;
mod mapping;

use decide::decide;
use mapping::observe;
pub use mapping::{Mapping, NatMapping};

/// A direct NAT path whose latest handshake is older than this is silent: a live path
/// re-handshakes every 2 minutes, and WireGuard drops a session after 180 s.
pub const SILENT_AFTER_SECS: u64 = 180;

/// What one host shows of itself: its live interface and its LAN addresses.
#[derive(Debug, Clone, Copy)]
pub struct HostView<'a> {
    /// `wg show dump` of the mesh interface.
    pub dump: &'a WgDump,
    /// The host's addresses outside the mesh, with their prefixes.
    pub underlay: &'a [IpNet],
    /// Punches that failed on this host: peer → the endpoint it tried.
    pub punch_failed: &'a BTreeMap<String, String>,
    /// Direct paths the host's watchdog moved back to the relay: peer → the record.
    pub fallbacks: &'a BTreeMap<String, Fallback>,
}

/// A NAT forgets a UDP mapping that carried no packet for this long (Linux conntrack's
/// unreplied UDP timeout): a punch right after a dead path could meet its stale mapping.
pub const NAT_FORGETS_AFTER_SECS: u64 = 30;

/// `HH:MM:SS UTC` of a Unix time, for plan lines.
fn clock(t: u64) -> String {
    let s = t % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s % 3600 / 60, s % 60)
}

/// How a pair of NAT nodes talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    /// Directly, through a hole each punched in its own NAT.
    Punched,
    /// Directly, over the LAN they share behind one NAT router.
    Lan,
    /// Through a public relay.
    Relayed,
}

impl PathKind {
    /// The kind's name in reports (`punched`, `LAN`, `relayed`).
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Punched => "punched",
            PathKind::Lan => "LAN",
            PathKind::Relayed => "relayed",
        }
    }
}

/// The path of one pair of NAT nodes (`a` < `b`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatPair {
    /// First node (name order).
    pub a: NodeName,
    /// Second node.
    pub b: NodeName,
    /// The path.
    pub kind: PathKind,
    /// The endpoint `a` uses for `b` (direct paths).
    pub a_to_b: Option<String>,
    /// The endpoint `b` uses for `a` (direct paths).
    pub b_to_a: Option<String>,
    /// `a`'s relay: what carries the pair when it is relayed, or when a punch fails.
    pub relay: Option<NodeName>,
    /// The evidence and the verdict, in words.
    pub why: String,
    /// Why apply punches (sets up the direct path at an agreed instant and confirms a
    /// handshake before moving the AllowedIPs); `None` when the path stays as it is.
    pub punch: Option<String>,
}

impl NatPair {
    /// One line for the plan: "nat-1 ↔ nat-2: punched (…)".
    pub fn line(&self) -> String {
        let mut out = format!("{} ↔ {}: {}", self.a, self.b, self.kind.label());
        if let (PathKind::Relayed, Some(r)) = (self.kind, &self.relay) {
            let _ = write!(out, " via {r}");
        }
        let _ = write!(out, ": {}", self.why);
        if let Some(p) = &self.punch {
            let _ = write!(out, "; apply punches: {p}");
        }
        out
    }
}

/// Every NAT node's mapping and every NAT pair's path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PathBook {
    /// NAT nodes' mapping evidence, name order.
    pub mappings: Vec<NatMapping>,
    /// NAT pairs, name order.
    pub pairs: Vec<NatPair>,
}

/// A live entry of `holder` for `peer`: its endpoint and handshake age.
fn live_entry(
    view: Option<&HostView<'_>>,
    key: Option<PublicKey>,
    now: u64,
) -> Option<(String, Option<u64>)> {
    let peer = view?.dump.peer(&key?)?;
    let endpoint = peer.endpoint.clone()?;
    Some((
        endpoint,
        peer.latest_handshake.map(|t| now.saturating_sub(t)),
    ))
}

fn in_lan(underlay: &[IpNet], endpoint: &str) -> bool {
    endpoint
        .parse::<SocketAddr>()
        .is_ok_and(|a| underlay.iter().any(|n| n.contains(&a.ip())))
}

impl PathBook {
    /// Learns the mappings from the public nodes' dumps and decides each NAT pair's path.
    /// `key` gives each node's public key as meshup knows it; `now` is the Unix time the
    /// views were taken at. Pairs with a node that this run does not change (`frozen`:
    /// outside `--limit`) keep what they run.
    pub fn learn(
        mesh: &Mesh,
        key: &dyn Fn(&NodeName) -> Option<PublicKey>,
        views: &BTreeMap<NodeName, HostView<'_>>,
        now: u64,
        frozen: &dyn Fn(&NodeName) -> bool,
    ) -> PathBook {
        let nat: Vec<&NodeSpec> = mesh.nodes.iter().filter(|n| !n.is_public()).collect();
        let mut book = PathBook::default();
        if !mesh.settings.nat_punching {
            return book;
        }
        for node in &nat {
            book.mappings.push(observe(mesh, node, key, views, now));
        }
        for (i, a) in nat.iter().enumerate() {
            for b in &nat[i + 1..] {
                // A pair on a private network both sit on, or that the topology does not
                // join (spokes of different sites), is no NAT pair to decide.
                if !mesh.topology_pair(a, b) || mesh.shared_network(a, b).is_some() {
                    continue;
                }
                let pair = decide(a, b, &book.mappings, key, views, now, frozen);
                book.pairs.push(pair);
            }
        }
        book
    }

    /// The direct pairs for the topology: (holder, peer) → endpoint, both directions.
    pub fn direct(&self) -> BTreeMap<(NodeName, NodeName), String> {
        let mut out = BTreeMap::new();
        for p in self.pairs.iter().filter(|p| p.kind != PathKind::Relayed) {
            if let (Some(ab), Some(ba)) = (&p.a_to_b, &p.b_to_a) {
                out.insert((p.a.clone(), p.b.clone()), ab.clone());
                out.insert((p.b.clone(), p.a.clone()), ba.clone());
            }
        }
        out
    }

    /// Keeps on the relay, for this run, every pair that would be punched (or set up over
    /// its LAN) while one of its nodes cannot switch at the same instant as the other:
    /// `waits` says why for such a node. A later run punches it.
    pub fn defer_punches(&mut self, waits: &dyn Fn(&NodeName) -> Option<String>) {
        for p in self.pairs.iter_mut().filter(|p| p.punch.is_some()) {
            if let Some(why) = waits(&p.a).or_else(|| waits(&p.b)) {
                p.kind = PathKind::Relayed;
                p.a_to_b = None;
                p.b_to_a = None;
                p.punch = None;
                p.why = format!("{}; {why}", p.why);
            }
        }
    }

    /// The pair of `x` and `y`, in either order.
    pub fn pair(&self, x: &NodeName, y: &NodeName) -> Option<&NatPair> {
        self.pairs
            .iter()
            .find(|p| (&p.a == x && &p.b == y) || (&p.a == y && &p.b == x))
    }

    /// The mapping evidence of `node`.
    pub fn mapping(&self, node: &NodeName) -> Option<&NatMapping> {
        self.mappings.iter().find(|m| &m.node == node)
    }
}

#[cfg(test)]
mod tests;

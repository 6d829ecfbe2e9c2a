//! What the public nodes see of a NAT node's mapping, and what kind of NAT that makes it.
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::HostView;
use crate::inventory::NodeName;
use crate::keys::PublicKey;
use crate::topology::{Mesh, NodeSpec};

/// How a NAT maps a node's WireGuard port, judged from what the public nodes see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    /// Two or more public nodes see the same ip:port: one mapping for every destination,
    /// so a peer that sends to it reaches the node once the node has sent to that peer.
    EndpointIndependent,
    /// Public nodes see different ports (or addresses): a new mapping per destination,
    /// which no other node can predict. No punching.
    Symmetric,
    /// Fewer than two public nodes have seen the node lately: not known.
    Unknown,
}

/// The mapping evidence of one NAT node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatMapping {
    /// The NAT node.
    pub node: NodeName,
    /// Which public node sees it at which ip:port (handshake in the last 5 minutes).
    pub seen: Vec<(NodeName, SocketAddr)>,
    /// The verdict.
    pub mapping: Mapping,
}

impl NatMapping {
    /// The mapped endpoint, when endpoint-independent.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        (self.mapping == Mapping::EndpointIndependent)
            .then(|| self.seen.first().map(|s| s.1))
            .flatten()
    }

    /// The public address its router uses, when every observer agrees on it.
    pub fn public_ip(&self) -> Option<IpAddr> {
        let first = self.seen.first()?.1.ip();
        self.seen.iter().all(|s| s.1.ip() == first).then_some(first)
    }

    /// The evidence in words: "pub-1 sees 100.64.0.2:51820, pub-2 sees 100.64.0.2:51820".
    pub fn describe(&self) -> String {
        if self.seen.is_empty() {
            return format!(
                "{} is not seen by any public node (no handshake with one in 5 min)",
                self.node
            );
        }
        let seen: Vec<String> = self
            .seen
            .iter()
            .map(|(p, a)| format!("{p} sees {a}"))
            .collect();
        let verdict = match self.mapping {
            Mapping::EndpointIndependent => "endpoint-independent",
            Mapping::Symmetric => "symmetric",
            Mapping::Unknown => "unknown (one observer)",
        };
        format!("{}: {} → {verdict}", self.node, seen.join(", "))
    }
}

/// How long an observation stays evidence: a NAT node with a keepalive re-handshakes
/// with each public node every 2 minutes.
const FRESH_SECS: u64 = 300;

pub(super) fn observe(
    mesh: &Mesh,
    node: &NodeSpec,
    key: &dyn Fn(&NodeName) -> Option<PublicKey>,
    views: &BTreeMap<NodeName, HostView<'_>>,
    now: u64,
) -> NatMapping {
    let mut seen = Vec::new();
    if let Some(k) = key(&node.name) {
        for public in mesh.nodes.iter().filter(|n| n.is_public()) {
            let Some(entry) = views.get(&public.name).and_then(|v| v.dump.peer(&k)) else {
                continue;
            };
            let fresh = entry
                .latest_handshake
                .is_some_and(|t| now.saturating_sub(t) <= FRESH_SECS);
            if let (true, Some(addr)) = (
                fresh,
                entry
                    .endpoint
                    .as_deref()
                    .and_then(|e| e.parse::<SocketAddr>().ok()),
            ) {
                seen.push((public.name.clone(), addr));
            }
        }
    }
    let mut distinct: Vec<SocketAddr> = seen.iter().map(|s| s.1).collect();
    distinct.sort();
    distinct.dedup();
    let mapping = match (distinct.len(), seen.len()) {
        (1, n) if n >= 2 => Mapping::EndpointIndependent,
        (d, _) if d >= 2 => Mapping::Symmetric,
        _ => Mapping::Unknown,
    };
    NatMapping {
        node: node.name.clone(),
        seen,
        mapping,
    }
}

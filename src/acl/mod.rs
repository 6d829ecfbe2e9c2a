//! The mesh ACL compiled per host (pure): from `mesh.firewall.rules` and the nodes'
//! groups, what one node accepts on the mesh interface, as (source address, port)
//! entries. Sources are mesh addresses (IPv4 and IPv6) of nodes and clients; `any` is
//! every source. Traffic relayed for a NAT node keeps its original source address, so
//! the destination sees the node the rules name. The ACL covers what is addressed to
//! the node itself (input); forwarding (relays, subnet routers) stays as `trust` makes it.

use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::{AclPeer, AclPort, MeshAcl};
use crate::topology::{Mesh, NodeSpec};

/// One thing a node accepts: from `source` (every source when `None`) on `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclEntry {
    /// The node or client the source address belongs to, or `any`.
    pub from: String,
    /// Source mesh address; `None`: any source.
    pub source: Option<IpAddr>,
    /// Port (range) or ICMP echo.
    pub port: String,
    /// The port as parsed.
    #[serde(skip)]
    pub spec: AclPort,
}

/// What one node accepts on the mesh interface under the ACL, besides established and
/// related traffic (always accepted, so its own connections get their answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostAcl {
    /// ICMP echo from every source.
    pub icmp: bool,
    /// Entries in rule order, each once.
    pub entries: Vec<AclEntry>,
}

impl HostAcl {
    /// A new TCP connection from `source` to `port` is accepted.
    pub fn admits_tcp(&self, source: IpAddr, port: u16) -> bool {
        self.entries
            .iter()
            .any(|e| e.source.is_none_or(|s| s == source) && e.spec.admits_tcp(port))
    }

    /// The TCP ports (first port of each range) some entry opens, in order, each once.
    pub fn tcp_ports(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for e in &self.entries {
            if let AclPort::Tcp(low, _) = e.spec
                && !out.contains(&low)
            {
                out.push(low);
            }
        }
        out
    }
}

/// `node`'s ACL, or `None` when the mesh has no rules.
pub fn host_acl(mesh: &Mesh, node: &NodeSpec) -> Option<HostAcl> {
    let acl: &MeshAcl = mesh.settings.acl.as_ref()?;
    let mut entries: Vec<AclEntry> = Vec::new();
    for rule in &acl.rules {
        let to_me = match &rule.to {
            AclPeer::Any => true,
            AclPeer::Group(g) => node.groups.contains(g),
            AclPeer::Node(n) => *n == node.name,
        };
        if !to_me {
            continue;
        }
        for (from, source) in sources(mesh, node, &rule.from) {
            for port in &rule.ports {
                let entry = AclEntry {
                    from: from.clone(),
                    source,
                    port: port.to_string(),
                    spec: *port,
                };
                if !entries.contains(&entry) {
                    entries.push(entry);
                }
            }
        }
    }
    Some(HostAcl {
        icmp: acl.icmp,
        entries,
    })
}

/// The (name, address) pairs a rule's `from` stands for; `any` is one entry without an
/// address. The node itself is left out (its own traffic does not arrive on the mesh
/// interface).
fn sources(mesh: &Mesh, me: &NodeSpec, from: &AclPeer) -> Vec<(String, Option<IpAddr>)> {
    let of = |name: &str, v4: IpAddr, v6: Option<IpAddr>| {
        std::iter::once((name.to_string(), Some(v4)))
            .chain(v6.map(|a| (name.to_string(), Some(a))))
            .collect::<Vec<_>>()
    };
    let node_addrs = |n: &NodeSpec| {
        of(
            n.name.as_str(),
            n.address.into(),
            n.address6.map(Into::into),
        )
    };
    match from {
        AclPeer::Any => vec![("any".to_string(), None)],
        AclPeer::Group(g) => mesh
            .nodes
            .iter()
            .filter(|n| n.name != me.name && n.groups.contains(g))
            .flat_map(node_addrs)
            .collect(),
        AclPeer::Node(name) if *name == me.name => Vec::new(),
        AclPeer::Node(name) => match (mesh.node(name), mesh.client(name)) {
            (Some(n), _) => node_addrs(n),
            (None, Some(c)) => of(
                c.name.as_str(),
                c.address.into(),
                c.address6.map(Into::into),
            ),
            // An absent node: nothing to accept from it.
            (None, None) => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests;

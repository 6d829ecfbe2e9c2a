//! The mesh as a graph: for each present node, its role and the peers it lists, with
//! AllowedIPs, endpoints and keepalives decided by the guide's rules. Pure.
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::address::Allocation;
use crate::inventory::{Inventory, MeshSettings, Node, NodeName};

/// Whether a node can be reached from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Has a public endpoint: peers connect to it.
    Public,
    /// Behind NAT: it initiates towards the public nodes and keeps the mapping alive.
    Nat,
}

/// One `[Peer]` entry in a node's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer node.
    pub name: NodeName,
    /// `Endpoint = host:port`, only towards public peers.
    pub endpoint: Option<String>,
    /// The peer's mesh address(es) as /32 (/128), its subnets, and, on a NAT node's relay
    /// peer, what is relayed through it.
    pub allowed_ips: Vec<IpNet>,
    /// `PersistentKeepalive`, when this node must keep the path open.
    pub persistent_keepalive: Option<u16>,
    /// Whether the pair shares a preshared key (`psk-<peer>.key`).
    pub psk: bool,
}

/// One present node of the mesh with everything its config needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name.
    pub name: NodeName,
    /// IPv4 mesh address.
    pub address: Ipv4Addr,
    /// IPv6 mesh address (dual stack).
    pub address6: Option<Ipv6Addr>,
    /// `Address =` values: the addresses with the mesh prefix lengths.
    pub interface_addresses: Vec<IpNet>,
    /// UDP listen port.
    pub listen_port: u16,
    /// Interface MTU.
    pub mtu: Option<u16>,
    /// Public or behind NAT.
    pub role: Role,
    /// The public endpoint, `host:port`, for public nodes.
    pub endpoint: Option<String>,
    /// Networks routed behind the node.
    pub subnets: Vec<IpNet>,
    /// Forwards traffic for others (subnet router or relay): needs IP forwarding.
    pub is_transit: bool,
    /// NAT nodes whose traffic to other NAT nodes this node relays (sorted).
    pub relay_for: Vec<NodeName>,
    /// For a NAT node that talks to other NAT nodes: the public node relaying for it.
    pub relay: Option<NodeName>,
    /// What a peer's AllowedIPs hold for this node: its mesh address(es) as /32 (/128)
    /// and its subnets.
    pub own_ips: Vec<IpNet>,
}

impl NodeSpec {
    /// Has a public endpoint.
    pub fn is_public(&self) -> bool {
        self.role == Role::Public
    }
}

/// The whole mesh: present nodes in name order, and the nodes marked absent. A node's
/// peer list is computed when asked for ([`Mesh::peers`]), one node at a time, so a
/// mesh of N nodes holds O(N) data, not the N² of every peer list at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mesh {
    /// Mesh-wide settings.
    pub settings: MeshSettings,
    /// Present nodes in name order.
    pub nodes: Vec<NodeSpec>,
    /// Nodes marked `state: absent` (to be removed from hosts), in name order.
    pub absent: Vec<NodeName>,
    index: HashMap<NodeName, usize>,
    /// NAT nodes' mesh addresses and subnets, in name order (what a relay carries).
    nat_ips: Vec<(NodeName, Vec<IpNet>)>,
}

impl Mesh {
    /// Builds the mesh from a validated inventory and its address allocation.
    ///
    /// A node missing from `allocation` (which `address::allocate` never produces) is left
    /// out rather than panicking.
    pub fn build(inventory: &Inventory, allocation: &Allocation) -> Mesh {
        let settings = inventory.mesh().clone();
        let mut present: Vec<(&Node, crate::address::NodeAddresses)> = inventory
            .present_nodes()
            .filter_map(|n| allocation.get(&n.name).map(|a| (n, a)))
            .collect();
        present.sort_by(|a, b| a.0.name.cmp(&b.0.name));

        let own_ips = |node: &Node, addrs: &crate::address::NodeAddresses| -> Vec<IpNet> {
            let mut ips = vec![IpNet::V4(Ipv4Net::from(addrs.v4))];
            if let Some(v6) = addrs.v6 {
                ips.push(IpNet::V6(Ipv6Net::from(v6)));
            }
            ips.extend(node.subnets.iter().copied());
            ips
        };

        // Relay choice: only NAT nodes that have another NAT node to reach need one.
        let nat: Vec<&Node> = present
            .iter()
            .map(|p| p.0)
            .filter(|n| !n.is_public())
            .collect();
        let first_public = present.iter().map(|p| p.0).find(|n| n.is_public());
        let mut relay_of: BTreeMap<NodeName, NodeName> = BTreeMap::new();
        if nat.len() >= 2 {
            for node in &nat {
                let chosen = node
                    .relay
                    .clone()
                    .or_else(|| first_public.map(|p| p.name.clone()));
                if let Some(relay) = chosen {
                    relay_of.insert(node.name.clone(), relay);
                }
            }
        }

        let mut nodes = Vec::new();
        for (node, addrs) in &present {
            let relay_for: Vec<NodeName> = relay_of
                .iter()
                .filter(|(_, relay)| **relay == node.name)
                .map(|(nat_node, _)| nat_node.clone())
                .collect();
            let mut interface_addresses = vec![IpNet::V4(
                Ipv4Net::new(addrs.v4, settings.network.prefix_len())
                    .unwrap_or_else(|_| Ipv4Net::from(addrs.v4)),
            )];
            if let (Some(v6), Some(network6)) = (addrs.v6, settings.network6) {
                interface_addresses.push(IpNet::V6(
                    Ipv6Net::new(v6, network6.prefix_len()).unwrap_or_else(|_| Ipv6Net::from(v6)),
                ));
            }
            nodes.push(NodeSpec {
                name: node.name.clone(),
                address: addrs.v4,
                address6: addrs.v6,
                interface_addresses,
                listen_port: node.listen_port,
                mtu: node.mtu,
                role: if node.is_public() {
                    Role::Public
                } else {
                    Role::Nat
                },
                endpoint: node.endpoint.as_ref().map(ToString::to_string),
                subnets: node.subnets.clone(),
                is_transit: !node.subnets.is_empty() || !relay_for.is_empty(),
                relay: relay_of.get(&node.name).cloned(),
                relay_for,
                own_ips: own_ips(node, addrs),
            });
        }
        let mut absent: Vec<NodeName> = inventory.absent_nodes().map(|n| n.name.clone()).collect();
        absent.sort();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let nat_ips = nodes
            .iter()
            .filter(|n| !n.is_public())
            .map(|n| (n.name.clone(), n.own_ips.clone()))
            .collect();
        Mesh {
            settings,
            nodes,
            absent,
            index,
            nat_ips,
        }
    }

    /// Whether `a` lists `b` as a peer: every pair but two NAT nodes (they cannot reach
    /// each other and go through a relay).
    pub fn is_peer(&self, a: &NodeSpec, b: &NodeSpec) -> bool {
        a.name != b.name && (a.is_public() || b.is_public())
    }

    /// The `[Peer]` entries of `node`, in name order.
    pub fn peers(&self, node: &NodeSpec) -> Vec<PeerSpec> {
        let keepalive = self.settings.persistent_keepalive;
        self.nodes
            .iter()
            .filter(|peer| self.is_peer(node, peer))
            .map(|peer| {
                let mut allowed_ips = peer.own_ips.clone();
                if node.relay.as_ref() == Some(&peer.name) {
                    for (other, ips) in &self.nat_ips {
                        if *other != node.name {
                            allowed_ips.extend(ips.iter().copied());
                        }
                    }
                }
                PeerSpec {
                    name: peer.name.clone(),
                    endpoint: peer.endpoint.clone(),
                    allowed_ips,
                    persistent_keepalive: if peer.is_public() { keepalive } else { None },
                    psk: self.settings.preshared_keys,
                }
            })
            .collect()
    }

    /// How many tunnels the mesh has (pairs that peer directly).
    pub fn tunnel_count(&self) -> usize {
        let public = self.nodes.iter().filter(|n| n.is_public()).count();
        let nat = self.nodes.len() - public;
        public * public.saturating_sub(1) / 2 + public * nat
    }

    /// The spec of a present node.
    pub fn node(&self, name: &NodeName) -> Option<&NodeSpec> {
        self.index.get(name).and_then(|&i| self.nodes.get(i))
    }

    /// The mesh address of a present node (v4), e.g. for ping checks.
    pub fn address_of(&self, name: &NodeName) -> Option<IpAddr> {
        self.node(name).map(|n| IpAddr::V4(n.address))
    }
}

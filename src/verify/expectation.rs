//! What `verify` expects of the mesh: the verify-local input model the caller maps
//! from the topology (names, addresses, keys, AllowedIPs, roles, firewall evidence).
use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::error::VerifyError;
pub use crate::inventory::{InterfaceName, NodeName};
use crate::keys::PublicKey;

/// One peer entry a node is expected to carry in its interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedPeer {
    /// The peer node this entry points at (a relay for relayed pairs).
    pub name: NodeName,
    /// The peer's public key as meshup knows it (`public.key` on the peer), if known.
    pub public_key: Option<PublicKey>,
    /// AllowedIPs the entry should carry.
    pub allowed_ips: Vec<IpNet>,
    /// Endpoint the entry should carry (`host:port`), `None` for NAT peers.
    pub endpoint: Option<String>,
    /// PersistentKeepalive in seconds, `None` when off.
    pub keepalive: Option<u16>,
    /// The private network the pair talks over (`endpoint` is the peer's address there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// One node of the mesh as `verify` expects it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedNode {
    /// Node name.
    pub name: NodeName,
    /// Mesh IPv4 address.
    pub address: IpAddr,
    /// Mesh IPv6 address when the mesh is dual stack.
    pub address6: Option<IpAddr>,
    /// Behind NAT (no public endpoint).
    pub nat: bool,
    /// Relays traffic between NAT nodes.
    pub relay_role: bool,
    /// A hub of a hub topology: peers with every hub and forwards for its spokes.
    pub hub: bool,
    /// Routes subnets behind it.
    pub subnet_router: bool,
    /// Address inside its subnets that every other node pings.
    pub probe: Option<IpAddr>,
    /// Interface MTU (the DF probe sends packets of exactly this size).
    pub mtu: u16,
    /// UDP listen port.
    pub listen_port: u16,
    /// The node's own public key as meshup knows it, if known.
    pub public_key: Option<PublicKey>,
    /// Peer entries this node should carry (not one per node for relayed pairs).
    pub peers: Vec<ExpectedPeer>,
    /// What the node accepts on the mesh interface under the mesh ACL (`None`: no ACL,
    /// everything).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<crate::acl::HostAcl>,
}

/// How a pair of nodes is expected to talk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "relay")]
pub enum PairPath {
    /// Direct peer entries on both sides.
    Direct,
    /// Through this relay node (two NAT nodes).
    Relayed(NodeName),
}

/// Whether a node's firewall lets the WireGuard port in, from the gathered facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// The firewall accepts the UDP port (or there is no firewall).
    Open,
    /// The firewall is active and does not accept the UDP port.
    Closed,
    /// Not known (facts unavailable).
    Unknown,
}

/// Firewall evidence for one node, passed in by the caller from the facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirewallEvidence {
    /// Whether UDP `listen_port` is open.
    pub state: PortState,
    /// The firewall in charge, for messages (`nftables`, `ufw`, `firewalld`, `iptables`).
    pub firewall: String,
    /// What drops traffic arriving on the mesh interface, when the facts say something
    /// does ("nftables: chain inet filter input, policy drop: nothing accepts iifname wg0").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_filter: Option<String>,
}

/// Everything `verify` checks the live mesh against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    /// WireGuard interface name on every node.
    pub interface: InterfaceName,
    /// Every node in the mesh, in inventory order.
    pub nodes: Vec<ExpectedNode>,
}

impl Expectation {
    /// Builds an expectation, checking that names are unique and peers name known nodes.
    pub fn new(interface: InterfaceName, nodes: Vec<ExpectedNode>) -> Result<Self, VerifyError> {
        let mut seen = BTreeSet::new();
        for node in &nodes {
            if !seen.insert(node.name.clone()) {
                return Err(VerifyError::DuplicateNode {
                    name: node.name.to_string(),
                });
            }
        }
        for node in &nodes {
            for peer in &node.peers {
                if !seen.contains(&peer.name) || peer.name == node.name {
                    return Err(VerifyError::UnknownPeer {
                        node: node.name.to_string(),
                        peer: peer.name.to_string(),
                    });
                }
            }
        }
        Ok(Self { interface, nodes })
    }

    /// The node called `name`.
    pub fn node(&self, name: &NodeName) -> Option<&ExpectedNode> {
        self.nodes.iter().find(|n| &n.name == name)
    }

    /// How `from` reaches `to`: direct when `from` has a peer entry for `to`, else through
    /// the relay whose expected AllowedIPs on `from` cover `to`'s mesh address.
    pub fn path(&self, from: &ExpectedNode, to: &ExpectedNode) -> PairPath {
        if from.peers.iter().any(|p| p.name == to.name) {
            return PairPath::Direct;
        }
        from.peers
            .iter()
            .find(|p| p.allowed_ips.iter().any(|net| net.contains(&to.address)))
            .map_or(PairPath::Direct, |p| PairPath::Relayed(p.name.clone()))
    }
}

impl ExpectedNode {
    /// The expected peer entry for `name`.
    pub fn peer(&self, name: &NodeName) -> Option<&ExpectedPeer> {
        self.peers.iter().find(|p| &p.name == name)
    }
}

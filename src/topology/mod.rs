//! The mesh as a graph: for each present node, its role and the peers it lists, with
//! AllowedIPs, endpoints and keepalives decided by the guide's rules. Pure.
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::address::Allocation;
use crate::inventory::{
    ClientKey, Inventory, LabelName, MeshSettings, NetworkAddress, Node, NodeName, Topology,
    Underlay,
};
use crate::keys::PublicKey;

mod peers;

/// Path of meshup's routing script on a host (`crate::routing`):
/// `<config dir>/meshup-route-<interface>.sh`.
pub fn route_script_path(config_dir: &str, interface: &str) -> String {
    format!("{config_dir}/meshup-route-{interface}.sh")
}

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
    /// The IPv6 endpoint of a dual-stack public node (`endpoint6:`).
    pub endpoint6: Option<String>,
    /// The underlay families it is reached on and sends from (a NAT node: IPv4).
    pub underlay: Underlay,
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
    /// Clients that connect through this node (it lists them as peers and forwards
    /// their traffic), in name order.
    pub clients: Vec<NodeName>,
    /// Groups of the mesh ACL (`groups:`).
    pub groups: Vec<crate::inventory::GroupName>,
    /// Carries other nodes' internet traffic (`exit_node: true`): forwards and masquerades
    /// mesh sources out of its uplink.
    pub exit_node: bool,
    /// The exit node this node's default route goes through (policy routing, see
    /// `plan::steps::route`); its peer entry carries `0.0.0.0/0` (and `::/0`).
    pub exit_via: Option<NodeName>,
    /// meshup's routing script (`crate::routing`), which the interface's `PostUp` runs.
    pub route_file: Option<String>,
    /// With a mesh ACL: the nft script the interface's `PostUp` loads (so the ACL is up
    /// whenever the interface is, from boot on).
    pub acl_file: Option<String>,
    /// Private networks the node sits on, with its address there, in name order.
    pub networks: Vec<NetworkAddress>,
    /// In a hub topology: the index of its site in the topology's sites.
    pub site: Option<usize>,
    /// In a hub topology: one of the hubs (peers with every hub, forwards for spokes).
    pub hub: bool,
}

impl NodeSpec {
    /// Has a public endpoint.
    pub fn is_public(&self) -> bool {
        self.role == Role::Public
    }

    /// The endpoint a node with underlay `from` uses for this one: the IPv4 one when
    /// both have IPv4, else the IPv6 one (`endpoint6`, or `endpoint` when that is the
    /// IPv6 address or a name); `None` when they share no family or this node is not
    /// public.
    pub fn endpoint_from(&self, from: Underlay) -> Option<&String> {
        let common = self.underlay.common(from);
        if common.v4 {
            self.endpoint.as_ref()
        } else if common.v6 {
            self.endpoint6.as_ref().or(self.endpoint.as_ref())
        } else {
            None
        }
    }
}

/// One unmanaged client (`clients:`): its addresses, the nodes it goes through, its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// Client name.
    pub name: NodeName,
    /// IPv4 mesh address.
    pub address: Ipv4Addr,
    /// IPv6 mesh address (dual stack).
    pub address6: Option<Ipv6Addr>,
    /// `Address =` values of the client's own config (mesh prefix lengths).
    pub interface_addresses: Vec<IpNet>,
    /// Present public nodes it peers with; the first carries its traffic to the others.
    pub via: Vec<NodeName>,
    /// The key pair is generated by meshup on the workstation (`generate: true`).
    pub generated: bool,
    /// Its public key: given in the inventory, or read back from the generated config
    /// file; `None` while a generated client has no file yet.
    pub public_key: Option<PublicKey>,
    /// Its mesh address(es) as /32 (/128): what the nodes route to it.
    pub own_ips: Vec<IpNet>,
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
    /// Some node has no IPv4 underlay: pairs other than two NAT nodes may be relayed.
    v6_only: bool,
    /// Unmanaged clients, in name order.
    pub clients: Vec<ClientSpec>,
    /// Per node, the clients whose first `via` it is (indexes into `clients`).
    routed_clients: HashMap<NodeName, Vec<usize>>,
    /// Pairs of NAT nodes that peer directly (hole punched, or over their shared LAN):
    /// (holder, peer) → the endpoint the holder uses for the peer. Empty unless the
    /// caller passes what it learned from the hosts ([`Mesh::with_direct_nat`]).
    direct_nat: BTreeMap<(NodeName, NodeName), String>,
    /// In a hub topology: per site, its members (indexes into `nodes`); and every hub.
    site_members: Vec<Vec<usize>>,
    hubs: Vec<usize>,
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

        // Relay choice: only NAT nodes that have another NAT node to reach need one. In a
        // hub topology every spoke's relay is its site's first hub.
        let nat: Vec<&Node> = present
            .iter()
            .map(|p| p.0)
            .filter(|n| !n.is_public())
            .collect();
        let mut relay_of: BTreeMap<NodeName, NodeName> = BTreeMap::new();
        let site_of = |node: &Node| site_index(&settings.topology, node);
        if let Topology::Hub(sites) = &settings.topology {
            for (node, _) in &present {
                let Some(site) = site_of(node).and_then(|i| sites.get(i)) else {
                    continue;
                };
                if let Some(primary) = site.hubs.first()
                    && !site.hubs.contains(&node.name)
                {
                    relay_of.insert(node.name.clone(), primary.clone());
                }
            }
        } else {
            // A node needs a relay for the nodes it cannot reach directly: two NAT nodes,
            // and nodes whose underlays share no family. The relay is its own `relay`, else
            // the first public node with every family involved.
            let public = |n: &&Node| n.is_public();
            let v6_only = present.iter().map(|p| p.0).any(|n| !n.underlay().v4);
            let v4_only = !nat.is_empty()
                || present
                    .iter()
                    .map(|p| p.0)
                    .filter(public)
                    .any(|n| !n.underlay().v6);
            for (node, _) in &present {
                let own = node.underlay();
                let unreachable = Underlay {
                    v4: (!node.is_public() && nat.len() >= 2) || (!own.v4 && v4_only),
                    v6: !own.v6 && v6_only,
                };
                if unreachable.is_empty() {
                    continue;
                }
                let needed = own.union(unreachable);
                let chosen = node.relay.clone().or_else(|| {
                    present
                        .iter()
                        .map(|p| p.0)
                        .filter(public)
                        .find(|p| p.name != node.name && p.underlay().covers(needed))
                        .map(|p| p.name.clone())
                });
                if let Some(relay) = chosen {
                    relay_of.insert(node.name.clone(), relay);
                }
            }
        }

        let mut clients: Vec<ClientSpec> = inventory
            .clients()
            .iter()
            .filter_map(|c| {
                let addrs = allocation.get(&c.name)?;
                let via: Vec<NodeName> = c
                    .via
                    .iter()
                    .filter(|v| present.iter().any(|p| &p.0.name == *v && p.0.is_public()))
                    .cloned()
                    .collect();
                if via.is_empty() {
                    return None;
                }
                let mut own_ips = vec![IpNet::V4(Ipv4Net::from(addrs.v4))];
                let mut interface_addresses = vec![IpNet::V4(
                    Ipv4Net::new(addrs.v4, settings.network.prefix_len())
                        .unwrap_or_else(|_| Ipv4Net::from(addrs.v4)),
                )];
                if let Some(v6) = addrs.v6 {
                    own_ips.push(IpNet::V6(Ipv6Net::from(v6)));
                    if let Some(network6) = settings.network6 {
                        interface_addresses.push(IpNet::V6(
                            Ipv6Net::new(v6, network6.prefix_len())
                                .unwrap_or_else(|_| Ipv6Net::from(v6)),
                        ));
                    }
                }
                let (generated, public_key) = match c.key {
                    ClientKey::Given(key) => (false, Some(key)),
                    ClientKey::Generated => (true, None),
                };
                Some(ClientSpec {
                    name: c.name.clone(),
                    address: addrs.v4,
                    address6: addrs.v6,
                    interface_addresses,
                    via,
                    generated,
                    public_key,
                    own_ips,
                })
            })
            .collect();
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        let mut routed_clients: HashMap<NodeName, Vec<usize>> = HashMap::new();
        for (i, client) in clients.iter().enumerate() {
            if let Some(first) = client.via.first() {
                routed_clients.entry(first.clone()).or_default().push(i);
            }
        }

        // Who each relay (or hub) carries, in name order: grouped once, not per node.
        let mut relayed_by: HashMap<NodeName, Vec<NodeName>> = HashMap::new();
        for (nat_node, relay) in &relay_of {
            relayed_by
                .entry(relay.clone())
                .or_default()
                .push(nat_node.clone());
        }
        let mut nodes = Vec::new();
        for (node, addrs) in &present {
            let node_clients: Vec<NodeName> = clients
                .iter()
                .filter(|c| c.via.contains(&node.name))
                .map(|c| c.name.clone())
                .collect();
            let relay_for = relayed_by.remove(&node.name).unwrap_or_default();
            let mut interface_addresses = vec![IpNet::V4(
                Ipv4Net::new(addrs.v4, settings.network.prefix_len())
                    .unwrap_or_else(|_| Ipv4Net::from(addrs.v4)),
            )];
            if let (Some(v6), Some(network6)) = (addrs.v6, settings.network6) {
                interface_addresses.push(IpNet::V6(
                    Ipv6Net::new(v6, network6.prefix_len()).unwrap_or_else(|_| Ipv6Net::from(v6)),
                ));
            }
            let hub = match &settings.topology {
                Topology::Hub(sites) => sites.iter().any(|s| s.hubs.contains(&node.name)),
                Topology::Full => false,
            };
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
                endpoint6: node.endpoint6.as_ref().map(ToString::to_string),
                underlay: node.underlay(),
                subnets: node.subnets.clone(),
                // Relays, subnet routers, exits and hubs forward: IP forwarding, firewall
                // trust and MSS clamping (plan::steps::route) follow `is_transit`.
                is_transit: !node.subnets.is_empty()
                    || node.exit_node
                    || !relay_for.is_empty()
                    || !node_clients.is_empty()
                    || hub,
                relay: relay_of.get(&node.name).cloned(),
                relay_for,
                own_ips: own_ips(node, addrs),
                clients: node_clients,
                groups: node.groups.clone(),
                exit_node: node.exit_node,
                exit_via: node.exit_via.clone(),
                route_file: None,
                acl_file: settings.acl.as_ref().map(|_| {
                    crate::inventory::acl_file(
                        settings.config_dir.as_str(),
                        settings.interface.as_str(),
                    )
                }),
                networks: node.networks.clone(),
                site: site_of(node),
                hub,
            });
        }
        for spec in &mut nodes {
            // Transit nodes (relays, subnet routers, exits) and nodes using an exit.
            if spec.is_transit || spec.exit_via.is_some() {
                spec.route_file = Some(route_script_path(
                    settings.config_dir.as_str(),
                    settings.interface.as_str(),
                ));
            }
        }
        let mut absent: Vec<NodeName> = inventory.absent_nodes().map(|n| n.name.clone()).collect();
        absent.sort();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut site_members: Vec<Vec<usize>> = match &settings.topology {
            Topology::Hub(sites) => vec![Vec::new(); sites.len()],
            Topology::Full => Vec::new(),
        };
        for (i, spec) in nodes.iter().enumerate() {
            if let Some(members) = spec.site.and_then(|s| site_members.get_mut(s)) {
                members.push(i);
            }
        }
        let hubs = (0..nodes.len()).filter(|&i| nodes[i].hub).collect();
        let nat_ips = nodes
            .iter()
            .filter(|n| !n.is_public())
            .map(|n| (n.name.clone(), n.own_ips.clone()))
            .collect();
        let v6_only = nodes.iter().any(|n| !n.underlay.v4);
        Mesh {
            settings,
            nodes,
            absent,
            index,
            nat_ips,
            v6_only,
            clients,
            routed_clients,
            direct_nat: BTreeMap::new(),
            site_members,
            hubs,
        }
    }
}

/// The index of `node`'s site in a hub topology's sites: its `site:`, else the site
/// listing it as a hub; the one unnamed site of `mesh.hubs` holds every node.
fn site_index(topology: &Topology, node: &Node) -> Option<usize> {
    let Topology::Hub(sites) = topology else {
        return None;
    };
    sites.iter().position(|s| match (&s.name, &node.site) {
        (None, _) => true,
        (Some(name), Some(own)) => name == own,
        (Some(_), None) => s.hubs.contains(&node.name),
    })
}

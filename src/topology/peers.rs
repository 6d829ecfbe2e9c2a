//! Who a node lists and how: the pairs the topology wants, their endpoints, the addresses a
//! carrier (relay, hub) takes for others, and the peer lists of nodes and clients.
use super::*;

impl Mesh {
    /// The mesh with these NAT pairs peering directly: `(holder, peer) → endpoint` (both
    /// directions of a pair must be given; a one-sided entry is ignored). Each side lists
    /// the other with that endpoint and a keepalive, and its relay no longer carries the
    /// other's addresses. The topology stays pure: the caller decides the pairs from facts.
    pub fn with_direct_nat(mut self, direct: BTreeMap<(NodeName, NodeName), String>) -> Mesh {
        self.direct_nat = direct
            .iter()
            .filter(|((a, b), _)| direct.contains_key(&(b.clone(), a.clone())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self
    }

    /// The endpoint `node` uses for NAT node `peer` when the pair peers directly.
    pub fn direct_nat_endpoint(&self, node: &NodeName, peer: &NodeName) -> Option<&str> {
        self.direct_nat
            .get(&(node.clone(), peer.clone()))
            .map(String::as_str)
    }

    /// The mesh with the public keys of generated clients filled in (read back from
    /// their local config files by the caller; topology itself reads no file).
    pub fn with_client_keys(mut self, keys: &BTreeMap<NodeName, PublicKey>) -> Mesh {
        for client in &mut self.clients {
            if client.generated {
                client.public_key = keys.get(&client.name).copied();
            }
        }
        self
    }

    /// Whether `a` lists `b` as a peer: a pair the topology joins ([`Mesh::topology_pair`])
    /// that can reach each other: every such pair but two NAT nodes and two nodes whose
    /// underlays share no family (they go through a relay), unless that pair peers
    /// directly (punched, over a shared LAN, or over a private network both sit on).
    pub fn is_peer(&self, a: &NodeSpec, b: &NodeSpec) -> bool {
        self.topology_pair(a, b)
            && (((a.is_public() || b.is_public()) && a.underlay.meets(b.underlay))
                || self.shared_network(a, b).is_some()
                || self.direct_nat_endpoint(&a.name, &b.name).is_some())
    }

    /// Whether the topology joins `a` and `b` directly, whatever their reachability: in a
    /// full mesh every pair; with hubs, two hubs, a hub and a node of its site, and two
    /// spokes of one named site.
    pub fn topology_pair(&self, a: &NodeSpec, b: &NodeSpec) -> bool {
        if a.name == b.name {
            return false;
        }
        match &self.settings.topology {
            Topology::Full => true,
            Topology::Hub(sites) => match (a.hub, b.hub) {
                (true, true) => true,
                (true, false) | (false, true) => a.site == b.site,
                (false, false) => {
                    a.site == b.site
                        && a.site
                            .and_then(|i| sites.get(i))
                            .is_some_and(|s| s.name.is_some())
                }
            },
        }
    }

    /// The private network `a` and `b` both sit on that their pair uses, with `b`'s
    /// address there: the first of `mesh.networks` they share, else the first shared in
    /// name order. Only addresses of one family pair up.
    pub fn shared_network<'m>(
        &'m self,
        a: &NodeSpec,
        b: &'m NodeSpec,
    ) -> Option<&'m NetworkAddress> {
        if a.networks.is_empty() {
            return None;
        }
        let rank = |name: &LabelName| {
            self.settings
                .networks
                .iter()
                .position(|n| n == name)
                .unwrap_or(usize::MAX)
        };
        b.networks
            .iter()
            .filter(|theirs| {
                a.networks.iter().any(|mine| {
                    mine.network == theirs.network
                        && mine.address.is_ipv4() == theirs.address.is_ipv4()
                })
            })
            .min_by_key(|theirs| rank(&theirs.network))
    }

    /// The endpoint `node` uses for `peer`: its address on a private network both sit
    /// on, else a direct NAT path's, else the peer's public endpoint in a family both
    /// have ([`NodeSpec::endpoint_from`]).
    pub fn endpoint(&self, node: &NodeSpec, peer: &NodeSpec) -> Option<String> {
        if let Some(on) = self.shared_network(node, peer) {
            return Some(std::net::SocketAddr::new(on.address, peer.listen_port).to_string());
        }
        self.direct_nat_endpoint(&node.name, &peer.name)
            .map(str::to_string)
            .or_else(|| peer.endpoint_from(node.underlay).cloned())
    }

    /// The peer of `node` that carries its traffic to `other` when the two do not peer:
    /// a NAT node's relay, a spoke's first hub, or (on a hub) the first hub of `other`'s
    /// site. `None` when nothing does.
    pub fn carrier<'m>(&'m self, node: &'m NodeSpec, other: &'m NodeSpec) -> Option<&'m NodeName> {
        match &self.settings.topology {
            Topology::Full => node.relay.as_ref().filter(|r| **r != other.name),
            Topology::Hub(sites) => {
                if node.hub {
                    other
                        .site
                        .and_then(|i| sites.get(i))
                        .and_then(|s| s.hubs.first())
                        .filter(|h| **h != node.name)
                } else {
                    node.relay.as_ref()
                }
            }
        }
    }

    /// What each peer of `node` carries beyond its own addresses: the addresses of the
    /// nodes `node` reaches through it ([`Mesh::carrier`]), and of the clients behind them.
    fn carried<'m>(&'m self, node: &'m NodeSpec) -> HashMap<&'m NodeName, Vec<IpNet>> {
        let mut out: HashMap<&NodeName, Vec<IpNet>> = HashMap::new();
        let through = |other: &'m NodeSpec| {
            if other.name == node.name || self.is_peer(node, other) {
                None
            } else {
                self.carrier(node, other)
            }
        };
        match &self.settings.topology {
            // Only NAT nodes go through a relay (walk the few, not every node), unless a
            // node without IPv4 makes families decide too.
            Topology::Full => {
                if node.relay.is_some() {
                    let others: Vec<&NodeSpec> = if self.v6_only {
                        self.nodes.iter().collect()
                    } else {
                        self.nat_ips
                            .iter()
                            .filter_map(|(n, _)| self.node(n))
                            .collect()
                    };
                    for other in others {
                        if let Some(via) = through(other) {
                            out.entry(via)
                                .or_default()
                                .extend(other.own_ips.iter().copied());
                        }
                    }
                }
            }
            Topology::Hub(_) => {
                for other in &self.nodes {
                    if let Some(via) = through(other) {
                        let ips = out.entry(via).or_default();
                        ips.extend(other.own_ips.iter().copied());
                        for &i in self.routed_clients.get(&other.name).into_iter().flatten() {
                            if let Some(client) = self.clients.get(i)
                                && !client.via.contains(&node.name)
                            {
                                ips.extend(client.own_ips.iter().copied());
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The `[Peer]` entries of `node` for the other nodes, in name order. A peer that
    /// is the first `via` of a client carries that client's addresses too, unless `node`
    /// is itself one of the client's `via` nodes (it lists the client directly).
    pub fn peers(&self, node: &NodeSpec) -> Vec<PeerSpec> {
        let keepalive = self.settings.persistent_keepalive;
        let mut carried = self.carried(node);
        self.nodes
            .iter()
            .filter(|peer| self.is_peer(node, peer))
            .map(|peer| {
                let mut allowed_ips = peer.own_ips.clone();
                allowed_ips.extend(carried.remove(&peer.name).into_iter().flatten());
                if node.exit_via.as_ref() == Some(&peer.name) {
                    allowed_ips.extend(self.default_routes());
                }
                let direct = self.direct_nat_endpoint(&node.name, &peer.name);
                for &i in self.routed_clients.get(&peer.name).into_iter().flatten() {
                    if let Some(client) = self.clients.get(i)
                        && !client.via.contains(&node.name)
                    {
                        allowed_ips.extend(client.own_ips.iter().copied());
                    }
                }
                PeerSpec {
                    name: peer.name.clone(),
                    endpoint: self.endpoint(node, peer),
                    allowed_ips,
                    // A direct NAT pair keeps both NATs' mappings open from both sides.
                    // Over a private network there is no NAT mapping to keep open.
                    persistent_keepalive: if peer.is_public() {
                        keepalive
                    } else if self.shared_network(node, peer).is_some() {
                        None
                    } else {
                        direct.and(keepalive.or(Some(25)))
                    },
                    psk: self.settings.preshared_keys,
                }
            })
            .collect()
    }

    /// The `[Peer]` entries of `node` for the clients that connect through it, in name
    /// order: no endpoint (the client initiates), no keepalive, no preshared key.
    pub fn client_peers(&self, node: &NodeSpec) -> Vec<PeerSpec> {
        self.clients
            .iter()
            .filter(|c| c.via.contains(&node.name))
            .map(|c| PeerSpec {
                name: c.name.clone(),
                endpoint: None,
                allowed_ips: c.own_ips.clone(),
                persistent_keepalive: None,
                psk: false,
            })
            .collect()
    }

    /// Every `[Peer]` entry of `node`'s config: nodes and clients, in name order.
    pub fn config_peers(&self, node: &NodeSpec) -> Vec<PeerSpec> {
        let mut peers = self.peers(node);
        peers.extend(self.client_peers(node));
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        peers
    }

    /// The `[Peer]` entries of a client's own config, one per `via` node: the first
    /// carries the whole mesh (its networks and every routed subnet but those behind the
    /// other `via` nodes); the others only their own addresses and subnets, which the
    /// longest-prefix match sends to them directly.
    pub fn client_config_peers(&self, client: &ClientSpec) -> Vec<PeerSpec> {
        let keepalive = self.settings.persistent_keepalive;
        let mut out = Vec::new();
        for (i, via) in client.via.iter().enumerate() {
            let Some(node) = self.node(via) else { continue };
            let allowed_ips = if i == 0 {
                let mut ips = vec![IpNet::V4(self.settings.network)];
                if let Some(network6) = self.settings.network6 {
                    ips.push(IpNet::V6(network6));
                }
                for other in &self.nodes {
                    if other.name == *via || !client.via.contains(&other.name) {
                        ips.extend(other.subnets.iter().copied());
                    }
                }
                ips
            } else {
                node.own_ips.clone()
            };
            out.push(PeerSpec {
                name: node.name.clone(),
                endpoint: node.endpoint.clone(),
                allowed_ips,
                persistent_keepalive: keepalive,
                psk: false,
            });
        }
        out
    }

    /// What an exit peer's AllowedIPs add on a node that goes through it: `0.0.0.0/0`,
    /// and `::/0` in a dual-stack mesh.
    pub fn default_routes(&self) -> Vec<IpNet> {
        let mut out = vec![IpNet::V4(Ipv4Net::default())];
        if self.settings.network6.is_some() {
            out.push(IpNet::V6(Ipv6Net::default()));
        }
        out
    }

    /// The spec of a client.
    pub fn client(&self, name: &NodeName) -> Option<&ClientSpec> {
        self.clients.iter().find(|c| &c.name == name)
    }

    /// How many tunnels the mesh has (pairs that peer directly).
    pub fn tunnel_count(&self) -> usize {
        if self.v6_only || matches!(self.settings.topology, Topology::Hub(_)) {
            return self.nodes.iter().map(|n| self.peer_count(n)).sum::<usize>() / 2;
        }
        let public = self.nodes.iter().filter(|n| n.is_public()).count();
        let nat = self.nodes.len() - public;
        // NAT pairs on a private network they share, unless already counted as direct.
        let on_networks: Vec<&NodeSpec> = self
            .nodes
            .iter()
            .filter(|n| !n.is_public() && !n.networks.is_empty())
            .collect();
        let mut lan = 0;
        for (i, a) in on_networks.iter().enumerate() {
            for b in &on_networks[i + 1..] {
                if self.shared_network(a, b).is_some()
                    && self.direct_nat_endpoint(&a.name, &b.name).is_none()
                {
                    lan += 1;
                }
            }
        }
        public * public.saturating_sub(1) / 2 + public * nat + self.direct_nat.len() / 2 + lan
    }

    /// How many nodes `node` lists as peers (clients not counted). With hubs, only its
    /// site and the hubs are candidates: O(site), not O(N).
    pub fn peer_count(&self, node: &NodeSpec) -> usize {
        let Topology::Hub(_) = self.settings.topology else {
            return self.nodes.iter().filter(|p| self.is_peer(node, p)).count();
        };
        let site = node.site.and_then(|s| self.site_members.get(s));
        let other_hubs = self
            .hubs
            .iter()
            .filter(|_| node.hub)
            .filter(|&&i| self.nodes.get(i).is_some_and(|h| h.site != node.site));
        site.into_iter()
            .flatten()
            .chain(other_hubs)
            .filter_map(|&i| self.nodes.get(i))
            .filter(|p| self.is_peer(node, p))
            .count()
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

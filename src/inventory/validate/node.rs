//! `nodes:`: each node's values, checked against the mesh settings, and then the
//! checks across all nodes.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::inventory::spanned::Spanned;
use ipnet::{IpNet, Ipv4Net};

use super::Validator;
use super::cross_node::{Seen, SeenValues, overlaps};
use super::mesh::PartialMesh;
use crate::inventory::Node;
use crate::inventory::error::Span;
use crate::inventory::names::{Endpoint, EndpointHost, NodeName, NodeState};
use crate::inventory::raw::{RawNode, RawSsh};

impl Validator<'_> {
    pub(super) fn nodes(
        &mut self,
        raw: &Spanned<Vec<RawNode>>,
        mesh: &PartialMesh,
        defaults: &RawSsh,
    ) -> Vec<Node> {
        if raw.value.is_empty() {
            let span = self.span(raw);
            self.error(span, "the inventory has no nodes", "empty list");
        }
        let mut names: HashMap<NodeName, Span> = HashMap::new();
        let mut nodes = Vec::new();
        let mut addresses4: Vec<Seen<Ipv4Addr>> = Vec::new();
        let mut addresses6: Vec<Seen<Ipv6Addr>> = Vec::new();
        let mut subnets: Vec<Seen<IpNet>> = Vec::new();
        let mut relays: Vec<(usize, Spanned<String>)> = Vec::new();
        let mut node_spans: Vec<Span> = Vec::new();
        for raw_node in &raw.value {
            let index = nodes.len();
            let name_span = self.span(&raw_node.name);
            let name = self.parse::<NodeName>(&raw_node.name, "invalid node name");
            if let Some(name) = &name {
                if let Some(first) = names.get(name) {
                    let line = self.problems.line_of(first.offset);
                    self.problems.push_full(
                        name_span,
                        format!("duplicate node name `{name}` (first defined on line {line})"),
                        "duplicate",
                        None,
                        Some((*first, "first defined here".into())),
                    );
                } else {
                    names.insert(name.clone(), name_span);
                }
            }
            let mut seen = SeenValues {
                index,
                addresses4: &mut addresses4,
                addresses6: &mut addresses6,
                subnets: &mut subnets,
            };
            let node = self.node(raw_node, mesh, defaults, name, &mut seen);
            if let Some(relay) = &raw_node.relay {
                relays.push((index, relay.clone()));
            }
            let Some(node) = node else {
                // Keep indexes aligned with the raw list for the checks below.
                nodes.push(None);
                node_spans.push(name_span);
                continue;
            };
            nodes.push(Some(node));
            node_spans.push(name_span);
        }
        self.duplicates(&addresses4, "address");
        self.duplicates(&addresses6, "address6");
        self.overlapping_subnets(&subnets, &raw.value);
        self.endpoints_outside_subnets(&nodes, &raw.value, &subnets);
        let public: Vec<bool> = raw
            .value
            .iter()
            .map(|n| n.endpoint.is_some() && n.state.as_ref().is_none_or(|s| s.value != "absent"))
            .collect();
        self.relays_and_nat(&nodes, &relays, &node_spans, &public);
        self.underlay_families(&nodes, &relays, &node_spans);
        self.exits(&nodes, &raw.value, mesh);
        if let Some(network) = mesh.network {
            let present = nodes.iter().flatten().filter(|n| n.is_present()).count();
            let capacity = (1u64 << (32 - network.prefix_len())).saturating_sub(2);
            if present as u64 > capacity {
                self.error(
                    mesh.network_span,
                    format!(
                        "mesh network `{network}` has {capacity} host addresses for {present} nodes"
                    ),
                    "too small for the nodes",
                );
            }
        }
        nodes.into_iter().flatten().collect()
    }

    pub(super) fn node(
        &mut self,
        raw: &RawNode,
        mesh: &PartialMesh,
        defaults: &RawSsh,
        name: Option<NodeName>,
        seen: &mut SeenValues<'_>,
    ) -> Option<Node> {
        let state = match &raw.state {
            Some(value) => self.parse::<NodeState>(value, "invalid state"),
            None => Some(NodeState::Present),
        };
        let present = state != Some(NodeState::Absent);
        let listen_port = match &raw.listen_port {
            Some(value) => self.int_in(value, 1..=65535, "listen_port"),
            None => mesh.listen_port,
        };
        let mtu = match &raw.mtu {
            Some(value) => self.int_in(value, 576..=65535, "mtu").map(Some),
            None => mesh.mtu,
        };
        let endpoint = match (&raw.endpoint, listen_port) {
            (Some(value), Some(port)) => match Endpoint::parse(&value.value, port) {
                Ok(endpoint) => Some(Some(endpoint)),
                Err(message) => {
                    let span = self.span(value);
                    self.error(span, message, "invalid endpoint");
                    None
                }
            },
            (Some(_), None) => None,
            (None, _) => Some(None),
        };
        let endpoint6 = self.endpoint6(raw, listen_port);
        let address = match &raw.address {
            Some(value) => {
                let address = self.address4(value, mesh.network);
                if let (Some(address), true) = (address, present) {
                    let span = self.span(value);
                    seen.addresses4.push(Seen {
                        value: address,
                        node: seen.index,
                        span,
                    });
                }
                address.map(Some)
            }
            None => Some(None),
        };
        let address6 = match &raw.address6 {
            Some(value) => {
                let address = self.address6(value, mesh);
                if let (Some(address), true) = (address, present) {
                    let span = self.span(value);
                    seen.addresses6.push(Seen {
                        value: address,
                        node: seen.index,
                        span,
                    });
                }
                address.map(Some)
            }
            None => Some(None),
        };
        let mut subnets = Vec::new();
        let mut subnets_ok = true;
        for value in &raw.subnets {
            match self.subnet(value, mesh) {
                Some(net) => {
                    if present {
                        let span = self.span(value);
                        seen.subnets.push(Seen {
                            value: net,
                            node: seen.index,
                            span,
                        });
                    }
                    subnets.push(net);
                }
                None => subnets_ok = false,
            }
        }
        let probe = match &raw.probe {
            Some(value) => self.probe(value, &subnets, subnets_ok).map(Some),
            None => Some(None),
        };
        let relay = match &raw.relay {
            Some(value) => self.parse::<NodeName>(value, "invalid node name").map(Some),
            None => Some(None),
        };
        let groups = self.groups(raw.groups.as_ref());
        let networks = self.node_networks(raw.networks.as_ref(), mesh);
        let site = match &raw.site {
            Some(value) => self
                .parse::<crate::inventory::LabelName>(value, "invalid site name")
                .map(Some),
            None => Some(None),
        };
        let exit_via = self.own_exit_via(raw, mesh, name.as_ref());
        let ssh = self.ssh(raw.ssh.as_ref(), defaults, name.as_ref());
        let line = self.problems.line_of(self.span(&raw.name).offset);
        Some(Node {
            name: name?,
            address: address?,
            address6: address6?,
            endpoint: endpoint?,
            endpoint6: endpoint6?,
            subnets: subnets_ok.then_some(subnets)?,
            probe: probe?,
            listen_port: listen_port?,
            mtu: mtu?,
            state: state?,
            relay: relay?,
            ssh: ssh?,
            groups,
            networks: networks?,
            site: site?,
            exit_node: raw.exit_node.unwrap_or(false),
            exit_via: exit_via?,
            line,
        })
    }

    /// `endpoint6`: an IPv6 address or a DNS name, beside an `endpoint` that is not itself
    /// an IPv6 address. `Some(None)` when unset, `None` when invalid.
    fn endpoint6(&mut self, raw: &RawNode, listen_port: Option<u16>) -> Option<Option<Endpoint>> {
        let Some(value) = &raw.endpoint6 else {
            return Some(None);
        };
        let span = self.span(value);
        let endpoint = match Endpoint::parse(&value.value, listen_port?) {
            Ok(endpoint) => endpoint,
            Err(message) => {
                self.error(
                    span,
                    message.replacen("endpoint", "endpoint6", 1),
                    "invalid endpoint6",
                );
                return None;
            }
        };
        let why = match (&endpoint.host, &raw.endpoint) {
            (EndpointHost::Ip(IpAddr::V4(ip)), _) => {
                format!("endpoint6 {ip} is an IPv4 address; endpoint6 is the node's IPv6 endpoint")
            }
            (_, None) => "endpoint6 is set but the node has no endpoint; write its IPv6 endpoint as `endpoint`".to_owned(),
            (_, Some(primary)) if primary.value.starts_with('[') => {
                "endpoint6 is set but endpoint is already an IPv6 address; give endpoint the node's IPv4 endpoint".to_owned()
            }
            _ => return Some(Some(endpoint)),
        };
        self.error(span, why, "invalid endpoint6");
        None
    }

    pub(super) fn address4(
        &mut self,
        value: &Spanned<String>,
        network: Option<Ipv4Net>,
    ) -> Option<Ipv4Addr> {
        let span = self.span(value);
        let Ok(address) = value.value.parse::<Ipv4Addr>() else {
            let help = value.value.contains('/').then(|| {
                "write the address without a prefix length; the mesh network gives it".into()
            });
            self.problems.push_full(
                span,
                format!("`{}` is not an IPv4 address", value.value),
                "invalid address",
                help,
                None,
            );
            return None;
        };
        let network = network?;
        if !network.contains(&address) {
            self.error(
                span,
                format!("address {address} is outside the mesh network {network}"),
                "outside the mesh network",
            );
            return None;
        }
        if address == network.network() || address == network.broadcast() {
            let which = if address == network.network() {
                "network"
            } else {
                "broadcast"
            };
            self.error(
                span,
                format!("address {address} is the {which} address of {network}"),
                "not a host address",
            );
            return None;
        }
        Some(address)
    }

    pub(super) fn address6(
        &mut self,
        value: &Spanned<String>,
        mesh: &PartialMesh,
    ) -> Option<Ipv6Addr> {
        let span = self.span(value);
        let Ok(address) = value.value.parse::<Ipv6Addr>() else {
            self.error(
                span,
                format!("`{}` is not an IPv6 address", value.value),
                "invalid address",
            );
            return None;
        };
        let network = match mesh.network6 {
            Some(Some(network)) => network,
            Some(None) => {
                self.problems.push_full(
                    span,
                    "address6 is set but the mesh has no network6",
                    "no IPv6 mesh network",
                    Some("add `network6:` under `mesh:`".into()),
                    None,
                );
                return None;
            }
            None => return None,
        };
        if !network.contains(&address) {
            self.error(
                span,
                format!("address6 {address} is outside the mesh network6 {network}"),
                "outside the mesh network",
            );
            return None;
        }
        if address == network.network() {
            self.error(
                span,
                format!("address6 {address} is the network address of {network}"),
                "not a host address",
            );
            return None;
        }
        Some(address)
    }

    pub(super) fn subnet(&mut self, value: &Spanned<String>, mesh: &PartialMesh) -> Option<IpNet> {
        let span = self.span(value);
        let Ok(net) = value.value.parse::<IpNet>() else {
            self.error(
                span,
                format!("`{}` is not a network in CIDR notation", value.value),
                "invalid subnet",
            );
            return None;
        };
        if net.trunc() != net {
            self.problems.push_full(
                span,
                format!("subnet `{net}` has host bits set"),
                "not a network address",
                Some(format!("did you mean {}?", net.trunc())),
                None,
            );
            return None;
        }
        let mesh_nets = [
            mesh.network.map(IpNet::V4),
            mesh.network6.flatten().map(IpNet::V6),
        ];
        for mesh_net in mesh_nets.into_iter().flatten() {
            if overlaps(&net, &mesh_net) {
                self.error(
                    span,
                    format!("subnet {net} overlaps the mesh network {mesh_net}"),
                    "overlaps the mesh network",
                );
                return None;
            }
        }
        Some(net)
    }

    pub(super) fn probe(
        &mut self,
        value: &Spanned<String>,
        subnets: &[IpNet],
        subnets_ok: bool,
    ) -> Option<IpAddr> {
        let span = self.span(value);
        let Ok(probe) = value.value.parse::<IpAddr>() else {
            self.error(
                span,
                format!("probe `{}` is not an IP address", value.value),
                "invalid address",
            );
            return None;
        };
        if subnets_ok && !subnets.iter().any(|net| net.contains(&probe)) {
            self.problems.push_full(
                span,
                format!("probe {probe} is not inside the node's subnets"),
                "not in any routed subnet",
                Some("the probe is an address behind this node that `verify` pings".into()),
                None,
            );
            return None;
        }
        Some(probe)
    }
}

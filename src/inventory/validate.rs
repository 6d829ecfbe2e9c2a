//! From raw YAML to a validated [`Inventory`], collecting every problem with its location.
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_saphyr::{Location, Spanned};

use super::error::{InventoryError, Problems, Span};
use super::names::{
    Become, Endpoint, EndpointHost, HostKeyChecking, InterfaceName, JumpHost, NodeName, NodeState,
    RemotePath, SshHost, UserName,
};
use super::raw::{RawInventory, RawMesh, RawNode, RawSsh};
use super::{
    DEFAULT_CONFIG_DIR, DEFAULT_CONNECT_TIMEOUT, DEFAULT_INTERFACE, DEFAULT_KEEPALIVE,
    DEFAULT_LISTEN_PORT, Inventory, MeshSettings, Node, SshTarget,
};

/// Largest inventory accepted, to keep parsing of hostile input bounded.
const MAX_INVENTORY_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn parse(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
    let file = path.display().to_string();
    let mut problems = Problems::new(&file, text);
    if text.len() > MAX_INVENTORY_BYTES {
        problems.push(
            Span::default(),
            format!("inventory is larger than {MAX_INVENTORY_BYTES} bytes"),
            "file starts here",
        );
        return Err(problems.into_error());
    }
    let raw: RawInventory = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            push_yaml_error(&mut problems, text, &err);
            return Err(problems.into_error());
        }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut validator = Validator {
        text,
        problems,
        dir,
    };
    let mesh = validator.mesh(&raw.mesh);
    let defaults = raw.ssh.unwrap_or_default();
    if let Some(host) = &defaults.host {
        let span = validator.span(host);
        validator.problems.push_full(
            span,
            "`host` cannot be a default: it differs per node",
            "set this under a node's `ssh:`",
            Some("a node's SSH host defaults to its name".into()),
            None,
        );
    }
    let nodes = validator.nodes(&raw.nodes, &mesh, &defaults);
    match (mesh.complete(), validator.problems.is_empty()) {
        (Some(mesh), true) => Ok(Inventory {
            path: path.to_owned(),
            mesh,
            nodes,
        }),
        _ => Err(validator.problems.into_error()),
    }
}

/// Turns a serde-saphyr error (syntax, unknown key, wrong type) into a located problem.
pub(crate) fn push_yaml_error(problems: &mut Problems, text: &str, err: &serde_saphyr::Error) {
    let span = err
        .location()
        .map(|loc| location_span(text, &loc))
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        "the inventory is empty; it needs `mesh:` and `nodes:`".to_owned()
    } else {
        yaml_message(err)
    };
    problems.push(span, message, "here");
}

/// The message of a serde-saphyr error without its own snippet and position suffix
/// (we render the position ourselves).
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let full = err.without_snippet().to_string();
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    let trimmed = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let trimmed = trimmed.trim_end_matches(':').trim();
    if trimmed.is_empty() {
        "invalid YAML".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Byte span of a serde-saphyr location, falling back to line/column when the parser did
/// not record byte offsets.
fn location_span(text: &str, loc: &Location) -> Span {
    let span = loc.span();
    if let (Some(offset), Some(len)) = (span.byte_offset(), span.byte_len()) {
        return Span {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            len: usize::try_from(len).unwrap_or(0),
        };
    }
    let line = usize::try_from(loc.line()).unwrap_or(0);
    if line == 0 {
        return Span::default();
    }
    let column = usize::try_from(loc.column()).unwrap_or(1).max(1);
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let offset = text[line_start.min(text.len())..]
        .char_indices()
        .nth(column - 1)
        .map_or(text.len(), |(i, _)| line_start + i);
    Span { offset, len: 0 }
}

/// Mesh settings while being validated: `None` where a value was invalid.
struct PartialMesh {
    interface: Option<InterfaceName>,
    network: Option<Ipv4Net>,
    network_span: Span,
    network6: Option<Option<Ipv6Net>>,
    listen_port: Option<u16>,
    persistent_keepalive: Option<Option<u16>>,
    mtu: Option<Option<u16>>,
    preshared_keys: bool,
    config_dir: Option<RemotePath>,
}

impl PartialMesh {
    fn complete(self) -> Option<MeshSettings> {
        Some(MeshSettings {
            interface: self.interface?,
            network: self.network?,
            network6: self.network6?,
            listen_port: self.listen_port?,
            persistent_keepalive: self.persistent_keepalive?,
            mtu: self.mtu?,
            preshared_keys: self.preshared_keys,
            config_dir: self.config_dir?,
        })
    }
}

/// A value seen in one node, kept for duplicate and overlap checks.
struct Seen<T> {
    value: T,
    node: usize,
    span: Span,
}

/// Where a node records values that must be unique or disjoint across nodes.
struct SeenValues<'a> {
    index: usize,
    addresses4: &'a mut Vec<Seen<Ipv4Addr>>,
    addresses6: &'a mut Vec<Seen<Ipv6Addr>>,
    subnets: &'a mut Vec<Seen<IpNet>>,
}

struct Validator<'a> {
    text: &'a str,
    problems: Problems,
    dir: PathBuf,
}

impl Validator<'_> {
    fn span<T>(&self, spanned: &Spanned<T>) -> Span {
        location_span(self.text, &spanned.referenced)
    }

    fn error(&mut self, span: Span, message: impl Into<String>, label: &str) {
        self.problems.push(span, message, label);
    }

    /// Parses a spanned string with `FromStr`, recording a problem on failure.
    fn parse<T: FromStr<Err = String>>(
        &mut self,
        value: &Spanned<String>,
        label: &str,
    ) -> Option<T> {
        match value.value.parse() {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                let span = self.span(value);
                self.error(span, message, label);
                None
            }
        }
    }

    /// Checks an integer is within `range`, recording a problem otherwise.
    fn int_in(
        &mut self,
        value: &Spanned<i64>,
        range: std::ops::RangeInclusive<i64>,
        what: &str,
    ) -> Option<u16> {
        if range.contains(&value.value) {
            u16::try_from(value.value).ok()
        } else {
            let span = self.span(value);
            self.error(
                span,
                format!(
                    "{what} {} is out of range {}-{}",
                    value.value,
                    range.start(),
                    range.end()
                ),
                "out of range",
            );
            None
        }
    }

    fn mesh(&mut self, raw: &Spanned<RawMesh>) -> PartialMesh {
        let raw = &raw.value;
        let interface = match &raw.interface {
            Some(value) => self.parse::<InterfaceName>(value, "invalid interface name"),
            None => DEFAULT_INTERFACE.parse().ok(),
        };
        let network_span = self.span(&raw.network);
        let network = self.network4(&raw.network);
        let network6 = match &raw.network6 {
            Some(value) => self.network6(value).map(Some),
            None => Some(None),
        };
        let listen_port = match &raw.listen_port {
            Some(value) => self.int_in(value, 1..=65535, "listen_port"),
            None => Some(DEFAULT_LISTEN_PORT),
        };
        let persistent_keepalive = match &raw.persistent_keepalive {
            Some(value) => self
                .int_in(value, 0..=65535, "persistent_keepalive")
                .map(|k| (k != 0).then_some(k)),
            None => Some(Some(DEFAULT_KEEPALIVE)),
        };
        let min_mtu = if raw.network6.is_some() { 1280 } else { 576 };
        let mtu = match &raw.mtu {
            Some(value) => self.int_in(value, min_mtu..=65535, "mtu").map(Some),
            None => Some(None),
        };
        let config_dir = match &raw.config_dir {
            Some(value) => self.parse::<RemotePath>(value, "invalid path"),
            None => DEFAULT_CONFIG_DIR.parse().ok(),
        };
        PartialMesh {
            interface,
            network,
            network_span,
            network6,
            listen_port,
            persistent_keepalive,
            mtu,
            preshared_keys: raw.preshared_keys.unwrap_or(false),
            config_dir,
        }
    }

    fn network4(&mut self, value: &Spanned<String>) -> Option<Ipv4Net> {
        let span = self.span(value);
        let net = match value.value.parse::<IpNet>() {
            Ok(IpNet::V4(net)) => net,
            Ok(IpNet::V6(_)) => {
                self.problems.push_full(
                    span,
                    format!("mesh network `{}` is IPv6", value.value),
                    "expected an IPv4 network",
                    Some("put IPv6 networks under `network6`".into()),
                    None,
                );
                return None;
            }
            Err(_) => {
                self.error(
                    span,
                    format!("`{}` is not a network in CIDR notation", value.value),
                    "expected e.g. 10.10.0.0/24",
                );
                return None;
            }
        };
        if net.trunc() != net {
            self.problems.push_full(
                span,
                format!("mesh network `{net}` has host bits set"),
                "not a network address",
                Some(format!("did you mean {}?", net.trunc())),
                None,
            );
            return None;
        }
        if net.prefix_len() > 30 {
            self.error(
                span,
                format!("mesh network `{net}` is too small (prefix longer than /30)"),
                "too small",
            );
            return None;
        }
        Some(net)
    }

    fn network6(&mut self, value: &Spanned<String>) -> Option<Ipv6Net> {
        let span = self.span(value);
        let Ok(IpNet::V6(net)) = value.value.parse::<IpNet>() else {
            self.error(
                span,
                format!("`{}` is not an IPv6 network in CIDR notation", value.value),
                "expected e.g. fd10:10::/64",
            );
            return None;
        };
        if net.trunc() != net {
            self.problems.push_full(
                span,
                format!("mesh network6 `{net}` has host bits set"),
                "not a network address",
                Some(format!("did you mean {}?", net.trunc())),
                None,
            );
            return None;
        }
        if net.prefix_len() > 126 {
            self.error(
                span,
                format!("mesh network6 `{net}` is too small (prefix longer than /126)"),
                "too small",
            );
            return None;
        }
        Some(net)
    }

    fn nodes(
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

    fn node(
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
        let ssh = self.ssh(raw.ssh.as_ref(), defaults, name.as_ref());
        let line = self.problems.line_of(self.span(&raw.name).offset);
        Some(Node {
            name: name?,
            address: address?,
            address6: address6?,
            endpoint: endpoint?,
            subnets: subnets_ok.then_some(subnets)?,
            probe: probe?,
            listen_port: listen_port?,
            mtu: mtu?,
            state: state?,
            relay: relay?,
            ssh: ssh?,
            line,
        })
    }

    fn address4(&mut self, value: &Spanned<String>, network: Option<Ipv4Net>) -> Option<Ipv4Addr> {
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

    fn address6(&mut self, value: &Spanned<String>, mesh: &PartialMesh) -> Option<Ipv6Addr> {
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

    fn subnet(&mut self, value: &Spanned<String>, mesh: &PartialMesh) -> Option<IpNet> {
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

    fn probe(
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

    fn duplicates<T: Eq + Hash + Copy + std::fmt::Display>(
        &mut self,
        seen: &[Seen<T>],
        what: &str,
    ) {
        let mut first: HashMap<T, Span> = HashMap::new();
        for entry in seen {
            match first.get(&entry.value) {
                Some(first_span) => {
                    let line = self.problems.line_of(first_span.offset);
                    self.problems.push_full(
                        entry.span,
                        format!(
                            "duplicate {what} {} (also used on line {line})",
                            entry.value
                        ),
                        "duplicate",
                        None,
                        Some((*first_span, "first used here".into())),
                    );
                }
                None => {
                    first.insert(entry.value, entry.span);
                }
            }
        }
    }

    fn overlapping_subnets(&mut self, subnets: &[Seen<IpNet>], raw: &[RawNode]) {
        for (i, later) in subnets.iter().enumerate() {
            if let Some(earlier) = subnets[..i]
                .iter()
                .find(|e| overlaps(&e.value, &later.value))
            {
                let owner = raw.get(earlier.node).map_or_else(
                    || "another node".to_owned(),
                    |n| format!("node `{}`", n.name.value),
                );
                let line = self.problems.line_of(earlier.span.offset);
                let whose = if earlier.node == later.node {
                    "the same node".to_owned()
                } else {
                    owner
                };
                self.problems.push_full(
                    later.span,
                    format!(
                        "subnet {} overlaps {} routed by {whose} (line {line})",
                        later.value, earlier.value
                    ),
                    "overlapping subnet",
                    None,
                    Some((earlier.span, "overlaps this".into())),
                );
            }
        }
    }

    /// An endpoint inside a routed subnet would be routed into the tunnel itself.
    fn endpoints_outside_subnets(
        &mut self,
        nodes: &[Option<Node>],
        raw: &[RawNode],
        subnets: &[Seen<IpNet>],
    ) {
        for (node, raw_node) in nodes.iter().zip(raw) {
            let Some(node) = node else { continue };
            let (Some(endpoint), Some(value)) = (&node.endpoint, &raw_node.endpoint) else {
                continue;
            };
            let EndpointHost::Ip(ip) = endpoint.host else {
                continue;
            };
            if !node.is_present() {
                continue;
            }
            if let Some(subnet) = subnets.iter().find(|s| s.value.contains(&ip)) {
                let span = self.span(value);
                self.error(
                    span,
                    format!(
                        "endpoint {ip} lies inside subnet {} routed through the mesh; it would loop into the tunnel",
                        subnet.value
                    ),
                    "inside a routed subnet",
                );
            }
        }
    }

    fn relays_and_nat(
        &mut self,
        nodes: &[Option<Node>],
        relays: &[(usize, Spanned<String>)],
        spans: &[Span],
        public: &[bool],
    ) {
        let present: Vec<&Node> = nodes.iter().flatten().filter(|n| n.is_present()).collect();
        // Judged on the raw file so a public node with another error still counts.
        let has_public = public.iter().any(|p| *p);
        for (index, value) in relays {
            let span = self.span(value);
            let Some(node) = nodes.get(*index).and_then(Option::as_ref) else {
                continue;
            };
            let Some(relay) = &node.relay else { continue };
            if node.is_public() {
                self.error(
                    span,
                    format!(
                        "node `{}` has a public endpoint; `relay` is only for nodes behind NAT",
                        node.name
                    ),
                    "relay on a public node",
                );
                continue;
            }
            match nodes.iter().flatten().find(|n| &n.name == relay) {
                None => self.error(
                    span,
                    format!("relay `{relay}` is not a node of this inventory"),
                    "unknown node",
                ),
                Some(target) if target.name == node.name => self.error(
                    span,
                    format!("node `{relay}` cannot relay for itself"),
                    "self relay",
                ),
                Some(target) if !target.is_present() => self.error(
                    span,
                    format!("relay `{relay}` is marked absent"),
                    "absent node",
                ),
                Some(target) if !target.is_public() => self.problems.push_full(
                    span,
                    format!("relay `{relay}` has no public endpoint"),
                    "not a public node",
                    Some(
                        "a relay must be reachable by both NAT nodes: give it an `endpoint`".into(),
                    ),
                    None,
                ),
                Some(_) => {}
            }
        }
        if present.len() >= 2 && !has_public {
            for (node, span) in nodes.iter().zip(spans) {
                let Some(node) = node else { continue };
                if node.is_present() {
                    self.problems.push_full(
                        *span,
                        format!(
                            "node `{}` is behind NAT and no node has a public endpoint to reach",
                            node.name
                        ),
                        "no public node to connect to",
                        Some(
                            "give at least one node an `endpoint:` (public IP or DNS name)".into(),
                        ),
                        None,
                    );
                }
            }
        }
    }

    fn ssh(
        &mut self,
        node: Option<&RawSsh>,
        defaults: &RawSsh,
        name: Option<&NodeName>,
    ) -> Option<SshTarget> {
        let empty = RawSsh::default();
        let node = node.unwrap_or(&empty);
        let pick = |field: fn(&RawSsh) -> &Option<Spanned<String>>| {
            field(node).as_ref().or(field(defaults).as_ref())
        };
        let pick_int = |field: fn(&RawSsh) -> &Option<Spanned<i64>>| {
            field(node).as_ref().or(field(defaults).as_ref())
        };

        let host = match &node.host {
            Some(value) => self.parse::<SshHost>(value, "invalid host"),
            None => name.and_then(|n| n.as_str().parse().ok()),
        };
        let user = match pick(|s| &s.user) {
            Some(value) => self.parse::<UserName>(value, "invalid user name"),
            None => "root".parse().ok(),
        };
        let port = match pick_int(|s| &s.port) {
            Some(value) => self.int_in(value, 1..=65535, "ssh port"),
            None => Some(22),
        };
        let identity_file = self.local_path(pick(|s| &s.identity_file));
        let jump = match pick(|s| &s.jump) {
            Some(value) => self.parse::<JumpHost>(value, "invalid jump host").map(Some),
            None => Some(None),
        };
        let become_method = match (pick(|s| &s.become_), &user) {
            (Some(value), Some(user)) => match self.parse::<Become>(value, "invalid become") {
                Some(Become::Root) if user.as_str() != "root" => {
                    let span = self.span(value);
                    self.problems.push_full(
                        span,
                        format!("become: root needs user root, but the user is `{user}`"),
                        "cannot become root",
                        Some("use `become: sudo` for a non-root user".into()),
                        None,
                    );
                    None
                }
                other => other,
            },
            (Some(value), None) => self.parse::<Become>(value, "invalid become"),
            (None, Some(user)) if user.as_str() == "root" => Some(Become::Root),
            (None, _) => Some(Become::Sudo),
        };
        let known_hosts = self.local_path(pick(|s| &s.known_hosts));
        let host_key_checking = match pick(|s| &s.host_key_checking) {
            Some(value) => self.parse::<HostKeyChecking>(value, "invalid policy"),
            None => Some(HostKeyChecking::AcceptNew),
        };
        let ssh_config = self.local_path(pick(|s| &s.ssh_config));
        let connect_timeout = match pick_int(|s| &s.connect_timeout) {
            Some(value) => self.int_in(value, 1..=3600, "connect_timeout"),
            None => u16::try_from(DEFAULT_CONNECT_TIMEOUT).ok(),
        };
        Some(SshTarget {
            host: host?,
            user: user?,
            port: port?,
            identity_file: identity_file?,
            jump: jump?,
            become_method: become_method?,
            known_hosts: known_hosts?,
            host_key_checking: host_key_checking?,
            ssh_config: ssh_config?,
            connect_timeout: Duration::from_secs(u64::from(connect_timeout?)),
        })
    }

    /// A path on the workstation: `~/` expands to $HOME, relative paths are relative to the
    /// inventory directory.
    fn local_path(&mut self, value: Option<&Spanned<String>>) -> Option<Option<PathBuf>> {
        let Some(value) = value else {
            return Some(None);
        };
        let text = value.value.as_str();
        if text.is_empty() || text.chars().any(char::is_control) {
            let span = self.span(value);
            self.error(
                span,
                "path is empty or contains control characters",
                "invalid path",
            );
            return None;
        }
        if let Some(rest) = text.strip_prefix("~/") {
            let Some(home) = std::env::var_os("HOME") else {
                let span = self.span(value);
                self.error(span, "cannot expand `~`: HOME is not set", "needs HOME");
                return None;
            };
            return Some(Some(PathBuf::from(home).join(rest)));
        }
        let path = Path::new(text);
        Some(Some(if path.is_absolute() {
            path.to_owned()
        } else {
            self.dir.join(path)
        }))
    }
}

/// True when two networks of the same family share an address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(a), IpNet::V4(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        (IpNet::V6(a), IpNet::V6(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

//! `networks:` (mesh-wide preference and per node) and `mesh.topology` with its hubs and
//! sites, checked against the nodes.
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::inventory::spanned::Spanned;

use super::Validator;
use super::mesh::PartialMesh;
use crate::inventory::error::Span;
use crate::inventory::raw::{RawMesh, RawNode};
use crate::inventory::{LabelName, NetworkAddress, Node, NodeName, Site, Topology};

impl Validator<'_> {
    /// `mesh.networks`: the private networks in order of preference, each once.
    pub(super) fn network_preference(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Option<Vec<LabelName>> {
        let Some(raw) = raw else {
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        let mut ok = true;
        for value in &raw.value {
            match self.parse::<LabelName>(value, "invalid network name") {
                Some(name) if out.contains(&name) => {
                    let span = self.span(value);
                    self.error(
                        span,
                        format!("network `{name}` is listed twice"),
                        "listed twice",
                    );
                    ok = false;
                }
                Some(name) => out.push(name),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A node's `networks:`: name → its address there, an IP address outside the mesh
    /// networks (a peer sending to it there must not route it into the tunnel).
    pub(super) fn node_networks(
        &mut self,
        raw: Option<&Spanned<BTreeMap<String, Spanned<String>>>>,
        mesh: &PartialMesh,
    ) -> Option<Vec<NetworkAddress>> {
        let Some(raw) = raw else {
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (name, value) in &raw.value {
            let span = self.span(value);
            let network = match name.parse::<LabelName>() {
                Ok(network) => Some(network),
                Err(message) => {
                    self.error(span, message, "invalid network name");
                    None
                }
            };
            let address = match value.value.parse::<IpAddr>() {
                Ok(address) => {
                    let in_mesh = match address {
                        IpAddr::V4(v4) => mesh.network.is_some_and(|n| n.contains(&v4)),
                        IpAddr::V6(v6) => {
                            matches!(mesh.network6, Some(Some(n)) if n.contains(&v6))
                        }
                    };
                    if in_mesh {
                        self.error(
                            span,
                            format!(
                                "address {address} on network `{name}` lies inside the mesh network; it would loop into the tunnel"
                            ),
                            "inside the mesh network",
                        );
                        None
                    } else {
                        Some(address)
                    }
                }
                Err(_) => {
                    self.problems.push_full(
                        span,
                        format!(
                            "`{}` is not an IP address (the node's address on network `{name}`)",
                            value.value
                        ),
                        "invalid address",
                        Some("write it as `dc1: 10.0.1.5`".into()),
                        None,
                    );
                    None
                }
            };
            match (network, address) {
                (Some(network), Some(address)) => out.push(NetworkAddress { network, address }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `mesh.topology`, `mesh.hubs`, `mesh.sites` and the nodes' `site:`, plus the check
    /// that no two present nodes claim one address on one network. `None` when invalid.
    pub(super) fn topology(
        &mut self,
        raw: &RawMesh,
        nodes: &[Node],
        raw_nodes: &[RawNode],
    ) -> Option<Topology> {
        self.network_addresses_unique(nodes, raw_nodes);
        let hub = match &raw.topology {
            None => false,
            Some(value) => match value.value.as_str() {
                "full" => false,
                "hub" => true,
                other => {
                    let span = self.span(value);
                    self.error(
                        span,
                        format!("topology `{other}` is not one of `full` (the default), `hub`"),
                        "unknown topology",
                    );
                    return None;
                }
            },
        };
        if !hub {
            let mut ok = true;
            for (key, span) in [
                ("hubs", raw.hubs.as_ref().map(|h| self.span(h))),
                ("sites", raw.sites.as_ref().map(|s| self.span(s))),
            ] {
                if let Some(span) = span {
                    self.problems.push_full(
                        span,
                        format!("`mesh.{key}` is only for `topology: hub`"),
                        "without hub topology",
                        Some("add `topology: hub` to `mesh:`".into()),
                        None,
                    );
                    ok = false;
                }
            }
            for node in raw_nodes {
                if let Some(site) = &node.site {
                    let span = self.span(site);
                    self.error(
                        span,
                        format!(
                            "node `{}` has a `site:`, which is only for `topology: hub` with `sites`",
                            node.name.value
                        ),
                        "site without sites",
                    );
                    ok = false;
                }
            }
            return ok.then_some(Topology::Full);
        }
        let sites = match (&raw.hubs, &raw.sites) {
            (Some(hubs), None) => {
                for node in raw_nodes {
                    if let Some(site) = &node.site {
                        let span = self.span(site);
                        self.error(
                            span,
                            "`site:` needs `mesh.sites` (with `mesh.hubs` every node is in one site)",
                            "site without sites",
                        );
                    }
                }
                vec![Site {
                    name: None,
                    hubs: self.hub_list(hubs, None, nodes)?,
                }]
            }
            (None, Some(sites)) => {
                let mut out = Vec::new();
                for (name, site) in &sites.value {
                    let span = self.span(site);
                    let Ok(label) = name.parse::<LabelName>() else {
                        self.error(
                            span,
                            format!("site `{name}` is not a name: [a-z0-9][a-z0-9_-]*"),
                            "invalid site name",
                        );
                        continue;
                    };
                    if let Some(hubs) = self.hub_list(&site.value.hubs, Some(&label), nodes) {
                        if let Some(twice) = hubs
                            .iter()
                            .find(|h| out.iter().any(|s: &Site| s.hubs.contains(h)))
                        {
                            self.error(
                                span,
                                format!("hub `{twice}` is a hub of two sites; a hub has one site"),
                                "hub of two sites",
                            );
                            continue;
                        }
                        out.push(Site {
                            name: Some(label),
                            hubs,
                        });
                    }
                }
                self.nodes_in_sites(&out, nodes, raw_nodes);
                out
            }
            (Some(hubs), Some(_)) => {
                let span = self.span(hubs);
                self.problems.push_full(
                    span,
                    "`mesh.hubs` and `mesh.sites` are both set",
                    "one or the other",
                    Some(
                        "with sites, list each site's hubs under `sites: { eu: { hubs: [...] } }`"
                            .into(),
                    ),
                    None,
                );
                return None;
            }
            (None, None) => {
                let span = raw
                    .topology
                    .as_ref()
                    .map(|t| self.span(t))
                    .unwrap_or_default();
                self.problems.push_full(
                    span,
                    "`topology: hub` needs its hubs",
                    "no hubs",
                    Some(
                        "add `hubs: [node-a]` or `sites: { eu: { hubs: [node-a] } }` to `mesh:`"
                            .into(),
                    ),
                    None,
                );
                return None;
            }
        };
        Some(Topology::Hub(sites))
    }

    /// One hub list: present public nodes, each once, at least one; in a named site the
    /// hub's own `site:` (when given) must be that site.
    fn hub_list(
        &mut self,
        raw: &Spanned<Vec<Spanned<String>>>,
        site: Option<&LabelName>,
        nodes: &[Node],
    ) -> Option<Vec<NodeName>> {
        if raw.value.is_empty() {
            let span = self.span(raw);
            self.error(span, "a hub list needs at least one hub", "empty");
            return None;
        }
        let mut out: Vec<NodeName> = Vec::new();
        let mut ok = true;
        for value in &raw.value {
            let span = self.span(value);
            let problem = match nodes.iter().find(|n| n.name.as_str() == value.value) {
                None => Some((
                    format!("hub `{}` is not a node of this inventory", value.value),
                    None,
                )),
                Some(node) if !node.is_present() => {
                    Some((format!("hub `{}` is marked absent", node.name), None))
                }
                Some(node) if !node.is_public() => Some((
                    format!("hub `{}` has no public endpoint", node.name),
                    Some("a hub must be reachable by its spokes: give it an `endpoint`".to_owned()),
                )),
                Some(node) if out.contains(&node.name) => {
                    Some((format!("hub `{}` is listed twice", node.name), None))
                }
                Some(node) => match (site, node.site.as_ref()) {
                    (Some(site), Some(own)) if own != site => Some((
                        format!("hub `{}` of site `{site}` has `site: {own}`", node.name),
                        None,
                    )),
                    _ => {
                        out.push(node.name.clone());
                        None
                    }
                },
            };
            if let Some((message, help)) = problem {
                self.problems
                    .push_full(span, message, "not a hub", help, None);
                ok = false;
            }
        }
        ok.then_some(out)
    }

    /// With `mesh.sites`, every present node is in exactly one site: its `site:`, or the
    /// site listing it as a hub.
    fn nodes_in_sites(&mut self, sites: &[Site], nodes: &[Node], raw_nodes: &[RawNode]) {
        let raw_of: HashMap<&str, &RawNode> = raw_nodes
            .iter()
            .map(|r| (r.name.value.as_str(), r))
            .collect();
        for node in nodes.iter().filter(|n| n.is_present()) {
            let hub_of = sites.iter().find(|s| s.hubs.contains(&node.name));
            let Some(raw) = raw_of.get(node.name.as_str()) else {
                continue;
            };
            match (&node.site, hub_of) {
                (Some(site), _) if !sites.iter().any(|s| s.name.as_ref() == Some(site)) => {
                    let span = raw
                        .site
                        .as_ref()
                        .map_or_else(Span::default, |s| self.span(s));
                    self.error(
                        span,
                        format!("site `{site}` is not one of `mesh.sites`"),
                        "unknown site",
                    );
                }
                (None, None) => {
                    let span = self.span(&raw.name);
                    self.problems.push_full(
                        span,
                        format!("node `{}` has no `site:`", node.name),
                        "no site",
                        Some("with `mesh.sites` every node names its site".into()),
                        None,
                    );
                }
                _ => {}
            }
        }
    }

    /// No two present nodes have one address on one network.
    fn network_addresses_unique(&mut self, nodes: &[Node], raw_nodes: &[RawNode]) {
        let mut first: HashMap<(&LabelName, IpAddr), &NodeName> = HashMap::new();
        for node in nodes.iter().filter(|n| n.is_present()) {
            for entry in &node.networks {
                if let Some(other) = first.get(&(&entry.network, entry.address)) {
                    let span = raw_nodes
                        .iter()
                        .find(|r| r.name.value == node.name.as_str())
                        .and_then(|r| r.networks.as_ref())
                        .and_then(|m| m.value.get(entry.network.as_str()))
                        .map_or_else(Span::default, |v| self.span(v));
                    self.error(
                        span,
                        format!(
                            "address {} on network `{}` is also node `{other}`'s",
                            entry.address, entry.network
                        ),
                        "duplicate",
                    );
                } else {
                    first.insert((&entry.network, entry.address), &node.name);
                }
            }
        }
    }
}

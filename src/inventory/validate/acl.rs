//! `mesh.firewall` (a mode, or a mapping with the mode, `icmp` and the ACL `rules`) and
//! the nodes' `groups:`. Rules are resolved once nodes and clients are known: every name
//! must be `any`, a node, a client (as a source only) or a group some node carries.
use std::collections::{BTreeSet, HashMap};

use crate::inventory::spanned::Spanned;

use super::Validator;
use super::mesh::PartialMesh;
use crate::inventory::acl::{AclPeer, AclPort, AclRule, GroupName, MeshAcl};
use crate::inventory::error::Span;
use crate::inventory::raw::{RawAclRule, RawFirewall, RawNode};
use crate::inventory::{Client, FirewallMode, Node, NodeName};

impl Validator<'_> {
    /// The firewall mode of `mesh.firewall`, in either form.
    pub(super) fn firewall_mode(
        &mut self,
        raw: Option<&Spanned<RawFirewall>>,
    ) -> Option<FirewallMode> {
        let Some(raw) = raw else {
            return Some(FirewallMode::default());
        };
        match &raw.value {
            RawFirewall::Mode(text) => {
                let span = self.span(raw);
                let source = self
                    .text
                    .get(span.offset..span.offset + span.len)
                    .unwrap_or("")
                    .trim();
                let text = if text.is_empty() { source } else { text };
                match text.parse() {
                    Ok(mode) => Some(mode),
                    Err(message) => {
                        self.error(span, message, "invalid firewall mode");
                        None
                    }
                }
            }
            RawFirewall::Map(map) => match &map.mode {
                Some(value) => self.parse::<FirewallMode>(value, "invalid firewall mode"),
                None => Some(FirewallMode::default()),
            },
        }
    }

    /// A node's `groups:`, each a valid group name, kept once each in file order.
    pub(super) fn groups(&mut self, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<GroupName> {
        let mut out: Vec<GroupName> = Vec::new();
        for value in raw.map(|r| r.value.as_slice()).unwrap_or_default() {
            if let Some(group) = self.parse::<GroupName>(value, "invalid group name")
                && !out.contains(&group)
            {
                out.push(group);
            }
        }
        out
    }

    /// The ACL of `mesh.firewall.rules`, resolved against the nodes and clients.
    /// `Some(None)`: no rules; `None`: a problem was recorded.
    pub(super) fn acl(
        &mut self,
        raw: Option<&Spanned<RawFirewall>>,
        mode: Option<FirewallMode>,
        nodes: &[Node],
        raw_nodes: &[RawNode],
        clients: &[Client],
    ) -> Option<Option<MeshAcl>> {
        let Some(RawFirewall::Map(map)) = raw.map(|r| &r.value) else {
            return Some(None);
        };
        let Some(rules) = &map.rules else {
            return Some(None);
        };
        let rules_span = self.span(rules);
        if rules.value.is_empty() {
            self.problems.push_full(
                rules_span,
                "`rules` is empty",
                "no rules",
                Some("leave `rules` out for no ACL; an ACL needs at least one rule".into()),
                None,
            );
            return None;
        }
        if mode == Some(FirewallMode::None) {
            self.problems.push_full(
                rules_span,
                "firewall rules need `mode: trust`: with `none` meshup leaves firewalls alone, so it cannot enforce an ACL",
                "rules with mode none",
                None,
                None,
            );
            return None;
        }
        let node_names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let client_names: BTreeSet<&str> = clients.iter().map(|c| c.name.as_str()).collect();
        let mut groups: HashMap<String, Span> = HashMap::new();
        let mut members: HashMap<String, BTreeSet<&str>> = HashMap::new();
        for raw_node in raw_nodes {
            for value in raw_node.groups.iter().flat_map(|g| g.value.iter()) {
                let span = self.span(value);
                groups.entry(value.value.clone()).or_insert(span);
                members
                    .entry(value.value.clone())
                    .or_default()
                    .insert(raw_node.name.value.as_str());
            }
        }
        let mut ok = true;
        // A group may share its name with a node only when that node is its one member
        // (`name: db, groups: [db]`): both then stand for the same addresses.
        let mut clash: Vec<(Span, String)> = groups
            .iter()
            .filter(|(g, _)| {
                client_names.contains(g.as_str())
                    || (node_names.contains(g.as_str())
                        && members
                            .get(g.as_str())
                            .is_some_and(|m| m.len() != 1 || !m.contains(g.as_str())))
            })
            .map(|(g, s)| (*s, g.clone()))
            .collect();
        clash.sort_by_key(|(s, _)| s.offset);
        for (span, group) in clash {
            self.error(
                span,
                format!("group `{group}` has the name of a node or client: a rule could not tell them apart"),
                "group named like a node",
            );
            ok = false;
        }
        let mut out = Vec::new();
        for rule in &rules.value {
            let line = self.problems.line_of(self.span(rule).offset);
            if let Some(rule) =
                self.acl_rule(&rule.value, line, &node_names, &client_names, &groups)
            {
                out.push(rule);
            } else {
                ok = false;
            }
        }
        ok.then_some(Some(MeshAcl {
            icmp: map.icmp.unwrap_or(true),
            rules: out,
        }))
    }

    fn acl_rule(
        &mut self,
        raw: &RawAclRule,
        line: usize,
        nodes: &BTreeSet<&str>,
        clients: &BTreeSet<&str>,
        groups: &HashMap<String, Span>,
    ) -> Option<AclRule> {
        let from = self.acl_peer(&raw.from, nodes, clients, groups, true);
        let to = self.acl_peer(&raw.to, nodes, clients, groups, false);
        let mut ports = Vec::new();
        let mut ports_ok = true;
        if raw.ports.value.is_empty() {
            let span = self.span(&raw.ports);
            self.error(
                span,
                "a rule needs at least one port (`5432/tcp`, `53/udp`, `icmp`)",
                "no ports",
            );
            ports_ok = false;
        }
        for value in &raw.ports.value {
            match self.parse::<AclPort>(value, "invalid port") {
                Some(port) if !ports.contains(&port) => ports.push(port),
                Some(_) => {}
                None => ports_ok = false,
            }
        }
        Some(AclRule {
            from: from?,
            to: to?,
            ports: ports_ok.then_some(ports)?,
            line,
        })
    }

    fn acl_peer(
        &mut self,
        value: &Spanned<String>,
        nodes: &BTreeSet<&str>,
        clients: &BTreeSet<&str>,
        groups: &HashMap<String, Span>,
        source: bool,
    ) -> Option<AclPeer> {
        let text = value.value.as_str();
        let span = self.span(value);
        if text == "any" {
            return Some(AclPeer::Any);
        }
        if nodes.contains(text) || (source && clients.contains(text)) {
            return text.parse::<NodeName>().ok().map(AclPeer::Node);
        }
        if clients.contains(text) {
            self.problems.push_full(
                span,
                format!("`{text}` is a client: meshup does not manage its firewall, so it cannot be a rule's `to`"),
                "client as destination",
                Some("clients may be a rule's `from`".into()),
                None,
            );
            return None;
        }
        if groups.contains_key(text) {
            return text.parse::<GroupName>().ok().map(AclPeer::Group);
        }
        let mut known: Vec<&str> = groups.keys().map(String::as_str).collect();
        known.sort_unstable();
        self.problems.push_full(
            span,
            format!(
                "`{text}` is neither `any`, a node, {}nor a group of any node",
                if source { "a client " } else { "" }
            ),
            "unknown group or node",
            Some(if known.is_empty() {
                "no node has `groups:` yet".to_string()
            } else {
                format!("groups: {}", known.join(", "))
            }),
            None,
        );
        None
    }

    /// A node meshup reaches over SSH at a mesh address must keep its SSH port open in
    /// the ACL: with no rule letting that port in, the next connection would be dropped
    /// (the one open survives as established traffic), so it is an error here.
    pub(super) fn ssh_over_the_mesh(
        &mut self,
        acl: &MeshAcl,
        mesh: &PartialMesh,
        nodes: &[Node],
        raw_nodes: &[RawNode],
    ) {
        for node in nodes.iter().filter(|n| n.is_present()) {
            let Ok(ip) = node.ssh.host.as_str().parse::<std::net::IpAddr>() else {
                continue;
            };
            let in_mesh = match ip {
                std::net::IpAddr::V4(a) => mesh.network.is_some_and(|n| n.contains(&a)),
                std::net::IpAddr::V6(a) => {
                    matches!(mesh.network6, Some(Some(n)) if n.contains(&a))
                }
            };
            let port = node.ssh.port;
            let open = acl.rules.iter().any(|r| {
                let to_node = match &r.to {
                    AclPeer::Any => true,
                    AclPeer::Group(g) => node.groups.contains(g),
                    AclPeer::Node(n) => *n == node.name,
                };
                to_node && r.ports.iter().any(|p| p.admits_tcp(port))
            });
            if in_mesh && !open {
                let Some(raw) = raw_nodes
                    .iter()
                    .find(|r| r.name.value == node.name.as_str())
                else {
                    continue;
                };
                let span = self.span(&raw.name);
                self.problems.push_full(
                    span,
                    format!(
                        "meshup reaches {} over SSH at its mesh address {ip}, but no rule of mesh.firewall.rules lets {port}/tcp in: the ACL would lock meshup out",
                        node.name
                    ),
                    "SSH over the mesh",
                    Some(format!(
                        "add a rule such as `{{ from: any, to: {}, ports: [{port}/tcp] }}` (or a narrower `from`)",
                        node.name
                    )),
                    None,
                );
            }
        }
    }
}

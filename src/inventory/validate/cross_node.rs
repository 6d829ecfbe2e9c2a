//! Checks across nodes: values that must be unique or disjoint, endpoints outside
//! routed subnets, relays and NAT reachability.
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::inventory::spanned::Spanned;
use ipnet::IpNet;

use super::Validator;
use crate::inventory::error::Span;
use crate::inventory::names::EndpointHost;
use crate::inventory::raw::RawNode;
use crate::inventory::{Node, Underlay};

/// A value seen in one node, kept for duplicate and overlap checks.
pub(super) struct Seen<T> {
    pub(super) value: T,
    pub(super) node: usize,
    pub(super) span: Span,
}

/// Where a node records values that must be unique or disjoint across nodes.
pub(super) struct SeenValues<'a> {
    pub(super) index: usize,
    pub(super) addresses4: &'a mut Vec<Seen<Ipv4Addr>>,
    pub(super) addresses6: &'a mut Vec<Seen<Ipv6Addr>>,
    pub(super) subnets: &'a mut Vec<Seen<IpNet>>,
}

impl Validator<'_> {
    pub(super) fn duplicates<T: Eq + Hash + Copy + std::fmt::Display>(
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

    pub(super) fn overlapping_subnets(&mut self, subnets: &[Seen<IpNet>], raw: &[RawNode]) {
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
    pub(super) fn endpoints_outside_subnets(
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

    pub(super) fn relays_and_nat(
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
}

impl Validator<'_> {
    /// Pairs whose underlays share no family (an IPv4-only and an IPv6-only node) peer
    /// through a relay with both; without such a node, or with an explicit `relay` that
    /// lacks a family the node's unreachable peers need, the mesh cannot be built.
    pub(super) fn underlay_families(
        &mut self,
        nodes: &[Option<Node>],
        relays: &[(usize, Spanned<String>)],
        spans: &[Span],
    ) {
        let present: Vec<(usize, &Node)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().filter(|n| n.is_present()).map(|n| (i, n)))
            .collect();
        let relay_exists = present
            .iter()
            .any(|(_, n)| n.is_public() && n.underlay() == Underlay::DUAL);
        if !relay_exists {
            for (i, b) in &present {
                let Some((_, a)) = present
                    .iter()
                    .take_while(|(j, _)| j < i)
                    .find(|(_, a)| !a.underlay().meets(b.underlay()))
                else {
                    continue;
                };
                let Some(span) = spans.get(*i) else { continue };
                self.problems.push_full(
                    *span,
                    format!(
                        "nodes `{}` ({}) and `{}` ({}) share no underlay address family and no node has both to relay between them",
                        a.name,
                        a.underlay(),
                        b.name,
                        b.underlay()
                    ),
                    "no common address family",
                    Some("give one public node an IPv4 `endpoint` and an IPv6 `endpoint6` (or a DNS name with A and AAAA records)".into()),
                    None,
                );
            }
        }
        let v6_only = present
            .iter()
            .find(|(_, n)| !n.underlay().v4)
            .map(|(_, n)| &n.name);
        for (index, value) in relays {
            let (Some(node), Some(v6_only)) = (nodes.get(*index).and_then(Option::as_ref), v6_only)
            else {
                continue;
            };
            let Some(relay) = node
                .relay
                .as_ref()
                .and_then(|r| nodes.iter().flatten().find(|n| &n.name == r))
            else {
                continue;
            };
            if relay.is_public() && !relay.underlay().v6 {
                let span = self.span(value);
                self.problems.push_full(
                    span,
                    format!(
                        "relay `{}` has no IPv6 endpoint, but node `{v6_only}` is reached only over IPv6",
                        relay.name
                    ),
                    "relay without IPv6",
                    Some("pick a relay with both an IPv4 `endpoint` and an IPv6 `endpoint6`".into()),
                    None,
                );
            }
        }
    }
}

/// True when two networks of the same family share an address.
pub(super) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(a), IpNet::V4(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        (IpNet::V6(a), IpNet::V6(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

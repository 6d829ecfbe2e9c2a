//! `clients:`: unmanaged peers. Each has a name unique among nodes and clients, exactly
//! one of `public_key` and `generate: true`, the public nodes it goes `via`, and an
//! optional explicit address that no node or other client uses.
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::inventory::spanned::Spanned;

use super::Validator;
use super::mesh::PartialMesh;
use crate::inventory::error::Span;
use crate::inventory::names::NodeName;
use crate::inventory::raw::{RawClient, RawNode};
use crate::inventory::{Client, ClientKey, Node};
use crate::keys::PublicKey;

impl Validator<'_> {
    pub(super) fn clients(
        &mut self,
        raw: Option<&Spanned<Vec<RawClient>>>,
        mesh: &PartialMesh,
        nodes: &[Node],
        raw_nodes: &[RawNode],
    ) -> Vec<Client> {
        let Some(raw) = raw else {
            return Vec::new();
        };
        // Names and explicit addresses already taken by present nodes, with their spans.
        let mut names: HashMap<String, (Span, &'static str)> = HashMap::new();
        let mut taken4: HashMap<Ipv4Addr, Span> = HashMap::new();
        let mut taken6: HashMap<Ipv6Addr, Span> = HashMap::new();
        for raw_node in raw_nodes {
            let span = self.span(&raw_node.name);
            names
                .entry(raw_node.name.value.clone())
                .or_insert((span, "node"));
            let absent = raw_node.state.as_ref().is_some_and(|s| s.value == "absent");
            if absent {
                continue;
            }
            if let Some(value) = &raw_node.address
                && let Ok(address) = value.value.parse::<Ipv4Addr>()
            {
                let span = self.span(value);
                taken4.entry(address).or_insert(span);
            }
            if let Some(value) = &raw_node.address6
                && let Ok(address) = value.value.parse::<Ipv6Addr>()
            {
                let span = self.span(value);
                taken6.entry(address).or_insert(span);
            }
        }
        let mut clients = Vec::new();
        for raw_client in &raw.value {
            let name_span = self.span(&raw_client.name);
            let name = self.parse::<NodeName>(&raw_client.name, "invalid client name");
            if let Some(name) = &name {
                match names.get(name.as_str()) {
                    Some((first, what)) => {
                        let line = self.problems.line_of(first.offset);
                        self.problems.push_full(
                            name_span,
                            format!(
                                "client name `{name}` is already used by a {what} (line {line})"
                            ),
                            "duplicate",
                            Some("names are unique among nodes and clients".into()),
                            Some((*first, "first defined here".into())),
                        );
                    }
                    None => {
                        names.insert(name.to_string(), (name_span, "client"));
                    }
                }
            }
            let key = self.client_key(raw_client, name_span);
            let via = self.client_via(raw_client, name_span, nodes);
            let address = match &raw_client.address {
                Some(value) => {
                    let address = self.address4(value, mesh.network);
                    if let Some(address) = address {
                        let span = self.span(value);
                        self.unique(&mut taken4, address, span, "address");
                    }
                    address.map(Some)
                }
                None => Some(None),
            };
            let address6 = match &raw_client.address6 {
                Some(value) => {
                    let address = self.address6(value, mesh);
                    if let Some(address) = address {
                        let span = self.span(value);
                        self.unique(&mut taken6, address, span, "address6");
                    }
                    address.map(Some)
                }
                None => Some(None),
            };
            let line = self.problems.line_of(name_span.offset);
            if let (Some(name), Some(key), Some(via), Some(address), Some(address6)) =
                (name, key, via, address, address6)
            {
                clients.push(Client {
                    name,
                    address,
                    address6,
                    key,
                    via,
                    line,
                });
            }
        }
        if let Some(network) = mesh.network {
            let present = nodes.iter().filter(|n| n.is_present()).count();
            let wanted = present + raw.value.len();
            let capacity = (1u64 << (32 - network.prefix_len())).saturating_sub(2);
            if wanted as u64 > capacity && present as u64 <= capacity {
                let span = self.span(raw);
                self.error(
                    span,
                    format!(
                        "mesh network `{network}` has {capacity} host addresses for {present} nodes and {} clients",
                        raw.value.len()
                    ),
                    "too many clients for the mesh network",
                );
            }
        }
        clients
    }

    /// Exactly one of `public_key` (validated: base64 of 32 bytes) and `generate: true`.
    fn client_key(&mut self, raw: &RawClient, name_span: Span) -> Option<ClientKey> {
        let generate = raw.generate.as_ref().filter(|g| g.value);
        match (&raw.public_key, generate) {
            (Some(key), None) => match key.value.parse::<PublicKey>() {
                Ok(key) => Some(ClientKey::Given(key)),
                Err(e) => {
                    let span = self.span(key);
                    self.problems.push_full(
                        span,
                        format!("invalid client public key: {e}"),
                        "invalid public key",
                        Some("the client's `wg pubkey` output: 44 characters of base64".into()),
                        None,
                    );
                    None
                }
            },
            (None, Some(_)) => Some(ClientKey::Generated),
            (Some(key), Some(generate)) => {
                let span = self.span(generate);
                let key_span = self.span(key);
                self.problems.push_full(
                    span,
                    "a client has either `public_key` or `generate: true`, not both",
                    "remove one of the two",
                    None,
                    Some((key_span, "public key given here".into())),
                );
                None
            }
            (None, None) => {
                self.problems.push_full(
                    name_span,
                    "a client needs `public_key` (recommended) or `generate: true`",
                    "no key for this client",
                    Some(
                        "run `wg genkey | tee private.key | wg pubkey` on the device and give the public key; `generate: true` makes the key pair on this workstation instead".into(),
                    ),
                    None,
                );
                None
            }
        }
    }

    /// `via`: at least one node, each a present node with a public endpoint, no repeats.
    fn client_via(
        &mut self,
        raw: &RawClient,
        name_span: Span,
        nodes: &[Node],
    ) -> Option<Vec<NodeName>> {
        let Some(list) = &raw.via else {
            self.problems.push_full(
                name_span,
                "a client needs `via`: the public nodes it connects to",
                "no `via`",
                Some("e.g. `via: [node-a]`".into()),
                None,
            );
            return None;
        };
        if list.value.is_empty() {
            let span = self.span(list);
            self.error(span, "`via` is empty", "name at least one public node");
            return None;
        }
        let mut via: Vec<NodeName> = Vec::new();
        let mut ok = true;
        for value in &list.value {
            let span = self.span(value);
            let Some(name) = self.parse::<NodeName>(value, "invalid node name") else {
                ok = false;
                continue;
            };
            let problem = match nodes.iter().find(|n| n.name == name) {
                None => Some((
                    format!("via `{name}` is not a node of this inventory"),
                    "unknown node",
                )),
                Some(node) if !node.is_present() => {
                    Some((format!("via `{name}` is marked absent"), "absent node"))
                }
                Some(node) if !node.is_public() => Some((
                    format!(
                        "via `{name}` has no public endpoint; a client can only connect to public nodes"
                    ),
                    "not a public node",
                )),
                Some(_) if via.contains(&name) => {
                    Some((format!("via `{name}` is listed twice"), "repeated"))
                }
                Some(_) => None,
            };
            match problem {
                Some((message, label)) => {
                    self.error(span, message, label);
                    ok = false;
                }
                None => via.push(name),
            }
        }
        ok.then_some(via)
    }

    /// Records a duplicate explicit address against the node or client that has it first.
    fn unique<T: Eq + std::hash::Hash + Copy + std::fmt::Display>(
        &mut self,
        taken: &mut HashMap<T, Span>,
        value: T,
        span: Span,
        what: &str,
    ) {
        match taken.get(&value) {
            Some(first) => {
                let line = self.problems.line_of(first.offset);
                self.problems.push_full(
                    span,
                    format!("duplicate {what} {value} (also used on line {line})"),
                    "duplicate",
                    None,
                    Some((*first, "first used here".into())),
                );
            }
            None => {
                taken.insert(value, span);
            }
        }
    }
}

//! `exit_node` and `exit_via`: a node's exit is a present node marked `exit_node: true`,
//! never the node itself.
use super::Validator;
use super::mesh::PartialMesh;
use crate::inventory::Node;
use crate::inventory::error::Span;
use crate::inventory::names::NodeName;
use crate::inventory::raw::RawNode;

impl Validator<'_> {
    /// A node's effective exit: its own `exit_via`, else the mesh's, unless that is the
    /// node itself (the exit does not go through itself). `None` (outer): invalid name.
    pub(super) fn own_exit_via(
        &mut self,
        raw: &RawNode,
        mesh: &PartialMesh,
        name: Option<&NodeName>,
    ) -> Option<Option<NodeName>> {
        match &raw.exit_via {
            Some(value) => self.parse::<NodeName>(value, "invalid node name").map(Some),
            None => {
                let default = mesh.exit_via.clone().flatten();
                Some(default.filter(|exit| Some(exit) != name))
            }
        }
    }

    /// Each `exit_via` (a node's, the mesh's) names a present node with `exit_node: true`
    /// other than the node itself.
    pub(super) fn exits(&mut self, nodes: &[Option<Node>], raw: &[RawNode], mesh: &PartialMesh) {
        let mut named: Vec<(Span, NodeName, Option<NodeName>)> = Vec::new();
        if let (Some(span), Some(Some(exit))) = (mesh.exit_via_span, &mesh.exit_via) {
            named.push((span, exit.clone(), None));
        }
        for (node, raw_node) in nodes.iter().zip(raw) {
            let (Some(node), Some(value)) = (node, &raw_node.exit_via) else {
                continue;
            };
            if let Some(exit) = &node.exit_via {
                named.push((self.span(value), exit.clone(), Some(node.name.clone())));
            }
        }
        for (span, exit, from) in named {
            let target = nodes.iter().flatten().find(|n| n.name == exit);
            match target {
                None => self.error(
                    span,
                    format!("exit `{exit}` is not a node of this inventory"),
                    "unknown node",
                ),
                Some(_) if from.as_ref() == Some(&exit) => self.error(
                    span,
                    format!("node `{exit}` cannot be its own exit"),
                    "self exit",
                ),
                Some(t) if !t.is_present() => self.error(
                    span,
                    format!("exit `{exit}` is marked absent"),
                    "absent node",
                ),
                Some(t) if !t.exit_node => self.problems.push_full(
                    span,
                    format!("node `{exit}` is not an exit node"),
                    "not an exit node",
                    Some(
                        "mark it `exit_node: true` to let it carry other nodes' internet traffic"
                            .to_string(),
                    ),
                    None,
                ),
                Some(t) if !t.is_public() => {
                    let nat_users: Vec<&str> = nodes
                        .iter()
                        .flatten()
                        .filter(|n| {
                            n.is_present()
                                && !n.is_public()
                                && n.name != t.name
                                && n.exit_via.as_ref() == Some(&t.name)
                                && from.as_ref().is_none_or(|f| *f == n.name)
                        })
                        .map(|n| n.name.as_str())
                        .collect();
                    if !nat_users.is_empty() {
                        self.problems.push_full(
                            span,
                            format!(
                                "exit `{exit}` is behind NAT, like {}: two NAT nodes are not peers",
                                nat_users.join(", ")
                            ),
                            "not a public node",
                            Some("an exit for nodes behind NAT needs an `endpoint`".to_string()),
                            None,
                        );
                    }
                }
                Some(_) => {}
            }
        }
    }
}

//! Pairs that talk over a private network both nodes sit on (`networks:`), with the
//! endpoints each side uses and why that network: what `check`, `plan` and `verify`
//! show per pair. Pure.
use std::fmt::Write as _;

use serde::Serialize;

use crate::inventory::NodeName;
use crate::topology::{Mesh, NodeSpec};

/// One pair (`a` < `b`) peering over a private network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkPath {
    /// First node (name order).
    pub a: NodeName,
    /// Second node.
    pub b: NodeName,
    /// The network the pair uses.
    pub network: String,
    /// The endpoint `a` uses for `b` (`b`'s address on the network).
    pub a_to_b: String,
    /// The endpoint `b` uses for `a`.
    pub b_to_a: String,
    /// Why this network, in words.
    pub why: String,
}

impl NetworkPath {
    /// One line: "db-1 ↔ db-2: network dc1 (10.0.1.6:51820 / 10.0.1.5:51820): why".
    pub fn line(&self) -> String {
        let mut out = format!(
            "{} ↔ {}: network {} ({} / {})",
            self.a, self.b, self.network, self.a_to_b, self.b_to_a
        );
        let _ = write!(out, ": {}", self.why);
        out
    }
}

/// The pair of `a` and `b` when they peer over a private network.
pub fn network_path(mesh: &Mesh, a: &NodeSpec, b: &NodeSpec) -> Option<NetworkPath> {
    if !mesh.is_peer(a, b) {
        return None;
    }
    let (a, b) = if a.name <= b.name { (a, b) } else { (b, a) };
    let on = mesh.shared_network(a, b)?;
    let shared: Vec<&str> = b
        .networks
        .iter()
        .filter(|theirs| a.networks.iter().any(|mine| mine.network == theirs.network))
        .map(|n| n.network.as_str())
        .collect();
    let listed = mesh.settings.networks.contains(&on.network);
    let why = match (shared.len(), listed) {
        (1, _) => format!("both sit on {}", on.network),
        (_, true) => format!(
            "both sit on {}; {} comes first in mesh.networks",
            shared.join(", "),
            on.network
        ),
        (_, false) => format!(
            "both sit on {}; none is in mesh.networks, {} is first by name",
            shared.join(", "),
            on.network
        ),
    };
    Some(NetworkPath {
        a: a.name.clone(),
        b: b.name.clone(),
        network: on.network.to_string(),
        a_to_b: mesh.endpoint(a, b).unwrap_or_default(),
        b_to_a: mesh.endpoint(b, a).unwrap_or_default(),
        why,
    })
}

/// Every pair of the mesh peering over a private network, in name order. Walks only
/// the nodes that sit on one, so a mesh without `networks:` costs nothing.
pub fn network_paths(mesh: &Mesh) -> Vec<NetworkPath> {
    let on: Vec<&NodeSpec> = mesh
        .nodes
        .iter()
        .filter(|n| !n.networks.is_empty())
        .collect();
    let mut out = Vec::new();
    for (i, a) in on.iter().enumerate() {
        for b in &on[i + 1..] {
            out.extend(network_path(mesh, a, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{AddressLock, allocate};
    use crate::inventory::Inventory;

    fn mesh(text: &str) -> Mesh {
        let inventory = Inventory::from_str(text, "t.yaml").expect("valid");
        let (allocation, _) = allocate(&inventory, &AddressLock::default()).expect("allocate");
        Mesh::build(&inventory, &allocation)
    }

    #[test]
    fn a_pair_uses_the_preferred_network_it_shares_and_says_why() {
        let nodes = "nodes:
  - name: a
    endpoint: 203.0.113.1
    networks: { dc1: 10.0.1.5, vpc: 172.16.0.5 }
  - name: b
    endpoint: 203.0.113.2
    networks: { dc1: 10.0.1.6, vpc: 172.16.0.6 }
  - name: c
    endpoint: 203.0.113.3
    networks: { vpc: 172.16.0.7 }
  - name: d
    endpoint: 203.0.113.4
";
        for (preference, want) in [
            (
                "",
                vec![
                    "a ↔ b: network dc1 (10.0.1.6:51820 / 10.0.1.5:51820): both sit on dc1, vpc; none is in mesh.networks, dc1 is first by name",
                    "a ↔ c: network vpc (172.16.0.7:51820 / 172.16.0.5:51820): both sit on vpc",
                    "b ↔ c: network vpc (172.16.0.7:51820 / 172.16.0.6:51820): both sit on vpc",
                ],
            ),
            (
                "  networks: [vpc, dc1]\n",
                vec![
                    "a ↔ b: network vpc (172.16.0.6:51820 / 172.16.0.5:51820): both sit on dc1, vpc; vpc comes first in mesh.networks",
                    "a ↔ c: network vpc (172.16.0.7:51820 / 172.16.0.5:51820): both sit on vpc",
                    "b ↔ c: network vpc (172.16.0.7:51820 / 172.16.0.6:51820): both sit on vpc",
                ],
            ),
        ] {
            let m = mesh(&format!(
                "mesh:\n  network: 10.10.0.0/24\n{preference}{nodes}"
            ));
            let lines: Vec<String> = network_paths(&m).iter().map(NetworkPath::line).collect();
            assert_eq!(lines, want, "{preference}");
            // d shares nothing: everyone uses its public endpoint and it theirs.
            let d = m.node(&"d".parse().expect("name")).expect("d");
            for peer in m.peers(d) {
                let spec = m.node(&peer.name).expect("peer");
                assert_eq!(peer.endpoint, spec.endpoint, "{}", peer.name);
            }
        }
    }

    #[test]
    fn nat_nodes_on_one_network_peer_directly_and_leave_the_relay() {
        let m = mesh(
            "mesh:\n  network: 10.10.0.0/24\nnodes:
  - name: pub
    endpoint: 203.0.113.1
  - name: n1
    networks: { office: 192.168.1.10 }
  - name: n2
    networks: { office: 192.168.1.11 }
  - name: n3
",
        );
        let node = |n: &str| m.node(&n.parse().expect("name")).expect("node");
        let names = |n: &str| -> Vec<String> {
            m.peers(node(n))
                .iter()
                .map(|p| p.name.to_string())
                .collect()
        };
        assert_eq!(names("n1"), ["n2", "pub"]);
        assert_eq!(names("n3"), ["pub"]);
        let n1 = m.peers(node("n1"));
        assert_eq!(n1[0].endpoint.as_deref(), Some("192.168.1.11:51820"));
        assert_eq!(n1[0].persistent_keepalive, None);
        // n1's relay entry carries n3 only; n3's carries both.
        let relay_ips = |n: &str| {
            m.peers(node(n))
                .iter()
                .find(|p| p.name.as_str() == "pub")
                .map(|p| p.allowed_ips.len())
        };
        assert_eq!(relay_ips("n1"), Some(2));
        assert_eq!(relay_ips("n3"), Some(3));
        // pub–n1, pub–n2, pub–n3 and n1–n2.
        assert_eq!(m.tunnel_count(), 4);
    }
}

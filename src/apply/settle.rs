//! The end of apply (DESIGN rule 13, "converged means it carries traffic, now"): every
//! pair that a run brought up or changed gets its first handshake before apply returns,
//! started from ONE side. When both hosts of a pair send their first packet at the same
//! instant (as the first `verify` after an apply does, every host pinging every peer),
//! both handshakes can fail and WireGuard retries only after 5 s (REKEY_TIMEOUT): the
//! user's first verify then waited those retries out. Here each pair is warmed from the
//! side that has an endpoint for the other (the NAT node towards a public node; the
//! lower name between two public nodes or a punched pair), all pairs at once.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use std::time::Duration;

use crate::fanout;
use crate::host_error::HostError;
use crate::inventory::NodeName;
use crate::scripts::Values;
use crate::session::{Gathered, Session};
use crate::topology::{Mesh, NodeSpec};
use crate::ui::{self, HostOutcome, Recap};

/// How long the hosts wait for their pairs' first replies: a handshake lost to a peer
/// that was not ready yet is retried by WireGuard after 5 s.
pub const SETTLE_DEADLINE_SECS: u32 = 8;

/// Which peers each host pings, by host: the pairs with a host in `changed` (whose
/// interface the run started or changed), both of whose hosts are `up`, from the pair's
/// initiating side, with the peer's mesh address. Relayed NAT pairs have no session of
/// their own (their traffic rides on each node's session with the relay): not warmed.
pub fn initiators(
    mesh: &Mesh,
    changed: &BTreeSet<NodeName>,
    up: &dyn Fn(&NodeName) -> bool,
) -> BTreeMap<NodeName, Vec<(NodeName, IpAddr)>> {
    let mut out: BTreeMap<NodeName, Vec<(NodeName, IpAddr)>> = BTreeMap::new();
    let reaches = |from: &NodeSpec, to: &NodeSpec| mesh.endpoint(from, to).is_some();
    for (i, a) in mesh.nodes.iter().enumerate() {
        for b in &mesh.nodes[i + 1..] {
            if !(changed.contains(&a.name) || changed.contains(&b.name))
                || !up(&a.name)
                || !up(&b.name)
                || !mesh.is_peer(a, b)
            {
                continue;
            }
            // `a` comes first in the mesh's order: it starts when both can reach each
            // other, else the one that can.
            let (from, to) = match (reaches(a, b), reaches(b, a)) {
                (true, _) => (a, b),
                (false, true) => (b, a),
                (false, false) => continue,
            };
            out.entry(from.name.clone())
                .or_default()
                .push((to.name.clone(), IpAddr::V4(to.address)));
        }
    }
    out
}

/// The first handshake of every pair this run brought up or changed, each started from
/// one side (see the module); a pair that gets none within the deadline is named. Hosts
/// in `flipped` switched at the agreed instant and saw their new sessions' handshakes
/// there: their pairs need no other.
pub(super) fn first_handshakes(
    session: &Session,
    mesh: &crate::topology::Mesh,
    gathered: &Gathered,
    recap: &Recap,
    flipped: &BTreeSet<NodeName>,
) {
    let changed: BTreeSet<NodeName> = recap
        .outcomes
        .iter()
        .filter(|(n, o)| matches!(o, HostOutcome::Changed(_)) && !flipped.contains(*n))
        .map(|(n, _)| n.clone())
        .collect();
    if changed.is_empty() {
        return;
    }
    let up = |n: &NodeName| match recap.outcomes.get(n) {
        Some(HostOutcome::Changed(_)) => true,
        Some(HostOutcome::Ok) => {
            matches!(gathered.facts.get(n), Some(Ok(f)) if f.interface_up())
        }
        _ => false,
    };
    let plan = initiators(mesh, &changed, &up);
    let hosts: Vec<(&NodeName, &Vec<(NodeName, std::net::IpAddr)>)> = plan
        .iter()
        .filter(|(n, _)| gathered.sessions.contains_key(*n))
        .collect();
    let deadline = SETTLE_DEADLINE_SECS.to_string();
    let results = session.block_on(fanout::run(
        hosts,
        session.parallel.max(plan.len()),
        |(node, peers)| {
            let ssh = gathered.sessions.get(node).cloned();
            let deadline = &deadline;
            async move {
                let ssh = ssh.ok_or(HostError::NotConnected)?;
                let addresses: Vec<String> = peers.iter().map(|(_, a)| a.to_string()).collect();
                let script = Values::new()
                    .set("MU_IF", session.mesh.settings.interface.as_str())
                    .set("MU_WARM", &addresses.join(" "))
                    .set("MU_WARM_DEADLINE", deadline)
                    .before(crate::scripts::SETTLE);
                let out = ssh
                    .exec(
                        "sh -s",
                        script.as_bytes(),
                        Duration::from_secs(u64::from(SETTLE_DEADLINE_SECS) + 30),
                    )
                    .await?;
                Ok::<_, HostError>(crate::scripts::output::markers(&out.stdout_str()))
            }
        },
    ));
    if ui::console::quiet() {
        return;
    }
    let mut renewed = Vec::new();
    for ((node, peers), result) in results {
        let name = |value: &str| {
            peers
                .iter()
                .find(|(_, a)| a.to_string() == value)
                .map_or(value.to_string(), |(n, _)| n.to_string())
        };
        match result {
            Ok(markers) => {
                for m in &markers {
                    match m.kind.as_str() {
                        "unsettled" => println!(
                            "warning: {node} → {}: no handshake within {} s of the end of apply; `meshup verify` says why",
                            name(&m.value),
                            SETTLE_DEADLINE_SECS
                        ),
                        "renewed" => renewed.push(format!("{node} → {}", name(&m.value))),
                        _ => {}
                    }
                }
            }
            Err(e) => println!("warning: {node}: the first handshakes were not started: {e}"),
        }
    }
    if !renewed.is_empty() {
        println!(
            "first handshakes: {} pair(s) without an answer after 2 s got a fresh session (the first side's entry re-created): {}",
            renewed.len(),
            renewed.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{AddressLock, allocate};
    use crate::inventory::Inventory;

    fn mesh(nodes: &str) -> Mesh {
        let text =
            format!("mesh: {{ network: 10.10.0.0/24, nat_punching: false }}\nnodes:\n{nodes}");
        let inventory = Inventory::from_str(&text, "inventory.yaml").expect("valid");
        let (allocation, _) = allocate(&inventory, &AddressLock::default()).expect("addresses");
        Mesh::build(&inventory, &allocation)
    }

    fn names(map: &BTreeMap<NodeName, Vec<(NodeName, IpAddr)>>) -> Vec<String> {
        map.iter()
            .flat_map(|(from, to)| to.iter().map(move |(n, _)| format!("{from}->{n}")))
            .collect()
    }

    #[test]
    fn each_pair_is_warmed_from_one_side_only() {
        let mesh = mesh(
            "  - { name: pub-1, endpoint: 203.0.113.1 }\n  - { name: pub-2, endpoint: 203.0.113.2 }\n  - { name: nat-1 }\n  - { name: nat-2 }\n",
        );
        let all: BTreeSet<NodeName> = mesh.nodes.iter().map(|n| n.name.clone()).collect();
        let every = initiators(&mesh, &all, &|_| true);
        // Public pairs from the first in order, NAT nodes towards the public ones; the two
        // NAT nodes are relayed (no pair of their own).
        assert_eq!(
            names(&every),
            [
                "nat-1->pub-1",
                "nat-1->pub-2",
                "nat-2->pub-1",
                "nat-2->pub-2",
                "pub-1->pub-2"
            ]
        );
        let pub2: BTreeSet<NodeName> = all
            .iter()
            .filter(|n| n.as_str() == "pub-2")
            .cloned()
            .collect();
        assert_eq!(
            names(&initiators(&mesh, &pub2, &|_| true)),
            ["nat-1->pub-2", "nat-2->pub-2", "pub-1->pub-2"],
            "only the pairs of what changed"
        );
        let down = |n: &NodeName| n.as_str() != "nat-1";
        assert_eq!(
            names(&initiators(&mesh, &pub2, &down)),
            ["nat-2->pub-2", "pub-1->pub-2"],
            "not towards a host that is not up"
        );
        assert!(initiators(&mesh, &BTreeSet::new(), &|_| true).is_empty());
    }
}

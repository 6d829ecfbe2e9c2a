//! From meshup's own model to what `verify` checks: the topology becomes an
//! [`Expectation`], each host's gathered facts become [`FirewallEvidence`], and the keys
//! the hosts reported fill in the expected public keys. Pure.
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::facts::{FirewallFacts, HostFacts, WgDump, port_in_spec};
use crate::inventory::Inventory;
use crate::keys::PublicKey;
use crate::playbook::{FirewallKind, MeshMarks, Playbooks};
use crate::topology::{Mesh, Role};

use super::diagnosis::Diagnosis;
use super::error::VerifyError;
use super::expectation::{
    Expectation, ExpectedNode, ExpectedPeer, FirewallEvidence, NodeName, PortState,
};
use super::probe::NodeProbe;

/// WireGuard's MTU when the inventory sets none (wg-quick's value on a 1500 underlay).
pub const DEFAULT_MTU: u16 = 1420;

/// The expectation for `mesh` (present nodes, name order). Public keys are left unknown:
/// they come from the hosts themselves, see [`fill_keys`].
/// The peer entries `spec` should carry in `mesh` (keys filled in later).
pub(super) fn expected_peers(mesh: &Mesh, spec: &crate::topology::NodeSpec) -> Vec<ExpectedPeer> {
    mesh.peers(spec)
        .iter()
        .map(|p| ExpectedPeer {
            name: p.name.clone(),
            public_key: None,
            allowed_ips: p.allowed_ips.clone(),
            endpoint: p.endpoint.clone(),
            keepalive: p.persistent_keepalive,
            network: mesh
                .node(&p.name)
                .and_then(|peer| mesh.shared_network(spec, peer))
                .map(|on| on.network.to_string()),
        })
        .collect()
}

pub fn expectation(inventory: &Inventory, mesh: &Mesh) -> Result<Expectation, VerifyError> {
    let interface = mesh.settings.interface.clone();
    let mut nodes = Vec::with_capacity(mesh.nodes.len());
    for spec in &mesh.nodes {
        let probe = inventory.node(&spec.name).and_then(|n| n.probe);
        let peers = expected_peers(mesh, spec);
        nodes.push(ExpectedNode {
            name: spec.name.clone(),
            address: IpAddr::V4(spec.address),
            address6: spec.address6.map(IpAddr::V6),
            nat: spec.role == Role::Nat,
            relay_role: !spec.relay_for.is_empty(),
            hub: spec.hub,
            subnet_router: !spec.subnets.is_empty(),
            probe,
            mtu: spec.mtu.unwrap_or(DEFAULT_MTU),
            listen_port: spec.listen_port,
            public_key: None,
            peers,
            acl: crate::acl::host_acl(mesh, spec),
        });
    }
    Expectation::new(interface, nodes)
}

/// The keys one host reported in its probe run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostKeys {
    /// The key the interface runs (`wg show` dump), validated.
    pub live: Option<PublicKey>,
    /// The key derived on the host from `private.key` (meshup's record of the node).
    pub derived: Option<PublicKey>,
}

impl HostKeys {
    /// Reads both keys from a parsed probe and parsed facts (either may be missing).
    pub fn from_host(probe: Option<&NodeProbe>, facts: Option<&HostFacts>) -> HostKeys {
        HostKeys {
            live: probe
                .and_then(|p| p.dump.as_ref())
                .and_then(WgDump::public_key),
            derived: facts
                .and_then(|f| f.keys.public_key())
                .or_else(|| probe.and_then(|p| p.derived_key)),
        }
    }
}

/// Fills in the expected keys: a node is expected to run the key derived from its
/// `private.key` (a different live key is key drift on that node), and every peer entry
/// for node X is expected to carry the key X's interface actually runs (an entry with
/// another key is key drift on the entry's holder).
pub fn fill_keys(expectation: &mut Expectation, keys: &BTreeMap<NodeName, HostKeys>) {
    for node in &mut expectation.nodes {
        node.public_key = keys.get(&node.name).and_then(|k| k.derived);
        for peer in &mut node.peers {
            peer.public_key = keys.get(&peer.name).and_then(|k| k.live.or(k.derived));
        }
    }
}

/// Whether UDP `port` passes the host's firewall: the playbook's detection and
/// `port_open`, plus an explicit nftables drop/reject rule for the port in an input chain
/// (which the playbook does not count as a restrictive firewall, but which blocks it all
/// the same).
pub fn firewall_evidence(
    playbooks: &Playbooks,
    facts: &FirewallFacts,
    port: u16,
) -> FirewallEvidence {
    if let Some((rule, chain)) = nft_rule_dropping(facts, port) {
        return FirewallEvidence {
            state: PortState::Closed,
            firewall: format!("nftables (rule `{rule}` in {chain})"),
            mesh_filter: None,
        };
    }
    match playbooks.detect_firewall(facts) {
        None => FirewallEvidence {
            state: PortState::Open,
            firewall: "none".to_owned(),
            mesh_filter: None,
        },
        Some(fw) => FirewallEvidence {
            state: if fw.port_open(facts, port) {
                PortState::Open
            } else {
                PortState::Closed
            },
            firewall: fw.name.clone(),
            mesh_filter: None,
        },
    }
}

/// What in the host's active firewalls drops traffic arriving on `interface`, one
/// clause per backend ("nftables: chain inet filter input, policy drop: nothing accepts
/// iifname wg0"); `None` when every active firewall lets it in.
pub fn mesh_filter(
    playbooks: &Playbooks,
    facts: &FirewallFacts,
    interface: &str,
) -> Option<String> {
    let marks = MeshMarks::new(interface);
    let found: Vec<String> = FirewallKind::active(facts)
        .into_iter()
        .filter_map(|kind| playbooks.firewall(kind))
        .flat_map(|fw| {
            fw.mesh_blockers(facts, &marks, false)
                .into_iter()
                .map(move |why| {
                    if why.starts_with(&fw.name) {
                        why
                    } else {
                        format!("{}: {why}", fw.name)
                    }
                })
        })
        .collect();
    (!found.is_empty()).then(|| found.join("; "))
}

/// The first nftables input-chain rule that drops or rejects UDP to `port`, with the
/// chain it is in (`family table chain`).
fn nft_rule_dropping(facts: &FirewallFacts, port: u16) -> Option<(String, String)> {
    for table in &facts.nftables.tables {
        for chain in table
            .chains
            .iter()
            .filter(|c| c.hook.as_deref() == Some("input"))
        {
            for rule in &chain.rules {
                let words: Vec<&str> = rule.split_whitespace().collect();
                let drops = words.iter().any(|w| matches!(*w, "drop" | "reject"));
                let udp_port = words.windows(3).any(|w| {
                    w[0] == "udp"
                        && w[1] == "dport"
                        && w[2]
                            .trim_matches(|c| c == '{' || c == '}')
                            .split(',')
                            .any(|s| port_in_spec(s, port))
                });
                if drops && udp_port && !words.contains(&"accept") {
                    let location = format!("{} {} {}", table.family, table.name, chain.name);
                    return Some((rule.clone(), location));
                }
            }
        }
    }
    None
}

/// Node findings `evaluate` cannot make alone: the live interface MTU against the
/// inventory's. Where the inventory sets none, wg-quick picks one from the underlay, so a
/// node is only compared with the MTU most of the other probed nodes run.
pub fn mtu_findings(mesh: &Mesh, probes: &BTreeMap<NodeName, NodeProbe>) -> Vec<Diagnosis> {
    let mut live = Vec::new();
    for spec in &mesh.nodes {
        let name = spec.name.clone();
        let mtu = probes
            .get(&name)
            .and_then(|p| p.link.as_ref())
            .and_then(|l| l.mtu);
        live.push((name, spec.mtu, mtu));
    }
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for mtu in live.iter().filter_map(|(_, _, m)| *m) {
        *counts.entry(mtu).or_default() += 1;
    }
    let probed: usize = counts.values().sum();
    let majority = counts
        .iter()
        .find(|(_, n)| **n * 2 > probed)
        .map(|(mtu, _)| *mtu);
    let mut out = Vec::new();
    for (name, configured, mtu) in live {
        let Some(mtu) = mtu else { continue };
        let (expected, from_inventory) = match (configured, majority) {
            (Some(c), _) => (u32::from(c), true),
            (None, Some(m)) => (m, false),
            (None, None) => continue,
        };
        if mtu != expected {
            out.push(Diagnosis::MtuDrift {
                node: name.to_string(),
                live: mtu,
                expected,
                from_inventory,
            });
        }
    }
    out
}

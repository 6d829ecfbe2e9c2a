//! Which public keys the plan knows, which apply will generate, and which pairs get a
//! new preshared key.
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::facts::{HostFacts, KeyFileState};
use crate::host_error::HostError;
use crate::inventory::NodeName;
use crate::keys::PublicKey;
use crate::render;
use crate::topology::Mesh;

/// Facts per node, or why there are none.
pub type FactsMap = BTreeMap<NodeName, Result<HostFacts, HostError>>;

/// Public keys known for the mesh, and the nodes whose key apply will generate.
#[derive(Debug, Clone, Default)]
pub struct KeyBook {
    /// Known keys.
    pub known: BTreeMap<NodeName, PublicKey>,
    /// Keys that the prepare phase generates.
    pub pending: BTreeSet<NodeName>,
    /// Nodes whose key is rotated in this run: their new key is made during apply, so
    /// configs name it "(generated on host)" like a pending one.
    pub rotating: BTreeSet<NodeName>,
}

impl KeyBook {
    /// Keys as gathered; else pending (reachable, changeable, no key yet); else, for an
    /// unreachable node, as other hosts' configs list it.
    pub fn from_facts(
        mesh: &Mesh,
        facts: &FactsMap,
        in_limit: &dyn Fn(&NodeName) -> bool,
    ) -> KeyBook {
        let mut keys = KeyBook::default();
        let from_configs = keys_from_configs(facts);
        for spec in &mesh.nodes {
            match facts.get(&spec.name) {
                Some(Ok(f)) => {
                    if let Some(k) = f.keys.public_key() {
                        keys.known.insert(spec.name.clone(), k);
                    } else if f.keys.private_key == KeyFileState::Absent && in_limit(&spec.name) {
                        keys.pending.insert(spec.name.clone());
                    }
                }
                _ => {
                    if let Some(k) = from_configs.get(spec.name.as_str()) {
                        keys.known.insert(spec.name.clone(), *k);
                    }
                }
            }
        }
        // Clients: the key given in the inventory or read back from the generated
        // file; a generated client without a file yet gets its key pair at apply,
        // before the plan is computed again.
        for client in &mesh.clients {
            match client.public_key {
                Some(k) => {
                    keys.known.insert(client.name.clone(), k);
                }
                None => {
                    keys.pending.insert(client.name.clone());
                }
            }
        }
        keys
    }

    /// The key of `node` is made during this run (new or rotated).
    pub fn generated_during_run(&self, node: &NodeName) -> bool {
        self.pending.contains(node) || self.rotating.contains(node)
    }

    /// The key of a node, if known.
    pub fn get(&self, node: &NodeName) -> Option<PublicKey> {
        self.known.get(node).copied()
    }

    /// Renders `node`'s config: peers whose key is neither known nor pending are left out
    /// (named in the returned list); pending keys show as "(generated on host)", which
    /// the host fills in during apply.
    pub fn render(&self, mesh: &Mesh, node: &NodeName) -> (String, Vec<NodeName>) {
        let Some(spec) = mesh.node(node) else {
            return (String::new(), Vec::new());
        };
        let (peers, left_out): (Vec<_>, Vec<_>) = mesh
            .config_peers(spec)
            .into_iter()
            .partition(|p| self.known.contains_key(&p.name) || self.pending.contains(&p.name));
        let left_out = left_out.into_iter().map(|p| p.name).collect();
        let text = render::render_node(spec, &peers, &|n| {
            if self.rotating.contains(n) {
                None
            } else {
                self.get(n)
            }
        });
        (text, left_out)
    }
}

/// Keys of peers as other hosts' current configs list them (`# Peer: name` blocks): the
/// fallback for a node that is unreachable now but was provisioned before.
fn keys_from_configs(facts: &FactsMap) -> BTreeMap<String, PublicKey> {
    let mut found = BTreeMap::new();
    for f in facts.values().flatten() {
        let mut current: Option<String> = None;
        for line in f.config.text.lines() {
            if let Some(name) = line.strip_prefix("# Peer: ") {
                current = Some(name.split_whitespace().next().unwrap_or("").to_string());
            } else if let Some(key) = line.strip_prefix("PublicKey = ")
                && let Some(name) = current.take()
                && let Ok(key) = PublicKey::from_str(key.trim())
            {
                found.entry(name).or_insert(key);
            }
        }
    }
    found
}

/// The preshared keys of a run: pairs that get a new key, and hosts that cannot be
/// changed because a pair's key needs a host that is not part of the run.
#[derive(Debug, Clone, Default)]
pub struct PskPlan {
    /// Pairs getting a new preshared key (both hosts store it).
    pub new_pairs: Vec<(NodeName, NodeName)>,
    /// Why a host is blocked.
    pub blocked: BTreeMap<NodeName, Vec<String>>,
    /// Pairs whose (matching) preshared key is rotated on request: both sides switch
    /// at the agreed instant.
    pub rotated_pairs: Vec<(NodeName, NodeName)>,
    /// Preshared keys adopted as they are: (host, peer, the peer's public key) where
    /// the host runs the pair's key outside meshup's files (a hand-built mesh) and both
    /// sides hold the same one (compared by digest); the host stores it unchanged.
    pub adopted: Vec<(NodeName, NodeName, PublicKey)>,
}

impl PskPlan {
    /// A pair needs a new key when either side lacks a valid file or the two files
    /// differ (compared by digest prefix; the keys never leave the hosts).
    /// `rotate` lists the nodes whose pairs among each other get a new preshared key
    /// even when both sides agree (`rotate --psk`).
    pub fn compute(
        mesh: &Mesh,
        facts: &FactsMap,
        keys: &KeyBook,
        in_limit: &dyn Fn(&NodeName) -> bool,
        rotate: &BTreeSet<NodeName>,
    ) -> PskPlan {
        let mut plan = PskPlan::default();
        if !mesh.settings.preshared_keys {
            return plan;
        }
        for (i, a) in mesh.nodes.iter().enumerate() {
            for b in &mesh.nodes[i + 1..] {
                if !mesh.is_peer(a, b) {
                    continue;
                }
                let (Some(Ok(fa)), Some(Ok(fb))) = (facts.get(&a.name), facts.get(&b.name)) else {
                    // One side unreachable: keep whatever the reachable side has; a
                    // peer whose key is unknown is left out of the config (with a
                    // warning), so it needs no preshared key yet.
                    for (x, y) in [(a, b), (b, a)] {
                        if let Some(Ok(fx)) = facts.get(&x.name)
                            && keys.known.contains_key(&y.name)
                            && fx.keys.psks.get(y.name.as_str()) != Some(&KeyFileState::Valid)
                        {
                            plan.blocked.entry(x.name.clone()).or_default().push(format!(
                                "the preshared key with {} can only be created while {} is reachable",
                                y.name, y.name
                            ));
                        }
                    }
                    continue;
                };
                let state = |f: &HostFacts, peer: &NodeName| {
                    f.keys.psks.get(peer.as_str()).copied().unwrap_or_default()
                };
                let same = state(fa, &b.name) == KeyFileState::Valid
                    && state(fb, &a.name) == KeyFileState::Valid
                    && match (
                        fa.keys.psk_digests.get(b.name.as_str()),
                        fb.keys.psk_digests.get(a.name.as_str()),
                    ) {
                        (Some(da), Some(db)) => da == db,
                        _ => true,
                    };
                let rotated = rotate.contains(&a.name) && rotate.contains(&b.name);
                if same && !rotated {
                    continue;
                }
                if !rotated && plan.adopt(a, b, fa, fb, keys) {
                    continue;
                }
                if rotated {
                    plan.rotated_pairs.push((a.name.clone(), b.name.clone()));
                }
                if !(in_limit(&a.name) && in_limit(&b.name)) {
                    for (x, y) in [(a, b), (b, a)] {
                        if in_limit(&x.name) {
                            plan.blocked.entry(x.name.clone()).or_default().push(format!(
                                "the preshared key with {} must be created on both hosts: add {} to --limit",
                                y.name, y.name
                            ));
                        }
                    }
                    continue;
                }
                plan.new_pairs.push((a.name.clone(), b.name.clone()));
            }
        }
        plan
    }

    /// Adopts the pair's preshared key where it is when both sides hold the same one:
    /// each side's is its meshup file when valid, else the one its live interface runs
    /// with the other's public key (digests computed on the hosts). The sides without a
    /// valid file store theirs from the interface.
    fn adopt(
        &mut self,
        a: &crate::topology::NodeSpec,
        b: &crate::topology::NodeSpec,
        fa: &HostFacts,
        fb: &HostFacts,
        keys: &KeyBook,
    ) -> bool {
        let (Some(ka), Some(kb)) = (keys.get(&a.name), keys.get(&b.name)) else {
            return false;
        };
        let current = |f: &HostFacts, peer: &NodeName, peer_key: &PublicKey| {
            if f.keys.psks.get(peer.as_str()) == Some(&KeyFileState::Valid) {
                f.keys
                    .psk_digests
                    .get(peer.as_str())
                    .cloned()
                    .map(|d| (d, true))
            } else {
                f.keys
                    .live_psk_digests
                    .get(peer_key)
                    .cloned()
                    .flatten()
                    .map(|d| (d, false))
            }
        };
        match (current(fa, &b.name, &kb), current(fb, &a.name, &ka)) {
            (Some((da, file_a)), Some((db, file_b))) if da == db => {
                if !file_a {
                    self.adopted.push((a.name.clone(), b.name.clone(), kb));
                }
                if !file_b {
                    self.adopted.push((b.name.clone(), a.name.clone(), ka));
                }
                true
            }
            _ => false,
        }
    }

    /// The peers whose preshared key `node` adopts from its interface, with their keys.
    pub fn adopted_by(&self, node: &NodeName) -> Vec<(NodeName, PublicKey)> {
        self.adopted
            .iter()
            .filter(|(host, _, _)| host == node)
            .map(|(_, peer, key)| (peer.clone(), *key))
            .collect()
    }

    /// The peers `node` gets a new preshared key with, in pair order.
    pub fn peers_of<'a>(&'a self, node: &'a NodeName) -> impl Iterator<Item = &'a NodeName> {
        self.new_pairs.iter().filter_map(move |(a, b)| {
            if a == node {
                Some(b)
            } else if b == node {
                Some(a)
            } else {
                None
            }
        })
    }
}

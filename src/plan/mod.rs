//! The plan: per host, the ordered steps that close the gap between the gathered facts
//! and the inventory. Each step is made by one pure step function ([`steps`]) and
//! carries its line, its reason, its diff and the exact shell apply sends. `plan`
//! shows it; `apply` runs those steps and decides nothing again.
pub mod keys;
pub mod order;
pub mod step;
pub mod steps;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::facts::HostFacts;
use crate::host_error::HostError;
use crate::inventory::{Inventory, NodeName};
use crate::playbook::Playbooks;
use crate::topology::Mesh;

pub use keys::{FactsMap, KeyBook, PskPlan};
pub use step::{Action, Decision, Phase, Step, StepKind};
pub use steps::HostInput;

/// Whether a host takes part in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum HostState {
    /// Gathered and planned.
    Ready,
    /// Not reachable over SSH (or gather failed).
    Unreachable(HostError),
    /// Reachable but cannot be planned (unknown distro, invalid key file, …).
    Error(HostError),
    /// Outside `--limit`: read, never changed.
    Skipped,
}

/// The plan for one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    /// Node name.
    pub node: NodeName,
    /// Whether it takes part.
    #[serde(flatten)]
    pub state: HostState,
    /// What the host is, in one line (from its facts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Ordered steps.
    #[serde(rename = "changes")]
    pub steps: Vec<Step>,
    /// Why the rest needs no change ("wg0.conf up to date", …).
    pub unchanged: Vec<String>,
    /// Warnings that do not stop the host.
    pub warnings: Vec<String>,
    /// Running nodes whose move (new listen port or addresses) this host's changes use:
    /// it converges only after they have applied it, and not at all if one fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<(NodeName, String)>,
}

impl HostPlan {
    fn new(node: NodeName, state: HostState) -> Self {
        HostPlan {
            node,
            state,
            host: None,
            steps: Vec::new(),
            unchanged: Vec::new(),
            warnings: Vec::new(),
            after: Vec::new(),
        }
    }

    /// The host has changes to make.
    pub fn has_changes(&self) -> bool {
        self.state == HostState::Ready && !self.steps.is_empty()
    }

    /// The host could not be planned.
    pub fn failed(&self) -> bool {
        matches!(self.state, HostState::Unreachable(_) | HostState::Error(_))
    }

    /// The steps of one phase, in order.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(move |s| s.phase() == phase)
    }

    fn record(&mut self, decisions: Vec<Decision>) {
        for d in decisions {
            match d {
                Decision::Change(step) => self.steps.push(step),
                Decision::Unchanged(reason) => self.unchanged.push(reason),
                Decision::Warning(text) => self.warnings.push(text),
            }
        }
    }
}

/// The plan for the whole mesh.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Per host, in name order (present nodes, then absent ones).
    pub hosts: Vec<HostPlan>,
    /// Pairs getting a new preshared key.
    pub new_psk_pairs: Vec<(NodeName, NodeName)>,
    /// How each pair of NAT nodes talks, with the evidence (mapped endpoints, NAT kind).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nat_paths: Vec<crate::nat_path::NatPair>,
    /// What the public nodes see of each NAT node's mapping.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nat_mappings: Vec<crate::nat_path::NatMapping>,
}

impl Plan {
    /// The one definition of "no changes": no host has a change to make.
    pub fn is_empty(&self) -> bool {
        !self.hosts.iter().any(HostPlan::has_changes)
    }

    /// Some host could not be planned.
    pub fn has_errors(&self) -> bool {
        self.hosts.iter().any(HostPlan::failed)
    }

    /// The plan of one host.
    pub fn host(&self, node: &NodeName) -> Option<&HostPlan> {
        self.hosts.iter().find(|h| &h.node == node)
    }
}

/// Everything the plan is computed from.
pub struct PlanInput<'a> {
    /// The inventory.
    pub inventory: &'a Inventory,
    /// The mesh built from it.
    pub mesh: &'a Mesh,
    /// Distro and firewall recipes.
    pub playbooks: &'a Playbooks,
    /// Facts per node; `Err` = unreachable or gather failed.
    pub facts: &'a FactsMap,
    /// Only these nodes change (`--limit`); `None` = all.
    pub limit: Option<&'a BTreeSet<NodeName>>,
    /// Nodes whose key pair is rotated in this run.
    pub rotate: &'a BTreeSet<NodeName>,
    /// Rotate the preshared keys of the pairs among `rotate` instead of key pairs.
    pub rotate_psk: bool,
    /// NAT pairs' paths, learned from the facts; `mesh` already has the direct ones.
    pub paths: &'a crate::nat_path::PathBook,
}

/// Computes the plan. Pure: same input, same plan.
pub fn compute(input: &PlanInput<'_>) -> (Plan, KeyBook) {
    let mesh = input.mesh;
    let in_limit = |n: &NodeName| input.limit.is_none_or(|l| l.contains(n));
    let mut keys = KeyBook::from_facts(mesh, input.facts, &in_limit);
    let rotation_blocked = if input.rotate_psk {
        BTreeMap::new()
    } else {
        rotation_candidates(input, &mut keys, &in_limit)
    };
    let empty = BTreeSet::new();
    let psk_rotation = if input.rotate_psk {
        input.rotate
    } else {
        &empty
    };
    let psks = PskPlan::compute(mesh, input.facts, &keys, &in_limit, psk_rotation);

    let mut hosts = Vec::new();
    for spec in &mesh.nodes {
        let name = &spec.name;
        let facts = match input.facts.get(name) {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                hosts.push(HostPlan::new(
                    name.clone(),
                    HostState::Unreachable(e.clone()),
                ));
                continue;
            }
            None => {
                hosts.push(HostPlan::new(
                    name.clone(),
                    HostState::Unreachable(HostError::NotConnected),
                ));
                continue;
            }
        };
        let mut hp = HostPlan::new(name.clone(), HostState::Ready);
        hp.host = Some(facts.to_string());
        if !in_limit(name) {
            hp.state = HostState::Skipped;
        } else if let Some(why) = rotation_blocked.get(name) {
            hp.state = HostState::Error(HostError::blocked(why.clone()));
        } else if let Err(e) = host_steps(input, spec, facts, &keys, &psks, &mut hp) {
            hp.state = HostState::Error(e);
            hp.steps.clear();
        }
        hosts.push(hp);
    }

    for name in &mesh.absent {
        match input.facts.get(name) {
            Some(Ok(f)) if in_limit(name) => {
                let mut hp = HostPlan::new(name.clone(), HostState::Ready);
                hp.host = Some(f.to_string());
                hp.record(steps::removal(&mesh.settings, f));
                hp.record(steps::hosts_file_removal(&mesh.settings, f));
                let paths = input
                    .playbooks
                    .detect(&f.os_release)
                    .map(|d| d.firewall.clone())
                    .unwrap_or_else(|_| crate::playbook::FirewallPaths::debian());
                hp.record(steps::untrust(
                    input.playbooks,
                    &f.firewall,
                    &crate::playbook::MeshMarks::new(mesh.settings.interface.as_str())
                        .with_config_dir(mesh.settings.config_dir.as_str()),
                    &paths,
                ));
                hosts.push(hp);
            }
            Some(Ok(_)) => hosts.push(HostPlan::new(name.clone(), HostState::Skipped)),
            Some(Err(e)) => hosts.push(HostPlan::new(
                name.clone(),
                HostState::Unreachable(e.clone()),
            )),
            None => {}
        }
    }
    let changing: BTreeSet<NodeName> = hosts
        .iter()
        .filter(|h| h.has_changes())
        .map(|h| h.node.clone())
        .collect();
    let mut waits = order::dependencies(mesh, input.facts, &|n| changing.contains(n));
    for host in &mut hosts {
        host.after = waits.remove(&host.node).unwrap_or_default();
    }
    let plan = Plan {
        hosts,
        new_psk_pairs: psks.new_pairs,
        nat_paths: input.paths.pairs.clone(),
        nat_mappings: input.paths.mappings.clone(),
    };
    (plan, keys)
}

/// Which of the nodes asked for can rotate now: a running node with a valid key whose
/// every peer is reachable and inside `--limit` (a peer left out would keep the old
/// key: the rotation is not started then, and a later run completes it). The others
/// are returned with the reason.
fn rotation_candidates(
    input: &PlanInput<'_>,
    keys: &mut KeyBook,
    in_limit: &dyn Fn(&NodeName) -> bool,
) -> BTreeMap<NodeName, String> {
    let mut blocked = BTreeMap::new();
    for name in input.rotate {
        let Some(spec) = input.mesh.node(name) else {
            continue;
        };
        let facts = match input.facts.get(name) {
            Some(Ok(f)) => f,
            _ => continue,
        };
        let why = if !in_limit(name) {
            Some("not in --limit".to_string())
        } else if !facts.interface_up() || keys.get(name).is_none() {
            Some(format!(
                "cannot rotate {name}'s key: it is not running with a key yet (run apply first)"
            ))
        } else {
            input
                .mesh
                .peers(spec)
                .iter()
                .find(|p| !matches!(input.facts.get(&p.name), Some(Ok(_))) || !in_limit(&p.name))
                .map(|p| {
                    format!(
                        "cannot rotate {name}'s key now: its peer {} is unreachable or outside --limit and would keep the old key; nothing was rotated, a later run completes it",
                        p.name
                    )
                })
        };
        match why {
            Some(w) => {
                blocked.insert(name.clone(), w);
            }
            None => {
                keys.rotating.insert(name.clone());
            }
        }
    }
    blocked
}

/// One present host's steps, in order: each step function decides one concern.
fn host_steps(
    input: &PlanInput<'_>,
    spec: &crate::topology::NodeSpec,
    facts: &HostFacts,
    keys: &KeyBook,
    psks: &PskPlan,
    hp: &mut HostPlan,
) -> Result<(), HostError> {
    if !facts.complete {
        return Err(HostError::Gather {
            reason: format!(
                "it did not finish (missing sections: {})",
                facts.missing_sections.join(", ")
            ),
        });
    }
    if let Some(holder) = &facts.files.lock_holder {
        return Err(HostError::LockHeld {
            path: format!(
                "{}/.meshup-{}.lock",
                input.mesh.settings.config_dir, input.mesh.settings.interface
            ),
            holder: Some(holder.to_string()),
        });
    }
    let distro =
        input
            .playbooks
            .detect(&facts.os_release)
            .map_err(|e| HostError::UnsupportedDistro {
                message: e.to_string(),
            })?;
    if let Some(blocked) = psks.blocked.get(&spec.name) {
        return Err(HostError::blocked(blocked.join("; ")));
    }
    if input.mesh.settings.acl.is_some()
        && input.mesh.settings.firewall == crate::inventory::FirewallMode::Trust
        && !facts.commands.has("nft")
    {
        return Err(HostError::blocked(
            "mesh.firewall.rules need nft (package nftables) on this host to enforce the mesh \
             ACL, and it has none: install nftables, or take the rules out (nothing is changed \
             here until then)",
        ));
    }
    let h = HostInput {
        mesh: input.mesh,
        spec,
        peers: input.mesh.config_peers(spec),
        facts,
        distro,
        playbooks: input.playbooks,
        keys,
        new_psk_peers: psks.peers_of(&spec.name).cloned().collect(),
        paths: input.paths,
    };
    hp.record(steps::migrate(&h));
    hp.record(steps::install(&h)?);
    hp.record(steps::keygen(&h)?);
    hp.record(steps::rotation(&h));
    hp.record(steps::psk_flip(&h, &psks.rotated_pairs));
    hp.record(steps::psks(&h));
    hp.record(steps::punch(&h));
    hp.record(steps::config(&h));
    hp.record(steps::hosts_file(&h));
    hp.record(steps::firewall(&h));
    hp.record(steps::mesh_acl(&h));
    hp.record(steps::forwarding(&h));
    let config_changed = hp
        .steps
        .iter()
        .any(|s| matches!(s.kind, StepKind::Config | StepKind::KeyGen));
    hp.record(steps::activation(&h, config_changed));
    hp.steps.sort_by_key(|s| s.kind);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod acl_tests;

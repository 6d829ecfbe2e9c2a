//! The plan: per host, the ordered steps that close the gap between the gathered facts
//! and the inventory. Each step is made by one pure step function ([`steps`]) and
//! carries its line, its reason, its diff and the exact shell apply sends. `plan`
//! shows it; `apply` runs those steps and decides nothing again.
pub mod keys;
pub mod nat_paths;
pub mod order;
mod rotation;
use rotation::{psk_rotation_blocked, rotation_candidates};
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
    /// What its steps send, hashed ([`Planner::host`] makes them again at apply time).
    #[serde(skip)]
    pub fingerprint: u64,
}

impl HostPlan {
    /// A host's plan with no steps yet.
    pub fn new(node: NodeName, state: HostState) -> Self {
        HostPlan {
            node,
            state,
            host: None,
            steps: Vec::new(),
            unchanged: Vec::new(),
            warnings: Vec::new(),
            after: Vec::new(),
            fingerprint: 0,
        }
    }

    /// Drops what only the display and the run need (diffs, shell): kept are the steps'
    /// kinds, lines and the fingerprint, enough to count, order and recap. Apply makes
    /// the host's steps again with [`Planner::host`] just before it sends them.
    pub fn lighten(&mut self) {
        for step in &mut self.steps {
            step.diff = None;
            step.shell = String::new();
            step.reason = String::new();
        }
        self.unchanged = Vec::new();
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
    /// Pairs that peer over a private network both sit on, and why that network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_paths: Vec<crate::network_path::NetworkPath>,
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

/// Computes the whole plan at once. Pure: same input, same plan. (`plan` and `apply`
/// use a [`Planner`] host by host instead, so a big mesh is never held whole.)
pub fn compute(input: &PlanInput<'_>) -> (Plan, KeyBook) {
    let planner = Planner::new(input);
    let hosts = planner.hosts().map(|n| planner.host(n, true)).collect();
    let plan = planner.finish(hosts);
    (plan, planner.keys)
}

/// Plans one host at a time. What concerns the whole mesh (keys, preshared keys,
/// rotations, which nodes move what their peers use) is decided once, in [`Planner::new`];
/// [`Planner::host`] then makes one host's plan on demand, the same every time, so the
/// plan can be shown host by host and each host's steps made again just before they
/// are sent (memory: one host's config at a time, not N configs of N peers).
pub struct Planner<'a> {
    input: &'a PlanInput<'a>,
    /// Keys known, generated during the run, rotated.
    pub keys: KeyBook,
    psks: PskPlan,
    rotation_blocked: BTreeMap<NodeName, String>,
    /// Running nodes that move what their peers reach them by, and what.
    movers: BTreeMap<NodeName, String>,
}

impl<'a> Planner<'a> {
    /// Decides what concerns the whole mesh.
    pub fn new(input: &'a PlanInput<'a>) -> Self {
        let mesh = input.mesh;
        let in_limit = |n: &NodeName| input.limit.is_none_or(|l| l.contains(n));
        let mut keys = KeyBook::from_facts(mesh, input.facts, &in_limit);
        // A move (port, addresses) runs in two waves (the mover, then its peers), a flip
        // at one instant: both in one run would split the flip across the waves.
        let moving = order::movers(mesh, input.facts, &in_limit);
        let rotation_blocked = if input.rotate_psk {
            psk_rotation_blocked(input, &moving)
        } else {
            rotation_candidates(input, &mut keys, &in_limit, &moving)
        };
        let empty = BTreeSet::new();
        let psk_rotation = if input.rotate_psk {
            input.rotate
        } else {
            &empty
        };
        let psks = PskPlan::compute(mesh, input.facts, &keys, &in_limit, psk_rotation);
        let movers = order::movers(mesh, input.facts, &|n: &NodeName| {
            in_limit(n) && !rotation_blocked.contains_key(n)
        });
        Planner {
            input,
            keys,
            psks,
            rotation_blocked,
            movers,
        }
    }

    fn in_limit(&self, n: &NodeName) -> bool {
        self.input.limit.is_none_or(|l| l.contains(n))
    }

    /// The hosts a plan has, in its order: present nodes, then absent ones meshup
    /// reached or tried.
    pub fn hosts(&self) -> impl Iterator<Item = &'a NodeName> {
        let facts = self.input.facts;
        self.input.mesh.nodes.iter().map(|s| &s.name).chain(
            self.input
                .mesh
                .absent
                .iter()
                .filter(move |n| facts.contains_key(*n)),
        )
    }

    /// One host's plan; `diffs: false` leaves out the diffs (only people read them).
    pub fn host(&self, name: &NodeName, diffs: bool) -> HostPlan {
        let mut hp = match self.input.mesh.node(name) {
            Some(spec) => self.present(spec, diffs),
            None => self.absent(name),
        };
        if !diffs {
            for step in &mut hp.steps {
                step.diff = None;
            }
        }
        hp.fingerprint = fingerprint(&hp.steps);
        hp
    }

    fn present(&self, spec: &crate::topology::NodeSpec, diffs: bool) -> HostPlan {
        let name = &spec.name;
        let facts = match self.input.facts.get(name) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return HostPlan::new(name.clone(), HostState::Unreachable(e.clone())),
            None => {
                return HostPlan::new(
                    name.clone(),
                    HostState::Unreachable(HostError::NotConnected),
                );
            }
        };
        let mut hp = HostPlan::new(name.clone(), HostState::Ready);
        hp.host = Some(facts.to_string());
        if !self.in_limit(name) {
            hp.state = HostState::Skipped;
        } else if let Some(why) = self.rotation_blocked.get(name) {
            hp.state = HostState::Error(HostError::blocked(why.clone()));
        } else if let Err(e) = host_steps(
            self.input, spec, facts, &self.keys, &self.psks, diffs, &mut hp,
        ) {
            hp.state = HostState::Error(e);
            hp.steps.clear();
        }
        if hp.has_changes() && !self.movers.contains_key(name) {
            let mesh = self.input.mesh;
            hp.after = self
                .movers
                .iter()
                .filter(|(m, _)| mesh.node(m).is_some_and(|m| mesh.is_peer(spec, m)))
                .map(|(m, what)| (m.clone(), what.clone()))
                .collect();
        }
        if hp.has_changes() {
            let facts = self.input.facts;
            let exit_facts = |n: &NodeName| match facts.get(n) {
                Some(Ok(f)) if self.in_limit(n) => Some(f.route.clone()),
                _ => None,
            };
            hp.after.extend(crate::routing::exit_dependency(
                self.input.mesh,
                spec,
                &exit_facts,
            ));
        }
        hp
    }

    fn absent(&self, name: &NodeName) -> HostPlan {
        let input = self.input;
        let mesh = input.mesh;
        match input.facts.get(name) {
            Some(Ok(f)) if self.in_limit(name) => {
                let mut hp = HostPlan::new(name.clone(), HostState::Ready);
                hp.host = Some(f.to_string());
                hp.record(steps::removal(&mesh.settings, f));
                hp.record(steps::hosts_file_removal(&mesh.settings, f));
                hp.record(
                    steps::route_removal(
                        &mesh.settings,
                        f,
                        "node is marked `state: absent` in the inventory",
                    )
                    .into_iter()
                    .collect(),
                );
                hp.record(
                    steps::nm_removal(
                        &mesh.settings,
                        f,
                        "node is marked `state: absent` in the inventory",
                    )
                    .into_iter()
                    .collect(),
                );
                hp.record(steps::watchdog_removal(
                    &mesh.settings,
                    f,
                    "node is marked `state: absent` in the inventory",
                ));
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
                hp
            }
            Some(Ok(_)) => HostPlan::new(name.clone(), HostState::Skipped),
            Some(Err(e)) => HostPlan::new(name.clone(), HostState::Unreachable(e.clone())),
            None => HostPlan::new(
                name.clone(),
                HostState::Unreachable(HostError::NotConnected),
            ),
        }
    }

    /// The plan of the whole mesh from its hosts' plans (whole or [`HostPlan::lighten`]ed).
    pub fn finish(&self, hosts: Vec<HostPlan>) -> Plan {
        Plan {
            hosts,
            new_psk_pairs: self.psks.new_pairs.clone(),
            nat_paths: self.input.paths.pairs.clone(),
            nat_mappings: self.input.paths.mappings.clone(),
            network_paths: crate::network_path::network_paths(self.input.mesh),
        }
    }
}

/// What a host's steps would send, in one number: the steps made again at apply time
/// must be the ones shown.
fn fingerprint(steps: &[Step]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for s in steps {
        (
            s.action as u8,
            s.kind as u8,
            &s.summary,
            &s.reason,
            &s.shell,
        )
            .hash(&mut h);
    }
    h.finish()
}

/// One present host's steps, in order: each step function decides one concern.
fn host_steps(
    input: &PlanInput<'_>,
    spec: &crate::topology::NodeSpec,
    facts: &HostFacts,
    keys: &KeyBook,
    psks: &PskPlan,
    diffs: bool,
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
            path: holder.path.clone().unwrap_or_else(|| {
                format!(
                    "{}/.meshup-{}.lock",
                    input.mesh.settings.config_dir, input.mesh.settings.interface
                )
            }),
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
        adopted_psk_peers: psks.adopted_by(&spec.name),
        paths: input.paths,
        diffs,
    };
    hp.record(steps::migrate(&h));
    hp.record(steps::install(&h)?);
    hp.record(steps::keygen(&h)?);
    hp.record(steps::rotation(&h));
    hp.record(steps::psk_flip(&h, &psks.rotated_pairs));
    hp.record(steps::psks(&h));
    hp.record(steps::punch(&h));
    hp.record(steps::path_move(&h));
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
    hp.record(steps::route(&h));
    hp.record(steps::neighbours(&h));
    hp.record(steps::watchdog(&h));
    hp.steps.sort_by_key(|s| s.kind);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod acl_tests;

#[cfg(test)]
mod route_tests;

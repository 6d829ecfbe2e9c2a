//! The plan: per host, the ordered changes that close the gap between the gathered facts
//! and the inventory, each with a symbol, a reason and the commands it runs. `plan`
//! renders it; `apply` executes it and never decides anything again.

use crate::facts::{HostFacts, KeyFileState};
use crate::inventory::{Inventory, NodeName};
use crate::keys::PublicKey;
use crate::playbook::{InstallNeeds, Playbooks};
use crate::render;
use crate::topology::Mesh;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;

/// What a change does to the host, with Terraform's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `+` something new.
    Create,
    /// `~` something changed in place.
    Update,
    /// `-` something removed.
    Delete,
}

impl Action {
    /// The symbol shown in front of the change.
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

/// The kind of a change, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Install WireGuard packages.
    Install,
    /// Generate the key pair on the host.
    KeyGen,
    /// Store a new preshared key for a pair.
    Psk,
    /// Stop and remove the interface (node leaves the mesh).
    Remove,
    /// Write the interface config.
    Config,
    /// Open the firewall.
    Firewall,
    /// Enable IP forwarding.
    Forwarding,
    /// Bring the interface up / enable the service.
    Service,
    /// Apply the new config to the running interface.
    Reload,
}

/// One change on one host.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `+`, `~` or `-`.
    pub action: Action,
    /// What kind of change.
    pub kind: ChangeKind,
    /// One line saying what changes.
    pub summary: String,
    /// Why.
    pub reason: String,
    /// Unified diff (configs), secrets shown as tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Commands run on the host for this change (no secret in them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

/// Whether a host takes part in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum HostState {
    /// Gathered and planned.
    Ready,
    /// Not reachable over SSH (or gather failed).
    Unreachable(String),
    /// Reachable but cannot be planned (unknown distro, invalid key file, …).
    Error(String),
    /// Outside `--limit`: read, never changed.
    Skipped,
}

/// How the converge phase brings the interface to the new config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// Nothing to do.
    None,
    /// `wg syncconf` + addresses/routes on the running interface.
    LiveReload,
    /// Start it with this command.
    Start(String),
}

/// What apply needs to execute a host's plan (decided here, only filled in later).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostSteps {
    /// Install command.
    pub install: Option<String>,
    /// Generate the key pair.
    pub keygen: bool,
    /// Peers whose pair PSK is (re)created this run.
    pub new_psks: Vec<NodeName>,
    /// PSK files of peers that left the mesh.
    pub remove_psks: Vec<String>,
    /// Write the config (re-rendered after keys are generated).
    pub write_config: bool,
    /// Firewall commands.
    pub firewall: Vec<String>,
    /// Enable forwarding (IPv4, and IPv6 when dual stack).
    pub forwarding: Option<bool>,
    /// How the interface gets the config.
    pub activation: Option<Activation>,
    /// Enable the service at boot only.
    pub enable_only: Option<String>,
    /// Stop + remove (absent node).
    pub teardown: Option<String>,
}

/// The plan for one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    /// Node name.
    pub node: NodeName,
    /// Whether it is taken part.
    #[serde(flatten)]
    pub state: HostState,
    /// What the host is, in one line (from its facts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Ordered changes.
    pub changes: Vec<Change>,
    /// Why the rest needs no change ("wg0.conf up to date", …).
    pub unchanged: Vec<String>,
    /// Warnings that do not stop the host.
    pub warnings: Vec<String>,
    /// Execution steps.
    #[serde(skip)]
    pub steps: HostSteps,
}

impl HostPlan {
    fn new(node: NodeName, state: HostState) -> Self {
        HostPlan {
            node,
            state,
            host: None,
            changes: Vec::new(),
            unchanged: Vec::new(),
            warnings: Vec::new(),
            steps: HostSteps::default(),
        }
    }

    /// The host has changes to make.
    pub fn has_changes(&self) -> bool {
        self.state == HostState::Ready && !self.changes.is_empty()
    }

    /// The host could not be planned.
    pub fn failed(&self) -> bool {
        matches!(self.state, HostState::Unreachable(_) | HostState::Error(_))
    }

    fn change(
        &mut self,
        action: Action,
        kind: ChangeKind,
        summary: impl Into<String>,
        reason: impl Into<String>,
    ) -> &mut Change {
        self.changes.push(Change {
            action,
            kind,
            summary: summary.into(),
            reason: reason.into(),
            diff: None,
            commands: Vec::new(),
        });
        let last = self.changes.len() - 1;
        &mut self.changes[last]
    }
}

/// The plan for the whole mesh.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Per host, in name order (present nodes, then absent ones).
    pub hosts: Vec<HostPlan>,
    /// Pairs getting a new preshared key.
    pub new_psk_pairs: Vec<(NodeName, NodeName)>,
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
    pub facts: &'a BTreeMap<NodeName, Result<HostFacts, String>>,
    /// Only these nodes change (`--limit`); `None` = all.
    pub limit: Option<&'a BTreeSet<NodeName>>,
}

/// Public keys known for the mesh, and the nodes whose key apply will generate.
#[derive(Debug, Clone, Default)]
pub struct KeyBook {
    /// Known keys.
    pub known: BTreeMap<NodeName, PublicKey>,
    /// Keys that the prepare phase generates.
    pub pending: BTreeSet<NodeName>,
}

impl KeyBook {
    /// The key of a node, if known.
    pub fn get(&self, node: &NodeName) -> Option<PublicKey> {
        self.known.get(node).copied()
    }

    /// Renders `node`'s config: peers whose key is neither known nor pending are left out
    /// (named in the returned list); pending keys show as "(generated on host)".
    pub fn render(&self, mesh: &Mesh, node: &NodeName) -> (String, Vec<NodeName>) {
        let mut left_out = Vec::new();
        let mut trimmed = mesh.clone();
        if let Some(spec) = trimmed.nodes.iter_mut().find(|n| &n.name == node) {
            spec.peers.retain(|p| {
                let keep = self.known.contains_key(&p.name) || self.pending.contains(&p.name);
                if !keep {
                    left_out.push(p.name.clone());
                }
                keep
            });
        }
        let text = render::render_config(&trimmed, node, &|n| self.get(n));
        (text, left_out)
    }
}

fn parse_key(key: &str) -> Option<PublicKey> {
    PublicKey::from_str(key.trim()).ok()
}

/// Keys of peers as other hosts' current configs list them (`# Peer: name` blocks): the
/// fallback for a node that is unreachable now but was provisioned before.
fn keys_from_configs(
    facts: &BTreeMap<NodeName, Result<HostFacts, String>>,
) -> BTreeMap<String, PublicKey> {
    let mut found = BTreeMap::new();
    for f in facts.values().flatten() {
        let mut current: Option<String> = None;
        for line in f.config.text.lines() {
            if let Some(name) = line.strip_prefix("# Peer: ") {
                current = Some(name.split_whitespace().next().unwrap_or("").to_string());
            } else if let Some(key) = line.strip_prefix("PublicKey = ")
                && let Some(name) = current.take()
                && let Some(key) = parse_key(key)
            {
                found.entry(name).or_insert(key);
            }
        }
    }
    found
}

/// Unified diff of two configs, labelled, secrets already tokens on both sides.
pub fn config_diff(path: &str, current: Option<&str>, desired: &str) -> String {
    let old = current.unwrap_or("");
    let diff = similar::TextDiff::from_lines(old, desired);
    let from = if current.is_some() {
        format!("{path} (current)")
    } else {
        "/dev/null".to_string()
    };
    diff.unified_diff()
        .context_radius(3)
        .header(&from, &format!("{path} (desired)"))
        .to_string()
}

/// Computes the plan. Pure: same input, same plan.
pub fn compute(input: &PlanInput<'_>) -> (Plan, KeyBook) {
    let mesh = input.mesh;
    let settings = &mesh.settings;
    let in_limit = |n: &NodeName| input.limit.is_none_or(|l| l.contains(n));

    // Keys: gathered, else pending (reachable, changeable, no key yet), else from other
    // hosts' configs.
    let mut keys = KeyBook::default();
    let from_configs = keys_from_configs(input.facts);
    for spec in &mesh.nodes {
        match input.facts.get(&spec.name) {
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

    // Preshared keys: a pair needs a new one when either side lacks a valid file or the
    // two files differ.
    let mut new_psk_pairs = Vec::new();
    let mut psk_blocked: BTreeMap<NodeName, Vec<String>> = BTreeMap::new();
    if settings.preshared_keys {
        for (i, a) in mesh.nodes.iter().enumerate() {
            for b in &mesh.nodes[i + 1..] {
                if !a.peers.iter().any(|p| p.name == b.name && p.psk) {
                    continue;
                }
                let (Some(Ok(fa)), Some(Ok(fb))) =
                    (input.facts.get(&a.name), input.facts.get(&b.name))
                else {
                    // One side unreachable: keep whatever the reachable side has; a
                    // missing file there is reported below.
                    for (x, y) in [(a, b), (b, a)] {
                        // A peer whose key is unknown is left out of the config (with a
                        // warning), so it needs no preshared key yet.
                        if let Some(Ok(fx)) = input.facts.get(&x.name)
                            && keys.known.contains_key(&y.name)
                            && fx.keys.psks.get(y.name.as_str()) != Some(&KeyFileState::Valid)
                        {
                            psk_blocked.entry(x.name.clone()).or_default().push(format!(
                                "the preshared key with {} can only be created while {} is reachable",
                                y.name, y.name
                            ));
                        }
                    }
                    continue;
                };
                let sa = fa
                    .keys
                    .psks
                    .get(b.name.as_str())
                    .copied()
                    .unwrap_or_default();
                let sb = fb
                    .keys
                    .psks
                    .get(a.name.as_str())
                    .copied()
                    .unwrap_or_default();
                let same = sa == KeyFileState::Valid
                    && sb == KeyFileState::Valid
                    && match (
                        fa.keys.psk_digests.get(b.name.as_str()),
                        fb.keys.psk_digests.get(a.name.as_str()),
                    ) {
                        (Some(da), Some(db)) => da == db,
                        _ => true,
                    };
                if same {
                    continue;
                }
                if !(in_limit(&a.name) && in_limit(&b.name)) {
                    for (x, y) in [(a, b), (b, a)] {
                        if in_limit(&x.name) {
                            psk_blocked.entry(x.name.clone()).or_default().push(format!(
                                "the preshared key with {} must be created on both hosts: add {} to --limit",
                                y.name, y.name
                            ));
                        }
                    }
                    continue;
                }
                new_psk_pairs.push((a.name.clone(), b.name.clone()));
            }
        }
    }

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
                    HostState::Unreachable("not gathered".into()),
                ));
                continue;
            }
        };
        if !in_limit(name) {
            let mut hp = HostPlan::new(name.clone(), HostState::Skipped);
            hp.host = Some(facts.to_string());
            hosts.push(hp);
            continue;
        }
        let hp = plan_host(
            input,
            spec,
            facts,
            &keys,
            &new_psk_pairs,
            psk_blocked.get(name),
        );
        hosts.push(hp);
    }

    for name in &mesh.absent {
        match input.facts.get(name) {
            Some(Ok(f)) if in_limit(name) => hosts.push(plan_removal(input, name, f)),
            Some(Ok(_)) => hosts.push(HostPlan::new(name.clone(), HostState::Skipped)),
            Some(Err(e)) => hosts.push(HostPlan::new(
                name.clone(),
                HostState::Unreachable(e.clone()),
            )),
            None => {}
        }
    }
    (
        Plan {
            hosts,
            new_psk_pairs,
        },
        keys,
    )
}

fn conf_path(input: &PlanInput<'_>) -> String {
    let s = &input.mesh.settings;
    format!("{}/{}.conf", s.config_dir, s.interface)
}

/// The command that brings the interface up when it is down.
fn start_command(
    input: &PlanInput<'_>,
    facts: &HostFacts,
    distro_enable: Option<Vec<String>>,
) -> (String, Option<String>) {
    let s = &input.mesh.settings;
    let conf = conf_path(input);
    let standard_dir = s.config_dir.as_str() == crate::inventory::DEFAULT_CONFIG_DIR;
    if facts.init.systemd && standard_dir {
        let cmd = distro_enable
            .filter(|c| !c.is_empty())
            .map(|c| c.join(" && "))
            .unwrap_or_else(|| format!("systemctl enable --now wg-quick@{}", s.interface));
        (cmd, None)
    } else if facts.init.openrc
        && standard_dir
        && let Some(c) = distro_enable.filter(|c| !c.is_empty())
    {
        (c.join(" && "), None)
    } else {
        let warning = if facts.init.systemd {
            format!(
                "config dir {} is not /etc/wireguard: wg-quick@{} cannot load it, so the interface is started with wg-quick and will not come back after a reboot",
                s.config_dir, s.interface
            )
        } else {
            "no service manager meshup can use: the interface is started with wg-quick up and nothing will bring it back after a reboot".to_string()
        };
        (
            format!("wg-quick up {}", crate::shell::quote(&conf)),
            Some(warning),
        )
    }
}

fn plan_host(
    input: &PlanInput<'_>,
    spec: &crate::topology::NodeSpec,
    facts: &HostFacts,
    keys: &KeyBook,
    new_psk_pairs: &[(NodeName, NodeName)],
    psk_blocked: Option<&Vec<String>>,
) -> HostPlan {
    let settings = &input.mesh.settings;
    let name = &spec.name;
    let iface = settings.interface.as_str();
    let mut hp = HostPlan::new(name.clone(), HostState::Ready);
    hp.host = Some(facts.to_string());

    if !facts.complete {
        hp.state = HostState::Error(format!(
            "fact gathering did not finish (missing sections: {})",
            facts.missing_sections.join(", ")
        ));
        return hp;
    }
    let distro = match input.playbooks.detect(&facts.os_release) {
        Ok(d) => d,
        Err(e) => {
            hp.state = HostState::Error(e.to_string());
            return hp;
        }
    };
    if let Some(blocked) = psk_blocked {
        hp.state = HostState::Error(blocked.join("; "));
        return hp;
    }

    // 1. Install.
    let needs = InstallNeeds::from_facts(facts);
    if !needs.is_empty() {
        let packages = distro.packages_for(&needs);
        match distro.install_command(&needs) {
            Some(cmd) => {
                let reason = if needs.tools {
                    "wg / wg-quick not found".to_string()
                } else {
                    "the kernel has no WireGuard module and no userspace implementation is installed".to_string()
                };
                let c = hp.change(
                    Action::Create,
                    ChangeKind::Install,
                    format!("install {} ({})", packages.join(" "), distro.package_manager),
                    reason,
                );
                c.commands.push(cmd.clone());
                hp.steps.install = Some(cmd);
            }
            None if needs.tools => {
                hp.state = HostState::Error(format!(
                    "WireGuard tools are missing and the {} playbook has no package for them",
                    distro.name
                ));
                return hp;
            }
            None => hp.warnings.push(
                "the kernel has no WireGuard module and the distro packages no userspace implementation".into(),
            ),
        }
    } else {
        hp.unchanged.push(format!(
            "WireGuard installed ({})",
            facts.wireguard.tools_version().unwrap_or("wg present")
        ));
    }

    // 2. Keys.
    match facts.keys.private_key {
        KeyFileState::Valid => {
            hp.unchanged
                .push("key pair present (private key stays on the host)".into());
            if !facts.keys.public_key_matches() {
                hp.warnings
                    .push("public.key does not match private.key; it is rewritten".into());
                hp.steps.keygen = true;
            }
        }
        KeyFileState::Absent => {
            let c = hp.change(
                Action::Create,
                ChangeKind::KeyGen,
                "generate key pair on the host (private key never leaves it)",
                format!("{}/private.key does not exist", settings.config_dir),
            );
            c.commands.push(
                "umask 077; wg genkey > private.key; wg pubkey < private.key > public.key".into(),
            );
            hp.steps.keygen = true;
        }
        KeyFileState::Invalid => {
            hp.state = HostState::Error(format!(
                "{}/private.key exists but is not a WireGuard key; meshup will not overwrite it (fix or remove it)",
                settings.config_dir
            ));
            return hp;
        }
    }

    // 3. Preshared keys.
    let mut secrets_changed = false;
    for (a, b) in new_psk_pairs {
        let peer = if a == name {
            b
        } else if b == name {
            a
        } else {
            continue;
        };
        let had = facts.keys.psks.get(peer.as_str()) == Some(&KeyFileState::Valid);
        hp.change(
            if had { Action::Update } else { Action::Create },
            ChangeKind::Psk,
            format!("preshared key with {peer} (random, written on both hosts, never shown)"),
            if had {
                format!("{peer} holds a different preshared key for this pair")
            } else {
                format!("no psk-{peer}.key yet")
            },
        );
        hp.steps.new_psks.push(peer.clone());
        secrets_changed = true;
    }
    let peer_names: BTreeSet<&str> = spec
        .peers
        .iter()
        .filter(|p| p.psk)
        .map(|p| p.name.as_str())
        .collect();
    for file in &facts.files.psk_files {
        let peer = file
            .strip_prefix("psk-")
            .and_then(|f| f.strip_suffix(".key"))
            .unwrap_or("");
        if !peer_names.contains(peer) && !peer.is_empty() {
            hp.change(
                Action::Delete,
                ChangeKind::Psk,
                format!("remove {file}"),
                format!("{peer} is no longer a peer with a preshared key"),
            );
            hp.steps.remove_psks.push(peer.to_string());
        }
    }

    // 4. Config.
    let (desired, left_out) = keys.render(input.mesh, name);
    for peer in &left_out {
        hp.warnings.push(format!(
            "{peer} is left out of this config: its public key is unknown (unreachable and never provisioned)"
        ));
    }
    let path = conf_path(input);
    let current = facts.config.present.then_some(facts.config.text.as_str());
    let config_changed = current != Some(desired.as_str());
    if config_changed {
        let pending: Vec<&str> = spec
            .peers
            .iter()
            .filter(|p| keys.pending.contains(&p.name))
            .map(|p| p.name.as_str())
            .collect();
        let mut reason = if current.is_none() {
            format!("{path} does not exist")
        } else {
            format!("{path} differs from the inventory")
        };
        if !pending.is_empty() {
            let _ = write!(
                reason,
                "; keys of {} are generated during apply",
                pending.join(", ")
            );
        }
        if keys.pending.contains(name) {
            reason.push_str("; this host's key is generated during apply");
        }
        let c = hp.change(
            if current.is_none() {
                Action::Create
            } else {
                Action::Update
            },
            ChangeKind::Config,
            format!("write {path} (mode 600, previous kept as {iface}.conf.meshup-prev)"),
            reason,
        );
        c.diff = Some(config_diff(&path, current, &desired));
        hp.steps.write_config = true;
    } else if secrets_changed {
        // Same text with tokens, but a token's value changes: the host must assemble the
        // config again, or it keeps (and reloads) the old preshared key.
        hp.change(
            Action::Update,
            ChangeKind::Config,
            format!("re-assemble {path} with the new preshared keys"),
            "a preshared key of this host changes; the config text is otherwise up to date",
        );
        hp.steps.write_config = true;
    } else {
        hp.unchanged.push(format!("{path} up to date"));
    }

    // 5. Firewall.
    match input.playbooks.detect_firewall(&facts.firewall) {
        Some(fw) => {
            let action = fw.open_port_commands(&facts.firewall, spec.listen_port);
            if action.commands.is_empty() {
                hp.unchanged.push(action.reason);
            } else {
                let c = hp.change(
                    Action::Create,
                    ChangeKind::Firewall,
                    format!("open {}/udp in {}", spec.listen_port, fw.name),
                    action.reason,
                );
                c.commands = action.commands.clone();
                hp.steps.firewall.extend(action.commands);
            }
            if spec.is_transit {
                let action = fw.forward_commands(&facts.firewall, iface);
                if action.commands.is_empty() {
                    hp.unchanged.push(action.reason);
                } else {
                    let c = hp.change(
                        Action::Create,
                        ChangeKind::Firewall,
                        format!("allow forwarding on {iface} in {}", fw.name),
                        action.reason,
                    );
                    c.commands = action.commands.clone();
                    hp.steps.firewall.extend(action.commands);
                }
            }
        }
        None => hp.unchanged.push(format!(
            "no active firewall filters {}/udp (none is switched on)",
            spec.listen_port
        )),
    }

    // 6. Forwarding on transit nodes.
    if spec.is_transit {
        let ipv6 = settings.network6.is_some()
            || spec
                .subnets
                .iter()
                .any(|s| matches!(s, ipnet::IpNet::V6(_)));
        let live_ok =
            facts.forward.ipv4 == Some(true) && (!ipv6 || facts.forward.ipv6 == Some(true));
        if live_ok && facts.files.sysctl_forward {
            hp.unchanged
                .push("IP forwarding enabled and persisted".into());
        } else {
            let why = if spec.relay_for.is_empty() {
                "subnet router".to_string()
            } else {
                format!(
                    "relay for {}",
                    spec.relay_for
                        .iter()
                        .map(NodeName::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let c = hp.change(
                Action::Create,
                ChangeKind::Forwarding,
                format!(
                    "enable IP forwarding{} (persisted in {})",
                    if ipv6 { " (IPv4 + IPv6)" } else { "" },
                    super::script::SYSCTL_FILE
                ),
                format!(
                    "transit node ({why}); net.ipv4.ip_forward is {}",
                    match facts.forward.ipv4 {
                        Some(true) => "1 but not persisted",
                        Some(false) => "0",
                        None => "unknown",
                    }
                ),
            );
            c.commands.push("sysctl -w net.ipv4.ip_forward=1".into());
            hp.steps.forwarding = Some(ipv6);
        }
    }

    // 7. Service and activation.
    let up = facts.interface_up();
    let live_drift = up && live_differs(spec, facts, keys);
    let distro_enable = distro.service_enable_commands(iface);
    if up {
        if config_changed || secrets_changed || live_drift || hp.steps.keygen {
            let reason = if config_changed || secrets_changed || hp.steps.keygen {
                "the running interface gets the new config without a restart (wg syncconf)"
                    .to_string()
            } else {
                "the running interface differs from its config (changed by hand?)".to_string()
            };
            let c = hp.change(
                Action::Update,
                ChangeKind::Reload,
                format!("live reload {iface}: peers, addresses, routes"),
                reason,
            );
            c.commands
                .push(format!("wg syncconf {iface} <(wg-quick strip {path})"));
            hp.steps.activation = Some(Activation::LiveReload);
        } else {
            hp.unchanged
                .push(format!("{iface} is up with the configured peers"));
        }
        if facts.init.systemd
            && settings.config_dir.as_str() == crate::inventory::DEFAULT_CONFIG_DIR
        {
            if facts.service.enabled() {
                hp.unchanged
                    .push(format!("wg-quick@{iface} enabled at boot"));
            } else {
                let cmd = format!("systemctl enable wg-quick@{iface}");
                let c = hp.change(
                    Action::Create,
                    ChangeKind::Service,
                    format!("enable wg-quick@{iface} at boot"),
                    format!("{iface} is up but would not come back after a reboot"),
                );
                c.commands.push(cmd.clone());
                hp.steps.enable_only = Some(cmd);
            }
        }
    } else {
        let (cmd, warning) = start_command(input, facts, distro_enable);
        if let Some(w) = warning {
            hp.warnings.push(w);
        }
        let c = hp.change(
            Action::Create,
            ChangeKind::Service,
            format!("bring {iface} up"),
            format!("{iface} is not running"),
        );
        c.commands.push(cmd.clone());
        hp.steps.activation = Some(Activation::Start(cmd));
    }
    hp.changes.sort_by_key(|c| c.kind);
    hp
}

/// The running interface's peers differ from what the config says (keys or AllowedIPs).
fn live_differs(spec: &crate::topology::NodeSpec, facts: &HostFacts, keys: &KeyBook) -> bool {
    let live: BTreeMap<String, BTreeSet<String>> = facts
        .wg_dump
        .peers
        .iter()
        .map(|p| {
            (
                p.public_key.to_string(),
                p.allowed_ips.iter().map(|n| n.to_string()).collect(),
            )
        })
        .collect();
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &spec.peers {
        match keys.get(&p.name) {
            Some(k) => {
                want.insert(
                    k.to_string(),
                    p.allowed_ips.iter().map(|n| n.to_string()).collect(),
                );
            }
            None => return true,
        }
    }
    if let Some(i) = &facts.wg_dump.interface
        && i.listen_port != spec.listen_port
    {
        return true;
    }
    live != want
}

fn plan_removal(input: &PlanInput<'_>, name: &NodeName, facts: &HostFacts) -> HostPlan {
    let settings = &input.mesh.settings;
    let iface = settings.interface.as_str();
    let path = conf_path(input);
    let mut hp = HostPlan::new(name.clone(), HostState::Ready);
    hp.host = Some(facts.to_string());
    if facts.config.present || facts.interface_up() || facts.service.enabled() {
        let mut cmds = Vec::new();
        if facts.init.systemd {
            cmds.push(format!("systemctl disable --now wg-quick@{iface}"));
        }
        cmds.push(format!("wg-quick down {}", crate::shell::quote(&path)));
        let c = hp.change(
            Action::Delete,
            ChangeKind::Remove,
            format!("stop {iface}, disable its service, remove {path} (kept as {iface}.conf.meshup-removed; keys kept)"),
            "node is marked `state: absent` in the inventory",
        );
        c.commands = cmds.clone();
        hp.steps.teardown = Some(
            cmds.iter()
                .map(|c| format!("{c} || true"))
                .collect::<Vec<_>>()
                .join("; "),
        );
        for file in &facts.files.psk_files {
            if let Some(peer) = file
                .strip_prefix("psk-")
                .and_then(|f| f.strip_suffix(".key"))
            {
                hp.steps.remove_psks.push(peer.to_string());
            }
        }
    } else {
        hp.unchanged.push(format!("{iface} already removed"));
    }
    hp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{self, AddressLock};
    use crate::facts::{KeyFileState, PublicKeyFile, WgInterfaceDump, WgPeerDump};

    const GUIDE: &str = include_str!("../../inventory/guide.yaml");
    const FRESH: &str = include_str!("../../tests/fixtures/facts/gather/real-fresh-host-dash.txt");

    fn key(n: u8) -> PublicKey {
        let mut bytes = [n; 32];
        bytes[31] = 1;
        PublicKey::from_bytes(bytes).expect("valid test key")
    }

    struct Fixture {
        inventory: Inventory,
        mesh: Mesh,
        playbooks: Playbooks,
    }

    fn fixture(text: &str) -> Fixture {
        let inventory = Inventory::from_str(text, "guide.yaml").expect("valid inventory");
        let (allocation, _) =
            address::allocate(&inventory, &AddressLock::default()).expect("allocate");
        let mesh = Mesh::build(&inventory, &allocation);
        Fixture {
            inventory,
            mesh,
            playbooks: Playbooks::embedded().expect("playbooks"),
        }
    }

    /// A Debian 12 host without WireGuard (the capture's machine had the tools: drop them).
    fn fresh() -> HostFacts {
        let mut h = crate::facts::parse(FRESH).expect("fixture parses");
        for tool in ["wg", "wg-quick", "wireguard-go"] {
            h.commands.found.remove(tool);
        }
        h.wireguard.wg_version = None;
        h.wireguard.wireguard_go_version = None;
        h.wireguard.module_loaded = false;
        h.wireguard.module_available = Some(false);
        h
    }

    /// Facts of a host that runs exactly what the inventory wants (keys 1, 2, 3).
    fn converged(f: &Fixture, node: &str) -> HostFacts {
        let name: NodeName = node.parse().expect("name");
        let index = f
            .mesh
            .nodes
            .iter()
            .position(|n| n.name == name)
            .expect("node") as u8
            + 1;
        let mut h = fresh();
        for tool in ["wg", "wg-quick", "wireguard-go"] {
            h.commands
                .found
                .insert(tool.into(), format!("/usr/bin/{tool}"));
        }
        h.wireguard.wg_version = Some("wireguard-tools v1.0.20210914".into());
        h.keys.private_key = KeyFileState::Valid;
        h.keys.derived_public_key = Some(key(index));
        h.keys.public_key_file = PublicKeyFile::Present(key(index));
        let spec = f.mesh.node(&name).expect("spec");
        for p in &spec.peers {
            h.keys.psks.insert(p.name.to_string(), KeyFileState::Valid);
            h.keys
                .psk_digests
                .insert(p.name.to_string(), "00112233445566aa".into());
        }
        let book = KeyBook {
            known: f
                .mesh
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), key(i as u8 + 1)))
                .collect(),
            pending: BTreeSet::new(),
        };
        h.config.present = true;
        h.config.text = book.render(&f.mesh, &name).0;
        h.wg_dump.interface = Some(WgInterfaceDump {
            private_key_set: true,
            public_key: Some(key(index)),
            listen_port: spec.listen_port,
            fwmark: None,
        });
        h.wg_dump.peers = spec
            .peers
            .iter()
            .map(|p| WgPeerDump {
                public_key: book.get(&p.name).expect("key"),
                preshared_key_set: true,
                endpoint: None,
                allowed_ips: p.allowed_ips.clone(),
                latest_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
                persistent_keepalive: p.persistent_keepalive,
            })
            .collect();
        h.init.systemd = true;
        h.service.enabled_state = Some("enabled".into());
        h.service.active_state = Some("active".into());
        h
    }

    /// Every node of the mesh converged.
    fn all_converged(f: &Fixture) -> BTreeMap<NodeName, Result<HostFacts, String>> {
        f.mesh
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Ok(converged(f, n.name.as_str()))))
            .collect()
    }

    fn plan_of(
        f: &Fixture,
        facts: &BTreeMap<NodeName, Result<HostFacts, String>>,
        limit: Option<&BTreeSet<NodeName>>,
    ) -> (Plan, KeyBook) {
        compute(&PlanInput {
            inventory: &f.inventory,
            mesh: &f.mesh,
            playbooks: &f.playbooks,
            facts,
            limit,
        })
    }

    fn kinds(h: &HostPlan) -> Vec<(char, ChangeKind)> {
        h.changes
            .iter()
            .map(|c| (c.action.symbol(), c.kind))
            .collect()
    }

    fn n(s: &str) -> NodeName {
        s.parse().expect("name")
    }

    #[test]
    fn bare_hosts_get_install_keys_psks_config_and_start_in_order() {
        let f = fixture(GUIDE);
        let facts = f
            .mesh
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Ok(fresh())))
            .collect();
        let (plan, keys) = plan_of(&f, &facts, None);
        assert!(!plan.is_empty() && !plan.has_errors());
        assert_eq!(plan.new_psk_pairs.len(), 3);
        assert_eq!(keys.pending.len(), 3);
        let a = plan.host(&n("node-a")).expect("node-a");
        use ChangeKind::*;
        assert_eq!(
            kinds(a),
            [
                ('+', Install),
                ('+', KeyGen),
                ('+', Psk),
                ('+', Psk),
                ('+', Config),
                ('+', Service)
            ]
        );
        let diff = a
            .changes
            .iter()
            .find_map(|c| c.diff.as_deref())
            .expect("diff");
        assert!(diff.contains("+PublicKey = (generated on host)"), "{diff}");
        assert!(
            diff.contains("+PrivateKey = <secret:private.key>"),
            "{diff}"
        );
        assert!(
            a.steps
                .install
                .as_deref()
                .is_some_and(|c| c.contains("wireguard-tools"))
        );
    }

    #[test]
    fn a_converged_mesh_is_an_empty_plan_with_reasons() {
        let f = fixture(GUIDE);
        let facts = all_converged(&f);
        let (plan, _) = plan_of(&f, &facts, None);
        assert!(
            plan.is_empty(),
            "{:#?}",
            plan.hosts
                .iter()
                .map(|h| (&h.node, &h.changes))
                .collect::<Vec<_>>()
        );
        let a = plan.host(&n("node-a")).expect("node-a");
        assert!(
            a.unchanged
                .iter()
                .any(|r| r.contains("wg0.conf up to date")),
            "{:?}",
            a.unchanged
        );
    }

    #[test]
    fn live_drift_and_file_drift_become_a_live_reload_not_a_restart() {
        let f = fixture(GUIDE);
        let mut facts = all_converged(&f);
        if let Some(Ok(b)) = facts.get_mut(&n("node-b")) {
            b.wg_dump.peers[0].allowed_ips = vec!["10.10.0.99/32".parse().expect("net")];
        }
        if let Some(Ok(c)) = facts.get_mut(&n("node-c")) {
            c.config.text = c
                .config
                .text
                .replace("PersistentKeepalive = 25", "PersistentKeepalive = 5");
        }
        let (plan, _) = plan_of(&f, &facts, None);
        use ChangeKind::*;
        assert_eq!(kinds(plan.host(&n("node-a")).expect("a")), []);
        assert_eq!(kinds(plan.host(&n("node-b")).expect("b")), [('~', Reload)]);
        assert_eq!(
            kinds(plan.host(&n("node-c")).expect("c")),
            [('~', Config), ('~', Reload)]
        );
        let c = plan.host(&n("node-c")).expect("c");
        assert_eq!(c.steps.activation, Some(Activation::LiveReload));
        assert!(
            c.changes[0]
                .diff
                .as_deref()
                .is_some_and(|d| d.contains("-PersistentKeepalive = 5"))
        );
    }

    #[test]
    fn psk_mismatch_rotates_the_pair_on_both_sides() {
        let f = fixture(GUIDE);
        let mut facts = all_converged(&f);
        if let Some(Ok(b)) = facts.get_mut(&n("node-b")) {
            b.keys
                .psk_digests
                .insert("node-a".into(), "ffffffffffffffff".into());
        }
        let (plan, _) = plan_of(&f, &facts, None);
        assert_eq!(plan.new_psk_pairs, [(n("node-a"), n("node-b"))]);
        for host in ["node-a", "node-b"] {
            let h = plan.host(&n(host)).expect("host");
            assert!(
                h.changes
                    .iter()
                    .any(|c| c.kind == ChangeKind::Psk && c.action == Action::Update)
            );
            assert!(
                h.steps.write_config,
                "{host} re-assembles its config with the new key"
            );
        }
        assert!(!plan.host(&n("node-c")).expect("c").has_changes());
    }

    #[test]
    fn unreachable_unknown_distro_and_limit_are_per_host() {
        let f = fixture(GUIDE);
        let mut facts: BTreeMap<_, _> = f
            .mesh
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Ok(fresh())))
            .collect();
        facts.insert(n("node-b"), Err("connection timed out".into()));
        if let Some(Ok(c)) = facts.get_mut(&n("node-c")) {
            c.os_release.id = "plan9".into();
            c.os_release.id_like.clear();
        }
        let (plan, _) = plan_of(&f, &facts, None);
        assert!(plan.has_errors());
        assert!(matches!(
            plan.host(&n("node-b")).expect("b").state,
            HostState::Unreachable(_)
        ));
        assert!(
            matches!(&plan.host(&n("node-c")).expect("c").state, HostState::Error(e) if e.contains("plan9"))
        );
        // node-a still converges: unreachable, never-provisioned node-b is left out of its
        // config (and needs no preshared key yet), with a warning.
        let a = plan.host(&n("node-a")).expect("a");
        assert_eq!(a.state, HostState::Ready);
        assert!(
            a.warnings.iter().any(|w| w.contains("node-b is left out")),
            "{:?}",
            a.warnings
        );
        // A provisioned but unreachable peer whose PSK is missing here blocks the host.
        let mut facts = all_converged(&f);
        facts.insert(n("node-b"), Err("down".into()));
        if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
            a.keys.psks.insert("node-b".into(), KeyFileState::Absent);
        }
        let (plan, _) = plan_of(&f, &facts, None);
        assert!(
            matches!(&plan.host(&n("node-a")).expect("a").state, HostState::Error(e) if e.contains("node-b"))
        );

        let facts = all_converged(&f);
        let limit: BTreeSet<NodeName> = [n("node-a")].into();
        let (plan, _) = plan_of(&f, &facts, Some(&limit));
        assert_eq!(
            plan.host(&n("node-b")).expect("b").state,
            HostState::Skipped
        );
        assert_eq!(plan.host(&n("node-a")).expect("a").state, HostState::Ready);
    }

    #[test]
    fn an_unreachable_peer_keeps_its_key_from_other_configs() {
        let f = fixture(GUIDE);
        let mut facts = all_converged(&f);
        facts.insert(n("node-c"), Err("down".into()));
        let (plan, keys) = plan_of(&f, &facts, None);
        assert_eq!(keys.get(&n("node-c")), Some(key(3)));
        assert!(!plan.host(&n("node-a")).expect("a").has_changes());
    }
}

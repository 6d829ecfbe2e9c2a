//! A firewall playbook: how to open the WireGuard port and allow forwarding.

use serde::Deserialize;

use super::PlaybookError;
use super::distro::{Distro, FirewallPaths};
use super::mesh_marks::MeshMarks;
use super::template::{Fill, Template};
use super::version::Version;
use crate::facts::{FirewallFacts, NftChainRef, valid_interface};

/// A firewall backend meshup can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallKind {
    /// firewalld.
    Firewalld,
    /// ufw.
    Ufw,
    /// nftables with its own restrictive chains.
    Nftables,
    /// iptables with a DROP policy or catch-all rule.
    Iptables,
}

impl FirewallKind {
    /// The backend that filters the host's traffic: firewalld running > ufw active >
    /// nftables with a restrictive input chain > iptables with a DROP policy/rule.
    /// `None`: nothing drops incoming traffic, so nothing needs opening. A disabled
    /// firewall is never picked, so it is never switched on.
    pub fn detect(facts: &FirewallFacts) -> Option<FirewallKind> {
        if facts.firewalld.running {
            Some(FirewallKind::Firewalld)
        } else if facts.ufw.active {
            Some(FirewallKind::Ufw)
        } else if !facts.nftables.restrictive_chains("input").is_empty() {
            Some(FirewallKind::Nftables)
        } else if facts.iptables.available && facts.iptables.input.restrictive() {
            Some(FirewallKind::Iptables)
        } else {
            None
        }
    }
}

/// The commands that close a gap, or none, with the reason either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallAction {
    /// Commands to run, in order; empty means "no change".
    pub commands: Vec<String>,
    /// Why (e.g. "ufw already allows 51820/udp").
    pub reason: String,
}

/// One firewall backend's playbook (`playbooks/firewalls/<file>.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// File stem; the name a user file overrides.
    #[serde(skip)]
    pub file: String,
    /// Human name.
    pub name: String,
    /// Backend.
    pub kind: FirewallKind,
    /// Opens `{port}` (nftables: per chain, with `{family}`, `{table}`, `{chain}`).
    pub open_port: Vec<Template>,
    /// Makes the opened port survive a reboot.
    #[serde(default)]
    pub persist_port: Vec<Template>,
    /// Allows forwarding for `{interface}` (nftables: per chain).
    pub forward: Vec<Template>,
    /// Makes forwarding survive a reboot.
    #[serde(default)]
    pub persist_forward: Vec<Template>,
    /// Accepts everything arriving on `{interface}` (nftables: per input chain).
    #[serde(default)]
    pub trust_input: Vec<Template>,
    /// Makes `trust_input` survive a reboot.
    #[serde(default)]
    pub persist_trust_input: Vec<Template>,
    /// Allows forwarding to `{interface}` (nftables: per forward chain).
    #[serde(default)]
    pub forward_out: Vec<Template>,
    /// Makes `forward_out` survive a reboot.
    #[serde(default)]
    pub persist_forward_out: Vec<Template>,
    /// Removes every rule marked `{marker}` (and meshup's own zone/policy).
    #[serde(default)]
    pub untrust: Vec<Template>,
    /// Makes the removal survive a reboot.
    #[serde(default)]
    pub persist_untrust: Vec<Template>,
    /// Loads the mesh ACL (`{acl_ruleset}`: the nft script's lines) and keeps it in
    /// `{acl_file}` (nftables only).
    #[serde(default)]
    pub acl_apply: Vec<Template>,
    /// Makes the firewall's own boot-time load include the ACL (where this backend is
    /// the host's firewall).
    #[serde(default)]
    pub persist_acl: Vec<Template>,
    /// Removes the mesh ACL (`{acl_table}`, `{acl_file}`) when the rules are gone.
    #[serde(default)]
    pub acl_remove: Vec<Template>,
    /// Takes back what `persist_acl` added.
    #[serde(default)]
    pub persist_acl_remove: Vec<Template>,
    /// Remarks shown with the plan.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Firewall {
    pub(crate) fn from_yaml(stem: &str, file: &str, text: &str) -> Result<Firewall, PlaybookError> {
        let mut fw: Firewall = serde_saphyr::from_str(text).map_err(|e| PlaybookError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        fw.file = stem.to_string();
        let chain_vars: &[&str] = if fw.kind == FirewallKind::Nftables {
            &["family", "table", "chain"]
        } else {
            &[]
        };
        let check = |templates: &[Template], var: &str| -> Result<(), PlaybookError> {
            let mut allowed = vec![
                var,
                "interface",
                "marker",
                "zone",
                "policy",
                "acl_table",
                "acl_file",
            ];
            allowed.extend_from_slice(chain_vars);
            allowed.extend_from_slice(&FirewallPaths::NAMES);
            for t in templates {
                t.check(&allowed)
                    .map_err(|message| PlaybookError::Invalid {
                        file: file.to_string(),
                        message,
                    })?;
            }
            Ok(())
        };
        check(&fw.open_port, "port")?;
        check(&fw.persist_port, "port")?;
        check(&fw.forward, "interface")?;
        check(&fw.persist_forward, "interface")?;
        for list in [
            &fw.trust_input,
            &fw.persist_trust_input,
            &fw.forward_out,
            &fw.persist_forward_out,
            &fw.untrust,
            &fw.persist_untrust,
            &fw.acl_remove,
            &fw.persist_acl,
            &fw.persist_acl_remove,
        ] {
            check(list, "interface")?;
        }
        check(&fw.acl_apply, "acl_ruleset")?;
        if fw.open_port.is_empty() {
            return Err(PlaybookError::Invalid {
                file: file.to_string(),
                message: "open_port is empty".into(),
            });
        }
        Ok(fw)
    }

    /// Incoming UDP to `port` already passes this firewall.
    pub fn port_open(&self, facts: &FirewallFacts, port: u16) -> bool {
        match self.kind {
            FirewallKind::Firewalld => facts.firewalld.allows_udp(port),
            FirewallKind::Ufw => facts.ufw.allows_udp(port),
            FirewallKind::Nftables => facts.nftables.chains_missing_port(port).is_empty(),
            FirewallKind::Iptables => {
                let open =
                    |c: &crate::facts::IptablesChain| !c.restrictive() || c.accepts_udp(port);
                let ipt = &facts.iptables;
                open(&ipt.input) && (!ipt.available6 || open(&ipt.input6))
            }
        }
    }

    /// Forwarded traffic from `interface` already passes this firewall.
    pub fn forward_open(&self, facts: &FirewallFacts, interface: &str) -> bool {
        match self.kind {
            FirewallKind::Firewalld => facts.firewalld.allows_forward(interface),
            FirewallKind::Ufw => facts.ufw.allows_forward(interface),
            FirewallKind::Nftables => facts.nftables.chains_missing_forward(interface).is_empty(),
            FirewallKind::Iptables => {
                !facts.iptables.forward.restrictive()
                    || facts.iptables.forward.accepts_forward(interface)
            }
        }
    }

    /// Commands (open + persist) that let UDP `port` in; none when already open.
    /// Persists to Debian's paths: prefer [`Firewall::open_port_commands_for`].
    pub fn open_port_commands(&self, facts: &FirewallFacts, port: u16) -> FirewallAction {
        self.open_port_commands_on(
            facts,
            port,
            &FirewallPaths::debian(),
            &MeshMarks::new("wg0"),
        )
    }

    /// Commands (open + persist, to `distro`'s firewall paths) that let UDP `port` in.
    pub fn open_port_commands_for(
        &self,
        facts: &FirewallFacts,
        port: u16,
        distro: &Distro,
    ) -> FirewallAction {
        self.open_port_commands_on(facts, port, &distro.firewall, &MeshMarks::new("wg0"))
    }

    pub(crate) fn open_port_commands_on(
        &self,
        facts: &FirewallFacts,
        port: u16,
        paths: &FirewallPaths,
        marks: &MeshMarks,
    ) -> FirewallAction {
        if port == 0 {
            return FirewallAction {
                commands: Vec::new(),
                reason: "port 0 is not a valid WireGuard port".into(),
            };
        }
        let port_text = port.to_string();
        if self.port_open(facts, port) {
            return FirewallAction {
                commands: Vec::new(),
                reason: format!("{} already allows {port}/udp", self.name),
            };
        }
        let commands = self.render_for_chains(
            &self.open_port,
            &self.persist_port,
            Some(&facts.nftables.chains_missing_port(port)),
            &marks.fills(&[("port", &port_text)]),
            paths,
        );
        FirewallAction {
            commands,
            reason: format!("{} does not allow {port}/udp yet", self.name),
        }
    }

    /// Commands (forward + persist) that let traffic from `interface` be forwarded;
    /// none when already allowed or `interface` is not a valid interface name.
    /// Persists to Debian's paths: prefer [`Firewall::forward_commands_for`].
    pub fn forward_commands(&self, facts: &FirewallFacts, interface: &str) -> FirewallAction {
        self.forward_commands_on(facts, interface, &FirewallPaths::debian())
    }

    /// Commands (forward + persist, to `distro`'s firewall paths) that let traffic
    /// from `interface` be forwarded.
    pub fn forward_commands_for(
        &self,
        facts: &FirewallFacts,
        interface: &str,
        distro: &Distro,
    ) -> FirewallAction {
        self.forward_commands_on(facts, interface, &distro.firewall)
    }

    fn forward_commands_on(
        &self,
        facts: &FirewallFacts,
        interface: &str,
        paths: &FirewallPaths,
    ) -> FirewallAction {
        if !valid_interface(interface) {
            return FirewallAction {
                commands: Vec::new(),
                reason: format!("{interface:?} is not a valid interface name"),
            };
        }
        if self.forward_open(facts, interface) {
            return FirewallAction {
                commands: Vec::new(),
                reason: format!("{} already forwards traffic from {interface}", self.name),
            };
        }
        let marks = MeshMarks::new(interface);
        let commands = self.render_for_chains(
            &self.forward,
            &self.persist_forward,
            Some(&facts.nftables.chains_missing_forward(interface)),
            &marks.fills(&[]),
            paths,
        );
        FirewallAction {
            commands,
            reason: format!(
                "{} does not forward traffic from {interface} yet",
                self.name
            ),
        }
    }

    /// Renders `now` then `persist`: once per chain of `chains` for nftables (none
    /// when it is empty), once otherwise; the same command is kept once.
    pub(crate) fn render_for_chains(
        &self,
        now: &[Template],
        persist: &[Template],
        chains: Option<&[NftChainRef]>,
        base: &[(&str, &str)],
        paths: &FirewallPaths,
    ) -> Vec<String> {
        fn fill<'v>(
            base: &[(&'v str, &'v str)],
            chain: Option<&'v NftChainRef>,
            paths: &'v FirewallPaths,
        ) -> Vec<(&'v str, Fill<'v>)> {
            let mut v: Vec<(&str, Fill<'_>)> = base
                .iter()
                .map(|(n, value)| (*n, Fill::One(value)))
                .collect();
            if let Some(c) = chain {
                v.extend(chain_fills(c));
            }
            v.extend(paths.fills());
            v
        }
        let mut commands = Vec::new();
        let mut push = |cmd: Option<String>| {
            if let Some(cmd) = cmd
                && !commands.contains(&cmd)
            {
                commands.push(cmd);
            }
        };
        if let Some(chains) = chains.filter(|_| self.kind == FirewallKind::Nftables) {
            let valid: Vec<&NftChainRef> = chains.iter().filter(|c| valid_nft_ref(c)).collect();
            for chain in &valid {
                let values = fill(base, Some(chain), paths);
                now.iter().for_each(|t| push(Some(t.render(&values))));
            }
            for chain in &valid {
                let values = fill(base, Some(chain), paths);
                persist
                    .iter()
                    .for_each(|t| push(t.render_if_filled(&values)));
            }
        } else {
            let values = fill(base, None, paths);
            now.iter().for_each(|t| push(Some(t.render(&values))));
            persist
                .iter()
                .for_each(|t| push(t.render_if_filled(&values)));
        }
        commands
    }
}

/// firewalld `version` (`firewall-cmd --version`) can allow forwarding per zone
/// (`--add-forward`, firewalld >= 1.0); the error says what to do instead.
pub fn firewalld_forward_supported(version: &str) -> Result<(), String> {
    match Version::parse(version) {
        Some(v) if v >= Version::parse("1.0").unwrap_or_else(|| v.clone()) => Ok(()),
        Some(_) => Err(format!(
            "firewalld {version} has no --add-forward (it came with firewalld 1.0): put the \
             mesh interface into a zone that forwards (e.g. `firewall-cmd --permanent \
             --zone=trusted --change-interface=<interface>`), or tell meshup to leave \
             firewalls alone"
        )),
        None => Err(format!("cannot read the firewalld version {version:?}")),
    }
}

fn chain_fills(c: &NftChainRef) -> [(&'static str, Fill<'_>); 3] {
    [
        ("family", Fill::One(c.family.as_str())),
        ("table", Fill::One(c.table.as_str())),
        ("chain", Fill::One(c.chain.as_str())),
    ]
}

/// Table and chain names from a host are used only when they are plain nft identifiers.
pub(crate) fn valid_nft_ref(c: &NftChainRef) -> bool {
    let ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    };
    matches!(c.family.as_str(), "inet" | "ip" | "ip6") && ident(&c.table) && ident(&c.chain)
}

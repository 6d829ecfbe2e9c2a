//! Mesh traffic through a host's firewalls (`mesh.firewall: trust`), and meshup's rules
//! taken back out (`none`, a node leaving): which backends are active, what each one
//! still lacks, and the playbook commands that close the gap. Every rule meshup adds is
//! marked (`meshup:<interface>`: a comment in nftables, iptables and ufw; in firewalld its
//! own zone `meshup-<interface>` and policy `meshup-<interface>-fw`), so removal touches
//! exactly what meshup added.

use super::firewall::{Firewall, FirewallAction, FirewallKind};
use super::firewall_paths::FirewallPaths;
use super::mesh_marks::MeshMarks;
use super::template::Template;
use crate::facts::{FirewallFacts, FirewalldFacts, IptablesChain, NftChainRef, UfwFacts};

/// One thing a backend lacks for mesh traffic: the plan's line and the commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshGap {
    /// What the step does ("accept mesh traffic arriving on wg0 in nftables ...").
    pub summary: String,
    /// The commands and why.
    pub action: FirewallAction,
}

impl FirewallKind {
    /// Every backend that filters this host's traffic, in the order meshup changes them.
    /// firewalld and ufw own the tables they generate (firewalld's nftables tables,
    /// ufw's iptables chains), so those are changed through them only. A disabled
    /// firewall is never listed, so it is never switched on.
    pub fn active(facts: &FirewallFacts) -> Vec<FirewallKind> {
        let mut out = Vec::new();
        if facts.firewalld.running {
            out.push(FirewallKind::Firewalld);
        }
        if facts.ufw.active {
            out.push(FirewallKind::Ufw);
        }
        let nft = &facts.nftables;
        if !nft.restrictive_chains("input").is_empty()
            || !nft.restrictive_chains("forward").is_empty()
        {
            out.push(FirewallKind::Nftables);
        }
        let ipt = &facts.iptables;
        let owned_by_firewalld = ipt
            .input
            .rules
            .iter()
            .any(|r| r.contains("INPUT_ZONES") || r.contains("INPUT_direct"));
        let restrictive = (ipt.available && (ipt.input.restrictive() || ipt.forward.restrictive()))
            || (ipt.available6 && (ipt.input6.restrictive() || ipt.forward6.restrictive()));
        if restrictive && !facts.ufw.active && !owned_by_firewalld {
            out.push(FirewallKind::Iptables);
        }
        out
    }
}

impl Firewall {
    /// What this backend still lacks so that everything arriving on the mesh interface
    /// is accepted and, on a transit node, forwarded to and from it; plus warnings for
    /// what meshup leaves alone (a mesh interface a user bound to a zone of their own).
    pub fn trust_gaps(
        &self,
        facts: &FirewallFacts,
        marks: &MeshMarks,
        transit: bool,
        paths: &FirewallPaths,
    ) -> (Vec<MeshGap>, Vec<String>) {
        let iface = marks.interface.as_str();
        let mut gaps = Vec::new();
        let mut warnings = Vec::new();
        let mut gap = |summary: String,
                       reason: String,
                       now: &[Template],
                       persist: &[Template],
                       chains: &[NftChainRef]| {
            let commands =
                self.render_for_chains(now, persist, Some(chains), &marks.fills(&[]), paths);
            if !commands.is_empty() {
                gaps.push(MeshGap {
                    summary,
                    action: FirewallAction { commands, reason },
                });
            }
        };
        let name = &self.name;
        let accept_in = format!("accept mesh traffic arriving on {iface} in {name}");
        let forward_from = format!("allow forwarding from {iface} in {name}");
        let forward_to = format!("allow forwarding to {iface} in {name}");
        match self.kind {
            FirewallKind::Nftables => {
                let nft = &facts.nftables;
                for (hook, side, now, persist, summary) in [
                    (
                        "input",
                        "iif",
                        &self.trust_input,
                        &self.persist_trust_input,
                        &accept_in,
                    ),
                    (
                        "forward",
                        "iif",
                        &self.forward,
                        &self.persist_forward,
                        &forward_from,
                    ),
                    (
                        "forward",
                        "oif",
                        &self.forward_out,
                        &self.persist_forward_out,
                        &forward_to,
                    ),
                ] {
                    if hook == "forward" && !transit {
                        continue;
                    }
                    let chains = nft.chains_missing_on(hook, side, iface);
                    if chains.is_empty() {
                        continue;
                    }
                    let names = chains
                        .iter()
                        .map(|r| format!("{} {} {}", r.family, r.table, r.chain))
                        .collect::<Vec<_>>()
                        .join(", ");
                    gap(
                        format!("{summary} (chain {names})"),
                        format!(
                            "{}: nothing accepts {side}name {iface}",
                            chain_list(facts, &chains)
                        ),
                        now,
                        persist,
                        &chains,
                    );
                }
            }
            FirewallKind::Iptables => {
                let ipt = &facts.iptables;
                let families = [(ipt.available, "iptables"), (ipt.available6, "ip6tables")];
                let lacking = |chains: [&IptablesChain; 2], flag: &str| -> Vec<&str> {
                    families
                        .iter()
                        .zip(chains)
                        .filter(|((avail, _), c)| {
                            *avail && c.restrictive() && !c.accepts_on(flag, iface)
                        })
                        .map(|((_, name), _)| *name)
                        .collect()
                };
                let input = lacking([&ipt.input, &ipt.input6], "-i");
                if !input.is_empty() {
                    gap(
                        accept_in.clone(),
                        format!(
                            "{} INPUT drops what no rule accepts and nothing accepts -i {iface}",
                            input.join(" and ")
                        ),
                        &self.trust_input,
                        &self.persist_trust_input,
                        &[],
                    );
                }
                if transit {
                    for (flag, now, persist, summary) in [
                        ("-i", &self.forward, &self.persist_forward, &forward_from),
                        (
                            "-o",
                            &self.forward_out,
                            &self.persist_forward_out,
                            &forward_to,
                        ),
                    ] {
                        let lack = lacking([&ipt.forward, &ipt.forward6], flag);
                        if !lack.is_empty() {
                            gap(
                                summary.clone(),
                                format!(
                                    "{} FORWARD drops what no rule accepts and nothing accepts {flag} {iface}",
                                    lack.join(" and ")
                                ),
                                now,
                                persist,
                                &[],
                            );
                        }
                    }
                }
            }
            FirewallKind::Ufw => {
                let ufw = &facts.ufw;
                if !ufw_accepts_in(ufw, iface) {
                    gap(
                        accept_in.clone(),
                        format!(
                            "ufw's default incoming policy is {} and no rule allows in on {iface}",
                            ufw.default_incoming.as_deref().unwrap_or("unknown")
                        ),
                        &self.trust_input,
                        &self.persist_trust_input,
                        &[],
                    );
                }
                if transit {
                    let routed = ufw.default_routed.as_deref().unwrap_or("unknown");
                    for (out, now, summary) in [
                        (false, &self.forward, &forward_from),
                        (true, &self.forward_out, &forward_to),
                    ] {
                        if !ufw_routes(ufw, iface, out) {
                            gap(
                                summary.clone(),
                                format!(
                                    "ufw's default routed policy is {routed} and no route rule allows {} on {iface}",
                                    if out { "out" } else { "in" }
                                ),
                                now,
                                &[],
                                &[],
                            );
                        }
                    }
                }
            }
            FirewallKind::Firewalld => {
                let fd = &facts.firewalld;
                match firewalld_trusts(fd, marks) {
                    Ok(true) => {}
                    Ok(false) => gap(
                        format!(
                            "{accept_in} (zone {}, target ACCEPT; firewalld reloads)",
                            marks.zone
                        ),
                        match fd.zone_of(iface) {
                            Some(z) => format!(
                                "{iface} is in zone {} (target {}), which does not accept everything",
                                z.name,
                                z.target.as_deref().unwrap_or("default")
                            ),
                            None => format!(
                                "{iface} is in no zone, so the default zone {} filters it",
                                fd.meshup.default_zone.as_deref().unwrap_or("(unknown)")
                            ),
                        },
                        &self.trust_input,
                        &self.persist_trust_input,
                        &[],
                    ),
                    Err(w) => warnings.push(w),
                }
                if transit && !firewalld_forwards(fd, marks) {
                    gap(
                        format!(
                            "allow forwarding to and from {iface} in firewalld (zone {} forwards, policy {}; firewalld reloads)",
                            marks.zone, marks.policy
                        ),
                        format!(
                            "firewalld forwards between zones only where a policy allows it; policy {} is missing",
                            marks.policy
                        ),
                        &self.forward,
                        &self.persist_forward,
                        &[],
                    );
                }
            }
        }
        (gaps, warnings)
    }

    /// The rules (firewalld: the zone and policy) meshup added for this interface.
    pub fn marked(&self, facts: &FirewallFacts, marks: &MeshMarks) -> Vec<String> {
        match self.kind {
            FirewallKind::Nftables => facts.nftables.marked(&marks.marker),
            FirewallKind::Iptables => {
                let ipt = &facts.iptables;
                [
                    ("iptables", "INPUT", &ipt.input),
                    ("iptables", "FORWARD", &ipt.forward),
                    ("ip6tables", "INPUT", &ipt.input6),
                    ("ip6tables", "FORWARD", &ipt.forward6),
                ]
                .into_iter()
                .flat_map(|(t, c, chain)| {
                    chain
                        .marked(&marks.marker)
                        .into_iter()
                        .map(move |r| format!("{t} -A {c} {r}"))
                })
                .collect()
            }
            FirewallKind::Ufw => facts
                .ufw
                .rules
                .iter()
                .filter(|r| r.comment.as_deref() == Some(marks.marker.as_str()))
                .map(|r| format!("{} {} {}", r.to, r.action, r.from))
                .collect(),
            FirewallKind::Firewalld => {
                let fd = &facts.firewalld;
                let mut out = Vec::new();
                let zone_file = format!("{}.xml", marks.zone);
                if fd.zone_named(&marks.zone).is_some() || fd.meshup.file(&zone_file).is_some() {
                    out.push(format!("zone {}", marks.zone));
                }
                let policy_file = format!("{}.xml", marks.policy);
                if fd.meshup.policies.contains(&marks.policy)
                    || fd.meshup.file(&policy_file).is_some()
                {
                    out.push(format!("policy {}", marks.policy));
                }
                out
            }
        }
    }

    /// Commands removing exactly what [`Firewall::marked`] lists; none when nothing is.
    pub fn untrust_commands(
        &self,
        facts: &FirewallFacts,
        marks: &MeshMarks,
        paths: &FirewallPaths,
    ) -> Option<FirewallAction> {
        let marked = self.marked(facts, marks);
        if marked.is_empty() {
            return None;
        }
        let commands = self.render_for_chains(
            &self.untrust,
            &self.persist_untrust,
            None,
            &marks.fills(&[]),
            paths,
        );
        Some(FirewallAction {
            commands,
            reason: format!(
                "{} rule(s) marked {} were added by meshup and nothing else is touched",
                marked.len(),
                marks.marker
            ),
        })
    }

    /// Why this backend would stop mesh traffic as it stands (for `firewall: none`):
    /// one line per chain or policy, empty when it lets everything on the interface in.
    pub fn mesh_blockers(
        &self,
        facts: &FirewallFacts,
        marks: &MeshMarks,
        transit: bool,
    ) -> Vec<String> {
        let (gaps, warnings) = self.trust_gaps(facts, marks, transit, &FirewallPaths::default());
        gaps.into_iter()
            .map(|g| g.action.reason)
            .chain(warnings)
            .collect()
    }
}

fn chain_list(facts: &FirewallFacts, chains: &[NftChainRef]) -> String {
    chains
        .iter()
        .map(|r| {
            let policy = facts.nftables.chain(r).and_then(|c| c.policy.clone());
            let verdict = match policy.as_deref() {
                Some("drop") => "policy drop".to_string(),
                Some(p) => format!("policy {p}, ends in a catch-all drop"),
                None => "ends in a catch-all drop".to_string(),
            };
            format!("chain {} {} {}, {verdict}", r.family, r.table, r.chain)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn ufw_accepts_in(ufw: &UfwFacts, iface: &str) -> bool {
    let on = format!("Anywhere on {iface}");
    ufw.default_incoming.as_deref() == Some("allow")
        || ufw
            .rules
            .iter()
            .any(|r| r.action == "ALLOW IN" && r.to == on && r.from == "Anywhere")
}

/// A route rule allows everything in on `iface` (`out` false: `route allow in on`,
/// printed with the interface in the From column) or out on it (To column).
fn ufw_routes(ufw: &UfwFacts, iface: &str, out: bool) -> bool {
    let on = format!("Anywhere on {iface}");
    ufw.default_routed.as_deref() == Some("allow")
        || ufw.rules.iter().any(|r| {
            let (this, other) = if out {
                (&r.to, &r.from)
            } else {
                (&r.from, &r.to)
            };
            r.action == "ALLOW FWD" && *this == on && other == "Anywhere"
        })
}

/// The interface's runtime zone accepts everything and, when it is meshup's zone, its
/// permanent file says the same. `Err`: the interface is in a zone of the user's that
/// does not accept everything; meshup leaves that binding alone.
fn firewalld_trusts(fd: &FirewalldFacts, marks: &MeshMarks) -> Result<bool, String> {
    let accepts = |target: Option<&str>| target == Some("ACCEPT");
    match fd.zone_of(&marks.interface) {
        Some(z) if z.name == marks.zone => {
            let file = fd.meshup.file(&format!("{}.xml", marks.zone)).unwrap_or("");
            Ok(accepts(z.target.as_deref())
                && file.contains("target=\"ACCEPT\"")
                && file.contains(&format!("<interface name=\"{}\"/>", marks.interface)))
        }
        Some(z) if accepts(z.target.as_deref()) => Ok(true),
        Some(z) if fd.meshup.default_zone.as_deref() != Some(z.name.as_str()) => Err(format!(
            "{} is bound to firewalld zone {} (target {}), which meshup leaves alone: mesh \
             traffic passes only what that zone allows (move it with `firewall-cmd \
             --permanent --zone={} --change-interface={}` and reload to let meshup trust it)",
            marks.interface,
            z.name,
            z.target.as_deref().unwrap_or("default"),
            marks.zone,
            marks.interface
        )),
        _ => Ok(false),
    }
}

/// meshup's zone forwards and its policy lets forwarded traffic into the zone, at
/// runtime and in the permanent configuration.
fn firewalld_forwards(fd: &FirewalldFacts, marks: &MeshMarks) -> bool {
    let zone_forwards = fd
        .zone_named(&marks.zone)
        .is_some_and(|z| z.forward == Some(true));
    let policy_file = fd
        .meshup
        .file(&format!("{}.xml", marks.policy))
        .unwrap_or("");
    zone_forwards
        && fd.meshup.policies.contains(&marks.policy)
        && policy_file.contains("target=\"ACCEPT\"")
        && fd
            .meshup
            .file(&format!("{}.xml", marks.zone))
            .is_some_and(|z| z.contains("<forward/>"))
}

#[cfg(test)]
mod tests;

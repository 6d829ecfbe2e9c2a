//! The mesh ACL rendered for nftables: the rules of meshup's own table
//! (`inet meshup-<interface>`, chain `input`) exactly as `nft list ruleset` prints
//! them, so the gathered table compares line by line with what the ACL wants (a rule
//! deleted or changed by hand shows up as drift), and the commands (playbook data:
//! `acl_apply`, `acl_remove` of the nftables recipe) that load or remove it.

use std::net::IpAddr;

use super::firewall::{Firewall, FirewallAction};
use super::firewall_paths::FirewallPaths;
use super::mesh_marks::MeshMarks;
use super::template::Fill;
use crate::acl::{AclEntry, HostAcl};
use crate::facts::NftablesFacts;
use crate::inventory::AclPort;

/// The chain's header line as nft prints it.
pub const ACL_CHAIN_HEADER: &str = "type filter hook input priority filter; policy accept;";

/// What the ACL table lacks or has too much: the plan's line, the diff and the commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclGap {
    /// The step's line.
    pub summary: String,
    /// `-`/`+` lines of the rules.
    pub diff: String,
    /// Commands and why.
    pub action: FirewallAction,
}

/// The rules of the ACL chain, in order, as `nft list ruleset` prints them.
pub fn acl_rules(acl: &HostAcl, marks: &MeshMarks) -> Vec<String> {
    let iface = &marks.interface;
    let tail = format!("accept comment \"{}\"", marks.marker);
    let mut out = vec![
        format!("iifname != \"{iface}\" {tail}"),
        format!("ct state established,related {tail}"),
    ];
    if acl.icmp {
        out.push(format!("icmp type echo-request {tail}"));
        out.push(format!("icmpv6 type echo-request {tail}"));
    }
    for entry in &acl.entries {
        for rule in entry_rules(entry) {
            let line = format!("{rule} {tail}");
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out.push(format!(
        "iifname \"{iface}\" drop comment \"{}\"",
        marks.marker
    ));
    out
}

fn entry_rules(entry: &AclEntry) -> Vec<String> {
    let saddr = match entry.source {
        None => String::new(),
        Some(IpAddr::V4(a)) => format!("ip saddr {a} "),
        Some(IpAddr::V6(a)) => format!("ip6 saddr {a} "),
    };
    let range = |l: u16, h: u16| {
        if l == h {
            l.to_string()
        } else {
            format!("{l}-{h}")
        }
    };
    match entry.spec {
        AclPort::Tcp(l, h) => vec![format!("{saddr}tcp dport {}", range(l, h))],
        AclPort::Udp(l, h) => vec![format!("{saddr}udp dport {}", range(l, h))],
        AclPort::Icmp => match entry.source {
            Some(IpAddr::V4(_)) => vec![format!("{saddr}icmp type echo-request")],
            Some(IpAddr::V6(_)) => vec![format!("{saddr}icmpv6 type echo-request")],
            None => vec![
                "icmp type echo-request".to_string(),
                "icmpv6 type echo-request".to_string(),
            ],
        },
    }
}

/// The whole nft script: creating the table if missing, deleting it, and defining it
/// again, which `nft -f` applies as one transaction.
pub fn acl_script(acl: &HostAcl, marks: &MeshMarks) -> Vec<String> {
    let table = format!("table inet {}", marks.acl_table);
    let mut out = vec![
        "# Written by meshup: the mesh ACL of this host (mesh.firewall.rules).".to_string(),
        table.clone(),
        format!("delete {table}"),
        format!("{table} {{"),
        "\tchain input {".to_string(),
        format!("\t\t{ACL_CHAIN_HEADER}"),
    ];
    out.extend(
        acl_rules(acl, marks)
            .into_iter()
            .map(|r| format!("\t\t{r}")),
    );
    out.push("\t}".to_string());
    out.push("}".to_string());
    out
}

/// The rules of meshup's ACL chain on the host, `None` when the table or its input
/// chain is missing or the chain is not the input hook with policy accept.
pub fn present_rules(nft: &NftablesFacts, marks: &MeshMarks) -> Option<Vec<String>> {
    let table = nft
        .tables
        .iter()
        .find(|t| t.family == "inet" && t.name == marks.acl_table)?;
    let chain = table.chains.iter().find(|c| c.name == "input")?;
    let header_ok = chain.hook.as_deref() == Some("input")
        && chain.policy.as_deref() == Some("accept")
        && chain.priority.as_deref() == Some("filter");
    Some(if header_ok {
        chain.rules.clone()
    } else {
        Vec::new()
    })
}

/// The table exists on the host (whatever its content).
pub fn acl_table_exists(nft: &NftablesFacts, marks: &MeshMarks) -> bool {
    nft.tables
        .iter()
        .any(|t| t.family == "inet" && t.name == marks.acl_table)
}

impl Firewall {
    /// What loading `acl` into meshup's table changes; `Err` with the reason it needs
    /// no change. `persist`: nftables is the host's firewall, so its boot-time file
    /// includes the ACL too.
    pub fn acl_gap(
        &self,
        nft: &NftablesFacts,
        acl: &HostAcl,
        marks: &MeshMarks,
        paths: &FirewallPaths,
        persist: bool,
    ) -> Result<AclGap, String> {
        let want = acl_rules(acl, marks);
        let have = present_rules(nft, marks);
        let table = format!("inet {}", marks.acl_table);
        if have.as_ref() == Some(&want) {
            return Err(format!(
                "mesh ACL in place: table {table} holds its {} rules",
                want.len()
            ));
        }
        let have = have.unwrap_or_default();
        let mut diff: String = have
            .iter()
            .filter(|r| !want.contains(r))
            .map(|r| format!("-{r}\n"))
            .collect();
        diff.extend(
            want.iter()
                .filter(|r| !have.contains(r))
                .map(|r| format!("+{r}\n")),
        );
        let reason = if !acl_table_exists(nft, marks) {
            format!("table {table} is missing")
        } else if diff.is_empty() {
            diff = want.iter().map(|r| format!("~{r}\n")).collect();
            format!("the rules of table {table} are out of order")
        } else {
            let missing = want.iter().filter(|r| !have.contains(r)).count();
            let extra = have.iter().filter(|r| !want.contains(r)).count();
            format!("table {table} lacks {missing} rule(s) and has {extra} it should not")
        };
        let script = acl_script(acl, marks);
        let mut commands = self.render_acl(&self.acl_apply, marks, Some(&script), paths);
        if persist {
            commands.extend(self.render_acl(&self.persist_acl, marks, None, paths));
        }
        Ok(AclGap {
            summary: format!(
                "enforce the mesh ACL on {}: {} {}, the rest of the mesh traffic to this host dropped (table {table}, {})",
                marks.interface,
                acl.entries.len(),
                if acl.entries.len() == 1 {
                    "entry"
                } else {
                    "entries"
                },
                marks.acl_file
            ),
            diff,
            action: FirewallAction { commands, reason },
        })
    }

    /// Commands removing meshup's ACL table and file (the rules were taken out).
    pub fn acl_removal(&self, marks: &MeshMarks, paths: &FirewallPaths) -> Vec<String> {
        let mut commands = self.render_acl(&self.acl_remove, marks, None, paths);
        commands.extend(self.render_acl(&self.persist_acl_remove, marks, None, paths));
        commands
    }

    fn render_acl(
        &self,
        templates: &[super::template::Template],
        marks: &MeshMarks,
        script: Option<&[String]>,
        paths: &FirewallPaths,
    ) -> Vec<String> {
        let mut values: Vec<(&str, Fill<'_>)> = marks
            .fills(&[])
            .into_iter()
            .map(|(n, v)| (n, Fill::One(v)))
            .collect();
        if let Some(lines) = script {
            values.push(("acl_ruleset", Fill::Many(lines)));
        }
        values.extend(paths.fills());
        templates
            .iter()
            .filter_map(|t| t.render_if_filled(&values))
            .collect()
    }
}

#[cfg(test)]
mod tests;

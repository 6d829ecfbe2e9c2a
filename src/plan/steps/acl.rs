//! The mesh ACL (`mesh.firewall.rules`): meshup's own nftables table holding what this
//! node accepts on the mesh interface, loaded when missing or drifted, removed when the
//! rules are gone. It is enforced on every host, whatever firewall the host runs (or
//! none): an ACL that a host silently did not enforce would be a hole.
use super::HostInput;
use super::network::decide;
use crate::acl::host_acl;
use crate::inventory::FirewallMode;
use crate::plan::step::{Action, Decision};
use crate::playbook::{FirewallAction, FirewallKind, MeshMarks, acl_table_exists, present_rules};

/// Loads, repairs or removes this node's mesh ACL (`mesh.firewall: trust`; with `none`
/// the removal of every `meshup:<interface>` rule takes the table too).
pub fn mesh_acl(h: &HostInput<'_>) -> Vec<Decision> {
    if h.settings().firewall == FirewallMode::None {
        return Vec::new();
    }
    let marks = &MeshMarks::new(h.iface()).with_config_dir(h.settings().config_dir.as_str());
    let nft = &h.facts.firewall.nftables;
    let acl = host_acl(h.mesh, h.spec);
    let Some(fw) = h.playbooks.firewall(FirewallKind::Nftables) else {
        return match acl {
            Some(_) => vec![Decision::warning(
                "the mesh ACL is enforced through the nftables playbook, which is missing: this host does not enforce it",
            )],
            None => Vec::new(),
        };
    };
    let paths = &h.distro.firewall;
    let Some(acl) = acl else {
        if !acl_table_exists(nft, marks) {
            return Vec::new();
        }
        let diff: String = present_rules(nft, marks)
            .unwrap_or_default()
            .iter()
            .map(|r| format!("-{r}\n"))
            .collect();
        let action = FirewallAction {
            commands: fw.acl_removal(marks, paths),
            reason: "mesh.firewall has no rules any more".into(),
        };
        return match decide(
            action,
            format!("remove the mesh ACL (table inet {})", marks.acl_table),
            Action::Delete,
        ) {
            Decision::Change(step) => vec![Decision::Change(step.with_diff(diff))],
            other => vec![other],
        };
    };
    let mut out = Vec::new();
    let persist = FirewallKind::active(&h.facts.firewall).contains(&FirewallKind::Nftables);
    match fw.acl_gap(nft, &acl, marks, paths, persist) {
        Ok(gap) => {
            let kind = if acl_table_exists(nft, marks) {
                Action::Update
            } else {
                Action::Create
            };
            if let Decision::Change(step) = decide(gap.action, gap.summary, kind) {
                out.push(Decision::Change(step.with_diff(gap.diff)));
            }
        }
        Err(reason) => out.push(Decision::unchanged(reason)),
    }
    out
}

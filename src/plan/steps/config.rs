//! Writing the interface config (assembled on the host from its own key files).
use std::fmt::Write as _;

use super::{HostInput, conf_path};
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;

/// Writes the config when its text differs, or re-assembles it when only a secret
/// behind a token changes (a new preshared key: the text is the same, the file is not).
/// Also warns about peers left out because their key is unknown.
pub fn config(h: &HostInput<'_>) -> Vec<Decision> {
    let settings = h.settings();
    let iface = h.iface();
    let name = &h.spec.name;
    let mut out = Vec::new();
    let (desired, left_out) = h.keys.render(h.mesh, name);
    for peer in &left_out {
        out.push(Decision::warning(format!(
            "{peer} is left out of this config: its public key is unknown (unreachable and never provisioned)"
        )));
    }
    let path = conf_path(settings);
    let current = h
        .facts
        .config
        .present
        .then_some(h.facts.config.text.as_str());
    let shell = scripts::call_with_stdin("mu_write_config", &desired);
    if current != Some(desired.as_str()) {
        let pending: Vec<&str> = h
            .peers
            .iter()
            .filter(|p| h.keys.generated_during_run(&p.name))
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
        if h.keys.generated_during_run(name) {
            reason.push_str("; this host's key is generated during apply");
        }
        let action = if current.is_none() {
            Action::Create
        } else {
            Action::Update
        };
        let step = Step::new(
            action,
            StepKind::Config,
            format!("write {path} (mode 600, previous kept as {iface}.conf.meshup-prev)"),
            reason,
            shell,
        );
        out.push(Decision::Change(if h.diffs {
            step.with_diff(config_diff(&path, current, &desired))
        } else {
            step
        }));
    } else if h.keys.rotating.contains(name) {
        out.push(Decision::Change(Step::new(
            Action::Update,
            StepKind::Config,
            format!("re-assemble {path} with the new private key at the flip"),
            "this host's key is rotated; the config text is otherwise up to date",
            shell,
        )));
    } else if !h.new_psk_peers.is_empty() {
        out.push(Decision::Change(Step::new(
            Action::Update,
            StepKind::Config,
            format!("re-assemble {path} with the new preshared keys"),
            "a preshared key of this host changes; the config text is otherwise up to date",
            shell,
        )));
    } else {
        out.push(Decision::unchanged(format!("{path} up to date")));
    }
    out
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

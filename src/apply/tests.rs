//! What `plan -v` shows is what apply sends: every step's shell, byte for byte, in the
//! scripts captured on scripted hosts.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::plan::tests::{GUIDE, converged, fixture, fresh, key, n};
use crate::plan::{FactsMap, PlanInput, StepKind};
use crate::plan::{HostPlan, Phase};
use crate::session::Gathered;
use crate::transport::{ExecOutput, ScriptedSession};

use std::fmt::Write as _;

const NFT_DROP: &str =
    include_str!("../../tests/fixtures/facts/gather/real-debian12-nftables-drop-bash.txt");

/// The guide's mesh with node-a routing a LAN (a transit node) and a node-d that left.
fn inventory_text() -> String {
    GUIDE.replace(
        "    endpoint: 203.0.113.10:51820\n",
        "    endpoint: 203.0.113.10:51820\n    subnets: [192.168.77.0/24]\n",
    ) + "  - name: node-d\n    address: 10.10.0.4\n    state: absent\n"
}

/// Facts that make every kind of step: node-a bare behind an nftables drop policy (no
/// peer names yet), node-b converged but drifted (live AllowedIPs, service not enabled, a
/// stray PSK, node-c's adopted from the interface), node-c converged, node-d (absent) still running with its peer names.
fn facts() -> FactsMap {
    let f = fixture(&inventory_text());
    let mut a = fresh();
    a.firewall = crate::facts::parse(NFT_DROP).expect("fixture").firewall;
    let mut b = converged(&f, "node-b");
    b.wg_dump.peers[0].allowed_ips = vec!["10.10.0.99/32".parse().expect("net")];
    b.service.enabled_state = Some("disabled".into());
    b.files.psk_files.push("psk-old.key".into());
    // node-b runs node-c's preshared key without a file of it (a hand-built pair).
    b.keys
        .psks
        .insert("node-c".into(), crate::facts::KeyFileState::Absent);
    b.keys
        .live_psk_digests
        .insert(key(3), Some("00112233445566aa".into()));
    // node-c: converged by an older meshup that kept keys in the config dir itself.
    let mut c = converged(&f, "node-c");
    c.files.legacy_layout = true;
    let mut d = converged(&f, "node-c");
    d.files.psk_files = vec!["psk-node-a.key".into()];
    [("node-a", a), ("node-b", b), ("node-c", c), ("node-d", d)]
        .into_iter()
        .map(|(name, facts)| (n(name), Ok(facts)))
        .collect()
}

fn answer(node: &str) -> ExecOutput {
    ExecOutput {
        status: Some(0),
        stdout: format!(
            "@@meshup:step:x\n@@meshup:nextkey:{}\n@@meshup:pubkey:{}\n@@meshup:done:{node}\n",
            key(8),
            key(9)
        )
        .into_bytes(),
        stderr: Vec::new(),
    }
}

#[test]
fn every_step_kind_runs_exactly_the_shell_plan_shows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mesh.yaml");
    std::fs::write(&path, inventory_text()).expect("write");
    let session = Session::open(&SessionOptions {
        inventory: path.clone(),
        parallel: 4,
        ..SessionOptions::default()
    })
    .expect("session");
    let facts = facts();
    let input = PlanInput {
        inventory: &session.inventory,
        mesh: &session.mesh,
        playbooks: &session.playbooks,
        facts: &facts,
        limit: None,
        rotate: &[n("node-c")].into(),
        rotate_psk: false,
        paths: &crate::nat_path::PathBook::default(),
    };
    let (plan, _) = plan::compute(&input);
    assert!(!plan.has_errors(), "{plan:#?}");
    // Apply gets the plan as `apply` keeps it after showing it: light, its steps made
    // again host by host by the planner.
    let planner = plan::Planner::new(&input);
    let light = plan_hosts(&planner, |_| {});
    assert!(
        light
            .hosts
            .iter()
            .all(|h| h.steps.iter().all(|s| s.shell.is_empty()))
    );
    let shown = ui::render_plan(&plan, &path, true);

    let hosts: BTreeMap<NodeName, Arc<ScriptedSession>> = ["node-a", "node-b", "node-c", "node-d"]
        .into_iter()
        .map(|h| {
            (
                n(h),
                Arc::new(ScriptedSession::new(h).respond("sh -s", answer(h))),
            )
        })
        .collect();
    let gathered = Gathered {
        sessions: hosts
            .iter()
            .map(|(name, s)| (name.clone(), s.clone() as crate::hosts::Connected))
            .collect(),
        facts: BTreeMap::new(),
    };
    let mut recap = Recap::default();
    execute(
        &session,
        &session.mesh,
        &gathered,
        &light,
        &planner,
        &crate::interrupt::Interrupt::default(),
        &mut recap,
        &mut StatsReport::new(),
    );

    let mut kinds = BTreeSet::new();
    let mut functions = BTreeSet::new();
    // The end of apply: each pair's first handshake, from one side (apply::settle); a
    // read-only exec of its own that carries no step.
    let is_settle = |stdin: &[u8]| String::from_utf8_lossy(stdin).contains("@@meshup:done:settle");
    let settled = hosts
        .values()
        .flat_map(|h| h.calls())
        .filter(|c| is_settle(&c.stdin))
        .count();
    assert!(settled > 0, "the first handshakes were started");
    for host in &plan.hosts {
        let calls: Vec<_> = hosts[&host.node]
            .calls()
            .into_iter()
            .filter(|c| !is_settle(&c.stdin))
            .collect();
        let phases: Vec<Phase> = [Phase::Prepare, Phase::Converge]
            .into_iter()
            .filter(|p| host.phase(*p).next().is_some())
            .collect();
        assert_eq!(
            calls.len(),
            phases.len(),
            "{}: one exec per phase",
            host.node
        );
        for (call, phase) in calls.iter().zip(phases) {
            let sent = String::from_utf8(call.stdin.clone()).expect("utf8");
            let mut body = phase::library(phase);
            for step in host.phase(phase) {
                assert!(
                    shown_shell(&shown, &step.shell),
                    "plan -v shows {:?}",
                    step.shell
                );
                body.push_str(&step.shell);
                body.push('\n');
                kinds.insert(step.kind);
                functions.extend(
                    step.shell
                        .lines()
                        .filter_map(|l| l.split_whitespace().next())
                        .filter(|w| w.starts_with("mu_"))
                        .map(str::to_string),
                );
            }
            body.push_str(phase::footer(phase));
            body.push_str("}\n");
            let values = sent
                .strip_prefix("{\n")
                .and_then(|s| s.strip_suffix(&body))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: sent script is not one group of values + library + the plan's steps:\n{sent}",
                        host.node
                    )
                });
            assert!(
                values.lines().all(|l| l.starts_with("MU_")),
                "only value assignments precede the library: {values}"
            );
        }
    }
    use StepKind::*;
    assert_eq!(
        kinds,
        [
            Migrate, Install, KeyGen, Rotate, Psk, Remove, Flip, Config, HostsFile, Firewall,
            Forwarding, Service, Reload, Route
        ]
        .into(),
        "every step kind is covered"
    );
    for f in [
        "mu_migrate_state",
        "mu_stage_key",
        "mu_arm_flip",
        "mu_wait_lock",
        "mu_install",
        "mu_keygen",
        "mu_store_psk",
        "mu_adopt_psk",
        "mu_remove_psk",
        "mu_teardown",
        "mu_write_config",
        "mu_firewall",
        "mu_forwarding",
        "mu_start",
        "mu_enable",
        "mu_live_reload",
        "mu_hosts_block",
        "mu_route_stage",
        "mu_route",
    ] {
        assert!(functions.contains(f), "{f} is exercised: {functions:?}");
    }
    assert!(
        recap.outcomes.values().all(|o| !o.is_failure()),
        "{:?}",
        recap.outcomes
    );
}

/// The shell of a step as `plan -v` prints it, without the indentation: the text the
/// `run:` block holds, line for line.
pub fn shown_shell(rendered: &str, step_shell: &str) -> bool {
    let mut lines = step_shell.lines();
    let Some(first) = lines.next() else {
        return false;
    };
    let mut expected = format!("      run: {first}\n");
    for line in lines {
        let _ = writeln!(expected, "           {line}");
    }
    rendered.contains(&expected)
}

#[test]
fn the_streamed_plan_is_the_whole_plan_as_json_and_as_text() {
    let f = fixture(GUIDE);
    let facts: FactsMap = ["node-a", "node-b", "node-c"]
        .into_iter()
        .map(|h| (n(h), Ok(fresh())))
        .collect();
    let input = crate::plan::tests::input(&f, &facts);
    let (whole, _) = plan::compute(&input);
    assert!(whole.hosts.iter().all(HostPlan::has_changes));
    let planner = plan::Planner::new(&input);
    let path = std::path::Path::new("mesh.yaml");

    let mut json = Vec::new();
    let light =
        planning::write_plan(&planner, PlanFormat::Json, path, false, &mut json).expect("written");
    let streamed: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
    assert_eq!(streamed, serde_json::to_value(&whole).expect("value"));
    assert!(
        light
            .hosts
            .iter()
            .all(|h| h.steps.iter().all(|s| s.shell.is_empty()))
    );

    let mut text = Vec::new();
    planning::write_plan(&planner, PlanFormat::Text, path, true, &mut text).expect("written");
    assert_eq!(
        String::from_utf8(text).expect("utf8"),
        ui::render_plan(&whole, path, true)
    );
}

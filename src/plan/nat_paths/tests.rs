//! The plan of a NAT pair: punched when the public nodes see both endpoint-independent
//! mappings, with a punch step on both hosts and the AllowedIPs moved in the configs;
//! nothing to do once the direct path is live.
use super::*;
use crate::plan::tests::{Fixture, GUIDE, converged, fixture, n};
use crate::plan::{self, PlanInput, StepKind};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn inventory() -> String {
    GUIDE.replace(
        "  preshared_keys: true\n",
        "  preshared_keys: true\n  nat_punching: true\n",
    ) + "  - name: node-e\n    address: 10.10.0.5\n"
}

/// Public nodes see node-c at 100.64.0.2:51820 and node-e at 100.64.0.3:51820.
fn observed(f: &Fixture, facts: &mut FactsMap) {
    let keys = KeyBook::from_facts(&f.mesh, facts, &|_| true);
    for public in ["node-a", "node-b"] {
        let Some(Ok(h)) = facts.get_mut(&n(public)) else {
            continue;
        };
        for (nat, at) in [
            ("node-c", "100.64.0.2:51820"),
            ("node-e", "100.64.0.3:51820"),
        ] {
            let key = keys.get(&n(nat)).expect("key");
            let entry = h
                .wg_dump
                .peers
                .iter_mut()
                .find(|p| p.public_key == key)
                .expect("entry");
            entry.endpoint = Some(at.into());
            entry.latest_handshake = Some(now() - 10);
        }
    }
}

/// Every node converged as `f` says, with the NAT nodes' mappings seen by the public ones.
fn observed_facts(f: &Fixture) -> FactsMap {
    let mut facts: FactsMap = f
        .mesh
        .nodes
        .iter()
        .map(|s| (s.name.clone(), Ok(converged(f, s.name.as_str()))))
        .collect();
    observed(f, &mut facts);
    facts
}

fn plan_of(f: &Fixture, facts: &FactsMap) -> (plan::Plan, crate::nat_path::PathBook) {
    let (mesh, paths) = learn_paths(&f.mesh, facts, None);
    let input = PlanInput {
        inventory: &f.inventory,
        mesh: &mesh,
        playbooks: &f.playbooks,
        facts,
        limit: None,
        rotate: &Default::default(),
        rotate_psk: false,
        paths: &paths,
    };
    (plan::compute(&input).0, paths)
}

/// A node moving its listen port converges in a wave before its peers; a punch needs
/// both of its hosts at one instant: a pair near the move stays relayed this run.
#[test]
fn a_punch_waits_for_a_run_without_a_move() {
    let f = fixture(&inventory());
    let facts = observed_facts(&f);
    let moved = fixture(&inventory().replace(
        "    endpoint: 203.0.113.10:51820\n",
        "    endpoint: 203.0.113.10:51821\n    listen_port: 51821\n",
    ));
    let (plan, paths) = plan_of(&moved, &facts);
    let pair = paths.pair(&n("node-c"), &n("node-e")).expect("pair");
    assert_eq!(
        pair.kind,
        crate::nat_path::PathKind::Relayed,
        "{}",
        pair.line()
    );
    assert!(
        pair.why.contains(
            "the punch waits for a run without a move: node-a moves its listen port 51820 → 51821"
        ),
        "{}",
        pair.line()
    );
    for host in ["node-c", "node-e"] {
        let h = plan.host(&n(host)).expect("host");
        assert!(h.steps.iter().all(|s| s.kind != StepKind::Punch), "{h:#?}");
    }
}

#[test]
fn an_endpoint_independent_pair_is_punched_then_left_alone() {
    let f = fixture(&inventory());
    let facts = observed_facts(&f);
    let (plan, paths) = plan_of(&f, &facts);
    let pair = paths.pair(&n("node-c"), &n("node-e")).expect("pair");
    assert_eq!(
        pair.kind,
        crate::nat_path::PathKind::Punched,
        "{}",
        pair.line()
    );
    for (host, peer, at, role, allowed) in [
        (
            "node-c",
            "node-e",
            "100.64.0.3:51820",
            "opener",
            "10.10.0.5/32",
        ),
        (
            "node-e",
            "node-c",
            "100.64.0.2:51820",
            "joiner",
            "10.10.0.3/32",
        ),
    ] {
        let h = plan.host(&n(host)).expect("host");
        let punch = h
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Punch)
            .unwrap_or_else(|| panic!("{host} punches: {h:#?}"));
        assert!(
            punch.shell.starts_with(&format!("mu_punch {peer} ")),
            "{}",
            punch.shell
        );
        assert!(
            punch.shell.ends_with(&format!(" {at} 25 {role} {allowed}")),
            "{}",
            punch.shell
        );
        let config = h
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Config)
            .and_then(|s| s.diff.clone())
            .expect("config diff");
        assert!(config.contains(&format!("+Endpoint = {at}")), "{config}");
        // The relay (node-a) no longer carries the other NAT node.
        assert!(config.contains("+AllowedIPs = 10.10.0.1/32\n"), "{config}");
    }
    // A new pair needs its preshared key.
    assert!(plan.new_psk_pairs.contains(&(n("node-c"), n("node-e"))));

    // Once the direct path runs on both sides with a fresh handshake: no change.
    let (mesh, _) = learn_paths(&f.mesh, &facts, None);
    let punched = Fixture {
        inventory: f.inventory.clone(),
        mesh,
        playbooks: crate::playbook::Playbooks::embedded().expect("playbooks"),
    };
    let mut live: FactsMap = punched
        .mesh
        .nodes
        .iter()
        .map(|s| (s.name.clone(), Ok(converged(&punched, s.name.as_str()))))
        .collect();
    observed(&punched, &mut live);
    for (host, peer, at) in [
        ("node-c", "node-e", "100.64.0.3:51820"),
        ("node-e", "node-c", "100.64.0.2:51820"),
    ] {
        let keys = KeyBook::from_facts(&punched.mesh, &live, &|_| true);
        let key = keys.get(&n(peer)).expect("key");
        let Some(Ok(h)) = live.get_mut(&n(host)) else {
            panic!("facts")
        };
        let entry = h
            .wg_dump
            .peers
            .iter_mut()
            .find(|p| p.public_key == key)
            .expect("direct entry");
        entry.endpoint = Some(at.into());
        entry.latest_handshake = Some(now() - 30);
    }
    let (plan, paths) = plan_of(&punched, &live);
    let pair = paths.pair(&n("node-c"), &n("node-e")).expect("pair");
    assert!(pair.why.starts_with("established"), "{}", pair.line());
    // (node-a, now the relay, would only enable forwarding: the fixture has none.)
    for host in ["node-b", "node-c", "node-e"] {
        let h = plan.host(&n(host)).expect("host");
        assert!(!h.has_changes(), "{h:#?}");
    }
}

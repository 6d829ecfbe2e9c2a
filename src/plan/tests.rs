//! Table tests of the plan: facts in, steps (or reasons for no change) out.
use super::*;
use std::collections::BTreeMap;

use crate::address::{self, AddressLock};
use crate::facts::{KeyFileState, PublicKeyFile, WgInterfaceDump, WgPeerDump};
use crate::keys::PublicKey;

pub(crate) const GUIDE: &str = include_str!("../../inventory/guide.yaml");
const FRESH: &str = include_str!("../../tests/fixtures/facts/gather/real-fresh-host-dash.txt");

pub(crate) fn key(n: u8) -> PublicKey {
    let mut bytes = [n; 32];
    bytes[31] = 1;
    PublicKey::from_bytes(bytes).expect("valid test key")
}

pub(crate) struct Fixture {
    pub(crate) inventory: Inventory,
    pub(crate) mesh: Mesh,
    pub(crate) playbooks: Playbooks,
}

pub(crate) fn fixture(text: &str) -> Fixture {
    let inventory = Inventory::from_str(text, "guide.yaml").expect("valid inventory");
    let (allocation, _) = address::allocate(&inventory, &AddressLock::default()).expect("allocate");
    let mesh = Mesh::build(&inventory, &allocation);
    Fixture {
        inventory,
        mesh,
        playbooks: Playbooks::embedded().expect("playbooks"),
    }
}

/// A Debian 12 host without WireGuard (the capture's machine had the tools: drop them).
pub(crate) fn fresh() -> HostFacts {
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
pub(crate) fn converged(f: &Fixture, node: &str) -> HostFacts {
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
    let peers = f.mesh.peers(spec);
    for p in &peers {
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
        rotating: BTreeSet::new(),
    };
    h.config.present = true;
    h.config.text = book.render(&f.mesh, &name).0;
    h.wg_dump.interface = Some(WgInterfaceDump {
        private_key_set: true,
        public_key: Some(key(index)),
        listen_port: spec.listen_port,
        fwmark: None,
    });
    h.wg_dump.peers = peers
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
    h.hosts_file = crate::facts::HostsFileFacts {
        kind: crate::facts::HostsFileKind::Regular,
        blocks: 1,
        block: steps::desired_block(&f.mesh),
        malformed: None,
    };
    h.service.enabled_state = Some("enabled".into());
    h.service.active_state = Some("active".into());
    h
}

/// Every node of the mesh converged.
pub(crate) fn all_converged(f: &Fixture) -> FactsMap {
    f.mesh
        .nodes
        .iter()
        .map(|n| (n.name.clone(), Ok(converged(f, n.name.as_str()))))
        .collect()
}

static NO_NODES: BTreeSet<NodeName> = BTreeSet::new();
static NO_PATHS: std::sync::LazyLock<crate::nat_path::PathBook> =
    std::sync::LazyLock::new(Default::default);

/// The plan input of a fixture: every node, no rotation, no NAT path learned.
pub(crate) fn input<'a>(f: &'a Fixture, facts: &'a FactsMap) -> PlanInput<'a> {
    PlanInput {
        inventory: &f.inventory,
        mesh: &f.mesh,
        playbooks: &f.playbooks,
        facts,
        limit: None,
        rotate: &NO_NODES,
        rotate_psk: false,
        paths: &NO_PATHS,
    }
}

/// The guide mesh with node-a moved to listen port 51821 (a mover).
fn port_moved() -> Fixture {
    fixture(&GUIDE.replace(
        "    endpoint: 203.0.113.10:51820\n",
        "    endpoint: 203.0.113.10:51821\n    listen_port: 51821\n",
    ))
}

fn plan_of(f: &Fixture, facts: &FactsMap, limit: Option<&BTreeSet<NodeName>>) -> (Plan, KeyBook) {
    compute(&PlanInput {
        limit,
        ..input(f, facts)
    })
}

/// `node`'s lock held by another run.
fn lock_held(facts: &mut FactsMap, node: &str, pid: u32, age_secs: Option<u64>) {
    if let Some(Ok(h)) = facts.get_mut(&n(node)) {
        h.files.lock_holder = Some(crate::facts::LockHolder {
            pid: Some(pid),
            comm: "sh".into(),
            user: "root".into(),
            age_secs,
            by: String::new(),
            path: None,
        });
    }
}

fn kinds(h: &HostPlan) -> Vec<(char, StepKind)> {
    h.steps
        .iter()
        .map(|c| (c.action.symbol(), c.kind))
        .collect()
}

fn unreachable(message: &str) -> HostError {
    HostError::Transport {
        message: message.into(),
    }
}

pub(crate) fn n(s: &str) -> NodeName {
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
    use StepKind::*;
    assert_eq!(
        kinds(a),
        [
            ('+', Install),
            ('+', KeyGen),
            ('+', Psk),
            ('+', Psk),
            ('+', Config),
            ('+', HostsFile),
            ('+', Service)
        ]
    );
    let diff = a
        .steps
        .iter()
        .find_map(|c| c.diff.as_deref())
        .expect("diff");
    assert!(diff.contains("+PublicKey = (generated on host)"), "{diff}");
    assert!(
        diff.contains("+PrivateKey = <secret:private.key>"),
        "{diff}"
    );
    assert!(a.steps.iter().any(|s| s.kind == Install
        && s.shell.lines().any(|l| l.starts_with("mu_install "))
        && s.shell.contains("wireguard-tools")));
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
            .map(|h| (&h.node, &h.steps))
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
    use StepKind::*;
    assert_eq!(kinds(plan.host(&n("node-a")).expect("a")), []);
    assert_eq!(kinds(plan.host(&n("node-b")).expect("b")), [('~', Reload)]);
    assert_eq!(
        kinds(plan.host(&n("node-c")).expect("c")),
        [('~', Config), ('~', Reload)]
    );
    let c = plan.host(&n("node-c")).expect("c");
    assert!(
        c.steps
            .iter()
            .any(|s| s.kind == Reload && s.shell.starts_with("mu_live_reload "))
    );
    assert!(
        c.steps[0]
            .diff
            .as_deref()
            .is_some_and(|d| d.contains("-PersistentKeepalive = 5"))
    );
}

#[test]
fn a_hand_built_pairs_preshared_key_is_adopted_when_both_sides_run_the_same() {
    // (node-a's live digest for node-b, node-b's for node-a, node-b keeps its file,
    //  adopting hosts, pairs made new)
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        bool,
        &'static [&'static str],
        usize,
    );
    let cases: &[Case] = &[
        (
            Some("abababababababab"),
            Some("abababababababab"),
            false,
            &["node-a", "node-b"],
            0,
        ),
        // node-b's meshup file holds the same key as node-a's interface.
        (Some("00112233445566aa"), None, true, &["node-a"], 0),
        (
            Some("abababababababab"),
            Some("cdcdcdcdcdcdcdcd"),
            false,
            &[],
            1,
        ),
        (None, Some("abababababababab"), false, &[], 1),
    ];
    for (live_a, live_b, b_file, adopting, new_pairs) in cases {
        let f = fixture(GUIDE);
        let mut facts = all_converged(&f);
        for (host, peer, peer_key, live, file) in [
            ("node-a", "node-b", key(2), live_a, false),
            ("node-b", "node-a", key(1), live_b, *b_file),
        ] {
            if let Some(Ok(h)) = facts.get_mut(&n(host)) {
                if !file {
                    h.keys.psks.insert(peer.into(), KeyFileState::Absent);
                    h.keys.psk_digests.remove(peer);
                }
                h.keys
                    .live_psk_digests
                    .insert(peer_key, live.map(str::to_string));
            }
        }
        let (plan, _) = plan_of(&f, &facts, None);
        assert_eq!(
            plan.new_psk_pairs.len(),
            *new_pairs,
            "{live_a:?} {live_b:?}"
        );
        for (host, peer, peer_key) in [("node-a", "node-b", key(2)), ("node-b", "node-a", key(1))] {
            let h = plan.host(&n(host)).expect("host");
            let adopt = h.steps.iter().find(|s| s.shell.starts_with("mu_adopt_psk"));
            if adopting.contains(&host) {
                let adopt = adopt.expect("adopt step");
                assert_eq!(adopt.shell, format!("mu_adopt_psk {peer} '{peer_key}'"));
                assert_eq!((adopt.kind, adopt.action), (StepKind::Psk, Action::Create));
            } else {
                assert!(adopt.is_none(), "{host}: {:?}", h.steps);
            }
        }
    }
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
            h.steps
                .iter()
                .any(|c| c.kind == StepKind::Psk && c.action == Action::Update)
        );
        assert!(
            h.steps
                .iter()
                .any(|s| s.kind == StepKind::Config && s.shell.starts_with("mu_write_config")),
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
    facts.insert(n("node-b"), Err(unreachable("connection timed out")));
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
        matches!(&plan.host(&n("node-c")).expect("c").state, HostState::Error(e) if e.to_string().contains("plan9"))
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
    facts.insert(n("node-b"), Err(unreachable("down")));
    if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
        a.keys.psks.insert("node-b".into(), KeyFileState::Absent);
    }
    let (plan, _) = plan_of(&f, &facts, None);
    assert!(
        matches!(&plan.host(&n("node-a")).expect("a").state, HostState::Error(e) if e.to_string().contains("node-b"))
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
    facts.insert(n("node-c"), Err(unreachable("down")));
    let (plan, keys) = plan_of(&f, &facts, None);
    assert_eq!(keys.get(&n("node-c")), Some(key(3)));
    assert!(!plan.host(&n("node-a")).expect("a").has_changes());
}

#[test]
fn peers_of_a_node_moving_its_port_wait_for_it() {
    let before = fixture(GUIDE);
    let after = port_moved();
    let facts = all_converged(&before);
    let (plan, _) = plan_of(&after, &facts, None);
    let a = plan.host(&n("node-a")).expect("a");
    assert!(
        a.has_changes() && a.after.is_empty(),
        "the mover goes first"
    );
    for peer in ["node-b", "node-c"] {
        let h = plan.host(&n(peer)).expect("peer");
        assert!(h.has_changes(), "{peer} gets node-a's new endpoint");
        assert_eq!(
            h.after,
            [(n("node-a"), "listen port 51820 → 51821".to_string())],
            "{peer}"
        );
    }
    // A mover that cannot be planned (here: locked by another run) still holds its
    // peers back: apply leaves them on the port that works.
    let mut locked = all_converged(&before);
    lock_held(&mut locked, "node-a", 9, None);
    let (plan, _) = plan_of(&after, &locked, None);
    assert!(plan.host(&n("node-a")).expect("a").failed());
    assert_eq!(plan.host(&n("node-b")).expect("b").after.len(), 1);
    // Outside --limit it moves nothing in this run: nobody waits for it.
    let limit: BTreeSet<NodeName> = [n("node-b"), n("node-c")].into();
    let (plan, _) = plan_of(&after, &facts, Some(&limit));
    assert!(plan.hosts.iter().all(|h| h.after.is_empty()));
    // Nothing moves: nobody waits.
    let (plan, _) = plan_of(&before, &all_converged(&before), None);
    assert!(plan.hosts.iter().all(|h| h.after.is_empty()));
}

#[test]
fn host_by_host_planning_gives_the_same_plan_and_a_light_copy() {
    let before = fixture(GUIDE);
    let after = port_moved();
    let facts = all_converged(&before);
    let (whole, _) = plan_of(&after, &facts, None);
    assert!(whole.hosts.iter().all(HostPlan::has_changes));
    let input = input(&after, &facts);
    let planner = super::Planner::new(&input);
    for shown in &whole.hosts {
        let again = planner.host(&shown.node, false);
        assert_eq!(again.fingerprint, shown.fingerprint, "{}", shown.node);
        assert!(again.steps.iter().all(|s| s.diff.is_none()));
        let mut light = shown.clone();
        light.lighten();
        assert!(light.has_changes() && light.steps.iter().all(|s| s.shell.is_empty()));
        assert_eq!(
            light.steps.iter().map(|s| s.kind).collect::<Vec<_>>(),
            again.steps.iter().map(|s| s.kind).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_host_locked_by_another_run_is_an_error_before_anything_is_shown() {
    let f = fixture(GUIDE);
    let mut facts = all_converged(&f);
    lock_held(&mut facts, "node-b", 812, Some(40));
    let (plan, _) = plan_of(&f, &facts, None);
    let b = plan.host(&n("node-b")).expect("b");
    assert_eq!(
        b.state,
        HostState::Error(HostError::LockHeld {
            path: "/etc/wireguard/.meshup-wg0.lock".into(),
            holder: Some("PID 812 (sh), user root, running for 40 s".into()),
        })
    );
    assert!(!b.has_changes());
    assert!(plan.host(&n("node-a")).expect("a").state == HostState::Ready);
}

#[test]
fn an_older_key_layout_is_moved_and_nothing_else_changes() {
    let f = fixture(GUIDE);
    let mut facts = all_converged(&f);
    if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
        a.files.legacy_layout = true;
        a.files.psk_files = vec!["psk-node-b.key".into(), "psk-node-c.key".into()];
    }
    let (plan, _) = plan_of(&f, &facts, None);
    let a = plan.host(&n("node-a")).expect("a");
    assert_eq!(kinds(a), [('~', StepKind::Migrate)]);
    assert_eq!(a.steps[0].shell, "mu_migrate_state -- node-b node-c");
    assert_eq!(a.steps[0].phase(), Phase::Prepare);
    assert!(!plan.host(&n("node-b")).expect("b").has_changes());
}

#[test]
fn an_inline_private_key_is_moved_into_its_file_and_nothing_else_changes() {
    let f = fixture(GUIDE);
    let mut facts = all_converged(&f);
    if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
        a.files.inline_key = true;
    }
    let (plan, _) = plan_of(&f, &facts, None);
    let a = plan.host(&n("node-a")).expect("a");
    assert_eq!(kinds(a), [('~', StepKind::Migrate)]);
    assert_eq!(a.steps[0].shell, "mu_adopt_key");
    assert_eq!(a.steps[0].phase(), Phase::Prepare);
}

#[test]
fn keys_older_than_the_policy_are_reported() {
    let f = fixture(&GUIDE.replace(
        "  preshared_keys: true\n",
        "  preshared_keys: true\n  key_max_age: 90d\n",
    ));
    assert_eq!(
        f.mesh.settings.key_max_age.map(|a| a.to_string()),
        Some("90d".into())
    );
    let mut facts = all_converged(&f);
    if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
        a.keys.private_key_age_secs = Some(100 * 86_400);
    }
    if let Some(Ok(b)) = facts.get_mut(&n("node-b")) {
        b.keys.private_key_age_secs = Some(10 * 86_400);
    }
    let (plan, _) = plan_of(&f, &facts, None);
    let a = plan.host(&n("node-a")).expect("a");
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("100 days old, over key_max_age 90d")
                && w.contains("meshup rotate --older-than 90d")),
        "{:?}",
        a.warnings
    );
    assert!(plan.host(&n("node-b")).expect("b").warnings.is_empty());
    assert!(plan.is_empty(), "an old key is a warning, not a change");
}

#[test]
fn a_psk_rotation_renews_one_pair_and_both_sides_flip_together() {
    let f = fixture(GUIDE);
    let facts = all_converged(&f);
    let pair: BTreeSet<NodeName> = [n("node-a"), n("node-b")].into();
    let (plan, keys) = compute(&PlanInput {
        rotate: &pair,
        rotate_psk: true,
        ..input(&f, &facts)
    });
    assert!(keys.rotating.is_empty(), "key pairs stay");
    assert_eq!(plan.new_psk_pairs, [(n("node-a"), n("node-b"))]);
    for host in ["node-a", "node-b"] {
        let h = plan.host(&n(host)).expect("host");
        use StepKind::*;
        assert_eq!(
            kinds(h),
            [('~', Psk), ('~', Flip), ('~', Config), ('~', Reload)],
            "{host}"
        );
    }
    assert!(!plan.host(&n("node-c")).expect("c").has_changes());
}

/// The flip step's shell: one side of each pair whose keys change starts the new session
/// (the rotating side if only one rotates, else the NAT node towards a public one, else
/// the lower name).
#[test]
fn a_key_rotation_names_one_side_per_pair_to_start_the_new_session() {
    let f = fixture(GUIDE);
    let facts = all_converged(&f);
    let flips = |rotate: &[&str]| -> Vec<String> {
        let rotate: BTreeSet<NodeName> = rotate.iter().map(|r| n(r)).collect();
        let (plan, _) = compute(&PlanInput {
            rotate: &rotate,
            rotate_psk: false,
            ..input(&f, &facts)
        });
        ["node-a", "node-b", "node-c"]
            .iter()
            .map(|h| {
                let steps = &plan.host(&n(h)).expect("host").steps;
                let flip = steps.iter().find(|s| s.kind == StepKind::Flip);
                flip.map_or_else(String::new, |s| s.shell.clone())
            })
            .collect()
    };
    assert_eq!(
        flips(&["node-a", "node-b", "node-c"]),
        [
            "mu_arm_flip \"$MU_FLIP_AT\" key node-b",
            "mu_arm_flip \"$MU_FLIP_AT\" key",
            "mu_arm_flip \"$MU_FLIP_AT\" key node-a node-b",
        ]
    );
    assert_eq!(
        flips(&["node-b"]),
        [
            "mu_arm_flip \"$MU_FLIP_AT\" peers",
            "mu_arm_flip \"$MU_FLIP_AT\" key node-a node-c",
            "mu_arm_flip \"$MU_FLIP_AT\" peers",
        ]
    );
    // node-c (behind NAT) rotates: it starts the session with both.
    assert_eq!(
        flips(&["node-c"]),
        [
            "mu_arm_flip \"$MU_FLIP_AT\" peers",
            "mu_arm_flip \"$MU_FLIP_AT\" peers",
            "mu_arm_flip \"$MU_FLIP_AT\" key node-a node-b",
        ]
    );
}

/// A move (a node's listen port here) runs in two waves, the mover then its peers, while
/// a flip needs every host of it at one instant: a rotation near a move waits for a run
/// without one, and says why; the move goes ahead.
#[test]
fn a_rotation_waits_for_a_run_without_a_move() {
    let before = fixture(GUIDE);
    let after = port_moved();
    let facts = all_converged(&before);
    for psk in [false, true] {
        let rotate: BTreeSet<NodeName> = [n("node-b"), n("node-c")].into();
        let (plan, _) = compute(&PlanInput {
            rotate: &rotate,
            rotate_psk: psk,
            ..input(&after, &facts)
        });
        for node in ["node-b", "node-c"] {
            let h = plan.host(&n(node)).expect("host");
            let HostState::Error(e) = &h.state else {
                panic!("{node} (psk: {psk}) should wait: {:?}", h.state);
            };
            assert!(
                e.to_string().contains(
                    "node-a moves its listen port 51820 → 51821, which its peers follow only after node-a has applied it"
                ),
                "{e}"
            );
            assert!(!h.steps.iter().any(|s| s.kind == StepKind::Flip), "{node}");
        }
        let a = plan.host(&n("node-a")).expect("a");
        assert!(a.has_changes() && a.after.is_empty(), "the move goes ahead");
        assert!(!a.steps.iter().any(|s| s.kind == StepKind::Flip));
    }
}

#[test]
fn a_rotation_waits_for_every_peer_to_be_reachable() {
    let f = fixture(GUIDE);
    let mut facts = all_converged(&f);
    facts.insert(n("node-c"), Err(unreachable("down")));
    let rotate: BTreeSet<NodeName> = [n("node-a")].into();
    let (plan, keys) = compute(&PlanInput {
        rotate: &rotate,
        ..input(&f, &facts)
    });
    assert!(keys.rotating.is_empty(), "nothing is rotated");
    let a = plan.host(&n("node-a")).expect("a");
    assert!(
        matches!(&a.state, HostState::Error(e) if e.to_string().contains("its peer node-c is unreachable")),
        "{:?}",
        a.state
    );
    assert!(!plan.host(&n("node-b")).expect("b").has_changes());
}

const NFT_DROP: &str =
    include_str!("../../tests/fixtures/facts/gather/real-debian12-nftables-drop-bash.txt");

/// node-a converged, behind a real nftables ruleset (`inet filter` input policy drop).
fn behind_nftables(f: &Fixture) -> FactsMap {
    let mut facts = all_converged(f);
    let mut a = converged(f, "node-a");
    a.firewall = crate::facts::parse(NFT_DROP).expect("fixture").firewall;
    facts.insert(n("node-a"), Ok(a));
    facts
}

#[test]
fn trust_opens_the_port_and_accepts_the_interface_and_none_only_warns() {
    let f = fixture(GUIDE);
    let (plan, _) = plan_of(&f, &behind_nftables(&f), None);
    let a = plan.host(&n("node-a")).expect("node-a");
    let summaries: Vec<&str> = a.steps.iter().map(|s| s.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "open 51820/udp in nftables",
            "accept mesh traffic arriving on wg0 in nftables (chain inet filter input)",
        ]
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);

    let none = fixture(&GUIDE.replace(
        "  network: 10.10.0.0/24\n",
        "  network: 10.10.0.0/24\n  firewall: none\n",
    ));
    let mut facts = behind_nftables(&none);
    let (plan, _) = plan_of(&none, &facts, None);
    let a = plan.host(&n("node-a")).expect("node-a");
    assert!(a.steps.is_empty(), "{:#?}", a.steps);
    assert_eq!(
        a.warnings,
        [
            "mesh.firewall is none, but nftables does not allow 51820/udp: peers cannot reach node-a",
            "mesh.firewall is none, but nftables filters mesh traffic: chain inet filter input, \
             policy drop: nothing accepts iifname wg0",
        ]
    );

    // Switching from trust: the rules meshup added go, and only those.
    if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
        let input = &mut a.firewall.nftables.tables[0].chains[0];
        input
            .rules
            .insert(0, "iifname \"wg0\" accept comment \"meshup:wg0\"".into());
    }
    let (plan, _) = plan_of(&none, &facts, None);
    let a = plan.host(&n("node-a")).expect("node-a");
    assert_eq!(kinds(a), [('-', StepKind::Firewall)]);
    assert_eq!(
        a.steps[0].diff.as_deref(),
        Some("-inet filter input: iifname \"wg0\" accept comment \"meshup:wg0\"\n")
    );
}

/// DNS-name endpoints: the config keeps the name, `wg show` reports whatever address the
/// host resolved it to (or the watchdog moved it to later), and neither side of that
/// difference is a change.
#[test]
fn a_dns_endpoint_is_written_as_the_name_and_its_live_address_is_no_change() {
    let f = fixture(&GUIDE.replace(
        "    endpoint: 198.51.100.20:51820\n",
        "    endpoint: node-b.example.net:51820\n",
    ));
    let mut facts = all_converged(&f);
    for (node, live) in [
        ("node-a", "198.51.100.20:51820"),
        // node-c's watchdog followed the name to node-b's new address.
        ("node-c", "198.51.100.120:51820"),
    ] {
        let Some(Ok(h)) = facts.get_mut(&n(node)) else {
            panic!("{node} facts")
        };
        assert!(
            h.config
                .text
                .contains("Endpoint = node-b.example.net:51820\n"),
            "{}",
            h.config.text
        );
        for peer in &mut h.wg_dump.peers {
            peer.endpoint = Some(if peer.public_key == key(2) {
                live.to_owned()
            } else {
                "203.0.113.10:51820".to_owned()
            });
        }
    }
    let (plan, _) = plan_of(&f, &facts, None);
    for h in &plan.hosts {
        assert_eq!(kinds(h), [], "{}: {:?}", h.node, h.unchanged);
    }
    assert!(plan.is_empty());
    // A config still holding node-b's old address is rewritten with the name.
    if let Some(Ok(c)) = facts.get_mut(&n("node-c")) {
        c.config.text = c.config.text.replace(
            "Endpoint = node-b.example.net:51820",
            "Endpoint = 198.51.100.20:51820",
        );
    }
    let (plan, _) = plan_of(&f, &facts, None);
    let c = plan.host(&n("node-c")).expect("c");
    assert!(
        c.steps[0]
            .diff
            .as_deref()
            .is_some_and(|d| d.contains("+Endpoint = node-b.example.net:51820")),
        "{:?}",
        c.steps
    );
}

/// A pair moving onto a private network, and off it again: both hosts (only they) switch
/// at the agreed instant, each towards the other's new endpoint.
#[test]
fn a_pair_moving_onto_or_off_a_private_network_switches_on_both_hosts_at_the_instant() {
    let public = "mesh:\n  network: 10.10.0.0/24\nnodes:
  - name: a
    endpoint: 203.0.113.1
  - name: b
    endpoint: 203.0.113.2
  - name: c
    endpoint: 203.0.113.3
";
    let on_lan = public
        .replace(
            "  - name: a\n",
            "  - name: a\n    networks: { dc1: 10.0.1.1 }\n",
        )
        .replace(
            "  - name: b\n",
            "  - name: b\n    networks: { dc1: 10.0.1.2 }\n",
        );
    for (from, to, want) in [
        (
            public.to_owned(),
            on_lan.clone(),
            [
                (
                    "a",
                    Some("b onto network dc1 (203.0.113.2:51820 -> 10.0.1.2:51820)"),
                ),
                (
                    "b",
                    Some("a onto network dc1 (203.0.113.1:51820 -> 10.0.1.1:51820)"),
                ),
                ("c", None),
            ],
        ),
        (
            on_lan.clone(),
            on_lan.replace("    networks: { dc1: 10.0.1.2 }\n", ""),
            [
                (
                    "a",
                    Some("b off its private network (10.0.1.2:51820 -> 203.0.113.2:51820)"),
                ),
                (
                    "b",
                    Some("a off its private network (10.0.1.1:51820 -> 203.0.113.1:51820)"),
                ),
                ("c", None),
            ],
        ),
    ] {
        let before = fixture(&from);
        let facts = all_converged(&before);
        let after = fixture(&to);
        let (plan, _) = plan_of(&after, &facts, None);
        for (node, line) in want {
            let host = plan.host(&n(node)).expect("host");
            let moves: Vec<&Step> = host
                .steps
                .iter()
                .filter(|s| s.kind == StepKind::PathMove)
                .collect();
            match line {
                Some(line) => {
                    assert_eq!(moves.len(), 1, "{node}: {:?}", host.steps);
                    assert_eq!(
                        moves[0].summary,
                        format!("at the agreed instant, move the path to {line}"),
                    );
                    assert!(moves[0].shell.starts_with("mu_move_paths \"$MU_FLIP_AT\" "));
                }
                None => assert!(moves.is_empty(), "{node}: {moves:?}"),
            }
        }
    }
}

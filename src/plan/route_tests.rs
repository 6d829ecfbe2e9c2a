//! The exit route, the transit rules and NetworkManager in the plan: which node gets
//! the routing script and what it holds, the exit peer's AllowedIPs, and the step's
//! decisions from the facts (missing, in place, drifted, no longer needed).

use super::tests::{Fixture, GUIDE, all_converged, fixture, input, n};
use super::{Action, FactsMap, Plan, StepKind, compute};
use crate::facts::RouteFacts;
use crate::routing;

/// The guide's mesh with node-a an exit node and node-c (behind NAT) going through it.
fn with_exit(extra_mesh: &str) -> Fixture {
    fixture(
        &GUIDE
            .replace(
                "  preshared_keys: true\n",
                &format!("  preshared_keys: true\n{extra_mesh}"),
            )
            .replace(
                "    endpoint: 203.0.113.10:51820\n",
                "    endpoint: 203.0.113.10:51820\n    exit_node: true\n",
            )
            .replace(
                "    address: 10.10.0.3\n",
                "    address: 10.10.0.3\n    exit_via: node-a\n",
            ),
    )
}

fn plan_of(f: &Fixture, facts: &FactsMap) -> Plan {
    compute(&input(f, facts)).0
}

/// The routing script of `node` in place as the inventory wants it.
fn in_place(f: &Fixture, facts: &mut FactsMap, node: &str) {
    let spec = f.mesh.node(&n(node)).expect("node");
    if let Some(Ok(h)) = facts.get_mut(&n(node)) {
        h.route.file = routing::script(&f.mesh, spec);
        h.route.status = routing::wanted_status(&f.mesh, spec);
        if spec.is_transit {
            h.forward.ipv4 = Some(true);
            h.files.sysctl_forward = true;
        }
    }
}

#[test]
fn only_the_node_using_the_exit_routes_everything_to_it() {
    let f = with_exit("");
    let peer_ips = |node: &str, peer: &str| -> Vec<String> {
        let spec = f.mesh.node(&n(node)).expect("node");
        f.mesh
            .peers(spec)
            .into_iter()
            .find(|p| p.name == n(peer))
            .expect("peer")
            .allowed_ips
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let cases = [
        ("node-c", "node-a", vec!["10.10.0.1/32", "0.0.0.0/0"]),
        ("node-c", "node-b", vec!["10.10.0.2/32"]),
        ("node-b", "node-a", vec!["10.10.0.1/32"]),
        ("node-a", "node-c", vec!["10.10.0.3/32"]),
    ];
    for (node, peer, want) in cases {
        assert_eq!(peer_ips(node, peer), want, "{node}'s entry for {peer}");
    }
    let wanted = |node: &str| {
        routing::wanted_status(&f.mesh, f.mesh.node(&n(node)).expect("node"))
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(wanted("node-a"), ["clamp", "masq"]);
    assert_eq!(wanted("node-b"), Vec::<String>::new());
    assert_eq!(wanted("node-c"), ["exit4"]);
    let script = |node: &str| routing::script(&f.mesh, f.mesh.node(&n(node)).expect("node"));
    assert!(script("node-b").is_none(), "a plain node has no script");
    let a = script("node-a").expect("exit node");
    let c = script("node-c").expect("exit user");
    for (text, line) in [
        (&a, "MASQ4=10.10.0.0/24\n"),
        (&a, "CLAMP=1\n"),
        (&a, "FORWARD=1\n"),
        (&a, "EXIT4=''\n"),
        (&c, "EXIT4=10.10.0.1\n"),
        (&c, "CLAMP=0\n"),
        (&c, "MASQ4=''\n"),
        (&c, "TABLE=51820\n"),
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    let config = crate::render::render_node(
        f.mesh.node(&n("node-c")).expect("node"),
        &f.mesh.peers(f.mesh.node(&n("node-c")).expect("node")),
        &|_| None,
    );
    assert!(
        config.contains(
            "PostUp = [ ! -f /etc/wireguard/meshup-route-wg0.sh ] || sh /etc/wireguard/meshup-route-wg0.sh up || true\nPreDown = [ ! -f /etc/wireguard/meshup-route-wg0.sh ] || sh /etc/wireguard/meshup-route-wg0.sh down\n"
        ),
        "{config}"
    );
}

#[test]
fn a_node_moves_its_route_after_its_exit_took_up_the_role() {
    let f = with_exit("");
    let mut facts = all_converged(&f);
    let after = |facts: &FactsMap| {
        plan_of(&f, facts)
            .host(&n("node-c"))
            .expect("node-c")
            .after
            .clone()
    };
    assert_eq!(
        after(&facts),
        [(
            n("node-a"),
            "exit role (forwarding, masquerade)".to_string()
        )]
    );
    in_place(&f, &mut facts, "node-a");
    assert!(after(&facts).is_empty());
}

#[test]
fn firewall_none_adds_no_rule_but_the_exits_masquerade() {
    let f = with_exit("  firewall: none\n");
    let a = f.mesh.node(&n("node-a")).expect("node");
    assert_eq!(
        routing::wanted_status(&f.mesh, a)
            .into_iter()
            .collect::<Vec<_>>(),
        ["masq"]
    );
    let script = routing::script(&f.mesh, a).expect("script");
    assert!(
        script.contains("CLAMP=0\n") && script.contains("FORWARD=0\n"),
        "{script}"
    );
}

#[test]
fn mss_clamp_false_keeps_forwarding_without_the_clamp() {
    let f = with_exit("  mss_clamp: false\n");
    let a = f.mesh.node(&n("node-a")).expect("node");
    assert_eq!(
        routing::wanted_status(&f.mesh, a)
            .into_iter()
            .collect::<Vec<_>>(),
        ["masq"]
    );
    assert!(
        routing::script(&f.mesh, a)
            .expect("script")
            .contains("CLAMP=0\n")
    );
}

#[test]
fn the_route_step_follows_the_facts() {
    let f = with_exit("");
    let route_steps = |facts: &FactsMap, node: &str| -> Vec<(Action, String)> {
        plan_of(&f, facts)
            .host(&n(node))
            .expect("host")
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Route)
            .map(|s| (s.action, s.shell.clone()))
            .collect()
    };
    // Converged but without the script: written and run, the exit checked.
    let mut facts = all_converged(&f);
    let c = route_steps(&facts, "node-c");
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].0, Action::Create);
    assert!(
        c[0].1
            .starts_with("mu_route_stage <<'MESHUP_EOF_0'\n#!/bin/sh\n")
            && c[0]
                .1
                .ends_with("\nmu_route /etc/wireguard/meshup-route-wg0.sh check"),
        "{}",
        c[0].1
    );
    let a = route_steps(&facts, "node-a");
    assert!(
        a[0].1
            .ends_with("mu_route /etc/wireguard/meshup-route-wg0.sh ''"),
        "{}",
        a[0].1
    );
    // In place: nothing.
    for node in ["node-a", "node-b", "node-c"] {
        in_place(&f, &mut facts, node);
    }
    assert!(plan_of(&f, &facts).is_empty(), "{:#?}", plan_of(&f, &facts));
    // The exit route went (a reboot without it, a hand edit): put back.
    if let Some(Ok(h)) = facts.get_mut(&n("node-c")) {
        h.route.status.clear();
    }
    assert_eq!(route_steps(&facts, "node-c")[0].0, Action::Update);
    // Docker's chain lacks meshup's rules on the exit (a transit node): put back.
    in_place(&f, &mut facts, "node-c");
    if let Some(Ok(h)) = facts.get_mut(&n("node-a")) {
        h.route.status.insert("docker-gap".into());
    }
    assert_eq!(route_steps(&facts, "node-a")[0].0, Action::Update);
    // A node that no longer needs it: taken down and removed.
    let plain = fixture(GUIDE);
    let mut facts = all_converged(&plain);
    if let Some(Ok(h)) = facts.get_mut(&n("node-c")) {
        h.route.file = Some("#!/bin/sh\n".into());
        h.route.status = ["exit4".to_string()].into();
    }
    let steps: Vec<_> = plan_of(&plain, &facts)
        .host(&n("node-c"))
        .expect("host")
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Route)
        .map(|s| (s.action, s.shell.clone()))
        .collect();
    assert_eq!(
        steps,
        [(
            Action::Delete,
            "mu_route_remove /etc/wireguard/meshup-route-wg0.sh".to_string()
        )]
    );
}

#[test]
fn network_manager_gets_a_drop_in_and_networkd_a_warning() {
    let f = fixture(GUIDE);
    let want = "# Written by meshup: NetworkManager leaves the mesh interface alone.\n[keyfile]\nunmanaged-devices=interface-name:wg0\n";
    assert_eq!(super::steps::nm_conf("wg0"), want);
    let cases: [(RouteFacts, Option<Action>, usize); 4] = [
        (RouteFacts::default(), None, 0),
        (
            RouteFacts {
                nm_installed: true,
                nm_running: true,
                ..RouteFacts::default()
            },
            Some(Action::Create),
            0,
        ),
        (
            RouteFacts {
                nm_installed: true,
                nm_conf: Some("[keyfile]\n".into()),
                ..RouteFacts::default()
            },
            Some(Action::Update),
            0,
        ),
        (
            RouteFacts {
                nm_installed: true,
                nm_conf: Some(want.into()),
                netdevs: vec!["/etc/systemd/network/50-wg0.netdev".into()],
                ..RouteFacts::default()
            },
            None,
            1,
        ),
    ];
    for (route, action, warnings) in cases {
        let mut facts = all_converged(&f);
        if let Some(Ok(h)) = facts.get_mut(&n("node-b")) {
            h.route = route.clone();
        }
        let plan = plan_of(&f, &facts);
        let b = plan.host(&n("node-b")).expect("node-b");
        let steps: Vec<_> = b
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Route)
            .collect();
        assert_eq!(steps.first().map(|s| s.action), action, "{route:?}");
        if let Some(step) = steps.first() {
            assert_eq!(
                step.shell,
                format!(
                    "mu_put_file /etc/NetworkManager/conf.d/meshup-wg0.conf 644 <<'MESHUP_EOF_0'\n{want}MESHUP_EOF_0\nmu_nm_reload"
                )
            );
        }
        assert_eq!(
            b.warnings
                .iter()
                .filter(|w| w.contains("systemd-networkd creates wg0"))
                .count(),
            warnings,
            "{:?}",
            b.warnings
        );
    }
}

#[test]
fn a_node_leaving_the_mesh_removes_its_network_manager_drop_in() {
    let f = fixture(&GUIDE.replace(
        "    address: 10.10.0.3",
        "    address: 10.10.0.3\n    state: absent",
    ));
    let want = super::steps::nm_conf("wg0");
    // (the drop-in on node-c, whether node-c's plan removes it): meshup's file goes,
    // whatever it holds now.
    let cases = [
        (None, false),
        (Some(want.as_str()), true),
        (Some("[keyfile]\n"), true),
    ];
    for (conf, removed) in cases {
        let mut facts = all_converged(&f);
        let mut c = super::tests::fresh();
        c.route = RouteFacts {
            nm_installed: true,
            nm_running: true,
            nm_conf: conf.map(str::to_string),
            ..RouteFacts::default()
        };
        facts.insert(n("node-c"), Ok(c));
        let plan = plan_of(&f, &facts);
        let c = plan.host(&n("node-c")).expect("node-c");
        let got: Vec<_> = c
            .steps
            .iter()
            .filter(|s| s.shell.contains("NetworkManager"))
            .map(|s| (s.action, s.shell.as_str()))
            .collect();
        let want_steps = if removed {
            vec![(
                Action::Delete,
                "mu_nm_remove /etc/NetworkManager/conf.d/meshup-wg0.conf",
            )]
        } else {
            Vec::new()
        };
        assert_eq!(got, want_steps, "{conf:?}");
    }
}

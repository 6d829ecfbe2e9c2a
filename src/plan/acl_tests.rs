//! The mesh ACL in the plan: loaded where missing (with the rules as the diff), nothing
//! when in place, repaired when a rule went, removed when the rules are gone.

use super::tests::{Fixture, GUIDE, all_converged, fixture, input, n};
use super::{FactsMap, Plan, StepKind, compute};
use crate::facts::NftablesFacts;
use crate::playbook::{MeshMarks, acl_script};

fn with_acl() -> Fixture {
    fixture(
        &GUIDE
            .replace(
                "  preshared_keys: true\n",
                "  preshared_keys: true\n  firewall:\n    rules:\n      - { from: node-b, to: db, ports: [5432/tcp] }\n",
            )
            .replace("    address: 10.10.0.1\n", "    address: 10.10.0.1\n    groups: [db]\n"),
    )
}

fn plan_of(f: &Fixture, facts: &FactsMap) -> Plan {
    compute(&input(f, facts)).0
}

/// `facts` with node-a's nftables listing holding `listing`.
fn with_table(facts: &mut FactsMap, listing: &str) {
    if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
        a.firewall.nftables = NftablesFacts::parse(listing);
    }
}

#[test]
fn the_acl_is_loaded_kept_repaired_and_removed() {
    let f = with_acl();
    let mut facts = all_converged(&f);
    let plan = plan_of(&f, &facts);
    let a = plan.host(&n("node-a")).expect("node-a");
    assert_eq!(a.steps.len(), 1, "{:#?}", a.steps);
    let step = &a.steps[0];
    assert_eq!(step.kind, StepKind::Firewall);
    assert!(
        step.summary
            .starts_with("enforce the mesh ACL on wg0: 1 entry,"),
        "{}",
        step.summary
    );
    let diff = step.diff.as_deref().unwrap_or_default();
    assert!(
        diff.contains("+ip saddr 10.10.0.2 tcp dport 5432 accept comment \"meshup:wg0\"\n")
            && diff.ends_with("+iifname \"wg0\" drop comment \"meshup:wg0\"\n"),
        "{diff}"
    );
    // Every node gets its ACL (default deny on wg0), the others with no entry.
    for other in ["node-b", "node-c"] {
        let h = plan.host(&n(other)).expect("host");
        assert!(
            h.steps[0]
                .summary
                .starts_with("enforce the mesh ACL on wg0: 0 entries")
        );
    }
    // In place: nothing to do.
    let marks = MeshMarks::new("wg0");
    let acl = crate::acl::host_acl(&f.mesh, f.mesh.node(&n("node-a")).expect("a")).expect("acl");
    let listing = acl_script(&acl, &marks)[3..].join("\n");
    with_table(&mut facts, &listing);
    let plan = plan_of(&f, &facts);
    assert!(plan.host(&n("node-a")).expect("a").steps.is_empty());
    // A rule deleted by hand.
    with_table(
        &mut facts,
        &listing.replace(
            "\t\tct state established,related accept comment \"meshup:wg0\"\n",
            "",
        ),
    );
    let plan = plan_of(&f, &facts);
    let a = plan.host(&n("node-a")).expect("node-a");
    assert_eq!(a.steps[0].action.symbol(), '~');
    assert_eq!(
        a.steps[0].diff.as_deref(),
        Some("+ct state established,related accept comment \"meshup:wg0\"\n")
    );
    // The rules gone from the inventory: the table goes.
    let plain = fixture(GUIDE);
    let mut facts = all_converged(&plain);
    with_table(&mut facts, &listing);
    let plan = plan_of(&plain, &facts);
    let a = plan.host(&n("node-a")).expect("node-a");
    assert_eq!(a.steps.len(), 1, "{:#?}", a.steps);
    assert_eq!(a.steps[0].action.symbol(), '-');
    assert!(
        a.steps[0]
            .shell
            .contains("nft delete table inet meshup-wg0"),
        "{}",
        a.steps[0].shell
    );
    assert!(
        a.steps[0]
            .diff
            .as_deref()
            .unwrap_or_default()
            .contains("-ip saddr 10.10.0.2 tcp dport 5432")
    );
}

#[test]
fn the_config_loads_the_acl_when_the_interface_comes_up() {
    let f = with_acl();
    let text = crate::render::render_config(&f.mesh, &n("node-a"), &|_| None);
    assert!(
        text.contains(
            "PrivateKey = <secret:private.key>\nPostUp = nft -f /etc/wireguard/meshup-acl-wg0.nft\n"
        ),
        "{text}"
    );
    let plain = fixture(GUIDE);
    assert!(!crate::render::render_config(&plain.mesh, &n("node-a"), &|_| None).contains("PostUp"));
}

#[test]
fn a_host_without_nft_is_refused_and_the_others_go_on() {
    let f = with_acl();
    let mut facts = all_converged(&f);
    if let Some(Ok(a)) = facts.get_mut(&n("node-a")) {
        a.commands.found.remove("nft");
    }
    let plan = plan_of(&f, &facts);
    let a = plan.host(&n("node-a")).expect("node-a");
    assert!(
        matches!(&a.state, super::HostState::Error(e) if e.to_string().contains("need nft (package nftables)")),
        "{:?}",
        a.state
    );
    assert!(a.steps.is_empty());
    assert!(!plan.host(&n("node-b")).expect("node-b").steps.is_empty());
}

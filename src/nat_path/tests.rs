use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use crate::facts::{Fallback, WgDump};

fn key(i: u8) -> PublicKey {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode([i; 32])
        .parse()
        .expect("key")
}

fn mesh() -> Mesh {
    let text = "mesh: { network: 10.10.0.0/24, nat_punching: true }\nnodes:\n  - { name: pub-1, endpoint: 203.0.113.1 }\n  - { name: pub-2, endpoint: 203.0.113.2 }\n  - { name: nat-1 }\n  - { name: nat-2 }\n  - { name: nat-3 }\n";
    let inventory = crate::inventory::Inventory::from_str(text, "mesh.yaml").expect("inventory");
    let (allocation, _) =
        crate::address::allocate(&inventory, &crate::address::AddressLock::default())
            .expect("allocate");
    Mesh::build(&inventory, &allocation)
}

const NAMES: [&str; 5] = ["pub-1", "pub-2", "nat-1", "nat-2", "nat-3"];

fn n(s: &str) -> NodeName {
    s.parse().expect("name")
}

fn key_of(name: &NodeName) -> Option<PublicKey> {
    NAMES
        .iter()
        .position(|x| *x == name.as_str())
        .map(|i| key(i as u8 + 1))
}

/// A dump line per (peer, endpoint, handshake time).
fn dump(peers: &[(&str, &str, u64)]) -> WgDump {
    let mut text = String::from("(redacted)\tAAAA\t51820\toff\n");
    for (peer, endpoint, hs) in peers {
        text.push_str(&format!(
            "{}\t(none)\t{endpoint}\t10.10.0.9/32\t{hs}\t0\t0\t25\n",
            key_of(&n(peer)).expect("key")
        ));
    }
    WgDump::parse(&text)
}

const NOW: u64 = 1_000_000;

fn book(dumps: &BTreeMap<&str, WgDump>, lans: &BTreeMap<&str, Vec<IpNet>>) -> PathBook {
    book_with(dumps, lans, &BTreeMap::new())
}

fn book_with(
    dumps: &BTreeMap<&str, WgDump>,
    lans: &BTreeMap<&str, Vec<IpNet>>,
    failed: &BTreeMap<&str, BTreeMap<String, String>>,
) -> PathBook {
    book_at(dumps, lans, failed, &BTreeMap::new(), NOW)
}

fn book_at(
    dumps: &BTreeMap<&str, WgDump>,
    lans: &BTreeMap<&str, Vec<IpNet>>,
    failed: &BTreeMap<&str, BTreeMap<String, String>>,
    fallbacks: &BTreeMap<&str, BTreeMap<String, Fallback>>,
    now: u64,
) -> PathBook {
    let empty = Vec::new();
    let none = BTreeMap::new();
    let no_fallbacks = BTreeMap::new();
    let views: BTreeMap<NodeName, HostView<'_>> = dumps
        .iter()
        .map(|(name, d)| {
            (
                n(name),
                HostView {
                    dump: d,
                    underlay: lans.get(name).unwrap_or(&empty),
                    punch_failed: failed.get(name).unwrap_or(&none),
                    fallbacks: fallbacks.get(name).unwrap_or(&no_fallbacks),
                },
            )
        })
        .collect();
    PathBook::learn(&mesh(), &key_of, &views, now, &|_| false)
}

fn public_views(seen: &[(&str, &str, &str)]) -> BTreeMap<&'static str, WgDump> {
    let mut out = BTreeMap::new();
    for public in ["pub-1", "pub-2"] {
        let peers: Vec<(&str, &str, u64)> = seen
            .iter()
            .filter(|(p, _, _)| *p == public)
            .map(|(_, node, ep)| (*node, *ep, NOW - 10))
            .collect();
        out.insert(public, dump(&peers));
    }
    for nat in ["nat-1", "nat-2", "nat-3"] {
        out.insert(nat, dump(&[]));
    }
    out
}

#[test]
fn mappings_are_classified_by_what_two_public_nodes_see() {
    let dumps = public_views(&[
        ("pub-1", "nat-1", "100.64.0.2:51820"),
        ("pub-2", "nat-1", "100.64.0.2:51820"),
        ("pub-1", "nat-2", "100.64.0.3:40000"),
        ("pub-2", "nat-2", "100.64.0.3:40001"),
        ("pub-1", "nat-3", "100.64.0.4:51820"),
    ]);
    let b = book(&dumps, &BTreeMap::new());
    let kinds: Vec<Mapping> = b.mappings.iter().map(|m| m.mapping).collect();
    assert_eq!(
        kinds,
        [
            Mapping::EndpointIndependent,
            Mapping::Symmetric,
            Mapping::Unknown
        ]
    );
    let p12 = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p12.kind, PathKind::Relayed);
    assert!(p12.why.contains("symmetric"), "{}", p12.why);
    assert!(p12.why.contains("100.64.0.3:40001"), "{}", p12.why);
    let p13 = b.pair(&n("nat-1"), &n("nat-3")).expect("pair");
    assert_eq!(p13.kind, PathKind::Relayed);
    assert!(p13.why.contains("one observer"), "{}", p13.why);
    assert!(b.direct().is_empty());
}

#[test]
fn two_endpoint_independent_nats_are_punched_at_the_mapped_addresses() {
    let dumps = public_views(&[
        ("pub-1", "nat-1", "100.64.0.2:51820"),
        ("pub-2", "nat-1", "100.64.0.2:51820"),
        ("pub-1", "nat-2", "100.64.0.3:51820"),
        ("pub-2", "nat-2", "100.64.0.3:51820"),
    ]);
    let b = book(&dumps, &BTreeMap::new());
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Punched);
    assert_eq!(p.a_to_b.as_deref(), Some("100.64.0.3:51820"));
    assert_eq!(p.b_to_a.as_deref(), Some("100.64.0.2:51820"));
    assert!(p.punch.is_some());
    let direct = b.direct();
    assert_eq!(direct.len(), 2);
    let m = mesh().with_direct_nat(direct);
    let nat1 = m.node(&n("nat-1")).expect("nat-1");
    let peers = m.peers(nat1);
    let to2 = peers.iter().find(|p| p.name == n("nat-2")).expect("direct");
    assert_eq!(to2.endpoint.as_deref(), Some("100.64.0.3:51820"));
    assert_eq!(to2.persistent_keepalive, Some(25));
    let relay = peers.iter().find(|p| p.name == n("pub-1")).expect("relay");
    let nat2 = m.node(&n("nat-2")).expect("nat-2");
    assert!(
        !relay
            .allowed_ips
            .iter()
            .any(|net| net.contains(&IpAddr::V4(nat2.address))),
        "the relay no longer carries nat-2: {:?}",
        relay.allowed_ips
    );

    // Once live on both sides with a fresh handshake, nothing is punched again.
    let mut dumps = dumps;
    dumps.insert("nat-1", dump(&[("nat-2", "100.64.0.3:51820", NOW - 30)]));
    dumps.insert("nat-2", dump(&[("nat-1", "100.64.0.2:51820", NOW - 30)]));
    let b = book(&dumps, &BTreeMap::new());
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!((p.kind, p.punch.as_deref()), (PathKind::Punched, None));
    assert!(p.why.starts_with("established"), "{}", p.why);

    // A NAT that renumbered: the public nodes see nat-1 elsewhere; back to the relay now,
    // and once the direct entries are gone, punched again.
    dumps.insert(
        "pub-1",
        dump(&[
            ("nat-1", "100.65.0.2:51820", NOW - 5),
            ("nat-2", "100.64.0.3:51820", NOW - 5),
        ]),
    );
    dumps.insert(
        "pub-2",
        dump(&[
            ("nat-1", "100.65.0.2:51820", NOW - 5),
            ("nat-2", "100.64.0.3:51820", NOW - 5),
        ]),
    );
    let b = book(&dumps, &BTreeMap::new());
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Relayed);
    assert!(p.why.contains("dead"), "{}", p.why);
    assert!(
        p.why.contains("nat-1 is now seen at 100.65.0.2:51820"),
        "{}",
        p.why
    );
    dumps.insert("nat-1", dump(&[]));
    dumps.insert("nat-2", dump(&[]));
    let b = book(&dumps, &BTreeMap::new());
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Punched);
    assert_eq!(p.b_to_a.as_deref(), Some("100.65.0.2:51820"));
    assert!(p.punch.is_some());
}

#[test]
fn nodes_behind_one_public_address_peer_over_their_lan() {
    let dumps = public_views(&[
        ("pub-1", "nat-1", "100.64.0.2:51820"),
        ("pub-2", "nat-1", "100.64.0.2:51820"),
        ("pub-1", "nat-2", "100.64.0.2:15188"),
        ("pub-2", "nat-2", "100.64.0.2:15188"),
    ]);
    let lans = BTreeMap::from([
        ("nat-1", vec!["172.16.1.2/24".parse().expect("net")]),
        ("nat-2", vec!["172.16.1.3/24".parse().expect("net")]),
    ]);
    let b = book(&dumps, &lans);
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Lan, "{}", p.why);
    assert_eq!(p.a_to_b.as_deref(), Some("172.16.1.3:51820"));
    assert_eq!(p.b_to_a.as_deref(), Some("172.16.1.2:51820"));
    // Without LAN addresses: relayed, never through the router's hairpin.
    let b = book(&dumps, &BTreeMap::new());
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Relayed);
    assert!(p.why.contains("no hairpin"), "{}", p.why);
}

#[test]
fn a_pair_with_a_side_out_of_reach_keeps_what_it_runs() {
    let mut dumps = public_views(&[
        ("pub-1", "nat-1", "100.64.0.2:51820"),
        ("pub-2", "nat-1", "100.64.0.2:51820"),
        ("pub-1", "nat-2", "100.64.0.3:51820"),
        ("pub-2", "nat-2", "100.64.0.3:51820"),
    ]);
    dumps.insert("nat-1", dump(&[("nat-2", "100.64.0.3:51820", NOW - 30)]));
    dumps.remove("nat-2");
    let b = book(&dumps, &BTreeMap::new());
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Punched, "{}", p.line());
    assert_eq!(p.a_to_b.as_deref(), Some("100.64.0.3:51820"));
    assert_eq!(p.b_to_a.as_deref(), Some("100.64.0.2:51820"));
    assert!(p.why.contains("nat-2 is unreachable"), "{}", p.why);
    assert!(p.punch.is_none());
    // Relayed and one side outside --limit: no punch, the relay stays.
    let dumps = public_views(&[
        ("pub-1", "nat-1", "100.64.0.2:51820"),
        ("pub-2", "nat-1", "100.64.0.2:51820"),
        ("pub-1", "nat-2", "100.64.0.3:51820"),
        ("pub-2", "nat-2", "100.64.0.3:51820"),
    ]);
    let none = BTreeMap::new();
    let no_fallbacks = BTreeMap::new();
    let views: BTreeMap<NodeName, HostView<'_>> = dumps
        .iter()
        .map(|(name, d)| {
            (
                n(name),
                HostView {
                    dump: d,
                    underlay: &[],
                    punch_failed: &none,
                    fallbacks: &no_fallbacks,
                },
            )
        })
        .collect();
    let b = PathBook::learn(&mesh(), &key_of, &views, NOW, &|x| x.as_str() == "nat-2");
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Relayed);
    assert!(p.why.contains("nat-2 is outside --limit"), "{}", p.why);
}

#[test]
fn a_punch_that_failed_is_not_tried_again_at_the_same_addresses() {
    let dumps = public_views(&[
        ("pub-1", "nat-1", "100.64.0.2:51820"),
        ("pub-2", "nat-1", "100.64.0.2:51820"),
        ("pub-1", "nat-2", "100.64.0.3:51820"),
        ("pub-2", "nat-2", "100.64.0.3:51820"),
    ]);
    let failed = BTreeMap::from([(
        "nat-1",
        BTreeMap::from([("nat-2".to_string(), "100.64.0.3:51820".to_string())]),
    )]);
    let b = book_with(&dumps, &BTreeMap::new(), &failed);
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Relayed);
    assert!(p.why.contains("punching failed before"), "{}", p.why);
    // Another mapping: tried again.
    let failed = BTreeMap::from([(
        "nat-1",
        BTreeMap::from([("nat-2".to_string(), "100.64.0.9:51820".to_string())]),
    )]);
    let b = book_with(&dumps, &BTreeMap::new(), &failed);
    assert_eq!(
        b.pair(&n("nat-1"), &n("nat-2")).expect("pair").kind,
        PathKind::Punched
    );
}

/// The watchdog fell back from a punched path (it removed its direct entry): within 30 s
/// of the fallback the relay stays; after that the pair is punched again at the mappings
/// now seen. A side whose dead entry is still there keeps the pair on the relay for this
/// run, as the same entries without a record do ("dead, back to the relay").
#[test]
fn a_watchdog_fallback_is_shown_and_punched_again_once_the_nats_forgot_the_path() {
    let mut dumps = public_views(&[
        ("pub-1", "nat-1", "100.65.0.2:51820"),
        ("pub-2", "nat-1", "100.65.0.2:51820"),
        ("pub-1", "nat-2", "100.64.0.3:51820"),
        ("pub-2", "nat-2", "100.64.0.3:51820"),
    ]);
    // Both watchdogs removed their dead direct entries (handshake 150 s before).
    let at = NOW - 100;
    let record = |relay: &str| Fallback {
        relay: relay.into(),
        at,
        was: "100.64.0.3:51820".into(),
        silent: 150,
    };
    let fallbacks = BTreeMap::from([
        (
            "nat-1",
            BTreeMap::from([("nat-2".to_string(), record("pub-1"))]),
        ),
        (
            "nat-2",
            BTreeMap::from([("nat-1".to_string(), record("pub-1"))]),
        ),
    ]);
    let none = BTreeMap::new();
    let lans = BTreeMap::new();
    // (when, kind, punch)
    let cases = [
        (at + 10, PathKind::Relayed, false),
        (at + 29, PathKind::Relayed, false),
        (at + 30, PathKind::Punched, true),
        (at + 90, PathKind::Punched, true),
    ];
    for (now, kind, punch) in cases {
        let b = book_at(&dumps, &lans, &none, &fallbacks, now);
        let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
        assert_eq!(p.kind, kind, "{now}: {}", p.why);
        assert!(
            p.why.starts_with("the watchdog fell back to pub-1 at "),
            "{now}: {}",
            p.why
        );
        assert!(p.why.contains("no handshake for 150 s"), "{now}: {}", p.why);
        assert_eq!(p.punch.is_some(), punch, "{now}: {}", p.line());
        if punch {
            // At the mappings as the public nodes see them now (nat-1 moved).
            assert_eq!(p.b_to_a.as_deref(), Some("100.65.0.2:51820"));
            assert_eq!(p.a_to_b.as_deref(), Some("100.64.0.3:51820"));
            assert!(p.line().contains("apply punches: again"), "{}", p.line());
        } else {
            assert!(p.why.contains("a run from "), "{}", p.why);
            assert!(
                p.line()
                    .starts_with("nat-1 ↔ nat-2: relayed via pub-1: the watchdog fell back"),
                "{}",
                p.line()
            );
        }
    }
    // One side fell back, the other still has its dead entry: relayed in this run.
    let one = BTreeMap::from([(
        "nat-2",
        BTreeMap::from([("nat-1".to_string(), record("pub-1"))]),
    )]);
    dumps.insert("nat-1", dump(&[("nat-2", "100.64.0.3:51820", at - 150)]));
    let b = book_at(&dumps, &lans, &none, &one, at + 60);
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Relayed);
    assert!(
        p.why.contains("nat-1 still has its direct entry"),
        "{}",
        p.why
    );
    assert!(p.punch.is_none());
    // The same dead entries without any record: dead, no punch now.
    dumps.insert("nat-2", dump(&[("nat-1", "100.64.0.2:51820", at - 150)]));
    let b = book_at(&dumps, &lans, &none, &BTreeMap::new(), at + 60);
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Relayed);
    assert!(p.why.contains("the direct path is dead"), "{}", p.why);
    assert!(p.punch.is_none());
    // A punch that failed at these addresses still keeps the relay.
    dumps.insert("nat-1", dump(&[]));
    dumps.insert("nat-2", dump(&[]));
    let failed = BTreeMap::from([(
        "nat-1",
        BTreeMap::from([("nat-2".to_string(), "100.64.0.3:51820".to_string())]),
    )]);
    let b = book_at(&dumps, &lans, &failed, &fallbacks, at + 60);
    let p = b.pair(&n("nat-1"), &n("nat-2")).expect("pair");
    assert_eq!(p.kind, PathKind::Relayed);
    assert!(p.why.contains("punching failed before"), "{}", p.why);
}

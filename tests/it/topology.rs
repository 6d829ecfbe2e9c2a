//! Topology and rendering: the guide's configs line for line, and each mesh shape.
use std::collections::BTreeMap;

use meshup::address::{self, AddressLock};
use meshup::inventory::{Inventory, NodeName};
use meshup::keys::PublicKey;
use meshup::render::render_config;
use meshup::topology::{Mesh, NodeSpec, PeerSpec, Role};

use crate::support_core::{mesh, name, root};

/// Fixed test public keys of the guide's nodes.
fn guide_keys() -> BTreeMap<String, PublicKey> {
    [
        ("node-a", "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="),
        ("node-b", "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="),
        ("node-c", "gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA="),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), k.parse().expect("valid test key")))
    .collect()
}

fn guide_mesh() -> Mesh {
    let inventory = Inventory::load(root().join("inventory/guide.yaml")).expect("guide.yaml");
    let (allocation, _) = address::allocate(&inventory, &AddressLock::default()).expect("allocate");
    Mesh::build(&inventory, &allocation)
}

/// The guide writes placeholders; map our keys and tokens onto them.
fn substitute_guide_placeholders(node: &str, text: &str) -> String {
    let mut text = text.replace("<secret:private.key>", &format!("<{node} private key>"));
    for (peer, key) in guide_keys() {
        text = text.replace(&key.to_string(), &format!("<{peer} public key>"));
        let mut pair = [
            node.trim_start_matches("node-"),
            peer.trim_start_matches("node-"),
        ];
        pair.sort();
        text = text.replace(
            &format!("<secret:psk-{peer}.key>"),
            &format!("<psk-{}{} content>", pair[0], pair[1]),
        );
    }
    text
}

/// (section, key, value) for the fields the guide shows, in order.
fn fields(text: &str) -> Vec<(String, String, String)> {
    const KEYS: &[&str] = &[
        "Address",
        "ListenPort",
        "PrivateKey",
        "PublicKey",
        "PresharedKey",
        "Endpoint",
        "AllowedIPs",
        "PersistentKeepalive",
    ];
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
        } else if let Some((key, value)) = line.split_once(" = ")
            && KEYS.contains(&key)
        {
            out.push((section.clone(), key.to_owned(), value.to_owned()));
        }
    }
    out
}

#[test]
fn guide_configs_match_the_guide_line_for_line() {
    let mesh = guide_mesh();
    let keys = guide_keys();
    let lookup = |n: &NodeName| keys.get(n.as_str()).copied();
    for node in ["node-a", "node-b", "node-c"] {
        let rendered = render_config(&mesh, &name(node), &lookup);
        insta::assert_snapshot!(format!("guide_{node}_wg0_conf"), rendered);
        let guide = std::fs::read_to_string(
            root().join(format!("tests/fixtures/inventory/guide-wg0/{node}.conf")),
        )
        .expect("guide fixture");
        let ours = fields(&substitute_guide_placeholders(node, &rendered));
        let theirs = fields(&guide);
        assert_eq!(ours, theirs, "{node}: rendered\n{rendered}");
        assert!(rendered.contains("PrivateKey = <secret:private.key>"));
    }
}

#[test]
fn rendering_is_deterministic_and_marks_peers() {
    let mesh = guide_mesh();
    let first = render_config(&mesh, &name("node-a"), &|_| None);
    let second = render_config(&mesh, &name("node-a"), &|_| None);
    assert_eq!(first, second);
    assert_eq!(first.matches("PublicKey = (generated on host)").count(), 2);
    let peer_b = first
        .find("# Peer: node-b\n[Peer]")
        .expect("comment before peer b");
    let peer_c = first
        .find("# Peer: node-c\n[Peer]")
        .expect("comment before peer c");
    assert!(peer_b < peer_c);
    assert!(first.contains("PresharedKey = <secret:psk-node-b.key>"));
    assert_eq!(render_config(&mesh, &name("nobody"), &|_| None), "");
}

fn peer(mesh: &Mesh, spec: &NodeSpec, peer: &str) -> PeerSpec {
    mesh.peers(spec)
        .into_iter()
        .find(|p| p.name.as_str() == peer)
        .unwrap_or_else(|| panic!("{} has no peer {peer}", spec.name))
}

fn node<'a>(mesh: &'a Mesh, node: &str) -> &'a NodeSpec {
    mesh.node(&name(node))
        .unwrap_or_else(|| panic!("no node {node}"))
}

fn allowed(peer: &PeerSpec) -> Vec<String> {
    peer.allowed_ips.iter().map(ToString::to_string).collect()
}

#[test]
fn three_public_nodes_form_a_full_mesh_with_keepalive() {
    let mesh = mesh(
        "mesh:\n  network: 10.1.0.0/24\nnodes:\n  - name: c\n    endpoint: 192.0.2.3\n  - name: a\n    endpoint: 192.0.2.1\n  - name: b\n    endpoint: 192.0.2.2:4000\n",
    );
    let names: Vec<&str> = mesh.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "nodes in name order");
    for spec in &mesh.nodes {
        assert_eq!(spec.role, Role::Public);
        assert!(!spec.is_transit);
        assert_eq!(mesh.peers(spec).len(), 2);
        for p in &mesh.peers(spec) {
            assert!(p.endpoint.is_some());
            assert_eq!(p.persistent_keepalive, Some(25));
            assert!(!p.psk);
        }
    }
    assert_eq!(
        peer(&mesh, node(&mesh, "a"), "b").endpoint.as_deref(),
        Some("192.0.2.2:4000")
    );
    // c is first in the file, so it got the first address.
    assert_eq!(
        allowed(&peer(&mesh, node(&mesh, "a"), "c")),
        ["10.1.0.1/32"]
    );
}

#[test]
fn public_nodes_reach_a_nat_node_without_endpoint_or_keepalive() {
    let mesh = mesh(
        "mesh:\n  network: 10.1.0.0/24\n  persistent_keepalive: 15\nnodes:\n  - name: a\n    endpoint: 192.0.2.1\n  - name: b\n    endpoint: 192.0.2.2\n  - name: n\n",
    );
    let nat = node(&mesh, "n");
    assert_eq!(nat.role, Role::Nat);
    assert_eq!(nat.relay, None, "a single NAT node needs no relay");
    for public in ["a", "b"] {
        let towards_nat = peer(&mesh, node(&mesh, public), "n");
        assert_eq!(towards_nat.endpoint, None);
        assert_eq!(towards_nat.persistent_keepalive, None);
        let from_nat = peer(&mesh, nat, public);
        assert!(from_nat.endpoint.is_some());
        assert_eq!(from_nat.persistent_keepalive, Some(15));
    }
}

#[test]
fn two_nat_nodes_talk_through_a_relay() {
    let text = "mesh:\n  network: 10.1.0.0/24\nnodes:\n  - name: pub-z\n    endpoint: 192.0.2.9\n  - name: pub-b\n    endpoint: 192.0.2.2\n  - name: n1\n    subnets: [192.168.10.0/24]\n  - name: n2\n  - name: n3\n    relay: pub-z\n";
    let mesh = mesh(text);
    let n1 = node(&mesh, "n1");
    let n2 = node(&mesh, "n2");
    // Default relay: first public node in name order (pub-b), not file order.
    assert_eq!(n1.relay, Some(name("pub-b")));
    assert_eq!(n2.relay, Some(name("pub-b")));
    assert_eq!(
        node(&mesh, "n3").relay,
        Some(name("pub-z")),
        "explicit relay override"
    );
    // NAT nodes have no direct peer entry for each other.
    let n1_peers: Vec<String> = mesh.peers(n1).iter().map(|p| p.name.to_string()).collect();
    assert_eq!(n1_peers, ["pub-b", "pub-z"]);
    // The other NAT nodes' addresses and subnets ride on the relay peer.
    assert_eq!(
        allowed(&peer(&mesh, n2, "pub-b")),
        [
            "10.1.0.2/32",
            "10.1.0.3/32",
            "192.168.10.0/24",
            "10.1.0.5/32"
        ]
    );
    assert_eq!(allowed(&peer(&mesh, n2, "pub-z")), ["10.1.0.1/32"]);
    assert_eq!(
        allowed(&peer(&mesh, node(&mesh, "n3"), "pub-z")),
        [
            "10.1.0.1/32",
            "10.1.0.3/32",
            "192.168.10.0/24",
            "10.1.0.4/32"
        ]
    );
    let relay = node(&mesh, "pub-b");
    assert!(relay.is_transit);
    assert_eq!(relay.relay_for, [name("n1"), name("n2")]);
    assert_eq!(node(&mesh, "pub-z").relay_for, [name("n3")]);
    // The relay itself lists every NAT node directly.
    assert_eq!(allowed(&peer(&mesh, relay, "n2")), ["10.1.0.4/32"]);
    let config = render_config(&mesh, &name("n2"), &|_| None);
    assert!(config.contains("AllowedIPs = 10.1.0.2/32, 10.1.0.3/32, 192.168.10.0/24, 10.1.0.5/32"));
    assert!(!config.contains("# Peer: n1"));
}

/// IPv6 underlay: a pair uses a family both have (IPv4 first); a pair with none goes
/// through the first public node with both families, which forwards for them.
#[test]
fn underlay_families_choose_endpoints_and_relay_pairs_without_a_common_one() {
    let text = "mesh:\n  network: 10.1.0.0/24\nnodes:\n  - name: a4\n    endpoint: 192.0.2.4\n  - name: dual\n    endpoint: 192.0.2.1\n    endpoint6: \"[2001:db8::1]:51820\"\n  - name: named\n    endpoint: vpn.example.com\n  - name: nat\n  - name: v6a\n    endpoint: \"[2001:db8::6]:51820\"\n  - name: v6b\n    endpoint: \"[2001:db8::7]:51820\"\n";
    let mesh = mesh(text);
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("a4", "dual", Some("192.0.2.1:51820")),
        ("nat", "dual", Some("192.0.2.1:51820")),
        ("v6a", "dual", Some("[2001:db8::1]:51820")),
        ("dual", "v6a", Some("[2001:db8::6]:51820")),
        ("v6a", "v6b", Some("[2001:db8::7]:51820")),
        ("v6a", "named", Some("vpn.example.com:51820")),
        ("dual", "a4", Some("192.0.2.4:51820")),
        ("a4", "v6a", None),
        ("nat", "v6b", None),
        ("v6a", "a4", None),
        ("v6a", "nat", None),
    ];
    for (from, to, want) in cases {
        let (a, b) = (node(&mesh, from), node(&mesh, to));
        assert_eq!(mesh.endpoint(a, b).as_deref(), *want, "{from} -> {to}");
        assert_eq!(mesh.is_peer(a, b), want.is_some(), "{from} peers {to}");
    }
    // The relay is the first public node with both families (not a4, the first public),
    // and it carries the unreachable nodes on each side's entry for it.
    for relayed in ["a4", "nat", "v6a", "v6b"] {
        assert_eq!(node(&mesh, relayed).relay, Some(name("dual")), "{relayed}");
    }
    assert_eq!(node(&mesh, "dual").relay, None);
    assert_eq!(node(&mesh, "named").relay, None);
    let relay = node(&mesh, "dual");
    assert!(relay.is_transit);
    assert_eq!(
        relay.relay_for,
        [name("a4"), name("nat"), name("v6a"), name("v6b")]
    );
    let address = |n: &str| format!("{}/32", node(&mesh, n).address);
    let mut want = vec![address("dual"), address("v6a"), address("v6b")];
    assert_eq!(allowed(&peer(&mesh, node(&mesh, "a4"), "dual")), want);
    want = vec![address("dual"), address("a4"), address("nat")];
    assert_eq!(allowed(&peer(&mesh, node(&mesh, "v6a"), "dual")), want);
    // 6 nodes: 15 pairs, 4 of them relayed (a4 and nat to v6a and v6b).
    assert_eq!(mesh.tunnel_count(), 11);
}

#[test]
fn subnet_router_is_transit_and_its_subnets_are_allowed_on_its_peer_entry() {
    let mesh = mesh(
        "mesh:\n  network: 10.1.0.0/24\nnodes:\n  - name: gw\n    endpoint: 192.0.2.1\n    subnets: [192.168.1.0/24, 192.168.2.0/24]\n    probe: 192.168.1.1\n  - name: b\n    endpoint: 192.0.2.2\n",
    );
    let gw = node(&mesh, "gw");
    assert!(gw.is_transit);
    assert!(gw.relay_for.is_empty());
    assert!(!node(&mesh, "b").is_transit);
    assert_eq!(
        allowed(&peer(&mesh, node(&mesh, "b"), "gw")),
        ["10.1.0.1/32", "192.168.1.0/24", "192.168.2.0/24"]
    );
}

#[test]
fn dual_stack_adds_128_and_interface_addresses() {
    let mesh = mesh(
        "mesh:\n  network: 10.1.0.0/24\n  network6: fd01::/64\n  mtu: 1380\nnodes:\n  - name: a\n    endpoint: '[2001:db8::1]:51820'\n  - name: b\n    endpoint: 192.0.2.2\n    endpoint6: '[2001:db8::2]:4000'\n    address6: 'fd01::b'\n    mtu: 1300\n    listen_port: 4000\n",
    );
    let a = node(&mesh, "a");
    assert_eq!(a.address6, Some("fd01::1".parse().expect("ip")));
    assert_eq!(
        allowed(&peer(&mesh, a, "b")),
        ["10.1.0.2/32", "fd01::b/128"]
    );
    assert_eq!(
        peer(&mesh, node(&mesh, "b"), "a").endpoint.as_deref(),
        Some("[2001:db8::1]:51820")
    );
    assert_eq!(
        peer(&mesh, a, "b").endpoint.as_deref(),
        Some("[2001:db8::2]:4000"),
        "an IPv6-only node uses its peer's endpoint6"
    );
    let config = render_config(&mesh, &name("b"), &|_| None);
    insta::assert_snapshot!("dual_stack_node_b", config);
    assert!(
        config.contains(
            "Address = 10.1.0.2/24, fd01::b/64\nListenPort = 4000\nMTU = 1300\nPrivateKey"
        )
    );
}

#[test]
fn absent_nodes_leave_the_mesh() {
    let mesh = mesh(
        "mesh:\n  network: 10.1.0.0/24\nnodes:\n  - name: a\n    endpoint: 192.0.2.1\n  - name: old\n    endpoint: 192.0.2.5\n    state: absent\n  - name: b\n",
    );
    let names: Vec<&str> = mesh.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(mesh.absent, [name("old")]);
    assert!(
        mesh.peers(node(&mesh, "a"))
            .iter()
            .all(|p| p.name.as_str() != "old")
    );
    assert_eq!(
        allowed(&peer(&mesh, node(&mesh, "a"), "b")),
        ["10.1.0.2/32"],
        "the absent node holds no address"
    );
}

#[test]
fn keepalive_zero_disables_it() {
    let mesh = mesh(
        "mesh:\n  network: 10.1.0.0/24\n  persistent_keepalive: 0\nnodes:\n  - name: a\n    endpoint: 192.0.2.1\n  - name: n\n",
    );
    assert_eq!(
        peer(&mesh, node(&mesh, "n"), "a").persistent_keepalive,
        None
    );
    assert_eq!(mesh.settings.persistent_keepalive, None);
}

/// a, b public; c behind NAT; clients `laptop` via a and `phone` via b then a.
const CLIENTS: &str = "mesh:\n  network: 10.10.0.0/24\n  preshared_keys: true\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n    subnets: [192.168.1.0/24]\n  - name: b\n    endpoint: 203.0.113.2\n    subnets: [192.168.2.0/24]\n  - name: c\nclients:\n  - name: laptop\n    generate: true\n    via: [a]\n  - name: phone\n    public_key: HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\n    via: [b, a]\n";

fn allowed_of(peers: &[PeerSpec], name: &str) -> Vec<String> {
    peers
        .iter()
        .find(|p| p.name.as_str() == name)
        .unwrap_or_else(|| panic!("no peer {name}"))
        .allowed_ips
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn clients_are_peers_of_their_via_nodes_and_routed_through_the_first_elsewhere() {
    let mesh = mesh(CLIENTS);
    // Addresses: nodes first (a .1, b .2, c .3), then clients in file order.
    let laptop = mesh.client(&name("laptop")).expect("laptop");
    let phone = mesh.client(&name("phone")).expect("phone");
    assert_eq!(laptop.address.to_string(), "10.10.0.4");
    assert_eq!(phone.address.to_string(), "10.10.0.5");
    // a lists both clients directly, without endpoint, keepalive or preshared key.
    let a = node(&mesh, "a");
    let peers = mesh.config_peers(a);
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["b", "c", "laptop", "phone"]);
    let client_peer = &peers[2];
    assert_eq!(client_peer.endpoint, None);
    assert_eq!(client_peer.persistent_keepalive, None);
    assert!(!client_peer.psk);
    assert_eq!(allowed_of(&peers, "laptop"), ["10.10.0.4/32"]);
    // a reaches the phone directly, so b's entry on a does not carry it.
    assert_eq!(allowed_of(&peers, "b"), ["10.10.0.2/32", "192.168.2.0/24"]);
    // b lists the phone, and reaches the laptop through a.
    let peers = mesh.config_peers(node(&mesh, "b"));
    assert_eq!(
        allowed_of(&peers, "a"),
        ["10.10.0.1/32", "192.168.1.0/24", "10.10.0.4/32"]
    );
    assert_eq!(allowed_of(&peers, "phone"), ["10.10.0.5/32"]);
    assert!(peers.iter().all(|p| p.name.as_str() != "laptop"));
    // c (NAT) reaches each client through its first via.
    let peers = mesh.config_peers(node(&mesh, "c"));
    assert_eq!(
        allowed_of(&peers, "a"),
        ["10.10.0.1/32", "192.168.1.0/24", "10.10.0.4/32"]
    );
    assert_eq!(
        allowed_of(&peers, "b"),
        ["10.10.0.2/32", "192.168.2.0/24", "10.10.0.5/32"]
    );
    // Via nodes forward; c does not.
    assert!(node(&mesh, "a").is_transit && node(&mesh, "b").is_transit);
    assert!(!node(&mesh, "c").is_transit);
    assert_eq!(node(&mesh, "a").clients, [name("laptop"), name("phone")]);
}

#[test]
fn a_client_config_sends_the_mesh_to_its_first_via_and_the_others_only_their_own() {
    let mesh = mesh(CLIENTS);
    let phone = mesh.client(&name("phone")).expect("phone").clone();
    let peers = mesh.client_config_peers(&phone);
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(allowed_of(&peers, "b"), ["10.10.0.0/24", "192.168.2.0/24"]);
    assert_eq!(allowed_of(&peers, "a"), ["10.10.0.1/32", "192.168.1.0/24"]);
    assert!(peers.iter().all(|p| p.persistent_keepalive == Some(25)));
    let keys = guide_keys();
    let lookup = |n: &NodeName| match n.as_str() {
        "a" => keys.get("node-a").copied(),
        "b" => keys.get("node-b").copied(),
        _ => None,
    };
    let (text, left_out) = meshup::render::render_client(&mesh, &phone, &lookup);
    assert!(left_out.is_empty());
    let want =
        "# Written by meshup for an unmanaged client: keep it secret, it holds the private key.
# Client: phone
[Interface]
Address = 10.10.0.5/24
PrivateKey = <secret:private.key>

# Peer: b
[Peer]
PublicKey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=
Endpoint = 203.0.113.2:51820
AllowedIPs = 10.10.0.0/24, 192.168.2.0/24
PersistentKeepalive = 25

# Peer: a
[Peer]
PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
Endpoint = 203.0.113.1:51820
AllowedIPs = 10.10.0.1/32, 192.168.1.0/24
PersistentKeepalive = 25
";
    assert_eq!(text, want);
    // A node's config carries the client's given key; a generated client without a
    // file yet has none (the plan marks it pending).
    let rendered = render_config(&mesh, &name("b"), &|_| None);
    assert!(
        rendered.contains("# Peer: phone\n[Peer]\nPublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\nAllowedIPs = 10.10.0.5/32\n"),
        "{rendered}"
    );
    assert_eq!(
        mesh.client(&name("laptop")).and_then(|c| c.public_key),
        None
    );
}

/// Two sites of four nodes (eu: hub h-eu, spokes e1 e2, NAT spoke e3; us: hub h-us,
/// spokes u1 u2 u3) and a table of who lists whom, with what.
#[test]
fn hub_sites_spokes_peer_with_their_site_and_reach_the_rest_through_their_hub() {
    let mut text = String::from(
        "mesh:\n  network: 10.10.0.0/24\n  topology: hub\n  sites:\n    eu: { hubs: [h-eu] }\n    us: { hubs: [h-us] }\nnodes:\n",
    );
    for (i, (n, site, public)) in [
        ("h-eu", "eu", true),
        ("e1", "eu", true),
        ("e2", "eu", true),
        ("e3", "eu", false),
        ("h-us", "us", true),
        ("u1", "us", true),
        ("u2", "us", true),
        ("u3", "us", true),
    ]
    .iter()
    .enumerate()
    {
        text.push_str(&format!(
            "  - name: {n}\n    address: 10.10.0.{}\n    site: {site}\n",
            i + 1
        ));
        if *public {
            text.push_str(&format!("    endpoint: 203.0.113.{}\n", i + 1));
        }
    }
    let m = mesh(&text);
    let table = |n: &str| -> Vec<String> {
        m.peers(node(&m, n))
            .iter()
            .map(|p| format!("{} {}", p.name, allowed(p).join(",")))
            .collect()
    };
    for (n, want) in [
        (
            "e1",
            vec![
                "e2 10.10.0.3/32",
                "e3 10.10.0.4/32",
                // the hub: itself and the other site
                "h-eu 10.10.0.1/32,10.10.0.5/32,10.10.0.6/32,10.10.0.7/32,10.10.0.8/32",
            ],
        ),
        (
            // A NAT spoke peers with its site's public members (it has their endpoints).
            "e3",
            vec![
                "e1 10.10.0.2/32",
                "e2 10.10.0.3/32",
                "h-eu 10.10.0.1/32,10.10.0.5/32,10.10.0.6/32,10.10.0.7/32,10.10.0.8/32",
            ],
        ),
        (
            "h-eu",
            vec![
                "e1 10.10.0.2/32",
                "e2 10.10.0.3/32",
                "e3 10.10.0.4/32",
                "h-us 10.10.0.5/32,10.10.0.6/32,10.10.0.7/32,10.10.0.8/32",
            ],
        ),
        (
            "u1",
            vec![
                "h-us 10.10.0.5/32,10.10.0.2/32,10.10.0.3/32,10.10.0.4/32,10.10.0.1/32",
                "u2 10.10.0.7/32",
                "u3 10.10.0.8/32",
            ],
        ),
    ] {
        assert_eq!(table(n), want, "{n}");
    }
    let h_eu = node(&m, "h-eu");
    assert!(h_eu.hub && h_eu.is_transit);
    assert_eq!(h_eu.relay_for.len(), 3);
    assert_eq!(node(&m, "e1").relay, Some(name("h-eu")));
    // 2 sites of 4 (6 pairs each) and the hubs' pair.
    assert_eq!(m.tunnel_count(), 13);
}

/// `mesh.hubs` alone: spokes peer with the hubs only; the first hub carries the others.
#[test]
fn hubs_without_sites_make_a_star_around_the_first_hub() {
    let m = mesh(
        "mesh:\n  network: 10.10.0.0/24\n  topology: hub\n  hubs: [h1, h2]\nnodes:
  - name: h1
    address: 10.10.0.1
    endpoint: 203.0.113.1
  - name: h2
    address: 10.10.0.2
    endpoint: 203.0.113.2
  - name: s1
    address: 10.10.0.3
    endpoint: 203.0.113.3
  - name: s2
    address: 10.10.0.4
",
    );
    let table = |n: &str| -> Vec<String> {
        m.peers(node(&m, n))
            .iter()
            .map(|p| format!("{} {}", p.name, allowed(p).join(",")))
            .collect()
    };
    assert_eq!(
        table("s1"),
        ["h1 10.10.0.1/32,10.10.0.4/32", "h2 10.10.0.2/32"]
    );
    assert_eq!(
        table("s2"),
        ["h1 10.10.0.1/32,10.10.0.3/32", "h2 10.10.0.2/32"]
    );
    assert_eq!(
        table("h2"),
        ["h1 10.10.0.1/32", "s1 10.10.0.3/32", "s2 10.10.0.4/32"]
    );
    assert_eq!(m.tunnel_count(), 5);
}

//! Inventory parsing and validation: every rule, with its message and line.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use meshup::address::{self, AddressLock, LockEntry};
use meshup::inventory::{Become, HostKeyChecking, Inventory, NodeState};
use proptest::prelude::*;

use crate::support_core::{name, parse, problems, render_error, root, valid};

const MESH: &str = "mesh:\n  network: 10.10.0.0/24\n";

/// A two-node inventory with `nodes_yaml` appended after one public node on lines 4-5.
fn with_nodes(nodes_yaml: &str) -> String {
    format!("{MESH}nodes:\n  - name: hub\n    endpoint: 203.0.113.1\n{nodes_yaml}")
}

#[test]
fn exit_via_of_the_mesh_applies_to_every_node_but_the_exit() {
    let inventory = valid(
        "mesh:\n  network: 10.10.0.0/24\n  exit_via: gw\nnodes:\n  - name: gw\n    endpoint: 203.0.113.1\n    exit_node: true\n  - name: b\n  - name: c\n    endpoint: 203.0.113.3\n    exit_node: true\n  - name: d\n    exit_via: c\n",
    );
    let exits: Vec<(&str, bool, Option<&str>)> = inventory
        .nodes()
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.exit_node,
                n.exit_via.as_ref().map(|e| e.as_str()),
            )
        })
        .collect();
    assert_eq!(
        exits,
        [
            ("gw", true, None),
            ("b", false, Some("gw")),
            ("c", true, Some("gw")),
            ("d", false, Some("c")),
        ]
    );
    assert!(inventory.mesh().mss_clamp, "MSS clamping is on by default");
    assert!(!valid("mesh:\n  network: 10.10.0.0/24\n  mss_clamp: false\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n").mesh().mss_clamp);
}

#[test]
fn guide_inventory_parses_with_defaults() {
    let inventory = Inventory::load(root().join("inventory/guide.yaml")).expect("valid");
    let mesh = inventory.mesh();
    assert_eq!(mesh.interface.as_str(), "wg0");
    assert_eq!(mesh.network.to_string(), "10.10.0.0/24");
    assert_eq!(mesh.listen_port, 51820);
    assert_eq!(mesh.persistent_keepalive, Some(25));
    assert!(mesh.preshared_keys);
    assert_eq!(mesh.config_dir.as_str(), "/etc/wireguard");
    let names: Vec<&str> = inventory.nodes().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    let c = &inventory.nodes()[2];
    assert!(!c.is_public());
    assert_eq!(c.address, Some(Ipv4Addr::new(10, 10, 0, 3)));
    assert_eq!(
        inventory.nodes()[0]
            .endpoint
            .as_ref()
            .map(ToString::to_string),
        Some("203.0.113.10:51820".into())
    );
    assert_eq!(
        inventory.lock_path(),
        root().join("inventory/guide.yaml.lock")
    );
}

#[test]
fn every_example_inventory_is_valid() {
    for file in ["guide.yaml", "lab-example.yaml", "large.yaml", "sites.yaml"] {
        if let Err(err) = Inventory::load(root().join("inventory").join(file)) {
            panic!("{file}:\n{}", render_error(&err));
        }
    }
}

#[test]
fn defaults_when_omitted() {
    let inventory = valid(&with_nodes(""));
    let mesh = inventory.mesh();
    assert_eq!(mesh.interface.as_str(), "wg0");
    assert_eq!(mesh.listen_port, 51820);
    assert_eq!(mesh.persistent_keepalive, Some(25));
    assert_eq!(mesh.mtu, None);
    assert!(!mesh.preshared_keys);
    assert_eq!(mesh.package_lock_timeout, 120);
    let ssh = &inventory.nodes()[0].ssh;
    assert_eq!(ssh.host.as_str(), "hub");
    assert_eq!(ssh.user.as_str(), "root");
    assert_eq!(ssh.port, 22);
    assert_eq!(ssh.become_method, Become::Root);
    assert_eq!(ssh.host_key_checking, HostKeyChecking::AcceptNew);
    assert_eq!(ssh.connect_timeout, Duration::from_secs(10));
    assert_eq!(
        inventory.nodes()[0].endpoint.as_ref().map(|e| e.port),
        Some(51820)
    );
}

#[test]
fn ssh_defaults_merge_with_node_overrides_and_paths_resolve() {
    let text = "mesh:\n  network: 10.10.0.0/24\n  listen_port: 40000\nssh:\n  user: admin\n  port: 2222\n  identity_file: keys/id\n  known_hosts: /abs/known_hosts\n  host_key_checking: yes\n  connect_timeout: 3\nnodes:\n  - name: a\n    endpoint: a.example.com\n    listen_port: 40001\n    ssh: { host: 192.0.2.1, user: root, jump: 'ops@bastion:22', ssh_config: ssh_config }\n  - name: b\n    state: absent\n";
    let inventory = Inventory::from_str(text, "/srv/mesh/inv.yaml").expect("valid");
    let a = &inventory.nodes()[0];
    assert_eq!(a.listen_port, 40001);
    assert_eq!(
        a.endpoint.as_ref().map(ToString::to_string),
        Some("a.example.com:40001".into())
    );
    assert_eq!(a.ssh.host.as_str(), "192.0.2.1");
    assert_eq!(a.ssh.user.as_str(), "root");
    assert_eq!(a.ssh.become_method, Become::Root);
    assert_eq!(a.ssh.port, 2222);
    assert_eq!(
        a.ssh.identity_file,
        Some(PathBuf::from("/srv/mesh/keys/id"))
    );
    assert_eq!(a.ssh.known_hosts, Some(PathBuf::from("/abs/known_hosts")));
    assert_eq!(
        a.ssh.ssh_config,
        Some(PathBuf::from("/srv/mesh/ssh_config"))
    );
    assert_eq!(
        a.ssh.jump.as_ref().map(ToString::to_string),
        Some("ops@bastion:22".into())
    );
    assert_eq!(a.ssh.host_key_checking, HostKeyChecking::Yes);
    assert_eq!(a.ssh.connect_timeout, Duration::from_secs(3));
    let b = &inventory.nodes()[1];
    assert_eq!(b.state, NodeState::Absent);
    assert_eq!(b.ssh.user.as_str(), "admin");
    assert_eq!(b.ssh.become_method, Become::Sudo);
    assert_eq!(b.listen_port, 40000);
    assert_eq!(inventory.present_nodes().count(), 1);
    assert_eq!(inventory.absent_nodes().count(), 1);
}

/// A validation case: what it checks, the inventory text, and the (line, message
/// fragment) of every problem expected, in order.
type Case = (&'static str, String, Vec<(usize, &'static str)>);

/// Each case: inventory text, then the (line, message) of every problem expected.
#[test]
fn every_validation_rule_reports_its_message_and_line() {
    let cases: Vec<Case> = vec![
        (
            "yaml syntax",
            "mesh:\n  network: 10.10.0.0/24\nnodes:\n  - name: a\n   bad: [\n".into(),
            vec![(5, "")],
        ),
        (
            "unknown key",
            with_nodes("  - name: b\n    adress: 10.10.0.9\n"),
            vec![(7, "unknown field `adress`")],
        ),
        (
            "unknown mesh key",
            "mesh:\n  network: 10.10.0.0/24\n  mtu_size: 3\nnodes: []\n".into(),
            vec![(3, "unknown field `mtu_size`")],
        ),
        (
            "missing network",
            "mesh:\n  interface: wg0\nnodes:\n  - name: a\n".into(),
            vec![(2, "missing field `network`")],
        ),
        ("empty file", "".into(), vec![(1, "the inventory is empty")]),
        (
            "no nodes",
            "mesh:\n  network: 10.10.0.0/24\nnodes: []\n".into(),
            vec![(3, "the inventory has no nodes")],
        ),
        (
            "duplicate names",
            with_nodes("  - name: hub\n"),
            vec![(6, "duplicate node name `hub` (first defined on line 4)")],
        ),
        (
            "unsafe node name",
            with_nodes("  - name: \"b;reboot\"\n  - name: B\n  - name: -x\n"),
            vec![
                (6, "node name `b;reboot` contains ';'"),
                (7, "node name `B` must start with a lowercase letter or a digit"),
                (8, "node name `-x` must start with a lowercase letter or a digit"),
            ],
        ),
        (
            "duplicate addresses",
            with_nodes("  - name: b\n    address: 10.10.0.7\n  - name: c\n    address: 10.10.0.7\n"),
            vec![(9, "duplicate address 10.10.0.7 (also used on line 7)")],
        ),
        (
            "address outside network, network and broadcast addresses",
            with_nodes(
                "  - name: b\n    address: 10.10.1.1\n  - name: c\n    address: 10.10.0.0\n  - name: d\n    address: 10.10.0.255\n  - name: e\n    address: 10.10.0.1/24\n",
            ),
            vec![
                (7, "address 10.10.1.1 is outside the mesh network 10.10.0.0/24"),
                (9, "address 10.10.0.0 is the network address of 10.10.0.0/24"),
                (11, "address 10.10.0.255 is the broadcast address of 10.10.0.0/24"),
                (13, "`10.10.0.1/24` is not an IPv4 address"),
            ],
        ),
        (
            "bad mesh settings",
            "mesh:\n  interface: wg/0\n  network: 10.10.0.1/24\n  network6: fd00::1/64\n  listen_port: 0\n  persistent_keepalive: -1\n  mtu: 100\n  config_dir: etc/wireguard\n  package_lock_timeout: 3601\nnodes:\n  - name: a\n".into(),
            vec![
                (2, "interface name `wg/0` contains '/'"),
                (3, "mesh network `10.10.0.1/24` has host bits set"),
                (4, "mesh network6 `fd00::1/64` has host bits set"),
                (5, "listen_port 0 is out of range 1-65535"),
                (6, "persistent_keepalive -1 is out of range 0-65535"),
                (7, "mtu 100 is out of range 1280-65535"),
                (8, "path `etc/wireguard` must be absolute"),
                (9, "package_lock_timeout 3601 is out of range 0-3600"),
            ],
        ),
        (
            "interface names",
            "mesh:\n  interface: wg-interface-too-long\n  network: 10.10.0.0/24\nnodes:\n  - name: a\n".into(),
            vec![(2, "interface name `wg-interface-too-long` must be 1 to 15 characters long")],
        ),
        (
            "interface colon and dots",
            "mesh:\n  interface: 'wg:1'\n  network: 10.10.0.0/24\nnodes:\n  - name: a\n".into(),
            vec![(2, "interface name `wg:1` contains ':'")],
        ),
        (
            "interface dot dot",
            "mesh:\n  interface: '..'\n  network: 10.10.0.0/24\nnodes:\n  - name: a\n".into(),
            vec![(2, "interface name `..` is reserved")],
        ),
        (
            "unsafe config_dir",
            "mesh:\n  network: 10.10.0.0/24\n  config_dir: '/etc/wg;rm -rf /'\nnodes:\n  - name: a\n".into(),
            vec![(3, "path `/etc/wg;rm -rf /` contains ';'")],
        ),
        (
            "ipv6 mesh network in network",
            "mesh:\n  network: fd00::/64\nnodes:\n  - name: a\n".into(),
            vec![(2, "mesh network `fd00::/64` is IPv6")],
        ),
        (
            "invalid endpoints and ports",
            with_nodes(
                "  - name: b\n    endpoint: 198.51.100.1:70000\n  - name: c\n    endpoint: 'bad_host!:51820'\n  - name: d\n    endpoint: 198.51.100.4:0\n  - name: e\n    listen_port: 65536\n",
            ),
            vec![
                (7, "endpoint `198.51.100.1:70000`: port 70000 is out of range 1-65535"),
                (9, "endpoint `bad_host!:51820`: `bad_host!` is not a valid DNS name: it contains '_'"),
                (11, "endpoint `198.51.100.4:0`: port 0 is out of range 1-65535"),
                (13, "listen_port 65536 is out of range 1-65535"),
            ],
        ),
        (
            "invalid DNS-name endpoints",
            with_nodes(&format!(
                "  - name: b\n    endpoint: node_b.example:51820\n  - name: c\n    endpoint: -x.example\n  - name: d\n    endpoint: {}.example:51820\n  - name: e\n    endpoint: node-e.example.net:51820\n",
                vec!["a".repeat(60); 5].join(".")
            )),
            vec![
                (7, "endpoint `node_b.example:51820`: `node_b.example` is not a valid DNS name: it contains '_'"),
                (9, "`-x.example` is not a valid DNS name: label `-x` starts or ends with '-'"),
                (11, "is not a valid DNS name: it is 312 characters long; a DNS name has at most 253"),
            ],
        ),
        (
            "overlapping subnets between nodes and with the mesh",
            with_nodes(
                "    subnets: [192.168.0.0/16]\n  - name: b\n    endpoint: 203.0.113.2\n    subnets: [192.168.1.0/24, 10.10.0.128/25]\n  - name: c\n    subnets: [192.168.1.1/24]\n",
            ),
            vec![
                (9, "subnet 192.168.1.0/24 overlaps 192.168.0.0/16 routed by node `hub` (line 6)"),
                (9, "subnet 10.10.0.128/25 overlaps the mesh network 10.10.0.0/24"),
                (11, "subnet `192.168.1.1/24` has host bits set"),
            ],
        ),
        (
            "probe outside subnets",
            with_nodes("    subnets: [192.168.7.0/24]\n    probe: 192.168.8.1\n"),
            vec![(7, "probe 192.168.8.1 is not inside the node's subnets")],
        ),
        (
            "endpoint inside a routed subnet",
            with_nodes("  - name: b\n    endpoint: 192.168.9.10\n  - name: c\n    subnets: [192.168.9.0/24]\n"),
            vec![(7, "endpoint 192.168.9.10 lies inside subnet 192.168.9.0/24 routed through the mesh")],
        ),
        (
            "unsafe ssh values",
            "mesh:\n  network: 10.10.0.0/24\nssh:\n  user: 'root;id'\n  host: x\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n    ssh:\n      host: '-oProxyCommand=sh'\n      jump: 'a b'\n      become: doas\n      host_key_checking: no\n      port: 99999\n      connect_timeout: 0\n".into(),
            vec![
                (4, "user name `root;id` is not a valid Unix user name"),
                (5, "`host` cannot be a default: it differs per node"),
                (10, "host `-oProxyCommand=sh` is not an IP address, DNS name or ssh_config alias"),
                (11, "host `a b` is not an IP address, DNS name or ssh_config alias"),
                (12, "become must be `root` or `sudo`, not `doas`"),
                (13, "host_key_checking must be `yes`, `accept-new` or `insecure`, not `no`"),
                (14, "ssh port 99999 is out of range 1-65535"),
                (15, "connect_timeout 0 is out of range 1-3600"),
            ],
        ),
        (
            "become root with a non-root user",
            with_nodes("    ssh: { user: admin, become: root }\n"),
            vec![(6, "become: root needs user root, but the user is `admin`")],
        ),
        (
            "nat nodes without any public node",
            format!("{MESH}nodes:\n  - name: a\n  - name: b\n"),
            vec![
                (4, "node `a` is behind NAT and no node has a public endpoint to reach"),
                (5, "node `b` is behind NAT and no node has a public endpoint to reach"),
            ],
        ),
        (
            "bad relays",
            with_nodes(
                "  - name: n1\n    relay: nobody\n  - name: n2\n    relay: n1\n  - name: p2\n    endpoint: 203.0.113.2\n    relay: hub\n  - name: n3\n    relay: gone\n  - name: gone\n    endpoint: 203.0.113.3\n    state: absent\n",
            ),
            vec![
                (7, "relay `nobody` is not a node of this inventory"),
                (9, "relay `n1` has no public endpoint"),
                (12, "node `p2` has a public endpoint; `relay` is only for nodes behind NAT"),
                (14, "relay `gone` is marked absent"),
            ],
        ),
        (
            "bad endpoint6",
            with_nodes(
                "  - name: a\n    endpoint: 203.0.113.2\n    endpoint6: 203.0.113.3\n  - name: b\n    endpoint6: \"[2001:db8::2]:51820\"\n  - name: c\n    endpoint: \"[2001:db8::3]:51820\"\n    endpoint6: \"[2001:db8::4]:51820\"\n  - name: d\n    endpoint: 203.0.113.5\n    endpoint6: \"[2001:db8::zz]:1\"\n",
            ),
            vec![
                (8, "endpoint6 203.0.113.3 is an IPv4 address"),
                (10, "endpoint6 is set but the node has no endpoint"),
                (13, "endpoint6 is set but endpoint is already an IPv6 address"),
                (16, "endpoint6 `[2001:db8::zz]:1`"),
            ],
        ),
        (
            "ipv4-only and ipv6-only nodes without a dual-stack relay",
            with_nodes(
                "  - name: v6a\n    endpoint: \"[2001:db8::1]:51820\"\n  - name: nat\n",
            ),
            vec![
                (6, "nodes `hub` (IPv4 only) and `v6a` (IPv6 only) share no underlay address family"),
                (8, "nodes `v6a` (IPv6 only) and `nat` (IPv4 only) share no underlay address family"),
            ],
        ),
        (
            "relay without ipv6 for a node reached only over it",
            with_nodes(
                "  - name: dual\n    endpoint: 203.0.113.2\n    endpoint6: \"[2001:db8::2]:51820\"\n  - name: v6a\n    endpoint: \"[2001:db8::1]:51820\"\n  - name: nat\n    relay: hub\n",
            ),
            vec![(12, "relay `hub` has no IPv6 endpoint, but node `v6a` is reached only over IPv6")],
        ),
        (
            "bad exits",
            with_nodes(
                "  - name: n1\n    exit_via: nobody\n  - name: n2\n    exit_node: true\n    exit_via: n2\n  - name: n3\n    exit_via: hub\n  - name: gone\n    endpoint: 203.0.113.3\n    exit_node: true\n    state: absent\n  - name: n4\n    exit_via: gone\n",
            ),
            vec![
                (7, "exit `nobody` is not a node of this inventory"),
                (10, "node `n2` cannot be its own exit"),
                (12, "node `hub` is not an exit node"),
                (18, "exit `gone` is marked absent"),
            ],
        ),
        (
            "an exit behind NAT for a node behind NAT",
            with_nodes("  - name: n1\n    exit_node: true\n  - name: n2\n    exit_via: n1\n  - name: p\n    endpoint: 203.0.113.4\n    exit_via: n1\n"),
            vec![(9, "exit `n1` is behind NAT, like n2: two NAT nodes are not peers")],
        ),
        (
            "mesh exit_via not an exit node",
            "mesh:\n  network: 10.10.0.0/24\n  exit_via: hub\nnodes:\n  - name: hub\n    endpoint: 203.0.113.1\n".into(),
            vec![(3, "node `hub` is not an exit node")],
        ),
        (
            "address6 without network6, state",
            with_nodes("  - name: b\n    address6: fd00::2\n    state: gone\n"),
            vec![
                (7, "address6 is set but the mesh has no network6"),
                (8, "state must be `present` or `absent`, not `gone`"),
            ],
        ),
        (
            "address6 outside network6 and duplicate",
            "mesh:\n  network: 10.10.0.0/24\n  network6: fd10::/64\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n    address6: fd11::1\n  - name: b\n    address6: 'fd10::5'\n  - name: c\n    address6: 'fd10::5'\n  - name: d\n    address6: 'fd10::'\n".into(),
            vec![
                (7, "address6 fd11::1 is outside the mesh network6 fd10::/64"),
                (11, "duplicate address6 fd10::5 (also used on line 9)"),
                (13, "address6 fd10:: is the network address of fd10::/64"),
            ],
        ),
        (
            "network too small",
            "mesh:\n  network: 10.10.0.0/30\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n  - name: b\n  - name: c\n".into(),
            vec![(2, "mesh network `10.10.0.0/30` has 2 host addresses for 3 nodes")],
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        let got = match parse(text) {
            Ok(_) => {
                failures.push(format!("{what}: accepted, expected {expected:?}"));
                continue;
            }
            Err(err) => err
                .problems()
                .iter()
                .map(|p| (p.line(), p.message().to_owned()))
                .collect::<Vec<_>>(),
        };
        let matches = got.len() == expected.len()
            && got
                .iter()
                .zip(expected)
                .all(|((line, message), (want_line, want))| {
                    line == want_line && message.contains(want)
                });
        if !matches {
            failures.push(format!(
                "{what}:\n  got      {got:?}\n  expected {expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/inventory/broken.yaml"))
        .expect("fixture");
    let err = Inventory::from_str(&text, "tests/fixtures/inventory/broken.yaml")
        .expect_err("broken inventory");
    assert!(err.problems().len() >= 8, "{:?}", err.problems());
    insta::assert_snapshot!("broken_inventory_report", render_error(&err));
}

#[test]
fn a_bad_dns_endpoint_is_shown_at_its_value() {
    let text = with_nodes("  - name: b\n    endpoint: node_b.example:51820\n");
    let err = Inventory::from_str(&text, "mesh.yaml").expect_err("invalid name");
    let out = render_error(&err);
    assert!(out.contains("╭─[mesh.yaml:7:15]"), "{out}");
    assert!(
        out.contains(
            " 7 │     endpoint: node_b.example:51820\n   ·               ──────────┬─────────"
        ),
        "{out}"
    );
    assert!(out.contains("╰── invalid endpoint"), "{out}");
    assert!(
        out.contains("`node_b.example` is not a valid DNS name: it contains '_'"),
        "{out}"
    );
}

#[test]
fn yaml_errors_are_located() {
    let got = problems("mesh:\n  network: 10.10.0.0/24\n  listen_port: [1\nnodes: []\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 3, "{got:?}");
    let got = problems(
        "mesh:\n  network: 10.10.0.0/24\n  preshared_keys: true\n  preshared_keys: false\nnodes: []\n",
    );
    assert_eq!(
        got,
        [(
            4,
            "`preshared_keys` is set twice in this mapping; keep one".to_string()
        )]
    );
}

// --- address allocation ---------------------------------------------------------------

const AUTO: &str = "mesh:\n  network: 10.10.0.0/24\n  network6: fd10::/64\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n  - name: b\n    endpoint: 203.0.113.2\n  - name: c\n";

fn addresses(inventory: &Inventory, lock: &AddressLock) -> (Vec<(String, String)>, AddressLock) {
    let (allocation, updated) = address::allocate(inventory, lock).expect("allocates");
    let list = allocation
        .iter()
        .map(|(n, a)| {
            (
                n.to_string(),
                format!(
                    "{} {}",
                    a.v4,
                    a.v6.map(|v| v.to_string()).unwrap_or_default()
                ),
            )
        })
        .collect();
    (list, updated)
}

#[test]
fn allocation_fills_lowest_free_addresses_in_file_order() {
    let text = AUTO.replace("  - name: b\n", "  - name: b\n    address: 10.10.0.1\n");
    let (list, lock) = addresses(&valid(&text), &AddressLock::default());
    assert_eq!(
        list,
        [
            ("a".to_string(), "10.10.0.2 fd10::2".to_string()),
            ("b".into(), "10.10.0.1 fd10::1".into()),
            ("c".into(), "10.10.0.3 fd10::3".into()),
        ]
    );
    // Explicit addresses are not pinned; automatic ones are.
    assert_eq!(
        lock.get("b"),
        Some(LockEntry {
            address: None,
            address6: Some("fd10::1".parse().expect("ip"))
        })
    );
    assert_eq!(
        lock.get("a").and_then(|e| e.address),
        Some(Ipv4Addr::new(10, 10, 0, 2))
    );
}

#[test]
fn adding_a_node_anywhere_with_the_lock_renumbers_nobody() {
    let (before, lock) = addresses(&valid(AUTO), &AddressLock::default());
    // Insert a new node first in the file: without the lock it would take 10.10.0.1.
    let text = AUTO.replace(
        "nodes:\n",
        "nodes:\n  - name: new\n    endpoint: 203.0.113.9\n",
    );
    let (after, _) = addresses(&valid(&text), &lock);
    for entry in &before {
        assert!(after.contains(entry), "{entry:?} changed: {after:?}");
    }
    let new = after
        .iter()
        .find(|(n, _)| n == "new")
        .expect("new node allocated");
    assert_eq!(new.1, "10.10.0.4 fd10::4");
}

#[test]
fn appending_a_node_without_a_lock_renumbers_nobody() {
    let (before, _) = addresses(&valid(AUTO), &AddressLock::default());
    let (after, _) = addresses(
        &valid(&format!("{AUTO}  - name: d\n")),
        &AddressLock::default(),
    );
    for entry in &before {
        assert!(after.contains(entry), "{entry:?} changed: {after:?}");
    }
}

#[test]
fn lock_round_trips_through_a_file_and_keeps_absent_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("inv.yaml.lock");
    let (_, lock) = addresses(&valid(AUTO), &AddressLock::default());
    lock.save(&path).expect("save");
    let loaded = AddressLock::load(&path).expect("load");
    assert_eq!(loaded, lock);
    assert_eq!(
        AddressLock::load(dir.path().join("missing.lock")).expect("missing is empty"),
        AddressLock::default()
    );

    // b leaves (absent): its address stays pinned and is not given to a newcomer.
    let text = AUTO.replace(
        "    endpoint: 203.0.113.2\n",
        "    endpoint: 203.0.113.2\n    state: absent\n",
    );
    let text = format!("{text}  - name: d\n");
    let (list, updated) = addresses(&valid(&text), &loaded);
    assert!(!list.iter().any(|(n, _)| n == "b"));
    assert_eq!(
        updated.get("b").and_then(|e| e.address),
        Some(Ipv4Addr::new(10, 10, 0, 2))
    );
    assert_eq!(
        list.iter().find(|(n, _)| n == "d").map(|e| e.1.as_str()),
        Some("10.10.0.4 fd10::4")
    );
}

#[test]
fn conflicting_lock_entries_yield_to_explicit_addresses() {
    let mut lock = AddressLock::default();
    lock.insert(
        "c",
        LockEntry {
            address: Some(Ipv4Addr::new(10, 10, 0, 1)),
            address6: Some(Ipv6Addr::LOCALHOST),
        },
    );
    let text = AUTO.replace(
        "    endpoint: 203.0.113.1\n",
        "    endpoint: 203.0.113.1\n    address: 10.10.0.1\n",
    );
    let (list, _) = addresses(&valid(&text), &lock);
    let c = list.iter().find(|(n, _)| n == "c").expect("c");
    // a has 10.10.0.1 explicitly, b (earlier in the file) takes .2, c's stale pin yields.
    assert_eq!(
        c.1, "10.10.0.3 fd10::3",
        "lock entry taken by an explicit address, or outside network6"
    );
}

#[test]
fn broken_lock_file_is_a_located_error() {
    let err = AddressLock::from_str("a:\n  adress: 10.0.0.1\n", "x.lock").expect_err("invalid");
    assert_eq!(err.problems()[0].line(), 2);
}

// --- no panics ---------------------------------------------------------------------

/// Fragments that mutate a valid inventory into many near-valid ones.
const FRAGMENTS: &[&str] = &[
    "",
    "\n",
    ":",
    "- ",
    "  ",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "&a ",
    "*a",
    "<<: *a\n",
    "~",
    "null",
    "name: x\n",
    "10.10.0.0/33",
    "999999999999999999999",
    "-1",
    "::",
    "[::1]:",
    "endpoint: ",
    "subnets: [",
    "relay: node-a\n",
    "state: absent\n",
    "\t",
    "é",
    "%YAML 1.2\n---\n",
    "!!binary ",
    "address6: fd00::1\n",
    "0.0.0.0/0",
    "mtu: 1\n",
    "ssh: {",
    "#",
];

fn guide_text() -> String {
    std::fs::read_to_string(root().join("inventory/guide.yaml")).expect("guide.yaml")
}

fn assert_located(text: &str) {
    if let Err(err) = parse(text) {
        assert!(
            !err.problems().is_empty(),
            "an invalid inventory reports at least one problem"
        );
        for problem in err.problems() {
            assert!(problem.line() >= 1 && problem.line() <= text.lines().count().max(1) + 1);
            assert!(!problem.message().is_empty());
        }
        let _ = render_error(&err);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "(?s).{0,200}") {
        assert_located(&text);
    }

    #[test]
    fn mutated_inventories_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..FRAGMENTS.len(), 0usize..8), 1..6),
    ) {
        let mut text = guide_text();
        for (position, fragment, delete) in edits {
            let mut at = position.index(text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + delete).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, FRAGMENTS[fragment]);
        }
        assert_located(&text);
        // A valid mutation must also allocate and render without panicking.
        if let Ok(inventory) = parse(&text)
            && let Ok((allocation, _)) = address::allocate(&inventory, &AddressLock::default())
        {
            let mesh = meshup::topology::Mesh::build(&inventory, &allocation);
            for node in &mesh.nodes {
                let _ = meshup::render::render_config(&mesh, &node.name, &|_| None);
            }
        }
    }
}

#[test]
fn names_helper_is_consistent() {
    assert_eq!(name("node-a").as_str(), "node-a");
}

/// An inventory with a public node `hub`, a NAT node `edge`, and `clients_yaml`.
fn with_clients(clients_yaml: &str) -> String {
    format!(
        "{MESH}nodes:\n  - name: hub\n    endpoint: 203.0.113.1\n  - name: edge\n    address: 10.10.0.9\nclients:\n{clients_yaml}"
    )
}

const PHONE_KEY: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

#[test]
fn clients_parse_with_a_given_or_generated_key() {
    use meshup::inventory::ClientKey;
    let inventory = valid(&with_clients(&format!(
        "  - name: phone\n    public_key: {PHONE_KEY}\n    via: [hub]\n  - name: laptop\n    generate: true\n    via: [hub]\n    address: 10.10.0.50\n"
    )));
    let clients = inventory.clients();
    assert_eq!(clients.len(), 2);
    assert_eq!(
        clients[0].key,
        ClientKey::Given(PHONE_KEY.parse().expect("key"))
    );
    assert_eq!(clients[1].key, ClientKey::Generated);
    assert_eq!(clients[1].address, Some(Ipv4Addr::new(10, 10, 0, 50)));
    assert_eq!(clients[0].via, vec![name("hub")]);
    assert_eq!(clients[0].line, 9);
    assert_eq!(
        inventory.clients_dir(),
        PathBuf::from("clients"),
        "beside test.yaml"
    );
}

#[test]
fn client_rules_each_have_a_located_message() {
    let cases: &[(&str, &str)] = &[
        (
            "  - name: hub\n    generate: true\n    via: [hub]\n",
            "client name `hub` is already used by a node (line 4)",
        ),
        (
            "  - name: c\n    via: [hub]\n",
            "a client needs `public_key` (recommended) or `generate: true`",
        ),
        (
            "  - name: c\n    generate: false\n    via: [hub]\n",
            "a client needs `public_key` (recommended) or `generate: true`",
        ),
        (
            &format!(
                "  - name: c\n    public_key: {PHONE_KEY}\n    generate: true\n    via: [hub]\n"
            ),
            "a client has either `public_key` or `generate: true`, not both",
        ),
        (
            "  - name: c\n    public_key: abc\n    via: [hub]\n",
            "invalid client public key: public key is not valid base64",
        ),
        (
            "  - name: c\n    generate: true\n",
            "a client needs `via`: the public nodes it connects to",
        ),
        (
            "  - name: c\n    generate: true\n    via: []\n",
            "`via` is empty",
        ),
        (
            "  - name: c\n    generate: true\n    via: [nowhere]\n",
            "via `nowhere` is not a node of this inventory",
        ),
        (
            "  - name: c\n    generate: true\n    via: [edge]\n",
            "via `edge` has no public endpoint; a client can only connect to public nodes",
        ),
        (
            "  - name: c\n    generate: true\n    via: [hub, hub]\n",
            "via `hub` is listed twice",
        ),
        (
            "  - name: c\n    generate: true\n    via: [hub]\n    address: 10.10.0.9\n",
            "duplicate address 10.10.0.9 (also used on line 7)",
        ),
        (
            "  - name: c\n    generate: true\n    via: [hub]\n  - name: c\n    generate: true\n    via: [hub]\n",
            "client name `c` is already used by a client (line 9)",
        ),
        (
            "  - name: c\n    generate: true\n    via: [hub]\n    address: 10.20.0.1\n",
            "address 10.20.0.1 is outside the mesh network 10.10.0.0/24",
        ),
    ];
    for (yaml, want) in cases {
        let found = problems(&with_clients(yaml));
        assert!(
            found.iter().any(|(_, m)| m == want),
            "{yaml}\nwanted {want:?}, got {found:?}"
        );
    }
}

#[test]
fn client_addresses_are_allocated_after_the_nodes_and_pinned() {
    let text = with_clients("  - name: laptop\n    generate: true\n    via: [hub]\n");
    let inventory = valid(&text);
    let (allocation, lock) =
        address::allocate(&inventory, &AddressLock::default()).expect("allocate");
    let laptop = allocation
        .get(&name("laptop"))
        .expect("laptop has an address");
    assert_eq!(laptop.v4, Ipv4Addr::new(10, 10, 0, 2));
    assert_eq!(
        lock.get("laptop"),
        Some(LockEntry {
            address: Some(Ipv4Addr::new(10, 10, 0, 2)),
            address6: None
        })
    );
    // A node added later keeps away from the pinned client address.
    let text = format!(
        "{MESH}nodes:\n  - name: hub\n    endpoint: 203.0.113.1\n  - name: edge\n    address: 10.10.0.9\n  - name: new\nclients:\n  - name: laptop\n    generate: true\n    via: [hub]\n"
    );
    let (allocation, _) = address::allocate(&valid(&text), &lock).expect("allocate");
    assert_eq!(
        allocation.get(&name("laptop")).map(|a| a.v4),
        Some(Ipv4Addr::new(10, 10, 0, 2))
    );
    assert_eq!(
        allocation.get(&name("new")).map(|a| a.v4),
        Some(Ipv4Addr::new(10, 10, 0, 3))
    );
}

#[test]
fn private_networks_and_their_preference_parse() {
    let inventory = valid(
        "mesh:\n  network: 10.10.0.0/24\n  networks: [vpc, dc1]\nnodes:
  - name: a
    endpoint: 203.0.113.1
    networks: { dc1: 10.0.1.5, vpc: 'fd00:1::5' }
  - name: b
    endpoint: 203.0.113.2
",
    );
    let names: Vec<&str> = inventory
        .mesh()
        .networks
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(names, ["vpc", "dc1"]);
    let a: Vec<String> = inventory.nodes()[0]
        .networks
        .iter()
        .map(|n| format!("{}={}", n.network, n.address))
        .collect();
    assert_eq!(a, ["dc1=10.0.1.5", "vpc=fd00:1::5"]);
    assert!(inventory.nodes()[1].networks.is_empty());
}

#[test]
fn bad_private_networks_are_located() {
    let node = |networks: &str| {
        format!(
            "mesh:\n  network: 10.10.0.0/24\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n    networks: {networks}\n  - name: b\n    endpoint: 203.0.113.2\n    networks: {{ dc1: 10.0.1.5 }}\n"
        )
    };
    for (text, line, start) in [
        (node("{ dc1: 10.0.1.300 }"), 6, "`10.0.1.300` is not an IP address"),
        (node("{ DC1: 10.0.1.4 }"), 6, "`DC1` is not a name"),
        (node("{ dc1: 10.10.0.9 }"), 6, "address 10.10.0.9 on network `dc1` lies inside the mesh network"),
        (node("{ dc1: 10.0.1.5 }"), 9, "address 10.0.1.5 on network `dc1` is also node `a`'s"),
        (
            "mesh:\n  network: 10.10.0.0/24\n  networks: [dc1, dc1]\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n".to_owned(),
            3,
            "network `dc1` is listed twice",
        ),
    ] {
        let got = problems(&text);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        assert_eq!(got[0].0, line, "{text}: {got:?}");
        assert!(got[0].1.starts_with(start), "{text}: {got:?}");
    }
}

#[test]
fn hub_topology_with_sites_parses() {
    use meshup::inventory::Topology;
    let inventory = valid(
        "mesh:\n  network: 10.10.0.0/24\n  topology: hub\n  sites:\n    eu: { hubs: [h1] }\n    us: { hubs: [h2] }\nnodes:
  - name: h1
    endpoint: 203.0.113.1
  - name: h2
    endpoint: 203.0.113.2
    site: us
  - name: s1
    site: eu
",
    );
    let Topology::Hub(sites) = &inventory.mesh().topology else {
        panic!("hub topology expected");
    };
    let shown: Vec<String> = sites
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s.name.as_ref().map_or("-", |n| n.as_str()),
                s.hubs
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    assert_eq!(shown, ["eu:h1", "us:h2"]);
    assert_eq!(
        valid("mesh:\n  network: 10.10.0.0/24\nnodes:\n  - name: a\n    endpoint: 203.0.113.1\n")
            .mesh()
            .topology,
        Topology::Full
    );
}

#[test]
fn bad_hub_topologies_are_located() {
    let nodes = "nodes:\n  - name: h1\n    endpoint: 203.0.113.1\n  - name: n1\n";
    for (mesh, extra, line, start) in [
        ("  topology: star\n", "", 3, "topology `star` is not one of"),
        (
            "  hubs: [h1]\n",
            "",
            3,
            "`mesh.hubs` is only for `topology: hub`",
        ),
        ("  topology: hub\n", "", 3, "`topology: hub` needs its hubs"),
        (
            "  topology: hub\n  hubs: [n1]\n",
            "",
            4,
            "hub `n1` has no public endpoint",
        ),
        (
            "  topology: hub\n  hubs: [h9]\n",
            "",
            4,
            "hub `h9` is not a node",
        ),
        (
            "  topology: hub\n  hubs: [h1, h1]\n",
            "",
            4,
            "hub `h1` is listed twice",
        ),
        (
            "  topology: hub\n  sites:\n    eu: { hubs: [h1] }\n",
            "",
            9,
            "node `n1` has no `site:`",
        ),
        (
            "  topology: hub\n  sites:\n    eu: { hubs: [h1] }\n",
            "    site: us\n",
            10,
            "site `us` is not one of `mesh.sites`",
        ),
        ("", "    site: eu\n", 7, "node `n1` has a `site:`"),
        (
            "  topology: hub\n  sites:\n    eu: { hubs: [h1] }\n    us: { hubs: [h1] }\n",
            "    site: eu\n",
            6,
            "hub `h1` is a hub of two sites",
        ),
    ] {
        let text = format!("mesh:\n  network: 10.10.0.0/24\n{mesh}{nodes}{extra}");
        let got = problems(&text);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        assert_eq!(got[0].0, line, "{text}: {got:?}");
        assert!(got[0].1.starts_with(start), "{text}: {got:?}");
    }
}

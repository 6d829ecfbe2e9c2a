use super::*;
use crate::inventory::Inventory;

/// db, web and other, dual stack, plus a client `laptop` through web.
const INVENTORY: &str = "\
mesh:
  network: 10.10.0.0/24
  network6: fd10:10::/64
  firewall:
    rules:
      - { from: web, to: db, ports: [5432/tcp] }
      - { from: laptop, to: any, ports: [22/tcp, icmp] }
      - { from: any, to: web, ports: [8000-8010/tcp, 53/udp] }
nodes:
  - { name: db, endpoint: 203.0.113.1, address: 10.10.0.1, groups: [db] }
  - { name: web, endpoint: 203.0.113.2, address: 10.10.0.2, groups: [web] }
  - { name: other, endpoint: 203.0.113.3, address: 10.10.0.3 }
clients:
  - { name: laptop, generate: true, via: [web], address: 10.10.0.9 }
";

fn mesh(text: &str) -> Mesh {
    let inventory = Inventory::from_str(text, "acl.yaml").expect("valid inventory");
    let (allocation, _) =
        crate::address::allocate(&inventory, &crate::address::AddressLock::default())
            .expect("allocate");
    Mesh::build(&inventory, &allocation)
}

fn acl_of(mesh: &Mesh, node: &str) -> HostAcl {
    let name = node.parse().expect("name");
    host_acl(mesh, mesh.node(&name).expect("node")).expect("acl")
}

fn lines(acl: &HostAcl) -> Vec<String> {
    acl.entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.from,
                e.source.map_or("*".into(), |s| s.to_string()),
                e.port
            )
        })
        .collect()
}

#[test]
fn each_node_gets_the_entries_of_the_rules_addressed_to_it() {
    let mesh = mesh(INVENTORY);
    assert_eq!(
        lines(&acl_of(&mesh, "db")),
        [
            "web 10.10.0.2 5432/tcp",
            "web fd10:10::2 5432/tcp",
            "laptop 10.10.0.9 22/tcp",
            "laptop 10.10.0.9 icmp",
            "laptop fd10:10::9 22/tcp",
            "laptop fd10:10::9 icmp",
        ]
    );
    assert_eq!(
        lines(&acl_of(&mesh, "web")),
        [
            "laptop 10.10.0.9 22/tcp",
            "laptop 10.10.0.9 icmp",
            "laptop fd10:10::9 22/tcp",
            "laptop fd10:10::9 icmp",
            "any * 8000-8010/tcp",
            "any * 53/udp",
        ]
    );
    let other = acl_of(&mesh, "other");
    assert_eq!(other.entries.len(), 4, "{:?}", lines(&other));
    assert!(other.icmp);
}

#[test]
fn admits_tcp_answers_the_matrix() {
    let mesh = mesh(INVENTORY);
    let db = acl_of(&mesh, "db");
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    assert!(db.admits_tcp(ip("10.10.0.2"), 5432));
    assert!(db.admits_tcp(ip("fd10:10::2"), 5432));
    assert!(!db.admits_tcp(ip("10.10.0.3"), 5432), "other -> db");
    assert!(
        !db.admits_tcp(ip("10.10.0.2"), 5433),
        "web -> db other port"
    );
    let web = acl_of(&mesh, "web");
    assert!(web.admits_tcp(ip("10.10.0.3"), 8005));
    assert!(!web.admits_tcp(ip("10.10.0.3"), 8011));
    assert_eq!(web.tcp_ports(), [22, 8000]);
}

#[test]
fn no_rules_no_acl_and_a_node_is_never_its_own_source() {
    let plain =
        mesh("mesh: { network: 10.10.0.0/24 }\nnodes:\n  - { name: a, endpoint: 203.0.113.1 }\n");
    let a = plain.node(&"a".parse().expect("name")).expect("a");
    assert!(host_acl(&plain, a).is_none());
    let own = mesh(
        "mesh:\n  network: 10.10.0.0/24\n  firewall:\n    icmp: false\n    rules: [{ from: db, to: db, ports: [5432/tcp] }]\nnodes:\n  - { name: a, endpoint: 203.0.113.1, groups: [db] }\n  - { name: b, endpoint: 203.0.113.2, groups: [db] }\n",
    );
    let a = acl_of(&own, "a");
    assert!(!a.icmp);
    assert_eq!(
        a.entries
            .iter()
            .map(|e| e.from.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
}

fn problems(text: &str) -> Vec<(usize, String)> {
    let err = Inventory::from_str(text, "acl.yaml").expect_err("invalid");
    err.problems()
        .iter()
        .map(|p| (p.line(), p.message().to_string()))
        .collect()
}

#[test]
fn bad_rules_are_located() {
    let base = |rules: &str, mode: &str| {
        format!(
            "mesh:\n  network: 10.10.0.0/24\n  firewall:\n{mode}    rules:\n{rules}nodes:\n  - {{ name: db, endpoint: 203.0.113.1, groups: [db] }}\n  - {{ name: web, endpoint: 203.0.113.2, groups: [Web] }}\nclients:\n  - {{ name: phone, generate: true, via: [db] }}\n"
        )
    };
    let got = problems(&base(
        "      - { from: nobody, to: db, ports: [5432/tcp] }\n      - { from: db, to: phone, ports: [5432, icmp] }\n      - { from: any, to: db, ports: [] }\n",
        "",
    ));
    let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        got.contains(&(
            10,
            "group `Web` is not a group name: [a-z0-9][a-z0-9_-]*, at most 32 characters".into()
        )),
        "{got:?}"
    );
    assert!(
        messages.contains(&"`nobody` is neither `any`, a node, a client nor a group of any node"),
        "{got:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("`phone` is a client")),
        "{got:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("port `5432` is not a port spec")),
        "{got:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("a rule needs at least one port")),
        "{got:?}"
    );
    assert!(got.iter().all(|(line, _)| *line >= 5), "{got:?}");
    let got = problems(&base(
        "      - { from: any, to: db, ports: [22/tcp] }\n",
        "    mode: none\n",
    ));
    assert!(
        got.iter()
            .any(|(line, m)| *line == 6 && m.starts_with("firewall rules need `mode: trust`")),
        "{got:?}"
    );
}

#[test]
fn the_plain_mode_string_still_parses_and_unknown_keys_are_errors() {
    for (firewall, ok) in [
        ("trust", true),
        ("none", true),
        ("{ mode: trust }", true),
        ("{ mode: none }", true),
        ("{ rules: [] }", false),
        ("{ mode: trust, colour: red }", false),
        ("off", false),
    ] {
        let text = format!(
            "mesh:\n  network: 10.10.0.0/24\n  firewall: {firewall}\nnodes:\n  - {{ name: a, endpoint: 203.0.113.1 }}\n"
        );
        assert_eq!(
            Inventory::from_str(&text, "t.yaml").is_ok(),
            ok,
            "{firewall}"
        );
    }
}

#[test]
fn a_group_named_like_a_node_is_refused() {
    let got = problems(
        "mesh:\n  network: 10.10.0.0/24\n  firewall:\n    rules: [{ from: any, to: b, ports: [icmp] }]\nnodes:\n  - { name: a, endpoint: 203.0.113.1, groups: [b] }\n  - { name: b, endpoint: 203.0.113.2 }\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 6);
}

#[test]
fn ssh_over_the_mesh_needs_a_rule_for_the_ssh_port() {
    let text = |rule: &str| {
        format!(
            "mesh:\n  network: 10.10.0.0/24\n  firewall:\n    rules:\n      - {rule}\nnodes:\n  - {{ name: a, endpoint: 203.0.113.1, address: 10.10.0.1, groups: [db], ssh: {{ host: 10.10.0.1 }} }}\n  - {{ name: b, endpoint: 203.0.113.2, ssh: {{ host: 203.0.113.2 }} }}\n"
        )
    };
    let got = problems(&text("{ from: b, to: db, ports: [5432/tcp] }"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 7);
    assert!(
        got[0]
            .1
            .starts_with("meshup reaches a over SSH at its mesh address 10.10.0.1"),
        "{got:?}"
    );
    for ok in [
        "{ from: b, to: a, ports: [22/tcp] }",
        "{ from: any, to: any, ports: [20-30/tcp] }",
    ] {
        assert!(Inventory::from_str(&text(ok), "acl.yaml").is_ok(), "{ok}");
    }
}

use super::*;
use crate::acl::host_acl;
use crate::playbook::Playbooks;
use crate::playbook::firewall::FirewallKind;
use crate::topology::Mesh;

const INVENTORY: &str = "\
mesh:
  network: 10.10.0.0/24
  network6: fd10:10::/64
  firewall:
    rules:
      - { from: web, to: db, ports: [5432/tcp, 6000-6010/tcp] }
      - { from: any, to: db, ports: [53/udp, icmp] }
nodes:
  - { name: db, endpoint: 203.0.113.1, address: 10.10.0.1, groups: [db] }
  - { name: web, endpoint: 203.0.113.2, address: 10.10.0.2, groups: [web] }
  - { name: other, endpoint: 203.0.113.3, address: 10.10.0.3 }
";

fn db_acl() -> HostAcl {
    let inventory = crate::inventory::Inventory::from_str(INVENTORY, "acl.yaml").expect("valid");
    let (allocation, _) =
        crate::address::allocate(&inventory, &crate::address::AddressLock::default())
            .expect("allocate");
    let mesh = Mesh::build(&inventory, &allocation);
    let db = mesh.node(&"db".parse().expect("name")).expect("db");
    host_acl(&mesh, db).expect("acl")
}

#[test]
fn the_rules_read_as_nft_prints_them() {
    let marks = MeshMarks::new("wg0");
    assert_eq!(
        acl_rules(&db_acl(), &marks),
        [
            "iifname != \"wg0\" accept comment \"meshup:wg0\"",
            "ct state established,related accept comment \"meshup:wg0\"",
            "icmp type echo-request accept comment \"meshup:wg0\"",
            "icmpv6 type echo-request accept comment \"meshup:wg0\"",
            "ip saddr 10.10.0.2 tcp dport 5432 accept comment \"meshup:wg0\"",
            "ip saddr 10.10.0.2 tcp dport 6000-6010 accept comment \"meshup:wg0\"",
            "ip6 saddr fd10:10::2 tcp dport 5432 accept comment \"meshup:wg0\"",
            "ip6 saddr fd10:10::2 tcp dport 6000-6010 accept comment \"meshup:wg0\"",
            "udp dport 53 accept comment \"meshup:wg0\"",
            "iifname \"wg0\" drop comment \"meshup:wg0\"",
        ]
    );
}

fn nft() -> Firewall {
    Playbooks::embedded()
        .expect("playbooks")
        .firewall(FirewallKind::Nftables)
        .expect("nftables")
        .clone()
}

#[test]
fn a_missing_table_is_loaded_a_matching_one_is_left_and_a_deleted_rule_is_drift() {
    let marks = MeshMarks::new("wg0").with_config_dir("/etc/wireguard");
    let acl = db_acl();
    let fw = nft();
    let paths = FirewallPaths::default();
    let gap = fw
        .acl_gap(&NftablesFacts::default(), &acl, &marks, &paths, false)
        .expect("missing table");
    assert_eq!(gap.action.reason, "table inet meshup-wg0 is missing");
    assert_eq!(gap.diff.lines().filter(|l| l.starts_with('+')).count(), 10);
    assert!(gap.action.commands[1].contains("nft -f /etc/wireguard/meshup-acl-wg0.nft.new"));
    assert!(gap.action.commands[1].contains("'delete table inet meshup-wg0'"));
    // The table as nft lists it after loading the script.
    let listing = acl_script(&acl, &marks)[3..].join("\n");
    let facts = NftablesFacts::parse(&listing);
    let why = fw
        .acl_gap(&facts, &acl, &marks, &paths, false)
        .expect_err("in place");
    assert_eq!(
        why,
        "mesh ACL in place: table inet meshup-wg0 holds its 10 rules"
    );
    // A rule deleted by hand.
    let edited = listing.replace("\t\tudp dport 53 accept comment \"meshup:wg0\"\n", "");
    let gap = fw
        .acl_gap(&NftablesFacts::parse(&edited), &acl, &marks, &paths, false)
        .expect("drift");
    assert_eq!(gap.diff, "+udp dport 53 accept comment \"meshup:wg0\"\n");
    assert_eq!(
        gap.action.reason,
        "table inet meshup-wg0 lacks 1 rule(s) and has 0 it should not"
    );
    // meshup's own chain never counts as a restrictive chain of the host's firewall.
    assert!(facts.restrictive_chains("input").is_empty());
    let removal = fw.acl_removal(&marks, &paths);
    assert_eq!(
        removal,
        [
            "if command -v nft >/dev/null 2>&1 && nft list table inet meshup-wg0 >/dev/null 2>&1; then nft delete table inet meshup-wg0; fi",
            "rm -f /etc/wireguard/meshup-acl-wg0.nft",
        ]
    );
    // Where nftables is the host's firewall, its boot-time file includes the ACL, and
    // the line goes with the ACL.
    let debian = FirewallPaths::debian();
    let gap = fw
        .acl_gap(&NftablesFacts::default(), &acl, &marks, &debian, true)
        .expect("missing table");
    assert_eq!(
        gap.action.commands.last().map(String::as_str),
        Some(
            "grep -qsxF \"$(printf 'include \"%s\"' /etc/wireguard/meshup-acl-wg0.nft)\" /etc/nftables.conf || printf '\\ninclude \"%s\"\\n' /etc/wireguard/meshup-acl-wg0.nft >> /etc/nftables.conf"
        )
    );
    let removal = fw.acl_removal(&marks, &debian);
    assert_eq!(removal.len(), 3);
    assert!(
        removal[2].contains("grep -vxF \"$l\" /etc/nftables.conf"),
        "{}",
        removal[2]
    );
}

//! The mesh ACL (`mesh.firewall.rules`) on the local lab with real firewalls: `db`
//! accepts 5432/tcp only from `web`. The db node runs each backend in turn — nftables
//! (two tables with drop chains), ufw (deny incoming), iptables + ip6tables (INPUT DROP)
//! and no firewall at all on the light flavour, firewalld (default zone public) on the
//! systemd flavour — and the ACL is enforced on every one by meshup's own nftables table
//! (`inet meshup-wg0`), while meshup's trust rules let the allowed traffic through the
//! host's firewall. Real: nftables, ufw, iptables, firewalld, WireGuard (wireguard-go),
//! conntrack, TCP listeners on the mesh addresses. Needs root; `MESHUP_SKIP_LAB=1` skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::firewall_lab::{
    IPTABLES_DROP, NFT_TWO_TABLES, TCP_SCRIPT, UFW_DENY, assert_same_rules, assert_ssh, inventory,
    line_diff, mesh_addresses, rules,
};
use crate::support_lab::{Lab, apply_ok, assert_no_changes, meshup, path_str, plan_section};

/// The rule under test, under `mesh:`.
pub(crate) const ACL: &str =
    "  firewall:\n    rules:\n      - { from: web, to: db, ports: [5432/tcp] }\n";
/// The mixed scenario's groups: the public nodes and the subnet router are `db`, nat-1 is
/// `web`, nat-2 has none.
pub(crate) const MIXED_GROUPS: [(&str, &str); 5] = [
    ("pub-1", "db"),
    ("pub-2", "db"),
    ("pub-3", "db"),
    ("gw", "db"),
    ("nat-1", "web"),
];
/// A port on db that no rule opens.
const OTHER_PORT: &str = "7001";

/// `inventory` plus `groups:` lines for the named nodes.
pub(crate) fn with_groups(path: &Path, groups: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(path).expect("inventory");
    for (node, group) in groups {
        let at = format!("  - name: {node}\n");
        assert!(text.contains(&at), "{node} in the inventory");
        text = text.replacen(&at, &format!("{at}    groups: [{group}]\n"), 1);
    }
    std::fs::write(path, text).expect("write inventory");
    path.to_path_buf()
}

/// TCP listeners on 5432 and [`OTHER_PORT`] on the mesh addresses of `hosts`.
fn start_listeners(lab: &Lab, hosts: &[&str]) {
    for h in hosts {
        let addrs = mesh_addresses(lab, h).join(" ");
        lab.host_exec(
            h,
            &format!(
                "cat > /tmp/tcp_mesh.py <<'PYEOF'\n{TCP_SCRIPT}PYEOF\n\
                 for p in 5432 {OTHER_PORT}; do setsid python3 /tmp/tcp_mesh.py listen $p 600 {addrs} \
                 >/tmp/tcp_mesh.$p.log 2>&1 </dev/null & done\n\
                 for i in $(seq 1 25); do grep -q listening /tmp/tcp_mesh.5432.log && \
                 grep -q listening /tmp/tcp_mesh.{OTHER_PORT}.log && exit 0; sleep 0.2; done; \
                 cat /tmp/tcp_mesh.*.log; exit 1"
            ),
        )
        .expect_ok("start the TCP listeners");
    }
}

/// `from` connects to `to`'s mesh addresses on `port`: (address, "ok" or why not).
fn connect(lab: &Lab, from: &str, to: &str, port: &str) -> Vec<(String, String)> {
    let targets = mesh_addresses(lab, to);
    let run = lab.host_exec(
        from,
        &format!(
            "cat > /tmp/tcp_mesh.py <<'PYEOF'\n{TCP_SCRIPT}PYEOF\n\
             python3 /tmp/tcp_mesh.py connect {port} {}",
            targets.join(" ")
        ),
    );
    run.expect_ok("TCP client");
    run.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect()
}

/// The ACL's matrix on the wire: web reaches every db on 5432 (IPv4 and IPv6); web on
/// another port and `other` on 5432 do not; ICMP echo passes from `other`.
#[track_caller]
fn assert_matrix(lab: &Lab, dbs: &[&str], web: &str, other: &str) {
    let mut wrong = Vec::new();
    for db in dbs {
        for (from, port, want) in [
            (web, "5432", true),
            (web, OTHER_PORT, false),
            (other, "5432", false),
        ] {
            let results = connect(lab, from, db, port);
            assert_eq!(results.len(), 2, "{from} -> {db}: {results:?}");
            for (addr, result) in results {
                if (result == "ok") != want {
                    wrong.push(format!(
                        "{from} -> {db} {addr} port {port}: {result} (want {})",
                        if want { "ok" } else { "blocked" }
                    ));
                }
            }
        }
        for addr in mesh_addresses(lab, db) {
            let ping = lab.host_exec(other, &format!("ping -c 1 -W 3 {addr}"));
            if !ping.ok() {
                wrong.push(format!("{other} cannot ping {db} {addr}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the ACL matrix is wrong:\n{}",
        wrong.join("\n")
    );
}

/// verify exits 0 and shows the matrix: allowed pairs connected, denied ones blocked.
#[track_caller]
fn assert_verify_matrix(lab: &Lab, inv: &Path, db: &str, web: &str, other: &str) {
    let run = meshup(lab, &["verify", path_str(inv)]);
    assert_eq!(run.code, Some(0), "verify\n{}\n{}", run.stdout, run.stderr);
    let db_addr = &lab.host(db).mesh_address;
    for line in [
        format!("✓ {web} → {db} {db_addr} port 5432: allowed, connected"),
        format!("✓ {other} → {db} {db_addr} port 5432: denied, blocked (timeout)"),
    ] {
        assert!(run.stdout.contains(&line), "{line}\n{}", run.stdout);
    }
    assert!(run.stdout.contains("mesh ACL: "), "{}", run.stdout);
    // The first run's TCP listeners live 12 s: a second verify at once could not bind.
    std::thread::sleep(std::time::Duration::from_secs(13));
    let json = meshup(lab, &["verify", "--format", "json", path_str(inv)]);
    assert!(json.stdout.contains("\"acl\": ["), "{}", json.stdout);
}

/// A rule deleted by hand from `host`'s ACL table shows in the plan and comes back.
#[track_caller]
fn assert_drift_repaired(lab: &Lab, inv: &Path, host: &str) {
    lab.host_exec(
        host,
        "h=$(nft -a list chain inet meshup-wg0 input | awk '/tcp dport 5432/ { print $NF; exit }') && \
         nft delete rule inet meshup-wg0 input handle \"$h\"",
    )
    .expect_ok("delete an ACL rule by hand");
    let plan = meshup(lab, &["plan", path_str(inv)]);
    let section = plan_section(&plan.stdout, host);
    assert!(
        section.contains("~ enforce the mesh ACL on wg0")
            && section.contains("tcp dport 5432 accept"),
        "{host}: {}",
        plan.stdout
    );
    apply_ok(lab, inv, &[]);
    assert_no_changes(lab, inv);
}

/// Light flavour, mixed scenario: pub-1 (nftables, two tables), pub-2 (ufw, and the relay
/// of the NAT pair), pub-3 (iptables + ip6tables) and gw (no firewall at all) are `db`;
/// nat-1 (iptables) is `web`, nat-2 (ufw) has no group. After one apply: web → db:5432
/// connects on every backend (IPv4 and IPv6), web → db:7001 and nat-2 → db:5432 do not,
/// ping passes, verify shows the matrix, the second plan is empty, a hand-deleted ACL rule
/// is repaired, SSH works; `none` then leaves every host's rules byte-identical to before.
#[test]
fn acl_lab_db_accepts_5432_only_from_web_on_every_light_backend() {
    require_lab!();
    let lab = Lab::up("aclnft", "mixed", "light");
    let hosts = ["gw", "nat-1", "nat-2", "pub-1", "pub-2", "pub-3"];
    let dbs = ["pub-1", "pub-2", "pub-3", "gw"];
    for (h, setup) in [
        ("pub-1", NFT_TWO_TABLES),
        ("pub-2", UFW_DENY),
        ("pub-3", IPTABLES_DROP),
        ("nat-1", IPTABLES_DROP),
        ("nat-2", UFW_DENY),
    ] {
        lab.host_exec(h, setup)
            .expect_ok(&format!("firewall on {h}"));
    }
    let before: BTreeMap<&str, String> = hosts.iter().map(|h| (*h, rules(&lab, h))).collect();
    let relays = [("nat-1", "pub-2"), ("nat-2", "pub-2")];
    let acl = with_groups(&inventory(&lab, "acl.yaml", ACL, &relays), &MIXED_GROUPS);

    let plan = meshup(&lab, &["plan", path_str(&acl)]);
    let web4 = &lab.host("nat-1").mesh_address;
    for h in dbs {
        let section = plan_section(&plan.stdout, h);
        assert!(
            section.contains("+ enforce the mesh ACL on wg0")
                && section.contains(&format!("ip saddr {web4} tcp dport 5432 accept")),
            "{h}: {}",
            plan.stdout
        );
    }
    apply_ok(&lab, &acl, &[]);
    assert_no_changes(&lab, &acl);
    start_listeners(&lab, &dbs);
    assert_matrix(&lab, &dbs, "nat-1", "nat-2");
    assert_verify_matrix(&lab, &acl, "pub-1", "nat-1", "nat-2");
    assert_ssh(&lab, &hosts);
    for h in hosts {
        // The ACL's own PostUp (a transit node also runs its routing script at PostUp).
        let conf = lab.host_exec(h, "grep '^PostUp = nft' /etc/wireguard/wg0.conf; nft -c -f /etc/wireguard/meshup-acl-wg0.nft && echo loads");
        assert_eq!(
            conf.stdout, "PostUp = nft -f /etc/wireguard/meshup-acl-wg0.nft\nloads\n",
            "{h}: {}",
            conf.stderr
        );
    }
    assert_drift_repaired(&lab, &acl, "pub-1");
    assert_drift_repaired(&lab, &acl, "pub-2");
    assert_matrix(&lab, &["pub-1", "pub-2"], "nat-1", "nat-2");

    // nftables is pub-1's firewall: its service file includes the ACL (and still loads).
    let conf = lab.host_exec(
        "pub-1",
        "nft -c -f /etc/nftables.conf && grep -x 'include \"/etc/wireguard/meshup-acl-wg0.nft\"' /etc/nftables.conf",
    );
    conf.expect_ok("pub-1: nftables.conf includes the ACL");

    // none: exactly meshup's rules and table go.
    let none = inventory(&lab, "none.yaml", "  firewall: none\n", &relays);
    apply_ok(&lab, &none, &[]);
    let conf = lab.host_exec("pub-1", "grep -c meshup-acl /etc/nftables.conf");
    assert_eq!(conf.stdout.trim(), "0", "pub-1: the include stayed");
    for h in hosts {
        assert_same_rules(
            &lab,
            h,
            &before[h],
            "{h}: not back to the rules before meshup",
        );
    }
    assert_ssh(&lab, &hosts);

    // The ACL again, then the nftables service restarts on pub-1 (its file begins with
    // `flush ruleset`): the ACL comes back with it.
    apply_ok(&lab, &acl, &[]);
    lab.host_exec("pub-1", "nft -f /etc/nftables.conf")
        .expect_ok("pub-1: the nftables service's load");
    assert_matrix(&lab, &["pub-1"], "nat-1", "nat-2");
}

/// Systemd flavour, guide scenario: node-a runs firewalld (default zone public) and is
/// `db`, node-b is `web`, node-c (behind NAT) has no group. firewalld's reload (meshup
/// creating its zone) leaves meshup's ACL table alone; the matrix holds, verify shows it,
/// drift is repaired, and `none` leaves firewalld's zones and the ruleset as they were.
#[test]
fn acl_lab_systemd_firewalld_db_accepts_5432_only_from_web() {
    require_lab!();
    let lab = Lab::up("aclsd", "guide", "systemd");
    let hosts = ["node-a", "node-b", "node-c"];
    lab.host_exec(
        "node-a",
        "systemctl enable --now firewalld >/dev/null 2>&1; firewall-cmd --state",
    )
    .expect_ok("firewalld on node-a");
    let before: BTreeMap<&str, String> = hosts.iter().map(|h| (*h, rules(&lab, h))).collect();
    let acl = with_groups(
        &inventory(&lab, "acl.yaml", ACL, &[]),
        &[("node-a", "db"), ("node-b", "web")],
    );
    apply_ok(&lab, &acl, &[]);
    assert_no_changes(&lab, &acl);
    let zone = lab.host_exec("node-a", "firewall-cmd --get-zone-of-interface=wg0; nft list table inet meshup-wg0 | grep -c meshup:wg0");
    assert!(zone.stdout.starts_with("meshup-wg0\n"), "{}", zone.stdout);
    start_listeners(&lab, &["node-a"]);
    assert_matrix(&lab, &["node-a"], "node-b", "node-c");
    assert_verify_matrix(&lab, &acl, "node-a", "node-b", "node-c");
    // A firewalld reload (as any firewall-cmd --reload by an admin) keeps the ACL.
    lab.host_exec("node-a", "firewall-cmd --reload")
        .expect_ok("reload");
    assert_no_changes(&lab, &acl);
    assert_drift_repaired(&lab, &acl, "node-a");
    assert_matrix(&lab, &["node-a"], "node-b", "node-c");
    assert_ssh(&lab, &hosts);
    let none = inventory(&lab, "none.yaml", "  firewall: none\n", &[]);
    apply_ok(&lab, &none, &[]);
    for h in ["node-b", "node-c"] {
        assert_same_rules(
            &lab,
            h,
            &before[h],
            "{h}: not back to the rules before meshup",
        );
    }
    // firewalld keeps no marker on a port: the WireGuard port opened in the default zone
    // stays (README, Firewalls); everything else is as before.
    let after = rules(&lab, "node-a");
    assert!(!after.contains("meshup"), "node-a: {after}");
    let (added, removed) = line_diff(&before["node-a"], &after);
    assert!(
        added
            .iter()
            .all(|l| l.contains("51820") || l == "public.xml")
            && removed.iter().all(|l| l == "ports:"),
        "node-a: added {added:?}, removed {removed:?}"
    );
    assert_ssh(&lab, &hosts);
}

//! The mesh carries traffic through whatever firewall a host runs (`mesh.firewall: trust`,
//! the default), and `mesh.firewall: none` leaves firewalls alone, on the local lab with
//! real firewalls: nftables (two tables with drop chains at different priorities),
//! ufw (deny incoming, deny routed), iptables + ip6tables (INPUT and FORWARD DROP, as
//! Docker sets FORWARD) and firewalld (default zone public, and default zone drop; systemd
//! flavour). Each backend sits on a plain node, on a relay or on the subnet router, and
//! a TCP connection to a listener on every node's mesh address (IPv4 and IPv6) and to the
//! machine on the subnet router's LAN must succeed from every peer, relayed pairs included.
//! Needs root; `MESHUP_SKIP_LAB=1` skips them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support_lab::{Lab, apply_ok, assert_no_changes, meshup, path_str, plan_section};

/// Port of the test's TCP listeners.
const PORT: &str = "7001";
/// The marker on every rule meshup adds for wg0.
const MARKER: &str = "meshup:wg0";
/// The TCP listener and client run on the lab hosts.
pub(crate) const TCP_SCRIPT: &str = include_str!("../fixtures/tcp_mesh.py");

/// An nftables ruleset like a hand-written server firewall: `inet filter` input drops
/// what it does not accept, and a second table drops at another priority (an accept in
/// one base chain does not stop the other from dropping).
pub(crate) const NFT_TWO_TABLES: &str = "nft -f - <<'EOF'
table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    tcp dport 22 accept
    meta l4proto { icmp, ipv6-icmp } accept
  }
}
table ip guard {
  chain input {
    type filter hook input priority 10; policy accept;
    ct state established,related accept
    iif lo accept
    tcp dport 22 accept
    icmp type echo-request accept
    drop
  }
}
EOF";

/// The same input policy plus a forward chain that drops everything (subnet router).
pub(crate) const NFT_ROUTER: &str = "nft -f - <<'EOF'
table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    tcp dport 22 accept
    meta l4proto { icmp, ipv6-icmp } accept
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
  }
}
EOF";

pub(crate) const UFW_DENY: &str = "ufw allow 22/tcp >/dev/null && ufw default deny incoming >/dev/null && \
     ufw default deny routed >/dev/null && ufw --force enable";

/// iptables and ip6tables: INPUT DROP (established, lo, SSH and ICMP accepted) and
/// FORWARD DROP with nothing accepted.
pub(crate) const IPTABLES_DROP: &str = "for t in iptables ip6tables; do \
       $t -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && \
       $t -A INPUT -i lo -j ACCEPT && $t -A INPUT -p tcp --dport 22 -j ACCEPT && \
       $t -P INPUT DROP && $t -P FORWARD DROP || exit 1; done; \
     iptables -A INPUT -p icmp -j ACCEPT && ip6tables -A INPUT -p ipv6-icmp -j ACCEPT";

/// firewalld started and enabled at boot (systemd flavour), default zone public.
pub(crate) const FIREWALLD_START: &str =
    "systemctl enable --now firewalld >/dev/null 2>&1; firewall-cmd --state";

/// firewalld with the default zone drop (SSH allowed in it), permanent.
pub(crate) const FIREWALLD_DROP: &str = "systemctl enable --now firewalld >/dev/null 2>&1; \
     firewall-cmd --state && firewall-cmd -q --permanent --zone=drop --add-service=ssh && \
     firewall-cmd -q --set-default-zone=drop && firewall-cmd -q --reload";

/// What a host's firewalls look like, without counters: the whole nftables ruleset
/// (iptables-nft and ufw included), iptables and ip6tables, ufw's rules, and firewalld's
/// zones and policies when it runs.
pub(crate) fn rules(lab: &Lab, host: &str) -> String {
    lab.host_exec(
        host,
        "nft -s list ruleset; echo '== iptables'; iptables -S; echo '== ip6tables'; ip6tables -S; \
         echo '== ufw'; ufw status; grep -h '^DEFAULT_' /etc/default/ufw; \
         if firewall-cmd --state >/dev/null 2>&1; then echo '== firewalld'; \
         firewall-cmd --list-all-zones; firewall-cmd --get-policies; \
         ls /etc/firewalld/zones /etc/firewalld/policies; fi",
    )
    .stdout
}

/// Lines of `after` that `before` does not have, and lines of `before` that are gone.
pub(crate) fn line_diff(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let count = |text: &str| {
        let mut m: BTreeMap<String, i32> = BTreeMap::new();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            *m.entry(l.trim().to_string()).or_default() += 1;
        }
        m
    };
    let (b, a) = (count(before), count(after));
    let added = a
        .iter()
        .filter(|(l, n)| b.get(*l).copied().unwrap_or(0) < **n)
        .map(|(l, _)| l.clone())
        .collect();
    let removed = b
        .iter()
        .filter(|(l, n)| a.get(*l).copied().unwrap_or(0) < **n)
        .map(|(l, _)| l.clone())
        .collect();
    (added, removed)
}

/// The host's rules are byte for byte `before`; the message shows the lines that differ.
#[track_caller]
pub(crate) fn assert_same_rules(lab: &Lab, host: &str, before: &str, what: &str) {
    let now = rules(lab, host);
    let (added, removed) = line_diff(before, &now);
    assert!(
        now == before,
        "{host}: {what}\nadded: {added:#?}\nremoved: {removed:#?}"
    );
}

/// The part of [`rules`] output from the line `start` (the beginning when empty) to
/// the line `end`.
fn part<'a>(rules: &'a str, start: &str, end: &str) -> &'a str {
    let from = if start.is_empty() {
        0
    } else {
        rules.find(start).unwrap_or(rules.len())
    };
    let rest = &rules[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// `rules` without meshup's own nftables tables (`table inet meshup-…`, e.g. a transit
/// node's MSS clamp): whatever is in them is meshup's by their name.
fn without_meshup_tables(rules: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in rules.lines() {
        if line.starts_with("table ") && line.contains(" meshup-") {
            inside = true;
        } else if inside && line == "}" {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The inventory of the lab with `mesh_extra` under `mesh:` (IPv6 always) and the NAT
/// nodes' relays.
pub(crate) fn inventory(
    lab: &Lab,
    file: &str,
    mesh_extra: &str,
    relays: &[(&str, &str)],
) -> PathBuf {
    let mut text = std::fs::read_to_string(lab.inventory()).expect("lab inventory");
    text = text.replacen(
        "  network: 10.10.0.0/24\n",
        &format!("  network: 10.10.0.0/24\n  network6: fd10:10::/64\n{mesh_extra}"),
        1,
    );
    for (nat, relay) in relays {
        let at = format!("  - name: {nat}\n");
        assert!(text.contains(&at), "{nat} in the lab inventory");
        text = text.replacen(&at, &format!("{at}    relay: {relay}\n"), 1);
    }
    let path = lab.out_dir().join(file);
    std::fs::write(&path, text).expect("write inventory");
    path
}

/// The mesh addresses (IPv4 and IPv6) of a lab host: IPv6 takes the IPv4 host number.
pub(crate) fn mesh_addresses(lab: &Lab, host: &str) -> Vec<String> {
    let v4 = lab.host(host).mesh_address.clone();
    let n = v4.rsplit('.').next().expect("octet").to_string();
    vec![v4, format!("fd10:10::{n}")]
}

/// Starts a TCP listener (for 180 s) on every host's mesh addresses and on the machine
/// behind the subnet router.
fn start_listeners(lab: &Lab, hosts: &[&str]) {
    for h in hosts {
        let addrs = mesh_addresses(lab, h).join(" ");
        lab.host_exec(
            h,
            &format!(
                "cat > /tmp/tcp_mesh.py <<'PYEOF'\n{TCP_SCRIPT}PYEOF\n\
                 setsid python3 /tmp/tcp_mesh.py listen {PORT} 180 {addrs} \
                 >/tmp/tcp_mesh.log 2>&1 </dev/null &\n\
                 for i in 1 2 3 4 5 6 7 8 9 10; do grep -q listening /tmp/tcp_mesh.log && exit 0; sleep 0.2; done; \
                 cat /tmp/tcp_mesh.log; exit 1"
            ),
        )
        .expect_ok("start the TCP listener");
    }
    if let Some(gw) = lab.hosts().iter().find(|h| h.probe.is_some()) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tcp_mesh.py");
        let lan = format!("ml.{}.lan.{}", lab.name(), gw.name);
        // `setsid -f`: the listener outlives this call (and ends by itself).
        let started = Command::new("setsid")
            .args(["-f", "ip", "netns", "exec", &lan, "python3"])
            .arg(&script)
            .args(["listen", PORT, "180", gw.probe.as_deref().expect("probe")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start the LAN listener");
        assert!(started.success(), "the LAN listener did not start");
        let listening = (0..50).any(|_| {
            let ss = Command::new("ip")
                .args(["netns", "exec", &lan, "ss", "-ltn"])
                .output()
                .expect("ss");
            let up = String::from_utf8_lossy(&ss.stdout).contains(&format!(":{PORT} "));
            if !up {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            up
        });
        assert!(listening, "the LAN listener did not start");
    }
}

/// TCP connections from `from` to every address in `targets`: (address, "ok" or why not).
fn connect(lab: &Lab, from: &str, targets: &[String]) -> Vec<(String, String)> {
    let run = lab.host_exec(
        from,
        &format!(
            "python3 /tmp/tcp_mesh.py connect {PORT} {}",
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

/// Every host reaches every other host's listener (IPv4 and IPv6) and the LAN machine.
#[track_caller]
fn assert_tcp_everywhere(lab: &Lab, hosts: &[&str]) {
    let lan: Vec<String> = lab.hosts().iter().filter_map(|h| h.probe.clone()).collect();
    let mut failures = Vec::new();
    for from in hosts {
        let mut targets: Vec<String> = hosts
            .iter()
            .filter(|h| *h != from)
            .flat_map(|h| mesh_addresses(lab, h))
            .collect();
        targets.extend(lan.iter().cloned());
        let results = connect(lab, from, &targets);
        assert_eq!(results.len(), targets.len(), "{from}: {results:?}");
        for (to, result) in results {
            if result != "ok" {
                failures.push(format!("{from} -> {to}: {result}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "TCP over the mesh failed:\n{}",
        failures.join("\n")
    );
}

#[track_caller]
fn assert_verify_healthy(lab: &Lab, inv: &Path) {
    let run = meshup(lab, &["verify", path_str(inv)]);
    assert_eq!(run.code, Some(0), "verify\n{}\n{}", run.stdout, run.stderr);
}

#[track_caller]
pub(crate) fn assert_ssh(lab: &Lab, hosts: &[&str]) {
    for h in hosts {
        let ssh = lab.ssh("root", h, "hostname");
        assert_eq!(ssh.expect_ok("ssh after apply").trim(), *h);
    }
}

/// Light flavour, mixed scenario: nftables (two tables) on pub-1, ufw (deny incoming and
/// routed) on pub-2, the relay of the NAT pair, iptables + ip6tables (INPUT and FORWARD
/// DROP) on pub-3, nftables with a drop forward chain on the subnet router gw,
/// iptables on nat-1 and ufw on nat-2. `firewall: none` first changes nothing (rule sets
/// byte-identical, plan warns, TCP to a firewalled node fails); then the default (`trust`):
/// TCP works between every pair and to the LAN, verify is healthy, the second plan is
/// empty, a rule deleted by hand comes back, SSH works and the only rules added carry meshup's marker; a node marked
/// `state: absent` and then `none` again take exactly those out (rule sets byte-identical
/// to the start).
#[test]
fn firewall_lab_trust_opens_every_backend_and_none_leaves_them_alone() {
    require_lab!();
    let lab = Lab::up("fwlight", "mixed", "light");
    let hosts = ["gw", "nat-1", "nat-2", "pub-1", "pub-2", "pub-3"];
    for (h, setup) in [
        ("pub-1", NFT_TWO_TABLES),
        ("pub-2", UFW_DENY),
        ("pub-3", IPTABLES_DROP),
        ("gw", NFT_ROUTER),
        ("nat-1", IPTABLES_DROP),
        ("nat-2", UFW_DENY),
    ] {
        lab.host_exec(h, setup)
            .expect_ok(&format!("firewall on {h}"));
    }
    let before: BTreeMap<&str, String> = hosts.iter().map(|h| (*h, rules(&lab, h))).collect();
    // Both NAT nodes use one relay: a NAT node accepts another's traffic only from its
    // own relay peer (AllowedIPs), so a pair needs a common relay.
    let relays = [("nat-1", "pub-2"), ("nat-2", "pub-2")];

    // firewall: none changes no firewall and says what would block the mesh.
    let none = inventory(&lab, "none.yaml", "  firewall: none\n", &relays);
    apply_ok(&lab, &none, &[]);
    for h in hosts {
        assert_same_rules(&lab, h, &before[h], "{h}: firewall: none changed a rule");
    }
    let plan = meshup(&lab, &["plan", path_str(&none)]);
    for (h, fw) in [
        ("pub-1", "nftables"),
        ("pub-2", "ufw"),
        ("pub-3", "iptables"),
        ("gw", "nftables"),
    ] {
        let section = plan_section(&plan.stdout, h);
        assert!(
            section.contains(&format!("mesh.firewall is none, but {fw}")),
            "{h}: {}",
            plan.stdout
        );
    }
    start_listeners(&lab, &hosts);
    // verify checks TCP, not only ping, and names what drops it.
    let verify = meshup(&lab, &["verify", path_str(&none)]);
    assert_eq!(verify.code, Some(1), "{}", verify.stdout);
    for (h, why) in [
        ("pub-1", "nftables: chain inet filter input, policy drop"),
        (
            "pub-2",
            "ufw's default incoming policy is deny and no rule allows in on wg0",
        ),
        (
            "pub-3",
            "iptables and ip6tables INPUT drops what no rule accepts",
        ),
    ] {
        assert!(
            verify.stdout.contains(&format!("{h}: {why}")),
            "{h}: {}",
            verify.stdout
        );
    }
    let blocked = connect(&lab, "pub-2", &mesh_addresses(&lab, "pub-1"));
    assert!(
        blocked.iter().all(|(_, r)| r != "ok"),
        "pub-1's firewall lets TCP in without meshup: {blocked:?}"
    );

    // trust (the default): one apply and everything carries traffic.
    let trust = inventory(&lab, "trust.yaml", "", &relays);
    let plan = meshup(&lab, &["plan", path_str(&trust)]);
    assert!(
        plan.stdout.contains(
            "+ accept mesh traffic arriving on wg0 in nftables (chain inet filter input, ip guard input)"
        ),
        "{}",
        plan.stdout
    );
    apply_ok(&lab, &trust, &[]);
    assert_verify_healthy(&lab, &trust);
    assert_tcp_everywhere(&lab, &hosts);
    assert_no_changes(&lab, &trust);
    assert_ssh(&lab, &hosts);
    // Drift: a rule deleted by hand is in the next plan, and apply puts it back.
    lab.host_exec(
        "pub-1",
        "h=$(nft -a list chain ip guard input | awk '/meshup:wg0/ && /iifname/ { print $NF }') && \
         nft delete rule ip guard input handle \"$h\"",
    )
    .expect_ok("delete a rule by hand");
    lab.host_exec("pub-2", "ufw delete allow in on wg0 >/dev/null")
        .expect_ok("delete a ufw rule by hand");
    let plan = meshup(&lab, &["plan", path_str(&trust)]);
    for line in [
        "+ accept mesh traffic arriving on wg0 in nftables (chain ip guard input)",
        "+ accept mesh traffic arriving on wg0 in ufw",
    ] {
        assert!(plan.stdout.contains(line), "{line}: {}", plan.stdout);
    }
    apply_ok(&lab, &trust, &[]);
    assert_no_changes(&lab, &trust);
    for h in hosts {
        let after = rules(&lab, h);
        let (_, removed) = line_diff(&before[h], &after);
        assert!(removed.is_empty(), "{h}: rules gone: {removed:?}");
        // iptables-nft and ufw rules appear in the nftables listing without the marker:
        // the listing of the backend itself is what counts.
        let (start, end) = match h {
            "pub-2" | "nat-2" => ("== ufw", "\u{0}"),
            "pub-3" | "nat-1" => ("== iptables", "== ufw"),
            _ => ("", "== iptables"),
        };
        let pick = |r| without_meshup_tables(part(r, start, end));
        let (added, _) = line_diff(&pick(&before[h]), &pick(&after));
        let foreign: Vec<&String> = added.iter().filter(|l| !l.contains(MARKER)).collect();
        assert!(
            foreign.is_empty(),
            "{h}: added without meshup's marker: {foreign:?}"
        );
        assert!(!added.is_empty(), "{h}: nothing was added");
    }
    let pub1 = lab
        .host_exec("pub-1", "nft list chain ip guard input")
        .stdout;
    assert!(
        pub1.contains("iifname \"wg0\" accept comment \"meshup:wg0\""),
        "{pub1}"
    );
    // Persisted for the nftables service: the file it loads at boot still loads (the
    // runtime-only `ip guard` table included) and carries meshup's rules.
    for h in ["pub-1", "gw"] {
        let boot = lab.host_exec(
            h,
            "nft -c -f /etc/nftables.conf && cat /etc/nftables.d/meshup.nft",
        );
        let saved = boot.expect_ok(&format!("{h}: boot-time ruleset"));
        assert!(
            saved.contains("iifname \"wg0\" accept comment \"meshup:wg0\""),
            "{h}: {saved}"
        );
    }
    let gw = lab
        .host_exec("gw", "nft list chain inet filter forward")
        .stdout;
    for rule in ["iifname \"wg0\" accept", "oifname \"wg0\" accept"] {
        assert!(gw.contains(rule), "{rule}: {gw}");
    }

    // A node leaving the mesh takes exactly meshup's rules with it.
    let text = std::fs::read_to_string(&trust).expect("inventory");
    let absent = lab.out_dir().join("absent.yaml");
    std::fs::write(
        &absent,
        text.replacen(
            "  - name: nat-2\n",
            "  - name: nat-2\n    state: absent\n",
            1,
        ),
    )
    .expect("write inventory");
    apply_ok(&lab, &absent, &[]);
    assert_same_rules(
        &lab,
        "nat-2",
        &before["nat-2"],
        "state: absent left rules behind",
    );

    // none again: exactly meshup's rules go.
    apply_ok(&lab, &none, &[]);
    let saved = lab.host_exec(
        "pub-1",
        "nft -c -f /etc/nftables.conf && cat /etc/nftables.d/meshup.nft",
    );
    assert_eq!(
        saved.expect_ok("pub-1: boot-time ruleset"),
        "",
        "meshup.nft emptied"
    );
    for h in hosts {
        assert_same_rules(
            &lab,
            h,
            &before[h],
            "{h}: not back to the rules before meshup",
        );
    }
    assert_ssh(&lab, &hosts);
}

/// Systemd flavour, mixed scenario, firewalld: pub-1 with the default zone public, pub-2
/// with the default zone drop, gw (the subnet router) with public; pub-3, the relay of the
/// NAT pair, has only a Docker-like `iptables -P FORWARD DROP` (IPv4 and IPv6). After one
/// apply TCP works everywhere, wg0 is in meshup's own zone (target ACCEPT), the `trusted`
/// zone is untouched, verify is healthy and the second plan empty; `firewall: none` then
/// removes meshup's zone and policy (the WireGuard port opened in the default zone
/// carries no marker and stays).
#[test]
fn firewall_lab_firewalld_zones_and_docker_forward_drop() {
    require_lab!();
    let lab = Lab::up("fwsd", "mixed", "systemd");
    let hosts = ["gw", "nat-1", "nat-2", "pub-1", "pub-2", "pub-3"];
    for h in ["pub-1", "gw"] {
        lab.host_exec(h, FIREWALLD_START)
            .expect_ok(&format!("firewalld on {h}"));
    }
    lab.host_exec("pub-2", FIREWALLD_DROP)
        .expect_ok("firewalld drop zone on pub-2");
    lab.host_exec(
        "pub-3",
        "iptables -P FORWARD DROP && ip6tables -P FORWARD DROP",
    )
    .expect_ok("Docker's FORWARD policy on pub-3");
    let trusted = lab
        .host_exec("pub-1", "firewall-cmd --info-zone=trusted")
        .stdout;
    let before: BTreeMap<&str, String> = hosts.iter().map(|h| (*h, rules(&lab, h))).collect();
    let relays = [("nat-1", "pub-3"), ("nat-2", "pub-3")];

    let trust = inventory(&lab, "trust.yaml", "", &relays);
    apply_ok(&lab, &trust, &[]);
    assert_verify_healthy(&lab, &trust);
    start_listeners(&lab, &hosts);
    assert_tcp_everywhere(&lab, &hosts);
    assert_no_changes(&lab, &trust);
    assert_ssh(&lab, &hosts);
    for h in ["pub-1", "pub-2", "gw"] {
        let zone = lab.host_exec(
            h,
            "firewall-cmd --get-zone-of-interface=wg0; firewall-cmd --permanent --get-zone-of-interface=wg0; \
             firewall-cmd --zone=meshup-wg0 --get-target --permanent",
        );
        assert_eq!(
            zone.stdout, "meshup-wg0\nmeshup-wg0\nACCEPT\n",
            "{h}: {}",
            zone.stderr
        );
    }
    assert_eq!(
        lab.host_exec("pub-1", "firewall-cmd --info-zone=trusted")
            .stdout,
        trusted,
        "the trusted zone was changed"
    );
    let policies = lab.host_exec("gw", "firewall-cmd --get-policies").stdout;
    assert!(policies.contains("meshup-wg0-fw"), "{policies}");
    let pub3 = lab
        .host_exec("pub-3", "iptables -S FORWARD; ip6tables -S FORWARD")
        .stdout;
    for rule in ["-i wg0", "-o wg0"] {
        assert_eq!(pub3.matches(rule).count(), 2, "{rule}: {pub3}");
    }
    let iptables = |r| part(r, "== iptables", "== ufw");
    let (added, _) = line_diff(iptables(&before["pub-3"]), iptables(&rules(&lab, "pub-3")));
    assert!(
        added.iter().all(|l| l.contains(MARKER)),
        "pub-3: added without meshup's marker: {added:?}"
    );

    let none = inventory(&lab, "none.yaml", "  firewall: none\n", &relays);
    apply_ok(&lab, &none, &[]);
    assert_same_rules(
        &lab,
        "pub-3",
        &before["pub-3"],
        "pub-3 not back to its rules",
    );
    for h in ["pub-1", "pub-2", "gw"] {
        let left = lab.host_exec(
            h,
            "firewall-cmd --get-zones; firewall-cmd --get-policies; ls /etc/firewalld/zones /etc/firewalld/policies",
        );
        assert!(!left.stdout.contains("meshup"), "{h}: {}", left.stdout);
    }
    assert_ssh(&lab, &hosts);
}

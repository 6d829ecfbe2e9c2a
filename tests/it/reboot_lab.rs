//! It comes back by itself (DESIGN rule 14): after a power cycle of every host
//! (`tests/lab/lab reboot`: every process killed, links, rulesets, net.* sysctls and /run
//! lost, the disk kept, booted again by the host's own systemd) the mesh is healthy again
//! with no meshup run, on every firewall backend. Systemd flavour, mixed scenario: pub-1
//! runs nftables (policy drop, its ruleset in /etc/nftables.conf loaded by
//! nftables.service), pub-2 ufw (deny incoming and routed), pub-3 firewalld (default zone
//! drop) and relays the NAT pair, gw (the subnet router) runs iptables + ip6tables (INPUT
//! and FORWARD DROP) persisted by Debian's loader (iptables-persistent); the mesh ACL is on
//! (web → db 5432/tcp), the NAT pair is punched (its relay the fallback), names are in
//! /etc/hosts and a second mesh (wg1, 10.20.0.0/24, port 51821) joins pub-1 and gw.
//! Real: systemd boots, units (wg-quick@, nftables, ufw, firewalld, netfilter-persistent,
//! systemd-sysctl), the loaders' files, wireguard-go, the firewalls, the NAT routers.
//! Emulated: the power cycle (shared kernel, see tests/lab/README.md "Reboot"). The same
//! on the emulated distro hosts, whose firewall loaders are their distributions' units and
//! files (Fedora /etc/sysconfig/nftables.conf, Arch /etc/iptables/*.rules, Rocky 8
//! iptables-services /etc/sysconfig/iptables, openSUSE firewalld).
//! Needs root; `MESHUP_SKIP_LAB=1` skips them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::acl_lab::{ACL, MIXED_GROUPS, with_groups};
use crate::firewall_lab::{
    FIREWALLD_DROP, IPTABLES_DROP, NFT_TWO_TABLES, UFW_DENY, inventory, line_diff, rules,
};
use crate::support_lab::{
    Lab, apply_ok, assert_no_changes, lab_command, meshup, path_str, wait_for,
};

/// What a lab test expects to come back, and on which hosts.
struct Setup<'a> {
    hosts: &'a [&'a str],
    /// The hosts of the second mesh (wg1).
    wg1: &'a [&'a str],
    /// The hosts that forward (a relay, the subnet router).
    forwarders: &'a [&'a str],
    /// Hosts whose iptables rules a loader restores at boot: iptables-restore also creates
    /// the built-in chains the rules never used (an empty OUTPUT, policy accept) in
    /// iptables-nft's table, so their iptables view is compared, not nft's.
    iptables: &'a [&'a str],
    inventories: Vec<PathBuf>,
    /// A line `verify` of the first inventory shows when its NAT pair is punched.
    punched: Option<&'a str>,
}

const MIXED_HOSTS: [&str; 6] = ["gw", "nat-1", "nat-2", "pub-1", "pub-2", "pub-3"];
/// meshup's ACL table, as `nft` lists it without handles or counters.
const ACL_TABLE: &str = "nft -s list table inet meshup-wg0";
/// How long after sshd answers again every mesh must verify healthy (the bound).
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);
/// iptables + ip6tables INPUT and FORWARD DROP ([`IPTABLES_DROP`]).
fn iptables_drop_then(save: &str) -> String {
    format!("{{ {IPTABLES_DROP}; }} && {save}")
}

/// The mixed lab's firewalls, set up the way an admin would, so that they come back at boot.
fn mixed_firewall(host: &str) -> Option<String> {
    match host {
        // The ruleset in the file nftables.service loads (Debian's starts with a flush).
        "pub-1" => Some(nft_in_file("/etc/nftables.conf")),
        "pub-2" => Some(UFW_DENY.to_string()),
        "pub-3" => Some(FIREWALLD_DROP.to_string()),
        // Debian's loader for iptables rules, from the lab mirror; the rules saved for it.
        "gw" => Some(iptables_drop_then(
            "apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y \
             install iptables-persistent >/dev/null && netfilter-persistent save",
        )),
        _ => None,
    }
}

/// [`NFT_TWO_TABLES`] written to `file` after a `flush ruleset`, loaded by nftables.service.
fn nft_in_file(file: &str) -> String {
    format!(
        "echo 'flush ruleset' >> {file}\n{}\n\
         systemctl enable nftables && systemctl restart nftables",
        NFT_TWO_TABLES.replacen("nft -f -", &format!("cat >> {file}"), 1)
    )
}

/// `inv` with `nat_punching: true` (the NAT pair punched, its relay the fallback).
fn punching(inv: &Path) -> PathBuf {
    let text = std::fs::read_to_string(inv).expect("inventory");
    let text = text.replace("  nat_punching: false\n", "").replacen(
        "  listen_port: 51820\n",
        "  listen_port: 51820\n  nat_punching: true\n",
        1,
    );
    std::fs::write(inv, text).expect("write inventory");
    inv.to_path_buf()
}

/// The lab's inventory restricted to `hosts` as a second mesh: wg1, 10.20.0.0/24, port
/// 51821, no subnets (wg0 routes the LAN), no /etc/hosts names (wg0 has them).
fn second_mesh(lab: &Lab, hosts: &[&str]) -> PathBuf {
    let text = std::fs::read_to_string(lab.inventory()).expect("lab inventory");
    let (head, nodes) = text.split_once("nodes:\n").expect("nodes:");
    let mut out = head
        .replace("interface: wg0", "interface: wg1")
        .replace("10.10.0.0/24", "10.20.0.0/24")
        .replace(
            "listen_port: 51820",
            "listen_port: 51821\n  hosts_file: false",
        );
    out.push_str("nodes:\n");
    for block in nodes.split("  - name: ").skip(1) {
        let name = block.lines().next().unwrap_or_default();
        if !hosts.contains(&name) {
            continue;
        }
        out.push_str("  - name: ");
        for line in block.lines() {
            if !line.contains("subnets:") && !line.contains("probe:") {
                out.push_str(
                    &line
                        .replace("10.10.0.", "10.20.0.")
                        .replace(":51820", ":51821"),
                );
                out.push('\n');
            }
        }
    }
    assert!(out.contains("interface: wg1") && out.contains("listen_port: 51821"));
    let path = lab.out_dir().join("wg1.yaml");
    std::fs::write(&path, out).expect("write wg1.yaml");
    path
}

/// `lab reboot` of `hosts` (all at once); returns when their sshd answers.
#[track_caller]
fn reboot(lab: &Lab, hosts: &[&str]) {
    let out = Command::new(lab_command())
        .args(["reboot", lab.name()])
        .args(hosts)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/lab/lab reboot");
    let run = crate::support_lab::Run::from(out);
    eprint!("{}", run.expect_ok("lab reboot"));
}

/// Polls `meshup verify` of every inventory until all are healthy (and the first one
/// shows `setup.punched`); returns how long that took. Fails with the last verify's
/// output after [`HEALTHY_WITHIN`].
#[track_caller]
fn until_healthy(lab: &Lab, setup: &Setup) -> Duration {
    let start = Instant::now();
    loop {
        let mut unhealthy = None;
        for (i, inv) in setup.inventories.iter().enumerate() {
            let run = meshup(lab, &["verify", path_str(inv)]);
            let punched = i > 0 || setup.punched.is_none_or(|p| run.stdout.contains(p));
            if run.code != Some(0) || !punched {
                unhealthy = Some(format!("{}\n{}\n{}", inv.display(), run.stdout, run.stderr));
                break;
            }
        }
        match unhealthy {
            None => return start.elapsed(),
            Some(why) => assert!(
                start.elapsed() < HEALTHY_WITHIN,
                "not healthy {HEALTHY_WITHIN:?} after the reboot:\n{why}"
            ),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What a reboot must bring back on `host`, checked directly: the services enabled and
/// active, the host's firewall with meshup's rules exactly as before (order aside), the
/// ACL table, forwarding, the names; and that it was a power cycle (/run lost, disk kept).
#[track_caller]
fn assert_back(
    lab: &Lab,
    setup: &Setup,
    host: &str,
    (rules_before, acl_before): &(String, String),
) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut ifaces = vec!["wg0"];
    if setup.wg1.contains(&host) {
        ifaces.push("wg1");
    }
    let init = lab.host(host).init.as_deref().unwrap_or("systemd");
    for i in ifaces {
        let unit = lab.host_exec(host, &service_state(init, i));
        if unit.stdout != "enabled\nactive\n" {
            wrong.push(format!(
                "{host}: the {init} service of {i}: {}",
                unit.stdout.replace('\n', " ")
            ));
        }
    }
    // iptables-restore at boot also creates the built-in chains the rules never used (an
    // empty OUTPUT, policy accept) in iptables-nft's table: the iptables view is compared.
    let view = |r: &str| {
        if setup.iptables.contains(&host) {
            r[r.find("== iptables").unwrap_or(0)..].to_string()
        } else {
            r.to_string()
        }
    };
    let (added, removed) = line_diff(&view(rules_before), &view(&rules(lab, host)));
    if !added.is_empty() || !removed.is_empty() {
        wrong.push(format!(
            "{host}: firewall not as before the reboot: added {added:?}, lost {removed:?}"
        ));
    }
    if !rules_before.contains("meshup:wg0") {
        wrong.push(format!(
            "{host}: no rule carried meshup:wg0 before the reboot"
        ));
    }
    let acl = lab.host_exec(host, ACL_TABLE).stdout;
    if acl != *acl_before || !acl.contains("table inet meshup-wg0") {
        wrong.push(format!(
            "{host}: the ACL table is not as before: {acl:?}, was {acl_before:?}"
        ));
    }
    let fwd = lab
        .host_exec(
            host,
            "sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding",
        )
        .stdout;
    let want = if setup.forwarders.contains(&host) {
        "1\n1\n"
    } else {
        "0\n0\n"
    };
    if fwd != want {
        wrong.push(format!("{host}: forwarding {fwd:?}, want {want:?}"));
    }
    let names = setup
        .hosts
        .iter()
        .filter(|h| **h != host)
        .map(|h| format!("getent ahostsv4 {h} | awk 'NR == 1 {{print $1}}'"))
        .collect::<Vec<_>>()
        .join("; ");
    let resolved = lab.host_exec(host, &names).stdout;
    let want: String = setup
        .hosts
        .iter()
        .filter(|h| **h != host)
        .map(|h| format!("{}\n", lab.host(h).mesh_address))
        .collect();
    if resolved != want {
        wrong.push(format!(
            "{host}: names resolve to {resolved:?}, want {want:?}"
        ));
    }
    let marks = lab.host_exec(host, "ls /run/rb-mark /var/tmp/rb-mark 2>/dev/null");
    if marks.stdout != "/var/tmp/rb-mark\n" {
        wrong.push(format!("{host}: not a power cycle: {}", marks.stdout));
    }
    wrong
}

/// A shell command printing whether the service of interface `i` starts at boot and runs
/// (`enabled`, `active`), asked of the host's own init the way its admin would.
fn service_state(init: &str, i: &str) -> String {
    let (enabled, active) = match init {
        // OpenRC: the default runlevel holds it, OpenRC started it.
        "openrc" => (
            format!("rc-update show default | grep -q ' wg-quick.{i} '"),
            format!("rc-service wg-quick.{i} status >/dev/null 2>&1"),
        ),
        // sysv-rc: a start link in runlevel 2 (update-rc.d), the interface up.
        "sysvinit" => (
            format!("ls /etc/rc2.d/S??wg-quick.{i} >/dev/null 2>&1"),
            format!("/etc/init.d/wg-quick.{i} status >/dev/null 2>&1"),
        ),
        _ => {
            return format!("systemctl is-enabled wg-quick@{i}; systemctl is-active wg-quick@{i}");
        }
    };
    format!(
        "if {enabled}; then echo enabled; else echo disabled; fi; \
         if {active}; then echo active; else echo inactive; fi"
    )
}

/// Marks each host's /run (to be lost) and /var/tmp (to be kept).
fn mark(lab: &Lab, hosts: &[&str]) {
    for h in hosts {
        lab.host_exec(h, "touch /run/rb-mark /var/tmp/rb-mark")
            .expect_ok("mark /run and /var/tmp");
    }
}

/// Applies every inventory of `setup`, waits for them to verify healthy, then power cycles
/// every host at once, then each host alone: after each reboot every mesh verifies
/// healthy within [`HEALTHY_WITHIN`] of sshd answering with no meshup run, every host has
/// its services, firewall rules, ACL table, forwarding and names back, and the plans are
/// empty. Prints the times.
fn apply_then_reboot(lab: &Lab, setup: &Setup) {
    let invs: Vec<&Path> = setup.inventories.iter().map(PathBuf::as_path).collect();
    for inv in &invs {
        apply_ok(lab, inv, &[]);
    }
    if setup.punched.is_some() {
        // The first run sees no NAT mapping yet (nothing was sent): the second punches.
        apply_ok(lab, invs[0], &[]);
    }
    until_healthy(lab, setup);
    let no_changes = || {
        for inv in &invs {
            assert_no_changes(lab, inv);
        }
    };
    no_changes();
    let before: BTreeMap<&str, (String, String)> = setup
        .hosts
        .iter()
        .map(|h| (*h, (rules(lab, h), lab.host_exec(h, ACL_TABLE).stdout)))
        .collect();

    // Every host at once.
    mark(lab, setup.hosts);
    let t0 = Instant::now();
    reboot(lab, setup.hosts);
    let sshd = t0.elapsed();
    let healthy = until_healthy(lab, setup);
    eprintln!(
        "all {} hosts at once: sshd answered {:.1} s after the power off, every mesh healthy {:.1} s later",
        setup.hosts.len(),
        sshd.as_secs_f64(),
        healthy.as_secs_f64()
    );
    let wrong: Vec<String> = setup
        .hosts
        .iter()
        .flat_map(|h| assert_back(lab, setup, h, &before[h]))
        .collect();
    assert!(wrong.is_empty(), "after the reboot:\n{}", wrong.join("\n"));
    no_changes();

    // One by one: each backend on its own, the rest of the mesh up.
    let mut times = Vec::new();
    for h in setup.hosts {
        mark(lab, &[h]);
        let t0 = Instant::now();
        reboot(lab, &[h]);
        let sshd = t0.elapsed();
        let healthy = until_healthy(lab, setup);
        let wrong = assert_back(lab, setup, h, &before[h]);
        assert!(
            wrong.is_empty(),
            "after rebooting {h}:\n{}",
            wrong.join("\n")
        );
        times.push(format!(
            "{h}: sshd {:.1} s, healthy {:.1} s later",
            sshd.as_secs_f64(),
            healthy.as_secs_f64()
        ));
    }
    eprintln!("one by one:\n  {}", times.join("\n  "));
    no_changes();
}

/// The mixed lab's firewalls set up (see the module doc) and what must come back: wg0 with
/// the ACL, names and the punched NAT pair (pub-3 their relay), wg1 on pub-1 and gw.
fn mixed(lab: &Lab) -> Setup<'static> {
    for h in MIXED_HOSTS {
        if let Some(setup) = mixed_firewall(h) {
            lab.host_exec(h, &setup)
                .expect_ok(&format!("firewall on {h}"));
        }
    }
    let relays = [("nat-1", "pub-3"), ("nat-2", "pub-3")];
    const WG1: [&str; 2] = ["pub-1", "gw"];
    Setup {
        hosts: &MIXED_HOSTS,
        wg1: &WG1,
        forwarders: &["pub-3", "gw"],
        iptables: &["gw"],
        inventories: vec![
            punching(&with_groups(
                &inventory(lab, "wg0.yaml", ACL, &relays),
                &MIXED_GROUPS,
            )),
            second_mesh(lab, &WG1),
        ],
        punched: Some("nat-1 ↔ nat-2: punched ("),
    }
}

/// Mixed lab, systemd flavour, one host per firewall backend (see the module doc), the
/// ACL, names and a second mesh (wg1 on pub-1 and gw): [`apply_then_reboot`].
#[test]
fn reboot_lab_every_backend_comes_back_by_itself() {
    require_lab!();
    let lab = Lab::up("rb-mixed", "mixed", "systemd");
    apply_then_reboot(&lab, &mixed(&lab));
}

/// The mixed lab of [`reboot_lab_every_backend_comes_back_by_itself`] with two hosts booted
/// by other inits (`lab up --init`, tests/lab/README.md "Other inits"): pub-2 (ufw, deny
/// incoming and routed) by OpenRC, gw (the subnet router, iptables persisted by
/// iptables-persistent, wg1) by sysvinit; meshup's service recipes for those inits
/// (/etc/init.d/wg-quick.<if> in OpenRC's default runlevel / sysv-rc's runlevel 2), ufw's and
/// netfilter-persistent's init scripts, procps' sysctl.d at boot and Debian's cron for the
/// watchdog: [`apply_then_reboot`].
#[test]
fn reboot_lab_openrc_and_sysvinit_come_back_by_themselves() {
    require_lab!();
    let lab = Lab::up_with(
        "in-rb-inits",
        &[
            "--scenario",
            "mixed",
            "--flavour",
            "systemd",
            "--init",
            "pub-2=openrc,gw=sysvinit",
        ],
    );
    for (h, init) in [("pub-2", "openrc"), ("gw", "sysvinit")] {
        assert_eq!(lab.host(h).init.as_deref(), Some(init), "{h}");
        // The init's own marks: OpenRC's /run/openrc, sysvinit's /run/initctl, no systemd.
        let marks = lab.host_exec(
            h,
            "ls -d /run/openrc /run/initctl /run/systemd/system 2>/dev/null; cat /proc/1/comm",
        );
        let want = if init == "openrc" {
            "/run/initctl\n/run/openrc\ninit\n"
        } else {
            "/run/initctl\ninit\n"
        };
        assert_eq!(marks.stdout, want, "{h}: {}", marks.stderr);
    }
    apply_then_reboot(&lab, &mixed(&lab));
    // The watchdog's cron line (/etc/cron.d, run by Debian's cron that the init started):
    // a tick after the last power cycle leaves its stamp in /run, which the cycle emptied.
    for h in ["pub-2", "gw"] {
        let cron = lab.host_exec(h, "ls /etc/cron.d/meshup-watchdog-wg0 && pgrep -x cron");
        cron.expect_ok(&format!("{h}: the watchdog's cron line and cron"));
        wait_for(
            &format!("{h}: a watchdog tick after the reboot"),
            Duration::from_secs(100),
            || {
                lab.host_exec(h, "test -s /run/meshup-watchdog-wg0.tick")
                    .ok()
            },
        );
    }
}

/// The emulated distro hosts (guide-distros scenario, systemd flavour) with their
/// distributions' firewall loaders: Fedora nftables.service loading
/// /etc/sysconfig/nftables.conf (policy drop), Arch iptables.service/ip6tables.service
/// restoring /etc/iptables/{iptables,ip6tables}.rules (behind NAT), Rocky 8
/// iptables-services restoring /etc/sysconfig/iptables and ip6tables, openSUSE firewalld
/// (default zone drop), Debian ufw; the ACL (node-a is `web`, the others `db`), names, and
/// wg1 on node-b and node-d: [`apply_then_reboot`].
#[test]
fn reboot_lab_distro_loaders_come_back_by_themselves() {
    require_lab!();
    let lab = Lab::up("rb-distros", "guide-distros", "systemd");
    let hosts = ["node-a", "node-b", "node-c", "node-d", "node-e"];
    let enable = "systemctl enable iptables ip6tables";
    for (h, fw) in [
        ("node-a", UFW_DENY.to_string()),
        ("node-b", nft_in_file("/etc/sysconfig/nftables.conf")),
        (
            "node-c",
            iptables_drop_then(&format!(
                "iptables-save > /etc/iptables/iptables.rules && \
                 ip6tables-save > /etc/iptables/ip6tables.rules && {enable}"
            )),
        ),
        (
            "node-d",
            iptables_drop_then(&format!(
                "/usr/libexec/iptables/iptables.init save && \
                 /usr/libexec/iptables/ip6tables.init save && {enable}"
            )),
        ),
        ("node-e", FIREWALLD_DROP.to_string()),
    ] {
        lab.host_exec(h, &fw).expect_ok(&format!("firewall on {h}"));
    }
    let groups = [
        ("node-a", "web"),
        ("node-b", "db"),
        ("node-c", "db"),
        ("node-d", "db"),
        ("node-e", "db"),
    ];
    let wg1 = ["node-b", "node-d"];
    let setup = Setup {
        hosts: &hosts,
        wg1: &wg1,
        forwarders: &[],
        iptables: &["node-c", "node-d"],
        inventories: vec![
            with_groups(&inventory(&lab, "wg0.yaml", ACL, &[]), &groups),
            second_mesh(&lab, &wg1),
        ],
        punched: None,
    };
    apply_then_reboot(&lab, &setup);
}

/// What `lab reboot` claims (tests/lab/README.md "Reboot"), on one systemd host: runtime
/// state made before the power cycle is gone afterwards (a persistent tun device, an
/// nftables table, an iptables rule, a policy routing rule, runtime net.* sysctls, /run,
/// every process: PID 1 is new), the disk is kept (/etc, /var/tmp, the host keys SSH
/// checks), and net.* sysctls in /etc/sysctl.d are applied at boot. A light host is
/// refused (no init boots it again).
#[test]
fn reboot_lab_power_cycle_loses_runtime_state_keeps_disk() {
    require_lab!();
    let lab = Lab::up_with("rb-cycle", &["--public", "1", "--flavour", "systemd"]);
    let h = "pub-1";
    let pid1 = "awk '{print $22}' /proc/1/stat";
    let started = lab.host_exec(h, pid1).expect_ok("PID 1 start").to_string();
    lab.host_exec(
        h,
        "ip tuntap add tun7 mode tun && nft add table inet junk && \
         iptables -A INPUT -s 192.0.2.1 -j DROP && ip rule add pref 100 from 192.0.2.1 lookup 100 && \
         sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.src_valid_mark=1 && \
         echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-rb.conf && \
         touch /run/rb-mark /var/tmp/rb-mark /etc/rb-mark && \
         { setsid sleep 1000 </dev/null >/dev/null 2>&1 & }",
    )
    .expect_ok("runtime state");
    reboot(&lab, &[h]);
    let after = lab.host_exec(
        h,
        "ip link show tun7 >/dev/null 2>&1 && echo tun7; nft list table inet junk >/dev/null 2>&1 && echo junk; \
         iptables -S INPUT | grep -q 192.0.2.1 && echo iptables; ip rule | grep -q '^100:' && echo rule; \
         sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.ipv4.conf.all.src_valid_mark; \
         ls /run/rb-mark /var/tmp/rb-mark /etc/rb-mark 2>/dev/null; pgrep -x sleep || true",
    );
    assert_eq!(
        after.stdout, "1\n0\n0\n/etc/rb-mark\n/var/tmp/rb-mark\n",
        "{}",
        after.stderr
    );
    let now = lab.host_exec(h, pid1).expect_ok("PID 1 start").to_string();
    assert_ne!(now, started, "PID 1 was not started again");
    assert_eq!(
        lab.ssh("root", h, "hostname")
            .expect_ok("ssh with the old host key")
            .trim(),
        h
    );

    let light = Lab::up_with("rb-light", &["--public", "1"]);
    let out = Command::new(lab_command())
        .args(["reboot", light.name(), "pub-1"])
        .stdin(Stdio::null())
        .output()
        .expect("run tests/lab/lab reboot");
    let run = crate::support_lab::Run::from(out);
    assert!(
        !run.ok() && run.stderr.contains("only systemd-flavour hosts"),
        "{}",
        run.stderr
    );
}

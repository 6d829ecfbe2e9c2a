//! DNS-name endpoints against the local lab, whose resolver (a real dnsmasq in the mirror
//! namespace, zone `lab.test`) every host uses through its own /etc/resolv.conf.
//!
//! The guide scenario with `lab up --dns-endpoints`: the public nodes' endpoints are
//! `node-a.lab.test:51820` and `node-b.lab.test:51820`. node-c is behind NAT, so node-b
//! cannot reach it first: once node-b moves, only node-c re-resolving the name brings the
//! pair back. `lab renumber` gives node-b a new public address and `lab dns set` points the
//! name at it; no meshup run follows. The host-side watchdog that apply installs re-resolves
//! the name of a peer whose last handshake is older than 135 s, so node-c pings node-b's mesh
//! address again within 3 minutes (systemd flavour: the watchdog's timer is a real
//! systemd timer). Then the name is deleted (a DNS outage) and an apply that reloads every
//! interface (a new keepalive) must succeed and leave node-c's followed address alone.
//!
//! What is real: the resolver (dnsmasq) and each host's glibc resolver, WireGuard resolving
//! `Endpoint = node-b.lab.test:51820` on the host (never on the workstation), the NAT in
//! front of node-c, the routing (after `renumber` the internet router has no route to the
//! old address, so packets to it are lost) and the watchdog on node-c.
//! What is emulated: the renumbering is an address and route swap on one router hop, and
//! the old address keeps answering SSH only (the internet router forwards OLD:22 to the new
//! address), standing for the out-of-band access an operator keeps; the inventory's
//! `ssh.host` and known_hosts are therefore unchanged. Needs root; `MESHUP_SKIP_LAB=1`
//! skips it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support_lab::{
    Lab, Run, apply_ok, assert_no_changes, lab_command, meshup, path_str, wait_for,
};

/// node-b's address after the renumbering (198.51.100.20 before).
const NEW_B: &str = "198.51.100.120";
/// Longest time node-c may take to reach node-b again (issue #25: 3 minutes).
const FOLLOW_LIMIT: Duration = Duration::from_secs(180);

/// Runs `tests/lab/lab ARGS...`.
fn lab_cli(args: &[&str]) -> Run {
    Run::from(
        Command::new(lab_command())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tests/lab/lab"),
    )
}

/// node-c's live endpoint for the peer whose AllowedIPs hold `mesh`/32.
fn live_endpoint(lab: &Lab, host: &str, mesh: &str) -> String {
    let dump = lab
        .host_exec(host, "wg show wg0 dump")
        .expect_ok("wg show dump")
        .to_string();
    dump.lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[3].split(',').any(|a| a == format!("{mesh}/32")))
        .map(|f| f[2].to_owned())
        .unwrap_or_default()
}

/// The guide lab with named endpoints, applied and verified: every node's config holds
/// the names, each interface the address its host resolved them to, verify is healthy
/// and shows the names, and the next plan is empty.
fn applied_named_lab(name: &str, flavour: &str) -> Lab {
    let lab = Lab::up_with(
        name,
        &[
            "--scenario",
            "guide",
            "--flavour",
            flavour,
            "--dns-endpoints",
        ],
    );
    let inv = lab.inventory();
    let b = lab.host("node-b");
    let old_b = b.public_ip.clone().expect("node-b is public");
    let text = std::fs::read_to_string(&inv).expect("read inventory");
    assert!(text.contains("endpoint: node-b.lab.test:51820"), "{text}");

    apply_ok(&lab, &inv, &[]);
    let verify = meshup(&lab, &["verify", path_str(&inv)]);
    verify.expect_ok("meshup verify");
    assert!(
        verify.stdout.contains(&format!(
            "node-c → node-b: endpoint node-b.lab.test:51820 (node-c sends to {old_b}:51820)"
        )),
        "verify names the endpoint as such:\n{}",
        verify.stdout
    );
    // The config holds the name; the interface holds what node-c resolved it to.
    let conf = lab
        .host_exec("node-c", "cat /etc/wireguard/wg0.conf")
        .expect_ok("read wg0.conf")
        .to_string();
    assert!(conf.contains("Endpoint = node-b.lab.test:51820"), "{conf}");
    assert_eq!(
        live_endpoint(&lab, "node-c", &b.mesh_address),
        format!("{old_b}:51820")
    );
    // The name in the file against the address in `wg show` is no difference.
    assert_no_changes(&lab, &inv);
    lab
}

/// One ping from node-c to `mesh` is answered.
fn c_reaches(lab: &Lab, mesh: &str) -> bool {
    lab.host_exec("node-c", &format!("ping -c 1 -W 1 {mesh}"))
        .ok()
}

/// `lab renumber` + `lab dns set` for node-b; node-c loses node-b at once.
fn renumber_b(lab: &Lab) {
    lab_cli(&["renumber", lab.name(), "node-b", NEW_B]).expect_ok("lab renumber");
    lab_cli(&["dns", lab.name(), "set", "node-b.lab.test", NEW_B]).expect_ok("lab dns set");
    let b_mesh = &lab.host("node-b").mesh_address;
    let lost = lab.host_exec("node-c", &format!("ping -c 2 -W 1 {b_mesh}"));
    assert!(
        !lost.ok(),
        "node-c still reaches node-b right after the renumbering: {}",
        lost.stdout
    );
}

#[test]
fn dns_lab_names_resolve_on_the_hosts_and_renumber_moves_a_host() {
    require_lab!();
    let lab = applied_named_lab("dn-names", "light");
    let name = lab.name().to_owned();
    let old_b = lab.host("node-b").public_ip.clone().expect("public");
    // The lab's resolver answers every host, the one behind NAT too, and the workstation.
    let got = lab
        .host_exec("node-c", "getent ahostsv4 node-a.lab.test")
        .expect_ok("resolve on node-c")
        .to_string();
    assert!(got.starts_with("203.0.113.10 "), "{got}");
    assert!(
        !lab.host_exec("node-a", "getent hosts nothing.lab.test")
            .ok()
    );
    let ws = crate::support_lab::Run::from(
        lab.ws_command(&["getent", "hosts", "node-b.lab.test"])
            .output()
            .expect("getent in the workstation namespace"),
    );
    assert!(
        ws.expect_ok("resolve on the workstation")
            .starts_with(&old_b)
    );
    lab_cli(&["dns", &name, "set", "extra.lab.test", "192.0.2.7"]).expect_ok("dns set");
    assert!(
        lab_cli(&["dns", &name, "list"])
            .expect_ok("dns list")
            .contains("192.0.2.7 extra.lab.test")
    );
    assert!(lab.host_exec("node-a", "getent hosts extra.lab.test").ok());
    lab_cli(&["dns", &name, "del", "extra.lab.test"]).expect_ok("dns del");
    assert!(!lab.host_exec("node-a", "getent hosts extra.lab.test").ok());
    assert!(!lab_cli(&["dns", &name, "set", "Bad_Name", "192.0.2.7"]).ok());

    renumber_b(&lab);
    // node-b answers on its new address only; SSH to the old one still reaches it.
    assert!(
        lab.host_exec("node-a", &format!("ping -c 1 -W 2 {NEW_B}"))
            .ok()
    );
    assert!(
        !lab.host_exec("node-a", &format!("ping -c 1 -W 1 {old_b}"))
            .ok()
    );
    let addrs = lab.ssh("root", "node-b", "ip -4 -o addr show dev eth0");
    let addrs = addrs.expect_ok("ssh to node-b's old address");
    assert!(
        addrs.contains(&format!("{NEW_B}/32")) && !addrs.contains(&old_b),
        "{addrs}"
    );
    // The name follows on the hosts at once (no cache in between).
    let got = lab
        .host_exec("node-c", "getent ahostsv4 node-b.lab.test")
        .expect_ok("resolve the new address")
        .to_string();
    assert!(got.starts_with(&format!("{NEW_B} ")), "{got}");

    lab.down().expect_ok("lab down");
    assert!(!std::path::Path::new(&format!("/etc/netns/ml.{name}.ws")).exists());
}

#[test]
fn dns_lab_renumbered_node_is_followed_by_name_without_a_run() {
    require_lab!();
    // The systemd flavour: the watchdog's timer is a real systemd timer there.
    let lab = applied_named_lab("dn-follow", "systemd");
    let inv = lab.inventory();
    let b_mesh = lab.host("node-b").mesh_address.clone();
    renumber_b(&lab);
    let start = Instant::now();

    // No meshup run from here on.
    wait_for(
        "node-c pings node-b's mesh address again",
        Duration::from_secs(300),
        || c_reaches(&lab, &b_mesh),
    );
    let took = start.elapsed();
    eprintln!(
        "dns follow: node-c reached renumbered node-b again after {:.1} s (no meshup run)",
        took.as_secs_f64()
    );
    assert_eq!(
        live_endpoint(&lab, "node-c", &b_mesh),
        format!("{NEW_B}:51820"),
        "node-c follows the name to node-b's new address"
    );
    assert!(
        took <= FOLLOW_LIMIT,
        "node-c took {took:?} to reach node-b again (limit {FOLLOW_LIMIT:?})"
    );
    // The followed endpoint does not make the next run change anything.
    assert_no_changes(&lab, &inv);

    // A run that reloads the interfaces (a new keepalive) while the name does not resolve
    // (a DNS outage) keeps the followed address instead of failing on the name.
    lab_cli(&["dns", lab.name(), "del", "node-b.lab.test"]).expect_ok("lab dns del");
    let text = std::fs::read_to_string(&inv).expect("read inventory");
    let changed = lab.out_dir().join("inventory-keepalive.yaml");
    std::fs::write(
        &changed,
        text.replacen(
            "  listen_port: 51820\n",
            "  listen_port: 51820\n  persistent_keepalive: 20\n",
            1,
        ),
    )
    .expect("write inventory");
    let run = apply_ok(&lab, &changed, &[]);
    assert!(run.stdout.contains("live reload"), "{}", run.stdout);
    assert_eq!(
        live_endpoint(&lab, "node-c", &b_mesh),
        format!("{NEW_B}:51820"),
        "the reload left node-c's followed endpoint alone"
    );
    wait_for(
        "node-c pings node-b after the reload",
        Duration::from_secs(30),
        || c_reaches(&lab, &b_mesh),
    );
}

//! Beyond one flat mesh (issue #28), against real hosts: a pair on a private network uses
//! it (the lab's `--private-link`: a second veth between two public hosts' namespaces),
//! and a hub-and-spoke mesh of two sites. What is emulated: the datacenter LAN (one veth,
//! no switch) and the internet (one router hop).
use std::collections::BTreeMap;
use std::time::Duration;

use crate::support_lab::{Lab, apply_ok, assert_no_changes, meshup, path_str, ping_lost, wait_for};

/// The inventory with `extra` lines added right after node `node`'s `- name:` line.
fn add_to_node(inventory: &str, node: &str, extra: &str) -> String {
    let marker = format!("  - name: {node}\n");
    assert!(inventory.contains(&marker), "{node} not in\n{inventory}");
    inventory.replacen(&marker, &format!("{marker}{extra}"), 1)
}

/// `verify --format json`, which must be healthy (exit 0).
#[track_caller]
fn verify_healthy(lab: &Lab, inv: &str) -> serde_json::Value {
    let run = meshup(lab, &["verify", "--format", "json", inv]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("verify json: {e}\n{}\n{}", run.stdout, run.stderr));
    assert_eq!(run.code, Some(0), "verify not healthy:\n{}", run.stdout);
    json
}

/// The `network` verify names for the pair `from` → `to` (`None`: public path).
fn pair_network(verify: &serde_json::Value, from: &str, to: &str) -> Option<String> {
    let pair = verify["pairs"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["from"] == from && p["to"] == to))
        .unwrap_or_else(|| panic!("no pair {from} -> {to} in {verify}"));
    pair["network"].as_str().map(str::to_owned)
}

/// What `host`'s live interface sends to, per peer public key (`wg show wg0 endpoints`):
/// WireGuard follows where a peer's packets come from, so this is where they arrive from.
fn live_endpoints(lab: &Lab, host: &str) -> BTreeMap<String, String> {
    lab.host_exec(host, "wg show wg0 endpoints")
        .expect_ok("wg show endpoints")
        .lines()
        .filter_map(|l| {
            let (key, endpoint) = l.split_once('\t')?;
            Some((key.to_owned(), endpoint.to_owned()))
        })
        .collect()
}

fn public_key(lab: &Lab, host: &str) -> String {
    lab.host_exec(host, "wg show wg0 public-key")
        .expect_ok("public key")
        .trim()
        .to_owned()
}

#[test]
fn topology_lab_a_pair_on_a_private_lan_uses_it_and_moves_back_without_loss() {
    require_lab!();
    let lab = Lab::up_with(
        "nw-private",
        &["--public", "3", "--private-link", "pub-1,pub-2"],
    );
    let inv_path = lab.inventory();
    let inv = path_str(&inv_path);
    let bare = std::fs::read_to_string(&inv_path).expect("read inventory");
    let on_lan = add_to_node(
        &add_to_node(&bare, "pub-1", "    networks: { dc1: 10.0.1.1 }\n"),
        "pub-2",
        "    networks: { dc1: 10.0.1.2 }\n",
    );
    std::fs::write(&inv_path, &on_lan).expect("write inventory");

    // check and plan say which pair uses the network and why.
    let line = "pub-1 ↔ pub-2: network dc1 (10.0.1.2:51820 / 10.0.1.1:51820): both sit on dc1";
    let check = meshup(&lab, &["check", inv]);
    assert!(check.expect_ok("check").contains(line), "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains("-> pub-2  endpoint 10.0.1.2:51820 (network dc1)"),
        "{}",
        check.stdout
    );
    let first = apply_ok(&lab, &inv_path, &[]);
    assert!(first.stdout.contains(line), "{}", first.stdout);

    // verify: the pair's path is dc1, the others public; the live endpoints agree.
    let verify = verify_healthy(&lab, inv);
    assert_eq!(
        pair_network(&verify, "pub-1", "pub-2").as_deref(),
        Some("dc1")
    );
    assert_eq!(
        pair_network(&verify, "pub-2", "pub-1").as_deref(),
        Some("dc1")
    );
    for (a, b) in [("pub-1", "pub-3"), ("pub-3", "pub-2")] {
        assert_eq!(pair_network(&verify, a, b), None, "{a} -> {b}");
    }
    let (k1, k2, k3) = (
        public_key(&lab, "pub-1"),
        public_key(&lab, "pub-2"),
        public_key(&lab, "pub-3"),
    );
    assert_eq!(live_endpoints(&lab, "pub-1")[&k2], "10.0.1.2:51820");
    assert_eq!(live_endpoints(&lab, "pub-2")[&k1], "10.0.1.1:51820");
    let pub3 = format!(
        "{}:51820",
        lab.host("pub-3").public_ip.as_deref().unwrap_or("")
    );
    assert_eq!(live_endpoints(&lab, "pub-1")[&k3], pub3);
    assert_no_changes(&lab, &inv_path);

    // pub-2 leaves the network: the pair moves back to the public addresses under pings
    // at 20/s both ways (2 minutes of them, the change well inside), and loses none.
    let mut pids = Vec::new();
    for (from, to) in [("pub-1", "pub-2"), ("pub-2", "pub-1")] {
        let ip = &lab.host(to).mesh_address;
        let run = lab.host_exec(
            from,
            &format!("nohup ping -n -q -i 0.05 -c 2400 -W 2 {ip} >/run/nw-ping.out 2>&1 & echo $!"),
        );
        pids.push((from, run.expect_ok("start ping").trim().to_owned()));
    }
    let back = add_to_node(&bare, "pub-1", "    networks: { dc1: 10.0.1.1 }\n");
    std::fs::write(&inv_path, &back).expect("write inventory");
    let second = apply_ok(&lab, &inv_path, &[]);
    assert!(!second.stdout.contains("network dc1"), "{}", second.stdout);
    let public = |h: &str| format!("{}:51820", lab.host(h).public_ip.as_deref().unwrap_or(""));
    // Each side now sends to the other's public address, and packets arrive from there.
    wait_for(
        "the pair on public addresses",
        Duration::from_secs(30),
        || {
            live_endpoints(&lab, "pub-1")[&k2] == public("pub-2")
                && live_endpoints(&lab, "pub-2")[&k1] == public("pub-1")
        },
    );
    for (from, pid) in &pids {
        assert!(
            lab.host_exec(from, &format!("kill -0 {pid}")).ok(),
            "{from}: the pings ended before the pair moved: the test saw no change under load"
        );
    }
    for (from, _) in &pids {
        let lost = ping_lost(&lab, from, "/run/nw-ping.out", Duration::from_secs(150));
        let sent = lab.host_exec(from, "cat /run/nw-ping.out").stdout;
        assert_eq!(lost, 0, "{from} lost pings while the pair moved:\n{sent}");
    }
    let verify = verify_healthy(&lab, inv);
    assert_eq!(pair_network(&verify, "pub-1", "pub-2"), None);
    assert_no_changes(&lab, &inv_path);
}

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
pub(crate) fn verify_healthy(lab: &Lab, inv: &str) -> serde_json::Value {
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

/// Every node listens on TCP 7777 of its mesh address and connects to every other node's:
/// the failed connects, as "from -> to".
fn tcp_matrix(lab: &Lab, hosts: &[&str]) -> Vec<String> {
    let listen = "nohup python3 -c 'import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind((\"0.0.0.0\", 7777))\ns.listen(64)\nwhile True:\n    c, _ = s.accept()\n    c.close()' >/dev/null 2>&1 & echo $!";
    let mut pids = Vec::new();
    for h in hosts {
        pids.push((
            *h,
            lab.host_exec(h, listen)
                .expect_ok("listen")
                .trim()
                .to_owned(),
        ));
    }
    let mut failed = Vec::new();
    for from in hosts {
        let targets: Vec<String> = hosts
            .iter()
            .filter(|t| *t != from)
            .map(|t| format!("(\"{t}\", \"{}\")", lab.host(t).mesh_address))
            .collect();
        // Each connect may be retried for 10 s: the listener of a node may still be starting.
        let script = format!(
            "python3 -c 'import socket, time\nfor name, ip in [{}]:\n    end = time.time() + 10\n    while True:\n        try:\n            socket.create_connection((ip, 7777), timeout=3).close()\n            break\n        except OSError:\n            if time.time() > end:\n                print(name)\n                break\n            time.sleep(0.3)'",
            targets.join(", ")
        );
        let run = lab.host_exec(from, &script);
        run.expect_ok("tcp connects");
        failed.extend(run.stdout.lines().map(|to| format!("{from} -> {to}")));
    }
    for (h, pid) in pids {
        lab.host_exec(h, &format!("kill {pid}"));
    }
    failed
}

/// The peers `host`'s config lists (`# Peer: NAME` lines), in name order.
fn config_peers(lab: &Lab, host: &str) -> Vec<String> {
    let mut out: Vec<String> = lab
        .host_exec(host, "cat /etc/wireguard/wg0.conf")
        .expect_ok("read wg0.conf")
        .lines()
        .filter_map(|l| l.strip_prefix("# Peer: ").map(str::to_owned))
        .collect();
    out.sort();
    out
}

#[test]
fn topology_lab_two_sites_with_hubs_carry_every_pair_and_a_stopped_hub_is_named() {
    require_lab!();
    let lab = Lab::up_with("nw-hub", &["--public", "10", "--nat", "2"]);
    let inv_path = lab.inventory();
    let inv = path_str(&inv_path);
    let eu = ["pub-1", "pub-2", "pub-3", "pub-4", "pub-5", "nat-1"];
    let us = ["pub-6", "pub-7", "pub-8", "pub-9", "pub-10", "nat-2"];
    let mut text = std::fs::read_to_string(&inv_path)
        .expect("read inventory")
        .replacen(
            "mesh:\n",
            "mesh:\n  topology: hub\n  sites:\n    eu: { hubs: [pub-1] }\n    us: { hubs: [pub-6] }\n",
            1,
        );
    for (site, members) in [("eu", &eu), ("us", &us)] {
        for node in members.iter() {
            text = add_to_node(&text, node, &format!("    site: {site}\n"));
        }
    }
    std::fs::write(&inv_path, &text).expect("write inventory");

    apply_ok(&lab, &inv_path, &[]);
    // A spoke lists only its site; its hub's entry carries the other site.
    assert_eq!(
        config_peers(&lab, "pub-2"),
        ["nat-1", "pub-1", "pub-3", "pub-4", "pub-5"]
    );
    assert_eq!(
        config_peers(&lab, "pub-6"),
        ["nat-2", "pub-1", "pub-10", "pub-7", "pub-8", "pub-9"]
    );
    let hub_entry = lab
        .host_exec("pub-2", "wg show wg0 allowed-ips")
        .expect_ok("allowed ips")
        .to_owned();
    let hub_key = public_key(&lab, "pub-1");
    let carried = hub_entry
        .lines()
        .find(|l| l.starts_with(&hub_key))
        .unwrap_or_default();
    for node in us {
        assert!(
            carried.contains(&format!("{}/32", lab.host(node).mesh_address)),
            "pub-2's hub entry lacks {node}: {carried}"
        );
    }

    let all: Vec<&str> = eu.iter().chain(us.iter()).copied().collect();
    let verify = verify_healthy(&lab, inv);
    let pair = |from: &str, to: &str| -> serde_json::Value {
        verify["pairs"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["from"] == from && p["to"] == to))
            .cloned()
            .unwrap_or_else(|| panic!("no pair {from} -> {to}"))
    };
    assert_eq!(verify["pairs"].as_array().map(Vec::len), Some(12 * 11));
    assert_eq!(pair("pub-2", "pub-7")["path"]["relay"], "pub-1");
    assert_eq!(pair("pub-7", "pub-2")["path"]["relay"], "pub-6");
    assert_eq!(pair("nat-1", "nat-2")["path"]["relay"], "pub-1");
    assert_eq!(pair("pub-2", "pub-3")["path"]["kind"], "direct");
    assert_eq!(pair("pub-1", "pub-6")["path"]["kind"], "direct");
    let hubs: Vec<&str> = verify["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["role"] == "hub")
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(hubs, ["pub-1", "pub-6"]);
    let failed = tcp_matrix(&lab, &all);
    assert!(failed.is_empty(), "TCP connects failed: {failed:?}");
    assert_no_changes(&lab, &inv_path);

    // The us hub's host stops: verify names it, and the pairs through it fail.
    lab.stop("pub-6");
    let run = meshup(&lab, &["verify", "--format", "json", inv]);
    assert_ne!(run.code, Some(0), "verify healthy with a hub down");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("verify json");
    let hub_down: Vec<&serde_json::Value> = json["node_diagnoses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["kind"] == "hub_down")
        .collect();
    assert_eq!(hub_down.len(), 1, "{}", json["node_diagnoses"]);
    assert_eq!(hub_down[0]["hub"], "pub-6");
    assert_eq!(hub_down[0]["spokes"], 5);
    let text = meshup(&lab, &["verify", inv]);
    assert!(
        text.stdout.contains("hub pub-6 is down") || text.stderr.contains("hub pub-6 is down"),
        "{}\n{}",
        text.stdout,
        text.stderr
    );
    // Within a site, spokes still reach each other.
    assert_eq!(pair_status(&json, "pub-2", "pub-3"), "healthy");
    assert_eq!(pair_status(&json, "pub-7", "pub-8"), "healthy");
    assert_eq!(pair_status(&json, "pub-2", "pub-7"), "failing");
}

fn pair_status(verify: &serde_json::Value, from: &str, to: &str) -> String {
    verify["pairs"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["from"] == from && p["to"] == to))
        .and_then(|p| p["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}

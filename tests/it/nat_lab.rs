//! NAT to NAT without a relay, on the lab's `nat` scenario: real nftables NAT routers
//! (port-preserving masquerade for nat-1 and nat-2, `masquerade fully-random` for nat-3, a
//! carrier NAT in front of a home NAT for nat-4, nat-5 on nat-1's LAN behind the same
//! router). What is emulated: the internet (one router hop between all NAT routers, no
//! latency) and the NAT reboot (`lab nat-reboot`: conntrack flushed, a new public address).
//! One lab for every case: the CI budget is tight.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support_lab::{Lab, apply_ok, assert_no_changes, meshup, path_str, ping_lost};

fn ping_until(lab: &Lab, from: &str, ip: &str, deadline: Duration) {
    let start = Instant::now();
    loop {
        let run = lab.host_exec(from, &format!("ping -c 2 -W 1 {ip}"));
        if run.ok() {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "{from} -> {ip} does not answer after {:?}: {}",
            start.elapsed(),
            run.stdout
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn mesh_ip<'a>(lab: &'a Lab, host: &str) -> &'a str {
    &lab.host(host).mesh_address
}

/// Pings at 20/s from each `(from, to)` for `secs` seconds in the background.
fn start_pings(lab: &Lab, pairs: &[(&str, &str)], secs: u32) {
    for (from, to) in pairs {
        let ip = mesh_ip(lab, to);
        lab.host_exec(
            from,
            &format!(
                "nohup ping -n -q -i 0.05 -c {} -W 2 {ip} >/run/natping-{to}.out 2>&1 &",
                secs * 20
            ),
        )
        .expect_ok("start pings");
    }
}

/// Lost packets per pair once the pings of [`start_pings`] ended.
fn lost(lab: &Lab, pairs: &[(&str, &str)]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (from, to) in pairs {
        let n = ping_lost(
            lab,
            from,
            &format!("/run/natping-{to}.out"),
            Duration::from_secs(90),
        );
        out.insert(format!("{from} -> {to}"), n);
    }
    out
}

/// Packets the relay forwarded from `a` to `b` (mesh addresses), counted by an nftables
/// rule added on the relay for the test.
fn relay_counter(lab: &Lab, relay: &str, a: &str, b: &str) -> u64 {
    let out = lab
        .host_exec(relay, "nft list chain inet natlab relayed")
        .expect_ok("read the relay counter")
        .to_string();
    let (ia, ib) = (mesh_ip(lab, a), mesh_ip(lab, b));
    out.lines()
        .find(|l| l.contains(&format!("ip saddr {ia} ip daddr {ib}")))
        .and_then(|l| l.split("packets ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter {a} -> {b} on {relay}: {out}"))
}

fn plan_json(lab: &Lab, inv: &str) -> serde_json::Value {
    let run = meshup(lab, &["plan", "--format", "json", inv]);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("plan json: {e}\n{}", run.stdout))
}

fn pair<'a>(plan: &'a serde_json::Value, a: &str, b: &str) -> &'a serde_json::Value {
    plan["nat_paths"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["a"] == a && p["b"] == b))
        .unwrap_or_else(|| panic!("no NAT pair {a} {b} in {plan}"))
}

fn mapping<'a>(plan: &'a serde_json::Value, node: &str) -> &'a str {
    plan["nat_mappings"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["node"] == node))
        .and_then(|m| m["mapping"].as_str())
        .unwrap_or_else(|| panic!("no mapping of {node} in {plan}"))
}

/// Every NAT node is seen by both public nodes (a ping each way starts the handshakes
/// rather than waiting for the 25 s keepalive).
fn wait_until_seen(lab: &Lab, nat: &[&str]) {
    for n in nat {
        for p in ["pub-1", "pub-2"] {
            ping_until(lab, n, mesh_ip(lab, p), Duration::from_secs(30));
        }
    }
}

#[test]
fn nat_lab_punches_eim_pairs_relays_symmetric_ones_peers_a_shared_nat_over_its_lan_and_survives_a_nat_reboot()
 {
    require_lab!();
    let t0 = Instant::now();
    let lab = Lab::up("nat-it", "nat", "light");
    let inv_path = lab.inventory();
    let inv = path_str(&inv_path);
    let nat = ["nat-1", "nat-2", "nat-3", "nat-4", "nat-5"];

    // From bare hosts: NAT pairs are relayed (nothing seen of their NATs yet).
    let first = apply_ok(&lab, &inv_path, &[]);
    assert!(
        first.stdout.contains("nat-1 ↔ nat-2: relayed via pub-1"),
        "{}",
        first.stdout
    );
    wait_until_seen(&lab, &nat);
    eprintln!("mesh up, relayed: {:?}", t0.elapsed());

    // The evidence, as the plan reads it.
    let plan = plan_json(&lab, inv);
    assert_eq!(mapping(&plan, "nat-1"), "endpoint-independent", "{plan}");
    assert_eq!(mapping(&plan, "nat-2"), "endpoint-independent", "{plan}");
    assert_eq!(mapping(&plan, "nat-3"), "symmetric", "{plan}");
    assert_eq!(pair(&plan, "nat-1", "nat-2")["kind"], "punched");
    let p13 = pair(&plan, "nat-1", "nat-3");
    assert_eq!(p13["kind"], "relayed");
    assert!(
        p13["why"].as_str().unwrap_or("").contains("symmetric"),
        "{p13}"
    );
    assert_eq!(pair(&plan, "nat-1", "nat-5")["kind"], "lan");
    // Double NAT: whatever the evidence says, the path follows it.
    let double = mapping(&plan, "nat-4");
    let p14 = &pair(&plan, "nat-1", "nat-4")["kind"];
    eprintln!("double NAT nat-4: mapping {double}, nat-1 ↔ nat-4 {p14}");
    match double {
        "endpoint-independent" => assert_eq!(p14, "punched"),
        _ => assert_eq!(p14, "relayed"),
    }

    // A counter on the relay for nat-1 → nat-2 and nat-1 → nat-5; a hairpin counter on the
    // shared router (packets from its LAN to its own public address).
    let (i1, i2, i5) = (
        mesh_ip(&lab, "nat-1"),
        mesh_ip(&lab, "nat-2"),
        mesh_ip(&lab, "nat-5"),
    );
    lab.host_exec(
        "pub-1",
        &format!(
            "nft add table inet natlab && nft add chain inet natlab relayed '{{ type filter hook forward priority 0; }}' && \
             nft add rule inet natlab relayed ip saddr {i1} ip daddr {i2} counter && \
             nft add rule inet natlab relayed ip saddr {i1} ip daddr {i5} counter"
        ),
    )
    .expect_ok("relay counters");
    let router = "ml.nat-it.rt.nat-1";
    let hairpin = |cmd: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", router, "sh", "-c", cmd])
            .output()
            .expect("nft in the router");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    hairpin(
        "nft add table ip hp && nft add chain ip hp hairpin '{ type filter hook prerouting priority -300; }' && \
         nft add rule ip hp hairpin iifname != wan0 ip daddr 100.64.0.2 udp dport 51820-51821 counter",
    );

    // Relayed → punched with pings at 20/s across the switch.
    let switch = [("nat-1", "nat-2"), ("nat-2", "nat-1")];
    start_pings(&lab, &switch, 14);
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let second = apply_ok(&lab, &inv_path, &[]);
    eprintln!("punching apply: {:?}\n{}", t.elapsed(), second.stdout);
    assert!(
        second
            .stdout
            .contains("nat-1: direct path to nat-2 confirmed by a handshake"),
        "{}",
        second.stdout
    );
    let losses = lost(&lab, &switch);
    let moved_at = |line: &str| {
        second
            .stdout
            .lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit("moved at ").next())
            .and_then(|t| t.trim().parse::<f64>().ok())
    };
    let skew = moved_at("nat-1: direct path to nat-2")
        .zip(moved_at("nat-2: direct path to nat-1"))
        .map(|(a, b)| (a - b).abs() * 1000.0);
    eprintln!(
        "lost at 20/s across the relayed → punched switch: {losses:?} (switch skew {skew:?} ms)"
    );
    // 0 in 10 of 11 runs of this test alone; the two hosts switch a few ms apart (it cannot
    // be atomic across two hosts: a host accepts the pair's packets only from the entry
    // holding their addresses), so a packet sent in that window is lost. With the whole
    // suite loading the 2 cores one host's `wg set` can return 100 ms after the other's
    // (seen once: 2 lost per direction at a 105 ms skew). So the bound is one packet plus
    // what the measured skew explains at 20/s, and the skew stays under 0.5 s: a switch
    // that waits on a handshake (5 s, 100 packets) fails either way.
    let allowed = 1 + skew.map_or(0, |ms| (ms * 20.0 / 1000.0).ceil() as u64);
    assert!(
        skew.is_none_or(|ms| ms < 500.0),
        "the two hosts switched {skew:?} ms apart"
    );
    assert!(
        losses.values().all(|n| *n <= allowed),
        "{losses:?}: more than {allowed} lost (skew {skew:?} ms)"
    );

    // Punched: nothing of nat-1 → nat-2 passes the relay; LAN: nothing hairpins.
    let before = relay_counter(&lab, "pub-1", "nat-1", "nat-2");
    let before5 = relay_counter(&lab, "pub-1", "nat-1", "nat-5");
    lab.host_exec(
        "nat-1",
        &format!("ping -c 20 -i 0.05 -W 1 {i2} && ping -c 20 -i 0.05 -W 1 {i5}"),
    )
    .expect_ok("pings over the direct paths");
    assert_eq!(relay_counter(&lab, "pub-1", "nat-1", "nat-2"), before);
    assert_eq!(relay_counter(&lab, "pub-1", "nat-1", "nat-5"), before5);
    let hp = hairpin("nft list chain ip hp hairpin");
    assert!(hp.contains("packets 0 "), "hairpinned: {hp}");
    let endpoints = lab
        .host_exec("nat-1", "wg show wg0 endpoints")
        .expect_ok("endpoints")
        .to_string();
    assert!(endpoints.contains("172.16.1.3:51821"), "{endpoints}");
    assert_no_changes(&lab, &inv_path);

    let verify = meshup(&lab, &["verify", inv]);
    assert_eq!(verify.code, Some(0), "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("nat-1 ↔ nat-2: punched"),
        "{}",
        verify.stdout
    );
    assert!(
        verify.stdout.contains("nat-1 ↔ nat-5: LAN"),
        "{}",
        verify.stdout
    );
    assert!(verify.stdout.contains("⇄"), "{}", verify.stdout);
    let json = meshup(&lab, &["verify", "--format", "json", inv]);
    assert!(
        json.stdout.contains("\"kind\": \"punched\""),
        "{}",
        json.stdout
    );
    let prom = meshup(&lab, &["verify", "--format", "prometheus", inv]);
    assert!(
        prom.stdout.contains("from=\"nat-1\",to=\"nat-2\"")
            && prom.stdout.contains("path=\"punched\""),
        "{}",
        prom.stdout
    );
    eprintln!("punched and verified: {:?}", t0.elapsed());

    // nat-2's router reboots with a new public address: the punched path dies; pairs
    // without nat-2 lose nothing meanwhile.
    let others = [
        ("nat-1", "nat-4"),
        ("nat-4", "nat-1"),
        ("nat-1", "nat-5"),
        ("nat-3", "nat-4"),
        ("pub-1", "nat-1"),
        ("nat-1", "pub-2"),
    ];
    start_pings(&lab, &others, 30);
    std::thread::sleep(Duration::from_secs(1));
    let reboot = std::process::Command::new(crate::support_lab::lab_command())
        .args(["nat-reboot", "nat-it", "nat-2"])
        .output()
        .expect("lab nat-reboot");
    assert!(reboot.status.success(), "{reboot:?}");
    // nat-2's keepalive (or this ping) shows its new mapping to the public nodes.
    ping_until(
        &lab,
        "nat-2",
        mesh_ip(&lab, "pub-1"),
        Duration::from_secs(30),
    );
    ping_until(
        &lab,
        "nat-2",
        mesh_ip(&lab, "pub-2"),
        Duration::from_secs(30),
    );
    let dead = meshup(&lab, &["verify", inv]);
    assert_eq!(dead.code, Some(1), "{}", dead.stdout);
    assert!(
        dead.stdout
            .contains("nat-1 ↔ nat-2: punched path silent for"),
        "{}",
        dead.stdout
    );
    // As a scheduled run would: exit 2, changes applied.
    let repair = meshup(&lab, &["apply", "--yes", "--detailed-exitcode", inv]);
    assert_eq!(repair.code, Some(2), "{}\n{}", repair.stdout, repair.stderr);
    assert!(
        repair
            .stdout
            .contains("nat-1 ↔ nat-2: relayed via pub-1: the direct path is dead"),
        "{}",
        repair.stdout
    );
    ping_until(&lab, "nat-1", i2, Duration::from_secs(20));
    ping_until(&lab, "nat-2", i1, Duration::from_secs(20));
    let losses = lost(&lab, &others);
    eprintln!("lost on other pairs during the NAT reboot and the repair: {losses:?}");
    // Nothing on a quiet machine (every run but one so far); one ping in 600 per pair was
    // seen lost once while the 2-core machine ran other engineers' builds (load average
    // 3 to 4), with nothing of the repair touching that pair: one is tolerated in total.
    assert!(losses.values().sum::<u64>() <= 1, "{losses:?}");
    // The next run punches again, at nat-2's new address.
    let next = plan_json(&lab, inv);
    let p12 = pair(&next, "nat-1", "nat-2");
    assert_eq!(p12["kind"], "punched", "{p12}");
    assert!(
        p12["b_to_a"]
            .as_str()
            .is_some_and(|e| e.starts_with("100.64.0.2"))
            && p12["a_to_b"]
                .as_str()
                .is_some_and(|e| e.starts_with("100.65.")),
        "{p12}"
    );

    // A punch that gets no handshake (UDP between the two NATs dropped on the way): that
    // host's run stops before its config, the relay keeps the pair, and the next plan
    // keeps the relay for these addresses, saying why.
    let inet = "ml.nat-it.inet";
    let block = std::process::Command::new("ip")
        .args(["netns", "exec", inet, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(
                    b"table ip natblock {\n chain blocked {\n type filter hook forward priority 0;\n \
                      ip saddr { 100.64.0.2, 100.65.0.3 } ip daddr { 100.64.0.2, 100.65.0.3 } udp dport 51820 drop\n }\n}\n",
                )?;
            c.wait()
        })
        .expect("block UDP between the two NATs");
    assert!(block.success());
    let failed = meshup(&lab, &["apply", "--yes", inv]);
    assert_eq!(failed.code, Some(1), "{}", failed.stdout);
    assert!(
        failed.stdout.contains("no handshake with nat-2"),
        "{}",
        failed.stdout
    );
    ping_until(&lab, "nat-1", i2, Duration::from_secs(10));
    let after = plan_json(&lab, inv);
    let p12 = pair(&after, "nat-1", "nat-2");
    assert_eq!(p12["kind"], "relayed", "{p12}");
    assert!(
        p12["why"]
            .as_str()
            .is_some_and(|w| w.contains("punching failed before")),
        "{p12}"
    );
    eprintln!("nat lab total: {:?}", t0.elapsed());
}

/// NAT punching is on by default: an inventory that does not mention it (`--public 2
/// --nat 2`, port-preserving masquerade routers) comes up relayed from bare hosts, the
/// plan says the next apply punches, the NAT nodes' own keepalives (no ping of the test)
/// show their mappings to both public nodes, and the second apply punches.
#[test]
fn nat_lab_punching_is_on_by_default_and_the_second_apply_from_bare_punches() {
    require_lab!();
    let lab = Lab::up_with("nat-def", &["--public", "2", "--nat", "2"]);
    let inv_path = lab.inventory();
    let inv = path_str(&inv_path);
    let text = std::fs::read_to_string(&inv_path).expect("inventory");
    assert!(!text.contains("nat_punching"), "{text}");
    let first = apply_ok(&lab, &inv_path, &[]);
    assert!(
        first.stdout.contains("nat-1 ↔ nat-2: relayed via pub-1")
            && first.stdout.contains("the next apply punches"),
        "{}",
        first.stdout
    );
    let start = Instant::now();
    loop {
        let plan = plan_json(&lab, inv);
        if pair(&plan, "nat-1", "nat-2")["kind"] == "punched" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the keepalives never showed both mappings: {plan}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("mappings known {:?} after the first apply", start.elapsed());
    let second = apply_ok(&lab, &inv_path, &[]);
    assert!(
        second
            .stdout
            .contains("nat-1: direct path to nat-2 confirmed by a handshake"),
        "{}",
        second.stdout
    );
    let verify = meshup(&lab, &["verify", inv]);
    assert_eq!(verify.code, Some(0), "{}\n{}", verify.stdout, verify.stderr);
    assert_no_changes(&lab, &inv_path);
}

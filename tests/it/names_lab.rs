//! Peer names against the local lab: after `apply`, every node resolves `node-b` and
//! `node-b.mesh` to its mesh addresses (IPv4 and IPv6) through its own `/etc/hosts`, and
//! pings them by name; the names leave with an absent node and with `hosts_file: false`;
//! a hand edit outside meshup's block survives all of it. Needs root; `MESHUP_SKIP_LAB=1`
//! skips it.

use crate::support_lab::{Lab, apply_ok, assert_no_changes, lab_skip_reason, meshup, path_str};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const HOSTS: [&str; 3] = ["node-a", "node-b", "node-c"];
const HAND_EDIT: &str = "192.0.2.99 printer-by-hand";

/// The mesh's IPv6 address of a lab host: `fd10:10::<last octet of its IPv4>`.
fn v6_of(lab: &Lab, host: &str) -> String {
    let v4 = &lab.host(host).mesh_address;
    let last = v4.rsplit('.').next().expect("dotted quad");
    format!("fd10:10::{last}")
}

/// A dual-stack inventory of the guide lab; `absent` nodes are marked `state: absent`.
fn inventory(lab: &Lab, file: &str, mesh_extra: &str, absent: &[&str]) -> PathBuf {
    let mut text = format!(
        "mesh:\n  interface: wg0\n  network: 10.10.0.0/24\n  network6: fd10:10::/64\n{mesh_extra}\
         ssh:\n  user: root\n  identity_file: id_ed25519\n  known_hosts: known_hosts\n  host_key_checking: \"yes\"\nnodes:\n"
    );
    for name in HOSTS {
        let h = lab.host(name);
        text.push_str(&format!(
            "  - name: {name}\n    address: {}\n    address6: '{}'\n    ssh: {{ host: {}, port: {} }}\n",
            h.mesh_address,
            v6_of(lab, name),
            h.ssh_host,
            h.ssh_port
        ));
        if let Some(ip) = &h.public_ip {
            text.push_str(&format!("    endpoint: {ip}:51820\n"));
        }
        if absent.contains(&name) {
            text.push_str("    state: absent\n");
        }
    }
    let path = lab.out_dir().join(file);
    std::fs::write(&path, text).expect("write inventory");
    path
}

/// The plan shows a diff line `<sign><address> <padding> <name> <name>.mesh`.
fn diff_line(plan: &str, sign: char, address: &str, name: &str) -> bool {
    plan.lines().any(|l| {
        let l = l.trim_start();
        l.strip_prefix(sign)
            .and_then(|rest| rest.strip_prefix(address))
            .is_some_and(|rest| rest.trim_start() == format!("{name} {name}.mesh"))
    })
}

#[track_caller]
fn hosts_file(lab: &Lab, host: &str) -> String {
    lab.host_exec(host, "cat /etc/hosts")
        .expect_ok("cat /etc/hosts")
        .to_string()
}

/// Runs `cmd` on `host` until it succeeds or 20 s pass (first handshakes across the
/// lab's NAT can stall for a few seconds).
fn until_ok(lab: &Lab, host: &str, cmd: &str) -> Result<String, String> {
    let start = Instant::now();
    loop {
        let run = lab.host_exec(host, cmd);
        if run.ok() {
            return Ok(run.stdout);
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!(
                "{host}: `{cmd}` failed: {}{}",
                run.stdout, run.stderr
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Done when: `getent hosts node-b` and `ping -c1 node-b.mesh` work on every node, both
/// families; the second plan is empty; an absent node's names are removed everywhere
/// (from the others' blocks, and its own block).
#[test]
fn names_lab_peer_names_resolve_in_both_families_and_leave_with_the_node() {
    if let Some(why) = lab_skip_reason() {
        eprintln!("skipping lab test: {why}");
        return;
    }
    let lab = Lab::up("names", "guide", "light");
    let original_c = hosts_file(&lab, "node-c");
    lab.host_exec("node-a", &format!("echo '{HAND_EDIT}' >>/etc/hosts"))
        .expect_ok("hand edit");

    let inv = inventory(&lab, "names.yaml", "", &[]);
    let plan = meshup(&lab, &["plan", path_str(&inv)]);
    let b4 = &lab.host("node-b").mesh_address;
    assert!(
        plan.stdout
            .contains("+ write the wg0 peer names block in /etc/hosts")
            && plan.stdout.contains("+# BEGIN meshup wg0")
            && diff_line(&plan.stdout, '+', b4, "node-b"),
        "{}",
        plan.stdout
    );
    apply_ok(&lab, &inv, &[]);

    let mut failures = Vec::new();
    for from in HOSTS {
        for to in HOSTS {
            let v4 = lab.host(to).mesh_address.clone();
            let v6 = v6_of(&lab, to);
            let checks = [
                (format!("getent hosts {to}"), None),
                (format!("getent ahostsv4 {to}.mesh"), Some(&v4)),
                (format!("getent ahostsv6 {to}.mesh"), Some(&v6)),
                (format!("getent ahostsv4 {to}"), (from != to).then_some(&v4)),
                (format!("getent ahostsv6 {to}"), Some(&v6)),
                (format!("ping -4 -c1 -W1 {to}.mesh"), None),
                (format!("ping -6 -c1 -W1 {to}.mesh"), None),
            ];
            for (cmd, expect) in checks {
                match until_ok(&lab, from, &cmd) {
                    Ok(out) => {
                        if let Some(addr) = expect
                            && !out.lines().any(|l| l.starts_with(&format!("{addr} ")))
                        {
                            failures.push(format!("{from}: `{cmd}` gave {out:?}, want {addr}"));
                        }
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    assert!(failures.is_empty(), "names do not resolve:\n{failures:#?}");
    assert!(hosts_file(&lab, "node-a").contains(HAND_EDIT));
    assert_no_changes(&lab, &inv);

    // node-c leaves: its names go from the others' blocks, its own block goes.
    let gone = inventory(&lab, "names-absent.yaml", "", &["node-c"]);
    let plan = meshup(&lab, &["plan", path_str(&gone)]);
    let c4 = &lab.host("node-c").mesh_address;
    assert!(
        diff_line(&plan.stdout, '-', c4, "node-c")
            && plan
                .stdout
                .contains("- remove the wg0 peer names block from /etc/hosts"),
        "{}",
        plan.stdout
    );
    apply_ok(&lab, &gone, &[]);
    for h in ["node-a", "node-b"] {
        let text = hosts_file(&lab, h);
        assert!(
            !text.contains("node-c") && text.contains("node-b.mesh"),
            "{h}:\n{text}"
        );
        assert!(!lab.host_exec(h, "getent hosts node-c.mesh").ok(), "{h}");
    }
    assert_eq!(
        hosts_file(&lab, "node-c"),
        original_c,
        "node-c's /etc/hosts is back to what it was"
    );
    assert_no_changes(&lab, &gone);

    // hosts_file: false removes the block everywhere; the hand edit stays.
    let off = inventory(&lab, "names-off.yaml", "  hosts_file: false\n", &["node-c"]);
    apply_ok(&lab, &off, &[]);
    for h in ["node-a", "node-b"] {
        let text = hosts_file(&lab, h);
        assert!(!text.contains("meshup"), "{h}:\n{text}");
    }
    assert!(hosts_file(&lab, "node-a").ends_with(&format!("{HAND_EDIT}\n")));
    assert_no_changes(&lab, &off);
}

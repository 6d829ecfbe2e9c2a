//! The host-side watchdog (`src/scripts/watchdog.sh`) on real lab hosts: ticked by busybox
//! crond on light hosts and by a systemd timer on systemd hosts, with no meshup run in
//! between. A punched pair whose NAT router reboots falls back to its relay by itself;
//! `mesh.watchdog: false` and `state: absent` remove every trace of it.
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support_lab::{
    Lab, apply_ok, assert_no_changes, edited, lab_command, meshup, path_str, wait_for,
};

const WATCH: &str = "/etc/wireguard/wg0.meshup-watch";
const SCRIPT: &str = "/usr/local/lib/meshup/watchdog.sh";

/// One ping from `from` to `ip` answers.
fn pings(lab: &Lab, from: &str, ip: &str) -> bool {
    lab.host_exec(from, &format!("ping -n -c 1 -W 1 {ip}")).ok()
}

fn plan_text(lab: &Lab, inv: &Path) -> String {
    let run = meshup(lab, &["plan", path_str(inv)]);
    format!("{}{}", run.stdout, run.stderr)
}

fn pair_json(lab: &Lab, inv: &Path, a: &str, b: &str) -> serde_json::Value {
    let run = meshup(lab, &["plan", "--format", "json", path_str(inv)]);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("plan json: {e}\n{}", run.stdout));
    plan["nat_paths"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["a"] == a && p["b"] == b))
        .cloned()
        .unwrap_or_else(|| panic!("no NAT pair {a} {b} in {plan}"))
}

/// What of the watchdog is on `host`: its files, timer or cron line, state.
fn traces(lab: &Lab, host: &str) -> String {
    lab.host_exec(
        host,
        &format!(
            "ls -d {SCRIPT} {WATCH} /etc/systemd/system/meshup-watchdog-* /etc/cron.d/meshup-watchdog-* \
             /run/meshup-watchdog-wg0.tick /etc/wireguard/wg0/fallback-* 2>/dev/null; \
             grep -h meshup-watchdog /etc/crontabs/root 2>/dev/null; true"
        ),
    )
    .stdout
}

/// A punched NAT pair (nat-1 ↔ nat-2 behind endpoint-independent NATs); nat-1's router
/// reboots (new public address, conntrack flushed) and no meshup runs: the watchdogs move
/// the pair back onto the relay within 3 minutes; the next plan shows it, the next apply
/// punches again at the new address, and the plan after that is empty.
#[test]
fn watchdog_lab_nat_reboot_falls_back_to_relay_without_a_run() {
    require_lab!();
    let lab = Lab::up_with(
        "wd-nat",
        &[
            "--public",
            "2",
            "--nat",
            "2",
            "--nat-kind",
            "nat-1=eim,nat-2=eim",
        ],
    );
    let inv = lab.inventory();
    let (i1, i2) = (
        lab.host("nat-1").mesh_address.clone(),
        lab.host("nat-2").mesh_address.clone(),
    );
    // From bare hosts the pair is relayed; once both NATs are seen by both public nodes
    // the next apply punches it (as nat_lab does).
    apply_ok(&lab, &inv, &[]);
    for n in ["nat-1", "nat-2"] {
        for p in ["pub-1", "pub-2"] {
            let ip = lab.host(p).mesh_address.clone();
            wait_for(&format!("{n} -> {p}"), Duration::from_secs(30), || {
                pings(&lab, n, &ip)
            });
        }
    }
    let punch = apply_ok(&lab, &inv, &[]);
    assert!(
        punch
            .stdout
            .contains("nat-1: direct path to nat-2 confirmed by a handshake"),
        "{}",
        punch.stdout
    );
    assert_no_changes(&lab, &inv);
    // Installed on the light hosts as busybox crond lines, the watch file naming the pair.
    for (host, peer) in [("nat-1", "nat-2"), ("nat-2", "nat-1")] {
        let watch = lab
            .host_exec(
                host,
                &format!("cat {WATCH}; grep -c 'meshup-watchdog wg0$' /etc/crontabs/root"),
            )
            .expect_ok("watch file")
            .to_string();
        assert!(
            watch.contains(&format!("direct {peer} ")) && watch.contains(" pub-1 "),
            "{host}: {watch}"
        );
        assert!(watch.ends_with("1\n"), "{host}: one crontab line: {watch}");
    }
    assert!(pings(&lab, "nat-1", &i2));

    let reboot = std::process::Command::new(lab_command())
        .args(["nat-reboot", lab.name(), "nat-1"])
        .output()
        .expect("lab nat-reboot");
    assert!(reboot.status.success(), "{reboot:?}");
    let t0 = Instant::now();
    // No meshup run: the path is dead until a watchdog moves the pair to the relay.
    let mut back = None;
    while t0.elapsed() < Duration::from_secs(240) {
        if pings(&lab, "nat-1", &i2) && pings(&lab, "nat-2", &i1) {
            back = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let back = back.unwrap_or_else(|| {
        panic!(
            "nat-1 <-> nat-2 never came back through the relay within 4 min\nnat-1: {}\nnat-2: {}",
            traces(&lab, "nat-1"),
            traces(&lab, "nat-2")
        )
    });
    eprintln!(
        "watchdog: nat-1 <-> nat-2 back through the relay {} s after the NAT reboot",
        back.as_secs()
    );
    assert!(back <= Duration::from_secs(180), "took {back:?}");
    let record = lab
        .host_exec("nat-1", "cat /etc/wireguard/wg0/fallback-nat-2")
        .expect_ok("the fallback record")
        .to_string();
    assert!(record.starts_with("relay=pub-1 at="), "{record}");

    // The plan says so; once the NATs forgot the dead path the next apply punches again.
    let plan = plan_text(&lab, &inv);
    assert!(
        plan.contains("nat-1 ↔ nat-2") && plan.contains("the watchdog fell back to pub-1 at"),
        "{plan}"
    );
    wait_for("the plan punches again", Duration::from_secs(90), || {
        pair_json(&lab, &inv, "nat-1", "nat-2")["punch"].is_string()
    });
    let again = apply_ok(&lab, &inv, &[]);
    assert!(
        again
            .stdout
            .contains("nat-1: direct path to nat-2 confirmed by a handshake"),
        "{}",
        again.stdout
    );
    for (host, ip) in [("nat-1", &i2), ("nat-2", &i1)] {
        wait_for(&format!("{host} -> {ip}"), Duration::from_secs(20), || {
            pings(&lab, host, ip)
        });
    }
    let p = pair_json(&lab, &inv, "nat-1", "nat-2");
    assert_eq!(p["kind"], "punched", "{p}");
    assert!(
        p["b_to_a"]
            .as_str()
            .is_some_and(|e| e.starts_with("100.65.")),
        "nat-2 reaches nat-1 at its new address: {p}"
    );
    for host in ["nat-1", "nat-2"] {
        assert!(!traces(&lab, host).contains("fallback-"), "{host}");
    }
    let verify = meshup(&lab, &["verify", path_str(&inv)]);
    assert!(verify.ok(), "{}\n{}", verify.stdout, verify.stderr);
    assert_no_changes(&lab, &inv);
    lab.down();
}

/// On systemd hosts: apply installs the timer (enabled and active) and it ticks, also
/// after a reboot with no meshup run; the second plan is empty; `watchdog: false` removes
/// it all, and so does `state: absent`.
#[test]
fn watchdog_lab_absent_and_off_remove_it() {
    require_lab!();
    let lab = Lab::up_with("wd-abs", &["--public", "2", "--flavour", "systemd"]);
    let inv = lab.inventory();
    apply_ok(&lab, &inv, &[]);
    for host in ["pub-1", "pub-2"] {
        let state = lab
            .host_exec(
                host,
                "systemctl is-enabled meshup-watchdog-wg0.timer; systemctl is-active meshup-watchdog-wg0.timer",
            )
            .stdout;
        assert_eq!(state, "enabled\nactive\n", "{host}");
        wait_for(
            &format!("a tick on {host}"),
            Duration::from_secs(90),
            || {
                lab.host_exec(host, "grep -q '^at=' /run/meshup-watchdog-wg0.tick")
                    .ok()
            },
        );
    }
    assert_no_changes(&lab, &inv);

    // It comes back by itself (DESIGN rule 14): after a power cycle, with no meshup run,
    // the timer is active again and ticks (the old stamp in /run went with the reboot).
    let reboot = std::process::Command::new(lab_command())
        .args(["reboot", lab.name(), "pub-1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("lab reboot");
    assert!(reboot.status.success(), "{reboot:?}");
    wait_for(
        "a tick on pub-1 after the reboot",
        Duration::from_secs(120),
        || {
            lab.host_exec(
            "pub-1",
            "systemctl is-active -q meshup-watchdog-wg0.timer && grep -q '^at=' /run/meshup-watchdog-wg0.tick",
        )
        .ok()
        },
    );
    assert_no_changes(&lab, &inv);

    let off = edited(&lab, "off.yaml", |t| {
        t.replacen("mesh:\n", "mesh:\n  watchdog: false\n", 1)
    });
    let run = apply_ok(&lab, &off, &[]);
    assert!(run.stdout.contains("watchdog"), "{}", run.stdout);
    for host in ["pub-1", "pub-2"] {
        assert_eq!(traces(&lab, host), "", "{host}");
        assert!(
            !lab.host_exec(
                host,
                "systemctl list-timers --all | grep -q meshup-watchdog"
            )
            .ok(),
            "{host}"
        );
    }
    assert_no_changes(&lab, &off);

    // Back on, then pub-2 leaves the mesh.
    apply_ok(&lab, &inv, &[]);
    assert!(traces(&lab, "pub-2").contains(WATCH));
    let absent = edited(&lab, "absent.yaml", |t| {
        t.replacen(
            "  - name: pub-2\n",
            "  - name: pub-2\n    state: absent\n",
            1,
        )
    });
    apply_ok(&lab, &absent, &[]);
    assert_eq!(traces(&lab, "pub-2"), "", "pub-2");
    assert!(traces(&lab, "pub-1").contains(WATCH), "pub-1 keeps its own");
    assert_no_changes(&lab, &absent);
    lab.down();
}

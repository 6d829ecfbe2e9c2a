//! NetworkManager beside the mesh (issue 27) on a real lab host: Debian's network-manager
//! 1.42 (from the lab mirror, as an admin installs it) running under the host's systemd.
//!
//! What is real: NetworkManager, nmcli, its systemd unit and its device handling. In a lab
//! host (a network namespace that is not the machine's first one, /sys read-only) it runs
//! without udev, as NetworkManager does in any container: it sees every link as ready and
//! manages it, so nothing needs emulating for it to take an interface: the mesh's real
//! wg0 (wireguard-go's tun device) shows as "connected (externally)" until meshup's
//! drop-in is there. What is not covered: udev's own rules (`NM_UNMANAGED` properties), Wi-Fi
//! or modems, and NetworkManager bringing wg0 up itself from a connection profile.
use std::path::Path;
use std::time::Duration;

use crate::support_lab::{Lab, apply_ok, assert_no_changes, edited, meshup, path_str, wait_for};

const DROP_IN: &str = "/etc/NetworkManager/conf.d/meshup-wg0.conf";
/// A tun device of the test's own with an address and up, as wireguard-go makes wg0:
/// NetworkManager takes it (the control that its device handling ran).
const CONTROL: &str = "nmctl0";

/// What `nmcli device` says of `dev` on `host` (`unmanaged`, `connected (externally)`, …),
/// or None when NetworkManager does not list it (or does not answer).
fn nm_state(lab: &Lab, host: &str, dev: &str) -> Option<String> {
    let run = lab.host_exec(host, "nmcli -t -f DEVICE,STATE device");
    if !run.ok() {
        return None;
    }
    run.stdout.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(d, _)| *d == dev)
            .map(|(_, s)| s.to_string())
    })
}

/// `from` pings `to`'s mesh address within a bounded wait.
fn mesh_pings(lab: &Lab, from: &str, to: &str) {
    let ip = lab.host(to).mesh_address.clone();
    wait_for(
        &format!("{from} pings {to} ({ip}) over the mesh"),
        Duration::from_secs(30),
        || lab.host_exec(from, &format!("ping -n -c 1 -W 1 {ip}")).ok(),
    );
}

fn plan_text(lab: &Lab, inv: &Path) -> String {
    let run = meshup(lab, &["plan", path_str(inv)]);
    format!("{}{}", run.stdout, run.stderr)
}

/// pub-1 gets NetworkManager after the mesh: it takes wg0 until meshup's drop-in is there,
/// then wg0 stays unmanaged across a restart of NetworkManager, the mesh pings, the second
/// plan is empty, and `state: absent` removes the drop-in.
#[test]
fn nm_lab_keeps_wg0_unmanaged_across_a_restart() {
    require_lab!();
    let lab = Lab::up_with("nm-keep", &["--public", "2", "--flavour", "systemd"]);
    let inv = lab.inventory();
    // The mesh first, on hosts without NetworkManager: no drop-in anywhere.
    apply_ok(&lab, &inv, &[]);
    mesh_pings(&lab, "pub-1", "pub-2");
    assert!(!lab.host_exec("pub-1", &format!("test -e {DROP_IN}")).ok());

    // An admin installs NetworkManager on pub-1; its package starts it, and it takes the
    // running wg0 over as an external connection.
    lab.host_exec(
        "pub-1",
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends network-manager >/dev/null",
    )
    .expect_ok("apt-get install network-manager");
    wait_for(
        "NetworkManager takes wg0 on pub-1",
        Duration::from_secs(60),
        || nm_state(&lab, "pub-1", "wg0").as_deref() == Some("connected (externally)"),
    );

    // meshup sees it and writes its drop-in; NetworkManager reads it again at once.
    let plan = plan_text(&lab, &inv);
    assert!(
        plan.contains(&format!(
            "write {DROP_IN}: NetworkManager leaves wg0 unmanaged"
        )),
        "{plan}"
    );
    apply_ok(&lab, &inv, &[]);
    wait_for(
        "wg0 unmanaged on pub-1 after apply",
        Duration::from_secs(30),
        || nm_state(&lab, "pub-1", "wg0").as_deref() == Some("unmanaged"),
    );
    assert!(!lab.host_exec("pub-2", "test -e /etc/NetworkManager").ok());

    // NetworkManager restarts: it reads its configuration from scratch; once it has taken
    // the control device again (its device handling ran), wg0 is still unmanaged.
    lab.host_exec(
        "pub-1",
        &format!(
            "ip tuntap add dev {CONTROL} mode tun && ip addr add 10.99.0.9/32 dev {CONTROL} && ip link set {CONTROL} up"
        ),
    )
    .expect_ok("add the control device");
    wait_for(
        "NetworkManager takes the control device",
        Duration::from_secs(30),
        || nm_state(&lab, "pub-1", CONTROL).as_deref() == Some("connected (externally)"),
    );
    let pid = |lab: &Lab| {
        lab.host_exec("pub-1", "systemctl show -P MainPID NetworkManager")
            .stdout
    };
    let before = pid(&lab);
    lab.host_exec("pub-1", "systemctl restart NetworkManager")
        .expect_ok("restart NetworkManager");
    assert_ne!(pid(&lab), before, "NetworkManager restarted");
    wait_for(
        "NetworkManager started again and took the control device",
        Duration::from_secs(60),
        || {
            lab.host_exec("pub-1", "nmcli -t -f STARTUP general")
                .stdout
                .trim()
                == "started"
                && nm_state(&lab, "pub-1", CONTROL).as_deref() == Some("connected (externally)")
        },
    );
    assert_eq!(
        nm_state(&lab, "pub-1", "wg0").as_deref(),
        Some("unmanaged"),
        "after the restart"
    );
    mesh_pings(&lab, "pub-1", "pub-2");
    mesh_pings(&lab, "pub-2", "pub-1");
    lab.host_exec("pub-1", &format!("ip link del {CONTROL}"))
        .expect_ok("remove the control device");
    assert_no_changes(&lab, &inv);

    // pub-1 leaves the mesh: its drop-in goes with its interface.
    let absent = edited(&lab, "absent.yaml", |t| {
        t.replacen(
            "  - name: pub-1\n",
            "  - name: pub-1\n    state: absent\n",
            1,
        )
    });
    apply_ok(&lab, &absent, &[]);
    assert!(!lab.host_exec("pub-1", &format!("test -e {DROP_IN}")).ok());
    assert_eq!(nm_state(&lab, "pub-1", "wg0"), None, "wg0 is gone");
    lab.host_exec("pub-1", "systemctl is-active -q NetworkManager")
        .expect_ok("NetworkManager still runs");
    assert_no_changes(&lab, &absent);
    lab.down();
}

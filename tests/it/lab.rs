//! Self-tests of the local lab (tests/lab/lab): the hosts are what meshup's lab tests rely
//! on — separate machines reachable by SSH, their own /etc, real NAT, a working apt mirror,
//! a booting systemd. Needs root; `MESHUP_SKIP_LAB=1` skips them.

use crate::support_lab::Lab;
use std::collections::HashSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn netns_of(lab: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("ml.{lab}.")))
        .map(str::to_owned)
        .collect()
}

/// Every host answers SSH (strict host key checking against the generated known_hosts) with
/// its own hostname and its own host key, as root, as `admin` with passwordless sudo, and
/// `nopw` cannot sudo without a password. Hosts have separate /etc, NAT is real, the mirror
/// serves apt, WireGuard comes up with wireguard-go, and sysctls outside net.* are read-only.
#[test]
fn lab_guide_light_hosts_are_separate_machines() {
    require_lab!();
    let lab = Lab::up("it-guide", "guide", "light");
    let names: Vec<String> = lab.hosts().iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    assert_eq!(
        lab.host("node-a").public_ip.as_deref(),
        Some("203.0.113.10")
    );
    assert_eq!(
        lab.host("node-b").public_ip.as_deref(),
        Some("198.51.100.20")
    );
    assert_eq!(lab.host("node-c").role, "nat");

    // SSH: own hostname, own host key, three accounts.
    let mut keys = HashSet::new();
    for h in lab.hosts() {
        let out = lab.ssh(
            "root",
            &h.name,
            "hostname; cat /etc/ssh/ssh_host_ed25519_key.pub",
        );
        let text = out.expect_ok(&format!("ssh root@{}", h.name));
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(h.name.as_str()));
        let key = lines
            .next()
            .expect("host key line")
            .split_whitespace()
            .nth(1)
            .expect("key");
        assert!(
            keys.insert(key.to_owned()),
            "host key of {} is shared",
            h.name
        );
        let admin = lab.ssh("admin", &h.name, "sudo -n id -u");
        assert_eq!(admin.expect_ok("admin sudo").trim(), "0");
        let nopw = lab.ssh("nopw", &h.name, "sudo -n true");
        assert!(!nopw.ok(), "nopw must need a password for sudo");
        assert!(nopw.stderr.contains("password"), "{}", nopw.stderr);
    }
    let known = std::fs::read_to_string(lab.out_dir().join("known_hosts")).expect("known_hosts");
    let c = lab.host("node-c");
    assert!(
        known.contains(&format!("[{}]:{} ", c.ssh_host, c.ssh_port)),
        "{known}"
    );
    let inv = std::fs::read_to_string(lab.inventory()).expect("inventory");
    assert!(inv.contains("preshared_keys: true") && inv.contains("endpoint: 203.0.113.10:51820"));

    // Own /etc/wireguard per host.
    lab.ssh(
        "root",
        "node-a",
        "mkdir -p /etc/wireguard && echo a > /etc/wireguard/only-a",
    )
    .expect_ok("write on node-a");
    assert!(
        lab.host_exec("node-a", "test -f /etc/wireguard/only-a")
            .ok()
    );
    assert!(
        !lab.host_exec("node-b", "test -e /etc/wireguard/only-a")
            .ok()
    );
    assert!(
        !lab.host_exec("node-c", "test -e /etc/wireguard/only-a")
            .ok()
    );

    // sysctls: net.* writable (per netns), the rest read-only.
    lab.host_exec("node-a", "sysctl -qw net.ipv4.ip_forward=1")
        .expect_ok("net sysctl");
    assert!(
        !lab.host_exec("node-a", "sysctl -qw kernel.domainname=x")
            .ok()
    );

    // NAT: node-c's connection to node-a arrives from its router's public address.
    let router = c.router_ip.clone().expect("router ip");
    let mut listener = Command::new(crate::support_lab::lab_command())
        .args(["exec", "it-guide", "node-a", "--", "timeout", "20", "python3", "-c"])
        .arg(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',9999))\ns.listen()\nc,a=s.accept()\nprint(a[0],flush=True)",
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("listener");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = lab.host_exec(
            "node-c",
            "python3 -c \"import socket; socket.create_connection(('203.0.113.10', 9999), 3)\"",
        );
        if r.ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-c cannot reach node-a: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut seen = String::new();
    listener
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut seen)
        .expect("read listener");
    let _ = listener.wait();
    assert_eq!(seen.trim(), router, "NAT host must appear as its router");
    // ... and nobody outside reaches node-c's private address directly.
    let private = lab.host_exec(
        "node-c",
        "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1",
    );
    let private = private.expect_ok("node-c address").trim().to_owned();
    assert!(
        !lab.host_exec("node-a", &format!("ping -c1 -W1 {private}"))
            .ok()
    );

    // apt from the lab mirror: update is clean, a package installs, WireGuard comes up.
    let upd = lab.host_exec("node-b", "apt-get update 2>&1");
    let text = upd.expect_ok("apt-get update");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("W:") || l.starts_with("E:")),
        "{text}"
    );
    lab.host_exec(
        "node-b",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y tree && tree --version",
    )
    .expect_ok("apt-get install tree");
    assert!(
        !lab.host_exec("node-a", "command -v tree").ok(),
        "package leaked to another host"
    );
    assert!(
        !lab.host_exec("node-b", "command -v wg").ok(),
        "WireGuard must not be preinstalled"
    );
    lab.host_exec(
        "node-b",
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wireguard && \
         umask 077 && wg genkey > /etc/wireguard/k && \
         printf '[Interface]\\nAddress = 10.99.0.1/24\\nPrivateKey = %s\\n' \"$(cat /etc/wireguard/k)\" \
           > /etc/wireguard/wg0.conf && wg-quick up wg0 && wg show wg0 listen-port",
    )
    .expect_ok("apt-get install wireguard + wg-quick up");
    assert!(lab.host_exec("node-b", "pgrep -x wireguard-go").ok());
    assert!(!lab.host_exec("node-a", "ip link show wg0").ok());
}

/// The mixed scenario: a subnet router reaches the machine on its LAN, two NAT hosts sit
/// behind two different routers, and `--user admin` writes an inventory using sudo.
#[test]
fn lab_mixed_light_topology() {
    require_lab!();
    let lab = Lab::up_with("it-mixed", &["--scenario", "mixed", "--user", "admin"]);
    let gw = lab.host("gw");
    let probe = gw.probe.clone().expect("probe");
    assert_eq!(gw.lan_subnet.as_deref(), Some("192.168.50.0/24"));
    lab.host_exec("gw", &format!("ping -c1 -W2 {probe}"))
        .expect_ok("gw pings its LAN");
    assert!(
        !lab.host_exec("pub-1", &format!("ping -c1 -W1 {probe}"))
            .ok(),
        "LAN must not be routed outside the mesh"
    );
    let routers: HashSet<_> = lab
        .hosts()
        .iter()
        .filter(|h| h.role == "nat")
        .map(|h| h.router_ip.clone().expect("router"))
        .collect();
    assert_eq!(routers.len(), 2, "each NAT host has its own router");
    let inv = std::fs::read_to_string(lab.inventory()).expect("inventory");
    assert!(
        inv.contains("user: admin") && inv.contains("become: sudo"),
        "{inv}"
    );
    assert!(inv.contains(&format!("probe: {probe}")), "{inv}");
    for h in lab.hosts() {
        let r = lab.ssh("admin", &h.name, "sudo -n hostname");
        assert_eq!(r.expect_ok("admin ssh").trim(), h.name);
    }
}

/// systemd flavour: systemd boots as the host's PID 1, starts units, runs firewalld.
#[test]
fn lab_systemd_boots_and_runs_units() {
    require_lab!();
    let lab = Lab::up_with(
        "it-sysd",
        &["--public", "2", "--nat", "1", "--flavour", "systemd"],
    );
    for h in lab.hosts() {
        let r = lab.ssh(
            "root",
            &h.name,
            "systemctl is-system-running --wait; hostname",
        );
        let text = r.stdout.clone();
        let mut lines = text.lines();
        let state = lines.next().unwrap_or_default();
        assert!(
            state == "running" || state == "degraded",
            "{}: {state} {}",
            h.name,
            r.stderr
        );
        assert_eq!(lines.next(), Some(h.name.as_str()));
    }
    lab.ssh(
        "root",
        "pub-1",
        "systemd-run --unit lab-selftest sleep 300 && systemctl is-active lab-selftest",
    )
    .expect_ok("start a unit");
    assert!(
        !lab.ssh("root", "pub-2", "systemctl is-active lab-selftest")
            .ok(),
        "units are per host"
    );
    let fw = lab.ssh(
        "root",
        "pub-2",
        "systemctl enable --now firewalld && firewall-cmd --state",
    );
    assert_eq!(fw.expect_ok("firewalld").trim(), "running");
    // WireGuard as a systemd service, installed from the lab mirror (wireguard-go underneath).
    lab.ssh(
        "root",
        "nat-1",
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wireguard-tools && \
         umask 077 && printf '[Interface]\\nAddress = 10.99.0.2/24\\nPrivateKey = %s\\n' \"$(wg genkey)\" \
           > /etc/wireguard/wg0.conf && systemctl enable --now wg-quick@wg0 && \
         systemctl is-active wg-quick@wg0 && wg show wg0 public-key",
    )
    .expect_ok("wg-quick@wg0 under systemd");
    // A host sets its own net.* sysctls (relays need ip_forward); the rest stays read-only.
    lab.ssh("root", "pub-1", "sysctl -w net.ipv4.ip_forward=1")
        .expect_ok("net.* sysctls are writable in a systemd host");
    assert!(
        !lab.ssh("root", "pub-1", "sysctl -w kernel.domainname=x")
            .ok(),
        "kernel.* sysctls stay read-only"
    );
    let id1 = lab
        .host_exec("pub-1", "cat /etc/machine-id")
        .expect_ok("id")
        .to_owned();
    let id2 = lab
        .host_exec("pub-2", "cat /etc/machine-id")
        .expect_ok("id")
        .to_owned();
    assert_ne!(id1, id2);
}

/// Teardown leaves nothing behind and is safe to run twice; `up` over a crashed lab works.
#[test]
fn lab_down_is_complete_and_idempotent() {
    require_lab!();
    let lab = Lab::up_with("it-down", &["--public", "1", "--nat", "1"]);
    assert!(!netns_of("it-down").is_empty());
    // Simulate a crash: kill a host's processes and lose the lab's record, then bring the
    // lab up again over what is left.
    let procs =
        std::fs::read_to_string("/sys/fs/cgroup/unified/meshup-lab/it-down/pub-1/cgroup.procs")
            .or_else(|_| {
                std::fs::read_to_string("/sys/fs/cgroup/meshup-lab/it-down/pub-1/cgroup.procs")
            })
            .expect("host cgroup");
    for pid in procs.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    std::fs::remove_file("/var/lib/meshup-lab/it-down/lab.env").expect("remove lab.env");
    let again = Lab::up_with("it-down", &["--public", "1", "--nat", "1"]);
    again
        .ssh("root", "pub-1", "true")
        .expect_ok("ssh after re-up");
    again.down().expect_ok("down");
    again.down().expect_ok("second down");
    assert!(netns_of("it-down").is_empty(), "{:?}", netns_of("it-down"));
    assert!(!std::path::Path::new("/var/lib/meshup-lab/it-down").exists());
    for root in [
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup",
    ] {
        assert!(!std::path::Path::new(&format!("{root}/meshup-lab/it-down")).exists());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains("/meshup-lab/it-down/"), "leftover mounts");
    drop(lab);
}

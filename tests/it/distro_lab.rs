//! meshup against lab hosts of every distro family: Debian, and Fedora, Arch, Rocky 8 and
//! openSUSE hosts whose package manager (dnf, pacman, zypper, rpm), repository metadata and
//! transaction are real while the userland is the lab's Debian one under that distro's real
//! os-release (tests/lab/lib-distro.sh). Also: a held dpkg lock, and a dual-stack mesh
//! across an ip6tables INPUT DROP host. Needs root; `MESHUP_SKIP_LAB=1` skips them.

use crate::support_lab::{Lab, assert_no_changes, meshup, path_str, recap_line};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `verify` reports every pair healthy.
#[track_caller]
fn assert_verify_healthy(lab: &Lab, inv: &Path) {
    let run = meshup(lab, &["verify", path_str(inv)]);
    assert_eq!(run.code, Some(0), "verify\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("All pairs healthy"), "{}", run.stdout);
}

/// The lab's inventory with `mesh_extra` lines added under `mesh:`, written next to it.
fn inventory_with(lab: &Lab, file: &str, mesh_extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(lab.inventory()).expect("read inventory");
    let text = text.replacen("mesh:\n", &format!("mesh:\n{mesh_extra}"), 1);
    let path = lab.out_dir().join(file);
    std::fs::write(&path, text).expect("write inventory");
    path
}

/// Pings `ip` (v4 or v6) from `from` until it answers or `deadline` passes.
fn ping_until(lab: &Lab, from: &str, ip: &str, deadline: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let run = lab.host_exec(from, &format!("ping -c 2 -W 1 {ip}"));
        if run.ok() {
            return Ok(());
        }
        if start.elapsed() > deadline {
            return Err(format!("{from} -> {ip}: {}{}", run.stdout, run.stderr));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The guide's mesh on five distro families: node-a Debian (apt), node-b Fedora (dnf),
/// node-c Arch behind NAT (pacman), node-d Rocky 8 (dnf: epel-release and elrepo-release
/// first, then wireguard-tools and kmod-wireguard from the repositories they add), node-e
/// openSUSE Leap (zypper). Each installs through its real package manager; the mesh
/// converges, the second plan is empty, verify is healthy.
#[test]
fn distro_lab_guide_mesh_converges_on_five_families() {
    require_lab!();
    let t = Instant::now();
    let lab = Lab::up("dl-guide", "guide-distros", "light");
    eprintln!("guide-distros lab up: {:?}", t.elapsed());
    let inv = lab.inventory();
    let plan = meshup(&lab, &["plan", path_str(&inv)]);
    for line in [
        "Debian GNU/Linux 12",
        "Fedora Linux 41",
        "Arch Linux",
        "Rocky Linux 8",
        "openSUSE Leap 15.6",
        "+ install wireguard-tools wireguard-go (apt-get)",
        "+ install wireguard-tools (dnf)",
        "+ install wireguard-tools (pacman)",
        "+ install wireguard-tools kmod-wireguard (dnf)",
        "+ install wireguard-tools (zypper)",
    ] {
        assert!(
            plan.stdout.contains(line),
            "plan lacks {line:?}:\n{}",
            plan.stdout
        );
    }
    let t = Instant::now();
    let run = meshup(&lab, &["apply", "--yes", path_str(&inv)]);
    eprintln!("guide-distros apply: {:?}", t.elapsed());
    run.expect_ok("meshup apply");
    assert!(
        run.stdout.contains("ok=0 changed=5 failed=0"),
        "{}",
        run.stdout
    );
    // The packages are in each manager's own database: the transactions were real.
    for (host, query, expect) in [
        (
            "node-b",
            "rpm -q wireguard-tools wireguard-go",
            "wireguard-tools-",
        ),
        (
            "node-c",
            "pacman -Q wireguard-tools wireguard-go",
            "wireguard-tools ",
        ),
        (
            "node-d",
            "rpm -q epel-release elrepo-release wireguard-tools kmod-wireguard",
            "kmod-wireguard-",
        ),
        (
            "node-e",
            "rpm -q wireguard-tools wireguard-go",
            "wireguard-tools-",
        ),
        ("node-a", "dpkg-query -W wireguard-tools", "wireguard-tools"),
    ] {
        let out = lab.host_exec(host, query);
        assert!(
            out.ok() && out.stdout.contains(expect),
            "{host}: {query}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    // Only the lab's repositories are configured (EPEL and ELRepo added by their release
    // packages on node-d).
    let repos = lab.host_exec("node-d", "dnf -q repolist").stdout;
    for id in ["lab-rocky8", "epel", "elrepo"] {
        assert!(repos.contains(id), "{repos}");
    }
    assert_no_changes(&lab, &inv);
    assert_verify_healthy(&lab, &inv);
}

/// A host whose repository lacks wireguard-tools fails with the package manager's own
/// words; the other hosts converge.
#[test]
fn distro_lab_missing_package_fails_that_host_only() {
    require_lab!();
    let lab = Lab::up_with(
        "dl-missing",
        &["--public", "3", "--distro", "pub-2=fedora,pub-3=arch"],
    );
    // pub-2's only repository becomes the lab's empty one.
    lab.host_exec(
        "pub-2",
        "sed -i 's#/rpm/fedora/#/rpm/empty/#' /etc/yum.repos.d/lab.repo",
    )
    .expect_ok("point pub-2 at the empty repository");
    let inv = lab.inventory();
    let run = meshup(&lab, &["apply", "--yes", path_str(&inv)]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let failed = recap_line(&run.stdout, "pub-2");
    assert!(failed.contains("FAILED"), "{}", run.stdout);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("installing WireGuard failed"), "{all}");
    assert!(
        all.contains("No match for argument: wireguard-tools")
            || all.contains("Unable to find a match: wireguard-tools"),
        "dnf's own error is not shown:\n{all}"
    );
    for h in ["pub-1", "pub-3"] {
        assert!(
            recap_line(&run.stdout, h).contains("changed"),
            "{h}: {}",
            run.stdout
        );
    }
    let peer = lab.host("pub-3").mesh_address.clone();
    ping_until(&lab, "pub-1", &peer, Duration::from_secs(20)).expect("pub-1 -> pub-3");
    // With the package back in its repository, pub-2 joins.
    lab.host_exec(
        "pub-2",
        "sed -i 's#/rpm/empty/#/rpm/fedora/#' /etc/yum.repos.d/lab.repo",
    )
    .expect_ok("restore pub-2's repository");
    meshup(&lab, &["apply", "--yes", path_str(&inv)]).expect_ok("apply after the fix");
    assert_no_changes(&lab, &inv);
}

/// Starts python3 on `host` holding an fcntl lock on dpkg's lock-frontend for `secs`
/// seconds (as apt does) and returns its PID once the lock is held.
fn hold_dpkg_lock(lab: &Lab, host: &str, secs: u32) -> String {
    let py = format!(
        "import fcntl, os, time\nf = open('/var/lib/dpkg/lock-frontend', 'w')\n\
         fcntl.lockf(f, fcntl.LOCK_EX)\nopen('/run/lab-lock-held', 'w').write(str(os.getpid()))\n\
         time.sleep({secs})\n"
    );
    lab.host_exec(
        host,
        &format!(
            "rm -f /run/lab-lock-held; printf '%s' \"{py}\" > /run/lab-hold.py; \
             setsid python3 /run/lab-hold.py </dev/null >/dev/null 2>&1 &"
        ),
    )
    .expect_ok("start the lock holder");
    let start = Instant::now();
    loop {
        let pid = lab
            .host_exec(host, "cat /run/lab-lock-held 2>/dev/null")
            .stdout;
        if !pid.trim().is_empty() {
            return pid.trim().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lock holder did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A held dpkg lock: past `mesh.package_lock_timeout` that host fails naming the holder
/// (PID and command) while the other converges; held for 20 s with the default timeout
/// (120 s), apply waits and converges.
#[test]
fn distro_lab_dpkg_lock_is_waited_for() {
    require_lab!();
    let lab = Lab::up_with("dl-lock", &["--public", "2"]);
    let short = inventory_with(&lab, "short-lock.yaml", "  package_lock_timeout: 3\n");
    let pid = hold_dpkg_lock(&lab, "pub-1", 600);
    let run = meshup(&lab, &["apply", "--yes", path_str(&short)]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        recap_line(&run.stdout, "pub-1").contains("FAILED"),
        "{}",
        run.stdout
    );
    assert!(
        recap_line(&run.stdout, "pub-2").contains("changed"),
        "{}",
        run.stdout
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains(&format!(
            "the dpkg lock is held by PID {pid} (python3) for more than 3 s"
        )),
        "the holder is not named:\n{all}"
    );
    lab.host_exec("pub-1", &format!("kill {pid}"))
        .expect_ok("stop the holder");

    // Held for 20 s: the default timeout waits it out.
    let pid = hold_dpkg_lock(&lab, "pub-1", 20);
    let t = Instant::now();
    let run = meshup(&lab, &["apply", "--yes", path_str(&lab.inventory())]);
    let waited = t.elapsed();
    eprintln!("apply with the dpkg lock held 20 s by PID {pid}: {waited:?}");
    run.expect_ok("apply while the lock is held");
    assert!(
        recap_line(&run.stdout, "pub-1").contains("changed"),
        "{}",
        run.stdout
    );
    assert!(
        waited >= Duration::from_secs(12),
        "apply did not wait: {waited:?}"
    );
    let peer = lab.host("pub-2").mesh_address.clone();
    ping_until(&lab, "pub-1", &peer, Duration::from_secs(20)).expect("pub-1 -> pub-2");
    assert_no_changes(&lab, &lab.inventory());
}

/// The host's global IPv6 address on wg0.
fn mesh_address6(lab: &Lab, host: &str) -> String {
    let out = lab
        .host_exec(host, "ip -6 -o addr show dev wg0 scope global")
        .expect_ok("ip -6 addr")
        .to_string();
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("{host} has no IPv6 mesh address: {out}"))
        .to_string()
}

/// A dual-stack mesh (`network6`) with a host whose iptables and ip6tables INPUT policies
/// are DROP (established, lo, ssh and ICMP/ICMPv6 accepted): apply opens the port in both,
/// and IPv6 mesh traffic passes both ways.
#[test]
fn distro_lab_ip6tables_drop_host_in_a_dual_stack_mesh() {
    require_lab!();
    let lab = Lab::up_with("dl-v6", &["--public", "2"]);
    lab.host_exec(
        "pub-1",
        "for t in iptables ip6tables; do \
           $t -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && \
           $t -A INPUT -i lo -j ACCEPT && $t -A INPUT -p tcp --dport 22 -j ACCEPT || exit 1; done; \
         iptables -A INPUT -p icmp -j ACCEPT && ip6tables -A INPUT -p ipv6-icmp -j ACCEPT && \
         iptables -P INPUT DROP && ip6tables -P INPUT DROP",
    )
    .expect_ok("firewall");
    let inv = inventory_with(&lab, "v6.yaml", "  network6: fd10:10::/64\n");
    meshup(&lab, &["apply", "--yes", path_str(&inv)]).expect_ok("apply");
    let rules = lab.host_exec("pub-1", "ip6tables -S INPUT").stdout;
    assert!(
        rules.contains("--dport 51820") && rules.contains("-P INPUT DROP"),
        "{rules}"
    );
    let a1 = mesh_address6(&lab, "pub-1");
    let a2 = mesh_address6(&lab, "pub-2");
    ping_until(&lab, "pub-2", &a1, Duration::from_secs(20)).expect("pub-2 -> pub-1 over IPv6");
    ping_until(&lab, "pub-1", &a2, Duration::from_secs(20)).expect("pub-1 -> pub-2 over IPv6");
    assert_no_changes(&lab, &inv);
}

//! Hosts with a real kernel (issue 26 part 2): `tests/lab/lab up --vm HOST` makes HOST a
//! QEMU virtual machine (TCG: no KVM needed) booting Debian's own kernel (linux-image-amd64)
//! with its initramfs, real systemd and its own kernel modules, attached to its lab
//! namespace through a tap device (tests/lab/README.md "VM hosts"). Real there: the kernel's
//! WireGuard module (meshup installs wireguard-tools only: the plan picks the kernel module,
//! no wireguard-go), the power cycle (QEMU killed, the VM's RAM gone, its disk kept, the
//! kernel booting again). The namespace hosts around it are the usual systemd-flavour hosts
//! (wireguard-go). Where QEMU is missing the test says so and checks nothing (libtest has no
//! "skipped" state: it shows `ok` with the message on stderr). It is `#[ignore]`d in the
//! parallel run: `tests/run` runs it alone afterwards when QEMU is installed, and otherwise
//! prints that it skipped it (counted as skipped, never as passed).

use std::time::{Duration, Instant};

use crate::apply_lab::{PingAll, assert_ping_matrix, public_key};
use crate::support_lab::{Lab, apply_ok, assert_no_changes, lab_command, meshup, path_str};

/// Why a VM cannot boot on this machine (QEMU missing), if it cannot.
fn qemu_missing() -> Option<String> {
    for (bin, package) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
    ] {
        let found = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{bin} is not installed (Debian package {package})"));
        }
    }
    None
}

/// Returns from a VM lab test, saying why, when no VM can boot here.
macro_rules! require_qemu {
    () => {
        require_lab!();
        if let Some(why) = qemu_missing() {
            eprintln!("SKIPPED, nothing checked: no VM can boot here: {why}");
            return;
        }
    };
}

/// QEMU's resident memory (MiB) and how long its guest kernel has been up, for `host`.
fn vm_stats(lab: &Lab, host: &str) -> (u64, f64) {
    let ns = &lab.host(host).netns;
    let pids = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    let mut rss = 0;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.lines().any(|l| l == "Name:\tqemu-system-x86") {
            rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
                / 1024;
        }
    }
    let up = lab
        .host_exec(host, "cut -d' ' -f1 /proc/uptime")
        .expect_ok("uptime")
        .trim()
        .parse()
        .unwrap_or(0.0);
    (rss, up)
}

/// What makes `host`'s wg0 the kernel's: the module loaded, the link of kind wireguard,
/// no wireguard-go installed or running. Empty when all hold.
fn not_kernel_wireguard(lab: &Lab, host: &str) -> String {
    let run = lab.host_exec(
        host,
        "test -d /sys/module/wireguard || echo 'module not loaded'; \
         ip -d link show wg0 | grep -qw wireguard || echo 'wg0 is not of kind wireguard'; \
         ! pgrep -x wireguard-go >/dev/null || echo 'wireguard-go runs'; \
         ! dpkg -s wireguard-go >/dev/null 2>&1 || echo 'wireguard-go is installed'; \
         grep -qw wireguard /proc/modules || echo 'not in /proc/modules'",
    );
    format!("{}{}", run.stdout, run.stderr)
}

/// Every ordered pair sends a full-size packet over wg0 with DF set (the interface MTU, as
/// verify's MTU probe does): nothing fragments or is dropped on the VM's virtio NIC.
#[track_caller]
fn assert_full_size_pings(lab: &Lab, hosts: &[&str]) {
    let mut failures = Vec::new();
    for from in hosts {
        let mtu: u32 = lab
            .host_exec(from, "cat /sys/class/net/wg0/mtu")
            .expect_ok("wg0 mtu")
            .trim()
            .parse()
            .expect("mtu");
        for to in hosts.iter().filter(|t| *t != from) {
            let addr = &lab.host(to).mesh_address;
            let run = lab.host_exec(
                from,
                &format!("ping -n -c 3 -W 2 -M do -s {} {addr}", mtu - 28),
            );
            if !run.ok() {
                failures.push(format!(
                    "{from} -> {to} (mtu {mtu}): {}{}",
                    run.stdout, run.stderr
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "full-size pings:\n{}",
        failures.join("\n")
    );
}

/// A lab of one kernel-WireGuard VM (pub-1) among systemd-flavour namespace hosts (pub-2,
/// and nat-1 behind NAT): apply from bare picks the kernel module on the VM (no
/// wireguard-go), verify (with its MTU probe) is healthy and full-size DF pings pass; a
/// `rotate --all` under pings at 20/s on every pair loses at most 20 per pair (the bound of
/// the parallel rotation test; the numbers are printed); after a power cycle of the VM the
/// mesh is healthy again with no meshup run, on the kernel module, and the plan is empty.
/// Prints the VM's boot times and memory.
#[test]
#[ignore = "a VM on TCG takes a core: tests/run runs it alone after the other tests, when QEMU is installed"]
fn vm_lab_kernel_wireguard_vm_among_namespace_hosts() {
    require_qemu!();
    let t0 = Instant::now();
    let lab = Lab::up_with(
        "in-vm",
        &[
            "--public",
            "2",
            "--nat",
            "1",
            "--flavour",
            "systemd",
            "--vm",
            "pub-1",
        ],
    );
    let up = t0.elapsed();
    let hosts = ["pub-1", "pub-2", "nat-1"];
    let (rss, uptime) = vm_stats(&lab, "pub-1");
    eprintln!(
        "lab up with the VM: {:.1} s (VM kernel up {uptime:.1} s at that point), QEMU RSS {rss} MiB",
        up.as_secs_f64()
    );
    assert!(lab.host("pub-1").vm, "pub-1 is a VM");
    let kernel = lab
        .host_exec("pub-1", "uname -r; cat /proc/1/comm")
        .expect_ok("uname")
        .to_string();
    let machine = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert!(
        kernel.ends_with("-amd64\nsystemd\n") && !kernel.starts_with(machine.trim()),
        "pub-1 runs Debian's kernel under systemd, not the machine's ({machine}): {kernel}"
    );

    let inv = lab.inventory();
    let plan = meshup(&lab, &["plan", path_str(&inv)]);
    let vm_plan = crate::support_lab::plan_section(&plan.stdout, "pub-1");
    assert!(
        vm_plan.contains("wireguard-tools") && !vm_plan.contains("wireguard-go"),
        "the VM's plan installs the tools only (kernel module):\n{vm_plan}"
    );
    let t = Instant::now();
    apply_ok(&lab, &inv, &[]);
    eprintln!("apply from bare: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(not_kernel_wireguard(&lab, "pub-1"), "");
    let v = meshup(&lab, &["verify", path_str(&inv)]);
    assert_eq!(v.code, Some(0), "{}\n{}", v.stdout, v.stderr);
    assert_full_size_pings(&lab, &hosts);
    assert_no_changes(&lab, &inv);

    let before: Vec<String> = hosts.iter().map(|h| public_key(&lab, h)).collect();
    let pings = PingAll::start(&lab, &hosts, 15);
    std::thread::sleep(Duration::from_secs(1));
    let run = meshup(&lab, &["rotate", "--all", "--yes", path_str(&inv)]);
    run.expect_ok("rotate --all");
    let lost = pings.collect();
    eprintln!("rotate --all with pings at 20/s: lost per pair {lost:?}");
    assert_eq!(lost.len(), 6, "every directed pair was measured");
    assert!(lost.values().all(|n| *n <= 20), "{lost:?}\n{}", run.stdout);
    for (i, h) in hosts.iter().enumerate() {
        assert_ne!(public_key(&lab, h), before[i], "{h} was rotated");
    }
    assert_no_changes(&lab, &inv);

    // The power cycle: QEMU killed, the kernel boots again from the kept disk.
    lab.host_exec("pub-1", "touch /run/rb-mark /var/tmp/rb-mark && sync")
        .expect_ok("marks");
    let t = Instant::now();
    let out = std::process::Command::new(lab_command())
        .args(["reboot", lab.name(), "pub-1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("lab reboot");
    let r = crate::support_lab::Run::from(out);
    eprint!("{}", r.expect_ok("lab reboot pub-1"));
    let sshd = t.elapsed();
    let t = Instant::now();
    let healthy = loop {
        let v = meshup(&lab, &["verify", path_str(&inv)]);
        if v.code == Some(0) {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not healthy 60 s after the VM's sshd answered:\n{}\n{}",
            v.stdout,
            v.stderr
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let (rss, uptime) = vm_stats(&lab, "pub-1");
    eprintln!(
        "VM reboot: sshd answered {:.1} s after the power off, the mesh healthy {:.1} s later \
         (kernel up {uptime:.1} s, QEMU RSS {rss} MiB)",
        sshd.as_secs_f64(),
        healthy.as_secs_f64()
    );
    let marks = lab.host_exec("pub-1", "ls /run/rb-mark /var/tmp/rb-mark 2>/dev/null");
    assert_eq!(marks.stdout, "/var/tmp/rb-mark\n", "a power cycle");
    assert_eq!(not_kernel_wireguard(&lab, "pub-1"), "");
    assert_ping_matrix(&lab, &hosts);
    assert_no_changes(&lab, &inv);
}

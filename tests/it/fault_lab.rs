//! The fault matrix's converge-phase and concurrency rows (lab, light flavour): an SSH
//! session cut while a host converges, a host that goes silent while it converges, and
//! two applies at once. Each is followed by a re-run that converges every host, and each
//! checks that the faulted host still has a working config (the new one or the previous
//! one, never a half-written one). The other rows live beside the features they fault:
//! SSH cut during install, Ctrl-C, held lock and port conflict in `apply_lab`, package
//! failure and a held dpkg lock in `distro_lab`, a failing `wg-quick up` in
//! `apply_lab_failed_host_is_rolled_back`.
//!
//! Emulated: "silent" is a host whose processes are frozen (cgroup `cgroup.freeze`) and
//! whose network drops every packet, which is what a powered-off or hung host looks like
//! from the workstation; it is not a power cycle (the host's processes carry on when it is
//! thawed). Slow steps come from a `wg` wrapper on the host that sleeps before `wg set`.

use crate::support_lab::{
    Lab, MESHUP, apply_ok, assert_no_changes, meshup, meshup_in_pty, no_script_left, path_str,
    recap_line, wait_for,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// Makes `wg set` on `host` wait 4 s (after touching /run/wg-set-waiting) while
/// /run/wg-slow exists: a converge step long enough to fault in the middle.
fn slow_wg_set(lab: &Lab, host: &str) {
    lab.host_exec(
        host,
        "printf '#!/bin/sh\\nif [ \"$1\" = set ] && [ -e /run/wg-slow ]; then touch /run/wg-set-waiting; sleep 4; fi\\nexec /usr/bin/wg \"$@\"\\n' >/usr/local/bin/wg \
         && chmod 755 /usr/local/bin/wg && touch /run/wg-slow && rm -f /run/wg-set-waiting",
    )
    .expect_ok("wg wrapper");
}

fn fast_wg_set(lab: &Lab, host: &str) {
    lab.host_exec(
        host,
        "rm -f /run/wg-slow /run/wg-set-waiting /usr/local/bin/wg",
    )
    .expect_ok("remove the wg wrapper");
}

/// The lab's inventory with `preshared_keys` set to `on`, written beside it.
fn with_psks(lab: &Lab, on: bool, extra_ssh: &str) -> PathBuf {
    let text = std::fs::read_to_string(lab.inventory()).expect("inventory");
    let flag = format!("  preshared_keys: {on}\n");
    let text = if text.contains("  preshared_keys: true\n") {
        text.replace("  preshared_keys: true\n", &flag)
    } else {
        text.replacen("mesh:\n", &format!("mesh:\n{flag}"), 1)
    };
    let text = text.replacen("ssh:\n", &format!("ssh:\n{extra_ssh}"), 1);
    let path = lab.out_dir().join(format!("psk-{on}.yaml"));
    std::fs::write(&path, text).expect("write");
    path
}

fn spawn_apply(lab: &Lab, inv: &Path) -> Child {
    lab.ws_command(&[MESHUP, "apply", "--yes", path_str(inv)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meshup")
}

/// `host` has a working config: the file parses, the interface is up with a peer entry
/// for every other node, and the previous config is kept beside it.
#[track_caller]
fn assert_working_config(lab: &Lab, host: &str, peers: usize) {
    let check = lab.host_exec(
        host,
        "wg-quick strip /etc/wireguard/wg0.conf >/dev/null && cp /etc/wireguard/wg0.conf.meshup-prev /run/wgprev.conf \
         && wg-quick strip /run/wgprev.conf >/dev/null && rm /run/wgprev.conf \
         && ip link show wg0 >/dev/null && wg show wg0 peers | wc -l",
    );
    assert_eq!(
        check.expect_ok(&format!("{host}: a working config")).trim(),
        peers.to_string(),
        "{host}: peers on the interface"
    );
}

#[track_caller]
fn assert_verify_healthy(lab: &Lab, inv: &Path) {
    let run = meshup(lab, &["verify", path_str(inv)]);
    assert_eq!(run.code, Some(0), "verify\n{}\n{}", run.stdout, run.stderr);
}

fn finish(child: Child) -> (Output, String) {
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The unified-hierarchy cgroup of a lab host (where `cgroup.freeze` lives).
fn host_cgroup(lab: &Lab, host: &str) -> PathBuf {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|root| Path::new(root).join(format!("meshup-lab/{}/{host}", lab.name())))
        .find(|p| p.join("cgroup.freeze").exists())
        .expect("the host's cgroup with cgroup.freeze")
}

/// `host` goes silent (frozen, every packet dropped) or comes back.
fn silence(lab: &Lab, host: &str, silent: bool) {
    let cg = host_cgroup(lab, host);
    let net = if silent {
        "nft add table inet silent && nft add chain inet silent i '{ type filter hook input priority -400; policy drop; }' && nft add chain inet silent o '{ type filter hook output priority -400; policy drop; }'"
    } else {
        "nft delete table inet silent"
    };
    if silent {
        lab.host_exec(host, net).expect_ok("drop every packet");
    }
    std::fs::write(cg.join("cgroup.freeze"), if silent { "1" } else { "0" }).expect("freeze");
    if !silent {
        lab.host_exec(host, net).expect_ok("let packets through");
    }
}

/// A host's SSH session cut while it converges (its `wg set` in progress), then the same
/// host gone silent at the same point: each time that host is reported failed while the
/// others converge, it keeps a working config (the script stops at its next step once its
/// channel is gone, and no meshup process stays behind), and a re-run converges all.
#[test]
fn fault_lab_ssh_cut_or_silent_host_during_converge_then_rerun_converges() {
    require_lab!();
    let lab = Lab::up("ft-conv", "guide", "light");
    let on = with_psks(&lab, true, "");
    apply_ok(&lab, &on, &[]);
    let off = with_psks(&lab, false, "");

    // 1. SSH session cut while node-b's `wg set` runs.
    let stdout = fault_node_b_while_converging(&lab, &off, || {
        lab.host_exec("node-b", "pkill -KILL -f '^sshd: root@' || true")
            .expect_ok("cut ssh");
    });
    eprintln!("cut node-b: {}", recap_line(&stdout, "node-b").trim());
    rerun_converges(&lab, &off);

    // 2. node-b goes silent while its `wg set` runs; SSH keepalives every second.
    let keepalive = lab.out_dir().join("keepalive.conf");
    std::fs::write(&keepalive, "Host *\n  ServerAliveInterval 1\n").expect("write");
    let on = with_psks(
        &lab,
        true,
        &format!("  ssh_config: {}\n", path_str(&keepalive)),
    );
    let mut silent_at = Instant::now();
    let stdout = fault_node_b_while_converging(&lab, &on, || {
        silence(&lab, "node-b", true);
        silent_at = Instant::now();
    });
    let noticed = silent_at.elapsed();
    silence(&lab, "node-b", false);
    eprintln!(
        "silent node-b reported after {noticed:?}: {}",
        recap_line(&stdout, "node-b").trim()
    );
    assert!(
        noticed < Duration::from_secs(20),
        "a silent host is given up after a few missed keepalives, not {noticed:?}"
    );
    rerun_converges(&lab, &on);
}

/// Applies `inv` with node-b's `wg set` slowed down and `fault` done to node-b while it
/// waits: node-b is reported failed, the others changed. Returns the apply's stdout.
fn fault_node_b_while_converging(lab: &Lab, inv: &Path, fault: impl FnOnce()) -> String {
    slow_wg_set(lab, "node-b");
    let child = spawn_apply(lab, inv);
    wait_for("node-b converging", Duration::from_secs(60), || {
        lab.host_exec("node-b", "test -e /run/wg-set-waiting").ok()
    });
    fault();
    let (out, stdout) = finish(child);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(recap_line(&stdout, "node-b").contains("FAILED"), "{stdout}");
    for h in ["node-a", "node-c"] {
        assert!(recap_line(&stdout, h).contains("changed"), "{stdout}");
    }
    stdout
}

/// After a fault on node-b: no meshup script stays behind there, it has a working
/// config, and a re-run converges the mesh (second plan empty, verify healthy).
fn rerun_converges(lab: &Lab, inv: &Path) {
    wait_for(
        "node-b: no meshup script left",
        Duration::from_secs(30),
        || no_script_left(lab, "node-b"),
    );
    assert_working_config(lab, "node-b", 2);
    fast_wg_set(lab, "node-b");
    apply_ok(lab, inv, &[]);
    assert_no_changes(lab, inv);
    assert_verify_healthy(lab, inv);
}

/// SHA-256 of every host's config, to show that a run changed nothing.
fn configs(lab: &Lab) -> Vec<String> {
    ["node-a", "node-b", "node-c"]
        .iter()
        .map(|h| {
            lab.host_exec(h, "sha256sum /etc/wireguard/wg0.conf")
                .expect_ok("sha256sum")
                .to_string()
        })
        .collect()
}

/// Two applies on one mesh. A run waiting at its confirmation prompt holds every host:
/// a second `plan` or `apply` finds the lock at its gather, names the holder and changes
/// nothing. Two applies started at the same moment split the hosts between them (each host
/// is changed by exactly one, the other reports the lock); the mesh stays healthy and a
/// re-run converges the rest.
#[test]
fn fault_lab_two_applies_at_once() {
    require_lab!();
    let lab = Lab::up("ft-two", "guide", "light");
    let on = with_psks(&lab, true, "");
    apply_ok(&lab, &on, &[]);
    let off = with_psks(&lab, false, "");

    // A run at its prompt (in a pty) holds the lock on every host.
    let mut first = meshup_in_pty(&lab, &format!("apply {}", path_str(&off)));
    let mut first_out = first.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = first_out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    wait_for("the first run's prompt", Duration::from_secs(60), || {
        while let Ok(chunk) = rx.try_recv() {
            shown.extend(chunk);
        }
        String::from_utf8_lossy(&shown).contains("Only 'yes' is accepted")
    });
    let before = configs(&lab);
    let plan = meshup(&lab, &["plan", path_str(&off)]);
    assert_eq!(plan.code, Some(1), "{}", plan.stdout);
    let second = meshup(&lab, &["apply", "--yes", path_str(&off)]);
    assert_eq!(second.code, Some(1), "{}", second.stdout);
    for h in ["node-a", "node-b", "node-c"] {
        let named =
            format!("{h}: ERROR: another meshup run holds the lock /run/meshup-wg0.lock: PID");
        assert!(
            plan.stdout.contains(&named) && plan.stdout.contains(", started by "),
            "{}",
            plan.stdout
        );
        assert!(
            recap_line(&second.stdout, h).contains("another meshup run holds the lock"),
            "{}",
            second.stdout
        );
    }
    assert_eq!(configs(&lab), before, "the second run changed nothing");
    first
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"yes\n")
        .expect("answer");
    let status = first.wait().expect("wait");
    while let Ok(chunk) = rx.try_recv() {
        shown.extend(chunk);
    }
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&shown)
    );
    assert_no_changes(&lab, &off);

    // Two applies at the same moment: one run changes every host, the other none (it
    // finds the hold, or nothing left to do once the first is through).
    let a = spawn_apply(&lab, &on);
    let b = spawn_apply(&lab, &on);
    let (_, a) = finish(a);
    let (_, b) = finish(b);
    let hosts = ["node-a", "node-b", "node-c"];
    let changed_all = |out: &str| hosts.iter().all(|h| recap_line(out, h).contains("changed"));
    let changed_none = |out: &str| {
        hosts.iter().all(|h| {
            let line = recap_line(out, h);
            line.contains("another meshup run holds") || line.contains(" ok")
        })
    };
    assert!(
        (changed_all(&a) && changed_none(&b)) || (changed_all(&b) && changed_none(&a)),
        "one run changes every host, the other none:\n{a}\n{b}"
    );
    assert_verify_healthy(&lab, &on);
    apply_ok(&lab, &on, &[]);
    assert_no_changes(&lab, &on);
    assert_verify_healthy(&lab, &on);
}

/// A timer's applies (one every second or so, as an operator's cron would run them, each
/// giving up when another run holds a host) overlap an operator's applies (with
/// `--wait-lock`) that add a node, switch preshared keys on and rotate a key. After each
/// of the operator's changes, verify is healthy and every pair's two hosts hold the same
/// preshared key on their live interfaces (compared by a hash made on each host).
#[test]
fn fault_lab_timer_and_operator_runs_overlap() {
    require_lab!();
    let lab = Lab::up("ft-timer", "guide", "light");
    let full = std::fs::read_to_string(with_psks(&lab, false, "")).expect("inventory");
    let without_c = match full.find("  - name: node-c\n") {
        Some(at) => full[..at].to_string(),
        None => panic!("node-c in the lab's inventory:\n{full}"),
    };
    let psks_on = full.replace("  preshared_keys: false\n", "  preshared_keys: true\n");
    let inv = lab.out_dir().join("timer.yaml");
    replace_file(&inv, &without_c);
    apply_ok(&lab, &inv, &[]);

    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the timer when the operator's part ends, also when it fails (the scope
    /// waits for the timer before it passes the failure on).
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let between_runs = std::sync::Mutex::new(());
    let (runs, held) = std::thread::scope(|scope| {
        let timer = scope.spawn(|| {
            let (mut runs, mut held) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // The operator's checks look at the mesh between runs: the timer waits.
                let guard = between_runs.lock().expect("between runs");
                let run = meshup(&lab, &["apply", "--yes", path_str(&inv)]);
                drop(guard);
                runs += 1;
                if run.stdout.contains("another meshup run holds") {
                    // Held: then it changed nothing at all (one run per mesh).
                    let recap = run.stdout.split("RECAP").nth(1).unwrap_or_default();
                    assert!(
                        !recap.contains("changed ("),
                        "a timer run that found a host held changed others:\n{}\n{}",
                        run.stdout,
                        run.stderr
                    );
                    held += 1;
                } else {
                    assert_eq!(
                        run.code,
                        Some(0),
                        "timer run\n{}\n{}",
                        run.stdout,
                        run.stderr
                    );
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            (runs, held)
        });
        let stopper = StopOnDrop(&stop);
        let operator = |what: &str, args: &[&str], hosts: &[&str]| {
            let mut all = args.to_vec();
            all.extend(["--yes", "--wait-lock", "120s", path_str(&inv)]);
            let run = meshup(&lab, &all);
            assert_eq!(run.code, Some(0), "{what}\n{}\n{}", run.stdout, run.stderr);
            // Between runs: a timer run that read the inventory before the operator
            // changed it may still apply the old one, and the next the new one; while
            // that one makes new preshared keys, the two hosts of a pair switch a few
            // ms apart. The mesh is checked when no run is under way.
            let _between = between_runs.lock().expect("between runs");
            assert_verify_healthy(&lab, &inv);
            if let Err(e) = std::panic::catch_unwind(|| assert_same_live_psks(&lab, hosts)) {
                // What the operator's run did, and what the timer's run now says.
                let now = meshup(&lab, &["plan", path_str(&inv)]);
                eprintln!(
                    "after {what}:\n{}\n{}\nplan now:\n{}",
                    run.stdout, run.stderr, now.stdout
                );
                std::panic::resume_unwind(e);
            }
        };
        replace_file(&inv, &full);
        operator("add node-c", &["apply"], &["node-a", "node-b", "node-c"]);
        replace_file(&inv, &psks_on);
        operator(
            "preshared keys on",
            &["apply"],
            &["node-a", "node-b", "node-c"],
        );
        operator(
            "rotate node-b",
            &["rotate", "--nodes", "node-b"],
            &["node-a", "node-b", "node-c"],
        );
        drop(stopper);
        timer.join().expect("timer")
    });
    eprintln!("timer: {runs} runs beside the operator's, {held} found a host held");
    assert!(runs >= 3, "the timer ran beside the operator ({runs} runs)");
    assert_same_live_psks(&lab, &["node-a", "node-b", "node-c"]);
    assert_no_changes(&lab, &inv);
}

/// A run that waits for another's hold (`--wait-lock`, as a timer's run would) while the
/// operator edits the inventory applies the edited inventory, not the one it read before
/// it waited: it notices the change once it holds every host, lets go and starts again.
/// Without that it would undo what the operator's run had just applied.
#[test]
fn fault_lab_inventory_edited_while_a_run_waits_is_applied_not_undone() {
    require_lab!();
    let lab = Lab::up("fl-edit", "guide", "light");
    let inv = lab.inventory();
    apply_ok(&lab, &inv, &[]);
    let text = std::fs::read_to_string(&inv).expect("read inventory");
    assert!(text.contains("  preshared_keys: true\n"), "{text}");
    // Another run's lock on node-b, until the test lets go of it.
    lab.host_exec(
        "node-b",
        "nohup flock -o /etc/wireguard/.meshup-wg0.lock sleep 300 >/dev/null 2>&1 & echo $! >/run/lock-holder.pid; sleep 0.5",
    )
    .expect_ok("hold the lock");
    let mut child = lab
        .ws_command(&[
            MESHUP,
            "apply",
            "--yes",
            "--wait-lock",
            "300s",
            path_str(&inv),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshup apply");
    let mut stdout = child.stdout.take().expect("stdout");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // The run has read the inventory and waits for node-b.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("waiting for another meshup run") => break,
            Ok(_) => {}
            Err(_) => panic!("the run never said it waits for node-b"),
        }
    }
    // The operator's edit, then the other run lets go.
    replace_file(
        &inv,
        &text.replace("  preshared_keys: true\n", "  preshared_keys: false\n"),
    );
    lab.host_exec("node-b", "kill \"$(cat /run/lock-holder.pid)\"")
        .expect_ok("release");
    let status = child.wait().expect("wait for meshup");
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("changed while this run took its hosts' holds: starting again"),
        "{stderr}"
    );
    for h in ["node-a", "node-b", "node-c"] {
        let live = lab
            .host_exec(h, "wg show wg0 preshared-keys")
            .expect_ok("wg show")
            .to_string();
        assert!(
            live.lines().all(|l| l.ends_with("(none)")) && live.lines().count() == 2,
            "{h}: the edited inventory (no preshared keys) was not applied:\n{live}\n{stdout}"
        );
    }
    assert_no_changes(&lab, &inv);
}

/// Replaces the inventory the way an editor saves it (a new file renamed over the old
/// one), so the timer's run reads the old or the new one, never a half-written file.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Every pair of `hosts` holds one preshared key (or none on both sides) on its live
/// interfaces: each host hashes what `wg show` says, the keys never leave it.
#[track_caller]
fn assert_same_live_psks(lab: &Lab, hosts: &[&str]) {
    let mut public = BTreeMap::new();
    let mut psk = BTreeMap::new();
    for h in hosts {
        let key = lab.host_exec(h, "wg show wg0 public-key");
        public.insert(*h, key.expect_ok("public key").trim().to_string());
        let out = lab.host_exec(
                h,
                "wg show wg0 preshared-keys | while read -r k p; do printf '%s %s\\n' \"$k\" \"$(printf %s \"$p\" | sha256sum | cut -c1-16)\"; done",
            );
        for line in out.expect_ok("preshared keys").lines() {
            if let Some((k, d)) = line.split_once(' ') {
                psk.insert((h.to_string(), k.to_string()), d.to_string());
            }
        }
    }
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let ab = psk.get(&(a.to_string(), public[b].clone()));
            let ba = psk.get(&(b.to_string(), public[a].clone()));
            assert!(
                ab.is_some() && ab == ba,
                "{a} and {b} hold different preshared keys ({ab:?} / {ba:?})"
            );
        }
    }
}

//! The remote scripts as files (`src/scripts/*.sh`): shellcheck-clean, and the verify
//! probe assembled from `probe.sh` runs for real under dash, bash and busybox sh.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meshup::verify::ping::PingError;
use meshup::verify::probe::{self, PingKind};
use meshup::verify::{
    Expectation, ExpectedNode, InterfaceName, NodeName, probe_script, probe_script_with, sections,
};

fn installed(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn name(s: &str) -> NodeName {
    s.parse().expect("valid test name")
}

/// Three nodes on loopback addresses, so every ping is answered by this machine: the
/// middle one (`b`) staggers towards `a`, pairs its mesh and DF pings, pings `a`'s IPv6
/// address and `c`'s probe address as single jobs.
fn loopback_mesh() -> Expectation {
    let node = |n: &str, i: u8, v6: bool, probe: Option<&str>| ExpectedNode {
        name: name(n),
        address: format!("127.0.0.{i}").parse().expect("ip"),
        address6: v6.then(|| "::1".parse().expect("ip")),
        nat: false,
        relay_role: false,
        hub: false,
        subnet_router: probe.is_some(),
        probe: probe.map(|p| p.parse().expect("ip")),
        mtu: 1420,
        listen_port: 51820,
        public_key: None,
        peers: Vec::new(),
        acl: None,
    };
    Expectation::new(
        "mu-none0".parse::<InterfaceName>().expect("if"),
        vec![
            node("a", 2, true, None),
            node("b", 3, true, None),
            node("c", 4, false, Some("127.0.0.5")),
        ],
    )
    .expect("valid expectation")
}

/// The shells the probe must run under, as `sh -s` would be called; a missing one is
/// skipped with a notice.
fn shells() -> Vec<&'static [&'static str]> {
    let all: [&'static [&'static str]; 3] =
        [&["dash", "-s"], &["bash", "-s"], &["busybox", "sh", "-s"]];
    all.into_iter()
        .filter(|shell| {
            let ok = installed(shell[0]);
            if !ok {
                eprintln!("{} not installed; skipped", shell[0]);
            }
            ok
        })
        .collect()
}

/// A fake command for a script test: `bin/NAME`, a `sh` script running `body`.
fn fake_tool(bin: &Path, name: &str, body: &str) {
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("tool");
    let _ = Command::new("chmod").arg("755").arg(&path).status();
}

/// Feeds `script` on stdin to `shell` with `TMPDIR` at `tmp`; returns stdout.
fn run(shell: &[&str], script: &str, tmp: &Path) -> String {
    let mut child = Command::new(shell[0])
        .args(&shell[1..])
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shell starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_loopback_probe(shell: &[&str], output: &str) {
    let probe = probe::parse(output).expect("probe output");
    assert!(probe.complete, "{shell:?}: no end marker\n{output}");
    assert_eq!(probe.node, "b", "{shell:?}");
    let got: Vec<(&str, PingKind, String, Option<u16>)> = probe
        .pings
        .iter()
        .map(|p| (p.target.as_str(), p.kind, p.address.to_string(), p.size))
        .collect();
    assert_eq!(
        got,
        [
            ("a", PingKind::Mesh, "127.0.0.2".to_owned(), None),
            ("a", PingKind::Mtu, "127.0.0.2".to_owned(), Some(1392)),
            ("a", PingKind::Mesh6, "::1".to_owned(), None),
            ("c", PingKind::Mesh, "127.0.0.4".to_owned(), None),
            ("c", PingKind::Mtu, "127.0.0.4".to_owned(), Some(1392)),
            ("c", PingKind::Probe, "127.0.0.5".to_owned(), None),
        ],
        "{shell:?}"
    );
    for ping in &probe.pings {
        // busybox sh runs its own ping applet, which has no `-M do`: the DF ping is
        // reported as unsupported there, and the mesh ping still stands.
        let unsupported = ping.kind == PingKind::Mtu
            && shell[0] == "busybox"
            && matches!(ping.result.errors[..], [PingError::Unsupported { .. }, ..]);
        assert!(
            unsupported || (ping.result.ok() && ping.result.exit == Some(0)),
            "{shell:?}: {ping:?}\n{output}"
        );
    }
    assert!(probe.now.is_some(), "{shell:?}");
    let kinds: Vec<&str> = sections::split(output).iter().map(|s| s.kind).collect();
    let expected_start = ["begin", "wg-dump-before", "link", "addr", "route", "route"];
    assert_eq!(kinds[..6], expected_start, "{shell:?}");
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["now", "wg-dump", "end"],
        "{shell:?}"
    );
}

fn assert_clean(shell: &[&str], tmp: &Path) {
    let left: Vec<_> = std::fs::read_dir(tmp)
        .expect("read tmp")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{shell:?} left {left:?}");
}

#[test]
fn verify_probe_runs_under_dash_bash_and_busybox() {
    let script = probe_script(&loopback_mesh(), &name("b")).expect("script");
    for shell in shells() {
        let tmp = tempfile::tempdir().expect("tmp");
        let output = run(shell, &script, tmp.path());
        assert_loopback_probe(shell, &output);
        let kinds: Vec<&str> = sections::split(&output).iter().map(|s| s.kind).collect();
        assert!(!kinds.contains(&"during"), "{shell:?}");
        assert_clean(shell, tmp.path());
    }
}

#[test]
fn verify_probe_runs_its_during_script_in_a_subshell_of_its_own() {
    // The during script sees the values, may clobber names and exit: the probe goes on.
    let during = "set +u\necho \"during on $MU_NODE\"\ncat\nmu_t=/nonexistent\nIFS=x\nexit 3";
    let script = probe_script_with(&loopback_mesh(), &name("b"), Some(during)).expect("script");
    for shell in shells() {
        let tmp = tempfile::tempdir().expect("tmp");
        let output = run(shell, &script, tmp.path());
        assert_loopback_probe(shell, &output);
        let all = sections::split(&output);
        let during = all
            .iter()
            .find(|s| s.kind == "during")
            .unwrap_or_else(|| panic!("{shell:?}: no during section\n{output}"));
        assert_eq!(
            during.body,
            ["during on b"],
            "{shell:?}: `cat` read nothing"
        );
        let kinds: Vec<&str> = all.iter().map(|s| s.kind).collect();
        let at = kinds.iter().position(|k| *k == "during").expect("during");
        assert_eq!(kinds[at - 1], "forwarding", "{shell:?}");
        assert_eq!(kinds[at + 1], "ping", "{shell:?}");
        assert_clean(shell, tmp.path());
    }
}

fn script_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("src/scripts")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    files.sort();
    files
}

#[test]
fn scripts_are_shellcheck_clean() {
    if !installed("shellcheck") {
        eprintln!("shellcheck not installed; skipped (CI installs it: tests/packages.txt)");
        return;
    }
    let files = script_files();
    assert!(files.iter().any(|f| f.ends_with("probe.sh")), "{files:?}");
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .args(&files)
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "shellcheck -s sh src/scripts/*.sh:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mu_sync_script` (the live reload) against a fake `wg` and `getent`: a DNS-name endpoint
/// is sent again only when the entry's live address is not one the name resolves to now;
/// an address endpoint is sent whenever it differs.
#[test]
fn a_live_reload_keeps_a_followed_dns_endpoint_and_sends_a_moved_one() {
    // (key, endpoint in the config, live endpoint); what getent answers is below.
    let peers = [
        // The watchdog followed node-b.lab.test to its new address: kept.
        ("KB", "node-b.lab.test:51820", "198.51.100.120:51820"),
        // The name does not resolve (a DNS outage): the live address is kept.
        ("KA", "node-a.lab.test:51820", "203.0.113.10:51820"),
        // The name points elsewhere now: sent, wg resolves it on the host.
        ("KD", "node-d.lab.test:51820", "203.0.113.14:51820"),
        // An address that differs: sent, as before.
        ("KE", "198.51.100.5:51820", "198.51.100.6:51820"),
        // The right address on another port: sent.
        ("KF", "node-b.lab.test:51821", "198.51.100.120:51820"),
    ];
    let mut conf = String::from("[Interface]\nListenPort = 51820\n");
    let mut dump = String::from("(hidden)\tPUB\t51820\toff\n");
    for (i, (key, endpoint, live)) in peers.iter().enumerate() {
        conf.push_str(&format!(
            "\n[Peer]\nPublicKey = {key}\nEndpoint = {endpoint}\nAllowedIPs = 10.10.0.{i}/32\n"
        ));
        dump.push_str(&format!(
            "{key}\t(none)\t{live}\t10.10.0.{i}/32\t0\t0\t0\toff\n"
        ));
    }
    for shell in shells() {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = tmp.path().display().to_string();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        std::fs::write(tmp.path().join("conf"), &conf).expect("conf");
        std::fs::write(tmp.path().join("dump"), &dump).expect("dump");
        for (tool, body) in [
            ("wg", format!("cat '{t}/dump'")),
            (
                "getent",
                "case $2 in\n\
                 node-b.lab.test) printf '198.51.100.120  STREAM node-b.lab.test\\n198.51.100.120  DGRAM\\n' ;;\n\
                 node-d.lab.test) printf '203.0.113.40    STREAM node-d.lab.test\\n' ;;\n\
                 *) exit 2 ;;\nesac"
                    .to_owned(),
            ),
        ] {
            fake_tool(&bin, tool, &body);
        }
        let script = format!(
            "MU_DIR='{t}' MU_IF=wg0 MU_RUNDIR='{t}'\n{}\nPATH='{t}/bin':$PATH\n\
             mu_sync_script '{t}/conf' '{t}/out' && cat '{t}/out'\n",
            meshup::scripts::APPLY_LIB
        );
        let out = run(shell, &script, tmp.path());
        assert_eq!(
            out.trim_end(),
            "wg set 'wg0' peer 'KD' endpoint 'node-d.lab.test:51820' \
             peer 'KE' endpoint '198.51.100.5:51820' peer 'KF' endpoint 'node-b.lab.test:51821'",
            "{shell:?}"
        );
    }
}

#[test]
fn a_flip_reads_the_instant_sent_after_it_said_ready_under_every_shell() {
    use std::io::{BufRead, BufReader};
    // What apply sends for a wave that agrees its instant (`phase::run_agreed`): the whole
    // script in one brace group, the instant only once the host said it is ready. The
    // steps after the wait are long, so a shell that ran the group before reading all of
    // it would take the instant for script text (or the script for the instant).
    let tail: String = (0..3000).map(|_| "mu_n=$((mu_n + 1))\n").collect();
    for (send, want) in [
        (
            Some("1796564710.125\n"),
            "instant 1796564710.125 after 3000",
        ),
        (None, "no instant, still go after 3000"),
    ] {
        for shell in shells() {
            let tmp = tempfile::tempdir().expect("tmp");
            let t = tmp.path().display().to_string();
            let script = format!(
                "{{\nMU_DIR='{t}' MU_IF=wg0 MU_RUNDIR='{t}'\n{}\nmu_flip_at=go mu_n=0\n\
                 if mu_instant; then r=\"instant $mu_flip_at\"; else r=\"no instant, still $mu_flip_at\"; fi\n\
                 {tail}echo \"$r after $mu_n\"\n}}\n",
                meshup::scripts::APPLY_LIB
            );
            let mut child = Command::new(shell[0])
                .args(&shell[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("shell starts");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(script.as_bytes()).expect("write script");
            let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
            let mut line = String::new();
            // The ready line carries the host's clock (clocks.rs reads it).
            while !line.starts_with("@@meshup:ready:") {
                line.clear();
                assert!(
                    stdout.read_line(&mut line).expect("read") > 0,
                    "{shell:?}: ended before it said ready"
                );
            }
            let stamp = line.trim_end().trim_start_matches("@@meshup:ready:");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs_f64();
            // busybox's date has no %N ("EPOCH.%N"): apply then takes the clock as it is.
            let secs: f64 = stamp.split('.').next().unwrap_or("").parse().unwrap_or(0.0);
            assert!(
                (secs - now).abs() < 5.0,
                "{shell:?}: ready with its clock: {line:?}"
            );
            if let Some(instant) = send {
                stdin.write_all(instant.as_bytes()).expect("write instant");
            }
            drop(stdin);
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut rest).expect("rest");
            assert!(child.wait().expect("wait").success(), "{shell:?}");
            assert_eq!(rest.trim_end(), want, "{shell:?}");
        }
    }
}

#[test]
fn routes_follow_the_allowed_nets_with_no_process_per_covered_peer() {
    // Allowed nets: two peers inside the interface's subnet (the kernel's route covers
    // them: no `ip` call), a routed subnet that has its route, a peer outside the subnet
    // with its host route (ip lists it without /32: kept), one without a route yet, an
    // IPv6 peer (asked of ip), the exit's default (never routed here).
    let allowed = "KA\t10.10.0.2/32\n\
                   KB\t10.10.0.3/32 10.20.0.0/16\n\
                   KC\t192.0.2.9/32\n\
                   KD\t10.30.0.5/32 fd00::2/128\n\
                   KE\t0.0.0.0/0\n\
                   KF\t(none)\n";
    let routes4 = "10.10.0.0/24 proto kernel scope link src 10.10.0.1\n\
                   10.20.0.0/16 scope link\n\
                   192.0.2.9 scope link\n\
                   10.99.0.7 scope link\n";
    let routes6 = "fe80::/64 proto kernel metric 256 pref medium\n\
                   fd00::9 metric 1024 pref medium\n";
    for shell in shells() {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = tmp.path().display().to_string();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        std::fs::write(tmp.path().join("allowed"), allowed).expect("allowed");
        std::fs::write(tmp.path().join("routes4"), routes4).expect("routes4");
        std::fs::write(tmp.path().join("routes6"), routes6).expect("routes6");
        fake_tool(&bin, "wg", &format!("cat '{t}/allowed'"));
        // `ip` as a function: busybox sh runs its own applet before any in PATH.
        let script = format!(
            "MU_DIR='{t}' MU_IF=wg0 MU_RUNDIR='{t}'\n{}\nPATH='{t}/bin':$PATH\n\
             ip() {{\ncase \"$*\" in\n\
             '-4 route show dev wg0') cat '{t}/routes4' ;;\n\
             '-6 route show dev wg0') cat '{t}/routes6' ;;\n\
             *) echo \"$*\" >>'{t}/log' ;;\nesac\n}}\nmu_sync_routes\n",
            meshup::scripts::APPLY_LIB
        );
        run(shell, &script, tmp.path());
        let log = std::fs::read_to_string(tmp.path().join("log")).unwrap_or_default();
        assert_eq!(
            log,
            "-4 route show dev wg0 match 10.30.0.5/32\n\
             -4 route add 10.30.0.5/32 dev wg0\n\
             -6 route show dev wg0 match fd00::2/128\n\
             -6 route add fd00::2/128 dev wg0\n\
             -4 route del 10.99.0.7 dev wg0\n\
             -6 route del fd00::9 dev wg0\n",
            "{shell:?}"
        );
    }
}

#[test]
fn settle_renews_an_entry_with_its_endpoint_allowed_ips_keepalive_and_preshared_key() {
    // `wg show wg0 dump`: the interface line, then one line per peer.
    let dump = "PRIV\tPUB\t51820\toff\n\
                KA\t(none)\t203.0.113.2:51820\t10.10.0.2/32\t0\t0\t0\toff\n\
                KB\tPSKB\t198.51.100.7:40001\t10.10.0.3/32,10.20.0.0/16\t1796560000\t92\t148\t25\n";
    for shell in shells() {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = tmp.path().display().to_string();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        std::fs::write(tmp.path().join("dump"), dump).expect("dump");
        // `wg set` logs its arguments and what the preshared-key file held then.
        fake_tool(
            &bin,
            "wg",
            &format!(
                "case \"$1 $2 $3\" in\n'show wg0 dump') cat '{t}/dump' ;;\n\
                 'set wg0 '*) shift 2; echo \"$*\" >>'{t}/log'\n\
                 while [ $# -gt 0 ]; do [ \"$1\" = preshared-key ] && {{ cat \"$2\"; stat -c %a \"$2\"; }} >>'{t}/log'; shift; done ;;\n\
                 *) exit 1 ;;\nesac"
            ),
        );
        let script = format!(
            "MU_IF=wg0 MU_RUNDIR='{t}' MU_WARM='' MU_WARM_DEADLINE=1\n{}\nPATH='{t}/bin':$PATH\n\
             mu_renew 10.10.0.3 && echo renewed-b\nmu_renew 10.10.0.2 && echo renewed-a\n\
             mu_renew 10.10.0.9 || echo none-for-9\nls -A '{t}' | grep -c meshup-settle-psk\n",
            meshup::scripts::SETTLE
        );
        let out = run(shell, &script, tmp.path());
        assert_eq!(
            out, "@@meshup:done:settle\nrenewed-b\nrenewed-a\nnone-for-9\n0\n",
            "{shell:?}"
        );
        let log = std::fs::read_to_string(tmp.path().join("log")).expect("log");
        let psk = format!("{t}/.meshup-settle-psk.");
        let lines: Vec<String> = log
            .lines()
            .map(|l| {
                // The file's name carries the shell's PID.
                l.split(' ')
                    .map(|w| if w.starts_with(&psk) { "PSKFILE" } else { w })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            lines,
            [
                "peer KB remove peer KB preshared-key PSKFILE endpoint 198.51.100.7:40001 \
                 allowed-ips 10.10.0.3/32,10.20.0.0/16 persistent-keepalive 25",
                "PSKB",
                "600",
                "peer KA remove peer KA endpoint 203.0.113.2:51820 allowed-ips 10.10.0.2/32",
            ],
            "{shell:?}"
        );
    }
}

//! `verify` names secret and key mismatches made by hand on real hosts (issue #25): two
//! sides of a pair holding different preshared keys (in their files and live, or live
//! only), and peers holding a public key their node no longer runs. `apply` (or the
//! reload verify names) repairs each, and no key made by hand, nor the one apply makes,
//! ever shows in what meshup prints.
use std::time::{Duration, Instant};

use crate::support_lab::{Lab, Run, apply_ok, assert_no_changes, meshup, path_str};
use crate::verify_cli::lab::diagnoses;

/// The guide's peer-entry settings of `peer_key` on a host, re-added after the entry is
/// removed: a removed entry drops its session, so the next handshake uses what the
/// entry now holds (`psk`: a key file, or /dev/null for none). The dump's columns (the
/// old preshared key among them) only ever live in this shell's variables.
fn readd_peer(peer_key: &str, psk: &str) -> String {
    format!(
        "set -e; k='{peer_key}'; line=$(wg show wg0 dump | awk -F'\\t' -v k=\"$k\" '$1 == k'); \
         ep=$(printf '%s\\n' \"$line\" | cut -f3); ips=$(printf '%s\\n' \"$line\" | cut -f4); \
         ka=$(printf '%s\\n' \"$line\" | cut -f8); line=; \
         wg set wg0 peer \"$k\" remove; \
         if [ \"$ep\" = '(none)' ]; then \
           wg set wg0 peer \"$k\" preshared-key '{psk}' allowed-ips \"$ips\" persistent-keepalive \"$ka\"; \
         else \
           wg set wg0 peer \"$k\" preshared-key '{psk}' endpoint \"$ep\" allowed-ips \"$ips\" persistent-keepalive \"$ka\"; \
         fi"
    )
}

#[track_caller]
fn host(lab: &Lab, name: &str, cmd: &str) -> String {
    lab.host_exec(name, cmd).expect_ok(cmd).trim().to_owned()
}

/// Every meshup run of the test, to look for leaked keys in at the end.
#[derive(Default)]
struct Outputs(Vec<Run>);

impl Outputs {
    fn run(&mut self, lab: &Lab, args: &[&str]) -> Run {
        let inventory = lab.inventory();
        let mut argv = args.to_vec();
        argv.push(path_str(&inventory));
        let run = meshup(lab, &argv);
        self.0.push(Run {
            code: run.code,
            stdout: run.stdout.clone(),
            stderr: run.stderr.clone(),
        });
        run
    }

    fn apply(&mut self, lab: &Lab) {
        let run = apply_ok(lab, &lab.inventory(), &[]);
        self.0.push(run);
    }

    /// Verifies until healthy (a repaired pair may need a WireGuard handshake cycle).
    #[track_caller]
    fn verify_healthy(&mut self, lab: &Lab, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let run = self.run(lab, &["verify"]);
            if run.ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: verify never healthy\n{}\n{}",
                run.stdout,
                run.stderr
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// A broken mesh: exit 1 in text and JSON (with `-vv`: the most meshup prints);
    /// the text report and every diagnosis.
    #[track_caller]
    fn verify_fault(&mut self, lab: &Lab, what: &str) -> (String, Vec<serde_json::Value>) {
        let text = self.run(lab, &["verify"]);
        assert_eq!(text.code, Some(1), "{what}: exit 1\n{}", text.stdout);
        let json = self.run(lab, &["verify", "--format", "json", "-vv"]);
        assert_eq!(json.code, Some(1), "{what}: exit 1 (json)\n{}", json.stdout);
        eprintln!("{what}:\n{}", text.stdout);
        let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("verify JSON");
        (text.stdout, diagnoses(&report))
    }

    #[track_caller]
    fn assert_never_shown(&self, what: &str, secret: &str) {
        assert_eq!(secret.len(), 44, "{what} is a key");
        for run in &self.0 {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{what} shown by meshup"
            );
        }
    }
}

#[test]
fn lab_verify_names_a_psk_mismatch_and_an_old_public_key_made_by_hand() {
    require_lab!();
    let lab = Lab::up("vm-secrets", "guide", "light");
    let mut out = Outputs::default();
    out.apply(&lab);
    out.verify_healthy(&lab, "after apply");
    let key = |h: &str| host(&lab, h, "wg show wg0 public-key");
    let (key_a, key_c) = (key("node-a"), key("node-c"));

    // 1. node-c gets another preshared key for node-a, in its file and live.
    host(
        &lab,
        "node-c",
        "umask 077; wg genpsk >/etc/wireguard/wg0/psk-node-a.key",
    );
    let hand_psk = host(&lab, "node-c", "cat /etc/wireguard/wg0/psk-node-a.key");
    host(
        &lab,
        "node-c",
        &readd_peer(&key_a, "/etc/wireguard/wg0/psk-node-a.key"),
    );
    let (text, found) = out.verify_fault(&lab, "PSK of node-c changed");
    assert!(
        text.contains("preshared keys of node-a and node-c differ: run apply"),
        "{text}"
    );
    assert!(!text.contains("no specific cause"), "{text}");
    assert!(
        found
            .iter()
            .any(|d| d["kind"] == "psk_mismatch" && d["a"] == "node-a" && d["b"] == "node-c"),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|d| d["kind"] == "psk_mismatch" && (d["a"] == "node-b" || d["b"] == "node-b")),
        "node-b's pairs keep their keys: {found:?}"
    );
    // The plan sees the files differ and makes the pair a new key.
    let plan = out.run(&lab, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(2), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("node-a holds a different preshared key for this pair")
            || plan
                .stdout
                .contains("node-c holds a different preshared key for this pair"),
        "{}",
        plan.stdout
    );
    out.apply(&lab);
    out.verify_healthy(&lab, "PSK repaired by apply");
    assert_no_changes(&lab, &lab.inventory());
    let made_by_apply = host(&lab, "node-a", "cat /etc/wireguard/wg0/psk-node-c.key");
    assert_eq!(
        made_by_apply,
        host(&lab, "node-c", "cat /etc/wireguard/wg0/psk-node-a.key"),
        "both sides hold apply's new key"
    );
    assert_ne!(made_by_apply, hand_psk);

    // 2. node-a's interface drops the preshared key with node-c; its file still agrees
    //    with node-c's. Only the live digests show it (apply's plan does not compare
    //    live preshared keys), and the reload verify names repairs it.
    host(&lab, "node-a", &readd_peer(&key_c, "/dev/null"));
    let (text, found) = out.verify_fault(&lab, "node-a runs no PSK with node-c");
    assert!(
        text.contains(
            "node-c uses a preshared key with node-a, node-a uses none: node-a's interface does not run the preshared key in its key file; reload its config there (`wg syncconf <if> <(wg-quick strip <if>)` on node-a)"
        ),
        "{text}"
    );
    assert!(
        found.iter().any(|d| d["kind"] == "psk_mismatch"
            && d["only"] == "node-c"
            && d["live_not_file"] == serde_json::json!(["node-a"])),
        "node-c's live key hashes like its file: {found:?}"
    );
    host(
        &lab,
        "node-a",
        "bash -c 'wg syncconf wg0 <(wg-quick strip wg0 2>/dev/null)'",
    );
    out.verify_healthy(&lab, "node-a reloaded");

    // 3. node-b's key pair replaced by hand: its interface and files agree, its peers
    //    still hold the old public key.
    host(
        &lab,
        "node-b",
        "cd /etc/wireguard/wg0 && umask 077 && wg genkey >private.key && wg pubkey <private.key >public.key && wg set wg0 private-key private.key",
    );
    let hand_private = host(&lab, "node-b", "cat /etc/wireguard/wg0/private.key");
    let new_b = key("node-b");
    let (text, found) = out.verify_fault(&lab, "node-b's key pair replaced");
    for holder in ["node-a", "node-c"] {
        let line = format!(
            "{holder} holds an old public key for node-b (node-b's key is now {}…): run apply",
            &new_b[..10]
        );
        assert!(text.contains(&line), "{line}\n{text}");
        assert!(
            found.iter().any(|d| d["kind"] == "peer_key_drift"
                && d["on"] == holder
                && d["peer"] == "node-b"),
            "{found:?}"
        );
    }
    assert!(
        !found.iter().any(|d| d["kind"] == "key_drift"),
        "node-b runs the key of its file: {found:?}"
    );
    assert!(!text.contains("no specific cause"), "{text}");
    out.apply(&lab);
    out.verify_healthy(&lab, "key repaired by apply");
    assert_no_changes(&lab, &lab.inventory());

    // Hard rules 1 and 2: none of these keys in anything meshup printed.
    out.assert_never_shown("the hand-made preshared key", &hand_psk);
    out.assert_never_shown("apply's preshared key", &made_by_apply);
    out.assert_never_shown("node-b's hand-made private key", &hand_private);
    lab.down();
}

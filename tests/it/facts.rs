//! Fact parsers against captured output (tests/fixtures/facts), the gather script
//! against real shells, and a no-panic property for `facts::parse`.

use std::path::{Path, PathBuf};
use std::process::Command;

use meshup::facts::{
    self, FirewalldFacts, FirewalldZone, GatherParams, InterfaceAddresses, InterfaceRoutes,
    IptablesChain, KeyFileState, NftablesFacts, OsRelease, Sections, UfwFacts, WgDump,
};

fn fixture(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn params(dir: &str, peers: &[&str]) -> GatherParams {
    let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    GatherParams::new("wg0", dir, 51820, &peers).expect("valid params")
}

// ---- section splitting ------------------------------------------------------------

#[test]
fn sections_split_markers_status_and_escaping() {
    let out = "@@meshup:gather:v1\n\
               @@meshup:section:a\nline 1\n@@@meshup:section:evil\n@@@@@x\n@@meshup:status:a:0\n\
               @@meshup:section:b\n@@meshup:status:b:127\n\
               @@meshup:section:c\npartial\n";
    let s = Sections::split(out);
    assert!(s.has_header);
    assert!(!s.complete, "no done marker: cut off");
    let a = s.get("a").expect("a");
    assert_eq!(a.body, "line 1\n@@meshup:section:evil\n@@@@x");
    assert_eq!(a.status, Some(0));
    assert!(s.get("evil").is_none(), "escaped body line is not a marker");
    assert_eq!(s.get("b").map(|b| b.status), Some(Some(127)));
    assert_eq!(
        s.get("c").map(|c| (c.body.as_str(), c.status)),
        Some(("partial", None))
    );
}

#[test]
fn parse_rejects_output_without_markers() {
    let err = facts::parse("sh: 1: syntax error\n").expect_err("not gather output");
    assert!(
        err.to_string().contains("not meshup gather output"),
        "{err}"
    );
}

#[test]
fn parse_of_header_only_gives_defaults_and_lists_missing_sections() {
    let f = facts::parse("@@meshup:gather:v1\n").expect("header is enough");
    assert!(!f.complete);
    assert_eq!(
        f.missing_sections.len(),
        facts::SECTION_NAMES.len() - facts::OPTIONAL_SECTIONS.len()
    );
    assert_eq!(f.os_release, OsRelease::default());
    assert!(!f.interface_up());
}

// ---- gather params and script -------------------------------------------------------

#[test]
fn gather_params_are_validated() {
    let ok = |i: &str, d: &str, p: u16, peers: &[&str]| {
        let peers: Vec<String> = peers.iter().map(|s| s.to_string()).collect();
        GatherParams::new(i, d, p, &peers).is_ok()
    };
    let cases: [(&str, &str, u16, &[&str], bool); 9] = [
        ("wg0", "/etc/wireguard", 51820, &["node-b"], true),
        ("wg-mesh.1", "/srv/wg/", 1, &[], true),
        ("", "/etc/wireguard", 51820, &[], false),
        ("wg0;rm -rf /", "/etc/wireguard", 51820, &[], false),
        ("sixteen-chars-xx", "/etc/wireguard", 51820, &[], false),
        ("wg0", "etc/wireguard", 51820, &[], false),
        ("wg0", "/etc/wire\nguard", 51820, &[], false),
        ("wg0", "/etc/wireguard", 0, &[], false),
        ("wg0", "/etc/wireguard", 51820, &["Node B"], false),
    ];
    for (i, d, p, peers, expected) in cases {
        assert_eq!(ok(i, d, p, peers), expected, "{i:?} {d:?} {p} {peers:?}");
    }
}

#[test]
fn gather_script_quotes_parameters() {
    let script = facts::gather_script(&params("/srv/my wg", &["node-b", "node-c"]));
    assert!(script.starts_with(
        "{\nMU_IF=wg0\nMU_DIR='/srv/my wg'\nMU_PORT=51820\nMU_PEERS='node-b node-c'\n"
    ));
    assert!(script.contains("mu_mark gather:v1"));
    // A fresh marker token per gather: 16 hex digits, never the same twice.
    let mark = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("MU_MARK="))
            .map(str::to_owned)
            .expect("MU_MARK")
    };
    let first = mark(&script);
    assert!(first.len() == 16 && first.bytes().all(|b| b.is_ascii_hexdigit()));
    let again = facts::gather_script(&params("/srv/my wg", &["node-b", "node-c"]));
    assert_ne!(mark(&again), first);
}

/// A host text that tries to pass for a marker stays body text: a line starting with
/// `@@meshup:`, and one made like the script's own marker before its sed turns it into
/// one (a control character, a token, a colon) but without this gather's token.
#[test]
fn gather_body_lines_never_pass_for_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("wg0.conf");
    std::fs::write(
        &conf,
        "[Interface]\n@@meshup:done\n\u{1}0123456789abcdef:section:keys\nListenPort = 51820\n",
    )
    .expect("write");
    let dir_str = dir.path().to_str().expect("utf8");
    for shell in shells() {
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .args(["-c", &facts::gather_script(&params(dir_str, &["node-b"]))])
            .output()
            .expect("run");
        let out = String::from_utf8_lossy(&out.stdout).to_string();
        let sections = facts::Sections::split(&out);
        assert!(sections.complete, "{shell:?}: {out}");
        let config = &sections.sections["config"];
        assert!(
            config.body.contains("@@meshup:done")
                && config.body.contains("\u{1}0123456789abcdef:section:keys"),
            "{shell:?}: {}",
            config.body
        );
        assert!(sections.sections.contains_key("keys"), "{shell:?}");
    }
}

fn shells() -> Vec<Vec<&'static str>> {
    let mut out = vec![vec!["sh"]];
    for (bin, args) in [
        ("dash", vec!["dash"]),
        ("bash", vec!["bash", "--posix"]),
        ("busybox", vec!["busybox", "sh"]),
    ] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .output()
            .is_ok_and(|o| o.status.success())
        {
            out.push(args);
        }
    }
    out
}

#[test]
fn gather_script_is_valid_for_every_available_shell() {
    let script = facts::gather_script(&params("/etc/wireguard", &["node-b"]));
    for shell in shells() {
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .args(["-n", "-c", &script])
            .output()
            .expect("shell runs");
        assert!(
            out.status.success(),
            "{shell:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn wg(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut child = Command::new("wg")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wg runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wg output");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// Runs the real gather script (each available shell) on a temp config dir with real
/// keys and checks redaction: no secret crosses, tokens name the right files.
#[test]
fn real_gather_redacts_secrets_on_every_shell() {
    if !have("wg") {
        eprintln!("SKIP: wireguard-tools not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let private = wg(&["genkey"], None);
    let public = wg(&["pubkey"], Some(&private));
    let psk_b = wg(&["genpsk"], None);
    let stray_psk = wg(&["genpsk"], None);
    let peer_pub = wg(&["pubkey"], Some(&wg(&["genkey"], None)));
    std::fs::write(d.join("private.key"), format!("{private}\n")).expect("write");
    std::fs::write(d.join("public.key"), format!("{public}\n")).expect("write");
    std::fs::write(d.join("psk-node-b.key"), format!("{psk_b}\n")).expect("write");
    std::fs::write(d.join("psk-node-c.key"), "garbage\n").expect("write");
    let conf = format!(
        "[Interface]\nPrivateKey = {private}\nListenPort = 51820\n\
         PostUp = echo {private} > /dev/null # secret pasted elsewhere\n\n\
         [Peer]\nPublicKey = {peer_pub}\npresharedkey={psk_b}\nAllowedIPs = 10.0.0.2/32\n\n\
         [Peer]\nPublicKey = {peer_pub}\nPresharedKey = {stray_psk} # comment\nAllowedIPs = 10.0.0.3/32\n"
    );
    std::fs::write(d.join("wg0.conf"), conf).expect("write");
    let dir_str = d.to_str().expect("utf8 path");
    let script = facts::gather_script(&params(dir_str, &["node-b", "node-c", "node-d"]));
    for shell in shells() {
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .args(["-c", &script])
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for secret in [&private, &psk_b, &stray_psk] {
            assert!(
                !text.contains(secret.as_str()),
                "{shell:?} leaked a secret:\n{text}"
            );
        }
        let f = facts::parse(&text).expect("parses");
        assert!(f.complete, "{shell:?}: {text}");
        assert_eq!(f.keys.private_key, KeyFileState::Valid);
        assert_eq!(
            f.keys.public_key().map(|k| k.to_string()),
            Some(public.clone())
        );
        assert!(f.keys.public_key_matches());
        assert_eq!(f.keys.psks.get("node-b"), Some(&KeyFileState::Valid));
        assert_eq!(f.keys.psks.get("node-c"), Some(&KeyFileState::Invalid));
        assert_eq!(
            f.keys.psks.get("node-d"),
            None,
            "absent (the default) is not kept"
        );
        assert_eq!(f.files.psk_files, vec!["psk-node-b.key", "psk-node-c.key"]);
        assert!(f.config.present && f.files.config && !f.files.backup);
        let expected = format!(
            "[Interface]\nPrivateKey = <secret:private.key>\nListenPort = 51820\n\
             PostUp = echo <secret:private.key> > /dev/null # secret pasted elsewhere\n\n\
             [Peer]\nPublicKey = {peer_pub}\npresharedkey = <secret:psk-node-b.key>\nAllowedIPs = 10.0.0.2/32\n\n\
             [Peer]\nPublicKey = {peer_pub}\nPresharedKey = <secret:unknown>\nAllowedIPs = 10.0.0.3/32\n"
        );
        assert_eq!(f.config.text, expected, "{shell:?}");
    }
}

#[test]
fn real_gather_on_a_fresh_dir_reports_absence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("none");
    let script = facts::gather_script(&params(missing.to_str().expect("utf8"), &["node-b"]));
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("run");
    let f = facts::parse(&String::from_utf8_lossy(&out.stdout)).expect("parses");
    assert!(f.complete && f.missing_sections.is_empty());
    assert!(!f.files.config_dir && !f.config.present && f.config.text.is_empty());
    assert_eq!(f.keys.private_key, KeyFileState::Absent);
    assert_eq!(
        f.keys.psks.get("node-b"),
        None,
        "absent (the default) is not kept"
    );
    assert!(!f.os_release.id.is_empty());
}

// ---- captured full gather runs ----------------------------------------------------

fn gather_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/facts/gather");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn captured_gather_runs_snapshot() {
    for path in gather_fixtures() {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("read");
        let parsed = facts::parse(&text).expect("parses");
        assert!(parsed.complete, "{name}");
        assert!(
            parsed.missing_sections.is_empty(),
            "{name}: {:?}",
            parsed.missing_sections
        );
        insta::assert_yaml_snapshot!(format!("gather-{name}"), parsed);
    }
}

#[test]
fn captured_debian_ufw_run_key_facts() {
    let f =
        facts::parse(&fixture("facts/gather/real-debian12-ufw-active-dash.txt")).expect("parses");
    assert_eq!(f.os_release.id, "debian");
    assert_eq!(f.os_release.version_id.as_deref(), Some("12"));
    assert_eq!(f.package_managers(), vec![facts::PackageManager::AptGet]);
    assert!(!f.init.systemd);
    assert!(!f.wireguard.kernel_support());
    assert!(f.wireguard.can_run(), "wireguard-go + tun");
    assert_eq!(f.wireguard.tools_version(), Some("1.0.20210914"));
    assert!(f.keys.public_key_matches());
    assert!(f.interface_up());
    assert_eq!(f.wg_dump.peers.len(), 3);
    assert!(f.wg_dump.peers.iter().all(|p| p.preshared_key_set));
    assert_eq!(
        f.addresses.global(),
        vec!["10.10.0.1/24".parse().expect("net")]
    );
    assert!(
        f.routes
            .unicast_destinations()
            .contains(&"192.168.3.0/24".parse().expect("net"))
    );
    assert!(
        f.config
            .text
            .contains("PresharedKey = <secret:psk-node-b.key>")
    );
    assert!(f.config.text.contains("PresharedKey = <secret:unknown>"));
    assert!(f.firewall.ufw.active && f.firewall.ufw.allows_udp(51820));
    assert!(f.firewall.ufw.allows_forward("wg0"));
    assert!(!f.firewall.firewalld.running && f.firewall.firewalld.installed);
    assert!(
        f.firewall
            .nftables
            .tables
            .iter()
            .all(|t| t.iptables_managed)
    );
    assert_eq!(f.forward.ipv4, Some(false));
}

// ---- per-fact fixtures (table style) ------------------------------------------------

#[test]
fn ufw_fixtures() {
    // (fixture, active, allows 51820/udp, allows 51821/udp, forwards wg0, rules)
    let cases = [
        ("real-active-closed", true, false, false, false, 2),
        ("real-active-open", true, true, false, true, 6),
        ("real-inactive", false, false, false, false, 0),
    ];
    for (name, active, open, other, fwd, rules) in cases {
        let u = UfwFacts::parse(&fixture(&format!("facts/ufw/{name}.txt")));
        assert_eq!(
            (
                u.active,
                u.allows_udp(51820),
                u.allows_udp(51821),
                u.allows_forward("wg0"),
                u.rules.len()
            ),
            (active, open, other, fwd, rules),
            "{name}: {u:?}"
        );
    }
    let u = UfwFacts::parse(&fixture("facts/ufw/real-active-open.txt"));
    assert_eq!(u.default_incoming.as_deref(), Some("deny"));
    assert_eq!(u.default_routed.as_deref(), Some("disabled"));
    assert_eq!(u.rules[1].to, "51820/udp");
    assert_eq!(u.rules[1].action, "ALLOW IN");
}

#[test]
fn ufw_rule_forms() {
    let status = |rule: &str| {
        format!(
            "Status: active\nDefault: deny (incoming), allow (outgoing), deny (routed)\n\nTo Action From\n-- ------ ----\n{rule}\n"
        )
    };
    let cases = [
        ("51820                      ALLOW IN    Anywhere", true),
        ("51000:52000/udp            ALLOW IN    Anywhere", true),
        ("51820/tcp                  ALLOW IN    Anywhere", false),
        ("51820/udp                  DENY IN     Anywhere", false),
        ("51820/udp on eth0          ALLOW IN    Anywhere", true),
        ("WireGuard                  ALLOW IN    Anywhere", false),
    ];
    for (rule, open) in cases {
        assert_eq!(
            UfwFacts::parse(&status(rule)).allows_udp(51820),
            open,
            "{rule}"
        );
    }
}

#[test]
fn nftables_fixtures() {
    // (fixture, restrictive input chains, missing port 51820, missing forward wg0)
    let cases = [
        ("real-inet-filter-drop-closed", 1, 1, 1),
        ("real-inet-filter-drop-open", 1, 0, 0),
        ("real-iptables-nft-managed", 0, 0, 0),
        ("real-empty", 0, 0, 0),
    ];
    for (name, restrictive, missing, missing_fwd) in cases {
        let n = NftablesFacts::parse(&fixture(&format!("facts/nftables/{name}.txt")));
        assert_eq!(
            (
                n.restrictive_chains("input").len(),
                n.chains_missing_port(51820).len(),
                n.chains_missing_forward("wg0").len()
            ),
            (restrictive, missing, missing_fwd),
            "{name}: {n:#?}"
        );
    }
    let n = NftablesFacts::parse(&fixture("facts/nftables/real-inet-filter-drop-closed.txt"));
    let input = &n.tables[0].chains[0];
    assert_eq!(
        (n.tables[0].family.as_str(), n.tables[0].name.as_str()),
        ("inet", "filter")
    );
    assert_eq!(input.hook.as_deref(), Some("input"));
    assert_eq!(input.policy.as_deref(), Some("drop"));
    assert_eq!(input.priority.as_deref(), Some("filter"));
    assert_eq!(input.rules.len(), 4);
    let managed = NftablesFacts::parse(&fixture("facts/nftables/real-iptables-nft-managed.txt"));
    assert!(managed.tables[0].iptables_managed);
}

#[test]
fn nftables_rule_forms() {
    let ruleset = |rules: &str| {
        format!(
            "table inet fw {{\n\tset allowed {{\n\t\ttype inet_service\n\t\telements = {{ 22, 80 }}\n\t}}\n\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n{rules}\n\t}}\n\n\tchain wan {{\n\t\tudp dport 51820 accept\n\t}}\n}}\n"
        )
    };
    // (rules, restrictive, 51820 accepted)
    let cases = [
        (
            "\t\ttcp dport 22 accept\n\t\tcounter packets 3 bytes 180 drop",
            true,
            false,
        ),
        (
            "\t\tudp dport { 53, 51820 } accept\n\t\treject with icmpx type port-unreachable",
            true,
            true,
        ),
        (
            "\t\tudp dport 51000-52000 counter accept\n\t\tdrop",
            true,
            true,
        ),
        ("\t\tdrop\n\t\tudp dport 51820 accept", true, false),
        (
            "\t\tip saddr 10.0.0.1 udp dport 51820 accept\n\t\tdrop",
            true,
            false,
        ),
        ("\t\tiifname \"eth0\" jump wan\n\t\tdrop", true, true),
        ("\t\ttcp dport 22 accept", false, true),
    ];
    for (rules, restrictive, accepted) in cases {
        let n = NftablesFacts::parse(&ruleset(rules));
        assert_eq!(n.tables[0].chains.len(), 2, "sets are skipped: {n:#?}");
        assert_eq!(
            !n.restrictive_chains("input").is_empty(),
            restrictive,
            "{rules}"
        );
        assert_eq!(n.chains_missing_port(51820).is_empty(), accepted, "{rules}");
    }
}

#[test]
fn iptables_fixtures() {
    // (fixture, restrictive, accepts 51820/udp, accepts forward from wg0)
    let cases = [
        ("real-input-drop-closed", true, false, false),
        ("real-input-drop-open", true, true, false),
        ("real-input-reject-rule", true, false, false),
        ("real-forward-open", false, false, true),
    ];
    for (name, restrictive, open, fwd) in cases {
        let c = IptablesChain::parse(&fixture(&format!("facts/iptables/{name}.txt")));
        assert_eq!(
            (
                c.restrictive(),
                c.accepts_udp(51820),
                c.accepts_forward("wg0")
            ),
            (restrictive, open, fwd),
            "{name}: {c:?}"
        );
    }
    let c = IptablesChain::parse(
        "-P INPUT ACCEPT\n-A INPUT -j REJECT\n-A INPUT -p udp -m udp --dport 51820 -j ACCEPT\n",
    );
    assert!(
        !c.accepts_udp(51820),
        "an accept after a catch-all reject is dead"
    );
    let c = IptablesChain::parse(
        "-P INPUT DROP\n-A INPUT -p udp -m multiport --dports 53,51000:52000 -j ACCEPT\n",
    );
    assert!(c.accepts_udp(51820));
}

#[test]
fn firewalld_fixtures() {
    assert!(FirewalldFacts::parse_state(&fixture(
        "facts/firewalld/docs-state-running.txt"
    )));
    assert!(!FirewalldFacts::parse_state(&fixture(
        "facts/firewalld/real-state-no-dbus.txt"
    )));
    assert!(!FirewalldFacts::parse_state("not running\n"));
    // (docs-derived fixture, zone, allows 51820/udp, forwards wg0)
    let cases = [
        ("docs-list-all-public-closed", "public", false, false),
        ("docs-list-all-public-open", "public", true, true),
        ("docs-list-all-wireguard-service-old", "public", true, false),
    ];
    for (name, zone_name, open, fwd) in cases {
        let zone = FirewalldZone::parse(&fixture(&format!("facts/firewalld/{name}.txt")));
        let f = FirewalldFacts {
            installed: true,
            running: true,
            zone,
            ..FirewalldFacts::default()
        };
        let z = f.zone.as_ref().expect("zone parsed");
        assert_eq!(
            (
                z.name.as_str(),
                f.allows_udp(51820),
                f.allows_forward("wg0")
            ),
            (zone_name, open, fwd),
            "{name}: {f:?}"
        );
    }
    let old = FirewalldZone::parse(&fixture(
        "facts/firewalld/docs-list-all-wireguard-service-old.txt",
    ));
    assert_eq!(
        old.and_then(|z| z.forward),
        None,
        "old firewalld has no forward line"
    );
    assert!(FirewalldZone::parse("Error: INVALID_ZONE\n").is_none());
}

#[test]
fn wg_dump_fixture_and_forms() {
    let d = WgDump::parse(&fixture("facts/wg-dump/real-wireguard-go-3-peers.txt"));
    let i = d.interface.as_ref().expect("interface");
    assert!(i.private_key_set);
    assert_eq!((i.listen_port, i.fwmark), (51820, None));
    assert_eq!(d.peers.len(), 3);
    let b = d
        .peers
        .iter()
        .find(|p| p.endpoint.is_some())
        .expect("peer with endpoint");
    assert_eq!(b.endpoint.as_deref(), Some("198.51.100.20:51820"));
    assert_eq!(b.persistent_keepalive, Some(25));
    assert_eq!(b.latest_handshake, None);
    let c = d
        .peers
        .iter()
        .find(|p| p.allowed_ips.len() == 2)
        .expect("peer with subnet");
    assert_eq!(c.allowed_ips[1], "192.168.3.0/24".parse().expect("net"));

    let key = "mC8g936pzjJn189LO2s/bHvvZkoy3LjEWR1ik9rSXmI=";
    let text = format!(
        "(none)\t{key}\t0\t0xca6c\n{key}\t(none)\t[fd00::1]:51820\t(none)\t1700000000\t10\t20\toff\nbroken line\n"
    );
    let d = WgDump::parse(&text);
    let i = d.interface.as_ref().expect("interface");
    assert_eq!((i.private_key_set, i.fwmark), (false, Some(0xca6c)));
    assert_eq!(d.peers.len(), 1);
    assert_eq!(d.peers[0].endpoint.as_deref(), Some("[fd00::1]:51820"));
    assert!(d.peers[0].allowed_ips.is_empty());
    assert_eq!(d.peers[0].latest_handshake, Some(1_700_000_000));
    assert_eq!(WgDump::parse(""), WgDump::default());
}

#[test]
fn ip_fixtures_iproute2_and_busybox_agree() {
    for name in ["real-iproute2", "real-busybox"] {
        let a = InterfaceAddresses::parse(&fixture(&format!("facts/ip-addr/{name}.txt")));
        assert_eq!(a.addresses.len(), 2, "{name}");
        assert_eq!(
            a.global(),
            vec!["10.10.0.1/24".parse().expect("net")],
            "{name}"
        );
        let r = InterfaceRoutes::parse(&fixture(&format!("facts/ip-route/{name}.txt")));
        let unicast: Vec<String> = r
            .unicast_destinations()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            unicast,
            vec!["10.10.0.0/24", "192.168.3.0/24", "fe80::/64"],
            "{name}"
        );
        assert!(
            r.routes
                .iter()
                .any(|x| x.kind.as_deref() == Some("local") && x.table.as_deref() == Some("local"))
        );
    }
}

#[test]
fn os_release_fixtures() {
    // (fixture, ID, ID_LIKE, VERSION_ID)
    let cases: [(&str, &str, &[&str], Option<&str>); 11] = [
        ("debian-12", "debian", &[], Some("12")),
        ("ubuntu-24.04", "ubuntu", &["debian"], Some("24.04")),
        ("fedora-41", "fedora", &[], Some("41")),
        (
            "rocky-9",
            "rocky",
            &["rhel", "centos", "fedora"],
            Some("9.4"),
        ),
        (
            "alma-9",
            "almalinux",
            &["rhel", "centos", "fedora"],
            Some("9.4"),
        ),
        ("arch", "arch", &[], None),
        ("manjaro", "manjaro", &["arch"], None),
        ("alpine-3.20", "alpine", &[], Some("3.20.3")),
        (
            "opensuse-tumbleweed",
            "opensuse-tumbleweed",
            &["opensuse", "suse"],
            Some("20241120"),
        ),
        (
            "opensuse-leap-15.6",
            "opensuse-leap",
            &["suse", "opensuse"],
            Some("15.6"),
        ),
        ("gentoo", "gentoo", &[], Some("2.15")),
    ];
    for (name, id, like, version) in cases {
        let os = OsRelease::parse(&fixture(&format!("os-release/{name}.txt")));
        assert_eq!(os.id, id, "{name}");
        assert_eq!(os.id_like, like, "{name}");
        assert_eq!(os.version_id.as_deref(), version, "{name}");
        assert!(os.pretty_name.is_some(), "{name}");
    }
    let odd =
        OsRelease::parse("# c\nID='Weird'\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\nnonsense\n");
    assert_eq!(odd.id, "weird");
    assert_eq!(odd.pretty_name.as_deref(), Some("A \"quoted\" name"));
}

#[test]
fn config_parser_redacts_again_on_the_workstation() {
    let body = "[Interface]\nPrivateKey = aGVsbG8=\n[Peer]\nPresharedKey = <secret:psk-b.key>\nPresharedKey=<secret:x y>\n";
    let out = facts::parse(&format!(
        "@@meshup:gather:v1\n@@meshup:section:config\n{body}@@meshup:status:config:0\n@@meshup:done\n"
    ))
    .expect("parses");
    assert_eq!(
        out.config.text,
        "[Interface]\nPrivateKey = <secret:unknown>\n[Peer]\nPresharedKey = <secret:psk-b.key>\nPresharedKey = <secret:unknown>\n"
    );
}

// ---- robustness ---------------------------------------------------------------------

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn markerish() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("@@meshup:gather:v1".to_string()),
            Just("@@meshup:done".to_string()),
            proptest::sample::select(facts::SECTION_NAMES.to_vec())
                .prop_map(|n| format!("@@meshup:section:{n}")),
            (
                proptest::sample::select(facts::SECTION_NAMES.to_vec()),
                -300i32..300
            )
                .prop_map(|(n, c)| format!("@@meshup:status:{n}:{c}")),
            "[ -~\t]{0,80}",
            "[a-z_]{1,12}=[ -~]{0,50}",
            "\\PC{0,40}",
        ];
        proptest::collection::vec(line, 0..60).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = facts::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_marker_soup(text in markerish()) {
            let _ = facts::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_mangled_real_output(cut in 0usize..6000, junk in "\\PC{0,20}") {
            let real = super::fixture("facts/gather/real-debian12-ufw-active-dash.txt");
            let mut cut = cut.min(real.len());
            while !real.is_char_boundary(cut) { cut -= 1; }
            let _ = facts::parse(&format!("{}{}", &real[..cut], junk));
        }
    }
}

/// What the gather says about meshup's locks (run for real with `sh`). The run hold
/// (apply's, in /run): a holder line whose process lives and whose run's connection lives
/// is another run, named with who started it; the same line with the connection gone is a
/// holder about to let go (no conflict); this run's own line is no conflict. The
/// interface's lock in the config dir (each phase's): found while held, without a name.
#[test]
fn gather_names_the_lock_holder() {
    if Command::new("flock").arg("-V").output().is_err() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let hold = dir.path().join("meshup-wg0.lock");
    /// Killed when dropped, so a failing assertion leaves no holder behind.
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = |lock: &Path| {
        let child = Command::new("sh")
            .args([
                "-c",
                "exec 8>>\"$1\"; flock -n 8 || exit 1; echo held >\"$1.ready\"; while :; do sleep 1 8>&-; done",
                "holder",
            ])
            .arg(lock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("holder");
        let ready = PathBuf::from(format!("{}.ready", lock.display()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the holder never held"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Holder(child)
    };
    let gather = |run: Option<u64>| {
        let params = params(dir.path().to_str().expect("utf8"), &[]);
        let params = match run {
            Some(id) => params.holding(&meshup::run_lock::RunLock::with(id, "b@ws")),
            None => params,
        };
        // No sshd among this test's ancestors: the gather cannot hold, it only looks.
        let script = format!(
            "MU_RUNDIR='{}'\n{}",
            dir.path().display(),
            facts::gather_script(&params)
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("run");
        facts::parse(&String::from_utf8_lossy(&out.stdout))
            .expect("parses")
            .files
            .lock_holder
            // The age moves on between two gathers.
            .map(|h| {
                h.to_string().replace(
                    &format!(", running for {} s", h.age_secs.unwrap_or(0)),
                    ", running for N s",
                )
            })
    };
    let held = holder(&hold);
    let line = |conn: u32| {
        std::fs::write(
            &hold,
            format!(
                "run=00000000000000aa pid={} conn={conn} user=root since=1 by=alice@ws\n",
                held.0.id()
            ),
        )
        .expect("write");
    };
    line(std::process::id());
    let named = gather(None).expect("held");
    assert!(
        named
            == format!(
                "PID {} (sh), user root, running for N s, started by alice@ws",
                held.0.id()
            ),
        "{named}"
    );
    assert_eq!(gather(Some(0xbb)), Some(named), "another run's");
    assert_eq!(gather(Some(0xaa)), None, "this run's own");
    line(u32::MAX);
    assert_eq!(gather(None), None, "its run is gone");
    drop(held);
    assert_eq!(gather(None), None, "free once the holder is gone");

    let phase = holder(&dir.path().join(".meshup-wg0.lock"));
    let anonymous = gather(None).expect("held");
    assert!(!anonymous.contains("started by"), "{anonymous}");
    drop(phase);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(gather(None), None, "free once the phase is gone");
}

//! `meshup import` on a mesh built by hand exactly as the guide says (issue #29): keys
//! made with `wg genkey` into /etc/wireguard, a `wg genpsk` per pair copied to both
//! nodes as psk-ab.key, the three wg0.conf files with the keys inline, `wg-quick up`.
//! The imported inventory's plan changes no key and no preshared key; apply under pings
//! at 20/s on every pair loses none; keys and PSKs are the same afterwards. A config
//! meshup cannot express (an exit peer) is reported with its file and line.
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support_lab::{
    Lab, apply_ok, assert_no_changes, lab_command, meshup, path_str, ping_lost,
};

const HOSTS: [&str; 3] = ["node-a", "node-b", "node-c"];

/// Runs `sh -c cmd` in `host` with `input` on stdin (through `lab exec`, not meshup).
fn exec_stdin(lab: &Lab, host: &str, cmd: &str, input: &[u8]) {
    let mut child = Command::new(lab_command())
        .args(["exec", lab.name(), host, "--", "sh", "-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("lab exec");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    assert!(child.wait().expect("wait").success(), "{host}: {cmd}");
}

/// How the mesh is built by hand: the guide's way, or a variant.
struct HandBuilt {
    /// The interface (and config file) name.
    iface: &'static str,
    /// The private key lives only inline in the config (no private.key file).
    inline_only: bool,
    /// A subnet routed behind node-a (in the others' AllowedIPs for it).
    subnet: Option<&'static str>,
}

/// Exactly the guide's steps 2-3.
const GUIDE: HandBuilt = HandBuilt {
    iface: "wg0",
    inline_only: false,
    subnet: None,
};

/// The guide's config for `me`. Keys are filled in on the host from its files (`$(cat
/// …)` in a heredoc): no key is in an argument.
fn guide_conf(lab: &Lab, me: &str, pubkeys: &BTreeMap<&str, String>, how: &HandBuilt) -> String {
    let endpoint = |h: &str| {
        lab.host(h)
            .public_ip
            .as_ref()
            .map(|ip| format!("Endpoint = {ip}:51820\n"))
    };
    let letter = |h: &str| h.trim_start_matches("node-").to_string();
    let mut conf = format!(
        "[Interface]\nAddress = {}/24\nListenPort = 51820\nPrivateKey = $(cat /etc/wireguard/private.key)\n",
        lab.host(me).mesh_address
    );
    for peer in HOSTS.iter().filter(|p| **p != me) {
        let mut pair = [letter(me), letter(peer)];
        pair.sort();
        // Only node-a names its peers, as in the guide.
        if me == "node-a" {
            conf.push_str(&format!("# Peer: {peer}\n"));
        }
        conf.push_str(&format!(
            "[Peer]\nPublicKey = {}\nPresharedKey = $(cat /etc/wireguard/psk-{}{}.key)\n",
            pubkeys[peer], pair[0], pair[1]
        ));
        // Public nodes get an endpoint and keepalive; nobody has one for the NAT node.
        if let Some(e) = endpoint(peer) {
            conf.push_str(&e);
        }
        let subnet = match how.subnet {
            Some(net) if *peer == "node-a" => format!(", {net}"),
            _ => String::new(),
        };
        conf.push_str(&format!(
            "AllowedIPs = {}/32{subnet}\n",
            lab.host(peer).mesh_address
        ));
        if endpoint(peer).is_some() {
            conf.push_str("PersistentKeepalive = 25\n");
        }
    }
    conf
}

/// Builds the mesh by hand on the lab's guide scenario and waits until every pair pings.
fn build_by_hand(lab: &Lab, how: &HandBuilt) {
    for h in HOSTS {
        lab.host_exec(
            h,
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wireguard-tools >/dev/null \
             && umask 077 && mkdir -p /etc/wireguard \
             && wg genkey | tee /etc/wireguard/private.key | wg pubkey > /etc/wireguard/public.key \
             && chmod 600 /etc/wireguard/private.key",
        )
        .expect_ok("install wireguard-tools and make the key pair");
    }
    let pubkeys: BTreeMap<&str, String> = HOSTS
        .iter()
        .map(|h| {
            let k = lab.host_exec(h, "cat /etc/wireguard/public.key");
            (*h, k.expect_ok("public key").trim().to_string())
        })
        .collect();
    // One PSK per pair, made on the first node, copied to the other through the test.
    for (a, b, file) in [
        ("node-a", "node-b", "psk-ab.key"),
        ("node-a", "node-c", "psk-ac.key"),
        ("node-b", "node-c", "psk-bc.key"),
    ] {
        let path = format!("/etc/wireguard/{file}");
        let psk = Command::new(lab_command())
            .args(["exec", lab.name(), a, "--", "sh", "-c"])
            .arg(format!("umask 077; wg genpsk > {path} && cat {path}"))
            .stdin(Stdio::null())
            .output()
            .expect("genpsk");
        assert!(psk.status.success());
        exec_stdin(lab, b, &format!("umask 077; cat > {path}"), &psk.stdout);
    }
    for h in HOSTS {
        let conf = guide_conf(lab, h, &pubkeys, how);
        let iface = how.iface;
        // The variant keeps the key only inline: the files go once the config has it.
        let rm = if how.inline_only {
            "rm /etc/wireguard/private.key /etc/wireguard/public.key"
        } else {
            "true"
        };
        lab.host_exec(
            h,
            &format!(
                "umask 077; cat > /etc/wireguard/{iface}.conf <<EOF\n{conf}EOF\n{rm} && wg-quick up {iface} 2>/dev/null"
            ),
        )
        .expect_ok("wg-quick up");
    }
    // node-c (behind NAT) initiates; then every pair answers.
    for from in ["node-c", "node-a", "node-b"] {
        for to in HOSTS.iter().filter(|t| **t != from) {
            let ip = lab.host(to).mesh_address.clone();
            let start = Instant::now();
            while !lab.host_exec(from, &format!("ping -c 2 -W 1 {ip}")).ok() {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "hand-built mesh: {from} -> {to} does not answer"
                );
            }
        }
    }
}

/// Each host's public key and, per peer, the digest of the preshared key its interface
/// runs (computed on the host).
fn key_state(lab: &Lab, iface: &str) -> BTreeMap<String, String> {
    HOSTS
        .iter()
        .map(|h| {
            let run = lab.host_exec(
                h,
                &format!(
                    "wg show {iface} public-key; wg show {iface} preshared-keys | while read -r k p; do \
                     printf '%s %s\\n' \"$k\" \"$(printf %s \"$p\" | sha256sum | cut -c1-16)\"; done | sort"
                ),
            );
            ((*h).to_string(), run.expect_ok("key state").to_string())
        })
        .collect()
}

/// Every secret of the hand-built mesh (private keys, PSKs), read on the hosts.
fn secrets(lab: &Lab, iface: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in HOSTS {
        let run = lab.host_exec(
            h,
            &format!("wg show {iface} private-key; cat /etc/wireguard/psk-*.key"),
        );
        out.extend(run.stdout.lines().map(str::to_string));
    }
    assert_eq!(out.len(), 9, "a private key and 2 PSKs per host");
    out
}

/// Pings at 20/s on every ordered pair for `secs` seconds, in the background.
fn start_pings(lab: &Lab, secs: u32) {
    for from in HOSTS {
        let mut script = String::new();
        for to in HOSTS.iter().filter(|t| **t != from) {
            script.push_str(&format!(
                "nohup ping -n -q -i 0.05 -c {} -W 2 {} >/run/imping-{to}.out 2>&1 & ",
                secs * 20,
                lab.host(to).mesh_address
            ));
        }
        lab.host_exec(from, &script).expect_ok("start pings");
    }
}

/// Packets lost per ordered pair once the pings of [`start_pings`] ended.
fn lost(lab: &Lab) -> BTreeMap<String, u64> {
    let mut lost = BTreeMap::new();
    for from in HOSTS {
        for to in HOSTS.iter().filter(|t| **t != from) {
            let file = format!("/run/imping-{to}.out");
            let n = ping_lost(lab, from, &file, Duration::from_secs(150));
            lost.insert(format!("{from} -> {to}"), n);
        }
    }
    lost
}

/// `meshup import` of the lab's three hosts through the lab's ssh_config into `inv`.
fn import_args<'a>(hosts: &'a str, ssh_config: &'a Path, inv: &'a Path) -> Vec<&'a str> {
    vec![
        "import",
        "--hosts",
        hosts,
        "-F",
        path_str(ssh_config),
        "-o",
        path_str(inv),
    ]
}

/// From the imported inventory on: the plan adopts the keys (`key_move` is its line for
/// the private key) and makes nothing new; apply under pings loses none; keys and PSKs
/// are what they were; verify is healthy; the second plan is empty; no secret of the
/// mesh is in anything meshup printed or wrote (`printed` holds the import's output).
fn adopt_and_apply(lab: &Lab, how: &HandBuilt, inv: &Path, key_move: &str, printed: &[String]) {
    let before = key_state(lab, how.iface);
    let secrets = secrets(lab, how.iface);
    let check = meshup(lab, &["check", path_str(inv)]);
    check.expect_ok("meshup check accepts the imported inventory");

    let plan = meshup(lab, &["plan", path_str(inv)]);
    plan.expect_ok("meshup plan");
    for h in HOSTS {
        let section = crate::support_lab::plan_section(&plan.stdout, h);
        assert!(section.contains(key_move), "{h}:\n{}", plan.stdout);
        assert_eq!(
            section.matches("adopt the preshared key with").count(),
            2,
            "{h}:\n{}",
            plan.stdout
        );
    }
    for never in [
        "generate key pair",
        "random, written on both hosts",
        "remove psk",
    ] {
        assert!(!plan.stdout.contains(never), "{never}:\n{}", plan.stdout);
    }

    let secs: u32 = 90;
    start_pings(lab, secs);
    let started = Instant::now();
    let apply = apply_ok(lab, inv, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(secs.into()),
        "apply took {:?}, longer than the pings ran",
        started.elapsed()
    );
    let lost = lost(lab);
    assert!(
        lost.values().all(|n| *n == 0),
        "packets lost during apply: {lost:?}"
    );

    assert_eq!(
        key_state(lab, how.iface),
        before,
        "no key and no preshared key changed"
    );
    let iface = how.iface;
    for h in HOSTS {
        lab.host_exec(
            h,
            &format!(
                "test -s /etc/wireguard/{iface}/private.key && ls /etc/wireguard/{iface}/psk-node-*.key | wc -l | grep -qx 2 \
                 && test -e /etc/wireguard/psk-ab.key -o -e /etc/wireguard/psk-bc.key"
            ),
        )
        .expect_ok("keys in meshup's layout; the hand-made PSK files left alone");
    }
    let verify = meshup(lab, &["verify", path_str(inv)]);
    verify.expect_ok("verify is healthy");
    assert_no_changes(lab, inv);

    let written = std::fs::read_to_string(inv).expect("inventory");
    let mut all: Vec<&str> = printed.iter().map(String::as_str).collect();
    all.extend([
        plan.stdout.as_str(),
        apply.stdout.as_str(),
        apply.stderr.as_str(),
        verify.stdout.as_str(),
        written.as_str(),
    ]);
    for s in &secrets {
        assert!(
            all.iter().all(|p| !p.contains(s.as_str())),
            "a secret of the hand-built mesh was printed"
        );
    }
}

#[test]
fn import_lab_a_hand_built_guide_mesh_is_adopted_without_rekeying_or_loss() {
    require_lab!();
    let lab = Lab::up("im-guide", "guide", "light");
    build_by_hand(&lab, &GUIDE);
    let out = lab.out_dir();
    let ssh_config = out.join("ssh_config");
    let inv = out.join("imported.yaml");
    let hosts = HOSTS.join(",");
    let args = import_args(&hosts, &ssh_config, &inv);

    // An exit peer in node-c's config (the file only: the live mesh stays as it is) is
    // reported with its file and line, and nothing is written.
    lab.host_exec(
        "node-c",
        "cp /etc/wireguard/wg0.conf /root/wg0.conf.good && \
         sed -i '0,/^AllowedIPs = .*/s//&, 0.0.0.0\\/0/' /etc/wireguard/wg0.conf",
    )
    .expect_ok("add an exit peer");
    let line = lab
        .host_exec(
            "node-c",
            "grep -n '0.0.0.0/0' /etc/wireguard/wg0.conf | cut -d: -f1",
        )
        .stdout
        .trim()
        .to_string();
    let refused = meshup(&lab, &args);
    assert_eq!(
        refused.code,
        Some(1),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    let want = format!(
        "unsupported: node-c: /etc/wireguard/wg0.conf:{line}: AllowedIPs 0.0.0.0/0 sends all traffic through node-a"
    );
    assert!(refused.stderr.contains(&want), "{want}\n{}", refused.stderr);
    assert!(!inv.exists(), "nothing is written when refused");
    let kept = meshup(&lab, &[&args[..], &["--keep-unsupported"]].concat());
    kept.expect_ok("import --keep-unsupported");
    let text = std::fs::read_to_string(&inv).expect("inventory written");
    assert!(
        text.contains(&format!(
            "#   node-c: /etc/wireguard/wg0.conf:{line}: AllowedIPs 0.0.0.0/0"
        )),
        "{text}"
    );
    lab.host_exec("node-c", "cp /root/wg0.conf.good /etc/wireguard/wg0.conf")
        .expect_ok("restore node-c's config");
    std::fs::remove_file(&inv).expect("rm");

    let import = meshup(&lab, &args);
    import.expect_ok("meshup import");
    let text = std::fs::read_to_string(&inv).expect("inventory written");
    for want in [
        "  network: 10.10.0.0/24\n",
        "  listen_port: 51820\n",
        "  persistent_keepalive: 25\n",
        "  preshared_keys: true\n",
        "  - name: node-a\n    address: 10.10.0.1\n    endpoint: \"203.0.113.10:51820\"\n",
        "  - name: node-b\n    address: 10.10.0.2\n    endpoint: \"198.51.100.20:51820\"\n",
        "  - name: node-c\n    address: 10.10.0.3\n    # no endpoint",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("interface:"), "{text}");
    adopt_and_apply(
        &lab,
        &GUIDE,
        &inv,
        "move wg0's key files from /etc/wireguard/ into /etc/wireguard/wg0/ (keys unchanged)",
        &[import.stdout, import.stderr, refused.stderr],
    );
}

/// The variant: the interface is wg7, the private keys are only inline in the configs
/// (no key file), and node-a routes a subnet.
#[test]
fn import_lab_an_inline_keyed_mesh_on_another_interface_with_a_subnet_is_adopted() {
    require_lab!();
    let lab = Lab::up("im-wg7", "guide", "light");
    let how = HandBuilt {
        iface: "wg7",
        inline_only: true,
        subnet: Some("192.168.77.0/24"),
    };
    build_by_hand(&lab, &how);
    let out = lab.out_dir();
    let ssh_config = out.join("ssh_config");
    let inv = out.join("imported.yaml");
    let hosts = HOSTS.join(",");
    let import = meshup(&lab, &import_args(&hosts, &ssh_config, &inv));
    import.expect_ok("meshup import");
    let text = std::fs::read_to_string(&inv).expect("inventory written");
    for want in [
        "  interface: \"wg7\"\n",
        "  preshared_keys: true\n",
        "  - name: node-a\n    address: 10.10.0.1\n    endpoint: \"203.0.113.10:51820\"\n    subnets:\n      - \"192.168.77.0/24\"\n",
        "  - name: node-c\n    address: 10.10.0.3\n    # no endpoint",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    adopt_and_apply(
        &lab,
        &how,
        &inv,
        "move the private key /etc/wireguard/wg7.conf holds into /etc/wireguard/wg7/private.key (key unchanged)",
        &[import.stdout, import.stderr],
    );
}

/// `meshup init` on fresh hosts; every node in `nat` is written without an endpoint,
/// every other with one; the inventory applies and verifies healthy with no edit.
fn init_apply_verify(lab: &Lab, hosts: &[&str], nat: &[&str]) -> String {
    let out = lab.out_dir();
    let ssh_config = out.join("ssh_config");
    let inv = out.join("init.yaml");
    let mut args = vec!["init"];
    args.extend_from_slice(hosts);
    args.extend(["-F", path_str(&ssh_config), "-o", path_str(&inv)]);
    meshup(lab, &args).expect_ok("meshup init");
    let text = std::fs::read_to_string(&inv).expect("inventory written");
    assert!(text.contains("  preshared_keys: true"), "{text}");
    for h in hosts {
        let node = text
            .split("  - name: ")
            .find(|n| n.starts_with(&format!("{h}\n")))
            .unwrap_or_else(|| panic!("no node {h} in\n{text}"));
        if nat.contains(h) {
            assert!(
                node.contains("# behind NAT") && !node.contains("endpoint:"),
                "{h} is behind NAT:\n{text}"
            );
        } else {
            let ip = lab.host(h).public_ip.clone().expect("public");
            assert!(
                node.contains(&format!("    endpoint: \"{ip}:51820\"\n")),
                "{h} is public:\n{text}"
            );
        }
    }
    apply_ok(lab, &inv, &[]);
    let verify = meshup(lab, &["verify", path_str(&inv)]);
    verify.expect_ok("verify is healthy");
    // Two NAT nodes start relayed; a later apply punches their direct path once the
    // public nodes have seen both NAT mappings (meshup's own NAT-to-NAT design).
    let start = Instant::now();
    while nat.len() > 1 && start.elapsed() < Duration::from_secs(90) {
        let plan = meshup(lab, &["plan", "--detailed-exitcode", path_str(&inv)]);
        if plan.code == Some(0) {
            break;
        }
        assert!(
            plan.stdout.contains("punched path to"),
            "only the NAT pair's punch is left after the first apply:\n{}",
            plan.stdout
        );
        apply_ok(lab, &inv, &[]);
    }
    assert_no_changes(lab, &inv);
    text
}

/// `meshup init` on the guide's fresh hosts: node-c is recognised as behind NAT, and the
/// inventory applies and verifies healthy with no edit.
#[test]
fn import_lab_init_writes_an_inventory_that_applies_healthy_unedited() {
    require_lab!();
    let lab = Lab::up("im-init", "guide", "light");
    let text = init_apply_verify(&lab, &HOSTS, &["node-c"]);
    assert!(text.contains("  network: 10.10.0.0/24"), "{text}");
}

/// The same on the mixed lab: two NAT nodes (relayed, then punched), a subnet router.
#[test]
fn import_lab_init_on_the_mixed_lab_recognises_both_nat_nodes() {
    require_lab!();
    let lab = Lab::up("im-initmx", "mixed", "light");
    init_apply_verify(
        &lab,
        &["pub-1", "pub-2", "pub-3", "gw", "nat-1", "nat-2"],
        &["nat-1", "nat-2"],
    );
}

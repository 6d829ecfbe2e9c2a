//! Unmanaged clients against the local lab: a `generate: true` laptop and a `public_key:`
//! phone, each a lab host behind its own NAT running plain `wg-quick up` with the config
//! meshup gives, reach every node's mesh address; removing the laptop revokes it.
//! Needs root; `MESHUP_SKIP_LAB=1` skips it.
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support_lab::{Lab, apply_ok, assert_no_changes, lab_skip_reason, meshup, path_str};

/// The mesh nodes (managed) and the two devices (unmanaged, behind NAT).
const NODES: [&str; 3] = ["pub-1", "pub-2", "nat-1"];
const LAPTOP_HOST: &str = "nat-2";
const PHONE_HOST: &str = "nat-3";

/// The inventory: the three nodes with their lab addresses, then `clients`.
fn write_inventory(lab: &Lab, clients: &str) -> PathBuf {
    let mut text = String::from(
        "mesh:\n  network: 10.10.0.0/24\nssh:\n  user: root\n  identity_file: id_ed25519\n  known_hosts: known_hosts\n  host_key_checking: \"yes\"\nnodes:\n",
    );
    for name in NODES {
        let h = lab.host(name);
        text.push_str(&format!(
            "  - name: {}\n    address: {}\n",
            h.name, h.mesh_address
        ));
        if let Some(ip) = &h.public_ip {
            text.push_str(&format!("    endpoint: {ip}:51820\n"));
        }
        text.push_str(&format!(
            "    ssh: {{ host: {}, port: {} }}\n",
            h.ssh_host, h.ssh_port
        ));
    }
    text.push_str(clients);
    let path = lab.out_dir().join("clients.yaml");
    std::fs::write(&path, text).expect("write inventory");
    path
}

fn ping_until(lab: &Lab, from: &str, ip: &str, deadline: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let run = lab.host_exec(from, &format!("ping -c 2 -W 1 {ip}"));
        if run.ok() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > deadline {
            return Err(format!("{from} -> {ip}: no answer after {deadline:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The device pings every node's mesh address.
#[track_caller]
fn assert_reaches_every_node(lab: &Lab, device: &str) {
    let failures: Vec<String> = NODES
        .iter()
        .filter_map(|node| {
            let ip = lab.host(node).mesh_address.clone();
            match ping_until(lab, device, &ip, Duration::from_secs(30)) {
                Ok(took) => {
                    eprintln!("{device} -> {node} ({ip}): ok after {took:?}");
                    None
                }
                Err(e) => Some(e),
            }
        })
        .collect();
    assert!(failures.is_empty(), "client pings failed:\n{failures:#?}");
}

/// wireguard-tools (with wireguard-go, the lab kernel has no module) from the lab mirror.
#[track_caller]
fn install_wireguard(lab: &Lab, host: &str) {
    lab.host_exec(
        host,
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wireguard-tools wireguard-go lab-wireguard-modules",
    )
    .expect_ok(&format!("install wireguard-tools on {host}"));
}

/// Puts `config` on `host` as /etc/wireguard/wg0.conf (mode 600) and runs `wg-quick up`.
#[track_caller]
fn wg_quick_up(lab: &Lab, host: &str, config: &str) {
    let cmd = format!(
        "umask 077; mkdir -p /etc/wireguard; cat > /etc/wireguard/wg0.conf <<'MESHUP_EOF'\n{config}MESHUP_EOF\nwg-quick up wg0"
    );
    lab.host_exec(host, &cmd)
        .expect_ok(&format!("wg-quick up on {host}"));
}

#[test]
fn generated_and_public_key_clients_reach_every_node_and_a_removed_one_is_revoked() {
    if let Some(why) = lab_skip_reason() {
        eprintln!("skipping lab test: {why}");
        return;
    }
    let started = Instant::now();
    let lab = Lab::up_with("clients", &["--public", "2", "--nat", "3"]);
    eprintln!("lab up: {:?}", started.elapsed());
    for device in [LAPTOP_HOST, PHONE_HOST] {
        install_wireguard(&lab, device);
    }
    // The phone's key pair is made on the phone; only its public key goes in the inventory.
    let phone_key = lab
        .host_exec(
            PHONE_HOST,
            "umask 077; wg genkey > /root/phone.key && wg pubkey < /root/phone.key",
        )
        .expect_ok("wg genkey on the phone")
        .trim()
        .to_string();
    let both = format!(
        "clients:\n  - name: laptop\n    generate: true\n    via: [pub-1]\n  - name: phone\n    public_key: {phone_key}\n    via: [pub-2, pub-1]\n"
    );
    let inv = write_inventory(&lab, &both);

    let t = Instant::now();
    let run = apply_ok(&lab, &inv, &[]);
    eprintln!("first apply: {:?}", t.elapsed());
    assert!(
        run.stdout.contains("client laptop: wrote"),
        "{}",
        run.stdout
    );
    assert_no_changes(&lab, &inv);

    // The laptop's config: written beside the inventory, mode 600, complete.
    let conf = lab.out_dir().join("clients/laptop.conf");
    let mode = std::fs::metadata(&conf)
        .expect("laptop.conf exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "laptop.conf mode");
    let laptop_conf = std::fs::read_to_string(&conf).expect("read laptop.conf");
    assert!(laptop_conf.contains("PrivateKey = "), "{laptop_conf}");
    assert!(
        laptop_conf.contains(&format!(
            "Endpoint = {}:51820",
            lab.host("pub-1").public_ip.clone().unwrap_or_default()
        )),
        "{laptop_conf}"
    );
    // `meshup client laptop` prints the path and changes nothing; --qr draws a code.
    let run = meshup(&lab, &["client", "laptop", path_str(&inv)]);
    assert_eq!(
        run.expect_ok("meshup client laptop").trim(),
        path_str(&conf),
        "{}",
        run.stderr
    );
    let qr = meshup(&lab, &["client", "laptop", "--qr", path_str(&inv)]);
    assert!(
        qr.expect_ok("meshup client --qr").contains('\u{2588}'),
        "{}",
        qr.stdout
    );
    assert!(
        !qr.stdout.contains("PrivateKey"),
        "--qr prints only the code"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).expect("read laptop.conf"),
        laptop_conf,
        "a second run keeps the key pair and the file"
    );

    // The laptop runs plain wg-quick with the generated file.
    wg_quick_up(&lab, LAPTOP_HOST, &laptop_conf);
    assert_reaches_every_node(&lab, LAPTOP_HOST);

    // The phone: meshup prints its config with a placeholder; the key goes in on the phone.
    let phone_conf = meshup(&lab, &["client", "phone", "--show", path_str(&inv)]);
    let phone_conf = phone_conf
        .expect_ok("meshup client phone --show")
        .to_string();
    assert!(
        phone_conf.contains("PrivateKey = <the device's private key>"),
        "{phone_conf}"
    );
    let cmd = format!(
        "umask 077; mkdir -p /etc/wireguard; cat > /etc/wireguard/wg0.conf.in <<'MESHUP_EOF'\n{phone_conf}MESHUP_EOF\n\
         sed \"s|<the device's private key>|$(cat /root/phone.key)|\" /etc/wireguard/wg0.conf.in > /etc/wireguard/wg0.conf && wg-quick up wg0"
    );
    lab.host_exec(PHONE_HOST, &cmd)
        .expect_ok("wg-quick up on the phone");
    assert_reaches_every_node(&lab, PHONE_HOST);

    // Revocation: the laptop leaves the inventory.
    let laptop_key = lab
        .host_exec(LAPTOP_HOST, "wg show wg0 public-key")
        .expect_ok("laptop public key")
        .trim()
        .to_string();
    let phone_only = format!(
        "clients:\n  - name: phone\n    public_key: {phone_key}\n    via: [pub-2, pub-1]\n"
    );
    let inv = write_inventory(&lab, &phone_only);
    let plan = meshup(&lab, &["plan", path_str(&inv)]);
    assert!(
        plan.expect_ok("plan of the revocation")
            .contains("-# Peer: laptop"),
        "{}",
        plan.stdout
    );
    let run = apply_ok(&lab, &inv, &[]);
    assert!(run.stdout.contains("laptop.conf.revoked"), "{}", run.stdout);
    assert_no_changes(&lab, &inv);
    for node in NODES {
        let peers = lab
            .host_exec(node, "wg show wg0 peers")
            .expect_ok("wg show peers")
            .to_string();
        assert!(
            !peers.contains(&laptop_key),
            "{node} still has the laptop's key"
        );
    }
    // A fresh handshake from the laptop is never answered, and nothing gets through.
    lab.host_exec(LAPTOP_HOST, "wg-quick down wg0 && wg-quick up wg0")
        .expect_ok("restart the laptop's interface");
    for node in NODES {
        let ip = lab.host(node).mesh_address.clone();
        assert!(
            ping_until(&lab, LAPTOP_HOST, &ip, Duration::from_secs(6)).is_err(),
            "the revoked laptop still reaches {node}"
        );
    }
    let handshakes = lab
        .host_exec(LAPTOP_HOST, "wg show wg0 latest-handshakes")
        .expect_ok("laptop handshakes")
        .to_string();
    assert!(
        handshakes
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("0")),
        "the revoked laptop completed a handshake: {handshakes}"
    );
    // The phone is untouched, verify passes without the laptop, check no longer lists it.
    assert_reaches_every_node(&lab, PHONE_HOST);
    let verify = meshup(&lab, &["verify", path_str(&inv)]);
    verify.expect_ok("verify after the revocation");
    let check = meshup(&lab, &["check", path_str(&inv)]);
    let check = check.expect_ok("check").to_string();
    assert!(
        check.contains("phone") && !check.contains("laptop"),
        "{check}"
    );
    eprintln!("total: {:?}", started.elapsed());
}

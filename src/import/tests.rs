use super::*;
use crate::facts::{CurrentConfig, WgDump, WgInterfaceDump};
use std::str::FromStr as _;

fn key(c: char) -> PublicKey {
    PublicKey::from_str(&format!("{}A=", c.to_string().repeat(42))).expect("key")
}

/// node-a's wg0.conf of the guide, as the host's redaction prints it.
const GUIDE_A: &str = "[Interface]
Address = 10.10.0.1/24
ListenPort = 51820
PrivateKey = <secret:private.key>
# Peer: node-b
[Peer]
PublicKey = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbA=
PresharedKey = <secret:unknown>
Endpoint = 198.51.100.20:51820
AllowedIPs = 10.10.0.2/32
PersistentKeepalive = 25
# Peer: node-c (behind NAT)
[Peer]
PublicKey = ccccccccccccccccccccccccccccccccccccccccccA=
PresharedKey = <secret:unknown>
AllowedIPs = 10.10.0.3/32
";

#[test]
fn config_lines_parse_into_peers_and_unsupported_lines() {
    let conf = WgConf::parse(GUIDE_A);
    assert_eq!(
        conf.addresses,
        vec!["10.10.0.1/24".parse::<IpNet>().unwrap()]
    );
    assert_eq!(conf.listen_port, Some(51820));
    assert_eq!(conf.peers.len(), 2);
    let b = &conf.peers[0];
    assert_eq!(
        (
            b.line,
            b.name.as_deref(),
            b.public_key,
            b.preshared_key,
            b.keepalive
        ),
        (6, Some("node-b"), Some(key('b')), true, Some(25))
    );
    assert_eq!(b.endpoint, Some(("198.51.100.20:51820".into(), 9)));
    assert_eq!(conf.peers[1].name.as_deref(), Some("node-c"));
    assert_eq!(conf.peers[1].endpoint, None);
    assert!(conf.unsupported.is_empty(), "{:?}", conf.unsupported);

    // (line in the file, what is reported)
    let cases: &[(&str, &[(usize, &str)])] = &[
        (
            "[Interface]\nPostUp = iptables -A FORWARD\n",
            &[(
                2,
                "PostUp = iptables -A FORWARD: meshup's inventory has no such setting",
            )],
        ),
        (
            "[Interface]\nTable = off\nSaveConfig = false\n",
            &[(2, "Table = off: meshup's inventory has no such setting")],
        ),
        (
            "[Interface]\nMTU = big\n",
            &[(2, "MTU big is not a number")],
        ),
        (
            "[Peer]\nAllowedIPs = 10.0.0.0/33\n",
            &[(2, "AllowedIPs 10.0.0.0/33 is not a network")],
        ),
        ("[Wat]\n", &[(1, "unknown section [Wat]")]),
    ];
    for (text, want) in cases {
        let got = WgConf::parse(text).unsupported;
        let want: Vec<(usize, String)> = want.iter().map(|(l, s)| (*l, (*s).to_string())).collect();
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn node_names_from_free_text() {
    let cases = [
        ("node-b", Some("node-b")),
        ("Node_B", Some("node-b")),
        ("  web1.example.com ", Some("web1.example.com")),
        ("-x-", Some("x")),
        ("!!!", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(node_name(text).as_deref(), want, "{text:?}");
    }
}

fn host(
    target: &str,
    hostname: &str,
    me: char,
    conf: &str,
    psks: &[(char, Option<&str>)],
) -> ImportHost {
    let mut facts = HostFacts {
        config: CurrentConfig::parse(conf, true),
        wg_dump: WgDump {
            interface: Some(WgInterfaceDump {
                private_key_set: true,
                public_key: Some(key(me)),
                listen_port: 51820,
                fwmark: None,
            }),
            peers: Vec::new(),
        },
        ..HostFacts::default()
    };
    for (peer, digest) in psks {
        facts
            .keys
            .live_psk_digests
            .insert(key(*peer), digest.map(str::to_string));
    }
    let mut scan = ScannedHost {
        hostname: hostname.into(),
        complete: true,
        ..ScannedHost::default()
    };
    scan.interfaces.insert(
        "wg0".into(),
        ScannedInterface {
            conf_public_key: None,
            facts,
        },
    );
    ImportHost {
        target: target.into(),
        user: None,
        port: None,
        scan,
    }
}

const GUIDE_B: &str = "[Interface]
Address = 10.10.0.2/24
ListenPort = 51820
PrivateKey = <secret:private.key>
[Peer]
PublicKey = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA=
PresharedKey = <secret:unknown>
Endpoint = 203.0.113.10:51820
AllowedIPs = 10.10.0.1/32, 192.168.1.0/24
PersistentKeepalive = 25
[Peer]
PublicKey = ccccccccccccccccccccccccccccccccccccccccccA=
PresharedKey = <secret:unknown>
AllowedIPs = 10.10.0.3/32
";

const GUIDE_C: &str = "[Interface]
Address = 10.10.0.3/24
ListenPort = 51820
PrivateKey = <secret:private.key>
[Peer]
PublicKey = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA=
PresharedKey = <secret:unknown>
Endpoint = 203.0.113.10:51820
AllowedIPs = 10.10.0.1/32
PersistentKeepalive = 25
[Peer]
PublicKey = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbA=
PresharedKey = <secret:unknown>
Endpoint = 198.51.100.20:51820
AllowedIPs = 10.10.0.2/32
PersistentKeepalive = 25
";

fn guide() -> Vec<ImportHost> {
    vec![
        host(
            "a",
            "node-a",
            'a',
            GUIDE_A,
            &[
                ('b', Some("1111111111111111")),
                ('c', Some("2222222222222222")),
            ],
        ),
        host(
            "b",
            "host-b",
            'b',
            GUIDE_B,
            &[
                ('a', Some("1111111111111111")),
                ('c', Some("3333333333333333")),
            ],
        ),
        host(
            "c",
            "node-c",
            'c',
            GUIDE_C,
            &[
                ('a', Some("2222222222222222")),
                ('b', Some("3333333333333333")),
            ],
        ),
    ]
}

#[test]
fn the_guides_mesh_becomes_an_inventory_meshup_accepts() {
    let hosts = guide();
    assert_eq!(pick_interface(&hosts, None).as_deref(), Ok("wg0"));
    let imported = build(&hosts, "wg0", None);
    assert_eq!(imported.unsupported().count(), 0, "{:?}", imported.findings);
    let want = "\
# Imported by `meshup import` from a, b, c (interface wg0).
mesh:
  network: 10.10.0.0/24
  listen_port: 51820
  persistent_keepalive: 25
  preshared_keys: true

nodes:
  - name: node-a
    address: 10.10.0.1
    endpoint: \"203.0.113.10:51820\"
    subnets:
      - \"192.168.1.0/24\"
    ssh:
      host: \"a\"
  - name: node-b
    address: 10.10.0.2
    endpoint: \"198.51.100.20:51820\"
    ssh:
      host: \"b\"
  - name: node-c
    address: 10.10.0.3
    # no endpoint: no host lists one for it (behind NAT, it initiates)
    ssh:
      host: \"c\"
";
    assert_eq!(imported.inventory, want);
    let inv = crate::inventory::Inventory::from_str(&imported.inventory, "imported.yaml")
        .expect("meshup accepts the imported inventory");
    assert_eq!(inv.nodes().len(), 3);
    // node-b's subnet line is only in node-b's view of node-a, not a finding.
    assert!(imported.findings.is_empty(), "{:?}", imported.findings);
}

#[test]
fn what_the_inventory_cannot_express_is_reported_with_file_and_line() {
    let mut hosts = guide();
    let exit = GUIDE_C.replace("AllowedIPs = 10.10.0.1/32\n", "AllowedIPs = 10.10.0.1/32, 0.0.0.0/0\n")
        .replace("PrivateKey = <secret:private.key>\n", "PrivateKey = <secret:private.key>\nPostUp = iptables -t nat -A POSTROUTING -j MASQUERADE\n");
    hosts[2] = host(
        "c",
        "node-c",
        'c',
        &exit,
        &[
            ('a', Some("2222222222222222")),
            ('b', Some("3333333333333333")),
        ],
    );
    let stranger = GUIDE_A.to_string()
        + "[Peer]\nPublicKey = zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzA=\nAllowedIPs = 10.10.0.9/32\n";
    hosts[0] = host(
        "a",
        "node-a",
        'a',
        &stranger,
        &[
            ('b', Some("1111111111111111")),
            ('c', Some("9999999999999999")),
        ],
    );
    let imported = build(&hosts, "wg0", None);
    let got: Vec<String> = imported.findings.iter().map(ToString::to_string).collect();
    let want = [
        "a: /etc/wireguard/wg0.conf:17: peer zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzA= is not one of the imported hosts",
        "a: /etc/wireguard/wg0.conf:13: node-a and node-c hold different preshared keys for their pair: meshup makes a new one",
        "a: 2 of 3 pairs have a preshared key: meshup gives the others one",
        "c: /etc/wireguard/wg0.conf:5: PostUp = iptables -t nat -A POSTROUTING -j MASQUERADE: meshup's inventory has no such setting",
        "c: /etc/wireguard/wg0.conf:10: AllowedIPs 0.0.0.0/0 sends all traffic through node-a (an exit node): the inventory cannot express it",
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted: Vec<String> = want.iter().map(ToString::to_string).collect();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted);
    assert_eq!(imported.unsupported().count(), 3);
    // Kept as comments, the inventory still loads.
    assert!(
        imported
            .inventory
            .contains("#   c: /etc/wireguard/wg0.conf:10: AllowedIPs 0.0.0.0/0")
    );
    crate::inventory::Inventory::from_str(&imported.inventory, "imported.yaml").expect("loads");
}

#[test]
fn import_output_splits_per_interface() {
    let out = "@@meshup:import:v1\n@@meshup:hostname:node-a\n@@meshup:iface:wg1\n\
@@meshup:pubkey:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA=\n@@meshup:gather:v1\n\
@@meshup:section:config\n[Interface]\nAddress = 10.9.0.1/24\nPrivateKey = <secret:unknown>\n\
@@meshup:status:config:0\n@@meshup:done\n@@meshup:import-done\n";
    let host = ScannedHost::parse(out).expect("parses");
    assert!(host.complete);
    assert_eq!(host.hostname, "node-a");
    let wg1 = &host.interfaces["wg1"];
    assert_eq!(wg1.conf_public_key, Some(key('a')));
    assert!(wg1.facts.config.text.contains("Address = 10.9.0.1/24"));
    assert!(ScannedHost::parse("sh: not found").is_err());
}

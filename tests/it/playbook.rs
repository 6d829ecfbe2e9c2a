//! Playbooks: distro detection and rendered commands per distro (issue 8), firewall
//! backend choice and commands against captured facts, user overrides, and the rendered
//! firewall commands run for real against nft/iptables in a throwaway netns.

use std::path::Path;
use std::process::Command;

use meshup::facts::{self, FirewallFacts, FirewalldFacts, FirewalldZone, HostFacts, OsRelease};
use meshup::playbook::{FirewallKind, InstallNeeds, Playbooks};

fn fixture(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn embedded() -> Playbooks {
    Playbooks::embedded().expect("embedded playbooks are valid")
}

const DISTROS: [(&str, &str); 10] = [
    ("debian-12", "debian"),
    ("ubuntu-24.04", "debian"),
    ("fedora-41", "fedora"),
    ("rocky-9", "fedora"),
    ("alma-9", "fedora"),
    ("arch", "arch"),
    ("manjaro", "arch"),
    ("alpine-3.20", "alpine"),
    ("opensuse-tumbleweed", "suse"),
    ("opensuse-leap-15.6", "suse"),
];

#[test]
fn every_distro_fixture_is_detected() {
    let p = embedded();
    for (fixture_name, playbook) in DISTROS {
        let os = OsRelease::parse(&fixture(&format!("os-release/{fixture_name}.txt")));
        let d = p
            .detect(&os)
            .unwrap_or_else(|e| panic!("{fixture_name}: {e}"));
        assert_eq!(d.file, playbook, "{fixture_name}");
    }
}

#[test]
fn rendered_distro_commands_snapshot() {
    let p = embedded();
    let tools = InstallNeeds {
        tools: true,
        userspace: false,
    };
    let both = InstallNeeds {
        tools: true,
        userspace: true,
    };
    let mut out = String::new();
    for (fixture_name, _) in DISTROS {
        let os = OsRelease::parse(&fixture(&format!("os-release/{fixture_name}.txt")));
        let d = p.detect(&os).expect("detected");
        out.push_str(&format!("## {fixture_name} -> {} ({})\n", d.file, d.name));
        out.push_str(&format!(
            "install: {}\n",
            d.install_command(&tools).unwrap_or_default()
        ));
        out.push_str(&format!(
            "install+userspace: {}\n",
            d.install_command(&both).unwrap_or_default()
        ));
        for cmd in d.service_enable_commands("wg0").expect("valid interface") {
            out.push_str(&format!("enable: {cmd}\n"));
        }
        out.push('\n');
    }
    insta::assert_snapshot!("distro-commands", out);
}

#[test]
fn exact_commands_for_the_main_families() {
    let p = embedded();
    let tools = InstallNeeds {
        tools: true,
        userspace: false,
    };
    let cmd = |name: &str| {
        let os = OsRelease::parse(&fixture(&format!("os-release/{name}.txt")));
        let d = p.detect(&os).expect("detected");
        (
            d.install_command(&tools).unwrap_or_default(),
            d.service_enable_commands("wg-mesh").unwrap_or_default(),
        )
    };
    assert_eq!(
        cmd("debian-12"),
        (
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wireguard-tools".to_string(),
            vec!["systemctl enable --now wg-quick@wg-mesh".to_string()]
        )
    );
    assert_eq!(cmd("rocky-9").0, "dnf install -y -q wireguard-tools");
    assert_eq!(
        cmd("alpine-3.20").1,
        vec![
            "ln -sf /etc/init.d/wg-quick /etc/init.d/wg-quick.wg-mesh",
            "rc-update add wg-quick.wg-mesh default",
            "rc-service wg-quick.wg-mesh start"
        ]
    );
}

#[test]
fn nothing_to_install_and_invalid_interface() {
    let p = embedded();
    let d = p
        .detect(&OsRelease::parse(&fixture("os-release/fedora-41.txt")))
        .expect("fedora");
    assert_eq!(d.install_command(&InstallNeeds::default()), None);
    assert_eq!(
        d.install_command(&InstallNeeds {
            tools: false,
            userspace: true
        }),
        None,
        "fedora ships no wireguard-go"
    );
    assert_eq!(d.service_enable_commands("wg0; reboot"), None);
}

#[test]
fn install_needs_from_captured_facts() {
    let fresh = facts::parse(&fixture("facts/gather/real-fresh-host-dash.txt")).expect("parses");
    // wireguard-tools and wireguard-go are installed on the capture machine.
    assert!(InstallNeeds::from_facts(&fresh).is_empty());
    let bare = HostFacts::default();
    assert_eq!(
        InstallNeeds::from_facts(&bare),
        InstallNeeds {
            tools: true,
            userspace: true
        }
    );
}

#[test]
fn unknown_distro_is_a_clear_error() {
    let os = OsRelease::parse(&fixture("os-release/gentoo.txt"));
    let err = embedded().detect(&os).expect_err("gentoo has no playbook");
    let msg = err.to_string();
    assert!(msg.contains("ID=\"gentoo\""), "{msg}");
    assert!(msg.contains("ID_LIKE=\"\""), "{msg}");
    assert!(msg.contains("Gentoo Linux"), "{msg}");
    assert!(msg.contains("alpine, arch, debian, fedora, suse"), "{msg}");
}

#[test]
fn id_beats_id_like_and_id_like_order_counts() {
    let p = embedded();
    let os = OsRelease {
        id: "ubuntu".into(),
        id_like: vec!["arch".into()],
        ..OsRelease::default()
    };
    assert_eq!(p.detect(&os).expect("ubuntu").file, "debian");
    let os = OsRelease {
        id: "mint-ish".into(),
        id_like: vec!["nope".into(), "suse".into(), "debian".into()],
        ..OsRelease::default()
    };
    assert_eq!(p.detect(&os).expect("like").file, "suse");
}

// ---- firewalls ---------------------------------------------------------------------

fn gathered(name: &str) -> FirewallFacts {
    facts::parse(&fixture(&format!("facts/gather/{name}.txt")))
        .expect("parses")
        .firewall
}

fn firewalld_facts(zone_fixture: &str) -> FirewallFacts {
    FirewallFacts {
        firewalld: FirewalldFacts {
            installed: true,
            running: true,
            zone: FirewalldZone::parse(&fixture(&format!("facts/firewalld/{zone_fixture}.txt"))),
        },
        ..FirewallFacts::default()
    }
}

fn nft_only(name: &str) -> FirewallFacts {
    FirewallFacts {
        nftables: facts::NftablesFacts::parse(&fixture(&format!("facts/nftables/{name}.txt"))),
        ..FirewallFacts::default()
    }
}

fn iptables_only(input: &str) -> FirewallFacts {
    FirewallFacts {
        iptables: facts::IptablesFacts {
            available: true,
            input: facts::IptablesChain::parse(&fixture(&format!("facts/iptables/{input}.txt"))),
            forward: facts::IptablesChain::parse("-P FORWARD DROP\n"),
        },
        ..FirewallFacts::default()
    }
}

#[test]
fn firewall_backend_detection() {
    let cases: [(&str, FirewallFacts, Option<FirewallKind>); 7] = [
        (
            "ufw active (real)",
            gathered("real-debian12-ufw-active-dash"),
            Some(FirewallKind::Ufw),
        ),
        (
            "nft drop policy (real)",
            gathered("real-debian12-nftables-drop-bash"),
            Some(FirewallKind::Nftables),
        ),
        (
            "no firewall (real)",
            gathered("real-busybox-ash-no-firewall"),
            None,
        ),
        (
            "firewalld running (docs)",
            firewalld_facts("docs-list-all-public-closed"),
            Some(FirewallKind::Firewalld),
        ),
        (
            "iptables-nft table only",
            nft_only("real-iptables-nft-managed"),
            None,
        ),
        (
            "iptables DROP policy (real)",
            iptables_only("real-input-drop-closed"),
            Some(FirewallKind::Iptables),
        ),
        (
            "iptables REJECT rule (real)",
            iptables_only("real-input-reject-rule"),
            Some(FirewallKind::Iptables),
        ),
    ];
    for (name, f, expected) in cases {
        assert_eq!(FirewallKind::detect(&f), expected, "{name}");
    }
    let mut both = gathered("real-debian12-ufw-active-dash");
    both.firewalld = firewalld_facts("docs-list-all-public-closed").firewalld;
    assert_eq!(
        FirewallKind::detect(&both),
        Some(FirewallKind::Firewalld),
        "firewalld wins over ufw"
    );
}

#[test]
fn rendered_firewall_commands_snapshot() {
    let p = embedded();
    let cases: [(&str, FirewallFacts); 7] = [
        (
            "ufw-active-open (real)",
            gathered("real-debian12-ufw-active-dash"),
        ),
        (
            "ufw-active-closed (real)",
            FirewallFacts {
                ufw: facts::UfwFacts::parse(&fixture("facts/ufw/real-active-closed.txt")),
                ..FirewallFacts::default()
            },
        ),
        (
            "nftables-drop-closed (real)",
            gathered("real-debian12-nftables-drop-bash"),
        ),
        (
            "nftables-drop-open (real)",
            nft_only("real-inet-filter-drop-open"),
        ),
        (
            "firewalld-closed (docs)",
            firewalld_facts("docs-list-all-public-closed"),
        ),
        (
            "firewalld-open (docs)",
            firewalld_facts("docs-list-all-public-open"),
        ),
        (
            "iptables-drop-closed (real)",
            iptables_only("real-input-drop-closed"),
        ),
    ];
    let mut out = String::new();
    for (name, f) in cases {
        let fw = p.detect_firewall(&f).expect("a firewall is active");
        out.push_str(&format!("## {name} -> {}\n", fw.file));
        for (what, action) in [
            ("open 51820", fw.open_port_commands(&f, 51820)),
            ("forward wg0", fw.forward_commands(&f, "wg0")),
        ] {
            out.push_str(&format!("{what}: {}\n", action.reason));
            for c in action.commands {
                out.push_str(&format!("  $ {c}\n"));
            }
        }
        out.push('\n');
    }
    insta::assert_snapshot!("firewall-commands", out);
}

#[test]
fn open_firewalls_need_no_commands() {
    let p = embedded();
    for f in [
        gathered("real-debian12-ufw-active-dash"),
        nft_only("real-inet-filter-drop-open"),
        firewalld_facts("docs-list-all-public-open"),
        iptables_only("real-input-drop-open"),
    ] {
        let fw = p.detect_firewall(&f).expect("active");
        let action = fw.open_port_commands(&f, 51820);
        assert!(action.commands.is_empty(), "{}: {:?}", fw.file, action);
        assert!(
            action.reason.contains("already allows 51820/udp"),
            "{}",
            action.reason
        );
    }
}

#[test]
fn forward_with_invalid_interface_renders_nothing() {
    let p = embedded();
    let f = gathered("real-debian12-nftables-drop-bash");
    let fw = p.detect_firewall(&f).expect("nft");
    assert!(
        fw.forward_commands(&f, "wg0 accept; flush ruleset")
            .commands
            .is_empty()
    );
}

// ---- user playbook directories -----------------------------------------------------

#[test]
fn user_dir_overrides_and_extends() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("distros")).expect("mkdir");
    std::fs::write(
        dir.path().join("distros/gentoo.yaml"),
        "name: Gentoo\ndetect: { ids: [gentoo] }\npackage_manager: apt-get\n\
         packages: { tools: [net-vpn/wireguard-tools] }\ninstall: emerge {packages}\n\
         init: openrc\nservice_enable: []\n",
    )
    .expect("write");
    let err = Playbooks::load_dir(dir.path()).expect_err("slash in package name");
    assert!(err.to_string().contains("invalid package name"), "{err}");

    std::fs::write(
        dir.path().join("distros/gentoo.yaml"),
        "name: Gentoo\ndetect: { ids: [gentoo] }\npackage_manager: apt-get\n\
         packages: { tools: [wireguard-tools] }\ninstall: emerge --quiet {packages}\n\
         init: openrc\nservice_enable: ['rc-update add wg-quick.{interface} default']\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("distros/debian.yaml"),
        "name: My Debian\ndetect: { ids: [debian] }\npackage_manager: apt-get\n\
         packages: { tools: [wireguard] }\ninstall: apt-get install -y {packages}\n\
         init: systemd\nservice_enable: ['systemctl enable wg-quick@{interface}']\n",
    )
    .expect("write");
    let p = Playbooks::load_dir(dir.path()).expect("loads");
    let gentoo = p
        .detect(&OsRelease::parse(&fixture("os-release/gentoo.txt")))
        .expect("extended");
    assert_eq!(
        gentoo
            .install_command(&InstallNeeds {
                tools: true,
                userspace: false
            })
            .as_deref(),
        Some("emerge --quiet wireguard-tools")
    );
    let debian = p
        .detect(&OsRelease::parse(&fixture("os-release/debian-12.txt")))
        .expect("overridden");
    assert_eq!(debian.name, "My Debian");
    assert!(
        p.detect(&OsRelease::parse(&fixture("os-release/ubuntu-24.04.txt")))
            .is_err(),
        "the override dropped ubuntu"
    );
    assert_eq!(p.distros().len(), 6);

    std::fs::write(
        dir.path().join("distros/debian.yaml"),
        "name: x\ndetect: { ids: [debian] }\npackage_manager: apt-get\npackages: { tools: [a] }\n\
         install: apt-get install {pkgs}\ninit: systemd\nservice_enable: []\n",
    )
    .expect("write");
    let err = Playbooks::load_dir(dir.path()).expect_err("unknown placeholder");
    assert!(
        err.to_string().contains("unknown placeholder {pkgs}"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("distros/debian.yaml"),
        "name: x\nbogus: 1\n",
    )
    .expect("write");
    let err = Playbooks::load_dir(dir.path()).expect_err("unknown key");
    assert!(err.to_string().contains("debian.yaml"), "{err}");
}

// ---- real nft/iptables in a throwaway namespace --------------------------------------

struct Netns(String);

impl Netns {
    fn create(name: &str) -> Option<Netns> {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Netns(name.to_string()))
    }

    fn sh(&self, script: &str) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, "sh", "-c", script])
            .output()
            .expect("ip netns exec")
    }

    fn gather(&self) -> HostFacts {
        let dir = tempfile::tempdir().expect("tempdir");
        let params =
            facts::GatherParams::new("wg0", dir.path().to_str().expect("utf8"), 51820, &[])
                .expect("params");
        let out = self.sh(&facts::gather_script(&params));
        facts::parse(&String::from_utf8_lossy(&out.stdout)).expect("parses")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn can_use_netns(tools: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    root && tools.iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Only the live commands (the persist ones write /etc, shared with the machine).
fn live(commands: &[String], prefix: &str) -> Vec<String> {
    commands
        .iter()
        .filter(|c| c.starts_with(prefix))
        .cloned()
        .collect()
}

#[test]
fn real_nftables_open_port_and_forward_converge() {
    if !can_use_netns(&["ip", "nft"]) {
        eprintln!("SKIP: needs root, ip and nft");
        return;
    }
    let Some(ns) = Netns::create(&format!("mu-pb-nft-{}", std::process::id())) else {
        eprintln!("SKIP: cannot create netns");
        return;
    };
    let ruleset = fixture("facts/nftables/real-inet-filter-drop-closed.txt");
    let load = ns.sh(&format!("nft -f - <<'EOF'\n{ruleset}\nEOF"));
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let p = embedded();
    let before = ns.gather();
    let fw = p
        .detect_firewall(&before.firewall)
        .expect("nftables detected");
    assert_eq!(fw.kind, FirewallKind::Nftables);
    let open = live(
        &fw.open_port_commands(&before.firewall, 51820).commands,
        "nft ",
    );
    let forward = live(
        &fw.forward_commands(&before.firewall, "wg0").commands,
        "nft ",
    );
    assert_eq!(open.len(), 1);
    assert_eq!(forward.len(), 1);
    for cmd in open.iter().chain(&forward) {
        let out = ns.sh(cmd);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = ns.gather();
    assert!(
        fw.port_open(&after.firewall, 51820),
        "{:#?}",
        after.firewall.nftables
    );
    assert!(fw.forward_open(&after.firewall, "wg0"));
    assert!(
        fw.open_port_commands(&after.firewall, 51820)
            .commands
            .is_empty(),
        "second run: no change"
    );
}

#[test]
fn real_iptables_open_port_converges() {
    if !can_use_netns(&["ip", "iptables"]) {
        eprintln!("SKIP: needs root, ip and iptables");
        return;
    }
    let Some(ns) = Netns::create(&format!("mu-pb-ipt-{}", std::process::id())) else {
        eprintln!("SKIP: cannot create netns");
        return;
    };
    let setup = ns.sh("iptables -P INPUT DROP && iptables -A INPUT -p tcp --dport 22 -j ACCEPT && iptables -P FORWARD DROP");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let p = embedded();
    let before = ns.gather();
    let fw = p
        .detect_firewall(&before.firewall)
        .expect("iptables detected");
    assert_eq!(fw.kind, FirewallKind::Iptables);
    let cmds = live(
        &fw.open_port_commands(&before.firewall, 51820).commands,
        "iptables ",
    );
    let fwd = live(
        &fw.forward_commands(&before.firewall, "wg0").commands,
        "iptables ",
    );
    for cmd in cmds.iter().chain(&fwd) {
        let out = ns.sh(cmd);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = ns.gather();
    assert!(
        fw.port_open(&after.firewall, 51820),
        "{:?}",
        after.firewall.iptables
    );
    assert!(fw.forward_open(&after.firewall, "wg0"));
    assert!(
        after
            .firewall
            .iptables
            .input
            .rules
            .iter()
            .any(|r| r.contains("--dport 22")),
        "ssh rule untouched"
    );
}

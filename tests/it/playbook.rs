//! Playbooks: distro detection and rendered commands per distro (issue 8), firewall
//! backend choice and commands against captured facts, user overrides, and the rendered
//! firewall commands run for real against nft/iptables in a throwaway netns.

use std::path::Path;
use std::process::Command;

use meshup::facts::{self, FirewallFacts, FirewalldFacts, FirewalldZone, HostFacts, OsRelease};
use meshup::playbook::{
    DetectError, FirewallKind, InitKind, InstallNeeds, Playbooks, ServiceError,
    firewalld_forward_supported,
};

fn fixture(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn embedded() -> Playbooks {
    Playbooks::embedded().expect("embedded playbooks are valid")
}

/// Every release fixture and the playbook entry (file, release name) it must select.
const DISTROS: [(&str, &str, &str); 40] = [
    ("debian-11", "debian", "Debian 11 (bullseye)"),
    ("debian-12", "debian", "Debian 12+ (bookworm, trixie)"),
    ("debian-13", "debian", "Debian 12+ (bookworm, trixie)"),
    ("debian-testing", "debian", "Debian testing/sid"),
    ("devuan-4", "debian", "Devuan 4 (chimaera, = bullseye)"),
    ("devuan-5", "debian", "Devuan 5+ (daedalus, excalibur)"),
    ("ubuntu-20.04", "ubuntu", "Ubuntu 20.04 (focal)"),
    ("ubuntu-22.04", "ubuntu", "Ubuntu 22.04+ (jammy, noble)"),
    ("ubuntu-24.04", "ubuntu", "Ubuntu 22.04+ (jammy, noble)"),
    ("linuxmint-21.3", "ubuntu", "Ubuntu derivative"),
    ("fedora-41", "fedora", "Fedora"),
    ("fedora-coreos-41", "fedora", "Fedora CoreOS"),
    (
        "fedora-silverblue-41",
        "fedora",
        "Fedora Atomic desktop / IoT (rpm-ostree)",
    ),
    ("rhel-8", "el", "RHEL 8"),
    ("rocky-8", "el", "Rocky/Alma/CentOS Stream 8"),
    ("alma-8", "el", "Rocky/Alma/CentOS Stream 8"),
    ("centos-stream-8", "el", "Rocky/Alma/CentOS Stream 8"),
    ("oracle-8", "el", "Oracle Linux 8"),
    ("rhel-9", "el", "Enterprise Linux 9+"),
    ("rocky-9", "el", "Enterprise Linux 9+"),
    ("alma-9", "el", "Enterprise Linux 9+"),
    ("oracle-9", "el", "Enterprise Linux 9+"),
    ("centos-stream-9", "el", "Enterprise Linux 9+"),
    ("amazon-2", "amazon", "Amazon Linux 2"),
    ("amazon-2023", "amazon", "Amazon Linux 2023+"),
    ("arch", "arch", "Arch Linux and derivatives"),
    ("manjaro", "arch", "Arch Linux and derivatives"),
    ("alpine-3.20", "alpine", "Alpine Linux"),
    ("postmarketos-v24.06", "alpine", "postmarketOS"),
    (
        "opensuse-tumbleweed",
        "suse",
        "openSUSE Tumbleweed / Slowroll",
    ),
    ("opensuse-leap-15.2", "suse", "openSUSE Leap 15.x"),
    ("opensuse-leap-15.3", "suse", "openSUSE Leap 15.x"),
    ("opensuse-leap-15.6", "suse", "openSUSE Leap 15.x"),
    (
        "opensuse-microos",
        "suse",
        "openSUSE MicroOS / Leap Micro / SLE Micro",
    ),
    ("sles-15-sp5", "suse", "SUSE Linux Enterprise 15"),
    // Unsupported releases: the entry that refuses them.
    (
        "centos-7",
        "el",
        "Enterprise Linux 7 and older (CentOS 7, RHEL 7, Oracle 7)",
    ),
    (
        "oracle-7",
        "el",
        "Enterprise Linux 7 and older (CentOS 7, RHEL 7, Oracle 7)",
    ),
    ("debian-10", "debian", "Debian 10 (buster)"),
    (
        "amazon-ami-2016.03",
        "amazon",
        "Amazon Linux AMI (2018.03 and older)",
    ),
    ("sles-12", "suse", "SUSE Linux Enterprise 12 and older"),
];

fn os(name: &str) -> OsRelease {
    OsRelease::parse(&fixture(&format!("os-release/{name}.txt")))
}

#[test]
fn every_fixture_names_its_source() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/os-release");
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("# source: "),
            "{} must start with `# source: ...`",
            path.display()
        );
    }
}

#[test]
fn every_release_fixture_selects_its_entry() {
    let p = embedded();
    for (fixture_name, file, release) in DISTROS {
        let os = os(fixture_name);
        match p.detect(&os) {
            Ok(d) => assert_eq!(
                (d.file.as_str(), d.name.as_str()),
                (file, release),
                "{fixture_name}"
            ),
            Err(DetectError::Unsupported {
                file: f,
                release: r,
                ..
            }) => assert_eq!((f.as_str(), r.as_str()), (file, release), "{fixture_name}"),
            Err(e) => panic!("{fixture_name}: {e}"),
        }
    }
}

#[test]
fn unsupported_releases_are_clear_errors_naming_the_release() {
    let p = embedded();
    let msg = |name: &str| p.detect(&os(name)).expect_err(name).to_string();
    let centos = msg("centos-7");
    assert!(
        centos.starts_with(
            "CentOS Linux 7 (Core) (ID=\"centos\", VERSION_ID=\"7\") is not supported"
        ),
        "{centos}"
    );
    assert!(centos.contains("EL8 or newer"), "{centos}");
    let buster = msg("debian-10");
    assert!(buster.contains("Debian GNU/Linux 10 (buster)"), "{buster}");
    assert!(buster.contains("buster-backports"), "{buster}");
    for name in ["oracle-7", "amazon-ami-2016.03", "sles-12"] {
        assert!(msg(name).contains("is not supported"), "{name}");
    }
}

fn recipe(p: &Playbooks, name: &str) -> String {
    let tools = InstallNeeds {
        tools: true,
        userspace: false,
    };
    let both = InstallNeeds {
        tools: true,
        userspace: true,
    };
    let d = match p.detect(&os(name)) {
        Ok(d) => d,
        Err(e) => return format!("## {name}\nerror: {e}\n\n"),
    };
    let mut out = format!("## {name} -> {} / {}\n", d.file, d.name);
    out.push_str(&format!("package manager: {}\n", d.package_manager));
    out.push_str(&format!(
        "install: {}\n",
        d.install_command(&tools).unwrap_or_default()
    ));
    out.push_str(&format!(
        "install+no-module: {}\n",
        d.install_command(&both).unwrap_or_default()
    ));
    out.push_str(&format!(
        "lock wait: {}\n",
        d.lock_wait_call(120).unwrap_or_else(|| "-".into())
    ));
    for init in [InitKind::Systemd, InitKind::Openrc, InitKind::Sysvinit] {
        match d.service_commands(init, "wg0") {
            Ok(r) => {
                for c in r.commands {
                    out.push_str(&format!("service {}: {c}\n", init.as_str()));
                }
            }
            Err(e) => out.push_str(&format!("service {}: - ({e})\n", init.as_str())),
        }
    }
    for note in &d.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push('\n');
    out
}

#[test]
fn rendered_distro_commands_snapshot() {
    let p = embedded();
    let out: String = DISTROS
        .iter()
        .map(|(name, _, _)| recipe(&p, name))
        .collect();
    insta::assert_snapshot!("distro-commands", out);
}

#[test]
fn exact_commands_for_the_main_families() {
    let p = embedded();
    let tools = InstallNeeds {
        tools: true,
        userspace: false,
    };
    let both = InstallNeeds {
        tools: true,
        userspace: true,
    };
    let d = |name: &str| p.detect(&os(name)).expect(name);
    assert_eq!(
        d("debian-12").install_command(&tools).as_deref(),
        Some(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wireguard-tools"
        )
    );
    assert_eq!(
        d("debian-12").service_enable_commands("wg-mesh"),
        Some(vec![
            "systemctl enable --no-reload --now wg-quick@wg-mesh".to_string()
        ])
    );
    assert_eq!(
        d("debian-11").install_command(&both).as_deref(),
        Some(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wireguard-tools"
        ),
        "no wireguard-go in bullseye"
    );
    assert_eq!(
        d("rocky-8").install_command(&both).as_deref(),
        Some(
            "dnf install -y -q epel-release elrepo-release && dnf install -y -q wireguard-tools kmod-wireguard"
        )
    );
    assert_eq!(
        d("rocky-9").install_command(&tools).as_deref(),
        Some("dnf install -y -q wireguard-tools")
    );
    assert_eq!(
        d("amazon-2").install_command(&tools).as_deref(),
        Some("amazon-linux-extras install -y epel && yum install -y -q wireguard-tools")
    );
    assert_eq!(
        d("opensuse-microos").install_command(&tools).as_deref(),
        Some("transactional-update --non-interactive pkg install --no-recommends wireguard-tools")
    );
    assert_eq!(
        d("alpine-3.20")
            .service_commands(InitKind::Openrc, "wg-mesh")
            .expect("openrc")
            .commands,
        vec![
            "ln -sf /etc/init.d/wg-quick /etc/init.d/wg-quick.wg-mesh",
            "rc-update add wg-quick.wg-mesh default",
            "rc-service wg-quick.wg-mesh start"
        ]
    );
    assert_eq!(
        d("debian-12").lock_wait_call(90).as_deref(),
        Some(
            "mu_wait_lock 90 dpkg fcntl:/var/lib/dpkg/lock-frontend fcntl:/var/lib/dpkg/lock fcntl:/var/lib/apt/lists/lock fcntl:/var/cache/apt/archives/lock"
        )
    );
    let full = d("arch").lock_wait_command(5).expect("pacman lock");
    assert!(full.starts_with("# mu_wait_lock TIMEOUT NAME"), "{full}");
    assert!(
        full.ends_with("\nmu_wait_lock 5 pacman exists:/var/lib/pacman/db.lck"),
        "{full}"
    );
    assert_eq!(d("fedora-silverblue-41").lock_wait_call(5), None);
}

#[test]
fn service_recipe_follows_the_hosts_init_not_the_playbook() {
    let p = embedded();
    let pmos = p.detect(&os("postmarketos-v24.06")).expect("pmos");
    let systemd = facts::InitSystem {
        systemd: true,
        ..Default::default()
    };
    assert_eq!(
        pmos.service_commands_for(&systemd, "wg0")
            .expect("systemd")
            .commands,
        vec!["systemctl enable --no-reload --now wg-quick@wg0"]
    );
    let devuan = p.detect(&os("devuan-5")).expect("devuan");
    let sysv = facts::InitSystem {
        sysvinit: true,
        pid1: Some("init".into()),
        ..Default::default()
    };
    let r = devuan.service_commands_for(&sysv, "wg0").expect("sysvinit");
    assert_eq!(r.init, InitKind::Sysvinit);
    assert!(r.commands.iter().all(|c| !c.contains("systemctl")), "{r:?}");
    assert_eq!(r.commands[2], "update-rc.d wg-quick.wg0 defaults");
    // Debian booted by OpenRC: the same LSB script, in OpenRC's default runlevel.
    let debian = p.detect(&os("debian-12")).expect("debian");
    let openrc = facts::InitSystem {
        openrc: true,
        sysvinit: true,
        pid1: Some("init".into()),
        ..Default::default()
    };
    let o = debian.service_commands_for(&openrc, "wg0").expect("openrc");
    let s = debian.service_commands_for(&sysv, "wg0").expect("sysvinit");
    assert_eq!(o.init, InitKind::Openrc);
    assert_eq!(o.commands[..2], s.commands[..2], "the same init script");
    assert_eq!(
        o.commands[2..],
        [
            "rc-update add wg-quick.wg0 default",
            "rc-service wg-quick.wg0 start"
        ]
    );
    let alpine = p.detect(&os("alpine-3.20")).expect("alpine");
    let err = alpine
        .service_commands_for(&systemd, "wg0")
        .expect_err("no systemd");
    assert_eq!(
        err.to_string(),
        "the Alpine Linux playbook has no service recipe for systemd (it has: openrc)"
    );
    let none = facts::InitSystem {
        pid1: Some("runit".into()),
        ..Default::default()
    };
    assert!(
        alpine
            .service_commands_for(&none, "wg0")
            .expect_err("runit")
            .to_string()
            .contains("PID 1 is runit")
    );
    assert!(matches!(
        alpine.service_commands(InitKind::Openrc, "wg0; reboot"),
        Err(ServiceError::InvalidInterface(_))
    ));
}

#[test]
fn init_kind_from_gathered_facts() {
    let cases = [
        (
            "systemd=yes\nopenrc=no\nsysvinit=no\npid1=systemd\n",
            Some(InitKind::Systemd),
        ),
        (
            "systemd=no\nopenrc=yes\nsysvinit=no\npid1=init\n",
            Some(InitKind::Openrc),
        ),
        (
            "systemd=no\nopenrc=no\nsysvinit=yes\npid1=init\n",
            Some(InitKind::Sysvinit),
        ),
        ("systemd=no\nopenrc=no\npid1=runit\n", None),
    ];
    for (body, expected) in cases {
        assert_eq!(
            InitKind::from_facts(&facts::InitSystem::parse(body)),
            expected,
            "{body}"
        );
    }
}

#[test]
fn firewall_persistence_follows_the_distro() {
    let p = embedded();
    let nft = gathered("real-debian12-nftables-drop-bash");
    let ipt = iptables_only("real-input-drop-closed");
    let mut out = String::new();
    for name in [
        "debian-12",
        "rocky-9",
        "arch",
        "alpine-3.20",
        "opensuse-leap-15.6",
    ] {
        let d = p.detect(&os(name)).expect(name);
        for f in [&nft, &ipt] {
            let fw = p.detect_firewall(f).expect("active");
            out.push_str(&format!("## {name} / {}\n", fw.file));
            for c in fw.open_port_commands_for(f, 51820, d).commands {
                out.push_str(&format!("  $ {c}\n"));
            }
            for c in fw.forward_commands_for(f, "wg0", d).commands {
                out.push_str(&format!("  $ {c}\n"));
            }
        }
    }
    insta::assert_snapshot!("firewall-persistence", out);
}

#[test]
fn firewalld_forward_needs_version_1() {
    assert_eq!(firewalld_forward_supported("1.3.4"), Ok(()));
    assert_eq!(firewalld_forward_supported("2.0.0"), Ok(()));
    let err = firewalld_forward_supported("0.9.3").expect_err("Leap 15.3");
    assert!(
        err.contains("firewalld 0.9.3 has no --add-forward"),
        "{err}"
    );
}

/// `mu_wait_lock` for real: an fcntl lock held by python3 (as apt holds dpkg's), a
/// file-existence lock (pacman) and a PID file (zypper), under dash, bash and busybox sh.
#[test]
fn wait_lock_waits_reports_the_holder_and_times_out() {
    let shells: Vec<Vec<&str>> = [vec!["dash"], vec!["bash"], vec!["busybox", "sh"]]
        .into_iter()
        .filter(|s| {
            Command::new("sh")
                .args(["-c", &format!("command -v {}", s[0])])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    let has_python = Command::new("python3")
        .arg("-c")
        .arg("import fcntl")
        .status()
        .is_ok_and(|s| s.success());
    if shells.is_empty() || !has_python {
        eprintln!("SKIP: needs dash/bash/busybox and python3");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let lock = dir.path().join("lock-frontend");
    std::fs::write(&lock, "").expect("lock file");
    let run = |shell: &[&str], call: &str| {
        let script = format!("{}\n{call}\necho rc=$?\n", meshup::playbook::WAIT_LOCK_SH);
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .arg("-c")
            .arg(script)
            .output()
            .expect("shell");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for shell in &shells {
        // Held for 2 s, waited for up to 10 s: waits, says who holds it, then succeeds.
        let mut holder = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import fcntl,time,sys\nf=open({:?},'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(2)",
                lock.display().to_string()
            ))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().expect("stdout")),
            &mut line,
        )
        .expect("holder ready");
        let pid = holder.id();
        let start = std::time::Instant::now();
        let out = run(
            shell,
            &format!(
                "mu_wait_lock 10 dpkg fcntl:{}/absent fcntl:{}",
                dir.path().display(),
                lock.display()
            ),
        );
        assert!(
            out.starts_with(&format!(
                "@@meshup:progress:waiting for the dpkg lock held by PID {pid} (python3)\n"
            )),
            "{shell:?}: {out}"
        );
        assert!(out.ends_with("rc=0\n"), "{shell:?}: {out}");
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(900),
            "{shell:?} did not wait"
        );
        holder.wait().expect("holder exits");
        // Free: returns at once, prints nothing.
        assert_eq!(
            run(
                shell,
                &format!("mu_wait_lock 10 dpkg fcntl:{}", lock.display())
            ),
            "rc=0\n"
        );
    }
    // Timeout: 75 and a fail line naming the holder.
    let pacman = dir.path().join("db.lck");
    std::fs::write(&pacman, "").expect("db.lck");
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    let pidfile = dir.path().join("zypp.pid");
    std::fs::write(&pidfile, format!("{}\n", sleeper.id())).expect("pid file");
    for shell in &shells {
        let out = run(
            shell,
            &format!("mu_wait_lock 1 pacman exists:{}", pacman.display()),
        );
        assert_eq!(
            out,
            format!(
                "@@meshup:progress:waiting for the pacman lock held by whoever created {p}\n\
                 @@meshup:fail:the pacman lock is held by whoever created {p} for more than 1 s\nrc=75\n",
                p = pacman.display()
            ),
            "{shell:?}"
        );
        let out = run(
            shell,
            &format!("mu_wait_lock 0 zypp pidfile:{}", pidfile.display()),
        );
        assert_eq!(
            out,
            format!(
                "@@meshup:fail:the zypp lock is held by PID {} (sleep) for more than 0 s\nrc=75\n",
                sleeper.id()
            ),
            "{shell:?}"
        );
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // A PID file of a dead process is no lock.
    assert_eq!(
        run(
            &shells[0],
            &format!("mu_wait_lock 5 zypp pidfile:{}", pidfile.display())
        ),
        "rc=0\n"
    );
}

#[test]
fn wait_lock_script_is_shellcheck_clean() {
    let ok = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: shellcheck not installed");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/wait_lock.sh");
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(&path)
        .output()
        .expect("shellcheck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
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
    assert!(
        msg.contains("alpine, amazon, arch, debian, el, fedora, suse, ubuntu"),
        "{msg}"
    );
}

#[test]
fn id_beats_id_like_and_id_like_order_counts() {
    let p = embedded();
    let os = OsRelease {
        id: "ubuntu".into(),
        id_like: vec!["arch".into()],
        ..OsRelease::default()
    };
    assert_eq!(p.detect(&os).expect("ubuntu").file, "ubuntu");
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
            ..FirewalldFacts::default()
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
            ..facts::IptablesFacts::default()
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
    assert_eq!(
        p.detect(&OsRelease::parse(&fixture("os-release/ubuntu-24.04.txt")))
            .expect("ubuntu has its own file")
            .file,
        "ubuntu",
        "overriding debian.yaml leaves ubuntu.yaml alone"
    );
    assert!(
        p.detect(&OsRelease::parse(&fixture("os-release/debian-10.txt")))
            .is_ok(),
        "the override replaced the Debian 10 refusal too"
    );
    // The override replaced every Debian release by one entry; Gentoo added one.
    assert_eq!(p.distros().iter().filter(|d| d.file == "debian").count(), 1);
    assert!(p.distros().iter().any(|d| d.file == "gentoo"));

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

#[test]
fn user_playbook_can_split_by_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("distros")).expect("mkdir");
    std::fs::write(
        dir.path().join("distros/debian.yaml"),
        "name: My Debian\ndetect: { ids: [debian] }\npackage_manager: apt-get\n\
         packages: { tools: [wireguard-tools] }\ninstall: apt-get install -y {packages}\n\
         services: { systemd: ['systemctl enable --now wg-quick@{interface}'] }\n\
         releases:\n\
         - { name: old, detect: { versions: '<12' }, install: 'apt-get -t bullseye-backports install -y {packages}' }\n\
         - { name: new, detect: { versions: '>=12' } }\n\
         - { name: sid, detect: { versions: none }, unsupported: 'not on sid' }\n",
    )
    .expect("write");
    let p = Playbooks::load_dir(dir.path()).expect("loads");
    let tools = InstallNeeds {
        tools: true,
        userspace: false,
    };
    let d11 = p
        .detect(&OsRelease::parse(&fixture("os-release/debian-11.txt")))
        .expect("11");
    assert_eq!(d11.name, "old");
    assert_eq!(
        d11.install_command(&tools).as_deref(),
        Some("apt-get -t bullseye-backports install -y wireguard-tools")
    );
    let d13 = p
        .detect(&OsRelease::parse(&fixture("os-release/debian-13.txt")))
        .expect("13");
    assert_eq!(d13.name, "new");
    let err = p
        .detect(&OsRelease::parse(&fixture("os-release/debian-testing.txt")))
        .expect_err("sid");
    assert!(err.to_string().contains("not on sid"), "{err}");

    std::fs::write(
        dir.path().join("distros/debian.yaml"),
        "name: x\ndetect: { ids: [debian], versions: '>= eight' }\npackage_manager: apt-get\n\
         packages: { tools: [a] }\ninstall: apt-get install {packages}\n",
    )
    .expect("write");
    let err = Playbooks::load_dir(dir.path()).expect_err("bad range");
    assert!(err.to_string().contains("invalid version range"), "{err}");
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
/// The commands that change the live rules (starting with `prefix`, after any leading
/// `var=value;` assignment), not the ones that persist them.
fn live(commands: &[String], prefix: &str) -> Vec<String> {
    commands
        .iter()
        .filter(|c| {
            let body = match c.split_once("; ") {
                Some((first, rest)) if first.contains('=') && !first.contains(' ') => rest,
                _ => c.as_str(),
            };
            body.starts_with(prefix)
        })
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

/// Every command the firewall playbooks render for the mesh (open the port, trust the
/// interface, forward on a transit node, and take meshup's rules out again), for every
/// backend, is a POSIX sh command that shellcheck passes.
#[test]
fn mesh_firewall_commands_are_shellcheck_clean() {
    use meshup::facts::{FirewalldMeshup, IptablesChain, IptablesFacts, NftablesFacts, UfwFacts};
    use meshup::playbook::{FirewallPaths, MeshMarks};
    let ok = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: shellcheck not installed");
        return;
    }
    let chain = IptablesChain::parse;
    let bare = FirewallFacts {
        ufw: UfwFacts::parse(
            "Status: active\nDefault: deny (incoming), allow (outgoing), deny (routed)\n",
        ),
        firewalld: FirewalldFacts {
            installed: true,
            running: true,
            zones: FirewalldZone::parse_all("public\n  target: default\n  interfaces: \n"),
            meshup: FirewalldMeshup::parse("default=public\n"),
            ..FirewalldFacts::default()
        },
        nftables: NftablesFacts::parse(
            "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n",
        ),
        iptables: IptablesFacts {
            available: true,
            input: chain("-P INPUT DROP\n"),
            forward: chain("-P FORWARD DROP\n"),
            available6: true,
            input6: chain("-P INPUT DROP\n"),
            forward6: chain("-P FORWARD DROP\n"),
        },
    };
    let mut marked = bare.clone();
    marked.ufw = UfwFacts::parse(
        "Status: active\n\nTo  Action  From\n--  ------  ----\nAnywhere on wg0            ALLOW IN    Anywhere                   # meshup:wg0\n",
    );
    marked.firewalld.zones =
        FirewalldZone::parse_all("meshup-wg0\n  target: ACCEPT\n  interfaces: wg0\n");
    marked.nftables = NftablesFacts::parse(
        "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tiifname \"wg0\" accept comment \"meshup:wg0\"\n\t}\n}\n",
    );
    marked.iptables.input =
        chain("-P INPUT DROP\n-A INPUT -i wg0 -m comment --comment \"meshup:wg0\" -j ACCEPT\n");
    let marks = MeshMarks::new("wg0");
    let paths = FirewallPaths::debian();
    let p = embedded();
    for fw in p.firewalls() {
        let mut script = String::from("#!/bin/sh\n");
        for c in fw.open_port_commands(&bare, 51820).commands {
            script.push_str(&c);
            script.push('\n');
        }
        let (gaps, _) = fw.trust_gaps(&bare, &marks, true, &paths);
        assert!(!gaps.is_empty(), "{}: nothing to trust", fw.name);
        for c in gaps.iter().flat_map(|g| &g.action.commands) {
            script.push_str(c);
            script.push('\n');
        }
        let removal = fw
            .untrust_commands(&marked, &marks, &paths)
            .unwrap_or_else(|| panic!("{}: nothing to remove", fw.name));
        for c in removal.commands {
            script.push_str(&c);
            script.push('\n');
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{}.sh", fw.file));
        std::fs::write(&path, &script).expect("write");
        let out = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&path)
            .output()
            .expect("shellcheck");
        assert!(
            out.status.success(),
            "{}:\n{script}\n{}",
            fw.name,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

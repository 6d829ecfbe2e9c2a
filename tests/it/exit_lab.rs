//! Routes people ask for (issue 27), on the local lab: an exit node (a node's internet
//! traffic leaves through pub-1, with pub-1's public address, while its SSH session stays
//! up and the mesh stays healthy; an exit that does not answer leaves the host rolled
//! back; removing the exit restores `ip rule`/`ip route` byte for byte, IPv4 and IPv6;
//! a power cycle brings it back; on a light host and on a firewalld host), MSS clamping
//! on a relay and a subnet router whose mesh interface has MTU 1280 (a 20 MB transfer
//! completes, and stalls with `mss_clamp: false`; nftables and iptables), and a relay
//! and subnet router carrying Docker's chains. The lab's "internet" is its inet router
//! namespace: the test gives it 192.0.2.1 with a what-is-my-ip service.
//! Needs root; `MESHUP_SKIP_LAB=1` skips them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support_lab::{Lab, apply_ok, assert_no_changes, meshup, path_str, wait_for};

/// The TCP helpers run on the hosts and in the lab's inet namespace.
const PY: &str = include_str!("../fixtures/exit_tcp.py");
/// An address beyond every host's uplink: on the lab's internet router.
const INTERNET: &str = "192.0.2.1";
/// Port of the what-is-my-ip service there.
const WHOAMI_PORT: &str = "7";

/// Writes an inventory beside the lab's (its relative key paths stay valid).
fn write_inventory(lab: &Lab, name: &str, text: &str) -> PathBuf {
    let path = lab.out_dir().join(name);
    std::fs::write(&path, text).expect("write inventory");
    path
}

/// `text` with `extra` lines added under node `node` (after its `address:` line).
fn with_node_lines(text: &str, node: &str, extra: &str) -> String {
    let marker = format!("  - name: {node}\n");
    let at = text.find(&marker).expect("node in inventory") + marker.len();
    let line_end = at + text[at..].find('\n').expect("address line") + 1;
    format!("{}{extra}{}", &text[..line_end], &text[line_end..])
}

/// Puts the helper on `host`.
fn put_helper(lab: &Lab, host: &str) {
    lab.host_exec(
        host,
        &format!("cat > /tmp/exit_tcp.py <<'PYEOF'\n{PY}PYEOF\n"),
    )
    .expect_ok("write the TCP helper");
}

/// The internet's what-is-my-ip service: 192.0.2.1 on the inet router, answering each
/// connection with the address it came from. Killed on drop.
struct Whoami {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Whoami {
    fn start(lab: &Lab) -> Whoami {
        let ns = format!("ml.{}.inet", lab.name());
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("exit_tcp.py");
        std::fs::write(&script, PY).expect("write helper");
        let status = Command::new("ip")
            .args(["netns", "exec", &ns, "sh", "-c"])
            .arg(format!(
                "ip link set lo up && ip addr replace {INTERNET}/32 dev lo"
            ))
            .status()
            .expect("ip");
        assert!(status.success(), "address on the inet router");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "python3"])
            .arg(&script)
            .args(["whoami", INTERNET, WHOAMI_PORT])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start whoami");
        Whoami { child, _dir: dir }
    }
}

impl Drop for Whoami {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address the internet sees `host` come from (empty when it cannot connect).
fn seen_as(lab: &Lab, host: &str) -> String {
    lab.host_exec(
        host,
        &format!("python3 /tmp/exit_tcp.py ask {INTERNET} {WHOAMI_PORT}"),
    )
    .stdout
    .trim()
    .to_string()
}

/// Routing state of `host`: what removing the exit must restore exactly.
fn routing(lab: &Lab, host: &str) -> String {
    lab.host_exec(host, "ip -4 rule; ip -4 route; ip -6 rule; ip -6 route")
        .expect_ok("ip rule/route")
        .to_string()
}

/// An SSH session from the workstation to `host` that prints a tick every 100 ms until
/// /tmp/stop-ticks exists there; its output goes to a file on the machine.
struct Ticker {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ticker {
    fn start(lab: &Lab, host: &str) -> Ticker {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("ticks");
        let file = std::fs::File::create(&out).expect("ticks file");
        // The exit labs are root labs (`lab up` without `--user`).
        let child = lab
            .ssh_command(
                "root",
                host,
                "rm -f /tmp/stop-ticks; while [ ! -e /tmp/stop-ticks ]; do echo tick; sleep 0.1; done; echo end",
            )
            .stdout(Stdio::from(file))
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh ticker");
        let ticker = Ticker {
            child,
            out,
            _dir: dir,
        };
        wait_for("the SSH session ticks", Duration::from_secs(20), || {
            ticker.ticks() > 3
        });
        ticker
    }

    fn ticks(&self) -> usize {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "tick")
            .count()
    }

    /// The session still carries data now, then ends cleanly when asked.
    #[track_caller]
    fn assert_alive_then_stop(mut self, lab: &Lab, host: &str) {
        let before = self.ticks();
        wait_for(
            "the SSH session keeps ticking",
            Duration::from_secs(20),
            || self.ticks() > before + 5,
        );
        lab.host_exec(host, "touch /tmp/stop-ticks")
            .expect_ok("stop ticks");
        let mut status = None;
        wait_for("the SSH session ends", Duration::from_secs(20), || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()) && text.ends_with("end\n"),
            "the SSH session did not survive: {status:?}, last output {:?}",
            text.lines().last()
        );
    }
}

/// A node behind the exit reaches the internet with the exit's public address; the
/// routing comes and goes exactly; the SSH session it runs over survives the switch.
/// With `reboot` (systemd flavour), the exit and the node using it are power-cycled once
/// the exit is in place: wg-quick brings the route back at boot (its own policy routing
/// for a 0.0.0.0/0 peer, then meshup's script from `PostUp`), and the next plan is empty.
/// With `dual_stack`, the mesh has `network6` too: the exit peer carries `::/0` and the
/// IPv6 rules and table come and go the same way.
fn exit_round_trip(lab: &Lab, user: &str, reboot: bool, dual_stack: bool) {
    let mut base = std::fs::read_to_string(lab.inventory()).expect("inventory");
    if dual_stack {
        base = base.replace(
            "  network: 10.10.0.0/24\n",
            "  network: 10.10.0.0/24\n  network6: fd10:10::/64\n",
        );
    }
    let exit_ip = lab.host("pub-1").public_ip.clone().expect("pub-1 public");
    let user_ip = lab.host(user).public_ip.clone().expect("public user");
    put_helper(lab, user);
    let _whoami = Whoami::start(lab);
    let bare = routing(lab, user);

    let inv = write_inventory(lab, "base.yaml", &base);
    apply_ok(lab, &inv, &[]);
    assert_eq!(
        seen_as(lab, user),
        user_ip,
        "before the exit, its own address"
    );
    let meshed = routing(lab, user);

    let exit_text = with_node_lines(
        &with_node_lines(&base, "pub-1", "    exit_node: true\n"),
        user,
        "    exit_via: pub-1\n",
    )
    .replace(
        "mesh:\n",
        &format!("mesh:\n  exit_probe: {INTERNET}:{WHOAMI_PORT}\n"),
    );
    let exit_inv = write_inventory(lab, "exit.yaml", &exit_text);

    // An exit that does not answer over the mesh: the route does not move, the host's
    // config and routing are rolled back.
    let user_mesh = lab.host(user).mesh_address.clone();
    lab.host_exec(
        "pub-1",
        &format!(
            "nft add table inet lab_mute && nft add chain inet lab_mute in '{{ type filter hook input priority -10; }}' && nft add rule inet lab_mute in ip saddr {user_mesh} icmp type echo-request drop"
        ),
    )
    .expect_ok("mute pub-1 towards the user");
    let plan = meshup(lab, &["plan", path_str(&exit_inv)]);
    assert!(
        plan.stdout.contains(
            "  > after pub-1 has applied its exit role (forwarding, masquerade) (left as is if pub-1 fails)"
        ),
        "{}",
        plan.stdout
    );
    let prev_conf = lab.host_exec(user, "cat /etc/wireguard/wg0.conf").stdout;
    let failed = meshup(lab, &["apply", "--yes", path_str(&exit_inv)]);
    let recap = failed
        .stdout
        .split("RECAP")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let user_line = recap
        .lines()
        .find(|l| l.trim_start().starts_with(user))
        .unwrap_or_default();
    assert!(
        failed.code == Some(1) && user_line.contains("FAILED") && user_line.contains("rolled back"),
        "{}\n{}",
        failed.stdout,
        failed.stderr
    );
    assert!(
        failed.stdout.contains("does not answer over wg0")
            || failed.stderr.contains("does not answer over wg0"),
        "{}\n{}",
        failed.stdout,
        failed.stderr
    );
    assert_eq!(
        routing(lab, user),
        meshed,
        "routing after the failed switch"
    );
    assert_eq!(
        lab.host_exec(user, "cat /etc/wireguard/wg0.conf").stdout,
        prev_conf,
        "config after the failed switch"
    );
    assert_eq!(seen_as(lab, user), user_ip);
    lab.host_exec("pub-1", "nft delete table inet lab_mute")
        .expect_ok("unmute");

    let ticker = Ticker::start(lab, user);
    let run = apply_ok(lab, &exit_inv, &[]);
    assert!(
        run.stdout.contains("default route through exit pub-1"),
        "{}",
        run.stdout
    );
    assert_eq!(
        seen_as(lab, user),
        exit_ip,
        "through the exit, pub-1's public address"
    );
    ticker.assert_alive_then_stop(lab, user);
    let rules = lab.host_exec(user, "ip -4 rule").stdout;
    assert!(
        rules.contains(&format!("from {user_ip} lookup main proto 77"))
            && rules.contains("not from all fwmark 0xca6c lookup 51820")
            && rules.contains("suppress_prefixlength 0"),
        "{rules}"
    );
    if dual_stack {
        let rules6 = lab
            .host_exec(user, "ip -6 rule; ip -6 route show table 51820")
            .stdout;
        assert!(
            rules6.contains("not from all fwmark 0xca6c lookup 51820")
                && rules6.contains("default dev wg0"),
            "{rules6}"
        );
        let allowed = lab.host_exec(user, "wg show wg0 allowed-ips").stdout;
        assert!(
            allowed
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .any(|w| w.contains(&"0.0.0.0/0") && w.contains(&"::/0")),
            "{allowed}"
        );
    }
    assert_no_changes(lab, &exit_inv);
    let verify = meshup(lab, &["verify", path_str(&exit_inv)]);
    assert!(
        verify.ok()
            && verify.stdout.contains("All pairs healthy")
            && verify.stdout.contains(&format!(
                "{user} → exit pub-1: internet route through wg0, leaves as {exit_ip} ✓"
            )),
        "{}\n{}",
        verify.stdout,
        verify.stderr
    );
    if reboot {
        let out = Command::new(crate::support_lab::lab_command())
            .args(["reboot", lab.name(), "pub-1", user])
            .stdin(Stdio::null())
            .output()
            .expect("lab reboot");
        crate::support_lab::Run::from(out).expect_ok("lab reboot");
        put_helper(lab, user);
        wait_for(
            "after the reboot, the internet sees pub-1's address",
            Duration::from_secs(90),
            || seen_as(lab, user) == exit_ip,
        );
        assert_no_changes(lab, &exit_inv);
        let rules = lab.host_exec(user, "ip -4 rule").stdout;
        assert!(
            rules.contains(&format!("from {user_ip} lookup main proto 77")),
            "after the reboot: {rules}"
        );
    }
    // Another node is untouched: it still leaves with its own address.
    put_helper(lab, "pub-3");
    assert_eq!(
        seen_as(lab, "pub-3"),
        lab.host("pub-3").public_ip.clone().expect("pub-3"),
    );

    // Removing exit_via restores the host's routing byte for byte.
    apply_ok(lab, &inv, &[]);
    assert_eq!(
        routing(lab, user),
        meshed,
        "routing after the exit is removed"
    );
    assert_eq!(seen_as(lab, user), user_ip);
    assert_no_changes(lab, &inv);
    let leftover = lab.host_exec("pub-1", "nft list table inet meshup-wg0-transit");
    assert!(
        !leftover.ok(),
        "pub-1 keeps no transit table: {}",
        leftover.stdout
    );

    // A node using the exit that leaves the mesh (`state: absent`) takes every rule and
    // route it added with it.
    apply_ok(lab, &exit_inv, &[]);
    let gone = with_node_lines(&exit_text, user, "    state: absent\n");
    let gone_inv = write_inventory(lab, "exit-absent.yaml", &gone);
    apply_ok(lab, &gone_inv, &[]);
    assert_eq!(routing(lab, user), bare, "routing after the node left");
    assert_no_changes(lab, &gone_inv);
}

/// Light host, dual-stack mesh (IPv4 underlay).
#[test]
fn exit_lab_light_host_leaves_through_pub1() {
    require_lab!();
    let lab = Lab::up_with(
        "ex-light",
        &["--public", "3", "--nat", "1", "--flavour", "light"],
    );
    exit_round_trip(&lab, "pub-2", false, true);
}

/// The same with firewalld on the node and on the exit (systemd flavour, default zone
/// public, its IPv6 reverse-path filter on) and strict reverse-path filtering for IPv4:
/// what the exit forwards out of its uplink, what comes back through it and what arrives
/// on the node's uplink (SSH) all pass; and both hosts power-cycled come back with the
/// exit route by themselves.
#[test]
fn exit_lab_firewalld_host_leaves_through_pub1() {
    require_lab!();
    let lab = Lab::up_with(
        "ex-fwd",
        &["--public", "3", "--nat", "1", "--flavour", "systemd"],
    );
    for host in ["pub-1", "pub-2"] {
        let on = lab.host_exec(
            host,
            "systemctl enable --now firewalld >/dev/null 2>&1; sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1; firewall-cmd --state",
        );
        assert!(
            on.stdout.contains("running"),
            "firewalld on {host}: {}",
            on.stdout
        );
    }
    exit_round_trip(&lab, "pub-2", true, false);
}

/// Docker's filter chains as dockerd creates them (FORWARD policy DROP, DOCKER-USER,
/// DOCKER-ISOLATION-STAGE-1/2, docker0's rules), IPv4 and IPv6.
const DOCKER_CHAINS: &str = "for t in iptables ip6tables; do
  $t -N DOCKER && $t -N DOCKER-ISOLATION-STAGE-1 && $t -N DOCKER-ISOLATION-STAGE-2 && $t -N DOCKER-USER || exit 1
  $t -P FORWARD DROP
  $t -A FORWARD -j DOCKER-USER
  $t -A FORWARD -j DOCKER-ISOLATION-STAGE-1
  $t -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  $t -A FORWARD -o docker0 -j DOCKER
  $t -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
  $t -A FORWARD -i docker0 -o docker0 -j ACCEPT
  $t -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
  $t -A DOCKER-ISOLATION-STAGE-1 -j RETURN
  $t -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
  $t -A DOCKER-ISOLATION-STAGE-2 -j RETURN
  $t -A DOCKER-USER -j RETURN
done";

/// What a Docker restart leaves of FORWARD: its own rules again, anything else gone.
const DOCKER_RESTART: &str = "for t in iptables ip6tables; do
  $t -F FORWARD
  $t -A FORWARD -j DOCKER-USER
  $t -A FORWARD -j DOCKER-ISOLATION-STAGE-1
  $t -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  $t -A FORWARD -o docker0 -j DOCKER
  $t -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
  $t -A FORWARD -i docker0 -o docker0 -j ACCEPT
done";

/// A path that drops ICMP "fragmentation needed" (a provider's filter): path MTU
/// discovery cannot help, only the MSS can.
const FRAG_NEEDED_FILTERED: &str = "nft -f - <<'EOF'
table inet lab_blackhole {
  chain out {
    type filter hook output priority 0; policy accept;
    icmp type destination-unreachable icmp code frag-needed drop
    icmpv6 type packet-too-big drop
  }
}
EOF";

/// Runs `cmd` on lab host `host`, or on the LAN machine behind gw when `host` is None.
fn on(lab: &Lab, host: Option<&str>, cmd: &str) -> Command {
    let mut c = match host {
        Some(h) => {
            let mut c = Command::new(crate::support_lab::lab_command());
            c.args(["exec", lab.name(), h, "--"]);
            c
        }
        None => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &format!("ml.{}.lan.gw", lab.name())]);
            c
        }
    };
    c.args(["sh", "-c", cmd]).stdin(Stdio::null());
    c
}

/// 20 MB from `from` to `to_addr` on `to` (None: the LAN machine behind gw): "sent
/// SECONDS" or "stalled LEFT".
fn transfer(lab: &Lab, from: Option<&str>, to: Option<&str>, to_addr: &str, port: u16) -> String {
    // Forget path MTUs learned by earlier transfers.
    for h in ["gw", "nat-1", "nat-2", "pub-1"] {
        lab.host_exec(h, "ip route flush cache");
    }
    let helper = lab.out_dir().join("exit_tcp.py");
    std::fs::write(&helper, PY).expect("helper");
    let script = |host: Option<&str>| {
        if host.is_some() {
            "/tmp/exit_tcp.py".to_string()
        } else {
            helper.display().to_string()
        }
    };
    let mut sink = on(
        lab,
        to,
        &format!("python3 {} sink {to_addr} {port} 20", script(to)),
    )
    .stdout(Stdio::null())
    .spawn()
    .expect("sink");
    wait_for("the sink listens", Duration::from_secs(20), || {
        on(lab, to, "ss -ltn").output().is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).contains(&format!("{to_addr}:{port}"))
        })
    });
    let sent = on(
        lab,
        from,
        &format!("python3 {} send {to_addr} {port} 20000000 15", script(from)),
    )
    .output()
    .expect("send");
    let _ = sink.kill();
    let _ = sink.wait();
    String::from_utf8_lossy(&sent.stdout).trim().to_string()
}

fn seconds(result: &str) -> f64 {
    result
        .strip_prefix("sent ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the transfer did not complete: {result}"))
}

/// gw relays nat-1 ↔ nat-2 and routes its LAN; its mesh interface has MTU 1280 and the
/// path filters "fragmentation needed". With the MSS clamp (default) 20 MB pass relayed
/// and from the LAN machine to a mesh node; without it (`mesh.mss_clamp: false`) both
/// stall. gw also runs Docker's chains (FORWARD policy DROP): mesh traffic is relayed
/// and routed, also after a Docker restart rewrote FORWARD, because DOCKER-USER accepts
/// it. The clamp is nftables' (`maxseg size set rt mtu`).
#[test]
fn exit_lab_mss_clamp_and_docker_chains_on_relay_and_subnet_router() {
    require_lab!();
    let lab = Lab::up("ex-mss", "mixed", "light");
    mss_and_docker(&lab, false);
}

/// The same where gw has no nft command (an iptables-only host): the clamp is
/// iptables' (`TCPMSS --clamp-mss-to-pmtu`, `--set-mss`).
#[test]
fn exit_lab_mss_clamp_with_iptables_only() {
    require_lab!();
    let lab = Lab::up("ex-mss-ipt", "mixed", "light");
    mss_and_docker(&lab, true);
}

fn mss_and_docker(lab: &Lab, iptables_only: bool) {
    let base = std::fs::read_to_string(lab.inventory()).expect("inventory");
    lab.host_exec("gw", DOCKER_CHAINS)
        .expect_ok("Docker's chains");
    lab.host_exec("gw", FRAG_NEEDED_FILTERED)
        .expect_ok("frag-needed filtered");
    if iptables_only {
        // Only this host's mount namespace sees it.
        lab.host_exec(
            "gw",
            "mount --bind /bin/false /usr/sbin/nft && ! nft list tables",
        )
        .expect_ok("nft hidden");
    }
    for h in ["nat-1", "nat-2", "pub-1"] {
        put_helper(lab, h);
    }
    let clamped = with_node_lines(&base, "gw", "    mtu: 1280\n");
    let inv = write_inventory(lab, "mtu.yaml", &clamped);
    apply_ok(lab, &inv, &[]);
    assert_no_changes(lab, &inv);
    let docker_user = lab.host_exec("gw", "iptables -S DOCKER-USER; ip6tables -S DOCKER-USER");
    for rule in [
        "-A DOCKER-USER -i wg0 -m comment --comment \"meshup:wg0\" -j ACCEPT",
        "-A DOCKER-USER -o wg0 -m comment --comment \"meshup:wg0\" -j ACCEPT",
    ] {
        assert_eq!(
            docker_user.stdout.matches(rule).count(),
            2,
            "{rule} in v4 and v6:\n{}",
            docker_user.stdout
        );
    }
    // nat-2 → nat-1 through the relay, and the LAN machine → pub-1 through the router:
    // the senders learn a 1380 MSS from peers whose mesh MTU is 1420.
    let relay = |lab: &Lab| transfer(lab, Some("nat-2"), Some("nat-1"), "10.10.0.5", 5101);
    let routed = |lab: &Lab| transfer(lab, None, Some("pub-1"), "10.10.0.1", 5102);
    let clamp = lab
        .host_exec(
            "gw",
            "nft list ruleset; iptables-save -t mangle; ip6tables-save -t mangle",
        )
        .stdout;
    let (nft, ipt) = (
        clamp.contains("maxseg size set rt mtu"),
        clamp.contains("-j TCPMSS --clamp-mss-to-pmtu") && clamp.contains("--set-mss 1240"),
    );
    assert!(
        if iptables_only {
            ipt && !nft
        } else {
            nft && !ipt
        },
        "the clamp in {}: {clamp}",
        if iptables_only {
            "iptables"
        } else {
            "nftables"
        }
    );
    let relayed_s = seconds(&relay(lab));
    let routed_s = seconds(&routed(lab));
    eprintln!("with the clamp: relayed 20 MB in {relayed_s} s, LAN to mesh in {routed_s} s");

    // Docker restarts: FORWARD holds only Docker's rules again; DOCKER-USER carries on.
    lab.host_exec("gw", DOCKER_RESTART)
        .expect_ok("Docker restart");
    seconds(&relay(lab));
    seconds(&routed(lab));

    // Without the clamp, the 1280 hop and the filtered ICMP stall both.
    let unclamped = clamped.replace("mesh:\n", "mesh:\n  mss_clamp: false\n");
    let off = write_inventory(lab, "mtu-off.yaml", &unclamped);
    apply_ok(lab, &off, &[]);
    assert_no_changes(lab, &off);
    let ruleset = lab
        .host_exec("gw", "nft list ruleset; iptables-save; ip6tables-save")
        .stdout;
    assert!(
        !ruleset.contains("maxseg") && !ruleset.contains("TCPMSS"),
        "no clamp left: {ruleset}"
    );
    let stalled_relay = relay(lab);
    let stalled_route = routed(lab);
    assert!(
        stalled_relay.starts_with("stalled") && stalled_route.starts_with("stalled"),
        "without the clamp: relayed {stalled_relay}, routed {stalled_route}"
    );
    eprintln!("without the clamp: relayed {stalled_relay}, routed {stalled_route}");

    // gw leaving the mesh (`state: absent`) takes every rule it added.
    let gone = with_node_lines(&clamped, "gw", "    state: absent\n");
    let gone_inv = write_inventory(lab, "gw-absent.yaml", &gone);
    apply_ok(lab, &gone_inv, &[]);
    let after = lab.host_exec(
        "gw",
        "nft list ruleset; iptables-save; ip6tables-save; ip rule; ip route",
    );
    assert!(
        !after.stdout.contains("meshup") && !after.stdout.contains("maxseg"),
        "{}",
        after.stdout
    );
    assert_no_changes(lab, &gone_inv);
}

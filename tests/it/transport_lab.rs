//! The SSH transport against the lab's real hosts (real OpenSSH sshd in separate
//! namespaces, a real NAT router), through `meshup exec` run in the lab's workstation
//! namespace: root and sudo users, sudo without NOPASSWD, known_hosts learning and a
//! changed key, ProxyJump through a public host to the NAT host, and an unreachable host.

use crate::support_lab::{Lab, Run};
use std::path::Path;
use std::time::{Duration, Instant};

fn meshup_exec(lab: &Lab, inventory: &Path, command: &str) -> Run {
    let out = lab
        .ws_command(&[
            env!("CARGO_BIN_EXE_meshup"),
            "exec",
            inventory.to_str().expect("utf8 path"),
            "--",
            command,
        ])
        .output()
        .expect("run meshup exec");
    Run::from(out)
}

/// Writes an inventory of the lab's guide hosts with the given ssh section and node lines.
fn inventory(dir: &Path, lab: &Lab, ssh: &str, nodes: &str) -> std::path::PathBuf {
    let key = lab.out_dir().join("id_ed25519");
    let text = format!(
        "mesh:\n  network: 10.10.0.0/24\nssh:\n  identity_file: {}\n{ssh}nodes:\n{nodes}",
        key.display()
    );
    let path = dir.join("inventory.yaml");
    std::fs::write(&path, text).expect("write inventory");
    path
}

const GUIDE_NODES: &str = "  - name: node-a\n    endpoint: 203.0.113.10\n    ssh: { host: 203.0.113.10 }\n  - name: node-b\n    endpoint: 198.51.100.20\n    ssh: { host: 198.51.100.20 }\n  - name: node-c\n    ssh: { host: 100.64.0.2, port: 2222 }\n";

#[test]
fn lab_transport_users_sudo_and_host_keys() {
    require_lab!();
    let lab = Lab::up("it-tr-keys", "guide", "light");
    let dir = tempfile::tempdir().expect("tempdir");
    let known = lab.out_dir().join("known_hosts");

    // Root with the lab's known_hosts, strict checking.
    let inv = inventory(
        dir.path(),
        &lab,
        &format!(
            "  known_hosts: {}\n  host_key_checking: \"yes\"\n",
            known.display()
        ),
        GUIDE_NODES,
    );
    let run = meshup_exec(&lab, &inv, "id -u; hostname");
    assert!(run.ok(), "{}{}", run.stdout, run.stderr);
    for h in ["node-a", "node-b", "node-c"] {
        assert!(run.stdout.contains(&format!("{h}: 0")), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("{h}: {h}")), "{}", run.stdout);
    }

    // A non-root user with NOPASSWD sudo: commands run as root, output intact.
    let inv = inventory(
        dir.path(),
        &lab,
        &format!(
            "  user: admin\n  become: sudo\n  known_hosts: {}\n  host_key_checking: \"yes\"\n",
            known.display()
        ),
        GUIDE_NODES,
    );
    let run = meshup_exec(
        &lab,
        &inv,
        "id -u; printf 'a b\\tc\\n'; echo err >&2; exit 3",
    );
    assert!(!run.ok());
    assert!(run.stdout.contains("node-a: 0"), "{}", run.stdout);
    assert!(run.stdout.contains("node-c: a b\tc"), "{}", run.stdout);
    assert!(run.stderr.contains("node-b: err"), "{}", run.stderr);
    assert!(
        run.stderr.contains("node-b: exit status 3"),
        "{}",
        run.stderr
    );

    // sudo that needs a password fails fast with a message saying what to do.
    let inv = inventory(
        dir.path(),
        &lab,
        &format!(
            "  user: nopw\n  become: sudo\n  known_hosts: {}\n  host_key_checking: \"yes\"\n",
            known.display()
        ),
        "  - name: node-a\n    ssh: { host: 203.0.113.10 }\n",
    );
    let started = Instant::now();
    let run = meshup_exec(&lab, &inv, "true");
    assert!(!run.ok());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("NOPASSWD"), "{}", run.stderr);

    // accept-new: an empty per-inventory known_hosts learns every host; a second run
    // matches; a changed key is refused naming file and line.
    let learned = dir.path().join("learned_hosts");
    std::fs::write(&learned, "").expect("write");
    let inv = inventory(
        dir.path(),
        &lab,
        &format!(
            "  known_hosts: {}\n  host_key_checking: accept-new\n",
            learned.display()
        ),
        GUIDE_NODES,
    );
    let run = meshup_exec(&lab, &inv, "true");
    assert!(run.ok(), "{}", run.stderr);
    let text = std::fs::read_to_string(&learned).expect("read");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("[100.64.0.2]:2222 "), "{text}");
    let run = meshup_exec(&lab, &inv, "true");
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&learned).expect("read"), text);

    // Swap node-b's key for node-a's: node-b now presents a CHANGED key.
    let line_a = text
        .lines()
        .find(|l| l.starts_with("203.0.113.10 "))
        .expect("node-a line");
    let key_a = line_a.split_once(' ').expect("fields").1;
    let (n, _) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("198.51.100.20 "))
        .expect("node-b line");
    let changed: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == n {
                format!("198.51.100.20 {key_a}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&learned, &changed).expect("write");
    let run = meshup_exec(&lab, &inv, "true");
    assert!(!run.ok());
    assert!(run.stderr.contains("CHANGED"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("{}:{}", learned.display(), n + 1)),
        "{}",
        run.stderr
    );
    // The other hosts still ran.
    assert!(!run.stderr.contains("node-a: FAILED"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&learned).expect("read"),
        changed,
        "a changed key is never overwritten"
    );
}

#[test]
fn lab_transport_proxyjump_and_unreachable_host() {
    require_lab!();
    let lab = Lab::up("it-tr-jump", "guide", "light");
    let dir = tempfile::tempdir().expect("tempdir");
    let known = lab.out_dir().join("known_hosts");

    // Cut the workstation off the NAT router's SSH port: only the jump can reach it.
    let ws = format!("ml.{}.ws", lab.name());
    let block = std::process::Command::new("ip")
        .args(["netns", "exec", &ws, "nft", "add table inet cut; add chain inet cut out { type filter hook output priority 0; }; add rule inet cut out ip daddr 100.64.0.2 tcp dport 2222 drop"])
        .status()
        .expect("nft");
    assert!(block.success());

    let nodes = "  - name: node-a\n    endpoint: 203.0.113.10\n    ssh: { host: 203.0.113.10 }\n  - name: node-c\n    ssh: { host: 100.64.0.2, port: 2222, jump: root@203.0.113.10 }\n  - name: ghost\n    ssh: { host: 203.0.113.99 }\n";
    let inv = inventory(
        dir.path(),
        &lab,
        &format!(
            "  known_hosts: {}\n  host_key_checking: \"yes\"\n  connect_timeout: 3\n",
            known.display()
        ),
        nodes,
    );
    let started = Instant::now();
    let run = meshup_exec(&lab, &inv, "hostname");
    let took = started.elapsed();
    assert!(!run.ok(), "the unreachable host makes the run fail");
    assert!(
        run.stdout.contains("node-a: node-a"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("node-c: node-c"),
        "jump failed: {}{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.contains("ghost: FAILED"), "{}", run.stderr);
    assert!(
        took < Duration::from_secs(10),
        "unreachable host held the run for {took:?}"
    );

    // Without the jump node-c is unreachable (proves the jump carried the connection).
    let nodes = "  - name: node-a\n    endpoint: 203.0.113.10\n    ssh: { host: 203.0.113.10 }\n  - name: node-c\n    ssh: { host: 100.64.0.2, port: 2222 }\n";
    let inv = inventory(
        dir.path(),
        &lab,
        &format!(
            "  known_hosts: {}\n  host_key_checking: \"yes\"\n  connect_timeout: 2\n",
            known.display()
        ),
        nodes,
    );
    let run = meshup_exec(&lab, &inv, "hostname");
    assert!(!run.ok());
    assert!(run.stderr.contains("node-c: FAILED"), "{}", run.stderr);
}

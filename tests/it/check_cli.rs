//! `meshup check` and the command-line surface.
use assert_cmd::Command;

use crate::support_core::root;

fn meshup() -> Command {
    let mut cmd = Command::cargo_bin("meshup").expect("binary built");
    cmd.current_dir(root())
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100");
    cmd
}

fn run(args: &[&str]) -> (i32, String, String) {
    let output = meshup().args(args).output().expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_guide_mesh() {
    let (code, stdout, stderr) = run(&["check", "inventory/guide.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("check_guide", stdout);
}

#[test]
fn check_prints_relays_and_transit_nodes() {
    let (code, stdout, stderr) = run(&["check", "inventory/lab-example.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("check_lab_example", stdout);
}

#[test]
fn check_reports_every_error_with_line_and_caret() {
    let (code, stdout, stderr) = run(&["check", "tests/fixtures/inventory/broken.yaml"]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(stderr.contains("broken.yaml:3:14"), "{stderr}");
    assert!(
        stderr.contains("duplicate node name `node-a` (first defined on line 8)"),
        "{stderr}"
    );
    insta::assert_snapshot!("check_broken", stderr);
}

#[test]
fn check_uses_the_lock_file_without_writing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.yaml");
    std::fs::write(
        &inventory,
        "mesh:\n  network: 10.5.0.0/24\nnodes:\n  - name: new\n    endpoint: 192.0.2.9\n  - name: old\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("inventory.yaml.lock"),
        "old:\n  address: 10.5.0.7\n",
    )
    .expect("write");
    let output = meshup()
        .current_dir(dir.path())
        .arg("check")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = |node: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(node))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("old ").contains("10.5.0.7 (auto, locked)"), "{stdout}");
    assert!(row("new ").contains("10.5.0.1 (auto, new)"), "{stdout}");
    assert!(stdout.contains("`meshup apply` will write it"), "{stdout}");
    let lock = std::fs::read_to_string(dir.path().join("inventory.yaml.lock")).expect("lock");
    assert_eq!(
        lock, "old:\n  address: 10.5.0.7\n",
        "check never writes the lock"
    );
}

#[test]
fn missing_inventory_is_an_error() {
    let (code, _, stderr) = run(&["check", "does/not/exist.yaml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read inventory does/not/exist.yaml"),
        "{stderr}"
    );
}

#[test]
fn every_command_reports_a_missing_inventory_clearly() {
    for command in [
        &[
            "plan",
            "--detailed-exitcode",
            "--format",
            "json",
            "--limit",
            "a,b",
        ][..],
        &["apply", "--yes", "--stats"],
        &["verify", "--format", "dot"],
    ] {
        let (code, _, stderr) = run(command);
        assert_eq!(code, 1, "{command:?}");
        assert!(
            stderr.contains("cannot read inventory inventory.yaml"),
            "{command:?}: {stderr}"
        );
    }
}

#[test]
fn help_lists_every_command_and_global_flag() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "check",
        "plan",
        "apply",
        "verify",
        "--parallel",
        "--verbose",
    ] {
        assert!(stdout.contains(word), "{word} missing from help:\n{stdout}");
    }
    let (code, _, stderr) = run(&["--parallel", "0", "check"]);
    assert_eq!(code, 2, "clap rejects --parallel 0: {stderr}");
}

/// A generated mesh of `n` nodes, every fifth behind NAT.
fn big_inventory(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let mut text = String::from("mesh:\n  network: 10.0.0.0/16\nssh:\n  user: root\nnodes:\n");
    for i in 0..n {
        if i % 5 == 4 {
            text.push_str(&format!("  - name: n{i}\n"));
        } else {
            text.push_str(&format!(
                "  - name: n{i}\n    endpoint: 198.51.{}.{}:51820\n",
                i / 250,
                i % 250 + 1
            ));
        }
    }
    let path = dir.join("big.yaml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn check_of_a_big_mesh_summarises_peers_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = big_inventory(dir.path(), 200);
    let inv = inv.to_str().expect("utf8");
    let (code, stdout, stderr) = run(&["check", inv]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("--peers prints them all"), "{stdout}");
    assert!(stdout.contains("  n0 (199 peers)"), "{stdout}");
    assert!(
        stdout.contains("  n4 (160 peers)"),
        "a NAT node peers with the 160 public ones"
    );
    assert!(!stdout.contains("-> n1 "), "no full peer list by default");
    assert!(
        stdout.contains("relays n104,n109,n114,n119,n124 and 35 more"),
        "{stdout}"
    );
    assert!(stdout.contains("200 nodes, 19120 tunnels"), "{stdout}");
    assert!(stdout.lines().count() < 500, "one line per node");
    let (code, full, _) = run(&["check", "--peers", inv]);
    assert_eq!(code, 0);
    assert!(full.contains("-> n1 "));
    assert!(full.lines().count() > 200 * 150);
}

#[test]
fn check_prints_sites_hubs_and_private_network_pairs() {
    let (code, stdout, stderr) = run(&["check", "inventory/sites.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("check_sites", stdout);
}

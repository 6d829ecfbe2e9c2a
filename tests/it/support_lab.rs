//! Test helper around the local lab (`tests/lab/lab`): real Linux hosts made of namespaces,
//! each running a real sshd, on this machine. A [`Lab`] is brought up by [`Lab::up`] and torn
//! down when dropped. Needs root (the lab creates namespaces); see tests/lab/README.md.
#![allow(dead_code)] // Not every test binary uses every accessor.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Path of the lab command inside this repository.
pub fn lab_command() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab")
}

/// Whether lab tests can run here: they need root. Set `MESHUP_SKIP_LAB=1` to skip them
/// explicitly (they then print why and pass without checking anything).
pub fn lab_skip_reason() -> Option<String> {
    if std::env::var_os("MESHUP_SKIP_LAB").is_some_and(|v| v != "0") {
        return Some("MESHUP_SKIP_LAB is set".to_owned());
    }
    None
}

/// One host of a running lab, as described by the lab's `hosts.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabHost {
    /// Node name (also the host's hostname and its inventory name).
    pub name: String,
    /// `public`, `nat` or `subnet` (a public host with a LAN behind it).
    pub role: String,
    /// Public address (none for hosts behind NAT).
    pub public_ip: Option<String>,
    /// Public IPv6 address (`--dual` and `--v6-only` hosts; the latter have no `public_ip`).
    #[serde(default)]
    pub public_ip6: Option<String>,
    /// Public address of the NAT router in front of the host (NAT hosts only).
    pub router_ip: Option<String>,
    /// Address the workstation uses for SSH.
    pub ssh_host: String,
    /// Port the workstation uses for SSH (a port forward for NAT hosts).
    pub ssh_port: u16,
    /// Mesh address the inventory gives the host.
    pub mesh_address: String,
    /// Network namespace of the host.
    pub netns: String,
    /// Subnet behind a subnet router.
    pub lan_subnet: Option<String>,
    /// Address of the machine on that subnet.
    pub probe: Option<String>,
    /// What boots the host: `systemd`, `sysvinit`, `openrc` (`--init`), `none` (light).
    #[serde(default)]
    pub init: Option<String>,
    /// A QEMU VM with its own kernel (`--vm`), not a namespace host.
    #[serde(default)]
    pub vm: bool,
}

/// A running lab; torn down (namespaces, processes, cgroups, state) on drop.
#[derive(Debug)]
pub struct Lab {
    name: String,
    out: PathBuf,
    hosts: Vec<LabHost>,
}

/// Output of a command as text, with a readable summary for assertion messages.
#[derive(Debug)]
pub struct Run {
    /// Exit status code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// True when the command exited with status 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the command's output unless it succeeded; returns stdout.
    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &str {
        assert!(
            self.ok(),
            "{what} failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

impl Lab {
    /// Brings up lab `name` (scenario `guide`, `mixed` or `scale:N`; flavour `light` or
    /// `systemd`), replacing any previous lab of that name. Panics with the lab's output on
    /// failure.
    pub fn up(name: &str, scenario: &str, flavour: &str) -> Lab {
        Lab::up_with(name, &["--scenario", scenario, "--flavour", flavour])
    }

    /// Brings up lab `name` with extra `lab up` arguments (e.g. `--public 3 --nat 1`).
    pub fn up_with(name: &str, args: &[&str]) -> Lab {
        let out = Command::new(lab_command())
            .args(["up", "--name", name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tests/lab/lab up");
        let run = Run::from(out);
        let state = std::env::var_os("MESHUP_LAB_STATE")
            .map_or_else(|| PathBuf::from("/var/lib/meshup-lab"), PathBuf::from);
        let out_dir = state.join(name).join("out");
        // Constructed before checking, so a half-built lab is still torn down.
        let mut lab = Lab {
            name: name.to_owned(),
            out: out_dir,
            hosts: Vec::new(),
        };
        run.expect_ok(&format!("lab up {name}"));
        let json = std::fs::read_to_string(lab.out.join("hosts.json")).expect("read hosts.json");
        lab.hosts = serde_json::from_str(&json).expect("parse hosts.json");
        lab
    }

    /// Lab name (prefix of all its namespaces: `ml.<name>.`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Directory holding inventory.yaml, id_ed25519, known_hosts, ssh_config and hosts.json.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// The generated inventory.
    pub fn inventory(&self) -> PathBuf {
        self.out.join("inventory.yaml")
    }

    /// The lab's hosts.
    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// The host called `name`; panics when absent.
    #[track_caller]
    pub fn host(&self, name: &str) -> &LabHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("lab {} has no host {name}", self.name))
    }

    /// A command that runs `args` inside the lab's workstation namespace (where meshup runs).
    pub fn ws_command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("ml.{}.ws", self.name)]);
        c.args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `sh -c cmd` as root inside `host` through nsenter (no SSH involved).
    pub fn host_exec(&self, host: &str, cmd: &str) -> Run {
        let out = Command::new(lab_command())
            .args(["exec", &self.name, host, "--", "sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("run tests/lab/lab exec");
        Run::from(out)
    }

    /// Runs `cmd` on `host` over SSH from the workstation namespace as `user`, with the
    /// lab's key and strict host key checking against the lab's known_hosts.
    pub fn ssh(&self, user: &str, host: &str, cmd: &str) -> Run {
        let out = self
            .ssh_command(user, host, cmd)
            .output()
            .expect("run ssh in the workstation namespace");
        Run::from(out)
    }

    /// The command of [`Lab::ssh`], to spawn (a session that lives beside the test).
    pub fn ssh_command(&self, user: &str, host: &str, cmd: &str) -> Command {
        let cfg = self.out.join("ssh_config");
        self.ws_command(&[
            "ssh".as_ref(),
            "-F".as_ref(),
            cfg.as_os_str(),
            "-o".as_ref(),
            "BatchMode=yes".as_ref(),
            "-l".as_ref(),
            user.as_ref(),
            host.as_ref(),
            cmd.as_ref(),
        ])
    }

    /// Switches `host` off (`lab stop`): every process of it killed, the namespace kept.
    #[track_caller]
    pub fn stop(&self, host: &str) {
        let out = Command::new(lab_command())
            .args(["stop", &self.name, host])
            .stdin(Stdio::null())
            .output()
            .expect("run tests/lab/lab stop");
        Run::from(out).expect_ok(&format!("lab stop {host}"));
    }

    /// Tears the lab down now (also done on drop).
    pub fn down(&self) -> Run {
        let out = Command::new(lab_command())
            .args(["down", "--name", &self.name])
            .stdin(Stdio::null())
            .output()
            .expect("run tests/lab/lab down");
        Run::from(out)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let run = self.down();
        if !run.ok() {
            eprintln!("lab down {} failed: {}", self.name, run.stderr);
        }
    }
}

/// The meshup binary under test.
pub const MESHUP: &str = env!("CARGO_BIN_EXE_meshup");

/// Runs meshup with `args` in the lab's workstation namespace, with extra environment.
pub fn meshup_env(lab: &Lab, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut argv: Vec<&str> = vec![MESHUP];
    argv.extend_from_slice(args);
    let mut cmd = lab.ws_command(&argv);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(
        cmd.output()
            .expect("run meshup in the workstation namespace"),
    )
}

/// Runs meshup with `args` in the lab's workstation namespace.
pub fn meshup(lab: &Lab, args: &[&str]) -> Run {
    meshup_env(lab, args, &[])
}

/// A path as the UTF-8 argument meshup takes.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `apply --yes` (plus `extra`) that must succeed and print its recap.
#[track_caller]
pub fn apply_ok(lab: &Lab, inv: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["apply", "--yes"];
    args.extend_from_slice(extra);
    args.push(path_str(inv));
    let run = meshup(lab, &args);
    run.expect_ok("meshup apply");
    assert!(run.stdout.contains("RECAP"), "{}", run.stdout);
    run
}

/// The lab's inventory with `edit` applied to its text, written beside it as `file`.
pub fn edited(lab: &Lab, file: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(lab.inventory()).expect("read inventory");
    let path = lab.out_dir().join(file);
    std::fs::write(&path, edit(&text)).expect("write inventory");
    path
}

/// `plan --detailed-exitcode` finds nothing to change.
#[track_caller]
pub fn assert_no_changes(lab: &Lab, inv: &Path) {
    let run = meshup(lab, &["plan", "--detailed-exitcode", path_str(inv)]);
    assert_eq!(
        run.code,
        Some(0),
        "second plan is not empty\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("No changes"), "{}", run.stdout);
}

/// The section of `plan` output about `host` (its block up to the next blank line).
pub fn plan_section<'a>(plan: &'a str, host: &str) -> &'a str {
    plan.split("\n\n")
        .find(|s| s.starts_with(&format!("{host}:")))
        .unwrap_or_default()
}

/// Packets lost by a background `ping -q` on `host` whose output goes to `file`: waits
/// (up to `wait`) for its summary line, then transmitted minus received.
pub fn ping_lost(lab: &Lab, host: &str, file: &str, wait: std::time::Duration) -> u64 {
    let deadline = std::time::Instant::now() + wait;
    let summary = loop {
        let out = lab.host_exec(host, &format!("cat {file}")).stdout;
        if let Some(line) = out.lines().find(|l| l.contains("packets transmitted")) {
            break line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{host}: {file}: ping never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let n: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    n[0] - n[1]
}

/// The RECAP line of `host` in an apply's output (empty when there is none).
pub fn recap_line(stdout: &str, host: &str) -> String {
    stdout
        .split("RECAP")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{host} ")))
        .unwrap_or_default()
        .to_string()
}

/// No meshup script (`sh -s`: a phase script, or the holder of apply's lock) runs on
/// `host`.
pub fn no_script_left(lab: &Lab, host: &str) -> bool {
    let count = "for p in /proc/[0-9]*; do tr '\\0' ' ' <\"$p/cmdline\" 2>/dev/null; echo; done | grep -c -x 'sh -s ' || true";
    lab.host_exec(host, count).stdout.trim() == "0"
}

/// `meshup ARGS` in a real terminal (a pty through `script`) in the lab's workstation
/// namespace, progress bars off; stdin, stdout and stderr piped.
pub fn meshup_in_pty(lab: &Lab, args: &str) -> std::process::Child {
    lab.ws_command(&["script", "-qfec", &format!("{MESHUP} {args}"), "/dev/null"])
        .env("MESHUP_NO_PROGRESS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meshup in a pty")
}

/// Waits (polling every 100 ms) until `done`, failing the test after `limit`.
#[track_caller]
pub fn wait_for(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

//! Peer names: meshup's block of `/etc/hosts`, so that every node resolves `node-b` and
//! `node-b.<domain>` to its mesh addresses, IPv4 and IPv6.
//!
//! The block lives between `# BEGIN meshup <interface>` and `# END meshup <interface>`
//! (one block per interface, so several meshes can share a host); nothing outside it is
//! ever read into the plan or written by apply (`mu_hosts_block` in `scripts/lib.sh`).
use std::fmt::Write as _;

use super::HostInput;
use super::config::config_diff;
use crate::facts::{HostFacts, HostsFileFacts, HostsFileKind};
use crate::inventory::MeshSettings;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;
use crate::topology::Mesh;

/// The file the block lives in.
pub const HOSTS_PATH: &str = "/etc/hosts";

/// The lines inside the block for this mesh: per present node in name order, its IPv4
/// then its IPv6 address followed by `name name.domain`. Addresses are padded so the
/// names line up; the first line says who owns the block.
pub fn desired_block(mesh: &Mesh) -> String {
    let settings = &mesh.settings;
    let mut rows: Vec<(String, String)> = Vec::new();
    for node in &mesh.nodes {
        let names = format!("{} {}.{}", node.name, node.name, settings.domain);
        rows.push((node.address.to_string(), names.clone()));
        if let Some(v6) = node.address6 {
            rows.push((v6.to_string(), names));
        }
    }
    let width = rows.iter().map(|(a, _)| a.len()).max().unwrap_or(0);
    let mut out = format!(
        "# names of the {} mesh, written by meshup: edits inside this block are overwritten\n",
        settings.interface
    );
    for (address, names) in rows {
        let _ = writeln!(out, "{address:<width$} {names}");
    }
    out
}

/// Keeps the block equal to the mesh's names, or removes it when `mesh.hosts_file` is
/// false.
pub fn hosts_file(h: &HostInput<'_>) -> Vec<Decision> {
    let settings = h.settings();
    if settings.hosts_file {
        decide(
            settings,
            &h.facts.hosts_file,
            Some(&desired_block(h.mesh)),
            "",
        )
    } else {
        decide(
            settings,
            &h.facts.hosts_file,
            None,
            "`mesh.hosts_file` is false",
        )
    }
}

/// Removes the block of a node marked `state: absent`.
pub fn hosts_file_removal(settings: &MeshSettings, facts: &HostFacts) -> Vec<Decision> {
    decide(
        settings,
        &facts.hosts_file,
        None,
        "node is marked `state: absent` in the inventory",
    )
}

/// The block with its markers, as it stands in the file.
fn framed(iface: &str, lines: &str) -> String {
    format!("# BEGIN meshup {iface}\n{lines}# END meshup {iface}\n")
}

/// One decision from the file's state and the wanted lines (`None`: no block wanted,
/// for the reason `why_remove`).
fn decide(
    settings: &MeshSettings,
    facts: &HostsFileFacts,
    desired: Option<&str>,
    why_remove: &str,
) -> Vec<Decision> {
    let iface = settings.interface.as_str();
    let through = match &facts.kind {
        HostsFileKind::NotGathered => {
            return vec![Decision::warning(format!(
                "{HOSTS_PATH} was not gathered: peer names are left as they are"
            ))];
        }
        HostsFileKind::Unreadable => {
            return vec![Decision::warning(format!(
                "{HOSTS_PATH} could not be read: peer names are left as they are"
            ))];
        }
        HostsFileKind::Other => {
            return vec![Decision::warning(format!(
                "{HOSTS_PATH} is not a regular file: meshup leaves it alone (no peer names)"
            ))];
        }
        HostsFileKind::Symlink { target } if !target.is_empty() => {
            format!(" (a symlink: its target {target} is edited)")
        }
        HostsFileKind::Absent | HostsFileKind::Regular | HostsFileKind::Symlink { .. } => {
            String::new()
        }
    };
    if let Some(why) = &facts.malformed {
        return vec![Decision::warning(format!(
            "{HOSTS_PATH}: the `# BEGIN meshup {iface}` / `# END meshup {iface}` markers are broken ({why}); \
             meshup leaves the file alone until they are fixed by hand"
        ))];
    }
    let current = facts.current_block();
    let shown_current = match (current, &facts.kind) {
        (Some(lines), _) => Some(framed(iface, lines)),
        (None, HostsFileKind::Absent) => None,
        (None, _) => Some(String::new()),
    };
    let call = scripts::call("mu_hosts_block", &[iface]);
    match (current, desired) {
        (None, None) => vec![Decision::unchanged(format!(
            "{HOSTS_PATH} holds no {iface} peer names"
        ))],
        (Some(now), Some(want)) if now == want && facts.blocks == 1 => vec![Decision::unchanged(
            format!("{HOSTS_PATH} names up to date"),
        )],
        (_, Some(want)) => {
            let count = want.lines().filter(|l| !l.starts_with('#')).count();
            let reason = match (current, &facts.kind) {
                (None, HostsFileKind::Absent) => format!("{HOSTS_PATH} does not exist"),
                (None, _) => format!("{HOSTS_PATH} has no {iface} peer names yet"),
                (Some(_), _) if facts.blocks > 1 => format!(
                    "{HOSTS_PATH} holds {} blocks of {iface} names (they become one)",
                    facts.blocks
                ),
                (Some(_), _) => {
                    format!("the {iface} names in {HOSTS_PATH} differ from the inventory")
                }
            };
            vec![Decision::Change(
                Step::new(
                    if current.is_some() {
                        Action::Update
                    } else {
                        Action::Create
                    },
                    StepKind::HostsFile,
                    format!(
                        "write the {iface} peer names block in {HOSTS_PATH}{through} ({count} lines; the rest of the file is kept)"
                    ),
                    reason,
                    scripts::call_with_stdin(&call, want),
                )
                .with_diff(config_diff(
                    HOSTS_PATH,
                    shown_current.as_deref(),
                    &framed(iface, want),
                )),
            )]
        }
        (Some(_), None) => vec![Decision::Change(
            Step::new(
                Action::Delete,
                StepKind::HostsFile,
                format!(
                    "remove the {iface} peer names block from {HOSTS_PATH}{through} (the rest of the file is kept)"
                ),
                why_remove,
                format!("{call} </dev/null"),
            )
            .with_diff(config_diff(HOSTS_PATH, shown_current.as_deref(), "")),
        )],
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::facts::HostsFileFacts;
    use crate::plan::tests::{GUIDE, fixture};

    fn dual_stack() -> String {
        GUIDE.replace(
            "  network: 10.10.0.0/24\n",
            "  network: 10.10.0.0/24\n  network6: fd10:10::/64\n  domain: corp.internal\n",
        )
    }

    fn facts(body: &str) -> HostsFileFacts {
        HostsFileFacts::parse(body)
    }

    /// `line=` lines of a gather section for `block`.
    fn gathered(block: &str) -> String {
        let mut body = String::from("file=regular\n");
        for line in block.lines() {
            body.push_str("line=");
            body.push_str(line);
            body.push('\n');
        }
        body + "blocks=1\n"
    }

    #[test]
    fn the_block_names_every_present_node_in_both_families() {
        let f = fixture(&dual_stack());
        assert_eq!(
            desired_block(&f.mesh),
            "# names of the wg0 mesh, written by meshup: edits inside this block are overwritten\n\
             10.10.0.1  node-a node-a.corp.internal\n\
             fd10:10::1 node-a node-a.corp.internal\n\
             10.10.0.2  node-b node-b.corp.internal\n\
             fd10:10::2 node-b node-b.corp.internal\n\
             10.10.0.3  node-c node-c.corp.internal\n\
             fd10:10::3 node-c node-c.corp.internal\n"
        );
        let v4 = fixture(GUIDE);
        assert!(desired_block(&v4.mesh).contains("10.10.0.2 node-b node-b.mesh\n"));
        assert!(!desired_block(&v4.mesh).contains("::"));
    }

    /// One table row: what, the gathered section, the wanted block (`None`: removal),
    /// and the expected action or the start of the no-change reason or warning.
    type Case<'a> = (&'a str, String, Option<&'a str>, Result<Action, &'a str>);

    #[test]
    fn facts_in_decision_out() {
        let f = fixture(GUIDE);
        let settings = &f.mesh.settings;
        let want = desired_block(&f.mesh);
        let stale = want.replace("10.10.0.2 ", "10.10.0.9 ");
        let cases: Vec<Case<'_>> = vec![
            (
                "up to date",
                gathered(&want),
                Some(&want),
                Err("/etc/hosts names up to date"),
            ),
            (
                "no block yet",
                "file=regular\nblocks=0".into(),
                Some(&want),
                Ok(Action::Create),
            ),
            (
                "no file",
                "file=absent".into(),
                Some(&want),
                Ok(Action::Create),
            ),
            (
                "stale address",
                gathered(&stale),
                Some(&want),
                Ok(Action::Update),
            ),
            (
                "two blocks with the right lines",
                gathered(&want).replace("blocks=1", "blocks=2"),
                Some(&want),
                Ok(Action::Update),
            ),
            ("removed", gathered(&want), None, Ok(Action::Delete)),
            (
                "nothing to remove",
                "file=regular\nblocks=0".into(),
                None,
                Err("/etc/hosts holds no wg0"),
            ),
            (
                "no file to remove from",
                "file=absent".into(),
                None,
                Err("/etc/hosts holds no wg0"),
            ),
            (
                "broken markers",
                "file=regular\nline=x\nblocks=1\nmalformed=BEGIN without END".into(),
                Some(&want),
                Err("/etc/hosts: the `# BEGIN meshup wg0`"),
            ),
            (
                "broken markers, removal",
                "file=regular\nblocks=0\nmalformed=line 3: END without BEGIN".into(),
                None,
                Err("/etc/hosts: the `# BEGIN meshup wg0`"),
            ),
            (
                "a directory",
                "file=other".into(),
                Some(&want),
                Err("/etc/hosts is not a regular file"),
            ),
            (
                "unreadable",
                "".into(),
                Some(&want),
                Err("/etc/hosts could not be read"),
            ),
        ];
        for (what, body, desired, expected) in cases {
            let decisions = decide(settings, &facts(&body), desired, "gone");
            assert_eq!(decisions.len(), 1, "{what}: {decisions:?}");
            match (&decisions[0], expected) {
                (Decision::Change(step), Ok(action)) => {
                    assert_eq!(step.action, action, "{what}");
                    assert_eq!(step.kind, StepKind::HostsFile, "{what}");
                    assert!(step.diff.is_some(), "{what}");
                    let first = step.shell.lines().next().unwrap_or_default();
                    if action == Action::Delete {
                        assert_eq!(step.shell, "mu_hosts_block wg0 </dev/null", "{what}");
                        assert_eq!(step.reason, "gone");
                    } else {
                        assert_eq!(first, "mu_hosts_block wg0 <<'MESHUP_EOF_0'", "{what}");
                        assert!(step.shell.contains(&want), "{what}");
                    }
                }
                (Decision::Unchanged(reason) | Decision::Warning(reason), Err(start)) => {
                    assert!(reason.starts_with(start), "{what}: {reason}");
                }
                (other, expected) => panic!("{what}: {other:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_diff_shows_only_the_block_and_a_symlink_names_its_target() {
        let f = fixture(GUIDE);
        let want = desired_block(&f.mesh);
        let stale = want.replace("10.10.0.2 ", "10.10.0.9 ");
        let body = gathered(&stale).replace(
            "file=regular\n",
            "file=symlink\ntarget=/run/systemd/hosts\n",
        );
        let decisions = decide(&f.mesh.settings, &facts(&body), Some(&want), "");
        let step = decisions[0].step().expect("a step");
        assert!(
            step.summary.contains("its target /run/systemd/hosts"),
            "{}",
            step.summary
        );
        let diff = step.diff.as_deref().expect("diff");
        assert!(
            diff.starts_with("--- /etc/hosts (current)\n+++ /etc/hosts (desired)\n"),
            "{diff}"
        );
        assert!(
            diff.contains("-10.10.0.9 node-b node-b.mesh\n+10.10.0.2 node-b node-b.mesh\n"),
            "{diff}"
        );
        assert!(diff.contains(" # BEGIN meshup wg0\n"), "{diff}");
        assert!(!diff.contains("localhost"), "{diff}");
        let removal = decide(&f.mesh.settings, &facts(&gathered(&want)), None, "");
        let diff = removal[0]
            .step()
            .and_then(|s| s.diff.clone())
            .expect("diff");
        assert!(
            diff.contains("-# BEGIN meshup wg0\n") && diff.contains("-# END meshup wg0\n"),
            "{diff}"
        );
    }

    fn shells() -> Vec<Vec<&'static str>> {
        let mut out = vec![vec!["sh"]];
        for (bin, args) in [
            ("dash", vec!["dash"]),
            ("bash", vec!["bash", "--posix"]),
            ("busybox", vec!["busybox", "sh"]),
        ] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {bin}")])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                out.push(args);
            }
        }
        out
    }

    /// Runs one step's shell with the apply library as apply does (`sh -s`, the script
    /// on stdin), against `hosts` instead of /etc/hosts. Returns (success, stdout).
    fn run_step(shell: &[&str], dir: &Path, hosts: &Path, step: &str) -> (bool, String) {
        let values = scripts::Values::new()
            .set("MU_DIR", &dir.join("wg").display().to_string())
            .set("MU_IF", "wg0")
            .set("MU_HOSTS_FILE", &hosts.display().to_string());
        let script = values.before(&format!("{}{step}\n", scripts::APPLY_LIB));
        let mut child = Command::new(shell[0])
            .args(&shell[1..])
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("shell runs");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write script");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// What gather reports about `hosts` (the real gather script, read-only).
    fn gather(shell: &[&str], dir: &Path, hosts: &Path) -> HostsFileFacts {
        let params = crate::facts::GatherParams::new(
            "wg0",
            &dir.join("wg").display().to_string(),
            51820,
            &[],
        )
        .expect("params");
        let script = scripts::Values::new()
            .set("MU_HOSTS_FILE", &hosts.display().to_string())
            .before(&crate::facts::gather_script(&params));
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .args(["-c", &script])
            .output()
            .expect("gather runs");
        crate::facts::parse(&String::from_utf8_lossy(&out.stdout))
            .expect("gather output")
            .hosts_file
    }

    const OUTSIDE: &str = "127.0.0.1\tlocalhost\n# a hand edit\n10.10.0.2 node-b-old\n\n::1 localhost ip6-localhost\n";

    /// The library function under every shell at hand: insert, rewrite in place, no-op,
    /// remove, mode kept, symlink followed, broken markers refused; gather reads back
    /// exactly what the step wrote, so the next plan has no change.
    #[test]
    fn mu_hosts_block_edits_only_its_block_under_every_shell() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let f = fixture(&dual_stack());
        let settings = &f.mesh.settings;
        let want = desired_block(&f.mesh);
        let write = scripts::call_with_stdin("mu_hosts_block wg0", &want);
        let remove = "mu_hosts_block wg0 </dev/null";
        let framed_want = framed("wg0", &want);
        for shell in shells() {
            let dir = tempfile::tempdir().expect("tempdir");
            let hosts = dir.path().join("hosts");
            std::fs::write(&hosts, OUTSIDE).expect("write");
            std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o640))
                .expect("chmod");

            // Insert: appended after the untouched lines; mode kept.
            let (ok, out) = run_step(&shell, dir.path(), &hosts, &write);
            assert!(ok, "{shell:?}: {out}");
            let text = std::fs::read_to_string(&hosts).expect("read");
            assert_eq!(text, format!("{OUTSIDE}{framed_want}"), "{shell:?}");
            let meta = std::fs::metadata(&hosts).expect("stat");
            assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{shell:?}");

            // Gather reads it back: the plan is empty.
            let read = gather(&shell, dir.path(), &hosts);
            assert_eq!(read.current_block(), Some(want.as_str()), "{shell:?}");
            assert_eq!(
                decide(settings, &read, Some(&want), ""),
                [Decision::unchanged("/etc/hosts names up to date")],
                "{shell:?}"
            );

            // Unchanged: the file is not rewritten.
            let inode = meta.ino();
            let (ok, out) = run_step(&shell, dir.path(), &hosts, &write);
            assert!(ok, "{shell:?}: {out}");
            assert_eq!(
                std::fs::metadata(&hosts).expect("stat").ino(),
                inode,
                "{shell:?}"
            );

            // A stale block in the middle is replaced where it stands; a second block of
            // the interface and another interface's block are handled apart.
            let other = "# BEGIN meshup wg1\n10.20.0.1 x\n# END meshup wg1\n";
            let messy = format!(
                "127.0.0.1 localhost\n# BEGIN meshup wg0\n10.10.0.9 node-b\n# END meshup wg0\n{other}# tail\n# BEGIN meshup wg0\n# END meshup wg0\n"
            );
            std::fs::write(&hosts, &messy).expect("write");
            let stale = gather(&shell, dir.path(), &hosts);
            assert_eq!(stale.blocks, 2, "{shell:?}");
            assert_eq!(stale.block, "10.10.0.9 node-b\n", "{shell:?}");
            let (ok, out) = run_step(&shell, dir.path(), &hosts, &write);
            assert!(ok, "{shell:?}: {out}");
            assert_eq!(
                std::fs::read_to_string(&hosts).expect("read"),
                format!("127.0.0.1 localhost\n{framed_want}{other}# tail\n"),
                "{shell:?}"
            );

            // Removal leaves the rest byte for byte.
            std::fs::write(&hosts, format!("{OUTSIDE}{framed_want}")).expect("write");
            let (ok, out) = run_step(&shell, dir.path(), &hosts, remove);
            assert!(ok, "{shell:?}: {out}");
            assert_eq!(
                std::fs::read_to_string(&hosts).expect("read"),
                OUTSIDE,
                "{shell:?}"
            );

            // Broken markers: refused, file untouched, as gather says.
            let broken = format!("{OUTSIDE}# BEGIN meshup wg0\n10.10.0.1 node-a\n");
            std::fs::write(&hosts, &broken).expect("write");
            assert!(
                gather(&shell, dir.path(), &hosts).malformed.is_some(),
                "{shell:?}"
            );
            let (ok, out) = run_step(&shell, dir.path(), &hosts, &write);
            assert!(!ok && out.contains("@@meshup:fail:"), "{shell:?}: {out}");
            assert_eq!(
                std::fs::read_to_string(&hosts).expect("read"),
                broken,
                "{shell:?}"
            );

            // A symlink: its target is edited, the link stays.
            let target = dir.path().join("hosts.real");
            std::fs::write(&target, OUTSIDE).expect("write");
            let link = dir.path().join("hosts.link");
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
            let (ok, out) = run_step(&shell, dir.path(), &link, &write);
            assert!(ok, "{shell:?}: {out}");
            assert!(
                std::fs::symlink_metadata(&link)
                    .expect("lstat")
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(
                std::fs::read_to_string(&target).expect("read"),
                format!("{OUTSIDE}{framed_want}"),
                "{shell:?}"
            );

            // No file: created (mode 644) with the block only; removal of nothing is a no-op.
            let fresh = dir.path().join("new-hosts");
            let (ok, out) = run_step(&shell, dir.path(), &fresh, remove);
            assert!(ok && !fresh.exists(), "{shell:?}: {out}");
            let (ok, out) = run_step(&shell, dir.path(), &fresh, &write);
            assert!(ok, "{shell:?}: {out}");
            assert_eq!(std::fs::read_to_string(&fresh).expect("read"), framed_want);
            let mode = std::fs::metadata(&fresh)
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{shell:?}");
            let leftovers: Vec<_> = std::fs::read_dir(dir.path())
                .expect("ls")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("meshup-new"))
                .collect();
            assert!(leftovers.is_empty(), "{shell:?}: {leftovers:?}");
        }
    }
}

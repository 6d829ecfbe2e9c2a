//! One apply phase on one host: the script sent (the library, the run's values, the
//! plan's steps exactly as shown, a fixed footer), and what its markers say back.
use std::time::Duration;

use crate::host_error::HostError;
use crate::hosts::Connected;
use crate::inventory::MeshSettings;
use crate::plan::{Phase, Step};
use crate::run_lock::RunLock;
use crate::scripts::output::{self, Marker};
use crate::scripts::{self, Values};
use crate::secret::Secret;

/// The values every phase script starts with: where the config lives, which interface,
/// and the run whose hold the gather took (so the script knows the hold is its own).
pub fn base_values(settings: &MeshSettings, run: &RunLock) -> Values {
    Values::new()
        .set("MU_DIR", settings.config_dir.as_str())
        .set("MU_IF", settings.interface.as_str())
        .set("MU_RUN", run.id())
}

/// What a phase script ends with (the same for every host).
pub fn footer(phase: Phase) -> &'static str {
    match phase {
        Phase::Prepare => "mu_report_pubkey\nmu_done prepare\n",
        Phase::Converge => "mu_release\nmu_done converge\n",
    }
}

/// The functions a phase script defines before its steps (the same for every host).
pub fn library(phase: Phase) -> String {
    match phase {
        Phase::Prepare => format!("{}{}", scripts::APPLY_LIB, scripts::WAIT_LOCK),
        Phase::Converge => scripts::APPLY_LIB.to_string(),
    }
}

/// The script of one phase: `values`, the library, each step's shell as the plan
/// shows it, the footer. It may hold preshared keys (in `values`), hence [`Secret`].
pub fn script<'a>(
    values: &Values,
    phase: Phase,
    steps: impl IntoIterator<Item = &'a Step>,
) -> Secret {
    let mut body = library(phase);
    for step in steps {
        debug_assert_eq!(step.phase(), phase);
        body.push_str(&step.shell);
        body.push('\n');
    }
    body.push_str(footer(phase));
    Secret::new(values.before(&body))
}

/// Runs a phase script (`sh -s`, the script on stdin): its markers when it reached
/// `done`, else the host's failure.
pub async fn run(
    session: &Connected,
    phase: Phase,
    script: &Secret,
    timeout: Duration,
) -> Result<Vec<Marker>, HostError> {
    let out = session
        .exec("sh -s", script.expose(), timeout)
        .await
        .map_err(|e| transport_failure(e, phase))?;
    outcome(&out)
}

/// Runs a converge script and shows each line of its output to `line` as it comes (a
/// host says it is ready for the agreed instant, or that its interface is up). With
/// `instant` (hosts that agree their instant when all are ready, `MU_FLIP_AT=go`, see
/// `mu_instant`), what it resolves to (the instant, or nothing) is sent to the script
/// when it does. The script is one brace group (`Values::before`): the shell has read all
/// of it before it runs any, so the instant sent later reaches the script's `read`, not
/// the shell's parser.
pub async fn run_watched<'a>(
    session: &'a Connected,
    script: &'a Secret,
    line: &'a (dyn Fn(&str) + Send + Sync),
    instant: Option<crate::transport::BoxFuture<'a, String>>,
    timeout: Duration,
) -> Result<Vec<Marker>, HostError> {
    let rest: crate::transport::BoxFuture<'a, Vec<u8>> = match instant {
        Some(instant) => Box::pin(async move { format!("{}\n", instant.await).into_bytes() }),
        None => Box::pin(async { Vec::new() }),
    };
    let watch = crate::transport::Watch { line, rest };
    let out = session
        .exec_watched("sh -s", script.expose(), watch, timeout)
        .await
        .map_err(|e| transport_failure(e, Phase::Converge))?;
    outcome(&out)
}

/// The line of a converge script that says the host is ready for the agreed instant:
/// the time by the host's clock it carries (empty from an older script).
pub fn ready_stamp(line: &str) -> Option<&str> {
    line.strip_prefix(output::PREFIX)?.strip_prefix("ready:")
}

/// The line of a converge script that says the host's interface is up with its config
/// (the post-check step begins).
pub fn is_up_line(line: &str) -> bool {
    line.strip_prefix(output::PREFIX) == Some("step:post-check")
}

fn transport_failure(e: crate::transport::TransportError, phase: Phase) -> HostError {
    HostError::Transport {
        // Whatever the step in progress was, the script ends at its next step marker
        // (its output has nowhere to go): the host is left between two steps.
        message: format!(
            "{e}, during {}: the host stops after the step in progress; run apply again to finish",
            match phase {
                Phase::Prepare => "prepare",
                Phase::Converge => "converge",
            }
        ),
    }
}

/// A phase script's markers when it reached `done`, else the host's failure.
fn outcome(out: &crate::transport::ExecOutput) -> Result<Vec<Marker>, HostError> {
    let markers = output::markers(&out.stdout_str());
    if out.success() && markers.iter().any(|m| m.kind == "done") {
        return Ok(markers);
    }
    Err(failure(&markers, &out.stderr_str(), out.status))
}

/// Turns a failed phase's markers and stderr into the host's error.
pub fn failure(markers: &[Marker], stderr: &str, status: Option<u32>) -> HostError {
    let stderr_tail = stderr
        .lines()
        .filter(|l| {
            !l.contains("kernel module") && !l.contains("wireguard-go") && !l.starts_with("[#]")
        })
        .collect::<Vec<_>>()
        .join("; ");
    let step = markers
        .iter()
        .rev()
        .find(|m| m.kind == "step")
        .map(|m| m.value.clone());
    let find = |kind: &str| {
        markers
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| m.value.clone())
    };
    if let Some(reason) = find("rollback") {
        HostError::RolledBack {
            step,
            reason,
            stderr_tail,
        }
    } else if let Some(path) = find("locked") {
        HostError::LockHeld { path, holder: None }
    } else {
        let message = find("fail").unwrap_or_else(|| {
            format!(
                "exit status {}",
                status.map_or_else(|| "none".to_string(), |s| s.to_string())
            )
        });
        HostError::StepFailed {
            step,
            message,
            status,
            stderr_tail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: &str, value: &str) -> Marker {
        Marker {
            kind: kind.into(),
            value: value.into(),
        }
    }

    #[test]
    fn failures_name_the_step_and_keep_the_messages_operators_know() {
        let e = failure(
            &[
                m("step", "install"),
                m("fail", "installing WireGuard failed"),
            ],
            "E: Unable to locate package\n",
            Some(1),
        );
        assert_eq!(
            e.to_string(),
            "installing WireGuard failed (E: Unable to locate package)"
        );
        assert!(matches!(e, HostError::StepFailed { step: Some(s), .. } if s == "install"));
        let e = failure(
            &[
                m("step", "start"),
                m("rollback", "bringing the interface up failed"),
            ],
            "",
            Some(1),
        );
        assert_eq!(
            e.to_string(),
            "rolled back to the previous config: bringing the interface up failed"
        );
        let e = failure(
            &[m("locked", "/etc/wireguard/.meshup-wg0.lock")],
            "",
            Some(75),
        );
        assert_eq!(
            e.to_string(),
            "another meshup run holds the lock /etc/wireguard/.meshup-wg0.lock"
        );
        assert_eq!(failure(&[], "", None).to_string(), "exit status none");
    }
}

/// The phase scripts run for real under `sh`, on a temporary config dir.
#[cfg(test)]
mod script_tests {
    use super::*;
    use crate::plan::{Action, StepKind};
    use crate::scripts::run_sh;
    use std::process::Command;

    fn values(dir: &std::path::Path) -> Values {
        Values::new()
            .set("MU_DIR", dir.to_str().expect("utf8"))
            .set("MU_IF", "wgt0")
    }

    fn step(kind: StepKind, shell: String) -> Step {
        Step::new(Action::Update, kind, "test", "test", shell)
    }

    #[test]
    fn converge_assembles_secrets_and_generated_keys_on_the_host_and_keeps_a_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("wgt0");
        std::fs::create_dir(&state).expect("mkdir");
        std::fs::write(state.join("private.key"), "PRIVATEKEYVALUE=\n").expect("write");
        std::fs::write(state.join("psk-node-b.key"), "PSKVALUE=\n").expect("write");
        std::fs::write(state.join("psk-gone.key"), "x\n").expect("write");
        std::fs::write(dir.path().join("wgt0.conf"), "old\n").expect("write");
        let config = "[Interface]\nPrivateKey = <secret:private.key>\n\n# Peer: node-b\n[Peer]\nPublicKey = (generated on host)\nPresharedKey = <secret:psk-node-b.key>\nAllowedIPs = 10.10.0.2/32\n\n# Peer: node-c\n[Peer]\nPublicKey = (generated on host)\nAllowedIPs = 10.10.0.3/32\n";
        let steps = [
            Step::new(
                Action::Delete,
                StepKind::Psk,
                "remove",
                "gone",
                scripts::call("mu_remove_psk", &["gone"]),
            ),
            step(
                StepKind::Config,
                scripts::call_with_stdin("mu_write_config", config),
            ),
        ];
        let v = values(dir.path()).set("MU_PUBKEYS", "node-b=BKEY=");
        let text = script(&v, Phase::Converge, &steps);
        assert!(
            !text
                .expose_str()
                .unwrap_or_default()
                .contains("PRIVATEKEYVALUE")
        );
        let out = run_sh(text.expose());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("wgt0.conf")).expect("read"),
            "[Interface]\nPrivateKey = PRIVATEKEYVALUE=\n\n# Peer: node-b\n[Peer]\nPublicKey = BKEY=\nPresharedKey = PSKVALUE=\nAllowedIPs = 10.10.0.2/32\n\n",
            "node-c's key was not generated: its block is left out"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("wgt0.conf.meshup-prev")).expect("read"),
            "old\n"
        );
        assert!(!state.join("psk-gone.key").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("wgt0.conf"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let markers = output::markers(&String::from_utf8_lossy(&out.stdout));
        assert!(
            markers
                .iter()
                .any(|m| m.kind == "skipped" && m.value == "node-c")
        );
        assert_eq!(markers.last().map(|m| m.kind.as_str()), Some("done"));
    }

    #[test]
    fn converge_refuses_when_a_secret_file_is_missing_and_keeps_the_old_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("wgt0.conf"), "old\n").expect("write");
        let steps = [step(
            StepKind::Config,
            scripts::call_with_stdin("mu_write_config", "PrivateKey = <secret:private.key>\n"),
        )];
        let out = run_sh(script(&values(dir.path()), Phase::Converge, &steps).expose());
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("missing secret files: private.key"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("wgt0.conf")).expect("read"),
            "old\n"
        );
    }

    /// A script cut short in transit (the connection dropped while its tail was still on
    /// the way) runs nothing: not its first steps, not a truncated last line.
    #[test]
    fn a_script_cut_anywhere_runs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("host");
        let steps = [Step::new(
            Action::Create,
            StepKind::Psk,
            "psk",
            "new",
            scripts::call("mu_store_psk", &["node-b", "\"$MU_PSK_1\""]),
        )];
        let v = values(&state).set("MU_PSK_1", "c2VjcmV0cHNr");
        let text = script(&v, Phase::Prepare, &steps);
        let bytes = text.expose();
        // Everything but the group's closing brace (without its newline the group is
        // complete: that script did arrive whole).
        let cuts = (1..bytes.len() - 1).step_by(409).chain([
            bytes.len() - 2,
            bytes.len() - 3,
            bytes.len() - 30,
        ]);
        for cut in cuts {
            let out = run_sh(&bytes[..cut]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                !out.status.success() && !stdout.contains("@@meshup:") && !state.exists(),
                "cut at {cut} of {}: it ran\n{stdout}",
                bytes.len()
            );
        }
        let out = run_sh(bytes);
        assert!(out.status.success());
        assert!(state.join("wgt0/psk-node-b.key").exists());
    }

    #[test]
    fn prepare_stores_psks_from_values_never_from_the_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shell = scripts::call("mu_store_psk", &["node-b", "\"$MU_PSK_1\""]);
        assert!(!shell.contains("c2VjcmV0cHNr"));
        let steps = [Step::new(
            Action::Create,
            StepKind::Psk,
            "psk",
            "new",
            shell,
        )];
        let v = values(dir.path()).set("MU_PSK_1", "c2VjcmV0cHNr");
        assert!(!format!("{v:?}").contains("c2VjcmV0cHNr"));
        let out = run_sh(script(&v, Phase::Prepare, &steps).expose());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("wgt0/psk-node-b.key")).expect("read"),
            "c2VjcmV0cHNr\n"
        );
    }

    #[test]
    fn a_second_run_waits_for_nobody_but_reports_the_lock() {
        if Command::new("flock").arg("-V").output().is_err() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join(".meshup-wgt0.lock");
        std::fs::write(&lock, "").expect("write");
        let mut holder = Command::new("flock")
            .arg(&lock)
            .arg("sleep")
            .arg("5")
            .spawn()
            .expect("flock");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let out = run_sh(script(&values(dir.path()), Phase::Prepare, &[]).expose());
        let _ = holder.kill();
        let _ = holder.wait();
        assert_eq!(out.status.code(), Some(75));
        let markers = output::markers(&String::from_utf8_lossy(&out.stdout));
        let e = failure(&markers, "", out.status.code().map(|c| c as u32));
        assert!(matches!(e, HostError::LockHeld { .. }), "{e}");
    }

    /// The run hold apply's gather took (a holder process that wrote the run's line into
    /// it, as `mu_hold` does): the same run's scripts work under it, another run's are
    /// refused, and the run's converge ends it.
    #[test]
    fn a_run_works_under_the_hold_its_gather_took_and_ends_it() {
        if Command::new("flock").arg("-V").output().is_err() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let hold = dir.path().join("meshup-wgt0.lock");
        let mut holder = Command::new("sh")
            .arg("-c")
            .arg(
                "exec 8>>\"$1\"; flock -n 8 || exit 1; \
                 printf 'run=0123 pid=%s conn=%s user=root since=1 by=a@b\\n' $$ $PPID >\"$1\"; \
                 while :; do sleep 1 8>&-; done",
            )
            .arg("holder")
            .arg(&hold)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("holder");
        // Stopped by the run's converge below; should an assertion fail first, it is
        // killed here.
        struct Reap(u32);
        impl Drop for Reap {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let _ = Command::new("kill").arg(self.0.to_string()).status();
                }
            }
        }
        let _reap = Reap(holder.id());
        // Probing the lock meanwhile could make the holder's own `flock -n` fail.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !std::fs::read_to_string(&hold).is_ok_and(|l| l.starts_with("run=")) {
            assert!(
                std::time::Instant::now() < deadline,
                "the holder never held"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let held = |lock: &std::path::Path| {
            !Command::new("flock")
                .args(["-n", lock.to_str().expect("utf8"), "true"])
                .status()
                .expect("flock")
                .success()
        };
        let rundir = dir.path().to_str().expect("utf8");
        let run = |id: &str| {
            values(dir.path())
                .set("MU_RUN", id)
                .set("MU_RUNDIR", rundir)
        };
        let other = run_sh(script(&run("9999"), Phase::Prepare, &[]).expose());
        assert_eq!(other.status.code(), Some(75), "another run is refused");
        let prepare = run_sh(script(&run("0123"), Phase::Prepare, &[]).expose());
        assert!(prepare.status.success(), "the run's own prepare works");
        assert!(held(&hold), "a phase before the last keeps the hold");
        let converge = run_sh(script(&run("0123"), Phase::Converge, &[]).expose());
        assert!(converge.status.success(), "the run's own converge works");
        let status = holder.wait().expect("wait");
        assert!(!status.success(), "converge stopped the holder");
        assert!(!held(&hold), "the hold is free after the run's last script");
    }
}

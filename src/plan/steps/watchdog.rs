//! The host-side watchdog (`scripts/watchdog.sh`): between runs, the host's own timer
//! ticks it every `mesh.watchdog.interval`; it follows DNS-name endpoints and moves a dead
//! direct NAT path back to its relay. Installed here like any other file: the shared
//! script, the interface's watch file (public keys, names, endpoints: no secret) and the
//! timer of the init the host really runs (a systemd timer, a cron.d file for Debian's
//! cron, a line in busybox crond's crontab), each a step with its diff.
use std::fmt::Write as _;

use super::HostInput;
use super::config::config_diff;
use crate::facts::{CronDaemon, HostFacts, WatchdogFacts};
use crate::inventory::{Endpoint, EndpointHost, MeshSettings};
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;
use crate::shell;

/// Where the shared script is installed (one for every interface of the host).
pub const SCRIPT_PATH: &str = "/usr/local/lib/meshup/watchdog.sh";

/// A direct path whose entry has a keepalive re-handshakes every 120 s (plus up to one
/// keepalive interval): silent for longer, and nothing received since the last tick, it
/// is dead.
pub const DEAD_AFTER_KEEPALIVE_SECS: u64 = 135;

/// Without a keepalive, a path handshakes only when traffic flows: the 180 s
/// (WireGuard drops a session after 180 s).
pub const DEAD_AFTER_SECS: u64 = 180;

/// The interface's watch file.
pub fn watch_path(settings: &MeshSettings) -> String {
    format!(
        "{}/{}.meshup-watch",
        settings.config_dir, settings.interface
    )
}

fn unit_path(iface: &str, ext: &str) -> String {
    format!("/etc/systemd/system/meshup-watchdog-{iface}.{ext}")
}

fn cron_d_path(iface: &str) -> String {
    format!("/etc/cron.d/meshup-watchdog-{iface}")
}

/// The marker that ends this interface's line in a busybox crontab.
fn cron_marker(iface: &str) -> String {
    format!("# meshup-watchdog {iface}")
}

/// What runs the ticks on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    /// A systemd timer and its service.
    Systemd,
    /// A file in `/etc/cron.d` (Debian's cron, cronie).
    CronD,
    /// A line in busybox crond's crontab (this file).
    Crontab(String),
}

impl Timer {
    fn of(facts: &HostFacts) -> Option<Timer> {
        let w = &facts.watchdog;
        if facts.init.systemd && w.systemd {
            Some(Timer::Systemd)
        } else if w.cron.contains(&CronDaemon::Cron) && w.cron_d {
            Some(Timer::CronD)
        } else if w.cron.contains(&CronDaemon::Crond) {
            w.crontabs
                .as_ref()
                .map(|d| Timer::Crontab(format!("{d}/root")))
        } else {
            None
        }
    }

    fn describe(&self, interval: u64) -> String {
        match self {
            Timer::Systemd => format!("systemd timer, every {interval} s"),
            Timer::CronD | Timer::Crontab(_) => {
                format!("cron, every {} s", cron_period(interval))
            }
        }
    }
}

/// Cron runs a line once a minute at most: below a minute the line ticks twice (every
/// 30 s); from a minute up, every whole number of minutes.
fn cron_period(interval: u64) -> u64 {
    if interval < 60 {
        30
    } else {
        interval.div_ceil(60).min(60) * 60
    }
}

/// The command a cron line runs: one tick, or two 30 s apart.
fn cron_command(settings: &MeshSettings, interval: u64) -> (String, String) {
    let tick = format!(
        "/bin/sh {SCRIPT_PATH} {} >/dev/null 2>&1",
        shell::quote(&watch_path(settings))
    );
    let minutes = cron_period(interval) / 60;
    if interval < 60 {
        ("* * * * *".into(), format!("{tick}; sleep 30; {tick}"))
    } else if minutes >= 60 {
        ("0 * * * *".into(), tick)
    } else if minutes == 1 {
        ("* * * * *".into(), tick)
    } else {
        (format!("*/{minutes} * * * *"), tick)
    }
}

/// The watch file of this host: which peers have a DNS-name endpoint, and which NAT
/// peers are reached directly, with the relay that carries them when the direct path
/// dies. A key learned in this run is a `<pubkey:NAME>` token the host fills in (from
/// `MU_PUBKEYS`, like the config's), so the file is the same the next time.
pub fn watch_file(h: &HostInput<'_>, interval: u64) -> String {
    let settings = h.settings();
    let me = &h.spec.name;
    let key = |name: &crate::inventory::NodeName| {
        h.keys
            .get(name)
            .map_or_else(|| format!("<pubkey:{name}>"), |k| k.to_string())
    };
    let mut out = format!(
        "# meshup watchdog of {iface}, written by meshup apply (public keys, names, endpoints: no secret)\n\
         iface {iface}\nstate {dir}/{iface}\ninterval {interval}\n",
        iface = settings.interface,
        dir = settings.config_dir,
    );
    for p in &h.peers {
        let Some(node) = h.mesh.node(&p.name) else {
            continue;
        };
        if let Some(text) = [&node.endpoint, &node.endpoint6]
            .into_iter()
            .flatten()
            .find(|text| p.endpoint.as_deref() == Some(text.as_str()))
            && let Ok(e) = Endpoint::parse(text, node.listen_port)
            && let EndpointHost::Dns(host) = &e.host
        {
            let _ = writeln!(out, "dns {} {} {host} {}", p.name, key(&p.name), e.port);
        }
    }
    if let Some(relay) = &h.spec.relay {
        for p in &h.peers {
            if h.mesh.direct_nat_endpoint(me, &p.name).is_none() {
                continue;
            }
            let after = if p.persistent_keepalive.is_some() {
                DEAD_AFTER_KEEPALIVE_SECS
            } else {
                DEAD_AFTER_SECS
            };
            let _ = writeln!(
                out,
                "direct {} {} {relay} {} {after}",
                p.name,
                key(&p.name),
                key(relay)
            );
        }
    }
    out
}

/// The timer's service and timer units.
fn units(settings: &MeshSettings, interval: u64) -> (String, String) {
    let iface = &settings.interface;
    let head = format!("# meshup watchdog of {iface}, written by meshup: edits are overwritten\n");
    let service = format!(
        "{head}[Unit]\nDescription=meshup watchdog tick of {iface}\n\n[Service]\nType=oneshot\n\
         ExecStart=/bin/sh {SCRIPT_PATH} {}\n",
        watch_path(settings)
    );
    let timer = format!(
        "{head}[Unit]\nDescription=meshup watchdog of {iface}, every {interval} s\n\n[Timer]\n\
         OnBootSec={interval}s\nOnUnitActiveSec={interval}s\nAccuracySec=1s\n\n\
         [Install]\nWantedBy=timers.target\n"
    );
    (service, timer)
}

/// One file's decision: written with `mu_put_file` when it differs.
fn file_step(
    w: &WatchdogFacts,
    path: &str,
    want: &str,
    what: &str,
    pubkeys: bool,
    out: &mut Vec<Decision>,
) -> bool {
    let current = w.file(path);
    if current == Some(want) {
        return false;
    }
    let mut call = scripts::call("mu_put_file", &[path, "644"]);
    if pubkeys {
        call.push_str(" pubkeys");
    }
    let step = Step::new(
        if current.is_some() {
            Action::Update
        } else {
            Action::Create
        },
        StepKind::Watchdog,
        format!("write {path} ({what}, {} lines)", want.lines().count()),
        if current.is_some() {
            format!("{path} differs from what the watchdog needs")
        } else {
            format!("{path} does not exist")
        },
        scripts::call_with_stdin(&call, want),
    );
    // The new script whole would fill the plan: `plan -v` shows it (the step's shell).
    out.push(Decision::Change(
        if path == SCRIPT_PATH && current.is_none() {
            step
        } else {
            step.with_diff(config_diff(path, current, want))
        },
    ));
    true
}

/// Installs (or updates) the watchdog, or removes it when `mesh.watchdog` is false.
pub fn watchdog(h: &HostInput<'_>) -> Vec<Decision> {
    let settings = h.settings();
    let Some(interval) = settings.watchdog.map(|a| a.secs()) else {
        return watchdog_removal(settings, h.facts, "`mesh.watchdog` is false");
    };
    let w = &h.facts.watchdog;
    let iface = settings.interface.as_str();
    if !w.gathered {
        return vec![Decision::unchanged(format!(
            "watchdog of {iface}: not gathered (older host output), left as it is"
        ))];
    }
    let Some(timer) = Timer::of(h.facts) else {
        return vec![Decision::warning(format!(
            "no timer on this host (neither systemd nor a running cron daemon): the watchdog of {iface} \
             is not installed, so a dead direct path or a moved DNS name waits for the next apply"
        ))];
    };
    let mut out = Vec::new();
    file_step(
        w,
        SCRIPT_PATH,
        scripts::WATCHDOG,
        "the watchdog script",
        false,
        &mut out,
    );
    let watch = watch_file(h, interval);
    let has_tokens = watch.contains("<pubkey:");
    file_step(
        w,
        &watch_path(settings),
        &watch,
        "what the watchdog watches",
        has_tokens,
        &mut out,
    );
    match &timer {
        Timer::Systemd => {
            let (service, unit) = units(settings, interval);
            let a = file_step(
                w,
                &unit_path(iface, "service"),
                &service,
                "one tick",
                false,
                &mut out,
            );
            let b = file_step(
                w,
                &unit_path(iface, "timer"),
                &unit,
                "the timer",
                false,
                &mut out,
            );
            let running = w.timer_enabled.as_deref() == Some("enabled")
                && w.timer_active.as_deref() == Some("active");
            if a || b || !running {
                out.push(Decision::Change(Step::new(
                    if running {
                        Action::Update
                    } else {
                        Action::Create
                    },
                    StepKind::Watchdog,
                    format!("start meshup-watchdog-{iface}.timer, now and at boot"),
                    if running {
                        "its units changed".to_string()
                    } else {
                        "the timer is not enabled and running".to_string()
                    },
                    scripts::call("mu_watchdog_timer", &[iface]),
                )));
            }
        }
        Timer::CronD => {
            let (when, cmd) = cron_command(settings, interval);
            let file = format!(
                "# meshup watchdog of {iface}, written by meshup: edits are overwritten\n\
                 SHELL=/bin/sh\n{when} root {cmd}\n"
            );
            file_step(
                w,
                &cron_d_path(iface),
                &file,
                "the cron entry",
                false,
                &mut out,
            );
        }
        Timer::Crontab(path) => {
            let (when, cmd) = cron_command(settings, interval);
            let line = format!("{when} {cmd} {}", cron_marker(iface));
            let current: Vec<&str> = w
                .cron_lines
                .iter()
                .filter(|(f, _)| f == path)
                .map(|(_, l)| l.as_str())
                .collect();
            if current != [line.as_str()] {
                let shown: String = current.iter().map(|l| format!("{l}\n")).collect();
                out.push(Decision::Change(
                    Step::new(
                        if current.is_empty() {
                            Action::Create
                        } else {
                            Action::Update
                        },
                        StepKind::Watchdog,
                        format!("put the {iface} watchdog's line in {path} (busybox crond)"),
                        if current.is_empty() {
                            format!("{path} has no line for it")
                        } else {
                            format!("the line in {path} differs")
                        },
                        scripts::call_with_stdin(
                            &scripts::call("mu_cron_line", &[path, &cron_marker(iface)]),
                            &line,
                        ),
                    )
                    .with_diff(config_diff(
                        path,
                        Some(&shown),
                        &format!("{line}\n"),
                    )),
                ));
            }
        }
    }
    if out.is_empty() {
        let mut reason = format!(
            "watchdog of {iface} installed ({})",
            timer.describe(interval)
        );
        match w.tick_age {
            Some(age) => {
                let _ = write!(reason, ", last tick {age} s ago");
            }
            None => reason.push_str(", no tick yet"),
        }
        out.push(Decision::unchanged(reason));
    }
    out
}

/// Removes the interface's watchdog (timer, watch file, its state; the shared script
/// when no other interface has a watchdog), for the reason `why`.
pub fn watchdog_removal(settings: &MeshSettings, facts: &HostFacts, why: &str) -> Vec<Decision> {
    let w = &facts.watchdog;
    let iface = settings.interface.as_str();
    if !w.installed() && (w.file(SCRIPT_PATH).is_none() || !w.others.is_empty()) {
        return vec![Decision::unchanged(format!(
            "no watchdog of {iface} on this host"
        ))];
    }
    let watch = watch_path(settings);
    let mut args = vec![iface, watch.as_str()];
    let script_too = w.others.is_empty() && w.file(SCRIPT_PATH).is_some();
    if script_too {
        args.push(SCRIPT_PATH);
    }
    let mut diff = String::new();
    for (path, text) in &w.files {
        if path == SCRIPT_PATH && !script_too {
            continue;
        }
        diff.push_str(&config_diff(path, Some(text), ""));
    }
    for (path, line) in &w.cron_lines {
        diff.push_str(&config_diff(path, Some(&format!("{line}\n")), ""));
    }
    let mut step = Step::new(
        Action::Delete,
        StepKind::Watchdog,
        format!(
            "remove the watchdog of {iface}: its timer, {watch}, its state{}",
            if script_too {
                format!(" and {SCRIPT_PATH}")
            } else {
                String::new()
            }
        ),
        why,
        scripts::call("mu_watchdog_remove", &args),
    );
    if !diff.is_empty() {
        step = step.with_diff(diff);
    }
    vec![Decision::Change(step)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::HostFacts;
    use crate::plan::tests::{GUIDE, all_converged, fixture, input, n};
    use crate::plan::{FactsMap, Step, compute};

    fn facts_of<'a>(facts: &'a mut FactsMap, node: &str) -> &'a mut HostFacts {
        facts
            .get_mut(&n(node))
            .and_then(|f| f.as_mut().ok())
            .expect("facts")
    }

    fn steps(f: &crate::plan::tests::Fixture, facts: &FactsMap, node: &str) -> Vec<Step> {
        let (plan, _) = compute(&input(f, facts));
        plan.host(&n(node))
            .expect("host")
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Watchdog)
            .cloned()
            .collect()
    }

    /// The first line of a step's shell and its here-document.
    fn heredoc(shell: &str) -> (&str, &str) {
        let (first, rest) = shell.split_once('\n').expect("a here-document");
        let delimiter = first
            .rsplit("<<'")
            .next()
            .expect("delimiter")
            .trim_end_matches('\'');
        (first, rest.strip_suffix(delimiter).expect("ends with it"))
    }

    /// What the host holds once apply ran `steps` (as gather would read it back).
    fn applied(mut w: WatchdogFacts, steps: &[Step]) -> WatchdogFacts {
        for s in steps {
            let word = |i: usize| s.shell.split_whitespace().nth(i).unwrap_or("").to_string();
            match word(0).as_str() {
                "mu_put_file" => {
                    let (_, body) = heredoc(&s.shell);
                    w.files.insert(word(1), body.to_string());
                }
                "mu_cron_line" => {
                    let (_, body) = heredoc(&s.shell);
                    w.cron_lines
                        .push((word(1), body.trim_end_matches('\n').to_string()));
                }
                "mu_watchdog_timer" => {
                    w.timer_enabled = Some("enabled".into());
                    w.timer_active = Some("active".into());
                }
                other => panic!("unexpected step {other}: {}", s.shell),
            }
        }
        w
    }

    /// Per init the host really runs: the files and timer apply installs (in order),
    /// then, with them in place, no step: the second plan is empty.
    #[test]
    fn installs_for_the_hosts_own_timer_and_the_second_plan_is_empty() {
        let f = fixture(GUIDE);
        let watch = "/etc/wireguard/wg0.meshup-watch";
        let cases: [(&str, bool, &str, Vec<&str>); 3] = [
            (
                "systemd",
                true,
                "timer=systemd\ncron=cron\ncron_d=yes\n",
                vec![
                    SCRIPT_PATH,
                    watch,
                    "/etc/systemd/system/meshup-watchdog-wg0.service",
                    "/etc/systemd/system/meshup-watchdog-wg0.timer",
                    "mu_watchdog_timer",
                ],
            ),
            (
                "Debian cron",
                false,
                "cron=cron\ncron_d=yes\n",
                vec![SCRIPT_PATH, watch, "/etc/cron.d/meshup-watchdog-wg0"],
            ),
            (
                "busybox crond",
                false,
                "cron=crond\ncrontabs=/etc/crontabs\n",
                vec![SCRIPT_PATH, watch, "/etc/crontabs/root"],
            ),
        ];
        for (what, systemd, section, want) in cases {
            let mut facts = all_converged(&f);
            let host = facts_of(&mut facts, "node-a");
            host.init.systemd = systemd;
            host.watchdog = WatchdogFacts::parse(section);
            let first = steps(&f, &facts, "node-a");
            let got: Vec<String> = first
                .iter()
                .map(|s| {
                    let mut w = s.shell.split_whitespace();
                    let (func, arg) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
                    if func == "mu_watchdog_timer" {
                        func
                    } else {
                        arg
                    }
                    .to_string()
                })
                .collect();
            assert_eq!(got, want, "{what}");
            assert!(
                first
                    .iter()
                    .all(|s| s.phase() == crate::plan::Phase::Converge)
            );
            let all = first.iter().map(|s| s.shell.as_str()).collect::<String>();
            assert!(
                all.contains(
                    "/bin/sh /usr/local/lib/meshup/watchdog.sh /etc/wireguard/wg0.meshup-watch"
                ),
                "{what}: {all}"
            );
            if !systemd {
                // Cron ticks once a minute: twice, 30 s apart.
                assert!(
                    all.contains(">/dev/null 2>&1; sleep 30; /bin/sh"),
                    "{what}: {all}"
                );
            } else {
                assert!(
                    all.contains("OnUnitActiveSec=30s\nAccuracySec=1s\n"),
                    "{all}"
                );
                assert!(all.contains("WantedBy=timers.target"), "{all}");
            }
            let host = facts_of(&mut facts, "node-a");
            host.watchdog = applied(host.watchdog.clone(), &first);
            assert_eq!(steps(&f, &facts, "node-a"), [], "{what}: second plan");
            let (plan, _) = compute(&input(&f, &facts));
            let unchanged = &plan.host(&n("node-a")).expect("host").unchanged;
            assert!(
                unchanged
                    .iter()
                    .any(|u| u.starts_with("watchdog of wg0 installed (")),
                "{what}: {unchanged:?}"
            );
        }
        // No timer at all: a warning, nothing installed.
        let mut facts = all_converged(&f);
        facts_of(&mut facts, "node-a").watchdog = WatchdogFacts::parse("crontabs=/etc/crontabs\n");
        assert_eq!(steps(&f, &facts, "node-a"), []);
        let (plan, _) = compute(&input(&f, &facts));
        let warnings = &plan.host(&n("node-a")).expect("host").warnings;
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("no timer on this host")),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_interval_sets_the_timer_and_the_cron_line() {
        assert_eq!(cron_period(10), 30);
        assert_eq!(cron_period(30), 30);
        assert_eq!(cron_period(60), 60);
        assert_eq!(cron_period(90), 120);
        assert_eq!(cron_period(3600), 3600);
        let f = fixture(&GUIDE.replace(
            "  preshared_keys: true\n",
            "  preshared_keys: true\n  watchdog: { interval: 5m }\n",
        ));
        let (when, cmd) = cron_command(&f.mesh.settings, 300);
        assert_eq!(when, "*/5 * * * *");
        assert!(!cmd.contains("sleep"), "{cmd}");
        let (when, _) = cron_command(&f.mesh.settings, 3600);
        assert_eq!(when, "0 * * * *");
        let (_, timer) = units(&f.mesh.settings, 300);
        assert!(
            timer.contains("OnBootSec=300s\nOnUnitActiveSec=300s\n"),
            "{timer}"
        );
    }

    /// `watchdog: false` and `state: absent` remove the timer, the files and the state;
    /// the shared script only when no other interface has a watchdog.
    #[test]
    fn off_and_absent_remove_it_and_the_script_only_when_unshared() {
        let installed = "timer=systemd\nfile=/usr/local/lib/meshup/watchdog.sh\nline=x\n\
            file=/etc/wireguard/wg0.meshup-watch\nline=iface wg0\n\
            file=/etc/systemd/system/meshup-watchdog-wg0.timer\nline=[Timer]\n\
            enabled=enabled\nactive=active\ntick_age=3\n";
        let f = fixture(&GUIDE.replace(
            "  preshared_keys: true\n",
            "  preshared_keys: true\n  watchdog: false\n",
        ));
        let cases = [
            (
                installed.to_string(),
                Some(
                    "mu_watchdog_remove wg0 /etc/wireguard/wg0.meshup-watch /usr/local/lib/meshup/watchdog.sh",
                ),
            ),
            (
                format!("{installed}other=wg1\n"),
                Some("mu_watchdog_remove wg0 /etc/wireguard/wg0.meshup-watch"),
            ),
            (
                "timer=systemd\nfile=/usr/local/lib/meshup/watchdog.sh\nline=x\n".into(),
                Some(
                    "mu_watchdog_remove wg0 /etc/wireguard/wg0.meshup-watch /usr/local/lib/meshup/watchdog.sh",
                ),
            ),
            (
                "timer=systemd\nfile=/usr/local/lib/meshup/watchdog.sh\nline=x\nother=wg1\n".into(),
                None,
            ),
            ("timer=systemd\n".into(), None),
            (
                "cron=crond\ncronline=/etc/crontabs/root * * * * * x # meshup-watchdog wg0\n"
                    .into(),
                Some("mu_watchdog_remove wg0 /etc/wireguard/wg0.meshup-watch"),
            ),
        ];
        for (section, want) in cases {
            let mut facts = all_converged(&f);
            facts_of(&mut facts, "node-a").watchdog = WatchdogFacts::parse(&section);
            let got = steps(&f, &facts, "node-a");
            match want {
                Some(shell) => {
                    assert_eq!(got.len(), 1, "{section}");
                    assert_eq!(got[0].shell, shell, "{section}");
                    assert_eq!(got[0].action, Action::Delete);
                    assert_eq!(got[0].reason, "`mesh.watchdog` is false");
                }
                None => assert_eq!(got, [], "{section}"),
            }
            let host = facts_of(&mut facts, "node-a");
            let removal = watchdog_removal(
                &f.mesh.settings,
                host,
                "node is marked `state: absent` in the inventory",
            );
            assert_eq!(
                removal.iter().filter_map(Decision::step).count(),
                usize::from(want.is_some()),
                "{section}"
            );
        }
    }

    /// Runs `step` with the apply library under `sh -s` (as apply does), state in `dir`.
    fn run_lib(dir: &std::path::Path, pubkeys: &str, step: &str) -> (bool, String) {
        let script = scripts::Values::new()
            .set("MU_DIR", &dir.join("wg").display().to_string())
            .set("MU_IF", "wg0")
            .set("MU_RUNDIR", &dir.display().to_string())
            .set("MU_PUBKEYS", pubkeys)
            .before(&format!("{}{step}\n", scripts::APPLY_LIB));
        let out = scripts::run_sh(script.as_bytes());
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// `mu_put_file` fills learned keys (a line with an unknown one is left out), writes
    /// with the mode and does not rewrite an unchanged file; `mu_cron_line` keeps the
    /// crontab's other lines, replaces its own and removes it on empty input.
    #[test]
    fn the_library_writes_files_and_crontab_lines() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("etc/watch");
        let path = file.display().to_string();
        let body = "iface wg0\ndirect a <pubkey:node-a> r <pubkey:relay> 135\ndirect b <pubkey:node-b> r <pubkey:relay> 135\n";
        let write = scripts::call_with_stdin(&format!("mu_put_file {path} 644 pubkeys"), body);
        let (ok, out) = run_lib(dir.path(), "node-a=AAA= relay=RRR=", &write);
        assert!(ok, "{out}");
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            "iface wg0\ndirect a AAA= r RRR= 135\n"
        );
        let meta = std::fs::metadata(&file).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let (ok, out) = run_lib(dir.path(), "node-a=AAA= relay=RRR=", &write);
        assert!(ok, "{out}");
        assert_eq!(
            std::fs::metadata(&file).expect("stat").ino(),
            meta.ino(),
            "not rewritten"
        );

        let tab = dir.path().join("crontabs/root");
        let tab_s = tab.display().to_string();
        std::fs::create_dir_all(tab.parent().expect("dir")).expect("mkdir");
        std::fs::write(&tab, "0 3 * * * backup\n* * * * * old # meshup-watchdog wg0\n* * * * * x # meshup-watchdog wg1\n").expect("write");
        let call = scripts::call("mu_cron_line", &[&tab_s, "# meshup-watchdog wg0"]);
        let line = "* * * * * new # meshup-watchdog wg0";
        let (ok, out) = run_lib(dir.path(), "", &scripts::call_with_stdin(&call, line));
        assert!(ok, "{out}");
        assert_eq!(
            std::fs::read_to_string(&tab).expect("read"),
            format!("0 3 * * * backup\n* * * * * x # meshup-watchdog wg1\n{line}\n")
        );
        let (ok, out) = run_lib(dir.path(), "", &format!("{call} </dev/null"));
        assert!(ok, "{out}");
        assert_eq!(
            std::fs::read_to_string(&tab).expect("read"),
            "0 3 * * * backup\n* * * * * x # meshup-watchdog wg1\n"
        );
    }

    /// The watch file: a peer with a DNS-name endpoint, and a NAT peer reached directly
    /// with the relay that carries it otherwise; keys learned in this run are tokens.
    #[test]
    fn the_watch_file_lists_dns_endpoints_and_direct_pairs() {
        let text = GUIDE.replace("198.51.100.20:51820", "node-b.example.net:51820")
            + "  - name: node-d\n    address: 10.10.0.4\n";
        let mut f = fixture(&text);
        let direct = std::collections::BTreeMap::from([
            ((n("node-c"), n("node-d")), "100.64.0.4:51820".to_string()),
            ((n("node-d"), n("node-c")), "100.64.0.3:51820".to_string()),
        ]);
        f.mesh = f.mesh.clone().with_direct_nat(direct);
        let relay = f
            .mesh
            .node(&n("node-c"))
            .and_then(|s| s.relay.clone())
            .expect("a relay");
        let mut facts = all_converged(&f);
        facts_of(&mut facts, "node-c").watchdog =
            WatchdogFacts::parse("cron=crond\ncrontabs=/etc/crontabs\n");
        let (plan, keys) = compute(&input(&f, &facts));
        let step = plan
            .host(&n("node-c"))
            .expect("host")
            .steps
            .iter()
            .find(|s| {
                s.shell
                    .starts_with("mu_put_file /etc/wireguard/wg0.meshup-watch")
            })
            .cloned()
            .expect("the watch file step");
        let key = |node: &str| keys.get(&n(node)).map(|k| k.to_string()).expect("key");
        let (first, body) = heredoc(&step.shell);
        assert_eq!(
            first,
            "mu_put_file /etc/wireguard/wg0.meshup-watch 644 <<'MESHUP_EOF_0'"
        );
        assert_eq!(
            body,
            format!(
                "# meshup watchdog of wg0, written by meshup apply (public keys, names, endpoints: no secret)\n\
                 iface wg0\nstate /etc/wireguard/wg0\ninterval 30\n\
                 dns node-b {} node-b.example.net 51820\n\
                 direct node-d {} {relay} {} 135\n",
                key("node-b"),
                key("node-d"),
                key(relay.as_str()),
            )
        );
        // node-d's key not known yet (provisioned in this run): a token apply fills in.
        let mut facts = all_converged(&f);
        facts_of(&mut facts, "node-c").watchdog =
            WatchdogFacts::parse("cron=crond\ncrontabs=/etc/crontabs\n");
        facts.insert(n("node-d"), Ok(crate::plan::tests::fresh()));
        let (plan, _) = compute(&input(&f, &facts));
        let step = plan
            .host(&n("node-c"))
            .expect("host")
            .steps
            .iter()
            .find(|s| {
                s.shell
                    .starts_with("mu_put_file /etc/wireguard/wg0.meshup-watch")
            })
            .cloned()
            .expect("the watch file step");
        assert!(
            step.shell
                .starts_with("mu_put_file /etc/wireguard/wg0.meshup-watch 644 pubkeys <<"),
            "{}",
            step.shell
        );
        assert!(
            step.shell.contains("direct node-d <pubkey:node-d> "),
            "{}",
            step.shell
        );
    }
}

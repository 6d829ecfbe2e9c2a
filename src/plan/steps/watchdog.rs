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
        if let Some(text) = &node.endpoint
            && p.endpoint.as_deref() == Some(text.as_str())
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

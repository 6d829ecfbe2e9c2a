//! The `watchdog` fact: the timers a host can run the watchdog from, meshup's watchdog
//! files for the interface (their content: public data only), the last tick and the
//! fallbacks the watchdog recorded (`scripts/watchdog.sh`).
use std::collections::BTreeMap;

use serde::Serialize;

/// A cron daemon that runs on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CronDaemon {
    /// Debian's cron (or cronie): reads `/etc/cron.d`.
    Cron,
    /// busybox crond: reads `<crontabs dir>/root`.
    Crond,
}

/// A fallback the watchdog made: it moved a dead direct path's AllowedIPs back onto
/// the relay's entry (`<keydir>/fallback-<peer>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fallback {
    /// The relay that carries the pair since.
    pub relay: String,
    /// When (Unix time, the host's clock).
    pub at: u64,
    /// The direct endpoint that went silent.
    pub was: String,
    /// Seconds without a handshake when it fell back.
    pub silent: u64,
}

impl Fallback {
    /// Parses `relay=NAME at=EPOCH was=ENDPOINT silent=SECONDS`.
    fn parse(text: &str) -> Option<Fallback> {
        let field = |key: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        };
        Some(Fallback {
            relay: field("relay")?.to_string(),
            at: field("at")?.parse().ok()?,
            was: field("was").unwrap_or("-").to_string(),
            silent: field("silent").and_then(|s| s.parse().ok()).unwrap_or(0),
        })
    }
}

/// What the host shows of the watchdog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchdogFacts {
    /// The section was gathered (older gathers lack it: nothing is decided then).
    pub gathered: bool,
    /// systemd runs the host (`/run/systemd/system`, systemctl present).
    pub systemd: bool,
    /// Cron daemons running.
    pub cron: Vec<CronDaemon>,
    /// `/etc/cron.d` exists.
    pub cron_d: bool,
    /// busybox crond's crontabs directory, when one exists.
    pub crontabs: Option<String>,
    /// meshup's watchdog files for this interface that exist: path → content.
    pub files: BTreeMap<String, String>,
    /// This interface's lines in a crontab: (crontab file, line).
    pub cron_lines: Vec<(String, String)>,
    /// Other interfaces with a watchdog on this host (they share the script).
    pub others: Vec<String>,
    /// `systemctl is-enabled` of the timer (when its file exists).
    pub timer_enabled: Option<String>,
    /// `systemctl is-active` of the timer (when its file exists).
    pub timer_active: Option<String>,
    /// Seconds since the last tick.
    pub tick_age: Option<u64>,
    /// Fallbacks recorded, by peer.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fallbacks: BTreeMap<String, Fallback>,
}

impl WatchdogFacts {
    /// Parses the `watchdog` section.
    pub fn parse(body: &str) -> WatchdogFacts {
        let mut out = WatchdogFacts {
            gathered: true,
            ..WatchdogFacts::default()
        };
        let mut current: Option<String> = None;
        for line in body.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "timer" => out.systemd |= value == "systemd",
                "cron" => match value {
                    "cron" => out.cron.push(CronDaemon::Cron),
                    "crond" => out.cron.push(CronDaemon::Crond),
                    _ => {}
                },
                "cron_d" => out.cron_d = value == "yes",
                "crontabs" => out.crontabs = Some(value.to_string()),
                "file" => {
                    out.files.insert(value.to_string(), String::new());
                    current = Some(value.to_string());
                }
                "line" => {
                    if let Some(text) = current.as_ref().and_then(|f| out.files.get_mut(f)) {
                        text.push_str(value);
                        text.push('\n');
                    }
                }
                "cronline" => {
                    if let Some((file, text)) = value.split_once(' ') {
                        out.cron_lines.push((file.to_string(), text.to_string()));
                    }
                }
                "other" => {
                    if !out.others.iter().any(|o| o == value) {
                        out.others.push(value.to_string());
                    }
                }
                "enabled" => out.timer_enabled = Some(value.to_string()),
                "active" => out.timer_active = Some(value.to_string()),
                "tick_age" => out.tick_age = value.parse().ok(),
                "fallback" => {
                    if let Some((peer, rest)) = value.split_once(' ')
                        && let Some(f) = Fallback::parse(rest)
                    {
                        out.fallbacks.insert(peer.to_string(), f);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The content of one of meshup's files, when it exists.
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Anything of this interface's watchdog is on the host.
    pub fn installed(&self) -> bool {
        self.files.keys().any(|f| !f.ends_with("/watchdog.sh"))
            || !self.cron_lines.is_empty()
            || self.tick_age.is_some()
            || !self.fallbacks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A systemd host's section, as gather prints it (captured from a lab host).
    const SYSTEMD: &str = "timer=systemd\n\
        cron_d=yes\n\
        file=/usr/local/lib/meshup/watchdog.sh\n\
        line=#!/bin/sh\n\
        line=exit 0\n\
        file=/etc/wireguard/wg0.meshup-watch\n\
        line=iface wg0\n\
        line=state /etc/wireguard/wg0\n\
        file=/etc/systemd/system/meshup-watchdog-wg0.timer\n\
        line=[Timer]\n\
        line=\n\
        other=wg1\n\
        enabled=enabled\n\
        active=active\n\
        tick_age=12\n\
        fallback=nat-2 relay=pub-1 at=1765000000 was=100.64.0.2:51820 silent=150\n\
        fallback=nat-3 garbage\n";

    #[test]
    fn section_in_facts_out() {
        let f = WatchdogFacts::parse(SYSTEMD);
        assert!(f.gathered && f.systemd && f.cron_d && f.cron.is_empty());
        assert_eq!(
            f.file("/etc/wireguard/wg0.meshup-watch"),
            Some("iface wg0\nstate /etc/wireguard/wg0\n")
        );
        assert_eq!(
            f.file("/etc/systemd/system/meshup-watchdog-wg0.timer"),
            Some("[Timer]\n\n")
        );
        assert_eq!(f.others, ["wg1"]);
        assert_eq!(f.timer_enabled.as_deref(), Some("enabled"));
        assert_eq!(f.timer_active.as_deref(), Some("active"));
        assert_eq!(f.tick_age, Some(12));
        assert_eq!(
            f.fallbacks.get("nat-2"),
            Some(&Fallback {
                relay: "pub-1".into(),
                at: 1_765_000_000,
                was: "100.64.0.2:51820".into(),
                silent: 150
            })
        );
        assert_eq!(
            f.fallbacks.len(),
            1,
            "a record without relay and time is skipped"
        );
        assert!(f.installed());

        let light = WatchdogFacts::parse(
            "cron=crond\ncrontabs=/etc/crontabs\ncronline=/etc/crontabs/root * * * * * x # meshup-watchdog wg0\nother=wg9\n",
        );
        assert!(!light.systemd && !light.cron_d);
        assert_eq!(light.cron, [CronDaemon::Crond]);
        assert_eq!(light.crontabs.as_deref(), Some("/etc/crontabs"));
        assert_eq!(
            light.cron_lines,
            [(
                "/etc/crontabs/root".to_string(),
                "* * * * * x # meshup-watchdog wg0".to_string()
            )]
        );
        assert!(light.installed());

        let bare = WatchdogFacts::parse(
            "cron=cron\ncron_d=yes\nfile=/usr/local/lib/meshup/watchdog.sh\nline=x\n",
        );
        assert!(
            !bare.installed(),
            "the shared script alone is no watchdog of this interface"
        );
        assert!(!WatchdogFacts::default().gathered);
    }
}

//! The `files` fact: which meshup files exist in the config dir (names only).

use serde::Serialize;

use super::sections::{key_values, value, yes_no};

/// Presence of meshup's files on the host. Holds file names, never contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    /// The config dir exists.
    pub config_dir: bool,
    /// `<interface>.conf` exists.
    pub config: bool,
    /// `<interface>.conf.meshup-prev` exists.
    pub backup: bool,
    /// `.meshup-<interface>.lock` exists.
    pub lock: bool,
    /// The interface's keys are still in the config dir itself, where meshup kept them
    /// before state was per interface (`<config dir>/<interface>/`), and belong to it.
    pub legacy_layout: bool,
    /// No key file of meshup's, but the interface's config holds its private key inline
    /// (a hand-built mesh): apply moves it into the interface's directory unchanged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inline_key: bool,
    /// `/etc/sysctl.d/99-meshup-forward.conf` exists.
    pub sysctl_forward: bool,
    /// Names of every `psk-*.key` file in the config dir, sorted.
    pub psk_files: Vec<String>,
    /// The process holding the interface's lock right now (another meshup run), if any.
    pub lock_holder: Option<LockHolder>,
    /// What apply's gather got of the run hold (`None`: a gather that does not hold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Punches that failed (no handshake): peer → the endpoint tried
    /// (`<interface>/punch-failed-<peer>`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub punch_failed: std::collections::BTreeMap<String, String>,
}

/// What a run's gather got of the run hold on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hold {
    /// This run holds the host.
    Mine,
    /// Another run does.
    Other,
    /// The host has nothing to hold with (no `flock`, or the shell is not under an sshd):
    /// the run goes on without a hold there.
    Unsupported,
}

impl Hold {
    fn parse(text: &str) -> Option<Hold> {
        match text {
            "mine" => Some(Hold::Mine),
            "other" => Some(Hold::Other),
            "unsupported" => Some(Hold::Unsupported),
            _ => None,
        }
    }
}

/// A process holding meshup's lock on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    /// Its PID, when it can be seen (a lock taken by a process that has exited does not
    /// show in a container's `/proc/locks`).
    pub pid: Option<u32>,
    /// Its command name (`/proc/PID/comm`).
    pub comm: String,
    /// The user it runs as.
    pub user: String,
    /// Seconds since it started, when known.
    pub age_secs: Option<u64>,
    /// Who started that meshup run (`user@host` of its workstation), when it is one.
    pub by: String,
    /// The lock it holds, when it is not the interface's lock in the config dir (apply's
    /// run hold in `/run`).
    pub path: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "PID {pid}")?,
            None => write!(f, "a process this host does not show")?,
        }
        if !self.comm.is_empty() {
            write!(f, " ({})", self.comm)?;
        }
        if !self.user.is_empty() {
            write!(f, ", user {}", self.user)?;
        }
        if let Some(age) = self.age_secs {
            write!(f, ", running for {age} s")?;
        }
        if !self.by.is_empty() {
            write!(f, ", started by {}", self.by)?;
        }
        Ok(())
    }
}

impl FileFacts {
    /// Parses the `files` section.
    pub fn parse(body: &str) -> FileFacts {
        let kv = key_values(body);
        let flag = |key| yes_no(value(&kv, key)).unwrap_or(false);
        let mut psk_files: Vec<String> = kv
            .iter()
            .filter(|(k, v)| *k == "psk_file" && v.starts_with("psk-") && v.ends_with(".key"))
            .map(|(_, v)| v.to_string())
            .collect();
        psk_files.sort();
        psk_files.dedup();
        let punch_failed = kv
            .iter()
            .filter(|(k, _)| *k == "punch_failed")
            .filter_map(|(_, v)| {
                let (peer, endpoint) = v.split_once(' ')?;
                Some((peer.to_string(), endpoint.trim().to_string()))
            })
            .collect();
        FileFacts {
            punch_failed,
            hold: value(&kv, "hold").and_then(Hold::parse),
            config_dir: flag("config_dir"),
            config: flag("config"),
            backup: flag("backup"),
            lock: flag("lock"),
            legacy_layout: value(&kv, "layout") == Some("legacy"),
            inline_key: value(&kv, "layout") == Some("inline"),
            sysctl_forward: flag("sysctl_forward"),
            psk_files,
            lock_holder: (value(&kv, "lock_held") == Some("yes")
                || value(&kv, "lock_holder_pid").is_some_and(|p| p.parse::<u32>().is_ok()))
            .then(|| LockHolder {
                pid: value(&kv, "lock_holder_pid").and_then(|p| p.parse().ok()),
                comm: value(&kv, "lock_holder_comm").unwrap_or("").to_string(),
                user: value(&kv, "lock_holder_user").unwrap_or("").to_string(),
                age_secs: value(&kv, "lock_holder_age").and_then(|a| a.parse().ok()),
                by: value(&kv, "lock_holder_by").unwrap_or("").to_string(),
                path: value(&kv, "lock_path").map(str::to_string),
            }),
        }
    }

    /// Peer names that have a PSK file (`psk-<peer>.key`).
    pub fn psk_peers(&self) -> Vec<&str> {
        self.psk_files
            .iter()
            .filter_map(|f| f.strip_prefix("psk-")?.strip_suffix(".key"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_hold_is_read() {
        for (text, want) in [
            ("hold=mine\n", Some(Hold::Mine)),
            ("hold=other\nlock_held=yes\n", Some(Hold::Other)),
            ("hold=unsupported\n", Some(Hold::Unsupported)),
            ("hold=maybe\n", None),
            ("", None),
        ] {
            assert_eq!(FileFacts::parse(text).hold, want, "{text}");
        }
    }

    #[test]
    fn a_held_lock_names_its_holder() {
        let f = FileFacts::parse(
            "lock=yes\nlock_holder_pid=812\nlock_holder_comm=sh\nlock_holder_user=root\nlock_holder_age=40\n",
        );
        let holder = f.lock_holder.expect("holder");
        assert_eq!(
            holder.to_string(),
            "PID 812 (sh), user root, running for 40 s"
        );
        let run = FileFacts::parse(
            "lock_holder_by=alice@ws\nlock_holder_pid=9\nlock_holder_comm=sh\nlock_holder_user=root\nlock_holder_age=3\n",
        );
        assert_eq!(
            run.lock_holder.expect("holder").to_string(),
            "PID 9 (sh), user root, running for 3 s, started by alice@ws"
        );
        assert_eq!(FileFacts::parse("lock=yes\n").lock_holder, None);
        assert_eq!(FileFacts::parse("lock_holder_pid=x\n").lock_holder, None);
        assert_eq!(
            FileFacts::parse("lock_held=yes\n")
                .lock_holder
                .expect("held")
                .to_string(),
            "a process this host does not show"
        );
    }
}

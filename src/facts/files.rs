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
    /// `.meshup.lock` exists.
    pub lock: bool,
    /// `/etc/sysctl.d/99-meshup-forward.conf` exists.
    pub sysctl_forward: bool,
    /// Names of every `psk-*.key` file in the config dir, sorted.
    pub psk_files: Vec<String>,
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
        FileFacts {
            config_dir: flag("config_dir"),
            config: flag("config"),
            backup: flag("backup"),
            lock: flag("lock"),
            sysctl_forward: flag("sysctl_forward"),
            psk_files,
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

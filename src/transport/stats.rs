//! Counters of SSH work per host, for `meshup --stats`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts of SSH connections and exec channels for one host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// TCP+SSH connections opened to this host (jump hosts count on their own name).
    pub connections: u64,
    /// Commands run (one session channel each).
    pub execs: u64,
}

/// SSH counters shared by all sessions of a run (wrap in `Arc`).
#[derive(Debug, Default)]
pub struct Stats {
    hosts: Mutex<BTreeMap<String, HostStats>>,
}

impl Stats {
    /// Fresh, empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, host: &str, f: impl FnOnce(&mut HostStats)) {
        // A poisoned lock only means another thread panicked mid-increment; the
        // counters are still usable.
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        f(hosts.entry(host.to_string()).or_default());
    }

    /// Records one connection opened to `host`.
    pub fn record_connection(&self, host: &str) {
        self.update(host, |s| s.connections += 1);
    }

    /// Records one command run on `host`.
    pub fn record_exec(&self, host: &str) {
        self.update(host, |s| s.execs += 1);
    }

    /// The counters of one host.
    pub fn host(&self, host: &str) -> HostStats {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.get(host).copied().unwrap_or_default()
    }

    /// All hosts' counters, sorted by host name.
    pub fn snapshot(&self) -> BTreeMap<String, HostStats> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

//! `--stats`: wall time per phase, SSH connections and execs per host, peak memory.
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::transport::Stats;

/// Phase timings of one run.
#[derive(Debug, Clone)]
pub struct StatsReport {
    started: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Default for StatsReport {
    fn default() -> Self {
        StatsReport::new()
    }
}

impl StatsReport {
    /// Starts the wall clock.
    pub fn new() -> StatsReport {
        StatsReport {
            started: Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Records a phase that started at `since`.
    pub fn phase(&mut self, name: &'static str, since: Instant) {
        self.phases.push((name, since.elapsed()));
    }

    /// Records a phase measured elsewhere (phases that overlap, e.g. verify's connect
    /// and probe, which run per host without a barrier).
    pub fn add_phase(&mut self, name: &'static str, d: Duration) {
        self.phases.push((name, d));
    }

    /// Wall time so far.
    pub fn wall(&self) -> Duration {
        self.started.elapsed()
    }

    /// The duration of a recorded phase.
    pub fn get(&self, name: &str) -> Duration {
        self.phases
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .sum()
    }

    /// The report: `headline`, the phases, the SSH counters (total and per host) and
    /// the peak resident memory.
    pub fn render(&self, headline: &str, stats: &Stats) -> String {
        let mut out = format!("\n{headline}\n");
        for (phase, d) in &self.phases {
            let _ = writeln!(out, "  phase {phase:<24} {:>8.3} s", d.as_secs_f64());
        }
        let _ = writeln!(
            out,
            "  total {:<24} {:>8.3} s",
            "",
            self.wall().as_secs_f64()
        );
        let snapshot = stats.snapshot();
        let hosts = snapshot.len().max(1);
        let conns: u64 = snapshot.values().map(|h| h.connections).sum();
        let execs: u64 = snapshot.values().map(|h| h.execs).sum();
        let max_execs = snapshot.values().map(|h| h.execs).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "  ssh: {} hosts, {conns} connections, {execs} execs ({:.2} connections and {:.2} execs per host, max {max_execs})",
            snapshot.len(),
            conns as f64 / hosts as f64,
            execs as f64 / hosts as f64
        );
        for (host, s) in &snapshot {
            let _ = writeln!(
                out,
                "    {host}: {} connection{}, {} exec{}",
                s.connections,
                if s.connections == 1 { "" } else { "s" },
                s.execs,
                if s.execs == 1 { "" } else { "s" },
            );
        }
        if let Some(kib) = peak_rss_kib() {
            let _ = writeln!(out, "  peak rss: {:.1} MiB", kib as f64 / 1024.0);
        }
        out
    }
}

/// Peak resident memory of this process (VmHWM), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

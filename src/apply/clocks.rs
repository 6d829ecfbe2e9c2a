//! The hosts' clocks against each other, for the agreed instant of a flip.
//!
//! Each host says it is ready with its clock (`date +%s.%N`, lib.sh `mu_instant`), and waits
//! for the instant, which it compares with that clock. A host whose clock is off (no time
//! sync; a VM whose clock started from a whole-second RTC) would switch that much after or
//! before its peers and lose that long with each of them. So every ready line gives a
//! reading: its stamp against when it arrived here, less half the round trip to that host.
//! A reading is the host's clock minus this workstation's, plus whatever the line waited
//! on the way beyond half a round trip (on a loaded machine, tens to hundreds of ms, much
//! the same for every host). The hosts' median reading is taken as the mesh's clock: a
//! host off from it by more than [`TOLERANCE`] gets the instant moved by the difference,
//! and when the hosts' clocks are ahead of this one by more than that, every instant is
//! moved with them (else it would be past when they read it). Hosts behind this
//! workstation, or the common wait, only make the instant come a little later.
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::inventory::NodeName;

/// Differences below this are taken as they are: the readings are only as good as the
/// time a line spends on its way, and hosts kept by NTP agree to a few ms. On the 2-core
/// lab under a flood (50 hosts, 380 pings at 20/s, load average 90) lines of hosts with one
/// clock read up to 0.6 s apart; without it, they stay within 0.1 s of each other.
pub const TOLERANCE: Duration = Duration::from_millis(200);

/// A reading of a host's clock from its ready line: `stamp` is the time the line carries
/// (`EPOCH.frac` by the host's clock), `received` when it arrived here (epoch seconds by
/// this clock), `round_trip` the shortest one to that host. Seconds, the host's clock minus
/// this one (plus the line's wait on the way). `None` for a stamp that is no sub-second time
/// (a `date` without `%N` prints `EPOCH.N` or `EPOCH.%N`; an older script sends none).
pub fn reading(stamp: &str, received: f64, round_trip: Duration) -> Option<f64> {
    let stamp = stamp.trim();
    let (secs, frac) = stamp.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(frac) || frac.len() < 3 {
        return None;
    }
    let at: f64 = stamp.parse().ok()?;
    Some(at - (received - round_trip.as_secs_f64() / 2.0))
}

/// The instant as a host reads it (`EPOCH.mmm`), moved by `shift` seconds; a wave called
/// off (empty) stays called off.
pub fn on_host_clock(instant: &str, shift: f64) -> String {
    match instant.parse::<f64>() {
        Ok(at) if !instant.is_empty() && shift != 0.0 => format!("{:.3}", at + shift),
        _ => instant.to_string(),
    }
}

/// The readings of one wave's hosts.
#[derive(Default)]
pub struct Clocks {
    readings: Mutex<BTreeMap<NodeName, f64>>,
}

impl Clocks {
    /// Records a host's reading (its ready line).
    pub fn record(&self, node: &NodeName, reading: f64) {
        self.lock().insert(node.clone(), reading);
    }

    /// How far to move the instant sent to `node`: the hosts' common lead over this clock
    /// (when above the tolerance) plus the node's own difference from the hosts' median
    /// (when above it). Asked once the instant is set, when every ready host has reported.
    pub fn shift(&self, node: &NodeName) -> f64 {
        let readings = self.lock();
        let (lead, median) = lead_and_median(&readings);
        let own = readings
            .get(node)
            .map(|r| r - median)
            .filter(|d| d.abs() > TOLERANCE.as_secs_f64())
            .unwrap_or(0.0);
        lead + own
    }

    /// Says which hosts' clocks are off from the others' (their instants were moved), and
    /// whether the hosts' clocks are ahead of this workstation's.
    pub fn print(&self) {
        if crate::ui::console::quiet() {
            return;
        }
        if let Some(line) = self.summary() {
            println!("{line}");
        }
    }

    fn summary(&self) -> Option<String> {
        let readings = self.lock();
        let (lead, median) = lead_and_median(&readings);
        let off: Vec<String> = readings
            .iter()
            .map(|(n, r)| (n, r - median))
            .filter(|(_, d)| d.abs() > TOLERANCE.as_secs_f64())
            .map(|(n, d)| {
                format!(
                    "{n} {:.2} s {}",
                    d.abs(),
                    if d < 0.0 { "behind" } else { "ahead" }
                )
            })
            .collect();
        let mut parts = Vec::new();
        if !off.is_empty() {
            parts.push(format!(
                "{} the others (their switch was timed by their own clocks): set up time sync (chrony, systemd-timesyncd) there",
                off.join(", ")
            ));
        }
        if lead > 0.0 {
            parts.push(format!(
                "the hosts' clocks are {lead:.2} s ahead of this workstation's (the instant was sent by theirs)"
            ));
        }
        (!parts.is_empty()).then(|| format!("clocks: {}", parts.join("; ")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeName, f64>> {
        self.readings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The hosts' median reading, and how far the hosts are ahead of this clock when that is
/// more than the tolerance (else 0).
fn lead_and_median(readings: &BTreeMap<NodeName, f64>) -> (f64, f64) {
    let mut v: Vec<f64> = readings.values().copied().collect();
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let lead = if median > TOLERANCE.as_secs_f64() {
        median
    } else {
        0.0
    };
    (lead, median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> NodeName {
        s.parse().expect("name")
    }

    #[test]
    fn a_reading_is_the_stamp_against_its_arrival_less_half_the_round_trip() {
        let rtt = Duration::from_millis(40);
        let r = reading("1000.400000000", 1001.0, rtt).expect("ns stamp");
        assert!((r + 0.58).abs() < 1e-6, "{r}");
        let r = reading("1002.980", 1001.0, rtt).expect("ms stamp");
        assert!((r - 2.0).abs() < 1e-6, "{r}");
        for stamp in [
            "1000.N", "1000.%N", "1000", "", "1000.4x", "1e3.500", "-5.000", "1000.40",
        ] {
            assert_eq!(reading(stamp, 1001.0, rtt), None, "{stamp:?}");
        }
        assert_eq!(on_host_clock("1005.300", -0.58), "1004.720");
        assert_eq!(on_host_clock("1005.300", 2.0), "1007.300");
        assert_eq!(on_host_clock("1005.300", 0.0), "1005.300");
        assert_eq!(on_host_clock("", -0.58), "", "called off stays off");
    }

    #[test]
    fn a_host_off_from_the_others_is_moved_and_named_and_the_common_wait_is_not() {
        let c = Clocks::default();
        // Under load every line waits about 0.25 s on its way; pub-1 is also 1.5 s behind.
        for (n, r) in [
            ("pub-1", -1.75),
            ("pub-2", -0.25),
            ("pub-3", -0.27),
            ("pub-4", -0.2),
        ] {
            c.record(&name(n), r);
        }
        assert!(
            (c.shift(&name("pub-1")) + 1.49).abs() < 1e-9,
            "{}",
            c.shift(&name("pub-1"))
        );
        for n in ["pub-2", "pub-3", "pub-4"] {
            assert_eq!(c.shift(&name(n)), 0.0, "{n} is with the others");
        }
        assert_eq!(
            c.summary().as_deref(),
            Some(
                "clocks: pub-1 1.49 s behind the others (their switch was timed by their own clocks): set up time sync (chrony, systemd-timesyncd) there"
            )
        );
        assert_eq!(c.shift(&name("not-there")), 0.0);
    }

    #[test]
    fn hosts_ahead_of_this_workstation_get_the_instant_by_their_clocks() {
        let c = Clocks::default();
        for (n, r) in [("a", 2.0), ("b", 2.02), ("c", 1.99)] {
            c.record(&name(n), r);
        }
        for n in ["a", "b", "c"] {
            assert!((c.shift(&name(n)) - 2.0).abs() < 1e-9, "{n}");
        }
        assert!(
            c.summary()
                .expect("a line")
                .contains("the hosts' clocks are 2.00 s ahead of this workstation's"),
        );
        // In step, or only behind this clock: nothing moves, nothing is said.
        let quiet = Clocks::default();
        for (n, r) in [("a", -0.03), ("b", 0.01), ("c", -0.6)] {
            quiet.record(&name(n), r);
        }
        assert_eq!(quiet.shift(&name("a")), 0.0);
        assert!(quiet.shift(&name("c")) < -0.5, "c is behind the others");
        assert_eq!(Clocks::default().summary(), None);
    }
}

//! The agreed instant of a wave of flips (key rotations, peer switches), set once every
//! flipping host is ready rather than guessed ahead.
//!
//! Each host prepares everything up to its switch, says so (`mu_instant` prints a `ready`
//! marker) and waits for the instant on its script's input. When the last host is ready,
//! or has ended without being ready (failed), the instant is set a short margin ahead and
//! sent to every waiting host; a host not ready by the deadline does not hold the others.
//! A fixed instant had to allow for the slowest script to arrive on a loaded machine
//! (3 s + 0.1 s per host), which every run then waited in full.
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::inventory::NodeName;

/// How long a wave waits for its hosts to be ready before it sets the instant anyway:
/// a script reaches its switch in well under a second on an idle host.
pub fn deadline(hosts: usize) -> Duration {
    Duration::from_secs(20) + Duration::from_millis(100) * u32::try_from(hosts).unwrap_or(0)
}

/// How far ahead of "all ready" the instant is: the word must reach every host (one way,
/// less than the slowest round trip this run measured, which under load is mostly the
/// hosts' sshd waking up) and its switch must be started there (a few processes on a
/// loaded host). A host the word reaches late switches at once, a few ms after the rest.
pub fn margin(slowest_round_trip: Duration) -> Duration {
    Duration::from_millis(300) + slowest_round_trip
}

/// One wave's instant: open once every host has arrived (ready, or gone without being
/// ready), or when [`Gate::open`] is called at the deadline.
pub struct Gate {
    pending: Mutex<usize>,
    /// When the gate was made, and how long after that it opened.
    made: std::time::Instant,
    waited: Mutex<Option<Duration>>,
    margin: Duration,
    /// The instant once set (`EPOCH.mmm`), empty when the wave was called off.
    instant: watch::Sender<Option<String>>,
}

/// One host's arrival at the gate: counted once, when it says it is ready or when it is
/// dropped, whichever comes first.
pub struct Arrival<'a> {
    gate: &'a Gate,
    arrived: AtomicBool,
}

impl Gate {
    /// A gate for `hosts` hosts, whose instant will be `margin` after it opens.
    pub fn new(hosts: usize, margin: Duration) -> Self {
        let (instant, _) = watch::channel(None);
        let gate = Gate {
            pending: Mutex::new(hosts),
            made: std::time::Instant::now(),
            waited: Mutex::new(None),
            margin,
            instant,
        };
        if hosts == 0 {
            gate.open();
        }
        gate
    }

    /// A host's way through the gate.
    pub fn arrival(&self) -> Arrival<'_> {
        Arrival {
            gate: self,
            arrived: AtomicBool::new(false),
        }
    }

    /// Sets the instant (if not set yet): now plus the margin, as seconds since the
    /// epoch on this workstation's clock, as the hosts compare it to theirs.
    pub fn open(&self) {
        let at = SystemTime::now()
            .checked_add(self.margin)
            .unwrap_or_else(SystemTime::now)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.settle(format!("{at:.3}"));
    }

    /// Calls the wave off (the run was interrupted before its instant): every waiting
    /// host gets no instant and keeps its current config.
    pub fn call_off(&self) {
        self.settle(String::new());
    }

    /// How long after the gate was made its instant was set (or the wave called off).
    pub fn waited(&self) -> Option<Duration> {
        *self.waited.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settle(&self, instant: String) {
        self.instant.send_if_modified(|v| {
            if v.is_none() {
                *self.waited.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.made.elapsed());
                *v = Some(instant);
                true
            } else {
                false
            }
        });
    }

    /// The instant once set, as the hosts read it (`EPOCH.mmm`; empty: called off).
    pub async fn instant(&self) -> String {
        let mut rx = self.instant.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or_default(),
            // The sender lives as long as the gate, so this is not reached; no instant
            // is the safe answer.
            Err(_) => String::new(),
        }
    }

    /// Returns once the gate is open (every host arrived, or opened by hand).
    pub async fn opened(&self) {
        self.instant().await;
    }

    /// The instant set, if it is.
    #[cfg(test)]
    pub fn set(&self) -> Option<f64> {
        self.instant.borrow().as_ref().and_then(|v| v.parse().ok())
    }

    fn arrive(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            self.open();
        }
    }
}

impl Arrival<'_> {
    /// The host said it is ready.
    pub fn ready(&self) {
        if !self.arrived.swap(true, Ordering::SeqCst) {
            self.gate.arrive();
        }
    }
}

/// A host that ends without saying it is ready (failed, not connected, interrupted before
/// its script was sent) is counted when its arrival goes: no gate waits for it.
impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.ready();
    }
}

/// How long after the agreed instant each host's flip took effect, by its own clock (a
/// pair loses about the difference between its two hosts): the range and the latest.
pub(super) fn print_switched(switched: &[(NodeName, String)], ready_after: Option<Duration>) {
    if crate::ui::console::quiet() {
        return;
    }
    let mut ms: Vec<(i64, &NodeName)> = switched
        .iter()
        .filter_map(|(n, v)| v.trim().parse::<i64>().ok().map(|ms| (ms, n)))
        .collect();
    ms.sort();
    if let (Some((first, _)), Some((last, node))) = (ms.first(), ms.last()) {
        let ready = ready_after.map_or(String::new(), |d| {
            format!(
                "; all ready {:.1} s after their scripts were sent",
                d.as_secs_f64()
            )
        });
        println!(
            "flip: {} host(s) switched {first} to {last} ms after the agreed instant (by their own clocks; latest: {node}){ready}",
            ms.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_when_every_host_has_arrived_once() {
        let gate = Gate::new(3, Duration::from_millis(300));
        let (a, b, c) = (gate.arrival(), gate.arrival(), gate.arrival());
        a.ready();
        a.ready();
        drop(a);
        drop(b);
        assert_eq!(
            gate.set(),
            None,
            "two of three arrived, one of them three times"
        );
        c.ready();
        let at = gate.set().expect("open once all three arrived");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            at > now && at <= now + 0.301,
            "{at} is the margin ahead of {now} (to the ms)"
        );
        // Opening again (the deadline) keeps the instant already sent.
        gate.open();
        assert_eq!(gate.set(), Some(at));
    }

    #[tokio::test]
    async fn the_instant_reaches_waiters_in_the_hosts_format() {
        let gate = Gate::new(1, Duration::ZERO);
        let arrival = gate.arrival();
        let (text, ()) = tokio::join!(gate.instant(), async { arrival.ready() });
        let (secs, millis) = text.split_once('.').expect("EPOCH.mmm");
        assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
        assert_eq!(millis.len(), 3);
        assert!(
            Gate::new(0, Duration::ZERO).set().is_some(),
            "nothing to wait for"
        );
    }

    #[tokio::test]
    async fn a_wave_called_off_sends_no_instant_and_stays_off() {
        let gate = Gate::new(2, Duration::ZERO);
        gate.call_off();
        gate.arrival().ready();
        gate.arrival().ready();
        assert_eq!(gate.instant().await, "");
        assert_eq!(gate.set(), None);
    }

    #[test]
    fn margin_and_deadline_grow_with_the_path_and_the_wave() {
        assert_eq!(margin(Duration::ZERO), Duration::from_millis(300));
        assert_eq!(
            margin(Duration::from_millis(40)),
            Duration::from_millis(340)
        );
        assert_eq!(deadline(50), Duration::from_secs(25));
    }
}

//! Sending a plan: the prepare phase (install, keys, preshared keys) on every changing
//! host, then the converge phase in waves, then the first handshakes of the pairs the run
//! changed ([`settle`](super::settle)).
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{clocks, instant, phase, punch, settle};
use crate::fanout;
use crate::host_error::HostError;
use crate::interrupt::Interrupt;
use crate::inventory::NodeName;
use crate::keys::PublicKey;
use crate::plan::{self, HostPlan, Phase, Plan, Planner};
use crate::scripts::Values;
use crate::secret::Secret;
use crate::session::{Gathered, Session};
use crate::ui::{HostOutcome, Progress, Recap, StatsReport};

const PREPARE_TIMEOUT: Duration = Duration::from_secs(900);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);

/// A fresh random preshared key (what `wg genpsk` makes: 32 random bytes, base64).
fn new_psk() -> Secret {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    bytes.fill(0);
    Secret::new(text)
}

/// The preshared keys of this run, by host. Made in memory, sent only to the pair's two
/// hosts, never written or printed here. Pairs are walked in plan order, so each host's
/// list is in the order of its steps' `MU_PSK_<n>` (see `PskPlan::peers_of`).
fn psk_values(plan: &Plan) -> BTreeMap<NodeName, Vec<Secret>> {
    let mut out: BTreeMap<NodeName, Vec<Secret>> = BTreeMap::new();
    for (a, b) in &plan.new_psk_pairs {
        let psk = new_psk();
        out.entry(b.clone())
            .or_default()
            .push(Secret::new(psk.expose().to_vec()));
        out.entry(a.clone()).or_default().push(psk);
    }
    out
}

/// The values of a host's prepare script: the base values and its preshared keys.
pub fn prepare_values(session: &Session, psks: &[Secret]) -> Values {
    let mut values = phase::base_values(&session.mesh.settings, &session.run);
    for (i, psk) in psks.iter().enumerate() {
        values = values.set(
            &format!("MU_PSK_{}", i + 1),
            psk.expose_str().unwrap_or_default(),
        );
    }
    values
}

/// The values of a converge script: the base values and the public keys generated
/// during this run (`name=key …`), which the host fills into its config.
pub fn converge_values(session: &Session, generated: &BTreeMap<NodeName, PublicKey>) -> Values {
    let pubkeys: Vec<String> = generated.iter().map(|(n, k)| format!("{n}={k}")).collect();
    phase::base_values(&session.mesh.settings, &session.run).set("MU_PUBKEYS", &pubkeys.join(" "))
}

/// Runs the plan's steps: prepare on every changing host, then converge on those
/// whose prepare succeeded. Returns the public keys generated on hosts in this run.
#[allow(clippy::too_many_arguments)]
pub(super) fn execute(
    session: &Session,
    mesh: &crate::topology::Mesh,
    gathered: &Gathered,
    plan: &Plan,
    planner: &Planner<'_>,
    interrupt: &Interrupt,
    recap: &mut Recap,
    report: &mut StatsReport,
) -> BTreeMap<NodeName, PublicKey> {
    let keys = &planner.keys;
    // The steps as shown, made again host by host just before they are sent.
    let steps_of = |host: &HostPlan| {
        let full = planner.host(&host.node, false);
        if full.fingerprint == host.fingerprint {
            Ok(full)
        } else {
            Err(HostError::blocked(
                "its steps came out different from the plan shown (a bug in meshup): nothing was sent",
            ))
        }
    };
    let steps_of = &steps_of;
    let changing: Vec<&HostPlan> = plan.hosts.iter().filter(|h| h.has_changes()).collect();
    let progress = Progress::new(changing.iter().map(|h| h.node.as_str()), session.verbose);
    let connection = |node: &NodeName| {
        gathered
            .sessions
            .get(node)
            .cloned()
            .ok_or(HostError::NotConnected)
    };

    // Phase 1: install, keys, preshared keys.
    let mut psks = psk_values(plan);
    let prepare: Vec<(&HostPlan, Values)> = changing
        .iter()
        .filter(|h| h.phase(Phase::Prepare).next().is_some())
        .map(|h| {
            (
                *h,
                prepare_values(session, &psks.remove(&h.node).unwrap_or_default()),
            )
        })
        .collect();
    let t = Instant::now();
    let results =
        session.block_on(fanout::run(prepare, session.parallel, |(host, values)| {
            let session_for_host = connection(&host.node);
            let progress = &progress;
            async move {
                if interrupt.stopped() {
                    return Err(HostError::Interrupted);
                }
                let ssh = session_for_host?;
                let installing = host
                    .phase(Phase::Prepare)
                    .any(|s| s.kind == plan::StepKind::Install);
                progress.set(
                    host.node.as_str(),
                    if installing {
                        "installing WireGuard"
                    } else {
                        "preparing keys"
                    },
                );
                let full = steps_of(host)?;
                let text = phase::script(&values, Phase::Prepare, full.phase(Phase::Prepare));
                drop(full);
                let markers = phase::run(&ssh, Phase::Prepare, &text, PREPARE_TIMEOUT).await?;
                // A rotated node reports its next key; the current one stays until the flip.
                let kind = if keys.rotating.contains(&host.node) {
                    "nextkey"
                } else {
                    "pubkey"
                };
                let key = markers.iter().find(|m| m.kind == kind).ok_or_else(|| {
                    HostError::BadAnswer {
                        message: "no public key after key generation".into(),
                    }
                })?;
                key.value
                    .parse::<PublicKey>()
                    .map_err(|_| HostError::BadAnswer {
                        message: "the host returned an invalid public key".into(),
                    })
            }
        }));
    report.phase("prepare (install, keys)", t);
    let mut generated: BTreeMap<NodeName, PublicKey> = BTreeMap::new();
    for ((host, _), result) in results {
        match result {
            Ok(key) => {
                if keys.generated_during_run(&host.node) {
                    generated.insert(host.node.clone(), key);
                }
                if host.phase(Phase::Converge).next().is_none() {
                    progress.finish(host.node.as_str(), "changed");
                    recap
                        .outcomes
                        .insert(host.node.clone(), HostOutcome::Changed(host.steps.len()));
                }
            }
            Err(HostError::Interrupted) => progress.finish(host.node.as_str(), "not run"),
            Err(e) => {
                progress.finish(host.node.as_str(), format!("failed: {e}"));
                recap
                    .outcomes
                    .insert(host.node.clone(), HostOutcome::Failed(e));
            }
        }
    }

    // Phase 2: converge, in two waves: nodes that move what their peers use (a listen
    // port, addresses) first; their peers only once those have succeeded.
    // A key rotation flips on every host of a wave at one instant, a moment after the
    // wave's converge scripts have been sent (they wait for it on the hosts). Each wave
    // gets its own: one agreed before the first would have passed when the second starts.
    // How long a new session's first handshake may take before it is tried again: the
    // round trip between two hosts is at most the sum of theirs to this workstation.
    let slowest = gathered
        .sessions
        .values()
        .filter_map(|s| s.round_trip())
        .max()
        .unwrap_or_default();
    let retry = (2.0 * slowest.as_secs_f64() + 0.05).max(0.1);
    let base_values =
        converge_values(session, &generated).set("MU_FLIP_WAIT", &format!("{retry:.3}"));
    // Rotated nodes whose new key was not made: their peers must keep the old one.
    let failed_rotations: Vec<&NodeName> = keys
        .rotating
        .iter()
        .filter(|n| matches!(recap.outcomes.get(*n), Some(HostOutcome::Failed(_))))
        .collect();
    let t = Instant::now();
    let mut punched = Vec::new();
    let mut switched = Vec::new();
    // Hosts whose converge switched a running interface at the agreed instant: their new
    // sessions got their first handshakes there already (`mu_settle_flip`).
    let mut flipped = BTreeSet::new();
    // How long the hosts of an agreed flip took to be ready (the longest wave).
    let mut ready_after = None;
    // Hosts whose converge script ran to its end, which lets go of the run's hold.
    let mut released = BTreeSet::new();
    // A NAT node sends its first keepalive (a handshake) the moment its interface comes
    // up; a public peer not up yet loses it, and WireGuard tries again only 5 s later. So
    // when public nodes start in this run, NAT nodes that start wait until every other
    // host of the first wave has its interface up (its script's post-check) or has ended.
    let starting = |h: &HostPlan| {
        !matches!(gathered.facts.get(&h.node), Some(Ok(f)) if f.interface_up())
            && h.phase(Phase::Converge).next().is_some()
    };
    let public = |h: &HostPlan| mesh.node(&h.node).is_some_and(|n| n.is_public());
    let public_starts = changing.iter().any(|h| public(h) && starting(h));
    // In a run that punches or moves paths at an instant fixed ahead, those NAT nodes
    // start in the second wave instead (with an instant of its own): waiting in the first,
    // they would reach their instant late.
    let fixed_instant = |h: &&HostPlan| {
        h.steps
            .iter()
            .any(|s| matches!(s.kind, plan::StepKind::Punch | plan::StepKind::PathMove))
    };
    let any_fixed = changing.iter().any(fixed_instant);
    let nat_starting = |h: &HostPlan| {
        h.after.is_empty()
            && public_starts
            && !public(h)
            && mesh.node(&h.node).is_some()
            && starting(h)
    };
    let waits_for_up = |h: &HostPlan| !any_fixed && nat_starting(h);
    let late = |h: &HostPlan| !h.after.is_empty() || (any_fixed && nat_starting(h));
    for wave in [false, true] {
        if interrupt.stopped() {
            break;
        }
        let mut hosts: Vec<&HostPlan> = Vec::new();
        for host in changing
            .iter()
            .copied()
            .filter(|h| late(h) == wave && h.phase(Phase::Converge).next().is_some())
        {
            if matches!(recap.outcomes.get(&host.node), Some(HostOutcome::Failed(_))) {
                continue;
            }
            let spec = session.mesh.node(&host.node);
            let failed_rotation = failed_rotations.iter().find(|n| {
                spec.zip(session.mesh.node(n))
                    .is_some_and(|(me, other)| session.mesh.is_peer(me, other))
            });
            let failed_dependency = host
                .after
                .iter()
                .find(|(node, _)| {
                    !matches!(recap.outcomes.get(node), Some(HostOutcome::Changed(_)))
                })
                .cloned()
                .or_else(|| failed_rotation.map(|n| ((*n).clone(), "new key".to_string())));
            if let Some((node, what)) = failed_dependency {
                let e = HostError::DependencyFailed {
                    node: node.to_string(),
                    what: what.clone(),
                };
                progress.finish(host.node.as_str(), format!("failed: {e}"));
                recap
                    .outcomes
                    .insert(host.node.clone(), HostOutcome::Failed(e));
                continue;
            }
            hosts.push(host);
        }
        // Hosts that switch at the agreed instant all run at once: one left waiting for
        // a slot would switch after the others (--parallel bounds everything else).
        let flips = hosts
            .iter()
            .filter(|h| h.steps.iter().any(|s| s.kind.at_agreed_instant()))
            .count();
        // So do the NAT nodes that wait for the others' interfaces (they hold their slot
        // while they wait).
        let waiting = hosts.iter().filter(|h| waits_for_up(h)).count();
        let parallel = if flips > 0 || waiting > 0 {
            session.parallel.max(hosts.len())
        } else {
            session.parallel
        };
        let up = instant::Gate::new(hosts.len() - waiting, Duration::ZERO);
        // A wave of flips alone agrees its instant once every flipping host is ready
        // (see `instant`). Punches and path moves keep an instant fixed ahead: their
        // background work on the hosts reads it before the switch.
        let fixed = hosts.iter().any(fixed_instant);
        let flipping = |h: &HostPlan| h.steps.iter().any(|s| s.kind.at_agreed_instant());
        let gate = instant::Gate::new(if fixed { 0 } else { flips }, instant::margin(slowest));
        let wave_clocks = clocks::Clocks::default();
        let flip_at = if fixed {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default()
                + 3.0
                + 0.1 * flips as f64;
            format!("{at:.3}")
        } else {
            "go".to_string()
        };
        let values = base_values.clone().set("MU_FLIP_AT", &flip_at);
        let converge = fanout::run(hosts, parallel, |host| {
            let session_for_host = connection(&host.node);
            let progress = &progress;
            let values = &values;
            let gate = &gate;
            let up = &up;
            let wave_clocks = &wave_clocks;
            async move {
                let waits = waits_for_up(host);
                // Taken first: a host that fails before its script runs still arrives
                // (when these drop), so no gate waits for it.
                let is_up = (!waits).then(|| up.arrival());
                let agreed = !fixed && flipping(host);
                let ready = agreed.then(|| gate.arrival());
                if waits {
                    progress.set(host.node.as_str(), "waiting for the public nodes");
                    up.opened().await;
                }
                if interrupt.stopped() {
                    return Err(HostError::Interrupted);
                }
                let ssh = session_for_host?;
                progress.set(host.node.as_str(), "converging");
                let full = steps_of(host)?;
                let text = phase::script(values, Phase::Converge, full.phase(Phase::Converge));
                drop(full);
                if !agreed && (waits || waiting == 0) {
                    return phase::run(&ssh, Phase::Converge, &text, CONVERGE_TIMEOUT).await;
                }
                let line = |l: &str| {
                    if let (Some(a), Some(stamp)) = (ready.as_ref(), phase::ready_stamp(l)) {
                        // The host's clock, read off its ready line (clocks.rs).
                        let received = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs_f64())
                            .unwrap_or_default();
                        let rtt = ssh.round_trip().unwrap_or_default();
                        if let Some(r) = clocks::reading(stamp, received, rtt) {
                            wave_clocks.record(&host.node, r);
                        }
                        a.ready();
                    }
                    if let Some(a) = is_up.as_ref().filter(|_| phase::is_up_line(l)) {
                        a.ready();
                    }
                };
                let instant: Option<crate::transport::BoxFuture<'_, String>> = if agreed {
                    Some(Box::pin(async move {
                        let at = gate.instant().await;
                        clocks::on_host_clock(&at, wave_clocks.shift(&host.node))
                    }))
                } else {
                    None
                };
                phase::run_watched(&ssh, &text, &line, instant, CONVERGE_TIMEOUT).await
            }
        });
        let wave_results = session.block_on(async {
            // Until the instant is set: a run interrupted calls the wave off (nothing
            // switches anywhere), a host not ready by the deadline holds no one.
            let deadline = async {
                let end = tokio::time::Instant::now() + instant::deadline(flips);
                while tokio::time::Instant::now() < end {
                    if interrupt.stopped() {
                        gate.call_off();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                gate.open();
                std::future::pending::<()>().await;
            };
            tokio::select! {
                results = converge => results,
                () = deadline => unreachable!("the deadline never ends"),
            }
        });
        if !fixed && flips > 0 {
            ready_after = gate.waited().max(ready_after);
            wave_clocks.print();
        }
        let results = wave_results;
        for (host, result) in results {
            let outcome = match result {
                Ok(markers) => {
                    if let Some(m) = markers.iter().find(|m| m.kind == "switched") {
                        switched.push((host.node.clone(), m.value.clone()));
                        if !host.steps.iter().any(|s| s.kind == plan::StepKind::Service) {
                            flipped.insert(host.node.clone());
                        }
                    }
                    for m in markers.iter().filter(|m| m.kind == "punched") {
                        punched.push(punch::confirmed(&host.node, &m.value));
                    }
                    for m in markers.iter().filter(|m| m.kind == "skipped") {
                        progress.println(format!(
                            "{}: warning: {} left out of the config: its key was not generated",
                            host.node, m.value
                        ));
                    }
                    progress.finish(host.node.as_str(), "changed");
                    released.insert(host.node.clone());
                    HostOutcome::Changed(host.steps.len())
                }
                Err(HostError::Interrupted) => {
                    progress.finish(host.node.as_str(), "not run");
                    HostOutcome::NotRun
                }
                Err(e) => {
                    progress.finish(host.node.as_str(), format!("failed: {e}"));
                    HostOutcome::Failed(e)
                }
            };
            recap.outcomes.insert(host.node.clone(), outcome);
        }
    }
    report.phase("converge", t);
    // Every other host this run holds (nothing to converge, failed, not run) is let go
    // of now: a run started right after this one must find it free.
    session.release_holds(gathered, &released);
    progress.clear();
    punch::print_confirmed(punched);
    instant::print_switched(&switched, ready_after);
    if !interrupt.stopped() {
        let t = Instant::now();
        settle::first_handshakes(session, mesh, gathered, recap, &flipped);
        report.phase("first handshakes", t);
    }
    generated
}

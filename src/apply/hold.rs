//! One run per mesh (DESIGN rule 11): apply holds every host it may change (those inside
//! `--limit`) before it changes any, or changes none. Its gather takes the holds (see
//! `Session::connect_and_gather`); this decides from what the hosts said whether the run
//! goes on, gives back what it took when it cannot, and says who holds what.
//!
//! No run ever waits while it holds a host, so two runs cannot wait for each other; two
//! runs over the same hosts meet on the first of them, so one of them gets them all.
use std::collections::BTreeMap;

use crate::facts::Hold;
use crate::host_error::HostError;
use crate::inventory::NodeName;
use crate::plan::{FactsMap, HostPlan, HostState, Plan};
use crate::session::Session;

/// Whether this run holds every reachable host it may change: `None` when it does, else
/// the hosts another run holds, each with its holder (empty when the other run let go
/// between this run's holds: a new try gets them).
pub fn not_held(session: &Session, facts: &FactsMap) -> Option<BTreeMap<NodeName, HostError>> {
    let path = format!(
        "/run/meshup-{}.lock",
        session.mesh.settings.interface.as_str()
    );
    let mut complete = true;
    let mut held = BTreeMap::new();
    for node in session.nodes() {
        let Some(Ok(f)) = facts.get(&node.name) else {
            continue;
        };
        if !session.in_limit(&node.name) {
            continue;
        }
        let holder = f.files.lock_holder.as_ref();
        match (f.files.hold, holder) {
            (Some(Hold::Mine | Hold::Unsupported), None) => continue,
            (Some(Hold::Other), _) | (_, Some(_)) => {
                held.insert(
                    node.name.clone(),
                    HostError::LockHeld {
                        path: holder
                            .and_then(|h| h.path.clone())
                            .unwrap_or_else(|| path.clone()),
                        holder: holder.map(ToString::to_string),
                    },
                );
            }
            // Not tried: the first host was another run's when this one looked.
            (None, None) => {}
        }
        complete = false;
    }
    (!complete).then_some(held)
}

/// What a run that could not hold every host it changes shows: the held hosts with their
/// holders, every other host it would have changed as not changed, and why.
pub fn held_plan(
    session: &Session,
    facts: &FactsMap,
    held: &BTreeMap<NodeName, HostError>,
) -> Plan {
    let names: Vec<&str> = held.keys().map(NodeName::as_str).collect();
    let why = format!(
        "not changed: another meshup run holds {} (a run changes all of its hosts or none; wait for it with --wait-lock)",
        names.join(", ")
    );
    let hosts = session
        .nodes()
        .into_iter()
        .map(|n| {
            let state = if let Some(e) = held.get(&n.name) {
                HostState::Error(e.clone())
            } else if !session.in_limit(&n.name) {
                HostState::Skipped
            } else {
                match facts.get(&n.name) {
                    Some(Err(e)) => HostState::Unreachable(e.clone()),
                    None => HostState::Unreachable(HostError::NotConnected),
                    Some(Ok(_)) => HostState::Error(HostError::blocked(why.clone())),
                }
            };
            let mut host = HostPlan::new(n.name.clone(), state);
            if let Some(Ok(f)) = facts.get(&n.name) {
                host.host = Some(f.to_string());
            }
            host
        })
        .collect();
    Plan {
        hosts,
        new_psk_pairs: Vec::new(),
        nat_paths: Vec::new(),
        nat_mappings: Vec::new(),
        network_paths: Vec::new(),
    }
}

/// How long a waiting run sleeps before it tries again: 1 to 3 s, drawn anew each time,
/// so two runs that keep meeting on different hosts fall out of step.
pub fn retry_pause() -> std::time::Duration {
    std::time::Duration::from_millis(1_000 + rand::random::<u64>() % 2_000)
}

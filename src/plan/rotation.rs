//! Which nodes a rotation may take in this run: a rotation waits for a run without a move
//! near the node (a key flips at one instant on both sides of each pair).
use super::*;

fn rotation_waits(name: &NodeName, (mover, what): (&NodeName, &String)) -> String {
    format!(
        "cannot rotate {name}'s key in this run: {mover} moves its {what}, which its peers follow only after {mover} has applied it, while a flip needs them all at one instant; nothing was rotated: run apply, then rotate"
    )
}

/// `rotate --psk`: the pairs' two hosts flip at one instant, which a move in the same
/// run (two waves) would split; such nodes wait for a run without one.
pub(super) fn psk_rotation_blocked(
    input: &PlanInput<'_>,
    moving: &BTreeMap<NodeName, String>,
) -> BTreeMap<NodeName, String> {
    input
        .rotate
        .iter()
        .filter_map(|n| {
            order::mover_near(input.mesh, n, moving).map(|m| (n.clone(), rotation_waits(n, m)))
        })
        .collect()
}

/// Which of the nodes asked for can rotate now: a running node with a valid key whose
/// every peer is reachable and inside `--limit` (a peer left out would keep the old
/// key: the rotation is not started then, and a later run completes it). The others
/// are returned with the reason.
pub(super) fn rotation_candidates(
    input: &PlanInput<'_>,
    keys: &mut KeyBook,
    in_limit: &dyn Fn(&NodeName) -> bool,
    moving: &BTreeMap<NodeName, String>,
) -> BTreeMap<NodeName, String> {
    let mut blocked = BTreeMap::new();
    for name in input.rotate {
        let Some(spec) = input.mesh.node(name) else {
            continue;
        };
        let facts = match input.facts.get(name) {
            Some(Ok(f)) => f,
            _ => continue,
        };
        let why = if !in_limit(name) {
            Some("not in --limit".to_string())
        } else if !facts.interface_up() || keys.get(name).is_none() {
            Some(format!(
                "cannot rotate {name}'s key: it is not running with a key yet (run apply first)"
            ))
        } else {
            input
                .mesh
                .peers(spec)
                .iter()
                .find(|p| !matches!(input.facts.get(&p.name), Some(Ok(_))) || !in_limit(&p.name))
                .map(|p| {
                    format!(
                        "cannot rotate {name}'s key now: its peer {} is unreachable or outside --limit and would keep the old key; nothing was rotated, a later run completes it",
                        p.name
                    )
                })
                .or_else(|| order::mover_near(input.mesh, name, moving).map(|m| rotation_waits(name, m)))
        };
        match why {
            Some(w) => {
                blocked.insert(name.clone(), w);
            }
            None => {
                keys.rotating.insert(name.clone());
            }
        }
    }
    blocked
}

//! The NAT paths of a run: learned from the gathered facts once, before the plan, so the
//! plan (and the configs it writes) carry the direct pairs and the punch steps.
use std::collections::BTreeMap;

use crate::inventory::NodeName;
use crate::nat_path::{HostView, PathBook};
use crate::plan::{FactsMap, KeyBook};
use crate::topology::Mesh;

/// The path book from the gathered facts, and the mesh with its direct NAT pairs. Nodes
/// outside `limit` keep their paths.
pub fn learn_paths(
    mesh: &Mesh,
    facts: &FactsMap,
    limit: Option<&std::collections::BTreeSet<NodeName>>,
) -> (Mesh, PathBook) {
    let keys = KeyBook::from_facts(mesh, facts, &|_| true);
    let views: BTreeMap<NodeName, HostView<'_>> = facts
        .iter()
        .filter_map(|(name, f)| {
            let f = f.as_ref().ok()?;
            Some((
                name.clone(),
                HostView {
                    dump: &f.wg_dump,
                    underlay: &f.underlay.addresses,
                    punch_failed: &f.files.punch_failed,
                    fallbacks: &f.watchdog.fallbacks,
                },
            ))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let frozen = |n: &NodeName| limit.is_some_and(|l| !l.contains(n));
    let mut book = PathBook::learn(mesh, &|n| keys.get(n), &views, now, &frozen);
    // A punch switches both hosts at one instant; a move (port, addresses) runs in two
    // waves, the mover first: a pair near a mover is punched by the next run.
    let moving = crate::plan::order::movers(mesh, facts, &|n| !frozen(n));
    book.defer_punches(&|n| {
        crate::plan::order::mover_near(mesh, n, &moving).map(|(m, what)| {
            format!(
                "the punch waits for a run without a move: {m} moves its {what}, which its peers follow in a second wave, while a punch needs both hosts at one instant"
            )
        })
    });
    let mesh = mesh.clone().with_direct_nat(book.direct());
    (mesh, book)
}

#[cfg(test)]
mod tests;

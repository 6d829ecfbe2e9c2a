//! The decision for one NAT pair: direct (punched or over a shared LAN) or through the
//! relay, from what both hosts observed and what their earlier runs recorded.
use super::*;

pub(super) fn decide(
    a: &NodeSpec,
    b: &NodeSpec,
    mappings: &[NatMapping],
    key: &dyn Fn(&NodeName) -> Option<PublicKey>,
    views: &BTreeMap<NodeName, HostView<'_>>,
    now: u64,
    frozen: &dyn Fn(&NodeName) -> bool,
) -> NatPair {
    let mut pair = NatPair {
        a: a.name.clone(),
        b: b.name.clone(),
        kind: PathKind::Relayed,
        a_to_b: None,
        b_to_a: None,
        relay: a.relay.clone(),
        why: String::new(),
        punch: None,
    };
    let mapping = |n: &NodeName| mappings.iter().find(|m| &m.node == n);
    let (ma, mb) = (mapping(&a.name), mapping(&b.name));
    let (va, vb) = (views.get(&a.name), views.get(&b.name));
    let (ka, kb) = (key(&a.name), key(&b.name));
    let ea = live_entry(va, kb, now);
    let eb = live_entry(vb, ka, now);
    // A side that cannot be read or changed now keeps what it has: a direct path stays
    // direct on both sides (turning one side back to the relay would drop the other's
    // packets), a relayed one stays relayed.
    let (a_out, b_out) = (
        va.is_none() || frozen(&a.name),
        vb.is_none() || frozen(&b.name),
    );
    if a_out || b_out {
        let down = if a_out { a } else { b };
        let state = if views.contains_key(&down.name) {
            "outside --limit"
        } else {
            "unreachable"
        };
        // The entries of a readable side say what runs; for a side that cannot be read,
        // its endpoint is the other's mapping as the public nodes see it.
        let seen = |m: Option<&NatMapping>| m.and_then(NatMapping::endpoint).map(|e| e.to_string());
        let (ab, ba) = match (&ea, &eb) {
            (Some((ab, _)), Some((ba, _))) => (Some(ab.clone()), Some(ba.clone())),
            (Some((ab, _)), None) => (Some(ab.clone()), seen(ma).or_else(|| Some(ab.clone()))),
            (None, Some((ba, _))) => (seen(mb).or_else(|| Some(ba.clone())), Some(ba.clone())),
            (None, None) => (None, None),
        };
        if ab.is_some() {
            let lan = [(va, &ab), (vb, &ba)].iter().any(|(v, e)| {
                v.zip(e.as_deref())
                    .is_some_and(|(v, e)| in_lan(v.underlay, e))
            });
            pair.kind = if lan {
                PathKind::Lan
            } else {
                PathKind::Punched
            };
            pair.a_to_b = ab;
            pair.b_to_a = ba;
            pair.why = format!("kept as it is: {} is {state}", down.name);
        } else {
            pair.why = format!("{} is {state}: the relay stays", down.name);
        }
        return pair;
    }
    let (Some(va), Some(vb)) = (va, vb) else {
        return pair;
    };
    if ka.is_none() || kb.is_none() {
        pair.why = "a key is not known yet (the node is provisioned in this run): the relay for now; the next apply punches once both have spoken to two public nodes".into();
        return pair;
    }
    // The watchdog moved the pair back to the relay between runs (it removed its direct
    // entry): the pair is punched again from the mappings as now seen once the NATs have
    // forgotten the dead path, 30 s after the last packet sent on it: after the fallback
    // of each side (a side whose entry is still there keeps sending; this run's config
    // takes the pair to the relay on both sides, and a later run punches).
    let fell_back = [(va, &b.name), (vb, &a.name)]
        .iter()
        .filter_map(|(v, peer)| v.fallbacks.get(peer.as_str()))
        .max_by_key(|f| f.at);
    let fell_back_note = fell_back.map(|f| {
        format!(
            "the watchdog fell back to {} at {} (no handshake for {} s on {})",
            f.relay,
            clock(f.at),
            f.silent,
            f.was
        )
    });
    if let (Some(f), Some(note)) = (fell_back, &fell_back_note) {
        let ready = f.at + NAT_FORGETS_AFTER_SECS;
        if let Some(side) = [(&ea, a), (&eb, b)]
            .iter()
            .find_map(|(e, n)| e.as_ref().map(|_| &n.name))
        {
            pair.why = format!(
                "{note}; {side} still has its direct entry: the relay carries the pair, a later run punches again"
            );
            return pair;
        }
        if now < ready {
            pair.why = format!(
                "{note}; a run from {} on punches again (the NATs forget the dead path within {NAT_FORGETS_AFTER_SECS} s)",
                clock(ready)
            );
            return pair;
        }
    }
    let mut pair = decide_fresh(
        pair,
        FreshInput {
            a,
            b,
            ma,
            mb,
            va,
            vb,
            ea,
            eb,
        },
    );
    if let Some(note) = fell_back_note {
        pair.why = format!("{note}; {}", pair.why);
        if pair.punch.is_some() {
            pair.punch = Some("again, after the watchdog's fallback".into());
        }
    }
    pair
}

/// What [`decide_fresh`] looks at: the pair's nodes, their mappings and views, and their
/// live entries for each other.
struct FreshInput<'a, 'v> {
    a: &'a NodeSpec,
    b: &'a NodeSpec,
    ma: Option<&'a NatMapping>,
    mb: Option<&'a NatMapping>,
    va: &'a HostView<'v>,
    vb: &'a HostView<'v>,
    ea: Option<(String, Option<u64>)>,
    eb: Option<(String, Option<u64>)>,
}

/// The pair's path when both sides can be read and changed now.
fn decide_fresh(mut pair: NatPair, input: FreshInput<'_, '_>) -> NatPair {
    let FreshInput {
        a,
        b,
        ma,
        mb,
        va,
        vb,
        ea,
        eb,
    } = input;
    let fresh = |e: &Option<(String, Option<u64>)>| {
        e.as_ref()
            .and_then(|(_, age)| *age)
            .is_some_and(|age| age <= SILENT_AFTER_SECS)
    };
    // Same public address: the two sit behind one NAT router; they peer over their LAN,
    // never through the router's hairpin.
    let same_nat = ma
        .and_then(NatMapping::public_ip)
        .zip(mb.and_then(NatMapping::public_ip))
        .filter(|(x, y)| x == y);
    // Established direct paths whose endpoints match the evidence stay as they are.
    if let (Some((ab, _)), Some((ba, _))) = (&ea, &eb)
        && fresh(&ea)
        && fresh(&eb)
    {
        let lan = in_lan(va.underlay, ab) && in_lan(vb.underlay, ba);
        let moved = !lan
            && [(mb, ab), (ma, ba)].iter().any(|(m, used)| {
                m.and_then(NatMapping::endpoint)
                    .is_some_and(|e| e.to_string() != **used)
            });
        if !moved {
            pair.kind = if lan {
                PathKind::Lan
            } else {
                PathKind::Punched
            };
            pair.a_to_b = Some(ab.clone());
            pair.b_to_a = Some(ba.clone());
            let age = [&ea, &eb]
                .iter()
                .filter_map(|e| e.as_ref().and_then(|(_, a)| *a))
                .max()
                .unwrap_or(0);
            pair.why = format!("established ({ab} / {ba}, handshake {age} s ago)");
            return pair;
        }
    }
    // A direct path that went silent or whose NAT moved (reboot, renumbering) goes back
    // to the relay now. It is punched again by a later run: until the stale path's
    // packets have left the NATs' tables (30 s for UDP on Linux), a packet of one side
    // arriving before the other side sends would make that NAT map to another port.
    let stale = [(&ea, &b.name), (&eb, &a.name)]
        .iter()
        .find_map(|(e, peer)| e.as_ref().map(|(used, age)| (used.clone(), *age, *peer)));
    if let Some((used, age, peer)) = stale {
        let silent = match age {
            Some(age) => format!("silent for {age} s"),
            None => "without a handshake".to_string(),
        };
        let moved = [(mb, &b.name, &ea), (ma, &a.name, &eb)]
            .iter()
            .filter_map(|(m, n, used)| {
                let now_at = m.and_then(NatMapping::endpoint)?;
                let was = used.as_ref().map(|u| u.0.as_str());
                (was != Some(now_at.to_string().as_str()))
                    .then(|| format!("{n} is now seen at {now_at}"))
            })
            .collect::<Vec<_>>();
        pair.why = format!(
            "the direct path is dead ({silent}; {peer} was reached at {used}{}): back to the relay; a later run punches again",
            if moved.is_empty() {
                String::new()
            } else {
                format!("; {}", moved.join(", "))
            }
        );
        return pair;
    }
    if let Some((ip, _)) = same_nat {
        let lan_of = |v: &HostView<'_>, other: &HostView<'_>, port: u16| {
            v.underlay.iter().find_map(|mine| {
                other
                    .underlay
                    .iter()
                    .find(|theirs| mine.contains(&theirs.addr()) && mine.addr() != theirs.addr())
                    .map(|theirs| SocketAddr::new(theirs.addr(), port).to_string())
            })
        };
        match (lan_of(va, vb, b.listen_port), lan_of(vb, va, a.listen_port)) {
            (Some(ab), Some(ba))
                if va.punch_failed.get(b.name.as_str()) == Some(&ab)
                    || vb.punch_failed.get(a.name.as_str()) == Some(&ba) =>
            {
                pair.why = format!(
                    "both behind {ip}, but the LAN path ({ab} / {ba}) got no handshake before: the relay stays until an address changes"
                );
            }
            (Some(ab), Some(ba)) => {
                pair.kind = PathKind::Lan;
                pair.why = format!(
                    "both behind {ip}: over their LAN ({ab} / {ba}), not through the router"
                );
                pair.a_to_b = Some(ab);
                pair.b_to_a = Some(ba);
                pair.punch = Some("set up the LAN path".into());
            }
            _ => {
                pair.why = format!(
                    "both behind {ip} but no shared LAN subnet was gathered: the relay stays (no hairpin)"
                );
            }
        }
        return pair;
    }
    match (
        ma.and_then(NatMapping::endpoint),
        mb.and_then(NatMapping::endpoint),
    ) {
        (Some(at), Some(bt))
            if va.punch_failed.get(b.name.as_str()) == Some(&bt.to_string())
                || vb.punch_failed.get(a.name.as_str()) == Some(&at.to_string()) =>
        {
            pair.why = format!(
                "punching failed before at these same addresses ({bt} / {at}: no handshake within 20 s): the relay stays until a mapping changes"
            );
        }
        (Some(at), Some(bt)) => {
            pair.kind = PathKind::Punched;
            pair.a_to_b = Some(bt.to_string());
            pair.b_to_a = Some(at.to_string());
            pair.why = format!(
                "{}; {}",
                ma.map(NatMapping::describe).unwrap_or_default(),
                mb.map(NatMapping::describe).unwrap_or_default()
            );
            pair.punch = Some("not direct yet".into());
        }
        _ => {
            let blame: Vec<String> = [ma, mb]
                .iter()
                .flatten()
                .filter(|m| m.mapping != Mapping::EndpointIndependent)
                .map(|m| m.describe())
                .collect();
            // Not seen yet by two public nodes (the pair was just brought up): a
            // NAT node with a keepalive speaks to each public node within moments, so
            // the next run has the evidence.
            let unknown = [ma, mb]
                .iter()
                .flatten()
                .all(|m| m.mapping != Mapping::Symmetric);
            pair.why = if unknown {
                format!(
                    "{}: the relay for now; the next apply punches once both have spoken to two public nodes",
                    blame.join("; ")
                )
            } else {
                format!("{}: no punching, the relay stays", blame.join("; "))
            };
        }
    }
    pair
}

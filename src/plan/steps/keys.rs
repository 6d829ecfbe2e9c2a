//! The host's key pair (generated on the host) and its preshared keys.
use std::collections::BTreeSet;

use super::HostInput;
use crate::facts::KeyFileState;
use crate::host_error::HostError;
use crate::inventory::NodeName;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;
use crate::topology::PeerSpec;

/// Moves the interface's key files from the config dir into `<config dir>/<interface>/`
/// when they are still where older meshup kept them (all meshes shared one key pair
/// there). The keys themselves do not change: an upgrade never re-keys a running mesh.
pub fn migrate(h: &HostInput<'_>) -> Vec<Decision> {
    let dir = &h.settings().config_dir;
    let iface = h.iface();
    if h.facts.files.inline_key {
        return vec![Decision::Change(Step::new(
            Action::Update,
            StepKind::Migrate,
            format!(
                "move the private key {dir}/{iface}.conf holds into {dir}/{iface}/private.key (key unchanged)"
            ),
            "the config was written by hand with its key inline; meshup keeps the key in a file of its own",
            "mu_adopt_key",
        ))];
    }
    if !h.facts.files.legacy_layout {
        return Vec::new();
    }
    // Only meshup's own preshared key files move (psk-<peer>.key of a current peer, as
    // the gather lists them): a hand-made `psk-ab.key` stays where its owner put it.
    let mut args = vec!["--"];
    args.extend(
        h.facts
            .files
            .psk_files
            .iter()
            .filter_map(|f| psk_file_peer(f)),
    );
    vec![Decision::Change(Step::new(
        Action::Update,
        StepKind::Migrate,
        format!("move {iface}'s key files from {dir}/ into {dir}/{iface}/ (keys unchanged)"),
        "key files are per interface now, so several meshes can share a host",
        scripts::call("mu_migrate_state", &args),
    ))]
}

/// Generates the key pair on the host when there is none; rewrites `public.key` when
/// it does not match the private key. An invalid private key blocks the host.
pub fn keygen(h: &HostInput<'_>) -> Result<Vec<Decision>, HostError> {
    let dir = &h.settings().config_dir;
    let mut out = Vec::new();
    if let (Some(max), Some(age)) = (h.settings().key_max_age, h.facts.keys.private_key_age_secs)
        && age > max.secs()
        && !h.keys.rotating.contains(&h.spec.name)
    {
        out.push(Decision::warning(format!(
            "the key pair is {} old, over key_max_age {max}: `meshup rotate --older-than {max}` renews it",
            if age >= 86_400 {
                format!("{} days", age / 86_400)
            } else {
                format!("{age} s")
            }
        )));
    }
    out.extend(keygen_decisions(h, dir)?);
    Ok(out)
}

fn keygen_decisions(
    h: &HostInput<'_>,
    dir: &crate::inventory::RemotePath,
) -> Result<Vec<Decision>, HostError> {
    match h.facts.keys.private_key {
        KeyFileState::Valid if h.facts.keys.public_key_matches() => Ok(vec![Decision::unchanged(
            "key pair present (private key stays on the host)",
        )]),
        KeyFileState::Valid => Ok(vec![Decision::Change(Step::new(
            Action::Update,
            StepKind::KeyGen,
            "rewrite public.key from private.key (on the host)",
            "public.key does not match private.key",
            "mu_keygen",
        ))]),
        KeyFileState::Absent => Ok(vec![Decision::Change(Step::new(
            Action::Create,
            StepKind::KeyGen,
            "generate key pair on the host (private key never leaves it)",
            format!("{dir}/private.key does not exist"),
            "mu_keygen",
        ))]),
        KeyFileState::Invalid => Err(HostError::blocked(format!(
            "{dir}/private.key exists but is not a WireGuard key; meshup will not overwrite it (fix or remove it)"
        ))),
    }
}

/// Stores this run's new preshared keys (their values arrive as `MU_PSK_<n>`, never in
/// the step) and removes those of peers that no longer share one with this host.
pub fn psks(h: &HostInput<'_>) -> Vec<Decision> {
    let mut out = Vec::new();
    for (i, peer) in h.new_psk_peers.iter().enumerate() {
        let had = h.facts.keys.psks.get(peer.as_str()) == Some(&KeyFileState::Valid);
        let variable = format!("\"$MU_PSK_{}\"", i + 1);
        out.push(Decision::Change(Step::new(
            if had { Action::Update } else { Action::Create },
            StepKind::Psk,
            format!("preshared key with {peer} (random, written on both hosts, never shown)"),
            if had {
                format!("{peer} holds a different preshared key for this pair")
            } else {
                format!("no psk-{peer}.key yet")
            },
            scripts::call("mu_store_psk", &[peer.as_str(), &variable]),
        )));
    }
    for (peer, key) in &h.adopted_psk_peers {
        out.push(Decision::Change(Step::new(
            Action::Create,
            StepKind::Psk,
            format!("adopt the preshared key with {peer} into psk-{peer}.key (unchanged, never shown)"),
            format!("the interface already runs one with {peer}, the same on both hosts (compared by digest)"),
            scripts::call("mu_adopt_psk", &[peer.as_str(), &key.to_string()]),
        )));
    }
    let peers: BTreeSet<&str> = h
        .peers
        .iter()
        .filter(|p| p.psk)
        .map(|p| p.name.as_str())
        .collect();
    for file in &h.facts.files.psk_files {
        let Some(peer) = psk_file_peer(file) else {
            continue;
        };
        if !peers.contains(peer) {
            out.push(Decision::Change(Step::new(
                Action::Delete,
                StepKind::Psk,
                format!("remove {file}"),
                format!("{peer} is no longer a peer with a preshared key"),
                scripts::call("mu_remove_psk", &[peer]),
            )));
        }
    }
    out
}

/// The peer name in a `psk-<peer>.key` file name.
pub fn psk_file_peer(file: &str) -> Option<&str> {
    file.strip_prefix("psk-")
        .and_then(|f| f.strip_suffix(".key"))
        .filter(|p| !p.is_empty())
}

/// Key rotation: the rotated node stages a new key pair in the prepare phase; at the
/// agreed instant it takes the new key while every peer takes its new public key, so no
/// side talks with a key the other has dropped for longer than one handshake. The Flip
/// step only arms the switch: the config steps after it prepare everything, and the live
/// reload switches at the instant with one `wg set` (`mu_arm_flip` in lib.sh).
pub fn rotation(h: &HostInput<'_>) -> Vec<Decision> {
    let me = &h.spec.name;
    let mut out = Vec::new();
    if h.keys.rotating.contains(me) {
        out.push(Decision::Change(Step::new(
            Action::Update,
            StepKind::Rotate,
            "generate the next key pair on the host (the current key stays until the flip)",
            "key rotation requested",
            "mu_stage_key",
        )));
        let peers: Vec<&PeerSpec> = h
            .peers
            .iter()
            .filter(|p| h.mesh.node(&p.name).is_some())
            .collect();
        out.push(Decision::Change(Step::new(
            Action::Update,
            StepKind::Flip,
            "at the agreed instant, switch to the new key (the old one kept as private.key.prev)",
            flip_reason(
                "every peer switches to the new public key at the same instant",
                &initiated(h, &peers),
            ),
            arm_flip("key", &initiated(h, &peers)),
        )));
    } else {
        let rotating: Vec<&PeerSpec> = h
            .peers
            .iter()
            .filter(|p| h.keys.rotating.contains(&p.name))
            .collect();
        if !rotating.is_empty() {
            let names: Vec<&str> = rotating.iter().map(|p| p.name.as_str()).collect();
            out.push(Decision::Change(Step::new(
                Action::Update,
                StepKind::Flip,
                format!(
                    "at the agreed instant, switch to the new key of {}",
                    names.join(", ")
                ),
                flip_reason(
                    &format!("{} rotate their key in this run", names.join(", ")),
                    &initiated(h, &rotating),
                ),
                arm_flip("peers", &initiated(h, &rotating)),
            )));
        }
    }
    out
}

/// Of the pairs whose keys change at the flip, the peers this host starts the new
/// session with; the other side of such a pair waits for it (its new entry has no
/// endpoint until the session is up), so two first handshakes never cross. When only one
/// side rotates, that side: its entry for the other stays, with the address configured
/// or learned from the other's keepalives, and the other adds its new entry ahead of the
/// instant, so the first handshake succeeds whenever it comes. When both rotate, the side
/// that has an endpoint for the other while the other has none (a NAT node towards a
/// public one), else the lower node name.
fn initiated<'a>(h: &HostInput<'_>, changed: &[&'a PeerSpec]) -> Vec<&'a str> {
    let me = &h.spec.name;
    let i_rotate = h.keys.rotating.contains(me);
    changed
        .iter()
        .filter(|p| {
            let peer_has_my_endpoint = h.mesh.node(&p.name).is_some_and(|spec| {
                h.mesh
                    .config_peers(spec)
                    .iter()
                    .any(|q| &q.name == me && q.endpoint.is_some())
            });
            let peer_rotates = h.keys.rotating.contains(&p.name);
            if i_rotate != peer_rotates {
                i_rotate && (p.endpoint.is_some() || peer_has_my_endpoint)
            } else {
                p.endpoint.is_some() && (!peer_has_my_endpoint || me.as_str() < p.name.as_str())
            }
        })
        .map(|p| p.name.as_str())
        .collect()
}

fn flip_reason(why: &str, initiated: &[&str]) -> String {
    if initiated.is_empty() {
        format!("{why}; the config is prepared before it and taken by one `wg set`")
    } else {
        format!(
            "{why}; the config is prepared before it and taken by one `wg set`; this host starts the new sessions with {} (the other side waits, so two handshakes never cross)",
            initiated.join(", ")
        )
    }
}

/// `mu_arm_flip "$MU_FLIP_AT" key|peers [PEER...]`.
fn arm_flip(what: &str, initiated: &[&str]) -> String {
    let mut args = vec!["\"$MU_FLIP_AT\"", what];
    args.extend_from_slice(initiated);
    scripts::call("mu_arm_flip", &args)
}

/// `rotate --psk`: both hosts of a pair whose preshared key is renewed switch at the
/// agreed instant (the new key files are stored in the prepare phase, the running
/// interfaces take them only then).
pub fn psk_flip(h: &HostInput<'_>, rotated_pairs: &[(NodeName, NodeName)]) -> Vec<Decision> {
    let me = &h.spec.name;
    let peers: Vec<&str> = rotated_pairs
        .iter()
        .filter_map(|(a, b)| {
            if a == me {
                Some(b.as_str())
            } else if b == me {
                Some(a.as_str())
            } else {
                None
            }
        })
        .collect();
    if peers.is_empty() {
        return Vec::new();
    }
    vec![Decision::Change(Step::new(
        Action::Update,
        StepKind::Flip,
        format!(
            "at the agreed instant, switch the preshared key with {}",
            peers.join(", ")
        ),
        "preshared key rotation requested; both sides switch together (sessions carry on: the new key takes effect at the next handshake)",
        arm_flip("peers", &[]),
    ))]
}

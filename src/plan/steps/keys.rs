//! The host's key pair (generated on the host) and its preshared keys.
use std::collections::BTreeSet;

use super::HostInput;
use crate::facts::KeyFileState;
use crate::host_error::HostError;
use crate::inventory::NodeName;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;

/// Moves the interface's key files from the config dir into `<config dir>/<interface>/`
/// when they are still where older meshup kept them (all meshes shared one key pair
/// there). The keys themselves do not change: an upgrade never re-keys a running mesh.
pub fn migrate(h: &HostInput<'_>) -> Vec<Decision> {
    if !h.facts.files.legacy_layout {
        return Vec::new();
    }
    let dir = &h.settings().config_dir;
    let iface = h.iface();
    vec![Decision::Change(Step::new(
        Action::Update,
        StepKind::Migrate,
        format!("move {iface}'s key files from {dir}/ into {dir}/{iface}/ (keys unchanged)"),
        "key files are per interface now, so several meshes can share a host",
        "mu_migrate_state",
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
/// side talks with a key the other has dropped for longer than one handshake.
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
        out.push(Decision::Change(Step::new(
            Action::Update,
            StepKind::Flip,
            "at the agreed instant, switch to the new key (the old one kept as private.key.prev)",
            "every peer switches to the new public key at the same instant",
            "mu_wait_until \"$MU_FLIP_AT\"\nmu_promote_key",
        )));
    } else {
        let rotating: Vec<&str> = h
            .peers
            .iter()
            .filter(|p| h.keys.rotating.contains(&p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !rotating.is_empty() {
            out.push(Decision::Change(Step::new(
                Action::Update,
                StepKind::Flip,
                format!(
                    "at the agreed instant, switch to the new key of {}",
                    rotating.join(", ")
                ),
                format!("{} rotate their key in this run", rotating.join(", ")),
                "mu_wait_until \"$MU_FLIP_AT\"",
            )));
        }
    }
    out
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
        "preshared key rotation requested; both sides switch together",
        "mu_wait_until \"$MU_FLIP_AT\"",
    ))]
}

//! Punching the direct path of a NAT pair: both hosts point their entry for the other at
//! the address the evidence gives, at one agreed instant, and wait for a handshake.
use super::HostInput;
use crate::nat_path::PathKind;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;

/// One punch step per NAT pair of this host that apply sets up (new, or moved); the config
/// step that follows gives the direct entry the peer's AllowedIPs, once confirmed.
pub fn punch(h: &HostInput<'_>) -> Vec<Decision> {
    let me = &h.spec.name;
    let mut out = Vec::new();
    for pair in &h.paths.pairs {
        let (peer, endpoint, first) = if &pair.a == me {
            (&pair.b, &pair.a_to_b, true)
        } else if &pair.b == me {
            (&pair.a, &pair.b_to_a, false)
        } else {
            continue;
        };
        let (Some(why), Some(endpoint), Some(key)) = (&pair.punch, endpoint, h.keys.get(peer))
        else {
            continue;
        };
        if pair.kind == PathKind::Relayed {
            continue;
        }
        let role = match (pair.kind, first) {
            (PathKind::Lan, true) => "lan-first",
            (PathKind::Lan, false) => "lan-second",
            (_, true) => "opener",
            (_, false) => "joiner",
        };
        let keepalive = h.settings().persistent_keepalive.unwrap_or(25).to_string();
        let allowed: Vec<String> = h
            .mesh
            .node(peer)
            .map(|p| p.own_ips.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let relay = pair
            .relay
            .as_ref()
            .map_or_else(String::new, |r| format!(" off {r}"));
        out.push(Decision::Change(Step::new(
            Action::Update,
            StepKind::Punch,
            format!(
                "{} path to {peer} at {endpoint}, with {peer} at the agreed instant; its AllowedIPs move{relay} only after a handshake",
                pair.kind.label()
            ),
            format!("{why} ({})", pair.why),
            scripts::call(
                "mu_punch",
                &[
                    peer.as_str(),
                    &key.to_string(),
                    endpoint,
                    &keepalive,
                    role,
                    &allowed.join(","),
                ],
            ),
        )));
    }
    out
}

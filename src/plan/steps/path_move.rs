//! A pair moving onto or off a private network (`networks:`): both hosts switch their
//! entries for each other at one agreed instant. One side alone would be pulled back:
//! WireGuard sends to where a peer's packets last came from, and the other side still
//! sends over the old path while traffic flows.
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::HostInput;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::scripts;
use crate::topology::NodeSpec;

/// One step when some peer's endpoint moves onto a private network both sit on, or off
/// one (from an address on a network to the public endpoint).
pub fn path_move(h: &HostInput<'_>) -> Vec<Decision> {
    let current = config_endpoints(&h.facts.config.text);
    let mut args: Vec<String> = vec!["\"$MU_FLIP_AT\"".to_owned()];
    let mut lines = Vec::new();
    for p in &h.peers {
        let (Some(peer), Some(new), Some(old)) = (
            h.mesh.node(&p.name),
            p.endpoint.as_deref(),
            current.get(p.name.as_str()),
        ) else {
            continue;
        };
        // A DNS name is wg's to resolve (and the watchdog's to follow): not compared live.
        if new == *old || new.parse::<SocketAddr>().is_err() {
            continue;
        }
        let onto = h.mesh.shared_network(h.spec, peer);
        // Off a network, only towards a public peer: a NAT peer's direct paths are the
        // punch's to move.
        if onto.is_none() && !(peer.is_public() && on_a_network(peer, old)) {
            continue;
        }
        let Some(key) = h.keys.get(&p.name) else {
            continue;
        };
        args.push(key.to_string());
        args.push(new.to_owned());
        lines.push(match onto {
            Some(on) => format!("{} onto network {} ({old} -> {new})", p.name, on.network),
            None => format!("{} off its private network ({old} -> {new})", p.name),
        });
    }
    if lines.is_empty() {
        return Vec::new();
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    vec![Decision::Change(Step::new(
        Action::Update,
        StepKind::PathMove,
        format!(
            "at the agreed instant, move the path to {}",
            lines.join(", ")
        ),
        "both hosts of a pair switch together (one side alone is pulled back by the other's packets); each looks again 4 times, 1.5 s apart",
        scripts::call("mu_move_paths", &refs),
    ))]
}

/// Whether `endpoint` (`host:port`, as the current config has it) is on a private
/// network: one of `peer`'s network addresses, or a private address that is not its
/// public endpoint (the peer may have left the network in the inventory).
fn on_a_network(peer: &NodeSpec, endpoint: &str) -> bool {
    let Ok(addr) = endpoint.parse::<SocketAddr>() else {
        return false;
    };
    if peer.networks.iter().any(|n| n.address == addr.ip()) {
        return true;
    }
    let private = match addr.ip() {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unique_local() || v6.is_unicast_link_local(),
    };
    private && peer.endpoint.as_deref() != Some(endpoint)
}

/// Peer name → `Endpoint` of the current config (meshup's `# Peer: NAME` blocks).
fn config_endpoints(text: &str) -> BTreeMap<&str, &str> {
    let mut out = BTreeMap::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("# Peer: ") {
            name = Some(n.trim());
        } else if let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("endpoint")
            && let Some(n) = name
        {
            out.insert(n, value.trim());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::config_endpoints;

    #[test]
    fn the_current_endpoints_are_read_per_peer() {
        let text = "[Interface]\nListenPort = 51820\n\n# Peer: pub-2\n[Peer]\nPublicKey = k\nEndpoint = 10.0.1.2:51820\n\n# Peer: nat-1\n[Peer]\nPublicKey = k2\n\n# Peer: pub-3\n[Peer]\nEndpoint = [2001:db8::3]:51820\n";
        let got: Vec<(&str, &str)> = config_endpoints(text).into_iter().collect();
        assert_eq!(
            got,
            [
                ("pub-2", "10.0.1.2:51820"),
                ("pub-3", "[2001:db8::3]:51820")
            ]
        );
    }
}

//! verify's TCP check: a ping proves ICMP passes, not that a service on the mesh address
//! is reachable (ufw and firewalld let echo requests in while dropping TCP). While the
//! pings are in flight, every host runs `src/scripts/tcp.pl` (core perl; skipped where
//! perl is missing): a short-lived listener on its mesh addresses, and a connect to every
//! peer's mesh address on the same port. Only a completed connect counts: a REJECT
//! answers "connection refused", which proves nothing about the path.
use serde::Serialize;

use super::error::VerifyError;
use super::expectation::{Expectation, ExpectedNode, NodeName};
use crate::scripts::Values;

/// The perl program (see its header for its output).
pub const TCP_PROBE: &str = concat!(
    include_str!("../scripts/linux.pl"),
    include_str!("../scripts/tcp.pl")
);

/// Seconds a host's listener stays up after its probe started (the peers' probes start
/// within a moment of each other; each client gives up after 8 s).
const LINGER_SECS: u8 = 12;

/// One TCP connect from a host to a peer's mesh address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpRecord {
    /// The peer.
    pub peer: String,
    /// The address connected to.
    pub addr: String,
    /// `ok`, `refused`, `timeout` or `error <reason>`.
    pub result: String,
    /// The port connected to when it is not the check's own ([`port`]): a port the
    /// mesh ACL names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl TcpRecord {
    /// The connect completed.
    pub fn ok(&self) -> bool {
        self.result == "ok"
    }
}

/// The TCP port of the check for this mesh: fixed per interface and listen port, in
/// 40000-59999 (away from the usual ephemeral range's busiest part), so every host of a
/// run uses the same one without talking to the others.
pub fn port(expectation: &Expectation) -> u16 {
    let seed = expectation.interface.as_str().bytes().fold(
        u32::from(expectation.nodes.first().map_or(0, |n| n.listen_port)),
        |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)),
    );
    40000 + u16::try_from(seed % 20000).unwrap_or(0)
}

/// Up to this many nodes every host connects to every peer; above, a TCP connect costs
/// several WireGuard packets each way (at 50 hosts, 2,450 of them tripled verify's time),
/// so each host connects to its next [`RING_SENDERS`] nodes in inventory order (every
/// node's listener, so its input path, is checked from that many peers) and, for each
/// relay it reaches peers through, to the first such peer after it in that order (the
/// relay's forward path from this node).
pub const FULL_TCP_MAX_NODES: usize = 10;
/// Peers each node's listener is checked from above [`FULL_TCP_MAX_NODES`].
pub const RING_SENDERS: usize = 2;

fn tcp_targets<'a>(
    expectation: &'a Expectation,
    me: &'a super::expectation::ExpectedNode,
) -> Vec<&'a super::expectation::ExpectedNode> {
    use super::expectation::PairPath;
    let nodes = &expectation.nodes;
    let n = nodes.len();
    let at = nodes.iter().position(|x| x.name == me.name).unwrap_or(0);
    // Everyone else, in ring order from `me`.
    let ring = (1..n).map(|k| &nodes[(at + k) % n]);
    if n <= FULL_TCP_MAX_NODES {
        return ring.collect();
    }
    let mut relays_seen = Vec::new();
    ring.enumerate()
        .filter(|(k, other)| {
            if *k < RING_SENDERS {
                return true;
            }
            match expectation.path(me, other) {
                PairPath::Direct => false,
                PairPath::Relayed(relay) if relays_seen.contains(&relay) => false,
                PairPath::Relayed(relay) => {
                    relays_seen.push(relay);
                    true
                }
            }
        })
        .map(|(_, other)| other)
        .collect()
}

/// The `during` script of `node`'s probe: the listener on its mesh addresses and the
/// connects to other nodes' ([`tcp_targets`]; IPv4 and IPv6 where both sides have one).
pub fn during_script(expectation: &Expectation, node: &NodeName) -> Result<String, VerifyError> {
    let me = expectation
        .node(node)
        .ok_or_else(|| VerifyError::NoSuchNode {
            name: node.to_string(),
        })?;
    let mut mine = vec![me.address.to_string()];
    mine.extend(me.address6.map(|a| a.to_string()));
    let check = port(expectation);
    let mut peers = Vec::new();
    for other in tcp_targets(expectation, me) {
        let mut addrs = vec![other.address.to_string()];
        if let (Some(_), Some(a6)) = (me.address6, other.address6) {
            addrs.push(a6.to_string());
        }
        for addr in &addrs {
            for p in std::iter::once(check).chain(acl_ports(other, check)) {
                let denied = !expected_open(me, other, addr, p);
                let mut item = format!("{}={addr}", other.name);
                if p != check || denied {
                    item.push_str(&format!(",{p}"));
                }
                if denied {
                    item.push_str(",d");
                }
                peers.push(item);
            }
        }
    }
    let extra: Vec<String> = acl_ports(me, check).iter().map(u16::to_string).collect();
    Ok(Values::new()
        .set("MU_TCP_PL", TCP_PROBE)
        .set("MU_TCP_PORT", &check.to_string())
        .set("MU_TCP_LINGER", &LINGER_SECS.to_string())
        .set("MU_TCP_MINE", &mine.join(" "))
        .set("MU_TCP_PEERS", &peers.join(" "))
        .set("MU_TCP_EXTRA", &extra.join(" "))
        .before(
            "if command -v perl >/dev/null 2>&1; then\n\tperl -e \"$MU_TCP_PL\" \"$MU_TCP_PORT\" \"$MU_TCP_LINGER\" \"$MU_TCP_MINE\" \"$MU_TCP_PEERS\" \"$MU_TCP_EXTRA\" 2>/dev/null\nfi\n",
        ))
}

/// At most this many TCP ports of a node's mesh ACL are probed (the first port of each
/// range, in rule order): with the check's own port, the allowed/denied matrix.
pub const ACL_PORTS_MAX: usize = 3;

/// The ports of `node`'s mesh ACL that verify probes besides `check` (its listener
/// binds them too, where no service holds them already: then that service answers).
pub fn acl_ports(node: &ExpectedNode, check: u16) -> Vec<u16> {
    node.acl.as_ref().map_or_else(Vec::new, |acl| {
        acl.tcp_ports()
            .into_iter()
            .filter(|p| *p != check)
            .take(ACL_PORTS_MAX)
            .collect()
    })
}

/// A new TCP connection from `from` to `to`'s address `addr`, port `port`, should pass:
/// always without a mesh ACL on `to`, else when its rules let `from`'s address (of
/// `addr`'s family) in on that port.
pub fn expected_open(from: &ExpectedNode, to: &ExpectedNode, addr: &str, port: u16) -> bool {
    let Some(acl) = &to.acl else {
        return true;
    };
    let source = if addr.contains(':') {
        from.address6
    } else {
        Some(from.address)
    };
    source.is_some_and(|s| acl.admits_tcp(s, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::expectation::{ExpectedNode, ExpectedPeer};

    /// `n` nodes; every fifth is behind NAT and reaches the other NAT nodes through node-1.
    fn mesh(n: u8) -> Expectation {
        let name = |i: u8| format!("node-{i}").parse::<NodeName>().expect("name");
        let nat = |i: u8| i.is_multiple_of(5);
        let nodes = (1..=n)
            .map(|i| ExpectedNode {
                name: name(i),
                address: format!("10.1.0.{i}").parse().expect("ip"),
                address6: None,
                nat: nat(i),
                relay_role: i == 1,
                hub: false,
                subnet_router: false,
                probe: None,
                mtu: 1420,
                listen_port: 51820,
                public_key: None,
                acl: None,
                peers: (1..=n)
                    .filter(|&j| j != i && !(nat(i) && nat(j)))
                    .map(|j| {
                        let net = |k: u8| {
                            format!("10.1.0.{k}/32")
                                .parse::<ipnet::IpNet>()
                                .expect("net")
                        };
                        let mut allowed = vec![net(j)];
                        if nat(i) && j == 1 {
                            allowed.extend((1..=n).filter(|&k| nat(k) && k != i).map(net));
                        }
                        ExpectedPeer {
                            name: name(j),
                            public_key: None,
                            allowed_ips: allowed,
                            endpoint: None,
                            keepalive: None,
                            network: None,
                        }
                    })
                    .collect(),
            })
            .collect();
        Expectation::new("wg0".parse().expect("if"), nodes).expect("expectation")
    }

    fn targets(exp: &Expectation, me: &str) -> Vec<String> {
        let me = exp.node(&me.parse().expect("name")).expect("node");
        tcp_targets(exp, me)
            .iter()
            .map(|n| n.name.to_string())
            .collect()
    }

    #[test]
    fn small_meshes_check_every_pair() {
        let exp = mesh(FULL_TCP_MAX_NODES as u8);
        assert_eq!(targets(&exp, "node-3").len(), FULL_TCP_MAX_NODES - 1);
    }

    #[test]
    fn large_meshes_check_every_listener_and_every_relay_path() {
        let exp = mesh(50);
        // The next two in ring order (wrapping), and one NAT node through the relay.
        assert_eq!(targets(&exp, "node-49"), ["node-50", "node-1"]);
        assert_eq!(targets(&exp, "node-5"), ["node-6", "node-7", "node-10"]);
        assert_eq!(targets(&exp, "node-50"), ["node-1", "node-2", "node-5"]);
        // Every node's listener is connected to from RING_SENDERS peers.
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for node in &exp.nodes {
            for t in targets(&exp, node.name.as_str()) {
                *seen.entry(t).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 50);
        assert!(seen.values().all(|&c| c >= RING_SENDERS), "{seen:?}");
        // About 2 connects per node instead of 49.
        assert_eq!(seen.values().sum::<usize>(), 50 * RING_SENDERS + 10);
    }
}

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
    include_str!("../scripts/clock.pl"),
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
/// node's listener, so its input path, is checked from that many peers) and to every
/// peer it reaches through a relay (the relay's forward path).
pub const FULL_TCP_MAX_NODES: usize = 10;
/// Peers each node's listener is checked from above [`FULL_TCP_MAX_NODES`].
pub const RING_SENDERS: usize = 3;

fn tcp_targets<'a>(
    expectation: &'a Expectation,
    me: &'a super::expectation::ExpectedNode,
) -> impl Iterator<Item = &'a super::expectation::ExpectedNode> + 'a {
    let nodes = &expectation.nodes;
    let n = nodes.len();
    let at = nodes.iter().position(|x| x.name == me.name).unwrap_or(0);
    nodes
        .iter()
        .enumerate()
        .filter(move |(i, other)| {
            if other.name == me.name {
                return false;
            }
            if n <= FULL_TCP_MAX_NODES {
                return true;
            }
            let ahead = (i + n - at) % n;
            ahead <= RING_SENDERS
                || !matches!(
                    expectation.path(me, other),
                    super::expectation::PairPath::Direct
                )
        })
        .map(|(_, other)| other)
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

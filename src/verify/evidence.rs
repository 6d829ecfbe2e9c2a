//! The evidence verify gathers about one ordered pair of nodes: each side's live peer
//! entry next to what was expected, the pings and MTU probes, and the verdict.
//! Produced by `evaluate`, rendered by `report`; imports neither.
use ipnet::IpNet;
use serde::Serialize;

use super::diagnosis::Diagnosis;
use super::expectation::PairPath;
use crate::keys::PublicKey;

/// A handshake older than this (seconds) is stale: keepalive or traffic would renew it.
pub const HANDSHAKE_FRESH_SECS: u64 = 180;

/// One side's peer entry as seen live, next to what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// The node holding the entry.
    pub on: String,
    /// The peer the entry points at (the relay for relayed pairs).
    pub peer: String,
    /// The entry exists in the live dump.
    pub present: bool,
    /// Live public key of the entry.
    pub public_key: Option<PublicKey>,
    /// Live endpoint.
    pub endpoint: Option<String>,
    /// Expected endpoint.
    pub expected_endpoint: Option<String>,
    /// Handshake age in seconds; `None` = never.
    pub handshake_age: Option<u64>,
    /// Bytes received.
    pub rx: u64,
    /// Bytes sent.
    pub tx: u64,
    /// Live keepalive.
    pub keepalive: Option<u16>,
    /// Live AllowedIPs.
    pub allowed_ips: Vec<String>,
    /// Expected AllowedIPs.
    pub expected_allowed_ips: Vec<String>,
    /// Expected AllowedIPs without a route through the interface on this node.
    pub unrouted: Vec<String>,
    /// The key the entry should carry: the peer's live interface key (or meshup's).
    pub expected_public_key: Option<PublicKey>,
    /// Expected keepalive.
    pub expected_keepalive: Option<u16>,
    /// Bytes received from the peer while the probe ran (`None` without a before dump).
    pub rx_delta: Option<u64>,
    /// Bytes sent to the peer while the probe ran (`None` without a before dump).
    pub tx_delta: Option<u64>,
    /// The entry had a handshake before the probe's pings (`None` without a before dump).
    pub handshake_before: Option<bool>,
}

impl PeerView {
    /// A handshake younger than [`HANDSHAKE_FRESH_SECS`].
    pub(super) fn fresh(&self) -> bool {
        self.handshake_age.is_some_and(|a| a < HANDSHAKE_FRESH_SECS)
    }

    /// The live AllowedIPs equal the expected ones (as networks, in any order).
    pub(super) fn allowed_ips_match(&self) -> bool {
        normalize(&self.allowed_ips) == normalize(&self.expected_allowed_ips)
    }
}

fn normalize(nets: &[String]) -> Vec<String> {
    let mut v: Vec<String> = nets
        .iter()
        .map(|n| {
            n.parse::<IpNet>()
                .map_or_else(|_| n.clone(), |n| n.trunc().to_string())
        })
        .collect();
    v.sort();
    v
}

/// Ping outcome in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PingSummary {
    /// At least one reply.
    pub ok: bool,
    /// Loss in percent.
    pub loss_percent: f64,
    /// Average RTT in ms.
    pub rtt_avg: Option<f64>,
    /// Minimum RTT in ms: what the path costs, least disturbed by a busy host.
    pub rtt_min: Option<f64>,
}

/// The DF probes in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtuProbe {
    /// Payload size of the large probe.
    pub size: u16,
    /// The large DF probe got a reply.
    pub large_ok: bool,
    /// The small DF probe got a reply.
    pub small_ok: bool,
    /// Error ping printed for the large probe.
    pub detail: Option<String>,
}

/// Health of an ordered pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairStatus {
    /// Fresh handshakes and ping both ways.
    Healthy,
    /// Works, but with a problem (MTU, IPv6, stale handshake).
    Degraded,
    /// Does not work.
    Failing,
    /// A host gave no output.
    Unknown,
}

/// Everything known about traffic from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairEvidence {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Direct or relayed.
    pub path: PairPath,
    /// The private network a direct pair talks over (`networks:`), by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The sender's entry for the receiver (or the relay).
    pub forward: Option<PeerView>,
    /// The receiver's entry for the sender (or the relay).
    pub reverse: Option<PeerView>,
    /// Ping from → to.
    pub ping: Option<PingSummary>,
    /// Ping to → from.
    pub ping_back: Option<PingSummary>,
    /// IPv6 ping from → to, when dual stack.
    pub ping6: Option<PingSummary>,
    /// DF probes from → to.
    pub mtu: Option<MtuProbe>,
    /// Verdict.
    pub status: PairStatus,
    /// Findings for this pair.
    pub diagnoses: Vec<Diagnosis>,
}

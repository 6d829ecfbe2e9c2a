//! The probes of every node, parsed once, with the lookups evaluation needs: a node's
//! live peer entry for another node, its pings, its MTU probes, its firewall verdict.
use std::collections::{BTreeMap, HashMap};

use super::evidence::{MtuProbe, PeerView, PingSummary};
use super::expectation::{Expectation, ExpectedNode, FirewallEvidence, NodeName, PortState};
use super::ping::PingError;
use super::probe::{NodeProbe, PingKind};
use super::secrets::{PskEvidence, PskSide};
use crate::facts::WgPeerDump;
use crate::keys::PublicKey;

/// Parsed probes plus per-node lookups.
pub(super) struct Live<'a> {
    pub(super) exp: &'a Expectation,
    pub(super) probes: HashMap<&'a NodeName, Result<NodeProbe, crate::host_error::HostError>>,
    pub(super) firewall: &'a BTreeMap<NodeName, FirewallEvidence>,
    pub(super) psks: &'a BTreeMap<NodeName, PskEvidence>,
}

impl Live<'_> {
    pub(super) fn probe(&self, n: &NodeName) -> Option<&NodeProbe> {
        self.probes.get(n).and_then(|p| p.as_ref().ok())
    }

    pub(super) fn live_key(&self, n: &NodeName) -> Option<PublicKey> {
        self.probe(n)?.dump.as_ref()?.public_key()
    }

    /// `on`'s live entry for node `peer`: by expected key, else live key, else AllowedIPs.
    pub(super) fn entry(&self, on: &ExpectedNode, peer: &ExpectedNode) -> Option<&WgPeerDump> {
        let dump = self.probe(&on.name)?.dump.as_ref()?;
        let keys = [
            on.peer(&peer.name).and_then(|p| p.public_key),
            peer.public_key,
            self.live_key(&peer.name),
        ];
        keys.into_iter()
            .flatten()
            .find_map(|k| dump.peer(&k))
            .or_else(|| {
                dump.peers
                    .iter()
                    .find(|p| p.allowed_ips.iter().any(|a| a.addr() == peer.address))
            })
    }

    pub(super) fn view(&self, on: &ExpectedNode, peer: &ExpectedNode) -> Option<PeerView> {
        let probe = self.probe(&on.name)?;
        let expected = on.peer(&peer.name);
        let expected_allowed: Vec<String> = expected
            .map(|p| p.allowed_ips.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let routes: Vec<_> = probe.routes.iter().filter(|r| r.forwards()).collect();
        let unrouted = expected
            .map(|p| {
                p.allowed_ips
                    .iter()
                    .filter(|net| !routes.iter().any(|r| r.destination.contains(*net)))
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let entry = self.entry(on, peer);
        let before = entry.and_then(|e| probe.dump_before.as_ref()?.peer(&e.public_key));
        let before_known = probe.dump_before.is_some() && entry.is_some();
        let now = probe.now.unwrap_or(0);
        Some(PeerView {
            on: on.name.to_string(),
            peer: peer.name.to_string(),
            present: entry.is_some(),
            public_key: entry.map(|e| e.public_key),
            endpoint: entry.and_then(|e| e.endpoint.clone()),
            expected_endpoint: expected.and_then(|p| p.endpoint.clone()),
            handshake_age: entry
                .and_then(|e| e.latest_handshake)
                .map(|h| now.saturating_sub(h)),
            rx: entry.map_or(0, |e| e.rx_bytes),
            tx: entry.map_or(0, |e| e.tx_bytes),
            keepalive: entry.and_then(|e| e.persistent_keepalive),
            allowed_ips: entry
                .map(|e| e.allowed_ips.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            expected_allowed_ips: expected_allowed,
            unrouted,
            expected_public_key: expected.and_then(|p| p.public_key),
            expected_keepalive: expected.and_then(|p| p.keepalive),
            rx_delta: entry
                .filter(|_| before_known)
                .map(|e| e.rx_bytes.saturating_sub(before.map_or(0, |b| b.rx_bytes))),
            tx_delta: entry
                .filter(|_| before_known)
                .map(|e| e.tx_bytes.saturating_sub(before.map_or(0, |b| b.tx_bytes))),
            handshake_before: before_known
                .then(|| before.is_some_and(|b| b.latest_handshake.is_some())),
        })
    }

    /// `on` received packets during the probe from some peer other than the entry with
    /// key `except`: its UDP port lets WireGuard traffic in.
    pub(super) fn received_from_others(&self, on: &NodeName, except: Option<PublicKey>) -> bool {
        let Some(probe) = self.probe(on) else {
            return false;
        };
        let (Some(now), Some(before)) = (probe.dump.as_ref(), probe.dump_before.as_ref()) else {
            return false;
        };
        now.peers
            .iter()
            .filter(|p| Some(p.public_key) != except)
            .any(|p| {
                before
                    .peer(&p.public_key)
                    .is_some_and(|b| p.rx_bytes > b.rx_bytes)
            })
    }

    pub(super) fn ping(
        &self,
        from: &NodeName,
        to: &NodeName,
        kind: PingKind,
    ) -> Option<PingSummary> {
        let rec = self.probe(from)?.ping(to.as_str(), kind)?;
        Some(PingSummary {
            ok: rec.result.ok(),
            loss_percent: rec.result.loss_percent,
            rtt_avg: rec.result.rtt.map(|r| r.avg),
            rtt_min: rec.result.rtt.map(|r| r.min),
        })
    }

    pub(super) fn mtu(&self, from: &NodeName, to: &NodeName) -> Option<MtuProbe> {
        let probe = self.probe(from)?;
        let large = probe.ping(to.as_str(), PingKind::Mtu)?;
        // Scripts of format 1 ran a separate small DF ping; the mesh ping (56 bytes) says
        // the same.
        let small = probe
            .ping(to.as_str(), PingKind::Small)
            .or_else(|| probe.ping(to.as_str(), PingKind::Mesh))?;
        let detail = large
            .result
            .errors
            .first()
            .map(|e| match e {
                PingError::MessageTooLong { mtu } => {
                    format!(
                        "message too long, mtu={}",
                        mtu.map_or("?".into(), |m| m.to_string())
                    )
                }
                PingError::FragNeeded { mtu } => {
                    format!(
                        "frag needed, mtu={}",
                        mtu.map_or("?".into(), |m| m.to_string())
                    )
                }
                other => format!("{other:?}"),
            })
            .or_else(|| (!large.result.ok()).then(|| "no reply".to_owned()));
        Some(MtuProbe {
            size: large.size.unwrap_or(0),
            large_ok: large.result.ok(),
            small_ok: small.result.ok(),
            detail,
        })
    }

    /// What drops traffic arriving on `n`'s mesh interface, prefixed with `n`.
    pub(super) fn mesh_filtered(&self, n: &NodeName) -> Option<String> {
        self.firewall
            .get(n)
            .and_then(|f| f.mesh_filter.as_ref())
            .map(|why| format!("{n}: {why}"))
    }

    /// `n`'s side of a pair for the preshared key comparison: its evidence and `view`'s
    /// entry key (its entry for the other side).
    pub(super) fn psk_side<'b>(&'b self, n: &'b NodeName, view: Option<&PeerView>) -> PskSide<'b> {
        PskSide {
            node: n.as_str(),
            evidence: self.psks.get(n),
            entry: view.and_then(|v| v.public_key),
        }
    }

    pub(super) fn firewall_closed(&self, n: &NodeName) -> Option<String> {
        self.firewall
            .get(n)
            .filter(|f| f.state == PortState::Closed)
            .map(|f| f.firewall.clone())
    }
}

//! Joins every host's probe with the expectation: evidence per ordered pair, then a
//! diagnosis for each pair that is not healthy.
use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use serde::Serialize;

use super::diagnosis::Diagnosis;
use super::expectation::{
    Expectation, ExpectedNode, FirewallEvidence, NodeName, PairPath, PortState,
};
use super::probe::{self, NodeProbe, PingKind};
use super::report::{NodeSummary, ProbeCheck, Report};
use crate::facts::WgPeerDump;
use crate::keys::PublicKey;

/// A handshake older than this (seconds) is stale: keepalive or traffic would renew it.
pub const HANDSHAKE_FRESH_SECS: u64 = 180;

/// What the runner got back from one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutput {
    /// The probe's standard output.
    Output(String),
    /// The host could not be reached or the script failed to run.
    Failed(String),
}

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
    fn fresh(&self) -> bool {
        self.handshake_age.is_some_and(|a| a < HANDSHAKE_FRESH_SECS)
    }

    fn allowed_ips_match(&self) -> bool {
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

/// Parsed probes plus per-node lookups.
struct Live<'a> {
    exp: &'a Expectation,
    probes: HashMap<&'a NodeName, Result<NodeProbe, String>>,
    firewall: &'a BTreeMap<NodeName, FirewallEvidence>,
}

impl Live<'_> {
    fn probe(&self, n: &NodeName) -> Option<&NodeProbe> {
        self.probes.get(n).and_then(|p| p.as_ref().ok())
    }

    fn live_key(&self, n: &NodeName) -> Option<PublicKey> {
        self.probe(n)?.dump.as_ref()?.public_key()
    }

    /// `on`'s live entry for node `peer`: by expected key, else live key, else AllowedIPs.
    fn entry(&self, on: &ExpectedNode, peer: &ExpectedNode) -> Option<&WgPeerDump> {
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

    fn view(&self, on: &ExpectedNode, peer: &ExpectedNode) -> Option<PeerView> {
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

    fn ping(&self, from: &NodeName, to: &NodeName, kind: PingKind) -> Option<PingSummary> {
        let rec = self.probe(from)?.ping(to.as_str(), kind)?;
        Some(PingSummary {
            ok: rec.result.ok(),
            loss_percent: rec.result.loss_percent,
            rtt_avg: rec.result.rtt.map(|r| r.avg),
        })
    }

    fn mtu(&self, from: &NodeName, to: &NodeName) -> Option<MtuProbe> {
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
                super::ping::PingError::MessageTooLong { mtu } => {
                    format!(
                        "message too long, mtu={}",
                        mtu.map_or("?".into(), |m| m.to_string())
                    )
                }
                super::ping::PingError::FragNeeded { mtu } => {
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

    fn firewall_closed(&self, n: &NodeName) -> Option<String> {
        self.firewall
            .get(n)
            .filter(|f| f.state == PortState::Closed)
            .map(|f| f.firewall.clone())
    }
}

/// Evaluates the mesh: `outputs` holds each host's probe output (a node absent from the
/// map counts as unreachable), `firewall` the per-node firewall evidence from the facts.
pub fn evaluate(
    exp: &Expectation,
    outputs: &BTreeMap<NodeName, HostOutput>,
    firewall: &BTreeMap<NodeName, FirewallEvidence>,
) -> Report {
    let probes = exp
        .nodes
        .iter()
        .map(|n| {
            let parsed = match outputs.get(&n.name) {
                Some(HostOutput::Output(text)) => probe::parse(text).map_err(|e| e.to_string()),
                Some(HostOutput::Failed(err)) => Err(err.clone()),
                None => Err("no output".to_owned()),
            };
            (&n.name, parsed)
        })
        .collect();
    let live = Live {
        exp,
        probes,
        firewall,
    };

    let mut node_diagnoses = Vec::new();
    for n in &exp.nodes {
        node_diagnoses.extend(node_findings(&live, n));
    }

    let mut pairs = Vec::with_capacity(exp.nodes.len() * exp.nodes.len().saturating_sub(1));
    for from in &exp.nodes {
        for to in exp.nodes.iter().filter(|t| t.name != from.name) {
            pairs.push(pair(&live, from, to));
        }
    }

    let mut probe_checks = Vec::new();
    for from in &exp.nodes {
        for router in exp.nodes.iter().filter(|t| t.name != from.name) {
            let (Some(address), Some(p)) = (router.probe, live.probe(&from.name)) else {
                continue;
            };
            if let Some(rec) = p.ping(router.name.as_str(), PingKind::Probe) {
                probe_checks.push(ProbeCheck {
                    from: from.name.to_string(),
                    router: router.name.to_string(),
                    address: address.to_string(),
                    ok: rec.result.ok(),
                    rtt_avg: rec.result.rtt.map(|r| r.avg),
                });
            }
        }
    }

    let nodes = exp
        .nodes
        .iter()
        .map(|n| NodeSummary::from_pairs(n, &pairs, live.probe(&n.name).is_some()))
        .collect();
    Report {
        interface: exp.interface.to_string(),
        nodes,
        node_diagnoses,
        pairs,
        probes: probe_checks,
    }
}

fn node_findings(live: &Live<'_>, n: &ExpectedNode) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let probe = match live.probes.get(&n.name) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            out.push(Diagnosis::HostUnreachable {
                node: n.name.to_string(),
                error: e.clone(),
            });
            return out;
        }
        None => return out,
    };
    if !probe.complete {
        out.push(Diagnosis::HostUnreachable {
            node: n.name.to_string(),
            error: "probe output cut off before its end marker".into(),
        });
    }
    match (&probe.dump, &probe.link) {
        (Some(_), Some(link)) if link.up => {}
        (_, link) => out.push(Diagnosis::InterfaceDown {
            node: n.name.to_string(),
            error: probe.dump_error.clone().unwrap_or_else(|| match link {
                Some(_) => "link is down".into(),
                None => "no such interface".into(),
            }),
        }),
    }
    out.extend(key_drift(live, n));
    if (n.relay_role || n.subnet_router) && probe.forwarding.is_some_and(|f| !f.ipv4) {
        out.push(Diagnosis::ForwardingOff {
            node: n.name.to_string(),
        });
    }
    out
}

fn pair(live: &Live<'_>, from: &ExpectedNode, to: &ExpectedNode) -> PairEvidence {
    let exp = live.exp;
    let path = exp.path(from, to);
    let (f_peer, t_peer) = match &path {
        PairPath::Direct => (to, from),
        PairPath::Relayed(r) => match exp.node(r) {
            Some(relay) => (relay, relay),
            None => (to, from),
        },
    };
    let forward = live.view(from, f_peer);
    let reverse = live.view(to, t_peer);
    let ping = live.ping(&from.name, &to.name, PingKind::Mesh);
    let ping_back = live.ping(&to.name, &from.name, PingKind::Mesh);
    let ping6 = live.ping(&from.name, &to.name, PingKind::Mesh6);
    let mtu = live.mtu(&from.name, &to.name);

    let mut d = Vec::new();
    let reachable = live.probe(&from.name).is_some() && live.probe(&to.name).is_some();
    for n in [from, to] {
        if let Some(Err(e)) = live.probes.get(&n.name) {
            d.push(Diagnosis::HostUnreachable {
                node: n.name.to_string(),
                error: e.clone(),
            });
        }
    }
    let fresh = |v: &Option<PeerView>| v.as_ref().is_some_and(PeerView::fresh);
    let ping_ok = |p: &Option<PingSummary>| p.is_some_and(|p| p.ok);
    let works = fresh(&forward) && fresh(&reverse) && ping_ok(&ping) && ping_ok(&ping_back);

    if reachable && !works {
        diagnose_failure(
            live,
            from,
            to,
            &path,
            forward.as_ref(),
            reverse.as_ref(),
            &mut d,
        );
    }
    let mut degraded = false;
    if reachable && works {
        // Traffic passes, but the live config is not what the inventory says.
        for v in [&forward, &reverse].into_iter().flatten() {
            if v.present && !v.allowed_ips_match() {
                degraded = true;
                d.push(mismatch(v));
            }
        }
    }
    if reachable && path == PairPath::Direct {
        for (nat, public, view) in [(from, to, &forward), (to, from, &reverse)] {
            if let Some(v) = view
                && nat.nat
                && !public.nat
                && v.present
                && v.keepalive.is_none()
                && let Some(expected) = v.expected_keepalive
            {
                degraded = true;
                d.push(Diagnosis::NatKeepaliveMissing {
                    nat: nat.name.to_string(),
                    public: public.name.to_string(),
                    expected,
                    initiated: v.handshake_before,
                });
            }
        }
    }
    if let Some(m) = &mtu
        && m.small_ok
        && !m.large_ok
    {
        degraded = true;
        d.push(Diagnosis::Mtu {
            from: from.name.to_string(),
            to: to.name.to_string(),
            size: m.size,
            detail: m.detail.clone().unwrap_or_else(|| "no reply".into()),
        });
    }
    if works && ping6.is_some_and(|p| !p.ok) {
        degraded = true;
        d.push(Diagnosis::Ipv6Fails {
            from: from.name.to_string(),
            to: to.name.to_string(),
        });
    }
    let status = if !reachable {
        PairStatus::Unknown
    } else if !works {
        PairStatus::Failing
    } else if degraded {
        PairStatus::Degraded
    } else {
        PairStatus::Healthy
    };
    PairEvidence {
        from: from.name.to_string(),
        to: to.name.to_string(),
        path,
        forward,
        reverse,
        ping,
        ping_back,
        ping6,
        mtu,
        status,
        diagnoses: d,
    }
}

#[allow(clippy::too_many_arguments)]
fn diagnose_failure(
    live: &Live<'_>,
    from: &ExpectedNode,
    to: &ExpectedNode,
    path: &PairPath,
    forward: Option<&PeerView>,
    reverse: Option<&PeerView>,
    d: &mut Vec<Diagnosis>,
) {
    let exp = live.exp;
    for n in [from, to] {
        d.extend(key_drift(live, n));
    }
    let views: Vec<&PeerView> = [forward, reverse].into_iter().flatten().collect();
    for v in &views {
        if let (true, Some(entry_key), Some(live_key)) =
            (v.present, v.public_key, v.expected_public_key)
            && entry_key != live_key
        {
            d.push(Diagnosis::PeerKeyDrift {
                on: v.on.clone(),
                peer: v.peer.clone(),
                entry_key: entry_key.to_string(),
                live_key: live_key.to_string(),
            });
        }
    }
    let key_trouble = d.iter().any(|x| {
        matches!(
            x,
            Diagnosis::KeyDrift { .. } | Diagnosis::PeerKeyDrift { .. }
        )
    });
    for v in &views {
        if !v.present {
            d.push(Diagnosis::PeerMissing {
                on: v.on.clone(),
                peer: v.peer.clone(),
            });
        }
    }
    if let PairPath::Relayed(relay) = path {
        for v in views.iter().filter(|v| v.present && !v.fresh()) {
            d.push(Diagnosis::RelayLegDown {
                node: v.on.clone(),
                relay: relay.to_string(),
                age: v.handshake_age,
            });
        }
        if views.iter().all(|v| v.fresh()) {
            for v in &views {
                if !v.allowed_ips_match() {
                    d.push(mismatch(v));
                }
            }
            if let Some(r) = exp.node(relay) {
                if live
                    .probe(relay)
                    .and_then(|p| p.forwarding)
                    .is_some_and(|f| !f.ipv4)
                {
                    d.push(Diagnosis::ForwardingOff {
                        node: r.name.to_string(),
                    });
                }
                for (a, b) in [(r, to), (r, from)] {
                    if let Some(v) = live.view(a, b)
                        && !v.allowed_ips_match()
                    {
                        d.push(mismatch(&v));
                    }
                }
            }
            if d.is_empty() {
                d.push(Diagnosis::PingBlocked {
                    from: from.name.to_string(),
                    to: to.name.to_string(),
                });
            }
        }
        return;
    }
    let (Some(fw), Some(rv)) = (forward, reverse) else {
        return;
    };
    if !fw.present || !rv.present {
        return;
    }
    let never = fw.handshake_age.is_none() && rv.handshake_age.is_none();
    if never {
        for (v, node) in [(fw, to), (rv, from)] {
            if let Some(expected) = &v.expected_endpoint
                && v.endpoint.as_ref() != Some(expected)
            {
                d.push(Diagnosis::EndpointWrong {
                    on: v.on.clone(),
                    peer: node.name.to_string(),
                    live: v.endpoint.clone(),
                    expected: expected.clone(),
                });
            }
        }
        // A public node never learns a NAT peer's endpoint until the NAT side initiates.
        for (public_view, nat, nat_view) in [(fw, to, rv), (rv, from, fw)] {
            if nat.nat && public_view.expected_endpoint.is_none() && public_view.endpoint.is_none()
            {
                d.push(Diagnosis::NatNoEndpoint {
                    public: public_view.on.clone(),
                    nat: nat.name.to_string(),
                    keepalive: nat_view.keepalive,
                });
            }
        }
        // The side that received nothing is where packets are dropped.
        for (receiver_view, receiver, sender_view) in [(rv, to, fw), (fw, from, rv)] {
            if receiver_view.rx == 0 && sender_view.tx > 0 && sender_view.endpoint.is_some() {
                d.push(Diagnosis::NoHandshake {
                    receiver: receiver.name.to_string(),
                    sender: sender_view.on.clone(),
                    port: receiver.listen_port,
                    firewall_closed: live.firewall_closed(&receiver.name),
                    endpoint: sender_view.endpoint.clone(),
                });
            }
        }
        return;
    }
    for v in [fw, rv] {
        if let Some(age) = v.handshake_age.filter(|a| *a >= HANDSHAKE_FRESH_SECS) {
            d.push(Diagnosis::StaleHandshake {
                on: v.on.clone(),
                peer: v.peer.clone(),
                age,
            });
        }
    }
    let before = d.len();
    for v in [fw, rv] {
        if !v.allowed_ips_match() {
            d.push(mismatch(v));
        }
    }
    for v in [fw, rv] {
        if !v.unrouted.is_empty() {
            d.push(Diagnosis::RoutesMissing {
                on: v.on.clone(),
                peer: v.peer.clone(),
                missing: v.unrouted.clone(),
            });
        }
    }
    if d.len() == before && !key_trouble {
        // Handshakes happened once; the transfer counters show who stopped receiving.
        for (receiver_view, receiver, sender_view) in [(rv, to, fw), (fw, from, rv)] {
            if receiver_view.rx_delta == Some(0) && sender_view.tx_delta.is_some_and(|t| t > 0) {
                d.push(Diagnosis::UdpBlocked {
                    receiver: receiver.name.to_string(),
                    sender: sender_view.on.clone(),
                    port: receiver.listen_port,
                    firewall_closed: live.firewall_closed(&receiver.name),
                    handshake_age: receiver_view.handshake_age,
                });
            }
        }
    }
    if d.len() == before && !key_trouble && fw.fresh() && rv.fresh() {
        d.push(Diagnosis::PingBlocked {
            from: from.name.to_string(),
            to: to.name.to_string(),
        });
    }
}

fn mismatch(v: &PeerView) -> Diagnosis {
    Diagnosis::AllowedIpsMismatch {
        on: v.on.clone(),
        peer: v.peer.clone(),
        live: v.allowed_ips.clone(),
        expected: v.expected_allowed_ips.clone(),
    }
}

fn key_drift(live: &Live<'_>, n: &ExpectedNode) -> Option<Diagnosis> {
    let interface = live.probe(&n.name)?.dump.as_ref()?.interface.as_ref()?;
    let expected = n.public_key?;
    // An interface without a private key shows `(none)` as its public key, as `wg` does.
    (interface.public_key != Some(expected)).then(|| Diagnosis::KeyDrift {
        node: n.name.to_string(),
        live: interface
            .public_key
            .map_or_else(|| "(none)".to_owned(), |k| k.to_string()),
        expected: expected.to_string(),
    })
}

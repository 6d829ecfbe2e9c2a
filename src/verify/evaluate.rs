//! Joins every host's probe with the expectation: evidence per ordered pair, then a
//! diagnosis for each pair that is not healthy.
use std::collections::BTreeMap;

use super::diagnosis::Diagnosis;
use super::evidence::{HANDSHAKE_FRESH_SECS, PairEvidence, PairStatus, PeerView, PingSummary};
use super::expectation::{Expectation, ExpectedNode, FirewallEvidence, NodeName, PairPath};
use super::live::Live;
use super::probe::{self, PingKind};
use super::report::{NodeSummary, ProbeCheck, Report};
use super::secrets::{PskEvidence, psk_mismatch};

/// What the runner got back from one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutput {
    /// The probe's standard output.
    Output(String),
    /// The host could not be reached or the script failed to run.
    Failed(String),
}

/// Evaluates the mesh: `outputs` holds each host's probe output (a node absent from the
/// map counts as unreachable), `firewall` the per-node firewall evidence from the facts.
pub fn evaluate(
    exp: &Expectation,
    outputs: &BTreeMap<NodeName, HostOutput>,
    firewall: &BTreeMap<NodeName, FirewallEvidence>,
) -> Report {
    evaluate_with_psks(exp, outputs, firewall, &BTreeMap::new())
}

/// [`evaluate`] with each node's preshared key evidence from its gathered facts (only
/// the hosts of failing pairs have any).
pub fn evaluate_with_psks(
    exp: &Expectation,
    outputs: &BTreeMap<NodeName, HostOutput>,
    firewall: &BTreeMap<NodeName, FirewallEvidence>,
    psks: &BTreeMap<NodeName, PskEvidence>,
) -> Report {
    let probes = exp
        .nodes
        .iter()
        // A node with no entry was not asked (`--limit`): no probe, and no finding.
        .filter_map(|n| {
            let parsed = match outputs.get(&n.name)? {
                HostOutput::Output(text) => probe::parse(text).map_err(|e| e.to_string()),
                HostOutput::Failed(err) => Err(err.clone()),
            };
            Some((&n.name, parsed))
        })
        .collect();
    let live = Live {
        exp,
        probes,
        firewall,
        psks,
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
                    rtt_min: rec.result.rtt.map(|r| r.min),
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
        nat_paths: Vec::new(),
        acl: super::acl_matrix::checks(&live),
        exits: Vec::new(),
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
            if n.hub {
                out.push(Diagnosis::HubDown {
                    hub: n.name.to_string(),
                    spokes: live
                        .exp
                        .nodes
                        .iter()
                        .filter(|s| !s.hub && s.peer(&n.name).is_some())
                        .count(),
                });
            }
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
    // Each side's own entry for the other: the other, or what carries it there (a NAT
    // node's relay; between sites, each spoke's hub).
    let f_peer = match &path {
        PairPath::Relayed(r) => exp.node(r).unwrap_or(to),
        PairPath::Direct => to,
    };
    let t_peer = match exp.path(to, from) {
        PairPath::Relayed(r) => exp.node(&r).unwrap_or(from),
        PairPath::Direct => from,
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
    // Towards a node that was not asked (`--limit`), the sender's side is all there is.
    let unasked = !live.probes.contains_key(&to.name) && live.probe(&from.name).is_some();
    let works = if unasked {
        fresh(&forward) && ping_ok(&ping)
    } else {
        fresh(&forward) && fresh(&reverse) && ping_ok(&ping) && ping_ok(&ping_back)
    };

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
    // Ping passes; a service on the mesh address must be reachable too (and, with a
    // mesh ACL, only what its rules allow).
    let tcp_findings = if reachable && works {
        tcp_findings(live, from, to)
    } else {
        Vec::new()
    };
    let tcp_failed = !tcp_findings.is_empty();
    d.extend(tcp_findings);
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
    let status = if unasked {
        if works {
            PairStatus::Healthy
        } else {
            PairStatus::Failing
        }
    } else if !reachable {
        PairStatus::Unknown
    } else if !works || tcp_failed {
        PairStatus::Failing
    } else if degraded {
        PairStatus::Degraded
    } else {
        PairStatus::Healthy
    };
    let network = match &path {
        PairPath::Direct => from.peer(&to.name).and_then(|p| p.network.clone()),
        PairPath::Relayed(_) => None,
    };
    PairEvidence {
        from: from.name.to_string(),
        to: to.name.to_string(),
        path,
        network,
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
    // Two sides holding different preshared keys fail every handshake, whatever else
    // the counters suggest.
    if *path == PairPath::Direct
        && let Some(psk) = psk_mismatch(
            live.psk_side(&from.name, forward),
            live.psk_side(&to.name, reverse),
        )
    {
        d.push(psk);
    }
    let key_trouble = d.iter().any(|x| {
        matches!(
            x,
            Diagnosis::KeyDrift { .. }
                | Diagnosis::PeerKeyDrift { .. }
                | Diagnosis::PskMismatch { .. }
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
                relay: v.peer.clone(),
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
                    filtered_by: ping_filter(live, &from.name, &to.name),
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
            // A DNS name is resolved on the host: any address on its port matches it.
            if let Some(expected) = &v.expected_endpoint
                && !v
                    .endpoint
                    .as_deref()
                    .is_some_and(|live| crate::inventory::endpoint_matches(live, expected))
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
                // Its port lets other peers' packets in: not the port, this one session.
                if live.received_from_others(&receiver.name, receiver_view.public_key) {
                    d.push(Diagnosis::SessionStuck {
                        receiver: receiver.name.to_string(),
                        sender: sender_view.on.clone(),
                        handshake_age: receiver_view.handshake_age,
                    });
                    continue;
                }
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
            filtered_by: ping_filter(live, &from.name, &to.name),
        });
    }
}

/// A TCP connect from `from` to `to`'s mesh address that did not complete though it
/// should (the first one), and every connect that completed though `to`'s mesh ACL
/// should drop it; only when `to`'s listener ran (no finding where a probe ran no TCP
/// check, e.g. without perl).
fn tcp_findings(live: &Live<'_>, from: &ExpectedNode, to: &ExpectedNode) -> Vec<Diagnosis> {
    let listening = live.probe(&to.name).and_then(|p| p.tcp_listen) == Some(true);
    let Some(probe) = live.probe(&from.name).filter(|_| listening) else {
        return Vec::new();
    };
    let check = super::tcp::port(live.exp);
    let mut out = Vec::new();
    let mut blocked = false;
    for r in probe.tcp.iter().filter(|r| r.peer == to.name.as_str()) {
        let port = r.port.unwrap_or(check);
        let open = super::tcp::expected_open(from, to, &r.addr, port);
        if open && !r.ok() && !blocked {
            blocked = true;
            out.push(Diagnosis::TcpBlocked {
                from: from.name.to_string(),
                to: to.name.to_string(),
                addr: r.addr.clone(),
                port,
                result: r.result.clone(),
                filtered_by: live.mesh_filtered(&to.name),
            });
        }
        if !open && r.ok() {
            out.push(Diagnosis::AclOpen {
                from: from.name.to_string(),
                to: to.name.to_string(),
                addr: r.addr.clone(),
                port,
            });
        }
    }
    out
}

/// What the firewall facts say drops a ping between `from` and `to` on the mesh
/// interface: the echo request arrives on `to`'s, the reply on `from`'s.
fn ping_filter(live: &Live<'_>, from: &NodeName, to: &NodeName) -> Option<String> {
    live.mesh_filtered(to).or_else(|| live.mesh_filtered(from))
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

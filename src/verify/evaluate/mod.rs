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
use crate::host_error::HostError;

mod failure;

use failure::diagnose_failure;

/// What the runner got back from one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutput {
    /// The probe's standard output.
    Output(String),
    /// The host could not be reached or the script failed to run.
    Failed(HostError),
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
                HostOutput::Output(text) => probe::parse(text).map_err(|e| HostError::BadAnswer {
                    message: e.to_string(),
                }),
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
                error: e.to_string(),
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
                error: e.to_string(),
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

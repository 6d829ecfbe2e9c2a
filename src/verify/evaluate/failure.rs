//! Why a pair that should carry traffic does not: the evidence of both sides, read in the
//! order the guide's troubleshooting reads it.
use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn diagnose_failure(
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

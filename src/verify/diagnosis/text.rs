//! How each diagnosis reads (its `Display`): the message verify prints, in the guide's terms.
use std::fmt;

use super::Diagnosis;

/// A public key shortened for a message ("AbCdEfGhIj…"); the JSON keeps it whole.
fn short_key(key: &str) -> String {
    match key.get(..10) {
        Some(head) if key.len() > 10 => format!("{head}…"),
        _ => key.to_owned(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostUnreachable { node, error } => write!(f, "{node}: no probe output ({error})"),
            Self::InterfaceDown { node, error } => {
                write!(
                    f,
                    "{node}: WireGuard interface not up ({error}); start it (systemctl enable --now wg-quick@<if>)"
                )
            }
            Self::KeyDrift {
                node,
                live,
                expected,
            } => write!(
                f,
                "key drift: {node}'s live public key {live} is not the expected {expected}; peers still use the old key, re-run apply"
            ),
            Self::PeerMissing { on, peer } => write!(f, "{on} has no peer entry for {peer}"),
            Self::PeerKeyDrift {
                on, peer, live_key, ..
            } => write!(
                f,
                "{on} holds an old public key for {peer} ({peer}'s key is now {}): run apply",
                short_key(live_key)
            ),
            Self::PskMismatch {
                a,
                b,
                only,
                live_not_file,
                files_agree,
            } => {
                match only {
                    Some(with) => {
                        let without = if with == a { b } else { a };
                        write!(
                            f,
                            "{with} uses a preshared key with {without}, {without} uses none"
                        )?;
                    }
                    None => write!(f, "preshared keys of {a} and {b} differ")?,
                }
                if live_not_file.is_empty() {
                    return write!(f, ": run apply");
                }
                let who = live_not_file.join(" and ");
                let (clause, reload) = match live_not_file.len() {
                    1 => (
                        format!("{who}'s interface does not run the preshared key in its key file"),
                        "its config there",
                    ),
                    _ => (
                        format!(
                            "the interfaces of {who} do not run the preshared keys in their key files"
                        ),
                        "their configs there",
                    ),
                };
                write!(f, ": {clause}; ")?;
                if *files_agree {
                    write!(
                        f,
                        "reload {reload} (`wg syncconf <if> <(wg-quick strip <if>)` on {who})"
                    )
                } else {
                    write!(f, "run apply")
                }
            }
            Self::UdpBlocked {
                receiver,
                sender,
                port,
                firewall_closed,
                handshake_age,
            } => {
                write!(
                    f,
                    "blocked port: {receiver} received nothing from {sender} during the probe while {sender} kept sending"
                )?;
                if let Some(age) = handshake_age {
                    write!(f, " (last handshake {age} s ago)")?;
                }
                match firewall_closed {
                    Some(fw) => write!(f, ": {receiver}: UDP {port} not open in {fw}"),
                    None => write!(
                        f,
                        ": UDP {port} dropped on the way into {receiver}; run `tcpdump -n udp port {port}` on {receiver}"
                    ),
                }
            }
            Self::SessionStuck {
                receiver,
                sender,
                handshake_age,
            } => {
                write!(
                    f,
                    "stuck session: {receiver} accepted nothing from {sender} during the probe while {sender} kept sending, though other peers' packets got in on the same port"
                )?;
                if let Some(age) = handshake_age {
                    write!(f, " (last handshake {age} s ago)")?;
                }
                write!(
                    f,
                    ": {sender} is sending on a session {receiver} no longer holds (handshakes that crossed); WireGuard replaces it at the next handshake, within 2 minutes; to do it now, remove {receiver}'s entry on {sender} (`wg set <if> peer <key> remove`) and run `meshup apply`"
                )
            }
            Self::NatKeepaliveMissing {
                nat,
                public,
                expected,
                initiated,
            } => match initiated {
                Some(false) => write!(
                    f,
                    "NAT peer never initiated: {nat} had no handshake with {public} before the probe and has no PersistentKeepalive towards it (expected {expected} s); {public} cannot reach {nat} until {nat} sends first"
                ),
                _ => write!(
                    f,
                    "PersistentKeepalive missing on NAT node {nat} towards {public} (expected {expected} s): its NAT mapping will expire and {public} will lose it"
                ),
            },
            Self::MtuDrift {
                node,
                live,
                expected,
                from_inventory,
            } => {
                write!(f, "MTU: {node}'s interface runs MTU {live}, ")?;
                if *from_inventory {
                    write!(f, "the inventory says {expected}; re-run apply")?;
                } else {
                    write!(
                        f,
                        "the other nodes run {expected}; set mtu in the inventory and re-run apply"
                    )?;
                }
                write!(f, " (mismatched MTUs black-hole large packets)")
            }
            Self::NoHandshake {
                receiver,
                sender,
                port,
                firewall_closed,
                endpoint,
            } => {
                write!(
                    f,
                    "never a handshake and {receiver} received nothing from {sender}: "
                )?;
                match firewall_closed {
                    Some(fw) => write!(f, "{receiver}: UDP {port} not open in {fw}"),
                    None => write!(
                        f,
                        "UDP {port} blocked on the way into {receiver} or {sender}'s endpoint for it is wrong ({}); run `tcpdump -n udp port {port}` on {receiver}",
                        endpoint.as_deref().unwrap_or("no endpoint")
                    ),
                }
            }
            Self::EndpointWrong {
                on,
                peer,
                live,
                expected,
            } => write!(
                f,
                "endpoint wrong: {on} sends to {peer} at {}, expected {expected}",
                live.as_deref().unwrap_or("(none)")
            ),
            Self::NatNoEndpoint {
                public,
                nat,
                keepalive,
            } => {
                write!(f, "{public} has learned no endpoint for NAT peer {nat}: ")?;
                match keepalive {
                    None => write!(
                        f,
                        "PersistentKeepalive is missing on {nat} towards {public}"
                    ),
                    Some(_) => write!(
                        f,
                        "{nat} never initiated a handshake (interface down or UDP egress blocked on {nat})"
                    ),
                }
            }
            Self::StaleHandshake { on, peer, age } => {
                write!(
                    f,
                    "{on}: latest handshake with {peer} was {age} s ago (> 180 s)"
                )
            }
            Self::AllowedIpsMismatch {
                on,
                peer,
                live,
                expected,
            } => write!(
                f,
                "AllowedIPs mismatch on {on} for {peer}: live [{}], expected [{}]",
                list(live),
                list(expected)
            ),
            Self::RoutesMissing { on, peer, missing } => write!(
                f,
                "routes missing on {on}: no route through the interface for {peer}'s AllowedIPs [{}] (compare `ip route show table all` with AllowedIPs)",
                list(missing)
            ),
            Self::Mtu {
                from,
                to,
                size,
                detail,
            } if detail.starts_with("message too long") => write!(
                f,
                "MTU: {from} cannot send {size}-byte DF packets to {to} ({detail}): the live interface MTU is below the configured one; re-run apply or lower mtu in the inventory"
            ),
            Self::Mtu {
                from,
                to,
                size,
                detail,
            } => write!(
                f,
                "MTU: {size}-byte packets with DF from {from} to {to} fail ({detail}) while small ones pass; lower MTU in the [Interface] section"
            ),
            Self::RelayLegDown { node, relay, age } => match age {
                None => write!(f, "relay leg {node} ↔ {relay} never had a handshake"),
                Some(age) => write!(
                    f,
                    "relay leg {node} ↔ {relay}: latest handshake {age} s ago (> 180 s)"
                ),
            },
            Self::HubDown { hub, spokes } => write!(
                f,
                "hub {hub} is down (no probe output): its {spokes} spokes reach the other sites through it; start it, or list another hub first"
            ),
            Self::ForwardingOff { node } => {
                write!(f, "{node} is a transit node but net.ipv4.ip_forward is 0")
            }
            Self::PingBlocked {
                from,
                to,
                filtered_by: Some(why),
            } => write!(
                f,
                "tunnel {from} → {to} is up but ping gets no reply: {why}"
            ),
            Self::PingBlocked { from, to, .. } => write!(
                f,
                "tunnel {from} → {to} is up but ping gets no reply: ICMP or mesh traffic filtered on the interface"
            ),
            Self::AclOpen {
                from,
                to,
                addr,
                port,
            } => write!(
                f,
                "mesh ACL not enforced: TCP {from} → {to} ({addr} port {port}) connected, but no rule lets {from} in on that port (`meshup plan` shows what {to} lacks)"
            ),
            Self::TcpBlocked {
                from,
                to,
                addr,
                port,
                result,
                filtered_by,
            } => write!(
                f,
                "TCP {from} → {to} ({addr} port {port}): {result} while ping passes: {}",
                filtered_by
                    .as_deref()
                    .unwrap_or("something on the way filters TCP but not ICMP")
            ),
            Self::Ipv6Fails { from, to } => {
                write!(
                    f,
                    "IPv6 mesh ping {from} → {to} fails while IPv4 works (check address6 and /128 AllowedIPs)"
                )
            }
            Self::ProbeFails {
                from,
                router,
                address,
            } => write!(
                f,
                "{from} cannot reach probe {address} behind {router} (check {router}'s subnets in AllowedIPs, forwarding, and the return route)"
            ),
        }
    }
}

//! Diagnoses: what the evidence says is wrong, in the guide's terms.
use std::fmt;

use serde::Serialize;

/// One finding about a node or a pair, with the evidence that led to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Diagnosis {
    /// No probe output from the host (SSH failed, script cut off, not our output).
    HostUnreachable {
        /// The host.
        node: String,
        /// What the runner or parser reported.
        error: String,
    },
    /// The WireGuard interface is missing or `wg show` failed.
    InterfaceDown {
        /// The host.
        node: String,
        /// What `wg`/`ip` printed.
        error: String,
    },
    /// A node's live public key is not the one meshup expects.
    KeyDrift {
        /// The node whose key drifted.
        node: String,
        /// Live key.
        live: String,
        /// Expected key.
        expected: String,
    },
    /// A node's entry for a peer carries another key than the one the peer's interface runs.
    PeerKeyDrift {
        /// The node holding the entry.
        on: String,
        /// The peer the entry is meant for.
        peer: String,
        /// Key in the entry.
        entry_key: String,
        /// Key the peer's interface runs.
        live_key: String,
    },
    /// The two sides of a pair hold different preshared keys for each other, or only one
    /// holds one (compared by digest prefixes the hosts computed; no key leaves a host).
    PskMismatch {
        /// One side (the name that sorts first).
        a: String,
        /// The other side.
        b: String,
        /// The side that uses a preshared key when the other uses none.
        #[serde(skip_serializing_if = "Option::is_none")]
        only: Option<String>,
        /// The sides whose interface does not run the preshared key in their key file.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        live_not_file: Vec<String>,
        /// The two key files agree (only a reload of the live interface is missing).
        files_agree: bool,
    },
    /// Handshakes happened before, but during the probe the receiver got nothing from the
    /// sender while the sender kept sending: UDP is dropped on the way into the receiver.
    UdpBlocked {
        /// The side that received nothing.
        receiver: String,
        /// The side that sent.
        sender: String,
        /// The receiver's UDP port.
        port: u16,
        /// What the receiver's firewall facts say blocks the port, when they do.
        firewall_closed: Option<String>,
        /// Age of the receiver's latest handshake with the sender, seconds.
        handshake_age: Option<u64>,
    },
    /// Like [`Diagnosis::UdpBlocked`], but the receiver took in other peers' packets
    /// during the probe: its port works, and only this sender's packets are refused
    /// (a session the receiver no longer has, e.g. after crossed handshakes).
    SessionStuck {
        /// The side that accepted nothing from the sender.
        receiver: String,
        /// The side that sent.
        sender: String,
        /// Age of the receiver's latest handshake with the sender, seconds.
        handshake_age: Option<u64>,
    },
    /// A NAT node's entry for a public peer has no PersistentKeepalive.
    NatKeepaliveMissing {
        /// The NAT node.
        nat: String,
        /// The public peer.
        public: String,
        /// Keepalive the inventory asks for.
        expected: u16,
        /// The NAT node had a handshake with the peer before the probe's own pings.
        initiated: Option<bool>,
    },
    /// The live interface MTU differs from the inventory's.
    MtuDrift {
        /// The node.
        node: String,
        /// Live MTU.
        live: u32,
        /// MTU from the inventory, or the one most other nodes run.
        expected: u32,
        /// `expected` comes from the inventory (else from the other nodes).
        from_inventory: bool,
    },
    /// A node has no peer entry for another node (or its relay).
    PeerMissing {
        /// The node lacking the entry.
        on: String,
        /// The peer it lacks.
        peer: String,
    },
    /// No handshake ever and the receiver got nothing: UDP blocked or endpoint wrong.
    NoHandshake {
        /// The side that received nothing.
        receiver: String,
        /// The side that sent.
        sender: String,
        /// The receiver's UDP port.
        port: u16,
        /// "not open in <firewall>" when the firewall facts say so.
        firewall_closed: Option<String>,
        /// The sender's live endpoint for the receiver.
        endpoint: Option<String>,
    },
    /// A peer entry's endpoint differs from the expected one.
    EndpointWrong {
        /// The node holding the entry.
        on: String,
        /// The peer the entry points at.
        peer: String,
        /// Live endpoint (`None` = no endpoint set or learned).
        live: Option<String>,
        /// Expected endpoint.
        expected: String,
    },
    /// A public node has learned no endpoint for a NAT peer.
    NatNoEndpoint {
        /// The public node.
        public: String,
        /// The NAT node.
        nat: String,
        /// The NAT node's live keepalive towards the public node.
        keepalive: Option<u16>,
    },
    /// The latest handshake is older than 180 s.
    StaleHandshake {
        /// The node reporting it.
        on: String,
        /// The peer.
        peer: String,
        /// Age in seconds.
        age: u64,
    },
    /// Live AllowedIPs differ from the expected ones on one side.
    AllowedIpsMismatch {
        /// The node holding the entry.
        on: String,
        /// The peer the entry points at.
        peer: String,
        /// Live AllowedIPs.
        live: Vec<String>,
        /// Expected AllowedIPs.
        expected: Vec<String>,
    },
    /// AllowedIPs with no route through the interface.
    RoutesMissing {
        /// The node lacking routes.
        on: String,
        /// The peer whose AllowedIPs are not routed.
        peer: String,
        /// The unrouted AllowedIPs.
        missing: Vec<String>,
    },
    /// Large DF packets fail while small ones pass.
    Mtu {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// Packet size that failed.
        size: u16,
        /// What ping said (`no reply`, `message too long, mtu=1420`…).
        detail: String,
    },
    /// One leg of a relayed pair has no recent handshake.
    RelayLegDown {
        /// The NAT node.
        node: String,
        /// The relay.
        relay: String,
        /// Handshake age, `None` = never.
        age: Option<u64>,
    },
    /// A hub of a hub topology gave no output: the spokes that reach other sites (or
    /// NAT site members) through it are cut off from them.
    HubDown {
        /// The hub.
        hub: String,
        /// How many spokes list it as their hub.
        spokes: usize,
    },
    /// A transit node (relay/subnet router) has IPv4 forwarding off.
    ForwardingOff {
        /// The node.
        node: String,
    },
    /// The tunnel is up but ping fails and nothing above explains it.
    PingBlocked {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// What the firewall facts say drops it on the mesh interface: the host, the
        /// backend and the chain/zone ("gw: nftables: chain inet filter input, policy drop:
        /// nothing accepts iifname wg0").
        #[serde(skip_serializing_if = "Option::is_none")]
        filtered_by: Option<String>,
    },
    /// Ping passes, but a TCP connect to the peer's mesh address does not complete (a
    /// firewall that lets ICMP echo in and drops or rejects the rest).
    TcpBlocked {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// The receiver's address connected to.
        addr: String,
        /// The TCP port of the check (a listener verify started on the receiver).
        port: u16,
        /// `timeout`, `refused` or `error <reason>`.
        result: String,
        /// What the receiver's firewall facts say drops it.
        #[serde(skip_serializing_if = "Option::is_none")]
        filtered_by: Option<String>,
    },
    /// A TCP connect the mesh ACL should drop completed: the receiver does not enforce
    /// its rules (its ACL table is missing or changed).
    AclOpen {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// The receiver's address connected to.
        addr: String,
        /// The port no rule opens to the sender.
        port: u16,
    },
    /// IPv4 works but the IPv6 mesh address does not answer.
    Ipv6Fails {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
    },
    /// A probe address behind a subnet router does not answer.
    ProbeFails {
        /// Sender.
        from: String,
        /// The subnet router.
        router: String,
        /// Probe address.
        address: String,
    },
}

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

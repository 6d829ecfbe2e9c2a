//! Diagnoses: what the evidence says is wrong, in the guide's terms.
use serde::Serialize;

mod text;

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

//! Parser for the host-redacted `wg show <if> dump`.
use serde::Serialize;

/// The interface line of a redacted dump (the private key column is never kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WgInterface {
    /// The interface's live public key.
    pub public_key: String,
    /// Live UDP listen port.
    pub listen_port: Option<u16>,
    /// The private key column arrived as `(redacted)` (anything else is a redaction bug).
    pub redacted: bool,
}

/// One peer line of a redacted dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WgPeer {
    /// Peer public key.
    pub public_key: String,
    /// A preshared key is set (the value never leaves the host).
    pub psk_set: bool,
    /// Current endpoint, `None` when none is known yet.
    pub endpoint: Option<String>,
    /// AllowedIPs as listed (kept as text so a malformed entry still shows).
    pub allowed_ips: Vec<String>,
    /// Latest handshake, seconds since the epoch; 0 = never.
    pub latest_handshake: u64,
    /// Bytes received from the peer.
    pub rx: u64,
    /// Bytes sent to the peer.
    pub tx: u64,
    /// PersistentKeepalive in seconds, `None` when off.
    pub keepalive: Option<u16>,
}

/// A parsed dump; lines that fit neither shape are counted, not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WgDump {
    /// The interface line.
    pub interface: Option<WgInterface>,
    /// Peer lines in dump order.
    pub peers: Vec<WgPeer>,
    /// Lines that were neither an interface nor a peer line (error messages included).
    pub other_lines: Vec<String>,
}

impl WgDump {
    /// The peer with `public_key`.
    pub fn peer(&self, public_key: &str) -> Option<&WgPeer> {
        self.peers.iter().find(|p| p.public_key == public_key)
    }
}

fn none_or(s: &str) -> Option<&str> {
    (s != "(none)" && !s.is_empty()).then_some(s)
}

/// Parses the redacted dump text.
pub fn parse(text: &str) -> WgDump {
    let mut dump = WgDump::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            [private, public, port, _fwmark] => {
                dump.interface = Some(WgInterface {
                    public_key: (*public).to_owned(),
                    listen_port: port.parse().ok(),
                    redacted: *private == "(redacted)",
                });
            }
            [public, psk, endpoint, allowed, handshake, rx, tx, keepalive] => {
                dump.peers.push(WgPeer {
                    public_key: (*public).to_owned(),
                    psk_set: *psk != "(none)",
                    endpoint: none_or(endpoint).map(str::to_owned),
                    allowed_ips: none_or(allowed)
                        .map(|a| a.split(',').map(|s| s.trim().to_owned()).collect())
                        .unwrap_or_default(),
                    latest_handshake: handshake.parse().unwrap_or(0),
                    rx: rx.parse().unwrap_or(0),
                    tx: tx.parse().unwrap_or(0),
                    keepalive: keepalive.parse().ok(),
                });
            }
            // A line of another shape could hold anything: keep it only when it has no
            // tab (an error message), never a column that could be a key.
            [single] => dump.other_lines.push((*single).to_owned()),
            _ => dump.other_lines.push("(unparsed dump line)".to_owned()),
        }
    }
    dump
}

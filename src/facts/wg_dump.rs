//! The `wg-dump` fact: the live interface as `wg show <if> dump` reports it, redacted.

use ipnet::IpNet;
use serde::Serialize;

use super::keys::PublicKey;

/// The interface line of the dump (the private key column is never kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WgInterfaceDump {
    /// The interface has a private key set.
    pub private_key_set: bool,
    /// The interface's public key.
    pub public_key: Option<PublicKey>,
    /// The UDP port it listens on (0 when none).
    pub listen_port: u16,
    /// The fwmark, `None` when off.
    pub fwmark: Option<u32>,
}

/// One peer line of the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WgPeerDump {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// A preshared key is set (its value is never transferred).
    pub preshared_key_set: bool,
    /// Current endpoint `host:port`, `None` when not known yet.
    pub endpoint: Option<String>,
    /// Allowed IPs.
    pub allowed_ips: Vec<IpNet>,
    /// Unix time of the latest handshake, `None` when there was none.
    pub latest_handshake: Option<u64>,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Persistent keepalive interval, `None` when off.
    pub persistent_keepalive: Option<u16>,
}

/// The live interface: `None` interface means it is not up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WgDump {
    /// The interface line; `None` when the interface does not exist.
    pub interface: Option<WgInterfaceDump>,
    /// Peers in dump order.
    pub peers: Vec<WgPeerDump>,
}

impl WgDump {
    /// Parses tab-separated dump output (first line: interface, then one line per peer).
    /// Malformed lines are skipped.
    pub fn parse(body: &str) -> WgDump {
        let mut dump = WgDump::default();
        let mut lines = body.lines().filter(|l| !l.trim().is_empty());
        let Some(first) = lines.next() else {
            return dump;
        };
        let cols: Vec<&str> = first.split('\t').collect();
        if cols.len() != 4 {
            return dump;
        }
        dump.interface = Some(WgInterfaceDump {
            private_key_set: cols[0] != "(none)",
            public_key: PublicKey::parse(cols[1]),
            listen_port: cols[2].parse().unwrap_or(0),
            fwmark: parse_fwmark(cols[3]),
        });
        for line in lines {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 8 {
                continue;
            }
            let Some(public_key) = PublicKey::parse(cols[0]) else {
                continue;
            };
            dump.peers.push(WgPeerDump {
                public_key,
                preshared_key_set: cols[1] != "(none)",
                endpoint: Some(cols[2])
                    .filter(|e| *e != "(none)" && !e.is_empty())
                    .map(str::to_string),
                allowed_ips: cols[3]
                    .split(',')
                    .filter_map(|ip| ip.trim().parse().ok())
                    .collect(),
                latest_handshake: cols[4].parse().ok().filter(|t| *t != 0),
                rx_bytes: cols[5].parse().unwrap_or(0),
                tx_bytes: cols[6].parse().unwrap_or(0),
                persistent_keepalive: cols[7].parse().ok().filter(|k| *k != 0),
            });
        }
        dump
    }

    /// The peer with this public key.
    pub fn peer(&self, key: &PublicKey) -> Option<&WgPeerDump> {
        self.peers.iter().find(|p| &p.public_key == key)
    }
}

fn parse_fwmark(text: &str) -> Option<u32> {
    let value = match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => text.parse().ok()?,
    };
    (value != 0).then_some(value)
}

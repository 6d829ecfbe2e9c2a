//! The live interface as `wg show <if> dump` reports it, redacted on the host: the
//! `wg-dump` fact, and what `verify` reads before and after its pings.

use ipnet::IpNet;
use serde::Serialize;

use crate::keys::PublicKey;

/// The interface line of the dump (the private key column is never kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WgInterfaceDump {
    /// The interface has a private key set.
    pub private_key_set: bool,
    /// The interface's public key (`None` when it has none).
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
    /// Parses tab-separated dump output: the interface line has 4 columns, each peer
    /// line 8. Lines of another shape (error messages) and peers without a valid key
    /// are skipped; no column that could hold a secret is kept.
    pub fn parse(body: &str) -> WgDump {
        let mut dump = WgDump::default();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            match line.split('\t').collect::<Vec<_>>()[..] {
                [private, public, port, fwmark] if dump.interface.is_none() => {
                    dump.interface = Some(WgInterfaceDump {
                        private_key_set: private != "(none)",
                        public_key: public.parse().ok(),
                        listen_port: port.parse().unwrap_or(0),
                        fwmark: parse_fwmark(fwmark),
                    });
                }
                [public, psk, endpoint, allowed, handshake, rx, tx, keepalive] => {
                    let Ok(public_key) = public.parse() else {
                        continue;
                    };
                    dump.peers.push(WgPeerDump {
                        public_key,
                        preshared_key_set: psk != "(none)",
                        endpoint: Some(endpoint)
                            .filter(|e| *e != "(none)" && !e.is_empty())
                            .map(str::to_string),
                        allowed_ips: allowed
                            .split(',')
                            .filter_map(|ip| ip.trim().parse().ok())
                            .collect(),
                        latest_handshake: handshake.parse().ok().filter(|t| *t != 0),
                        rx_bytes: rx.parse().unwrap_or(0),
                        tx_bytes: tx.parse().unwrap_or(0),
                        persistent_keepalive: keepalive.parse().ok().filter(|k| *k != 0),
                    });
                }
                _ => {}
            }
        }
        dump
    }

    /// The peer with this public key.
    pub fn peer(&self, key: &PublicKey) -> Option<&WgPeerDump> {
        self.peers.iter().find(|p| &p.public_key == key)
    }

    /// The interface's public key, when the interface is up and has one.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.interface.as_ref()?.public_key
    }
}

fn parse_fwmark(text: &str) -> Option<u32> {
    let value = match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => text.parse().ok()?,
    };
    (value != 0).then_some(value)
}

//! What a host's import scan reported: its WireGuard interfaces and their configs, as
//! parsed from the import script's output (secrets redacted on the host).
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::facts::HostFacts;
use crate::keys::PublicKey;
use crate::scripts::output::{self, Line};

/// One interface of a host as the import script reported it.
#[derive(Debug, Clone, Default)]
pub struct ScannedInterface {
    /// The public key of the config's `PrivateKey`, derived on the host.
    pub conf_public_key: Option<PublicKey>,
    /// The gather's facts for this interface (config and dump redacted on the host).
    pub facts: HostFacts,
}

/// One host as the import script reported it.
#[derive(Debug, Clone, Default)]
pub struct ScannedHost {
    /// The host's own name (`hostname`).
    pub hostname: String,
    /// Its global addresses with their device (for `meshup init`).
    pub addresses: Vec<(String, IpNet)>,
    /// Its distribution: `ID VERSION_ID` of os-release.
    pub os: String,
    /// The firewall that is active: `ufw`, `firewalld`, `nftables` or `none`.
    pub firewall: String,
    /// Its WireGuard interfaces (live or with a config file).
    pub interfaces: BTreeMap<String, ScannedInterface>,
    /// The script printed its last marker.
    pub complete: bool,
}

impl ScannedHost {
    /// Parses the import script's output; a chunk per interface goes to the gather's
    /// own parser.
    pub fn parse(out: &str) -> Result<ScannedHost, String> {
        let mut host = ScannedHost::default();
        let mut header = false;
        let mut current: Option<(String, Option<PublicKey>, String)> = None;
        let finish = |host: &mut ScannedHost, cur: Option<(String, Option<PublicKey>, String)>| {
            if let Some((name, key, text)) = cur {
                let facts = crate::facts::parse(&text).unwrap_or_default();
                host.interfaces.insert(
                    name,
                    ScannedInterface {
                        conf_public_key: key,
                        facts,
                    },
                );
            }
        };
        for raw in out.lines() {
            match output::lines(raw).next() {
                Some(Line::Marker { kind: "import", .. }) => header = true,
                Some(Line::Marker {
                    kind: "hostname",
                    value,
                }) if current.is_none() => host.hostname = value.trim().to_string(),
                Some(Line::Marker {
                    kind: "addr",
                    value,
                }) if current.is_none() => {
                    if let Some((dev, addr)) = value.split_once(' ')
                        && let Ok(net) = addr.trim().parse::<IpNet>()
                    {
                        host.addresses.push((dev.to_string(), net));
                    }
                }
                Some(Line::Marker { kind: "os", value }) if current.is_none() => {
                    host.os = value.trim().to_string();
                }
                Some(Line::Marker {
                    kind: "firewall",
                    value,
                }) if current.is_none() => host.firewall = value.trim().to_string(),
                Some(Line::Marker {
                    kind: "iface",
                    value,
                }) => {
                    finish(&mut host, current.take());
                    current = Some((value.to_string(), None, String::new()));
                }
                Some(Line::Marker {
                    kind: "pubkey",
                    value,
                }) if current.as_ref().is_some_and(|c| c.2.is_empty()) => {
                    if let Some(c) = current.as_mut() {
                        c.1 = PublicKey::from_str(value.trim()).ok();
                    }
                }
                Some(Line::Marker {
                    kind: "import-done",
                    ..
                }) => {
                    finish(&mut host, current.take());
                    host.complete = true;
                }
                _ => {
                    if let Some(c) = current.as_mut() {
                        c.2.push_str(raw);
                        c.2.push('\n');
                    }
                }
            }
        }
        if !header {
            return Err(format!(
                "not meshup import output (starts with {:?})",
                out.chars().take(80).collect::<String>()
            ));
        }
        finish(&mut host, current.take());
        Ok(host)
    }
}

/// A `[Peer]` of a wg-quick config, as far as the inventory can use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfPeer {
    /// The `[Peer]` line (1-based).
    pub line: usize,
    /// The name of a `# Peer: NAME` comment just above it.
    pub name: Option<String>,
    /// `PublicKey`.
    pub public_key: Option<PublicKey>,
    /// A `PresharedKey` line is there (its value never is).
    pub preshared_key: bool,
    /// `Endpoint` as written (a name stays a name), with its line.
    pub endpoint: Option<(String, usize)>,
    /// `AllowedIPs` entries with their line.
    pub allowed_ips: Vec<(IpNet, usize)>,
    /// `PersistentKeepalive`.
    pub keepalive: Option<u16>,
}

/// A wg-quick config file (redacted on the host), parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgConf {
    /// `Address` entries (with their prefix).
    pub addresses: Vec<IpNet>,
    /// `ListenPort`.
    pub listen_port: Option<u16>,
    /// `MTU`.
    pub mtu: Option<u16>,
    /// The peers in file order.
    pub peers: Vec<ConfPeer>,
    /// Lines meshup's inventory has no place for: (line, what).
    pub unsupported: Vec<(usize, String)>,
}

impl WgConf {
    /// Parses the config text. Values that do not parse are reported as unsupported
    /// lines rather than dropped.
    pub fn parse(text: &str) -> WgConf {
        let mut conf = WgConf::default();
        let mut in_peer = false;
        let mut pending_name: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(name) = comment.trim().strip_prefix("Peer:") {
                    pending_name = name.split_whitespace().next().map(str::to_string);
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                in_peer = line.eq_ignore_ascii_case("[peer]");
                if in_peer {
                    conf.peers.push(ConfPeer {
                        line: n,
                        name: pending_name.take(),
                        ..ConfPeer::default()
                    });
                } else if !line.eq_ignore_ascii_case("[interface]") {
                    conf.unsupported
                        .push((n, format!("unknown section {line}")));
                }
                pending_name = None;
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                conf.unsupported
                    .push((n, format!("unreadable line {line:?}")));
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.split('#').next().unwrap_or("").trim();
            let mut bad = |what: &str| conf.unsupported.push((n, what.to_string()));
            match (in_peer, key.as_str()) {
                (false, "address") => {
                    for a in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                        match a
                            .parse::<IpNet>()
                            .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                        {
                            Ok(net) => conf.addresses.push(net),
                            Err(_) => bad(&format!("Address {a} is not an IP address")),
                        }
                    }
                }
                (false, "listenport") => match value.parse() {
                    Ok(p) => conf.listen_port = Some(p),
                    Err(_) => bad(&format!("ListenPort {value} is not a port")),
                },
                (false, "mtu") => match value.parse() {
                    Ok(m) => conf.mtu = Some(m),
                    Err(_) => bad(&format!("MTU {value} is not a number")),
                },
                (false, "privatekey") => {}
                (false, "saveconfig") if value.eq_ignore_ascii_case("false") => {}
                (false, k) => bad(&format!(
                    "{} = {value}: meshup's inventory has no such setting",
                    interface_key_name(k)
                )),
                (true, k) => {
                    let Some(peer) = conf.peers.last_mut() else {
                        continue;
                    };
                    match k {
                        "publickey" => match PublicKey::from_str(value) {
                            Ok(key) => peer.public_key = Some(key),
                            Err(_) => bad(&format!("PublicKey {value} is not a WireGuard key")),
                        },
                        "presharedkey" => peer.preshared_key = true,
                        "endpoint" => peer.endpoint = Some((value.to_string(), n)),
                        "allowedips" => {
                            for a in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                                match a.parse::<IpNet>() {
                                    Ok(net) => peer.allowed_ips.push((net, n)),
                                    Err(_) => bad(&format!("AllowedIPs {a} is not a network")),
                                }
                            }
                        }
                        "persistentkeepalive" => match value {
                            "off" => {}
                            v => match v.parse() {
                                Ok(0) => {}
                                Ok(k) => peer.keepalive = Some(k),
                                Err(_) => bad(&format!("PersistentKeepalive {v} is not a number")),
                            },
                        },
                        other => bad(&format!("peer setting {other} is not supported")),
                    }
                }
            }
        }
        conf
    }
}

pub(super) fn interface_key_name(lower: &str) -> &str {
    match lower {
        "postup" => "PostUp",
        "postdown" => "PostDown",
        "preup" => "PreUp",
        "predown" => "PreDown",
        "table" => "Table",
        "dns" => "DNS",
        "fwmark" => "FwMark",
        "saveconfig" => "SaveConfig",
        other => other,
    }
}

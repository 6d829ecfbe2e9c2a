//! `meshup import`, the pure part: a hand-built mesh as the hosts report it (the import
//! script's output, secrets redacted on the host) turned into an inventory that
//! reproduces it, plus a report of what the inventory cannot express. No I/O here.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::facts::HostFacts;
use crate::keys::PublicKey;
use crate::scripts::output::{self, Line};

/// The import script: the gather as one function, run once per interface.
pub const IMPORT_SH: &str = include_str!("../scripts/import.sh");

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

fn interface_key_name(lower: &str) -> &str {
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

/// One thing the report says about the imported mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The host (as given on the command line).
    pub host: String,
    /// The file, when the finding comes from one.
    pub file: Option<String>,
    /// Its line (1-based).
    pub line: Option<usize>,
    /// What.
    pub message: String,
    /// The inventory cannot express it: import refuses unless told to keep going.
    pub unsupported: bool,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.host)?;
        if let Some(file) = &self.file {
            write!(f, ": {file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// A host to import: how it was reached and what it reported.
#[derive(Debug, Clone)]
pub struct ImportHost {
    /// The SSH target as given (`--hosts` entry).
    pub target: String,
    /// The SSH user it was reached as, when not root.
    pub user: Option<String>,
    /// The SSH port it was reached on, when not 22 (the inventory's port wins over
    /// ssh_config's, so it must say).
    pub port: Option<u16>,
    /// What the host reported.
    pub scan: ScannedHost,
}

/// The result: the inventory text and the report.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The interface imported.
    pub interface: String,
    /// The inventory (YAML), with unsupported findings as comments at the top.
    pub inventory: String,
    /// Everything worth telling.
    pub findings: Vec<Finding>,
}

impl Imported {
    /// Findings the inventory cannot express.
    pub fn unsupported(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.unsupported)
    }
}

/// The interface to import: the one asked for, else the only one every host has, else
/// wg0 when every host has it.
pub fn pick_interface(hosts: &[ImportHost], asked: Option<&str>) -> Result<String, String> {
    if let Some(name) = asked {
        return Ok(name.to_string());
    }
    let mut common: Option<BTreeSet<&str>> = None;
    for h in hosts {
        let names: BTreeSet<&str> = h.scan.interfaces.keys().map(String::as_str).collect();
        common = Some(match common {
            None => names,
            Some(c) => c.intersection(&names).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    match common.len() {
        0 => Err("no WireGuard interface is on every host (`wg show interfaces` and /etc/wireguard/*.conf were read)".into()),
        1 => Ok(common.into_iter().next().unwrap_or_default().to_string()),
        _ if common.contains("wg0") => Ok("wg0".into()),
        _ => Err(format!(
            "several WireGuard interfaces are on every host ({}): choose one with --interface",
            common.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A node name from free text (a `# Peer:` name, a hostname): lower case, other
/// characters as `-`, starting with a letter or digit.
pub fn node_name(text: &str) -> Option<String> {
    let lowered: String = text
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = lowered
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .trim_end_matches(['-', '.']);
    (!name.is_empty() && name.len() <= 63).then(|| name.to_string())
}

/// The most frequent value (the first seen among equals).
fn most_common<T: Ord + Clone>(values: &[T]) -> Option<T> {
    let mut counts: BTreeMap<&T, (usize, usize)> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        let e = counts.entry(v).or_insert((0, i));
        e.0 += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
        .map(|(v, _)| v.clone())
}

/// The smallest network holding every address, at most as long as `declared` allows.
fn network_of(addresses: &[IpAddr], declared: Option<IpNet>) -> Option<IpNet> {
    let first = *addresses.first()?;
    if let Some(net) = declared
        && net.prefix_len() < net.max_prefix_len()
        && addresses.iter().all(|a| net.contains(a))
    {
        return Some(net.trunc());
    }
    let max = if first.is_ipv4() { 32 } else { 128 };
    (0..=max).rev().find_map(|len| {
        let net = IpNet::new(first, len).ok()?.trunc();
        (len < max && addresses.iter().all(|a| net.contains(a))).then_some(net)
    })
}

/// A node name for each host: `preferred` where given, else its hostname, else its SSH
/// target, made unique with a `-2`, `-3`… suffix.
pub fn unique_names(hosts: &[&ImportHost], preferred: &[Option<String>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let base = preferred
            .get(i)
            .cloned()
            .flatten()
            .or_else(|| node_name(&h.scan.hostname))
            .or_else(|| node_name(&h.target))
            .unwrap_or_else(|| format!("node-{}", i + 1));
        let mut name = base.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{base}-{k}");
            k += 1;
        }
        names.push(name);
    }
    names
}

/// Builds the inventory of `interface` across `hosts`; `ssh_config` is the file the
/// hosts were reached through (`-F`), which the inventory then names.
pub fn build(hosts: &[ImportHost], interface: &str, ssh_config: Option<&str>) -> Imported {
    let file = format!("/etc/wireguard/{interface}.conf");
    let mut findings = Vec::new();
    let mut note = |host: &str, line: Option<usize>, message: String, unsupported: bool| {
        findings.push(Finding {
            host: host.to_string(),
            file: line.map(|_| file.clone()),
            line,
            message,
            unsupported,
        });
    };

    // Each host's interface: config, key, address.
    struct Node<'a> {
        host: &'a ImportHost,
        conf: WgConf,
        facts: &'a HostFacts,
        key: Option<PublicKey>,
        v4: Option<IpNet>,
        v6: Option<IpNet>,
    }
    let mut nodes: Vec<Node<'_>> = Vec::new();
    for h in hosts {
        let Some(iface) = h.scan.interfaces.get(interface) else {
            note(
                &h.target,
                None,
                format!("has no interface {interface}"),
                true,
            );
            continue;
        };
        let facts = &iface.facts;
        if !facts.config.present {
            note(
                &h.target,
                None,
                format!(
                    "{file} does not exist: meshup manages {interface} through its wg-quick config"
                ),
                true,
            );
        }
        let conf = WgConf::parse(&facts.config.text);
        for (line, what) in &conf.unsupported {
            note(&h.target, Some(*line), what.clone(), true);
        }
        let key = facts
            .wg_dump
            .interface
            .as_ref()
            .and_then(|i| i.public_key)
            .or(iface.conf_public_key)
            .or(facts.keys.derived_public_key);
        if key.is_none() {
            note(
                &h.target,
                None,
                "its private key could not be found".into(),
                true,
            );
        }
        let v4 = conf.addresses.iter().copied().find(|a| a.addr().is_ipv4());
        let v6 = conf.addresses.iter().copied().find(|a| a.addr().is_ipv6());
        if v4.is_none() {
            note(
                &h.target,
                None,
                "no IPv4 Address in the [Interface] section".into(),
                true,
            );
        }
        nodes.push(Node {
            host: h,
            conf,
            facts,
            key,
            v4,
            v6,
        });
    }
    let by_key: BTreeMap<PublicKey, usize> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.key.map(|k| (k, i)))
        .collect();

    // Names: what the others call it in `# Peer:` comments, else its hostname.
    let preferred: Vec<Option<String>> = nodes
        .iter()
        .map(|n| {
            let called: Vec<String> = nodes
                .iter()
                .flat_map(|o| &o.conf.peers)
                .filter(|p| p.public_key.is_some() && p.public_key == n.key)
                .filter_map(|p| p.name.as_deref().and_then(node_name))
                .collect();
            most_common(&called)
        })
        .collect();
    let hosts_of: Vec<&ImportHost> = nodes.iter().map(|n| n.host).collect();
    let names = unique_names(&hosts_of, &preferred);

    // What each node's peers say about it.
    let mut endpoints: Vec<Vec<String>> = vec![Vec::new(); nodes.len()];
    let mut subnets: Vec<BTreeSet<IpNet>> = vec![BTreeSet::new(); nodes.len()];
    let mut keepalives: Vec<u16> = Vec::new();
    let mesh_addrs: BTreeSet<IpAddr> = nodes
        .iter()
        .flat_map(|n| [n.v4, n.v6])
        .flatten()
        .map(|a| a.addr())
        .collect();
    let mut pairs_with_psk = 0usize;
    let mut pairs = 0usize;
    for (i, n) in nodes.iter().enumerate() {
        let mut listed = BTreeSet::new();
        for p in &n.conf.peers {
            let Some(j) = p.public_key.and_then(|k| by_key.get(&k).copied()) else {
                note(
                    &n.host.target,
                    Some(p.line),
                    format!(
                        "peer {} is not one of the imported hosts",
                        p.name
                            .clone()
                            .or(p.public_key.map(|k| k.to_string()))
                            .unwrap_or_default()
                    ),
                    true,
                );
                continue;
            };
            listed.insert(j);
            if let Some((e, _)) = &p.endpoint {
                endpoints[j].push(e.clone());
            }
            keepalives.extend(p.keepalive);
            for (net, line) in &p.allowed_ips {
                if net.prefix_len() == 0 {
                    note(
                        &n.host.target,
                        Some(*line),
                        format!(
                            "AllowedIPs {net} sends all traffic through {} (an exit node): the inventory cannot express it",
                            names[j]
                        ),
                        true,
                    );
                } else if net.prefix_len() == net.max_prefix_len()
                    && mesh_addrs.contains(&net.addr())
                {
                    // The peer's own address, or a node relayed through it.
                } else {
                    subnets[j].insert(net.trunc());
                }
            }
            if j > i {
                pairs += 1;
                let back = nodes[j].conf.peers.iter().find(|q| q.public_key == n.key);
                let digest = |facts: &HostFacts, key: Option<PublicKey>| {
                    key.and_then(|k| facts.keys.live_psk_digests.get(&k).cloned().flatten())
                };
                let here = digest(n.facts, nodes[j].key);
                let there = digest(nodes[j].facts, n.key);
                let configured = p.preshared_key && back.is_some_and(|q| q.preshared_key);
                match (here, there) {
                    (Some(a), Some(b)) if a == b => pairs_with_psk += 1,
                    (Some(_), Some(_)) => note(
                        &n.host.target,
                        Some(p.line),
                        format!(
                            "{} and {} hold different preshared keys for their pair: meshup makes a new one",
                            names[i], names[j]
                        ),
                        false,
                    ),
                    (None, None) if configured => pairs_with_psk += 1,
                    _ => {}
                }
            }
        }
        for (j, other) in names.iter().enumerate() {
            if j != i && !listed.contains(&j) {
                note(
                    &n.host.target,
                    None,
                    format!(
                        "does not list {other} as a peer: meshup adds it (every node peers with every other)"
                    ),
                    false,
                );
            }
        }
    }

    // Mesh-wide settings: the common value, per node where a node differs.
    let ports: Vec<u16> = nodes.iter().filter_map(|n| n.conf.listen_port).collect();
    let port = most_common(&ports);
    let mtus: Vec<u16> = nodes.iter().filter_map(|n| n.conf.mtu).collect();
    let mtu = (mtus.len() == nodes.len())
        .then(|| most_common(&mtus))
        .flatten();
    let keepalive = most_common(&keepalives);
    let v4: Vec<IpAddr> = nodes
        .iter()
        .filter_map(|n| n.v4)
        .map(|a| a.addr())
        .collect();
    let network = network_of(&v4, nodes.iter().find_map(|n| n.v4));
    let v6: Vec<IpAddr> = nodes
        .iter()
        .filter_map(|n| n.v6)
        .map(|a| a.addr())
        .collect();
    let network6 = network_of(&v6, nodes.iter().find_map(|n| n.v6));
    let psk = pairs > 0 && pairs_with_psk * 2 >= pairs;
    let partial = if psk && pairs_with_psk < pairs {
        Some(format!(
            "{pairs_with_psk} of {pairs} pairs have a preshared key: meshup gives the others one"
        ))
    } else if !psk && pairs_with_psk > 0 {
        Some(format!(
            "only {pairs_with_psk} of {pairs} pairs have a preshared key: preshared_keys stays off, meshup removes them"
        ))
    } else {
        None
    };
    if let (Some(message), Some(first)) = (partial, nodes.first()) {
        note(&first.host.target, None, message, false);
    }

    let chosen: Vec<Option<String>> = endpoints.iter().map(|e| most_common(e)).collect();
    for (i, e) in chosen.iter().enumerate() {
        if let Some(e) = e
            && endpoints[i].iter().any(|o| o != e)
        {
            note(
                &nodes[i].host.target,
                None,
                format!(
                    "its peers name different endpoints for it ({}); the inventory keeps {e}",
                    endpoints[i].join(", ")
                ),
                false,
            );
        }
    }

    let mut y = String::new();
    let targets: Vec<&str> = hosts.iter().map(|h| h.target.as_str()).collect();
    let _ = writeln!(
        y,
        "# Imported by `meshup import` from {} (interface {interface}).",
        targets.join(", ")
    );
    let kept: Vec<&Finding> = findings.iter().filter(|f| f.unsupported).collect();
    if !kept.is_empty() {
        y.push_str(
            "# Not expressed by this inventory (kept with --keep-unsupported; apply drops it):\n",
        );
        for f in kept {
            let _ = writeln!(y, "#   {f}");
        }
    }
    y.push_str("mesh:\n");
    if interface != "wg0" {
        let _ = writeln!(y, "  interface: {}", quote(interface));
    }
    if let Some(net) = network {
        let _ = writeln!(y, "  network: {net}");
    }
    if let Some(net) = network6 {
        let _ = writeln!(y, "  network6: {}", quote(&net.to_string()));
    }
    if let Some(p) = port {
        let _ = writeln!(y, "  listen_port: {p}");
    }
    if let Some(k) = keepalive {
        let _ = writeln!(y, "  persistent_keepalive: {k}");
    }
    if let Some(m) = mtu {
        let _ = writeln!(y, "  mtu: {m}");
    }
    let _ = writeln!(y, "  preshared_keys: {psk}");
    y.push_str(&ssh_config_yaml(ssh_config));
    y.push_str("\nnodes:\n");
    for (i, n) in nodes.iter().enumerate() {
        let _ = writeln!(y, "  - name: {}", names[i]);
        if let Some(a) = n.v4 {
            let _ = writeln!(y, "    address: {}", a.addr());
        }
        if let Some(a) = n.v6 {
            let _ = writeln!(y, "    address6: {}", quote(&a.addr().to_string()));
        }
        match &chosen[i] {
            Some(e) => {
                let _ = writeln!(y, "    endpoint: {}", quote(e));
            }
            None => y.push_str(
                "    # no endpoint: no host lists one for it (behind NAT, it initiates)\n",
            ),
        }
        if let Some(p) = n.conf.listen_port.filter(|p| Some(*p) != port) {
            let _ = writeln!(y, "    listen_port: {p}");
        }
        if let Some(m) = n.conf.mtu.filter(|m| Some(*m) != mtu) {
            let _ = writeln!(y, "    mtu: {m}");
        }
        if !subnets[i].is_empty() {
            y.push_str("    subnets:\n");
            for s in &subnets[i] {
                let _ = writeln!(y, "      - {}", quote(&s.to_string()));
            }
        }
        y.push_str(&node_ssh(n.host, &names[i]));
    }
    Imported {
        interface: interface.to_string(),
        inventory: y,
        findings,
    }
}

/// A node's `ssh:` block: how it was reached, when that is not its name on port 22 as
/// root.
pub fn node_ssh(host: &ImportHost, name: &str) -> String {
    let mut y = String::new();
    if host.target != name || host.user.is_some() || host.port.is_some() {
        y.push_str("    ssh:\n");
        let _ = writeln!(y, "      host: {}", quote(&host.target));
        if let Some(u) = &host.user {
            let _ = writeln!(y, "      user: {}", quote(u));
        }
        if let Some(p) = host.port {
            let _ = writeln!(y, "      port: {p}");
        }
    }
    y
}

/// The top of an inventory's `ssh:` section naming the ssh_config the hosts were
/// reached through.
pub fn ssh_config_yaml(ssh_config: Option<&str>) -> String {
    ssh_config
        .map(|c| format!("\nssh:\n  ssh_config: {}\n", quote(c)))
        .unwrap_or_default()
}

/// A YAML double-quoted scalar.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c) & 0xff);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;

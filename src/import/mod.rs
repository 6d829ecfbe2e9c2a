//! `meshup import`, the pure part: a hand-built mesh as the hosts report it (the import
//! script's output, secrets redacted on the host) turned into an inventory that
//! reproduces it, plus a report of what the inventory cannot express. No I/O here.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::facts::HostFacts;
use crate::keys::PublicKey;

mod naming;
mod scan;

use naming::{most_common, network_of};
pub use naming::{node_name, node_ssh, pick_interface, quote, ssh_config_yaml, unique_names};
pub use scan::{ConfPeer, ScannedHost, ScannedInterface, WgConf};

/// The import script: the gather as one function, run once per interface.
pub const IMPORT_SH: &str = include_str!("../scripts/import.sh");

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

#[cfg(test)]
mod tests;

//! Naming and YAML helpers of the imported inventory: which interface, node names, the
//! network the addresses share, and the `ssh:` text of a node.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ImportHost;

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
pub(super) fn most_common<T: Ord + Clone>(values: &[T]) -> Option<T> {
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
pub(super) fn network_of(addresses: &[IpAddr], declared: Option<IpNet>) -> Option<IpNet> {
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

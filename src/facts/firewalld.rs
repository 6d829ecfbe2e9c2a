//! The `firewalld` facts: `firewall-cmd --state` and `--list-all` of the default zone.

use serde::Serialize;

use super::port_spec::port_in_spec;

/// firewalld's state and its default zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldFacts {
    /// firewall-cmd is installed.
    pub installed: bool,
    /// `firewall-cmd --state` printed `running`.
    pub running: bool,
    /// The default zone's `--list-all`, when running.
    pub zone: Option<FirewalldZone>,
    /// Every runtime zone (`--list-all-zones`), when running.
    pub zones: Vec<FirewalldZone>,
    /// What gather read about meshup's own zone and policy.
    pub meshup: FirewalldMeshup,
}

/// meshup's own firewalld objects as gather saw them: the runtime policies and the
/// permanent files of its zone and policy (`file=NAME XML` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldMeshup {
    /// The default zone (`--get-default-zone`).
    pub default_zone: Option<String>,
    /// Runtime policy names (`--get-policies`).
    pub policies: Vec<String>,
    /// Permanent files found: (file name, its XML on one line).
    pub files: Vec<(String, String)>,
}

impl FirewalldMeshup {
    /// Parses the `firewalld-meshup` section.
    pub fn parse(body: &str) -> FirewalldMeshup {
        let mut out = FirewalldMeshup::default();
        for line in body.lines() {
            if let Some(v) = line.strip_prefix("default=") {
                out.default_zone = Some(v.trim().to_string()).filter(|v| !v.is_empty());
            } else if let Some(v) = line.strip_prefix("policies=") {
                out.policies = v.split_whitespace().map(str::to_string).collect();
            } else if let Some(v) = line.strip_prefix("file=") {
                let (name, xml) = v.split_once(' ').unwrap_or((v, ""));
                out.files.push((name.to_string(), xml.to_string()));
            }
        }
        out
    }

    /// The XML of the permanent file `name`, if gather found it.
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, x)| x.as_str())
    }
}

/// One zone as `firewall-cmd --list-all` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldZone {
    /// Zone name (first line, without `(active)`/`(default)`).
    pub name: String,
    /// `target:` (`default`, `ACCEPT`, `DROP`, `%%REJECT%%`).
    pub target: Option<String>,
    /// `interfaces:`.
    pub interfaces: Vec<String>,
    /// `services:`.
    pub services: Vec<String>,
    /// `ports:` (`51820/udp`, `1000-2000/tcp`).
    pub ports: Vec<String>,
    /// `forward:` (firewalld >= 1.0; `None` when the line is missing).
    pub forward: Option<bool>,
    /// `masquerade:`.
    pub masquerade: Option<bool>,
}

impl FirewalldFacts {
    /// Parses the state line; `running` only for exactly `running`.
    pub fn parse_state(body: &str) -> bool {
        body.lines().any(|l| l.trim() == "running")
    }

    /// Incoming UDP to `port` is open in the default zone.
    pub fn allows_udp(&self, port: u16) -> bool {
        let Some(zone) = &self.zone else {
            return false;
        };
        if zone.target.as_deref() == Some("ACCEPT") {
            return true;
        }
        let by_port = zone.ports.iter().any(|p| match p.split_once('/') {
            Some((ports, "udp")) => port_in_spec(ports, port),
            _ => false,
        });
        // firewalld's bundled `wireguard` service is 51820/udp.
        by_port || (port == 51820 && zone.services.iter().any(|s| s == "wireguard"))
    }

    /// Forwarding for `interface` is allowed: it is in the zone and the zone forwards,
    /// or the zone accepts everything.
    pub fn allows_forward(&self, interface: &str) -> bool {
        let Some(zone) = &self.zone else {
            return false;
        };
        zone.interfaces.iter().any(|i| i == interface)
            && (zone.forward == Some(true) || zone.target.as_deref() == Some("ACCEPT"))
    }
}

impl FirewalldFacts {
    /// The runtime zone named `name`.
    pub fn zone_named(&self, name: &str) -> Option<&FirewalldZone> {
        self.zones.iter().find(|z| z.name == name)
    }

    /// The runtime zone `interface` is bound to, if any.
    pub fn zone_of(&self, interface: &str) -> Option<&FirewalldZone> {
        self.zones
            .iter()
            .find(|z| z.interfaces.iter().any(|i| i == interface))
    }
}

impl FirewalldZone {
    /// Parses `firewall-cmd --list-all-zones` output: one zone per unindented line.
    pub fn parse_all(body: &str) -> Vec<FirewalldZone> {
        let mut zones = Vec::new();
        let mut current = String::new();
        for line in body.lines() {
            if !line.trim().is_empty() && !line.starts_with(char::is_whitespace) {
                zones.extend(FirewalldZone::parse(&current));
                current.clear();
            }
            current.push_str(line);
            current.push('\n');
        }
        zones.extend(FirewalldZone::parse(&current));
        zones
    }

    /// Parses `firewall-cmd --list-all` output.
    pub fn parse(body: &str) -> Option<FirewalldZone> {
        let mut lines = body.lines().filter(|l| !l.trim().is_empty());
        let first = lines.next()?;
        if first.starts_with(char::is_whitespace) || first.contains(':') {
            return None;
        }
        let mut zone = FirewalldZone {
            name: first.split_whitespace().next()?.to_string(),
            ..FirewalldZone::default()
        };
        let words = |v: &str| v.split_whitespace().map(str::to_string).collect();
        let flag = |v: &str| match v.trim() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        for line in lines {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            match key {
                "target" => zone.target = Some(value.trim().to_string()),
                "interfaces" => zone.interfaces = words(value),
                "services" => zone.services = words(value),
                "ports" => zone.ports = words(value),
                "forward" => zone.forward = flag(value),
                "masquerade" => zone.masquerade = flag(value),
                _ => {}
            }
        }
        Some(zone)
    }
}

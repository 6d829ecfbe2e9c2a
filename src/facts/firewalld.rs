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

impl FirewalldZone {
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

//! The firewall facts of every backend together.

use serde::Serialize;

use super::firewalld::FirewalldFacts;
use super::iptables::IptablesFacts;
use super::nftables::NftablesFacts;
use super::ufw::UfwFacts;

/// Every firewall backend's facts; a backend that is not installed has its default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewallFacts {
    /// ufw.
    pub ufw: UfwFacts,
    /// firewalld.
    pub firewalld: FirewalldFacts,
    /// nftables (the whole ruleset, whoever manages it).
    pub nftables: NftablesFacts,
    /// iptables (INPUT and FORWARD).
    pub iptables: IptablesFacts,
}

/// `port` is inside a port spec: `51820`, `51000:52000` or `51000-52000`.
pub fn port_in_spec(spec: &str, port: u16) -> bool {
    let spec = spec.trim();
    let range = spec.split_once(':').or_else(|| spec.split_once('-'));
    match range {
        Some((low, high)) => match (low.parse::<u16>(), high.parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&port),
            _ => false,
        },
        None => spec.parse::<u16>() == Ok(port),
    }
}

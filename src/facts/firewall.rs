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

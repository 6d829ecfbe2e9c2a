//! `mesh.firewall`: whether meshup makes the hosts' firewalls carry mesh traffic.

use std::fmt;
use std::str::FromStr;

/// What meshup does with the firewalls it finds active on the hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FirewallMode {
    /// Default: open the WireGuard port and accept everything arriving on the mesh
    /// interface (and forward to and from it on transit nodes), in every active backend.
    #[default]
    Trust,
    /// Leave every firewall as it is; the plan warns where one would block the mesh,
    /// and rules an earlier `trust` run added are removed.
    None,
}

impl FromStr for FirewallMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trust" => Ok(FirewallMode::Trust),
            "none" => Ok(FirewallMode::None),
            _ => Err(format!(
                "firewall `{s}` is not a mode: `trust` (the default) makes every active \
                 firewall carry mesh traffic, `none` leaves firewalls alone"
            )),
        }
    }
}

impl fmt::Display for FirewallMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FirewallMode::Trust => "trust",
            FirewallMode::None => "none",
        })
    }
}

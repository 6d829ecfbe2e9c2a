//! Where a distribution's firewall services load persistent rules from.
use serde::Deserialize;

use super::template::Fill;

/// Where a distribution's firewall services load persistent rules from. Every path is
/// optional: a persistence command that needs a missing path is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallPaths {
    /// The file the nftables service loads, where meshup appends its `include` line.
    /// Absent when the service already includes every file of `nftables_dir` (Alpine).
    #[serde(default)]
    pub nftables_conf: Option<String>,
    /// The directory meshup writes `meshup.nft` into.
    #[serde(default)]
    pub nftables_dir: Option<String>,
    /// IPv4 rules file restored at boot (`iptables-save` output).
    #[serde(default)]
    pub iptables_rules: Option<String>,
    /// IPv6 rules file restored at boot.
    #[serde(default)]
    pub ip6tables_rules: Option<String>,
    /// A file that exists only when something restores `iptables_rules` at boot (the
    /// iptables-persistent plugin, the iptables-services init script).
    #[serde(default)]
    pub iptables_loader: Option<String>,
    /// The same for IPv6.
    #[serde(default)]
    pub ip6tables_loader: Option<String>,
}

impl FirewallPaths {
    /// Debian's paths; what the firewall methods without a distro use.
    pub fn debian() -> FirewallPaths {
        let s = |v: &str| Some(v.to_string());
        FirewallPaths {
            nftables_conf: s("/etc/nftables.conf"),
            nftables_dir: s("/etc/nftables.d"),
            iptables_rules: s("/etc/iptables/rules.v4"),
            ip6tables_rules: s("/etc/iptables/rules.v6"),
            iptables_loader: s("/usr/share/netfilter-persistent/plugins.d/15-ip4tables"),
            ip6tables_loader: s("/usr/share/netfilter-persistent/plugins.d/25-ip6tables"),
        }
    }

    /// Placeholder values for firewall templates.
    pub(crate) fn fills(&self) -> Vec<(&'static str, Fill<'_>)> {
        [
            ("nft_conf", &self.nftables_conf),
            ("nft_dir", &self.nftables_dir),
            ("ipt_rules", &self.iptables_rules),
            ("ip6t_rules", &self.ip6tables_rules),
            ("ipt_loader", &self.iptables_loader),
            ("ip6t_loader", &self.ip6tables_loader),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_deref().map(|v| (name, Fill::One(v))))
        .collect()
    }

    /// Placeholder names firewall templates may use for these paths.
    pub(crate) const NAMES: [&'static str; 6] = [
        "nft_conf",
        "nft_dir",
        "ipt_rules",
        "ip6t_rules",
        "ipt_loader",
        "ip6t_loader",
    ];

    pub(super) fn merged_over(self, base: &FirewallPaths) -> FirewallPaths {
        FirewallPaths {
            nftables_conf: self.nftables_conf.or_else(|| base.nftables_conf.clone()),
            nftables_dir: self.nftables_dir.or_else(|| base.nftables_dir.clone()),
            iptables_rules: self.iptables_rules.or_else(|| base.iptables_rules.clone()),
            ip6tables_rules: self
                .ip6tables_rules
                .or_else(|| base.ip6tables_rules.clone()),
            iptables_loader: self
                .iptables_loader
                .or_else(|| base.iptables_loader.clone()),
            ip6tables_loader: self
                .ip6tables_loader
                .or_else(|| base.ip6tables_loader.clone()),
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        for p in [
            &self.nftables_conf,
            &self.nftables_dir,
            &self.iptables_rules,
            &self.ip6tables_rules,
            &self.iptables_loader,
            &self.ip6tables_loader,
        ]
        .into_iter()
        .flatten()
        {
            if !super::lock::valid_path(p) {
                return Err(format!(
                    "firewall path {p:?} must be absolute, of A-Z a-z 0-9 / . _ -"
                ));
            }
        }
        Ok(())
    }
}

//! `mesh:`: the interface, the mesh networks and the mesh-wide defaults.

use crate::inventory::spanned::Spanned;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::Validator;
use crate::inventory::error::Span;
use crate::inventory::names::{DomainName, InterfaceName, NodeName, RemotePath};
use crate::inventory::raw::{RawMesh, RawWatchdog};
use crate::inventory::{
    Age, DEFAULT_CONFIG_DIR, DEFAULT_DOMAIN, DEFAULT_INTERFACE, DEFAULT_KEEPALIVE,
    DEFAULT_LISTEN_PORT, DEFAULT_PACKAGE_LOCK_TIMEOUT, DEFAULT_WATCHDOG_INTERVAL, FirewallMode,
    MeshAcl, MeshSettings,
};

/// Mesh settings while being validated: `None` where a value was invalid.
pub(super) struct PartialMesh {
    pub(super) interface: Option<InterfaceName>,
    pub(super) network: Option<Ipv4Net>,
    pub(super) network_span: Span,
    pub(super) network6: Option<Option<Ipv6Net>>,
    pub(super) domain: Option<DomainName>,
    pub(super) hosts_file: bool,
    pub(super) listen_port: Option<u16>,
    pub(super) persistent_keepalive: Option<Option<u16>>,
    pub(super) mtu: Option<Option<u16>>,
    pub(super) preshared_keys: bool,
    pub(super) nat_punching: bool,
    pub(super) config_dir: Option<RemotePath>,
    pub(super) package_lock_timeout: Option<u16>,
    pub(super) key_max_age: Option<Option<Age>>,
    pub(super) firewall: Option<FirewallMode>,
    /// Set once nodes and clients are known (`Validator::acl`).
    pub(super) acl: Option<Option<MeshAcl>>,
    pub(super) watchdog: Option<Option<Age>>,
    pub(super) networks: Option<Vec<crate::inventory::LabelName>>,
    /// Set once nodes are known (`Validator::topology`).
    pub(super) topology: Option<crate::inventory::Topology>,
    pub(super) exit_via: Option<Option<NodeName>>,
    pub(super) exit_via_span: Option<Span>,
    pub(super) mss_clamp: bool,
    pub(super) exit_probe: Option<Option<std::net::SocketAddr>>,
}

impl PartialMesh {
    pub(super) fn complete(self) -> Option<MeshSettings> {
        Some(MeshSettings {
            interface: self.interface?,
            network: self.network?,
            network6: self.network6?,
            domain: self.domain?,
            hosts_file: self.hosts_file,
            listen_port: self.listen_port?,
            persistent_keepalive: self.persistent_keepalive?,
            mtu: self.mtu?,
            preshared_keys: self.preshared_keys,
            nat_punching: self.nat_punching,
            config_dir: self.config_dir?,
            package_lock_timeout: self.package_lock_timeout?,
            key_max_age: self.key_max_age?,
            firewall: self.firewall?,
            acl: self.acl?,
            watchdog: self.watchdog?,
            networks: self.networks?,
            topology: self.topology?,
            exit_via: self.exit_via?,
            mss_clamp: self.mss_clamp,
            exit_probe: self.exit_probe?,
        })
    }
}

impl Validator<'_> {
    pub(super) fn mesh(&mut self, raw: &Spanned<RawMesh>) -> PartialMesh {
        let raw = &raw.value;
        let interface = match &raw.interface {
            Some(value) => self.parse::<InterfaceName>(value, "invalid interface name"),
            None => DEFAULT_INTERFACE.parse().ok(),
        };
        let network_span = self.span(&raw.network);
        let network = self.network4(&raw.network);
        let network6 = match &raw.network6 {
            Some(value) => self.network6(value).map(Some),
            None => Some(None),
        };
        let domain = match &raw.domain {
            Some(value) => self.parse::<DomainName>(value, "invalid domain"),
            None => DEFAULT_DOMAIN.parse().ok(),
        };
        let listen_port = match &raw.listen_port {
            Some(value) => self.int_in(value, 1..=65535, "listen_port"),
            None => Some(DEFAULT_LISTEN_PORT),
        };
        let persistent_keepalive = match &raw.persistent_keepalive {
            Some(value) => self
                .int_in(value, 0..=65535, "persistent_keepalive")
                .map(|k| (k != 0).then_some(k)),
            None => Some(Some(DEFAULT_KEEPALIVE)),
        };
        let min_mtu = if raw.network6.is_some() { 1280 } else { 576 };
        let mtu = match &raw.mtu {
            Some(value) => self.int_in(value, min_mtu..=65535, "mtu").map(Some),
            None => Some(None),
        };
        let config_dir = match &raw.config_dir {
            Some(value) => self.parse::<RemotePath>(value, "invalid path"),
            None => DEFAULT_CONFIG_DIR.parse().ok(),
        };
        let package_lock_timeout = match &raw.package_lock_timeout {
            Some(value) => self.int_in(value, 0..=3600, "package_lock_timeout"),
            None => Some(DEFAULT_PACKAGE_LOCK_TIMEOUT),
        };
        let key_max_age = match &raw.key_max_age {
            Some(value) => self.parse::<Age>(value, "invalid age").map(Some),
            None => Some(None),
        };
        let firewall = self.firewall_mode(raw.firewall.as_ref());
        let watchdog = self.watchdog(raw.watchdog.as_ref());
        let networks = self.network_preference(raw.networks.as_ref());
        let exit_via = match &raw.exit_via {
            Some(value) => self.parse::<NodeName>(value, "invalid node name").map(Some),
            None => Some(None),
        };
        let exit_probe = match &raw.exit_probe {
            Some(value) => match value.value.parse::<std::net::SocketAddr>() {
                Ok(addr) => Some(Some(addr)),
                Err(_) => {
                    let span = self.span(value);
                    self.problems.push_full(
                        span,
                        format!("exit_probe `{}` is not an address and port", value.value),
                        "invalid exit_probe",
                        Some("write it as `192.0.2.1:7` or `[2001:db8::1]:7`".to_string()),
                        None,
                    );
                    None
                }
            },
            None => Some(None),
        };
        PartialMesh {
            exit_probe,
            exit_via,
            exit_via_span: raw.exit_via.as_ref().map(|v| self.span(v)),
            mss_clamp: raw.mss_clamp.unwrap_or(true),
            watchdog,
            networks,
            topology: Some(crate::inventory::Topology::Full),
            key_max_age,
            firewall,
            acl: Some(None),
            interface,
            network,
            network_span,
            network6,
            domain,
            hosts_file: raw.hosts_file.unwrap_or(true),
            listen_port,
            persistent_keepalive,
            mtu,
            preshared_keys: raw.preshared_keys.unwrap_or(false),
            nat_punching: raw.nat_punching.unwrap_or(true),
            config_dir,
            package_lock_timeout,
        }
    }

    /// `mesh.watchdog`: on (default, every 30 s), off, or on with an interval of 5 s to 1 h.
    fn watchdog(&mut self, raw: Option<&Spanned<RawWatchdog>>) -> Option<Option<Age>> {
        let default = Some(Some(Age::from_secs(DEFAULT_WATCHDOG_INTERVAL)));
        let Some(raw) = raw else {
            return default;
        };
        match &raw.value {
            RawWatchdog::Switch(true) => default,
            RawWatchdog::Switch(false) => Some(None),
            RawWatchdog::Other => {
                let span = self.span(raw);
                self.error(
                    span,
                    "`mesh.watchdog` must be `true`, `false` or a mapping such as `{ interval: 30s }`",
                    "not a watchdog setting",
                );
                None
            }
            RawWatchdog::Map(map) => {
                let Some(value) = &map.interval else {
                    return default;
                };
                let age = self.parse::<Age>(value, "invalid interval")?;
                if !(5..=3600).contains(&age.secs()) {
                    let span = self.span(value);
                    self.error(
                        span,
                        format!(
                            "watchdog interval `{age}` is out of range: from 5s to 1h (the timer runs a tick that often)"
                        ),
                        "out of range",
                    );
                    return None;
                }
                Some(Some(age))
            }
        }
    }

    pub(super) fn network4(&mut self, value: &Spanned<String>) -> Option<Ipv4Net> {
        let span = self.span(value);
        let net = match value.value.parse::<IpNet>() {
            Ok(IpNet::V4(net)) => net,
            Ok(IpNet::V6(_)) => {
                self.problems.push_full(
                    span,
                    format!("mesh network `{}` is IPv6", value.value),
                    "expected an IPv4 network",
                    Some("put IPv6 networks under `network6`".into()),
                    None,
                );
                return None;
            }
            Err(_) => {
                self.error(
                    span,
                    format!("`{}` is not a network in CIDR notation", value.value),
                    "expected e.g. 10.10.0.0/24",
                );
                return None;
            }
        };
        if net.trunc() != net {
            self.problems.push_full(
                span,
                format!("mesh network `{net}` has host bits set"),
                "not a network address",
                Some(format!("did you mean {}?", net.trunc())),
                None,
            );
            return None;
        }
        if net.prefix_len() > 30 {
            self.error(
                span,
                format!("mesh network `{net}` is too small (prefix longer than /30)"),
                "too small",
            );
            return None;
        }
        Some(net)
    }

    pub(super) fn network6(&mut self, value: &Spanned<String>) -> Option<Ipv6Net> {
        let span = self.span(value);
        let Ok(IpNet::V6(net)) = value.value.parse::<IpNet>() else {
            self.error(
                span,
                format!("`{}` is not an IPv6 network in CIDR notation", value.value),
                "expected e.g. fd10:10::/64",
            );
            return None;
        };
        if net.trunc() != net {
            self.problems.push_full(
                span,
                format!("mesh network6 `{net}` has host bits set"),
                "not a network address",
                Some(format!("did you mean {}?", net.trunc())),
                None,
            );
            return None;
        }
        if net.prefix_len() > 126 {
            self.error(
                span,
                format!("mesh network6 `{net}` is too small (prefix longer than /126)"),
                "too small",
            );
            return None;
        }
        Some(net)
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::Inventory;

    const NODES: &str = "nodes:\n  - name: a\n    endpoint: 203.0.113.1\n";

    #[test]
    fn peer_name_settings_default_to_mesh_and_on() {
        let text = format!("mesh:\n  network: 10.10.0.0/24\n{NODES}");
        let inventory = Inventory::from_str(&text, "t.yaml").expect("valid");
        assert_eq!(inventory.mesh().domain.as_str(), "mesh");
        assert!(inventory.mesh().hosts_file);
        let text = format!(
            "mesh:\n  network: 10.10.0.0/24\n  domain: corp.internal\n  hosts_file: false\n{NODES}"
        );
        let inventory = Inventory::from_str(&text, "t.yaml").expect("valid");
        assert_eq!(inventory.mesh().domain.as_str(), "corp.internal");
        assert!(!inventory.mesh().hosts_file);
    }

    #[test]
    fn firewall_mode_defaults_to_trust_and_a_bad_one_is_located() {
        use crate::inventory::FirewallMode;
        let text = format!("mesh:\n  network: 10.10.0.0/24\n{NODES}");
        let inventory = Inventory::from_str(&text, "t.yaml").expect("valid");
        assert_eq!(inventory.mesh().firewall, FirewallMode::Trust);
        let text = format!("mesh:\n  network: 10.10.0.0/24\n  firewall: none\n{NODES}");
        let inventory = Inventory::from_str(&text, "t.yaml").expect("valid");
        assert_eq!(inventory.mesh().firewall, FirewallMode::None);
        let text = format!("mesh:\n  network: 10.10.0.0/24\n  firewall: off\n{NODES}");
        let err = Inventory::from_str(&text, "t.yaml").expect_err("invalid mode");
        let problems: Vec<(usize, &str)> = err
            .problems()
            .iter()
            .map(|p| (p.line(), p.message()))
            .collect();
        assert_eq!(
            problems,
            [(
                3,
                "firewall `off` is not a mode: `trust` (the default) makes every active \
                 firewall carry mesh traffic, `none` leaves firewalls alone"
            )]
        );
    }

    #[test]
    fn watchdog_is_on_every_30s_by_default_and_bad_settings_are_located() {
        let secs = |extra: &str| {
            let text = format!("mesh:\n  network: 10.10.0.0/24\n{extra}{NODES}");
            Inventory::from_str(&text, "t.yaml").map(|i| i.mesh().watchdog.map(|a| a.secs()))
        };
        for (extra, want) in [
            ("", Some(30)),
            ("  watchdog: true\n", Some(30)),
            ("  watchdog: false\n", None),
            ("  watchdog:\n    interval: 1m\n", Some(60)),
            ("  watchdog: { interval: 45s }\n", Some(45)),
            ("  watchdog: {}\n", Some(30)),
        ] {
            assert_eq!(secs(extra).expect(extra), want, "{extra}");
        }
        for (extra, line, start) in [
            (
                "  watchdog: sometimes\n",
                3,
                "`mesh.watchdog` must be `true`, `false`",
            ),
            (
                "  watchdog:\n    interval: 2s\n",
                4,
                "watchdog interval `2s` is out of range",
            ),
            (
                "  watchdog:\n    interval: 2d\n",
                4,
                "watchdog interval `2d` is out of range",
            ),
            (
                "  watchdog:\n    interval: soon\n",
                4,
                "`soon` is not an age",
            ),
        ] {
            let err = secs(extra).expect_err(extra);
            let problems: Vec<(usize, &str)> = err
                .problems()
                .iter()
                .map(|p| (p.line(), p.message()))
                .collect();
            assert_eq!(problems.len(), 1, "{extra}: {problems:?}");
            assert_eq!(problems[0].0, line, "{extra}");
            assert!(problems[0].1.starts_with(start), "{extra}: {problems:?}");
        }
    }

    #[test]
    fn an_invalid_domain_is_located() {
        let text = format!("mesh:\n  network: 10.10.0.0/24\n  domain: Mesh_1\n{NODES}");
        let err = Inventory::from_str(&text, "t.yaml").expect_err("invalid domain");
        let problems: Vec<(usize, &str)> = err
            .problems()
            .iter()
            .map(|p| (p.line(), p.message()))
            .collect();
        assert_eq!(
            problems,
            [(
                3,
                "domain `Mesh_1` contains 'M'; allowed: a-z, 0-9, '-', '.'"
            )]
        );
        let text = format!("mesh:\n  network: 10.10.0.0/24\n  hosts_file: maybe\n{NODES}");
        assert!(Inventory::from_str(&text, "t.yaml").is_err());
    }
}

//! The inventory as written: serde structs with source locations, private to the module.
//! Strings and numbers are kept raw here so that range and format problems become located,
//! collected validation errors instead of stopping at the first one.
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Top level of the inventory file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInventory {
    pub mesh: Spanned<RawMesh>,
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    pub nodes: Spanned<Vec<RawNode>>,
    #[serde(default)]
    pub clients: Option<Spanned<Vec<RawClient>>>,
}

/// The `mesh:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMesh {
    pub interface: Option<Spanned<String>>,
    pub network: Spanned<String>,
    pub network6: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub hosts_file: Option<bool>,
    pub listen_port: Option<Spanned<i64>>,
    pub persistent_keepalive: Option<Spanned<i64>>,
    pub mtu: Option<Spanned<i64>>,
    pub preshared_keys: Option<bool>,
    pub nat_punching: Option<bool>,
    pub config_dir: Option<Spanned<String>>,
    pub package_lock_timeout: Option<Spanned<i64>>,
    pub key_max_age: Option<Spanned<String>>,
    pub firewall: Option<Spanned<RawFirewall>>,
    pub watchdog: Option<Spanned<RawWatchdog>>,
    pub exit_via: Option<Spanned<String>>,
    pub mss_clamp: Option<bool>,
    pub exit_probe: Option<Spanned<String>>,
}

/// `mesh.watchdog`: on or off (`true`, `false`), or a mapping with the tick interval.
#[derive(Debug)]
pub(super) enum RawWatchdog {
    /// `watchdog: true|false`.
    Switch(bool),
    /// `watchdog: { interval: 30s }` (on).
    Map(RawWatchdogMap),
    /// Anything else (a string, a number): shown as an error with its source text.
    Other,
}

/// The mapping form of `mesh.watchdog`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatchdogMap {
    pub interval: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawWatchdog {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawWatchdog;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`true`, `false` or a mapping with `interval`")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawWatchdog, E> {
                Ok(RawWatchdog::Switch(v))
            }

            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<RawWatchdog, E> {
                Ok(RawWatchdog::Other)
            }

            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<RawWatchdog, E> {
                Ok(RawWatchdog::Other)
            }

            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<RawWatchdog, E> {
                Ok(RawWatchdog::Other)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawWatchdog, A::Error> {
                RawWatchdogMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawWatchdog::Map)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The `ssh:` defaults, or a node's `ssh:` overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSsh {
    pub host: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub identity_file: Option<Spanned<String>>,
    pub jump: Option<Spanned<String>>,
    #[serde(rename = "become")]
    pub become_: Option<Spanned<String>>,
    pub known_hosts: Option<Spanned<String>>,
    pub host_key_checking: Option<Spanned<String>>,
    pub ssh_config: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<i64>>,
}

/// One entry of `nodes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub name: Spanned<String>,
    pub address: Option<Spanned<String>>,
    pub address6: Option<Spanned<String>>,
    pub endpoint: Option<Spanned<String>>,
    #[serde(default)]
    pub subnets: Vec<Spanned<String>>,
    pub probe: Option<Spanned<String>>,
    pub listen_port: Option<Spanned<i64>>,
    pub mtu: Option<Spanned<i64>>,
    pub state: Option<Spanned<String>>,
    pub relay: Option<Spanned<String>>,
    pub groups: Option<Spanned<Vec<Spanned<String>>>>,
    pub ssh: Option<RawSsh>,
    pub exit_node: Option<bool>,
    pub exit_via: Option<Spanned<String>>,
}

/// One entry of `clients:`: an unmanaged peer (a laptop, a phone, a CI runner).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub name: Spanned<String>,
    pub public_key: Option<Spanned<String>>,
    pub generate: Option<Spanned<bool>>,
    pub via: Option<Spanned<Vec<Spanned<String>>>>,
    pub address: Option<Spanned<String>>,
    pub address6: Option<Spanned<String>>,
}

/// `mesh.firewall`: a mode (`trust`, `none`) or a mapping with the mode, the ICMP
/// default and the ACL rules.
#[derive(Debug)]
pub(super) enum RawFirewall {
    /// `firewall: trust`.
    Mode(String),
    /// `firewall: { mode: trust, icmp: true, rules: [...] }`.
    Map(RawFirewallMap),
}

/// The mapping form of `mesh.firewall`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFirewallMap {
    pub mode: Option<Spanned<String>>,
    pub icmp: Option<bool>,
    pub rules: Option<Spanned<Vec<Spanned<RawAclRule>>>>,
}

/// One entry of `mesh.firewall.rules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAclRule {
    pub from: Spanned<String>,
    pub to: Spanned<String>,
    pub ports: Spanned<Vec<Spanned<String>>>,
}

impl<'de> Deserialize<'de> for RawFirewall {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawFirewall;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a firewall mode (`trust`, `none`) or a mapping with `mode`, `icmp`, `rules`",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawFirewall, E> {
                Ok(RawFirewall::Mode(v.to_string()))
            }

            // YAML 1.1 reads `off`/`no` as booleans: the validator shows the source text.
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<RawFirewall, E> {
                Ok(RawFirewall::Mode(String::new()))
            }

            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<RawFirewall, E> {
                Ok(RawFirewall::Mode(String::new()))
            }

            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<RawFirewall, E> {
                Ok(RawFirewall::Mode(String::new()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawFirewall, A::Error> {
                RawFirewallMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawFirewall::Map)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

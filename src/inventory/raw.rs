//! The inventory as written: serde structs with source locations, private to the module.
//! Strings and numbers are kept raw here so that range and format problems become located,
//! collected validation errors instead of stopping at the first one.
//!
//! The same types give the inventory's JSON Schema (`meshup schema`, see `schema.rs`): a
//! field's doc comment is its description there, `with` names the type the validator
//! parses the string into (its format), `extend("default" = ...)` the default the
//! validator applies. A new plain field needs nothing more than a type that implements
//! `JsonSchema` (strings, numbers, bools, `Vec`, `Option`, `Spanned` of those, or a raw
//! struct deriving it).
use schemars::JsonSchema;
use serde::Deserialize;

use super::schema::format;
use super::spanned::Spanned;
use super::{
    AclPort, Age, Become, DomainName, Endpoint, FirewallMode, GroupName, HostKeyChecking,
    InterfaceName, JumpHost, LabelName, NodeName, NodeState, RemotePath, SshHost, Topology,
    UserName,
};
use crate::keys::PublicKey;

/// A meshup inventory: the mesh's settings, how to reach its hosts over SSH, its nodes
/// and its unmanaged clients.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Inventory", title = "meshup inventory")]
pub(super) struct RawInventory {
    /// Mesh-wide settings.
    pub mesh: Spanned<RawMesh>,
    /// SSH defaults for every node (a node's own `ssh:` overrides them key by key).
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    /// The managed hosts, each one a WireGuard peer of all the others.
    #[schemars(length(min = 1))]
    pub nodes: Spanned<Vec<RawNode>>,
    /// Unmanaged peers (laptops, phones, CI runners) that reach the mesh through public nodes.
    #[serde(default)]
    pub clients: Option<Spanned<Vec<RawClient>>>,
}

/// The `mesh:` section.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Mesh")]
pub(super) struct RawMesh {
    /// WireGuard interface name on every host.
    #[schemars(with = "Option<InterfaceName>", extend("default" = super::DEFAULT_INTERFACE))]
    pub interface: Option<Spanned<String>>,
    /// IPv4 mesh network; node addresses are taken from it.
    #[schemars(with = "format::Ipv4Network")]
    pub network: Spanned<String>,
    /// IPv6 mesh network (dual stack): every node also gets an address from it.
    #[schemars(with = "Option<format::Ipv6Network>")]
    pub network6: Option<Spanned<String>>,
    /// Domain of the peer names in /etc/hosts (`node-b.mesh`).
    #[schemars(with = "Option<DomainName>", extend("default" = super::DEFAULT_DOMAIN))]
    pub domain: Option<Spanned<String>>,
    /// Whether meshup keeps a block of peer names in each host's /etc/hosts (false removes it).
    #[schemars(extend("default" = true))]
    pub hosts_file: Option<bool>,
    /// Default UDP listen port of the nodes.
    #[schemars(range(min = 1, max = 65535), extend("default" = super::DEFAULT_LISTEN_PORT))]
    pub listen_port: Option<Spanned<i64>>,
    /// PersistentKeepalive in seconds towards public nodes; 0 turns it off.
    #[schemars(range(min = 0, max = 65535), extend("default" = super::DEFAULT_KEEPALIVE))]
    pub persistent_keepalive: Option<Spanned<i64>>,
    /// Interface MTU of every node (at least 1280 with network6); unset lets wg-quick decide.
    #[schemars(range(min = 576, max = 65535))]
    pub mtu: Option<Spanned<i64>>,
    /// Whether each pair of nodes shares a preshared key (made in memory, never written on the workstation).
    #[schemars(extend("default" = false))]
    pub preshared_keys: Option<bool>,
    /// Whether pairs of NAT nodes are hole punched (or peer over a shared LAN) when the evidence allows it, instead of always going through a relay.
    #[schemars(extend("default" = true))]
    pub nat_punching: Option<bool>,
    /// Directory of WireGuard files on each host.
    #[schemars(with = "Option<RemotePath>", extend("default" = super::DEFAULT_CONFIG_DIR))]
    pub config_dir: Option<Spanned<String>>,
    /// Seconds the install waits for a package manager lock held by another process; 0 fails at once.
    #[schemars(range(min = 0, max = 3600), extend("default" = super::DEFAULT_PACKAGE_LOCK_TIMEOUT))]
    pub package_lock_timeout: Option<Spanned<i64>>,
    /// Keys older than this are reported by plan and rotated by `rotate --older-than` without an age; unset: no policy.
    #[schemars(with = "Option<Age>")]
    pub key_max_age: Option<Spanned<String>>,
    /// What meshup does with the hosts' firewalls: a mode, or a mapping with the mode, ICMP and the mesh ACL's rules.
    #[schemars(extend("default" = "trust"))]
    pub firewall: Option<Spanned<RawFirewall>>,
    /// The host-side watchdog (a timer on each host that falls back from a dead direct path and follows DNS endpoints): on, off, or on with an interval.
    #[schemars(extend("default" = true))]
    pub watchdog: Option<Spanned<RawWatchdog>>,
    /// Private networks in order of preference (`[dc1, vpc]`) for pairs that share several.
    #[schemars(with = "Option<Vec<LabelName>>")]
    pub networks: Option<Spanned<Vec<Spanned<String>>>>,
    /// Who peers with whom: `full` (every pair) or `hub` (spokes through hubs).
    #[schemars(with = "Option<Topology>", extend("default" = "full"))]
    pub topology: Option<Spanned<String>>,
    /// The hubs of `topology: hub` without sites (public nodes; they forward for the spokes).
    #[schemars(with = "Option<Vec<NodeName>>")]
    pub hubs: Option<Spanned<Vec<Spanned<String>>>>,
    /// The sites of `topology: hub`: name → its hubs; spokes of a site peer among themselves.
    #[schemars(with = "Option<std::collections::BTreeMap<LabelName, RawSite>>")]
    pub sites: Option<Spanned<std::collections::BTreeMap<String, Spanned<RawSite>>>>,
    /// The exit node every node sends its internet traffic through (unless it names its
    /// own `exit_via`); unset: no mesh-wide exit.
    #[schemars(with = "Option<NodeName>")]
    pub exit_via: Option<Spanned<String>>,
    /// Whether transit nodes (relays, subnet routers, hubs, exits) clamp the TCP MSS of what
    /// they forward to the route's MTU.
    #[schemars(extend("default" = true))]
    pub mss_clamp: Option<bool>,
    /// A TCP service beyond the exits (`ADDR:PORT`) that answers each connection with the
    /// address it came from: verify checks that traffic leaves with the exit's address.
    #[schemars(with = "Option<format::SocketAddress>")]
    pub exit_probe: Option<Spanned<String>>,
}

/// One entry of `mesh.sites`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Site")]
pub(super) struct RawSite {
    /// The site's hubs (public nodes of the site); the first carries the site's traffic to
    /// the other sites.
    #[schemars(with = "Vec<NodeName>", length(min = 1))]
    pub hubs: Spanned<Vec<Spanned<String>>>,
}

/// `mesh.watchdog`: on or off (`true`, `false`), or a mapping with the tick interval.
#[derive(Debug, JsonSchema)]
#[schemars(untagged, rename = "Watchdog")]
pub(super) enum RawWatchdog {
    /// `true` (every 30 s) or `false` (no watchdog; removes an installed one).
    Switch(bool),
    /// On, ticking at this interval.
    Map(RawWatchdogMap),
    /// Anything else (a string, a number): shown as an error with its source text.
    #[schemars(skip)]
    Other,
}

/// The mapping form of `mesh.watchdog`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WatchdogMap")]
pub(super) struct RawWatchdogMap {
    /// How often the watchdog ticks, from 5s to 1h.
    #[schemars(with = "Option<Age>", extend("default" = "30s"))]
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
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Ssh")]
pub(super) struct RawSsh {
    /// Host to connect to (only under a node): an address, a DNS name or an ssh_config alias; defaults to the node's name.
    #[schemars(with = "Option<SshHost>")]
    pub host: Option<Spanned<String>>,
    /// Login user.
    #[schemars(with = "Option<UserName>", extend("default" = "root"))]
    pub user: Option<Spanned<String>>,
    /// SSH port.
    #[schemars(range(min = 1, max = 65535), extend("default" = 22))]
    pub port: Option<Spanned<i64>>,
    /// Private key file on the workstation (`~/` is $HOME; relative to the inventory's directory).
    #[schemars(length(min = 1))]
    pub identity_file: Option<Spanned<String>>,
    /// ProxyJump host.
    #[schemars(with = "Option<JumpHost>")]
    pub jump: Option<Spanned<String>>,
    /// How commands get root: `root` when the user is root, else `sudo`.
    #[serde(rename = "become")]
    #[schemars(with = "Option<Become>")]
    pub become_: Option<Spanned<String>>,
    /// Extra known_hosts file on the workstation (relative to the inventory's directory).
    #[schemars(length(min = 1))]
    pub known_hosts: Option<Spanned<String>>,
    /// Host key policy.
    #[schemars(with = "Option<HostKeyChecking>", extend("default" = "accept-new"))]
    pub host_key_checking: Option<Spanned<String>>,
    /// An ssh_config file used like `ssh -F` (relative to the inventory's directory).
    #[schemars(length(min = 1))]
    pub ssh_config: Option<Spanned<String>>,
    /// TCP connect timeout, seconds.
    #[schemars(range(min = 1, max = 3600), extend("default" = super::DEFAULT_CONNECT_TIMEOUT))]
    pub connect_timeout: Option<Spanned<i64>>,
}

/// One entry of `nodes:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Node")]
pub(super) struct RawNode {
    /// Unique node name (also its SSH host unless `ssh.host` says otherwise).
    #[schemars(with = "NodeName")]
    pub name: Spanned<String>,
    /// IPv4 mesh address inside `mesh.network`; unset: allocated and pinned in `<inventory>.lock`.
    #[schemars(with = "Option<std::net::Ipv4Addr>")]
    pub address: Option<Spanned<String>>,
    /// IPv6 mesh address inside `mesh.network6`; unset: allocated when the mesh has network6.
    #[schemars(with = "Option<std::net::Ipv6Addr>")]
    pub address6: Option<Spanned<String>>,
    /// Public endpoint the other nodes reach this one at; unset: the node is behind NAT.
    #[schemars(with = "Option<Endpoint>")]
    pub endpoint: Option<Spanned<String>>,
    /// A second, IPv6 endpoint of a dual-stack public node (`endpoint` holds its IPv4 one): IPv6-only nodes reach it there.
    #[schemars(with = "Option<Endpoint>")]
    pub endpoint6: Option<Spanned<String>>,
    /// Networks routed behind this node (the others reach them through it).
    #[serde(default)]
    #[schemars(with = "Vec<format::IpNetwork>")]
    pub subnets: Vec<Spanned<String>>,
    /// An address inside `subnets` that `verify` pings.
    #[schemars(with = "Option<format::IpAddress>")]
    pub probe: Option<Spanned<String>>,
    /// UDP listen port of this node (default: `mesh.listen_port`).
    #[schemars(range(min = 1, max = 65535))]
    pub listen_port: Option<Spanned<i64>>,
    /// Interface MTU of this node (default: `mesh.mtu`).
    #[schemars(range(min = 576, max = 65535))]
    pub mtu: Option<Spanned<i64>>,
    /// `absent` removes the node from the mesh.
    #[schemars(with = "Option<NodeState>", extend("default" = "present"))]
    pub state: Option<Spanned<String>>,
    /// For a NAT node: the public node that relays its traffic to other NAT nodes (default: the first public node).
    #[schemars(with = "Option<NodeName>")]
    pub relay: Option<Spanned<String>>,
    /// Groups the mesh ACL's rules name.
    #[schemars(with = "Option<Vec<GroupName>>")]
    pub groups: Option<Spanned<Vec<Spanned<String>>>>,
    /// Private networks the node sits on (`{ dc1: 10.0.1.5 }`): name → its address there; a
    /// pair of nodes on a common network uses it as endpoint.
    #[schemars(with = "Option<std::collections::BTreeMap<LabelName, format::IpAddress>>")]
    pub networks: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    /// The site of `topology: hub` with `sites` this node belongs to.
    #[schemars(with = "Option<LabelName>")]
    pub site: Option<Spanned<String>>,
    /// SSH settings of this node over the `ssh:` defaults.
    pub ssh: Option<RawSsh>,
    /// This node may carry other nodes' internet traffic (forwarding and masquerade out of
    /// its uplink).
    #[schemars(extend("default" = false))]
    pub exit_node: Option<bool>,
    /// The exit node this node sends its internet traffic through (default: `mesh.exit_via`).
    #[schemars(with = "Option<NodeName>")]
    pub exit_via: Option<Spanned<String>>,
}

/// One entry of `clients:`: an unmanaged peer (a laptop, a phone, a CI runner).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Client")]
pub(super) struct RawClient {
    /// Unique name among nodes and clients.
    #[schemars(with = "NodeName")]
    pub name: Spanned<String>,
    /// The client's public key (`wg pubkey` on the device); its private key never leaves it. Exactly one of `public_key` and `generate: true`.
    #[schemars(with = "Option<PublicKey>")]
    pub public_key: Option<Spanned<String>>,
    /// `true`: meshup makes the client's key pair on the workstation and writes its whole config to `clients/<name>.conf` (mode 600).
    #[schemars(extend("default" = false))]
    pub generate: Option<Spanned<bool>>,
    /// The public nodes the client peers with; the first one carries its traffic to the rest of the mesh.
    #[schemars(with = "Option<Vec<NodeName>>", length(min = 1))]
    pub via: Option<Spanned<Vec<Spanned<String>>>>,
    /// IPv4 mesh address; unset: allocated and pinned like a node's.
    #[schemars(with = "Option<std::net::Ipv4Addr>")]
    pub address: Option<Spanned<String>>,
    /// IPv6 mesh address; unset: allocated when the mesh has network6.
    #[schemars(with = "Option<std::net::Ipv6Addr>")]
    pub address6: Option<Spanned<String>>,
}

/// `mesh.firewall`: a mode (`trust`, `none`) or a mapping with the mode, the ICMP
/// default and the ACL rules.
#[derive(Debug, JsonSchema)]
#[schemars(untagged, rename = "Firewall")]
pub(super) enum RawFirewall {
    /// `firewall: trust`.
    Mode(#[schemars(with = "FirewallMode")] String),
    /// `firewall: { mode: trust, icmp: true, rules: [...] }`.
    Map(RawFirewallMap),
}

/// The mapping form of `mesh.firewall`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FirewallMap")]
pub(super) struct RawFirewallMap {
    /// The firewall mode.
    #[schemars(with = "Option<FirewallMode>", extend("default" = "trust"))]
    pub mode: Option<Spanned<String>>,
    /// Whether ICMP echo from every source is accepted on the mesh interface (so `verify`'s pings work).
    #[schemars(extend("default" = true))]
    pub icmp: Option<bool>,
    /// The mesh ACL: a node that some rule names as `to` accepts on the mesh interface only what the rules let in (plus established traffic and ICMP echo).
    #[schemars(length(min = 1))]
    pub rules: Option<Spanned<Vec<Spanned<RawAclRule>>>>,
}

/// One entry of `mesh.firewall.rules`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AclRule")]
pub(super) struct RawAclRule {
    /// Who may connect: `any`, a group, a node or a client.
    pub from: Spanned<String>,
    /// The nodes that accept it: `any`, a group or a node.
    pub to: Spanned<String>,
    /// What they accept.
    #[schemars(with = "Vec<AclPort>", length(min = 1))]
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

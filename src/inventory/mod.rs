//! The inventory: which nodes form the mesh and how to reach them, parsed from YAML and
//! validated once into newtypes. See `docs/inventory.md` for the format.
mod acl;
mod age;
mod error;
mod firewall;
mod layout;
mod names;
mod raw;
mod schema;
mod spanned;
mod underlay;
mod validate;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use acl::{AclPeer, AclPort, AclRule, GroupName, MeshAcl, acl_file};
pub use age::Age;
pub(crate) use error::Problems;
pub use error::{InventoryError, Problem, Span};
pub use firewall::FirewallMode;
pub use layout::{LabelName, NetworkAddress, Site, Topology};
pub use names::{
    Become, DomainName, Endpoint, EndpointHost, HostKeyChecking, InterfaceName, JumpHost, NodeName,
    NodeState, RemotePath, SshHost, UserName, endpoint_dns_name, endpoint_matches,
};
pub use underlay::Underlay;
pub(crate) use validate::push_yaml_error;

/// Default WireGuard interface name.
pub const DEFAULT_INTERFACE: &str = "wg0";
/// Default DNS domain of the mesh's names in `/etc/hosts` (`node-b.mesh`).
pub const DEFAULT_DOMAIN: &str = "mesh";
/// Default UDP listen port.
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
/// Default PersistentKeepalive, seconds.
pub const DEFAULT_KEEPALIVE: u16 = 25;
/// Default directory of WireGuard files on each host.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/wireguard";
/// Default SSH connect timeout, seconds.
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 10;
/// Default time the install waits for a package manager lock held by another process
/// (unattended-upgrades on a fresh cloud VM, a cron job), seconds, like Ansible's apt module.
pub const DEFAULT_PACKAGE_LOCK_TIMEOUT: u16 = 120;

/// Default interval of the host-side watchdog's ticks (`mesh.watchdog`), seconds.
pub const DEFAULT_WATCHDOG_INTERVAL: u64 = 30;

/// A validated inventory: mesh settings and every node (present and absent), in file order.
#[derive(Debug, Clone)]
pub struct Inventory {
    path: PathBuf,
    mesh: MeshSettings,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    /// Node name → index in `nodes` (a lookup per node must not scan them all).
    index: std::collections::HashMap<NodeName, usize>,
}

/// Mesh-wide settings (`mesh:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    /// WireGuard interface name (default `wg0`).
    pub interface: InterfaceName,
    /// IPv4 mesh network; node addresses are taken from it.
    pub network: Ipv4Net,
    /// Optional IPv6 mesh network (dual stack).
    pub network6: Option<Ipv6Net>,
    /// Domain of the peer names (`node-b.<domain>`), default `mesh`.
    pub domain: DomainName,
    /// Whether meshup keeps a block of peer names in each host's `/etc/hosts`
    /// (default true; false removes the block).
    pub hosts_file: bool,
    /// Default UDP listen port (default 51820).
    pub listen_port: u16,
    /// PersistentKeepalive in seconds; `None` when set to 0 (disabled).
    pub persistent_keepalive: Option<u16>,
    /// Default interface MTU; `None` lets wg-quick decide.
    pub mtu: Option<u16>,
    /// Whether each pair of nodes shares a preshared key.
    pub preshared_keys: bool,
    /// Whether pairs of NAT nodes are hole punched (or peer over a shared LAN) when the
    /// evidence allows it, instead of always going through a relay (default true: a
    /// direct path that dies falls back to its relay by itself, see the watchdog).
    pub nat_punching: bool,
    /// Directory of WireGuard files on each host (default `/etc/wireguard`).
    pub config_dir: RemotePath,
    /// Seconds the install waits for a package manager lock held by another process
    /// (default 120, at most 3600; 0 fails at once when the lock is held).
    pub package_lock_timeout: u16,
    /// Keys older than this are reported by plan and picked by `rotate --older-than`
    /// without an age; `None`: no policy.
    pub key_max_age: Option<Age>,
    /// What meshup does with the hosts' firewalls (default: trust the mesh interface).
    pub firewall: FirewallMode,
    /// The mesh ACL (`mesh.firewall.rules`); `None`: every node trusts all mesh traffic.
    pub acl: Option<MeshAcl>,
    /// How often each host's watchdog ticks (`mesh.watchdog`, default on, every 30 s);
    /// `None`: no watchdog (`watchdog: false` removes an installed one).
    pub watchdog: Option<Age>,
    /// Private networks in order of preference (`mesh.networks`): a pair sharing several
    /// uses the first listed; networks not listed come after, in name order.
    pub networks: Vec<LabelName>,
    /// Who peers with whom (`mesh.topology`, default full).
    pub topology: Topology,
    /// The exit node every node sends its internet traffic through (`mesh.exit_via`),
    /// unless it names its own; `None`: no mesh-wide exit.
    pub exit_via: Option<NodeName>,
    /// Whether transit nodes (relays, subnet routers, exits) clamp the TCP MSS of what
    /// they forward to the route's MTU (`mesh.mss_clamp`, default true).
    pub mss_clamp: bool,
    /// A TCP service beyond the exits that answers each connection with one line, the
    /// address it came from (`mesh.exit_probe: 192.0.2.1:7`): `verify` checks that a
    /// node using an exit leaves with the exit's public address.
    pub exit_probe: Option<std::net::SocketAddr>,
}

/// One node of the inventory, with per-node overrides already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique node name.
    pub name: NodeName,
    /// Explicit IPv4 mesh address; `None` = allocated (see `address::allocate`).
    pub address: Option<Ipv4Addr>,
    /// Explicit IPv6 mesh address; `None` = allocated when the mesh has `network6`.
    pub address6: Option<Ipv6Addr>,
    /// Public endpoint; `None` means the node is behind NAT.
    pub endpoint: Option<Endpoint>,
    /// The IPv6 endpoint of a dual-stack public node (`endpoint6:`), beside `endpoint`.
    pub endpoint6: Option<Endpoint>,
    /// Networks routed behind this node.
    pub subnets: Vec<IpNet>,
    /// An address inside `subnets` that `verify` pings.
    pub probe: Option<IpAddr>,
    /// Effective UDP listen port (override or mesh default).
    pub listen_port: u16,
    /// Effective MTU (override or mesh default).
    pub mtu: Option<u16>,
    /// Present or absent.
    pub state: NodeState,
    /// For a NAT node: the public node that relays its traffic to other NAT nodes.
    pub relay: Option<NodeName>,
    /// How to reach the node over SSH (defaults merged with overrides).
    pub ssh: SshTarget,
    /// Groups the mesh ACL's rules name (`groups: [db, web]`).
    pub groups: Vec<GroupName>,
    /// Private networks the node sits on, with its address on each, in name order.
    pub networks: Vec<NetworkAddress>,
    /// Its site (`topology: hub` with `sites`).
    pub site: Option<LabelName>,
    /// May carry other nodes' internet traffic (`exit_node: true`).
    pub exit_node: bool,
    /// The exit node this node sends its internet traffic through: its own `exit_via`,
    /// else `mesh.exit_via` (never itself).
    pub exit_via: Option<NodeName>,
    /// 1-based line of the node's `name:` in the inventory, for messages.
    pub line: usize,
}

impl Node {
    /// True when the node has a public endpoint.
    pub fn is_public(&self) -> bool {
        self.endpoint.is_some()
    }

    /// The underlay families the node is reached on (see [`Underlay::of`]).
    pub fn underlay(&self) -> Underlay {
        Underlay::of(self.endpoint.as_ref(), self.endpoint6.as_ref())
    }

    /// True unless the node is marked `state: absent`.
    pub fn is_present(&self) -> bool {
        self.state == NodeState::Present
    }
}

/// An unmanaged peer of the mesh (`clients:`): a laptop, a phone, a CI runner. meshup
/// never connects to it; it peers with the public nodes it names (`via`) and reaches
/// the rest of the mesh through the first of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Unique name (among nodes and clients).
    pub name: NodeName,
    /// Explicit IPv4 mesh address; `None` = allocated and pinned like a node's.
    pub address: Option<Ipv4Addr>,
    /// Explicit IPv6 mesh address; `None` = allocated when the mesh has `network6`.
    pub address6: Option<Ipv6Addr>,
    /// Where the client's key pair comes from.
    pub key: ClientKey,
    /// Present public nodes the client peers with, in inventory order; the first one
    /// carries its traffic to every other node.
    pub via: Vec<NodeName>,
    /// 1-based line of the client's `name:` in the inventory, for messages.
    pub line: usize,
}

/// Where a client's key pair comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKey {
    /// `public_key:` given by the user; the private key never leaves the device.
    Given(crate::keys::PublicKey),
    /// `generate: true`: meshup makes the key pair on the workstation and writes the
    /// client's whole config to a local file (mode 600).
    Generated,
}

/// Resolved SSH settings of one node. Local paths are absolute (resolved against the
/// inventory directory, `~` expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host to connect to (defaults to the node name; may be an ssh_config alias).
    pub host: SshHost,
    /// Login user (default root).
    pub user: UserName,
    /// SSH port (default 22).
    pub port: u16,
    /// Private key file for authentication.
    pub identity_file: Option<PathBuf>,
    /// ProxyJump host.
    pub jump: Option<JumpHost>,
    /// How commands get root.
    pub become_method: Become,
    /// Extra known_hosts file.
    pub known_hosts: Option<PathBuf>,
    /// Host key policy.
    pub host_key_checking: HostKeyChecking,
    /// ssh_config file used like `ssh -F`.
    pub ssh_config: Option<PathBuf>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, InventoryError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str(&text, path)
    }

    /// Parses and validates inventory text; `path` names the file in messages and is the
    /// base for relative paths inside it.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Self, InventoryError> {
        validate::parse(text, path.as_ref())
    }

    /// The inventory file path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file pinning allocated addresses: `<inventory file name>.lock` beside it.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "inventory.yaml".into());
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Mesh-wide settings.
    pub fn mesh(&self) -> &MeshSettings {
        &self.mesh
    }

    /// Every node, present and absent, in file order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Nodes that are part of the mesh, in file order.
    pub fn present_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_present())
    }

    /// Nodes marked `state: absent`, in file order.
    pub fn absent_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| !n.is_present())
    }

    /// The node with this name, present or absent.
    pub fn node(&self, name: &NodeName) -> Option<&Node> {
        self.index.get(name).and_then(|&i| self.nodes.get(i))
    }

    /// Unmanaged clients, in file order.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The client with this name.
    pub fn client(&self, name: &NodeName) -> Option<&Client> {
        self.clients.iter().find(|c| &c.name == name)
    }

    /// Directory of generated client configs: `clients/` beside the inventory file.
    pub fn clients_dir(&self) -> PathBuf {
        self.path.with_file_name("clients")
    }
}

/// The inventory's JSON Schema (draft 7), from the same raw types the parser reads: what
/// `meshup schema` prints for editors.
pub fn json_schema() -> serde_json::Value {
    schema::draft7::<raw::RawInventory>()
}

//! The step functions: each looks at one host's facts and the desired state and
//! returns its decisions (a step with its reason, or why nothing changes). Pure.
mod acl;
mod config;
mod hosts_file;
mod keys;
mod network;
mod package;
mod path_move;
mod punch;
mod route;
mod service;
mod watchdog;

pub use acl::mesh_acl;
pub use config::config;
pub use hosts_file::{HOSTS_PATH, desired_block, hosts_file, hosts_file_removal};
pub use keys::{keygen, migrate, psk_flip, psks, rotation};
pub use network::{firewall, forwarding, untrust};
pub use package::install;
pub use path_move::path_move;
pub use punch::punch;
pub use route::{neighbours, nm_conf, nm_conf_path, nm_removal, route, route_removal};
pub use service::{activation, removal};
pub use watchdog::{
    SCRIPT_PATH as WATCHDOG_SCRIPT, watch_file, watch_path, watchdog, watchdog_removal,
};

use crate::facts::HostFacts;
use crate::inventory::{MeshSettings, NodeName};
use crate::nat_path::PathBook;
use crate::playbook::{Distro, Playbooks};
use crate::topology::{Mesh, NodeSpec, PeerSpec};

use super::keys::KeyBook;

/// Everything a step function may look at for one present host.
pub struct HostInput<'a> {
    /// The whole mesh.
    pub mesh: &'a Mesh,
    /// This node's desired state.
    pub spec: &'a NodeSpec,
    /// This node's peer entries, nodes and clients (`mesh.config_peers(spec)`, computed
    /// once per host).
    pub peers: Vec<PeerSpec>,
    /// This host's gathered facts.
    pub facts: &'a HostFacts,
    /// The host's distribution recipe.
    pub distro: &'a Distro,
    /// All recipes (firewalls).
    pub playbooks: &'a Playbooks,
    /// Public keys known and pending.
    pub keys: &'a KeyBook,
    /// Peers this host gets a new preshared key with, in order (`MU_PSK_1`, …).
    pub new_psk_peers: Vec<NodeName>,
    /// Peers whose preshared key this host already runs outside meshup's files, the
    /// other side holding the same: stored unchanged from the interface.
    pub adopted_psk_peers: Vec<(NodeName, crate::keys::PublicKey)>,
    /// How NAT pairs talk (punched, LAN, relayed) and which apply punches.
    pub paths: &'a PathBook,
    /// Diffs are wanted (shown to people); apply's re-made steps skip the config's.
    pub diffs: bool,
}

impl HostInput<'_> {
    /// Mesh-wide settings.
    pub fn settings(&self) -> &MeshSettings {
        &self.mesh.settings
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        self.mesh.settings.interface.as_str()
    }
}

/// Path of the interface config on the host.
pub fn conf_path(settings: &MeshSettings) -> String {
    format!("{}/{}.conf", settings.config_dir, settings.interface)
}

/// The config dir is the one wg-quick@ reads.
pub fn standard_dir(settings: &MeshSettings) -> bool {
    settings.config_dir.as_str() == crate::inventory::DEFAULT_CONFIG_DIR
}

//! How the mesh is laid out beyond one flat internet: the private networks nodes share
//! (`networks:`) and who peers with whom (`mesh.topology`: a full mesh, or hubs and sites).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::names::NodeName;

/// The name of a private network (`dc1`) or of a site (`eu`): `[a-z0-9][a-z0-9_-]*`, at
/// most 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelName(String);

impl LabelName {
    /// The validated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LabelName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if !is_label(text) {
            return Err(format!(
                "`{text}` is not a name: [a-z0-9][a-z0-9_-]*, at most 32 characters"
            ));
        }
        Ok(LabelName(text.to_string()))
    }
}

/// `[a-z0-9][a-z0-9_-]*`, at most 32 characters: the shape of group, network and site
/// names.
pub(super) fn is_label(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A private network a node sits on, with the node's address there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAddress {
    /// The network's name (`dc1`).
    pub network: LabelName,
    /// The node's address on it: its peers on the same network send to it there.
    pub address: IpAddr,
}

/// Who peers with whom (`mesh.topology`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Topology {
    /// Every node peers with every node it can reach (the default).
    #[default]
    Full,
    /// Spokes peer with their hubs (and, in a named site, with the site's other
    /// members); hubs peer with each other and forward. `mesh.hubs` alone is one unnamed
    /// site holding every node, whose spokes peer only with the hubs.
    Hub(Vec<Site>),
}

/// One site of a hub topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The site's name; `None` for the one site of `mesh.hubs` (every node is in it).
    pub name: Option<LabelName>,
    /// Its hubs, in inventory order: the first carries the traffic to and from the
    /// site's spokes for the other sites (and for spokes that cannot peer directly).
    pub hubs: Vec<NodeName>,
}

//! Mesh address allocation: explicit addresses first, then addresses pinned in the lock
//! file, then the lowest free host address, so adding a node never renumbers the others.
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::inventory::{Inventory, InventoryError, NodeName};

/// The mesh addresses of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddresses {
    /// IPv4 mesh address.
    pub v4: Ipv4Addr,
    /// IPv6 mesh address, when the mesh has `network6`.
    pub v6: Option<Ipv6Addr>,
}

/// The addresses of every present node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocation {
    addresses: BTreeMap<NodeName, NodeAddresses>,
}

impl Allocation {
    /// The addresses of a present node.
    pub fn get(&self, node: &NodeName) -> Option<NodeAddresses> {
        self.addresses.get(node).copied()
    }

    /// All allocations, by node name.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeName, &NodeAddresses)> {
        self.addresses.iter()
    }
}

/// One entry of the lock file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// Pinned IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// Pinned IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
}

/// Automatically allocated addresses pinned per node name (`<inventory>.lock`, YAML).
/// Explicit addresses from the inventory are not recorded here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AddressLock {
    entries: BTreeMap<String, LockEntry>,
}

const LOCK_HEADER: &str = "# Written by meshup: mesh addresses allocated automatically, pinned so that\n\
# adding a node never renumbers the others. Keep this file next to the inventory.\n";

impl AddressLock {
    /// Reads a lock file; a missing file is an empty lock.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, InventoryError> {
        let path = path.as_ref();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(InventoryError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::from_str(&text, path)
    }

    /// Parses lock file text; `path` names it in messages.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Self, InventoryError> {
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|err| {
            let file = path.as_ref().display().to_string();
            let mut problems = crate::inventory::Problems::new(&file, text);
            crate::inventory::push_yaml_error(&mut problems, text, &err);
            problems.into_error()
        })
    }

    /// The lock as file text.
    pub fn to_yaml(&self) -> String {
        let body = if self.entries.is_empty() {
            "{}\n".to_owned()
        } else {
            serde_saphyr::to_string(&self.entries).unwrap_or_default()
        };
        format!("{LOCK_HEADER}{body}")
    }

    /// Writes the lock atomically (temporary file in the same directory, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut tmp = tempfile_in(dir, path)?;
        tmp.1.write_all(self.to_yaml().as_bytes())?;
        tmp.1.sync_all()?;
        drop(tmp.1);
        std::fs::rename(&tmp.0, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp.0);
        })
    }

    /// The pinned entry of a node.
    pub fn get(&self, node: &str) -> Option<LockEntry> {
        self.entries.get(node).copied()
    }

    /// Pins addresses for a node.
    pub fn insert(&mut self, node: &str, entry: LockEntry) {
        self.entries.insert(node.to_owned(), entry);
    }

    /// Number of pinned nodes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is pinned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A node or a client that gets mesh addresses.
struct Member<'a> {
    name: &'a NodeName,
    address: Option<Ipv4Addr>,
    address6: Option<Ipv6Addr>,
}

/// Creates a new file beside `target` that nobody else uses.
fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lock".into());
    for attempt in 0..100u32 {
        let candidate = dir.join(format!(".{name}.tmp{}-{attempt}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(file) => return Ok((candidate, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(std::io::Error::other(
        "cannot create a temporary file for the lock",
    ))
}

/// Why addresses could not be allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum AllocationError {
    /// The mesh network has no free host address left.
    #[error("no free address left in {network} for node `{node}`")]
    #[diagnostic(
        code(meshup::address::exhausted),
        help("use a larger mesh network, or remove stale entries from the lock file")
    )]
    Exhausted {
        /// The node that got nothing.
        node: NodeName,
        /// The full network.
        network: String,
    },
}

/// Allocates the mesh addresses of every present node and returns the updated lock.
///
/// Order of precedence: explicit addresses; addresses pinned in `lock` (when still inside
/// the network and not taken); the lowest free host address, in inventory order, avoiding
/// addresses still pinned for absent nodes. IPv6 addresses prefer the same host number as
/// the IPv4 address. The updated lock keeps pinned entries of absent nodes (so a node
/// that comes back gets its address again) and drops nodes no longer in the inventory.
pub fn allocate(
    inventory: &Inventory,
    lock: &AddressLock,
) -> Result<(Allocation, AddressLock), AllocationError> {
    let mesh = inventory.mesh();
    // Present nodes, then clients: both get addresses the same way, nodes first.
    let present: Vec<Member<'_>> = inventory
        .present_nodes()
        .map(|n| Member {
            name: &n.name,
            address: n.address,
            address6: n.address6,
        })
        .chain(inventory.clients().iter().map(|c| Member {
            name: &c.name,
            address: c.address,
            address6: c.address6,
        }))
        .collect();
    let mut taken4: HashSet<Ipv4Addr> = present.iter().filter_map(|n| n.address).collect();
    let mut taken6: HashSet<Ipv6Addr> = present.iter().filter_map(|n| n.address6).collect();
    let mut v4: BTreeMap<NodeName, Ipv4Addr> = BTreeMap::new();
    let mut v6: BTreeMap<NodeName, Ipv6Addr> = BTreeMap::new();
    for node in &present {
        if let Some(address) = node.address {
            v4.insert(node.name.clone(), address);
        }
        if let Some(address) = node.address6 {
            v6.insert(node.name.clone(), address);
        }
    }
    // Pinned addresses, in inventory order; the first claimant of an address wins.
    for node in &present {
        let Some(entry) = lock.get(node.name.as_str()) else {
            continue;
        };
        if node.address.is_none()
            && let Some(address) = entry.address.filter(|a| is_host4(mesh.network, *a))
            && taken4.insert(address)
        {
            v4.insert(node.name.clone(), address);
        }
        if let Some(network6) = mesh.network6
            && node.address6.is_none()
            && let Some(address) = entry.address6.filter(|a| is_host6(network6, *a))
            && taken6.insert(address)
        {
            v6.insert(node.name.clone(), address);
        }
    }
    // Addresses still pinned for absent nodes are avoided while others are free.
    let mut reserved4: HashSet<Ipv4Addr> = HashSet::new();
    let mut reserved6: HashSet<Ipv6Addr> = HashSet::new();
    for node in inventory.absent_nodes() {
        if let Some(entry) = lock.get(node.name.as_str()) {
            reserved4.extend(entry.address.filter(|a| !taken4.contains(a)));
            reserved6.extend(entry.address6.filter(|a| !taken6.contains(a)));
        }
    }
    // Each node takes the lowest free address, so the next search starts there.
    let mut cursor = 0;
    for node in &present {
        if v4.contains_key(node.name) {
            continue;
        }
        let first = lowest_free4(mesh.network, &taken4, &reserved4, cursor);
        if let Some(a) = first {
            cursor = u32::from(a);
        }
        let address = first
            .or_else(|| lowest_free4(mesh.network, &taken4, &HashSet::new(), 0))
            .ok_or_else(|| AllocationError::Exhausted {
                node: node.name.clone(),
                network: mesh.network.to_string(),
            })?;
        taken4.insert(address);
        v4.insert(node.name.clone(), address);
    }
    if let Some(network6) = mesh.network6 {
        for node in &present {
            if v6.contains_key(node.name) {
                continue;
            }
            let host_number = v4
                .get(node.name)
                .map_or(0, |a| u32::from(*a) - u32::from(mesh.network.network()));
            let preferred = add6(network6.network(), u128::from(host_number));
            let address = preferred
                .filter(|a| is_host6(network6, *a) && !taken6.contains(a) && !reserved6.contains(a))
                .or_else(|| lowest_free6(network6, &taken6, &reserved6))
                .ok_or_else(|| AllocationError::Exhausted {
                    node: node.name.clone(),
                    network: network6.to_string(),
                })?;
            taken6.insert(address);
            v6.insert(node.name.clone(), address);
        }
    }
    let mut allocation = Allocation::default();
    let mut updated = AddressLock::default();
    for node in &present {
        let (Some(&address), address6) = (v4.get(node.name), v6.get(node.name).copied()) else {
            continue;
        };
        allocation.addresses.insert(
            node.name.clone(),
            NodeAddresses {
                v4: address,
                v6: address6,
            },
        );
        let entry = LockEntry {
            address: node.address.is_none().then_some(address),
            address6: address6.filter(|_| node.address6.is_none()),
        };
        if entry != LockEntry::default() {
            updated.insert(node.name.as_str(), entry);
        }
    }
    for node in inventory.absent_nodes() {
        if let Some(entry) = lock.get(node.name.as_str()) {
            let entry = LockEntry {
                address: entry.address.filter(|a| !taken4.contains(a)),
                address6: entry.address6.filter(|a| !taken6.contains(a)),
            };
            if entry != LockEntry::default() {
                updated.insert(node.name.as_str(), entry);
            }
        }
    }
    Ok((allocation, updated))
}

fn is_host4(network: Ipv4Net, address: Ipv4Addr) -> bool {
    network.contains(&address) && address != network.network() && address != network.broadcast()
}

fn is_host6(network: Ipv6Net, address: Ipv6Addr) -> bool {
    network.contains(&address) && address != network.network()
}

/// The lowest host address of `network` from `from` on that is neither taken nor avoided.
fn lowest_free4(
    network: Ipv4Net,
    taken: &HashSet<Ipv4Addr>,
    avoid: &HashSet<Ipv4Addr>,
    from: u32,
) -> Option<Ipv4Addr> {
    let mut hosts = network.hosts();
    let (first, last) = (hosts.next()?, hosts.next_back());
    let start = Ipv4Addr::from(u32::from(first).max(from));
    ipnet::Ipv4AddrRange::new(start, last.unwrap_or(first))
        .find(|a| is_host4(network, *a) && !taken.contains(a) && !avoid.contains(a))
}

fn lowest_free6(
    network: Ipv6Net,
    taken: &HashSet<Ipv6Addr>,
    avoid: &HashSet<Ipv6Addr>,
) -> Option<Ipv6Addr> {
    // Only as many candidates as there are used addresses, plus one, need looking at.
    let limit = taken.len() as u128 + avoid.len() as u128 + 2;
    (1..=limit)
        .filter_map(|n| add6(network.network(), n))
        .find(|a| is_host6(network, *a) && !taken.contains(a) && !avoid.contains(a))
}

fn add6(base: Ipv6Addr, offset: u128) -> Option<Ipv6Addr> {
    u128::from(base).checked_add(offset).map(Ipv6Addr::from)
}

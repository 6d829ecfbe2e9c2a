//! `meshup check`: validate the inventory and describe the mesh it gives, offline.
use std::fmt::Write as _;
use std::path::Path;

use crate::address::{self, AddressLock, Allocation};
use crate::inventory::Inventory;
use crate::inventory::Topology;
use crate::topology::{Mesh, NodeSpec, Role};

/// Loads, validates and allocates, then describes the mesh (the output of `meshup check`).
/// Reads the address lock but never writes it.
/// `all_peers` prints every node's peer list even above [`FULL_PEER_LISTS_UP_TO`] nodes.
/// The text goes to `emit` piece by piece (with `--peers`, one node's peer list at a time:
/// N × (N−1) lines are never held at once).
pub fn check(
    path: &Path,
    all_peers: bool,
    emit: &mut dyn FnMut(&str),
) -> Result<(), miette::Report> {
    let inventory = Inventory::load(path)?;
    let lock = AddressLock::load(inventory.lock_path())?;
    let (allocation, updated) = address::allocate(&inventory, &lock)?;
    let client_keys = crate::client_files::local_keys(&inventory)?;
    let mesh = Mesh::build(&inventory, &allocation).with_client_keys(&client_keys);
    let full = all_peers || mesh.nodes.len() <= FULL_PEER_LISTS_UP_TO;
    describe(&inventory, &allocation, &lock, &updated, &mesh, full, emit);
    Ok(())
}

/// Up to this many nodes `check` prints every peer list (N × (N-1) lines); above, one
/// line per node unless `--peers`.
pub const FULL_PEER_LISTS_UP_TO: usize = 30;

/// The text of `meshup check` for a valid inventory.
pub fn describe(
    inventory: &Inventory,
    allocation: &Allocation,
    lock: &AddressLock,
    updated: &AddressLock,
    mesh: &Mesh,
    full_peer_lists: bool,
    emit: &mut dyn FnMut(&str),
) {
    let settings = &mesh.settings;
    let mut out = String::new();
    let _ = writeln!(out, "{}: valid", inventory.path().display());
    let mut network = settings.network.to_string();
    if let Some(network6) = settings.network6 {
        let _ = write!(network, " + {network6}");
    }
    let keepalive = settings
        .persistent_keepalive
        .map_or_else(|| "off".to_owned(), |k| format!("{k}s"));
    let _ = writeln!(
        out,
        "mesh: interface {}, network {network}, port {}, keepalive {keepalive}, mtu {}, preshared keys {}, config dir {}",
        settings.interface,
        settings.listen_port,
        settings
            .mtu
            .map_or_else(|| "default".to_owned(), |m| m.to_string()),
        if settings.preshared_keys { "on" } else { "off" },
        settings.config_dir,
    );

    describe_topology(&mut out, mesh);
    let _ = writeln!(out, "\nnodes ({}):", mesh.nodes.len());
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "ADDRESS".to_owned(),
        "ROLE".to_owned(),
        "ENDPOINT".to_owned(),
        "TRANSIT".to_owned(),
        "SSH".to_owned(),
    ]];
    for spec in &mesh.nodes {
        let Some(node) = inventory.node(&spec.name) else {
            continue;
        };
        let mut address = spec.address.to_string();
        if let Some(v6) = spec.address6 {
            let _ = write!(address, " {v6}");
        }
        let source = match (
            node.address,
            lock.get(spec.name.as_str()).and_then(|e| e.address),
        ) {
            (Some(_), _) => "",
            (None, Some(pinned)) if pinned == spec.address => " (auto, locked)",
            (None, _) => " (auto, new)",
        };
        address.push_str(source);
        let mut transit = Vec::new();
        if spec.hub {
            transit.push(hub_text(mesh, spec));
        }
        if !spec.subnets.is_empty() {
            let subnets: Vec<String> = spec.subnets.iter().map(ToString::to_string).collect();
            transit.push(format!("routes {}", subnets.join(",")));
        }
        if !spec.relay_for.is_empty() {
            // A long list would widen every row of the table: name a few.
            const SHOWN: usize = 5;
            let names: Vec<&str> = spec
                .relay_for
                .iter()
                .take(SHOWN)
                .map(|n| n.as_str())
                .collect();
            let more = spec.relay_for.len().saturating_sub(SHOWN);
            transit.push(if more > 0 {
                format!("relays {} and {more} more", names.join(","))
            } else {
                format!("relays {}", names.join(","))
            });
        }
        if !spec.clients.is_empty() {
            let names: Vec<&str> = spec.clients.iter().map(|n| n.as_str()).collect();
            transit.push(format!("clients {}", names.join(",")));
        }
        let ssh = &node.ssh;
        let host = ssh.host.to_string();
        let mut ssh_text = if host.contains(':') {
            format!("{}@[{host}]:{}", ssh.user, ssh.port)
        } else {
            format!("{}@{host}:{}", ssh.user, ssh.port)
        };
        if let Some(jump) = &ssh.jump {
            let _ = write!(ssh_text, " via {jump}");
        }
        rows.push(vec![
            spec.name.to_string(),
            address,
            match spec.role {
                Role::Public => "public".to_owned(),
                Role::Nat => "nat".to_owned(),
            },
            match (&spec.endpoint, &spec.endpoint6) {
                (Some(e), Some(e6)) => format!("{e} {e6}"),
                (Some(e), None) => e.clone(),
                (None, _) => "-".to_owned(),
            },
            if spec.is_transit {
                transit.join("; ")
            } else {
                "-".to_owned()
            },
            ssh_text,
        ]);
    }
    write_table(&mut out, &rows, "  ");
    describe_clients(&mut out, inventory, lock, mesh);

    let _ = writeln!(out, "\npeers:");
    if !full_peer_lists {
        let _ = writeln!(
            out,
            "  ({}; peer lists are printed up to {FULL_PEER_LISTS_UP_TO} nodes, --peers prints them all)",
            match settings.topology {
                Topology::Full =>
                    "every node peers with every public node, NAT nodes through their relay",
                Topology::Hub(_) =>
                    "spokes peer with their site's hubs and members, the rest through their first hub; hubs peer with each other",
            }
        );
    }
    for spec in &mesh.nodes {
        if !full_peer_lists {
            let peers = mesh.peer_count(spec) + spec.clients.len();
            let _ = writeln!(out, "  {} ({peers} peers)", spec.name);
            continue;
        }
        let peers = mesh.config_peers(spec);
        let _ = writeln!(out, "  {} ({} peers)", spec.name, peers.len());
        let rows: Vec<Vec<String>> = peers
            .iter()
            .map(|peer| {
                let allowed: Vec<String> =
                    peer.allowed_ips.iter().map(ToString::to_string).collect();
                vec![
                    format!("-> {}", peer.name),
                    peer.endpoint.as_ref().map_or_else(
                        || {
                            if mesh.client(&peer.name).is_some() {
                                "no endpoint (client)".to_owned()
                            } else {
                                "no endpoint (peer behind NAT)".to_owned()
                            }
                        },
                        |e| match mesh
                            .node(&peer.name)
                            .and_then(|p| mesh.shared_network(spec, p))
                        {
                            Some(on) => format!("endpoint {e} (network {})", on.network),
                            None => endpoint_text(e, spec.name.as_str()),
                        },
                    ),
                    format!("allowed {}", allowed.join(", ")),
                    peer.persistent_keepalive
                        .map_or_else(String::new, |k| format!("keepalive {k}")),
                ]
            })
            .collect();
        write_table(&mut out, &rows, "    ");
        emit(&out);
        out.clear();
    }

    let network_paths = crate::network_path::network_paths(mesh);
    if !network_paths.is_empty() {
        let _ = writeln!(out, "\nprivate networks:");
        for pair in &network_paths {
            let _ = writeln!(out, "  {}", pair.line());
        }
    }
    if let Topology::Full = settings.topology {
        let relayed: Vec<String> = mesh
            .nodes
            .iter()
            .filter_map(|n| n.relay.as_ref().map(|r| format!("{} via {r}", n.name)))
            .collect();
        let _ = writeln!(
            out,
            "\nrelays: {}",
            if relayed.is_empty() {
                "none needed".to_owned()
            } else {
                relayed.join(", ")
            }
        );
    }
    if !mesh.absent.is_empty() {
        let names: Vec<&str> = mesh.absent.iter().map(|n| n.as_str()).collect();
        let _ = writeln!(out, "absent (to be removed): {}", names.join(", "));
    }
    let tunnels = mesh.tunnel_count();
    let _ = writeln!(
        out,
        "\n{} nodes, {} tunnels, {} addresses allocated automatically",
        mesh.nodes.len(),
        tunnels,
        allocation
            .iter()
            .filter(|(name, _)| {
                inventory.node(name).is_some_and(|n| n.address.is_none())
                    || inventory.client(name).is_some_and(|c| c.address.is_none())
            })
            .count(),
    );
    if updated != lock {
        let _ = writeln!(
            out,
            "address lock {} is not up to date; `meshup apply` will write it",
            inventory.lock_path().display()
        );
    }
    emit(&out);
}

/// The `topology:` line of a hub topology: each site with its hubs and size.
fn describe_topology(out: &mut String, mesh: &Mesh) {
    let Topology::Hub(sites) = &mesh.settings.topology else {
        return;
    };
    let mut members = vec![0usize; sites.len()];
    for spec in &mesh.nodes {
        if let Some(count) = spec.site.and_then(|i| members.get_mut(i)) {
            *count += 1;
        }
    }
    let parts: Vec<String> = sites
        .iter()
        .zip(&members)
        .map(|(site, count)| {
            let hubs: Vec<&str> = site.hubs.iter().map(|h| h.as_str()).collect();
            let name = site
                .name
                .as_ref()
                .map_or_else(String::new, |n| format!("site {n}: "));
            format!("{name}{count} nodes, hubs {}", hubs.join(", "))
        })
        .collect();
    let _ = writeln!(out, "topology: hub; {}", parts.join("; "));
}

/// A hub's part of the TRANSIT column: "hub of eu" (the first hub of a site carries its
/// spokes' traffic: "first hub of eu").
fn hub_text(mesh: &Mesh, spec: &NodeSpec) -> String {
    let Topology::Hub(sites) = &mesh.settings.topology else {
        return String::new();
    };
    let Some(site) = spec.site.and_then(|i| sites.get(i)) else {
        return "hub".to_owned();
    };
    let first = if site.hubs.first() == Some(&spec.name) {
        "first "
    } else {
        ""
    };
    match &site.name {
        Some(name) => format!("{first}hub of {name}"),
        None => format!("{first}hub"),
    }
}

/// The `clients (N):` table: address (and where it comes from), key, `via` nodes.
fn describe_clients(out: &mut String, inventory: &Inventory, lock: &AddressLock, mesh: &Mesh) {
    if mesh.clients.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nclients ({}):", mesh.clients.len());
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "ADDRESS".to_owned(),
        "KEY".to_owned(),
        "VIA".to_owned(),
    ]];
    for client in &mesh.clients {
        let Some(entry) = inventory.client(&client.name) else {
            continue;
        };
        let mut address = client.address.to_string();
        if let Some(v6) = client.address6 {
            let _ = write!(address, " {v6}");
        }
        address.push_str(
            match (
                entry.address,
                lock.get(client.name.as_str()).and_then(|e| e.address),
            ) {
                (Some(_), _) => "",
                (None, Some(pinned)) if pinned == client.address => " (auto, locked)",
                (None, _) => " (auto, new)",
            },
        );
        let path = crate::client_files::config_path(inventory, &client.name);
        let key = match (client.generated, client.public_key) {
            (false, Some(key)) => format!("given {key}"),
            (true, Some(key)) => format!("generated {key} ({})", path.display()),
            (_, None) => format!("generated on the next apply ({})", path.display()),
        };
        let via: Vec<&str> = client.via.iter().map(|v| v.as_str()).collect();
        rows.push(vec![client.name.to_string(), address, key, via.join(", ")]);
    }
    write_table(out, &rows, "  ");
}

/// Cells longer than this overflow their column instead of widening it for every row
/// (a relay's AllowedIPs in a big mesh would otherwise pad thousands of lines).
const MAX_COLUMN_WIDTH: usize = 120;

/// Writes rows as left-aligned columns, trimming trailing spaces.
fn write_table(out: &mut String, rows: &[Vec<String>], indent: &str) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .filter(|w| *w <= MAX_COLUMN_WIDTH)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = indent.to_owned();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// A peer's endpoint as `check` lists it; a DNS name says where it is resolved.
fn endpoint_text(endpoint: &str, holder: &str) -> String {
    if crate::inventory::endpoint_dns_name(endpoint).is_some() {
        format!("endpoint {endpoint} (DNS name, resolved on {holder})")
    } else {
        format!("endpoint {endpoint}")
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_text;

    #[test]
    fn a_dns_endpoint_is_listed_as_a_name_resolved_on_the_holder() {
        for (endpoint, want) in [
            (
                "node-b.example.net:51820",
                "endpoint node-b.example.net:51820 (DNS name, resolved on node-c)",
            ),
            ("198.51.100.20:51820", "endpoint 198.51.100.20:51820"),
            ("[2001:db8::2]:51820", "endpoint [2001:db8::2]:51820"),
        ] {
            assert_eq!(endpoint_text(endpoint, "node-c"), want);
        }
    }
}

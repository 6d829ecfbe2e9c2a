//! Rendering of a node's WireGuard config (`wg0.conf`). Pure and deterministic: the same
//! mesh gives byte-identical text. Secrets appear only as tokens the host fills in.
use std::fmt::Write as _;

use crate::inventory::NodeName;
use crate::keys::PublicKey;
use crate::topology::{ClientSpec, Mesh, NodeSpec, PeerSpec};

/// The token standing for the host's private key.
pub const PRIVATE_KEY_TOKEN: &str = "<secret:private.key>";
/// What a peer's `PublicKey` says before the key exists (generated on the host later).
pub const UNKNOWN_PUBLIC_KEY: &str = "(generated on host)";
/// First line of every rendered config.
pub const HEADER: &str = "# Managed by meshup: local changes are replaced on the next apply.";

/// The token standing for the preshared key shared with `peer`.
pub fn psk_token(peer: &NodeName) -> String {
    format!("<secret:psk-{peer}.key>")
}

/// First line of a generated client's config.
pub const CLIENT_HEADER: &str =
    "# Written by meshup for an unmanaged client: keep it secret, it holds the private key.";

/// Renders `node`'s config, in the guide's field order, peers (nodes and clients) in
/// name order. Clients' keys come from the mesh when `public_key` does not know them.
/// Returns an empty string when `node` is not a present node of `mesh`.
pub fn render_config(
    mesh: &Mesh,
    node: &NodeName,
    public_key: &dyn Fn(&NodeName) -> Option<PublicKey>,
) -> String {
    let Some(spec) = mesh.node(node) else {
        return String::new();
    };
    let lookup = |n: &NodeName| public_key(n).or_else(|| mesh.client(n).and_then(|c| c.public_key));
    render_node(spec, &mesh.config_peers(spec), &lookup)
}

/// Renders a client's own config (for `wg-quick up` on the device): its addresses, the
/// private key token, and one peer per `via` node with endpoint and keepalive. A `via`
/// node whose key is unknown is left out (named in the returned list).
pub fn render_client(
    mesh: &Mesh,
    client: &ClientSpec,
    public_key: &dyn Fn(&NodeName) -> Option<PublicKey>,
) -> (String, Vec<NodeName>) {
    let mut out = String::new();
    let mut left_out = Vec::new();
    let _ = writeln!(out, "{CLIENT_HEADER}");
    let _ = writeln!(out, "# Client: {}", client.name);
    let _ = writeln!(out, "[Interface]");
    let addresses: Vec<String> = client
        .interface_addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(out, "Address = {}", addresses.join(", "));
    if let Some(mtu) = mesh.settings.mtu {
        let _ = writeln!(out, "MTU = {mtu}");
    }
    let _ = writeln!(out, "PrivateKey = {PRIVATE_KEY_TOKEN}");
    for peer in mesh.client_config_peers(client) {
        let Some(key) = public_key(&peer.name) else {
            left_out.push(peer.name);
            continue;
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "# Peer: {}", peer.name);
        let _ = writeln!(out, "[Peer]");
        let _ = writeln!(out, "PublicKey = {key}");
        if let Some(endpoint) = &peer.endpoint {
            let _ = writeln!(out, "Endpoint = {endpoint}");
        }
        let allowed: Vec<String> = peer.allowed_ips.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "AllowedIPs = {}", allowed.join(", "));
        if let Some(keepalive) = peer.persistent_keepalive {
            let _ = writeln!(out, "PersistentKeepalive = {keepalive}");
        }
    }
    (out, left_out)
}

/// Renders one node's config with the given peer entries (all of the mesh's, or fewer).
pub fn render_node(
    spec: &NodeSpec,
    peers: &[PeerSpec],
    public_key: &dyn Fn(&NodeName) -> Option<PublicKey>,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{HEADER}");
    let _ = writeln!(out, "[Interface]");
    let addresses: Vec<String> = spec
        .interface_addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(out, "Address = {}", addresses.join(", "));
    let _ = writeln!(out, "ListenPort = {}", spec.listen_port);
    if let Some(mtu) = spec.mtu {
        let _ = writeln!(out, "MTU = {mtu}");
    }
    let _ = writeln!(out, "PrivateKey = {PRIVATE_KEY_TOKEN}");
    if let Some(file) = &spec.acl_file {
        let _ = writeln!(out, "PostUp = nft -f {file}");
    }
    if let Some(file) = &spec.route_file {
        // Neither a missing script (removed by hand) nor a failing one stops the
        // interface coming up (wg-quick tears it down when a hook fails): the mesh comes
        // back, and the next plan shows what is not in place.
        let _ = writeln!(out, "PostUp = [ ! -f {file} ] || sh {file} up || true");
        let _ = writeln!(out, "PreDown = [ ! -f {file} ] || sh {file} down");
    }
    for peer in peers {
        let _ = writeln!(out);
        let _ = writeln!(out, "# Peer: {}", peer.name);
        let _ = writeln!(out, "[Peer]");
        match public_key(&peer.name) {
            Some(key) => {
                let _ = writeln!(out, "PublicKey = {key}");
            }
            None => {
                let _ = writeln!(out, "PublicKey = {UNKNOWN_PUBLIC_KEY}");
            }
        }
        if peer.psk {
            let _ = writeln!(out, "PresharedKey = {}", psk_token(&peer.name));
        }
        if let Some(endpoint) = &peer.endpoint {
            let _ = writeln!(out, "Endpoint = {endpoint}");
        }
        let allowed: Vec<String> = peer.allowed_ips.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "AllowedIPs = {}", allowed.join(", "));
        if let Some(keepalive) = peer.persistent_keepalive {
            let _ = writeln!(out, "PersistentKeepalive = {keepalive}");
        }
    }
    out
}

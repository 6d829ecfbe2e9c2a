//! IPv6 underlay (issue #28), against real hosts: public hosts reached only over IPv6
//! (the lab's `--v6-only`: 2001:db8::/32 routed by the lab's internet router, no IPv4
//! address at all), a dual-stack one (`--dual`) and a node behind an IPv4 NAT. meshup
//! connects over IPv6 SSH, the IPv6-only hosts install WireGuard from the mirror over IPv6,
//! and the pairs without a common family go through the dual-stack node, whose nftables
//! (like pub-2's) drops what it does not allow in both families. What is emulated:
//! the internet (one router hop, both families).
use crate::apply_lab::assert_ping_matrix;
use crate::firewall_lab::NFT_ROUTER;
use crate::support_lab::{Lab, apply_ok, assert_no_changes, meshup, path_str};
use crate::topology_lab::verify_healthy;

/// The lab: pub-1 dual-stack, pub-2 and pub-3 IPv6 only, nat-1 behind an IPv4 NAT (the
/// schema test validates the inventory such a lab generates).
pub(crate) const LAB_ARGS: &[&str] = &[
    "--public",
    "3",
    "--nat",
    "1",
    "--dual",
    "pub-1",
    "--v6-only",
    "pub-2,pub-3",
];

#[test]
fn ipv6_lab_v6_only_nodes_and_an_ipv4_nat_node_mesh_through_the_dual_stack_one() {
    require_lab!();
    let lab = Lab::up_with("v6-mix", LAB_ARGS);
    let inv = lab.inventory();
    let inventory = std::fs::read_to_string(&inv).expect("read the lab inventory");
    for v6 in ["pub-2", "pub-3"] {
        let host = lab.host(v6);
        assert_eq!(host.public_ip, None, "{v6} has no IPv4 address");
        let addr = host.public_ip6.clone().expect("an IPv6 address");
        assert_eq!(host.ssh_host, addr, "{v6}: SSH goes over IPv6");
        assert!(
            inventory.contains(&format!("endpoint: \"[{addr}]:51820\"")),
            "{inventory}"
        );
        // Really IPv6 only: the host has no global IPv4 address.
        let v4 = lab.host_exec(v6, "ip -4 -o addr show scope global");
        assert_eq!(v4.expect_ok("ip -4 addr").trim(), "", "{v6} has IPv4");
    }

    // The relay and an IPv6-only host drop what they do not allow, in both families
    // (nftables, inet family): apply must open the port and, on the relay, forwarding.
    for host in ["pub-1", "pub-2"] {
        lab.host_exec(host, NFT_ROUTER)
            .expect_ok("load a dropping nftables ruleset");
    }

    // From bare: installs WireGuard (over IPv6 on pub-2 and pub-3), keys, configs.
    apply_ok(&lab, &inv, &[]);
    let relayed = |host: &str| {
        meshup(&lab, &["check", path_str(&inv)])
            .expect_ok("check")
            .contains(&format!("{host} via pub-1"))
    };
    for host in ["nat-1", "pub-2", "pub-3"] {
        assert!(relayed(host), "{host} is relayed through pub-1");
    }
    // The IPv6-only hosts run the tunnel over IPv6: pub-2 sends to pub-1's endpoint6 and
    // pub-3's IPv6 endpoint, handshakes done.
    let endpoints = lab
        .host_exec("pub-2", "wg show wg0 endpoints")
        .expect_ok("wg show endpoints")
        .to_owned();
    let pub1 = lab.host("pub-1").public_ip6.clone().expect("pub-1 IPv6");
    let pub3 = lab.host("pub-3").public_ip6.clone().expect("pub-3 IPv6");
    for want in [format!("[{pub1}]:51820"), format!("[{pub3}]:51820")] {
        assert!(endpoints.contains(&want), "pub-2 endpoints:\n{endpoints}");
    }

    // verify: healthy, the family-mismatched pairs relayed through pub-1, the rest direct.
    let json = verify_healthy(&lab, path_str(&inv));
    let path = |from: &str, to: &str| {
        json["pairs"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["from"] == from && p["to"] == to))
            .map(|p| p["path"].clone())
            .unwrap_or_else(|| panic!("no pair {from} -> {to} in {json}"))
    };
    for (from, to) in [("nat-1", "pub-2"), ("pub-3", "nat-1")] {
        assert_eq!(path(from, to)["kind"], "relayed", "{from} -> {to}");
        assert_eq!(path(from, to)["relay"], "pub-1", "{from} -> {to}");
    }
    for (from, to) in [("pub-2", "pub-3"), ("nat-1", "pub-1"), ("pub-2", "pub-1")] {
        assert_eq!(path(from, to)["kind"], "direct", "{from} -> {to}");
    }

    // Every pair carries traffic over the IPv4 mesh addresses, and nothing is left to do.
    assert_ping_matrix(&lab, &["pub-1", "pub-2", "pub-3", "nat-1"]);
    assert_no_changes(&lab, &inv);
}

//! `meshup init`, the pure part: fresh hosts as the scan reported them (their addresses,
//! distribution, firewall) and the address the workstation reached each at, turned into
//! a commented inventory: public nodes with an endpoint, nodes behind NAT without one,
//! addresses allocated in a mesh network none of the hosts uses, preshared keys on.
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use crate::import::{self, ImportHost};

/// The WireGuard port `init` proposes.
pub const LISTEN_PORT: u16 = 51820;

/// A host to put in the inventory: how it was reached and what it reported.
#[derive(Debug, Clone)]
pub struct InitHost {
    /// How it was reached and what it reported (the import scan).
    pub host: ImportHost,
    /// The address the workstation's SSH connection went to.
    pub reached: Option<IpAddr>,
}

impl InitHost {
    /// The address the workstation reached is on one of the host's own interfaces:
    /// peers can reach it there too.
    pub fn is_public(&self) -> bool {
        self.reached
            .is_some_and(|r| self.host.scan.addresses.iter().any(|(_, a)| a.addr() == r))
    }
}

/// The first /24 of 10.10-10.250 that none of the hosts' networks overlaps.
pub fn free_network(hosts: &[InitHost]) -> Ipv4Net {
    let used: Vec<IpNet> = hosts
        .iter()
        .flat_map(|h| h.host.scan.addresses.iter().map(|(_, a)| a.trunc()))
        .collect();
    (10u8..=250)
        .filter_map(|b| Ipv4Net::new(std::net::Ipv4Addr::new(10, b, 0, 0), 24).ok())
        .find(|net| {
            let net = IpNet::V4(*net);
            used.iter()
                .all(|u| !u.contains(&net.network()) && !net.contains(&u.network()))
        })
        .unwrap_or_else(|| {
            Ipv4Net::new(std::net::Ipv4Addr::new(10, 10, 0, 0), 24).unwrap_or_default()
        })
}

/// The inventory text, commented for a first reader.
pub fn build(hosts: &[InitHost], ssh_config: Option<&str>) -> String {
    let network = free_network(hosts);
    let refs: Vec<&ImportHost> = hosts.iter().map(|h| &h.host).collect();
    let names = import::unique_names(&refs, &[]);
    let mut y = String::new();
    y.push_str("# Written by `meshup init`: review it, then `meshup plan` and `meshup apply`.\n");
    y.push_str(
        "# Nodes whose SSH address is on their own interface are public: the others reach\n",
    );
    y.push_str("# them at that address. The others are behind NAT: no endpoint, they initiate.\n");
    y.push_str("mesh:\n");
    let _ = writeln!(y, "  network: {network}      # no host uses it");
    let _ = writeln!(y, "  listen_port: {LISTEN_PORT}");
    y.push_str("  persistent_keepalive: 25\n");
    y.push_str(
        "  preshared_keys: true      # a random key per pair, made on the workstation in memory\n",
    );
    y.push_str(&import::ssh_config_yaml(ssh_config));
    y.push_str("\nnodes:\n");
    let mut hosts_ip = network.hosts();
    for (h, name) in hosts.iter().zip(&names) {
        let scan = &h.host.scan;
        let addrs: Vec<String> = scan
            .addresses
            .iter()
            .map(|(d, a)| format!("{a} on {d}"))
            .collect();
        let _ = writeln!(
            y,
            "  # {}: {}, firewall {}; addresses: {}",
            h.host.target,
            if scan.os.is_empty() {
                "unknown distribution"
            } else {
                &scan.os
            },
            if scan.firewall.is_empty() {
                "unknown"
            } else {
                &scan.firewall
            },
            if addrs.is_empty() {
                "none seen".to_string()
            } else {
                addrs.join(", ")
            }
        );
        let _ = writeln!(y, "  - name: {name}");
        if let Some(ip) = hosts_ip.next() {
            let _ = writeln!(y, "    address: {ip}");
        }
        match h.reached {
            Some(r) if h.is_public() => {
                let endpoint = match r {
                    IpAddr::V4(v4) => format!("{v4}:{LISTEN_PORT}"),
                    IpAddr::V6(v6) => format!("[{v6}]:{LISTEN_PORT}"),
                };
                let _ = writeln!(y, "    endpoint: {}", import::quote(&endpoint));
            }
            Some(r) => {
                let _ = writeln!(
                    y,
                    "    # behind NAT: reached at {r}, which is not on its interfaces; no endpoint, it initiates"
                );
            }
            None => y.push_str("    # its SSH address did not resolve: no endpoint (add one if peers can reach it)\n"),
        }
        y.push_str(&import::node_ssh(&h.host, name));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::ScannedHost;

    fn host(target: &str, hostname: &str, reached: &str, addrs: &[(&str, &str)]) -> InitHost {
        InitHost {
            host: ImportHost {
                target: target.into(),
                user: None,
                port: (target == "c").then_some(2222),
                scan: ScannedHost {
                    hostname: hostname.into(),
                    addresses: addrs
                        .iter()
                        .map(|(d, a)| ((*d).to_string(), a.parse().expect("net")))
                        .collect(),
                    os: "debian 12".into(),
                    firewall: "none".into(),
                    complete: true,
                    ..ScannedHost::default()
                },
            },
            reached: reached.parse().ok(),
        }
    }

    #[test]
    fn public_and_nat_nodes_are_told_apart_and_the_inventory_loads() {
        let hosts = [
            host(
                "a",
                "node-a",
                "203.0.113.10",
                &[("eth0", "203.0.113.10/31")],
            ),
            host(
                "b",
                "node-b",
                "198.51.100.20",
                &[("eth0", "198.51.100.20/31"), ("eth1", "10.10.0.7/24")],
            ),
            host("c", "node-c", "100.64.0.2", &[("eth0", "192.168.3.2/24")]),
        ];
        // (host, public)
        for (h, public) in hosts.iter().zip([true, true, false]) {
            assert_eq!(h.is_public(), public, "{}", h.host.target);
        }
        // 10.10.0.0/24 is node-b's LAN: the mesh takes the next free /24.
        assert_eq!(free_network(&hosts).to_string(), "10.11.0.0/24");
        let text = build(&hosts, Some("/lab/ssh_config"));
        for want in [
            "  network: 10.11.0.0/24",
            "  preshared_keys: true",
            "  ssh_config: \"/lab/ssh_config\"",
            "  - name: node-a\n    address: 10.11.0.1\n    endpoint: \"203.0.113.10:51820\"\n",
            "  - name: node-c\n    address: 10.11.0.3\n    # behind NAT: reached at 100.64.0.2",
            "      host: \"c\"\n      port: 2222\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let inv = crate::inventory::Inventory::from_str(&text, "init.yaml").expect("loads");
        assert_eq!(inv.nodes().len(), 3);
        assert_eq!(inv.nodes().iter().filter(|n| n.is_public()).count(), 2);
    }

    #[test]
    fn a_host_reached_over_ipv6_on_its_own_interface_is_public_with_a_bracketed_endpoint() {
        let hosts = [
            host("d", "node-d", "2001:db8::5", &[("eth0", "2001:db8::5/64")]),
            host("e", "node-e", "2001:db8::7", &[("eth0", "2001:db8::6/64")]),
        ];
        for (h, public) in hosts.iter().zip([true, false]) {
            assert_eq!(h.is_public(), public, "{}", h.host.target);
        }
        let text = build(&hosts, None);
        let want =
            "  - name: node-d\n    address: 10.10.0.1\n    endpoint: \"[2001:db8::5]:51820\"\n";
        assert!(text.contains(want), "missing {want:?} in\n{text}");
        // node-e, reached at an address not its own, is behind NAT: IPv4, which node-d
        // (IPv6 only) cannot reach without a dual-stack node: refused, naming the pair.
        let err = crate::inventory::Inventory::from_str(&text, "init.yaml").expect_err("refused");
        assert!(
            format!("{err:?}").contains("share no underlay address family"),
            "{err:?}"
        );
    }
}

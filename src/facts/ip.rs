//! The `ip-addr` and `ip-route` facts: addresses and routes on the WireGuard interface.

use ipnet::IpNet;
use serde::Serialize;

/// Addresses configured on the interface (`ip -o addr show dev <if>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InterfaceAddresses {
    /// Every `inet`/`inet6` address with its prefix, link-local ones included.
    pub addresses: Vec<IpNet>,
}

impl InterfaceAddresses {
    /// Parses one-line-per-address output of iproute2 or busybox `ip`.
    pub fn parse(body: &str) -> InterfaceAddresses {
        let mut addresses = Vec::new();
        for line in body.lines() {
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                if word == "inet" || word == "inet6" {
                    if let Some(net) = words.next().and_then(|a| a.parse::<IpNet>().ok()) {
                        addresses.push(net);
                    }
                    break;
                }
            }
        }
        InterfaceAddresses { addresses }
    }

    /// Addresses that are not IPv6 link-local (the ones meshup manages).
    pub fn global(&self) -> Vec<IpNet> {
        self.addresses
            .iter()
            .filter(|net| match net {
                IpNet::V6(v6) => (v6.addr().segments()[0] & 0xffc0) != 0xfe80,
                IpNet::V4(_) => true,
            })
            .copied()
            .collect()
    }
}

/// One route through the interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Route type when not unicast (`local`, `broadcast`, `multicast`, ...).
    pub kind: Option<String>,
    /// Destination (`default` becomes 0.0.0.0/0 or ::/0).
    pub destination: IpNet,
    /// Routing table when not `main`.
    pub table: Option<String>,
    /// `proto` of the route (`kernel`, `static`, `boot`, ...).
    pub proto: Option<String>,
}

/// Routes through the interface in every table (`ip route show table all dev <if>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InterfaceRoutes {
    /// Routes in output order, duplicates removed.
    pub routes: Vec<Route>,
}

const ROUTE_KINDS: [&str; 9] = [
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "unreachable",
    "blackhole",
    "prohibit",
    "throw",
];

impl InterfaceRoutes {
    /// Parses iproute2 or busybox route lines; unparsable lines are skipped.
    pub fn parse(body: &str) -> InterfaceRoutes {
        let mut routes: Vec<Route> = Vec::new();
        for line in body.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(first) = words.first() else { continue };
            let (kind, rest) = if ROUTE_KINDS.contains(first) {
                (Some(first.to_string()), &words[1..])
            } else {
                (None, &words[..])
            };
            let Some(dest) = rest.first() else { continue };
            let Some(destination) = parse_destination(dest) else {
                continue;
            };
            let after = |key: &str| {
                rest.windows(2)
                    .find(|w| w[0] == key)
                    .map(|w| w[1].to_string())
            };
            let route = Route {
                kind: kind.filter(|k| k != "unicast"),
                destination,
                table: after("table").filter(|t| t != "main"),
                proto: after("proto"),
            };
            if !routes.contains(&route) {
                routes.push(route);
            }
        }
        InterfaceRoutes { routes }
    }

    /// Destinations of ordinary (unicast) routes, as wg-quick adds them for AllowedIPs.
    pub fn unicast_destinations(&self) -> Vec<IpNet> {
        self.routes
            .iter()
            .filter(|r| r.kind.is_none())
            .map(|r| r.destination)
            .collect()
    }
}

fn parse_destination(text: &str) -> Option<IpNet> {
    if text == "default" {
        return "0.0.0.0/0".parse().ok();
    }
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    let addr: std::net::IpAddr = text.parse().ok()?;
    Some(IpNet::from(addr))
}

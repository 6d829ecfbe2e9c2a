//! The `ip-addr` and `ip-route` facts: addresses and routes on the WireGuard interface,
//! and its link (`ip -o link`), as iproute2 or busybox `ip` print them.

use ipnet::IpNet;
use serde::Serialize;

/// The interface as `ip -o link show dev <if>` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkInfo {
    /// Live MTU.
    pub mtu: Option<u32>,
    /// The link has the UP flag.
    pub up: bool,
}

impl LinkInfo {
    /// Parses the `ip -o link` line; `None` when there is none (no such device).
    pub fn parse(body: &str) -> Option<LinkInfo> {
        let line = body.lines().find(|l| l.contains(" mtu "))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let mtu = words
            .windows(2)
            .find(|w| w[0] == "mtu")
            .and_then(|w| w[1].parse().ok());
        let flags = line
            .split('<')
            .nth(1)
            .and_then(|f| f.split('>').next())
            .unwrap_or("");
        Some(LinkInfo {
            mtu,
            up: flags.split(',').any(|f| f == "UP"),
        })
    }
}

/// Addresses configured on the interface (`ip -o addr show dev <if>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InterfaceAddresses {
    /// Every `inet`/`inet6` address with its prefix, link-local ones included.
    pub addresses: Vec<IpNet>,
}

impl InterfaceAddresses {
    /// No address at all.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

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

impl Route {
    /// A route that sends traffic out of the interface (unicast, not in the local table).
    pub fn forwards(&self) -> bool {
        self.kind.is_none() && self.table.as_deref() != Some("local")
    }
}

/// Routes through the interface in every table (`ip route show table all dev <if>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InterfaceRoutes {
    /// Routes in output order, duplicates removed.
    pub routes: Vec<Route>,
}

const ROUTE_KINDS: [&str; 10] = [
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "unreachable",
    "blackhole",
    "prohibit",
    "throw",
    "nat",
];

impl InterfaceRoutes {
    /// Parses iproute2 or busybox route lines; unparsable lines are skipped and
    /// `default` is read as 0.0.0.0/0.
    pub fn parse(body: &str) -> InterfaceRoutes {
        Self::parse_family(body, false)
    }

    /// Like [`InterfaceRoutes::parse`] for the output of `ip -4` (`ipv6` false) or
    /// `ip -6` (`ipv6` true), which decides what `default` stands for.
    pub fn parse_family(body: &str, ipv6: bool) -> InterfaceRoutes {
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
            let Some(destination) = parse_destination(dest, ipv6) else {
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

fn parse_destination(text: &str, ipv6: bool) -> Option<IpNet> {
    if text == "default" {
        return if ipv6 { "::/0" } else { "0.0.0.0/0" }.parse().ok();
    }
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    let addr: std::net::IpAddr = text.parse().ok()?;
    Some(IpNet::from(addr))
}

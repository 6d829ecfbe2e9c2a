//! Parsers for `ip -o link`, `ip -o addr` and `ip route show table all dev <if>`.
use ipnet::IpNet;
use serde::Serialize;

/// The interface as `ip -o link` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkInfo {
    /// Live MTU.
    pub mtu: Option<u32>,
    /// The link has the UP flag.
    pub up: bool,
}

/// A route on the WireGuard interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Route type (`unicast`, `local`, `broadcast`, `multicast`, …).
    pub kind: String,
    /// Destination; `default` becomes 0.0.0.0/0 or ::/0.
    pub destination: IpNet,
    /// Routing table (`main` when ip printed none).
    pub table: String,
}

impl Route {
    /// A route that sends traffic out of the interface (not local/broadcast/multicast).
    pub fn forwards(&self) -> bool {
        self.kind == "unicast" && self.table != "local"
    }
}

/// Parses one `ip -o link show dev <if>` line.
pub fn parse_link(text: &str) -> Option<LinkInfo> {
    let line = text.lines().find(|l| l.contains(" mtu "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mtu = words
        .iter()
        .position(|w| *w == "mtu")
        .and_then(|i| words.get(i + 1))
        .and_then(|m| m.parse().ok());
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

/// Parses `ip -o addr show dev <if>` into the interface's addresses with prefixes.
pub fn parse_addrs(text: &str) -> Vec<IpNet> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "inet" || *w == "inet6")?;
            words.get(i + 1)?.parse().ok()
        })
        .collect()
}

const ROUTE_TYPES: [&str; 10] = [
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

/// Parses `ip -4/-6 route show table all dev <if>` lines.
pub fn parse_routes(text: &str, ipv6: bool) -> Vec<Route> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().peekable();
            let first = *words.peek()?;
            let kind = if ROUTE_TYPES.contains(&first) {
                words.next();
                first
            } else {
                "unicast"
            };
            let dst = words.next()?;
            let destination: IpNet = match dst {
                "default" => {
                    if ipv6 {
                        "::/0".parse().ok()?
                    } else {
                        "0.0.0.0/0".parse().ok()?
                    }
                }
                d if d.contains('/') => d.parse().ok()?,
                d => IpNet::from(d.parse::<std::net::IpAddr>().ok()?),
            };
            let rest: Vec<&str> = words.collect();
            let table = rest
                .iter()
                .position(|w| *w == "table")
                .and_then(|i| rest.get(i + 1))
                .map_or("main", |t| t);
            Some(Route {
                kind: kind.to_owned(),
                destination,
                table: table.to_owned(),
            })
        })
        .collect()
}

//! A node's public WireGuard endpoint: `host[:port]`, the host an IP address or a DNS name.
use std::fmt;
use std::net::IpAddr;

use super::split_host_port;

/// The host part of a public WireGuard endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointHost {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name (resolved by `wg` on the host).
    Dns(String),
}

/// A public WireGuard endpoint: host and UDP port. Displays as `host:port`
/// (`[v6]:port` for IPv6), the form `Endpoint =` takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IP address or DNS name.
    pub host: EndpointHost,
    /// UDP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `host[:port]`; a missing port is `default_port` (the node's listen port).
    pub fn parse(text: &str, default_port: u16) -> Result<Self, String> {
        let (host, port) = split_host_port(text).map_err(|e| format!("endpoint `{text}`: {e}"))?;
        let host = if let Ok(ip) = host.parse::<IpAddr>() {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!("endpoint `{text}`: {ip} is not a unicast address"));
            }
            EndpointHost::Ip(ip)
        } else if host.chars().all(|c| c.is_ascii_digit() || c == '.') && !host.is_empty() {
            return Err(format!(
                "endpoint `{text}`: `{host}` is not a valid IP address"
            ));
        } else if host.contains(':') {
            return Err(format!(
                "endpoint `{text}`: `{host}` is not a valid IPv6 address (write `[v6]:port`)"
            ));
        } else {
            match dns_name_error(host) {
                None => EndpointHost::Dns(host.to_ascii_lowercase()),
                Some(why) => {
                    return Err(format!(
                        "endpoint `{text}`: `{host}` is not a valid DNS name: {why}"
                    ));
                }
            }
        };
        Ok(Self {
            host,
            port: port.unwrap_or(default_port),
        })
    }
}

/// Why `text` is not a DNS name (`None` when it is one): dot-separated labels of 1-63
/// `[A-Za-z0-9-]`, not starting or ending with '-', at most 253 characters, optionally one
/// trailing dot. The reason names the first rule broken, for the inventory error.
fn dns_name_error(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    if name.len() > 253 {
        return Some(format!(
            "it is {} characters long; a DNS name has at most 253",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots in a row, or a leading dot)".to_owned());
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "it contains {bad:?}; a DNS name has only letters, digits, '-' and '.'"
            ));
        }
        if label.len() > 63 {
            return Some(format!(
                "label `{label}` is {} characters long; a label has at most 63",
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label `{label}` starts or ends with '-'"));
        }
    }
    None
}

/// The DNS name of an endpoint written `host:port` (as the topology holds it), `None` when
/// the host is an IP address. A name is resolved by `wg` on the host that holds the peer
/// entry, never on the workstation, so `wg show` reports an address where the config says
/// the name.
pub fn endpoint_dns_name(endpoint: &str) -> Option<&str> {
    if endpoint.starts_with('[') {
        return None;
    }
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host);
    (host.parse::<IpAddr>().is_err() && dns_name_error(host).is_none()).then_some(host)
}

/// Whether a live endpoint (`wg show`'s `ip:port`) is what the configured `expected`
/// endpoint gives: the same text for an address; for a DNS name, any address on the same
/// port (what the name resolves to is only known on the host).
pub fn endpoint_matches(live: &str, expected: &str) -> bool {
    if endpoint_dns_name(expected).is_none() {
        return live == expected;
    }
    let port = |e: &str| e.rsplit_once(':').map(|(_, p)| p.to_owned());
    live.parse::<std::net::SocketAddr>().is_ok() && port(live) == port(expected)
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            EndpointHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            EndpointHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            EndpointHost::Dns(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

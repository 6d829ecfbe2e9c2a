//! `mesh.firewall.rules`: the optional mesh ACL (Nebula's groups-based firewall as the
//! model). Nodes carry `groups:`; each rule lets traffic `from` a group, a node, a client
//! or `any` source `to` a group, a node or `any` node, on some ports. A node that some
//! rule names as a destination accepts on the mesh interface only what the rules let in.

use std::fmt;
use std::str::FromStr;

use super::names::NodeName;

/// A group name: `[a-z0-9][a-z0-9_-]*`, at most 32 characters, not `any`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    /// The validated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for GroupName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "any" {
            return Err("`any` is reserved: in a rule it means every source or node".into());
        }
        if !super::layout::is_label(text) {
            return Err(format!(
                "group `{text}` is not a group name: [a-z0-9][a-z0-9_-]*, at most 32 characters"
            ));
        }
        Ok(GroupName(text.to_string()))
    }
}

/// One side of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclPeer {
    /// Every source (any address arriving on the mesh interface) or every node.
    Any,
    /// The nodes carrying this group.
    Group(GroupName),
    /// One node (or, as a source, one client).
    Node(NodeName),
}

impl fmt::Display for AclPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclPeer::Any => f.write_str("any"),
            AclPeer::Group(g) => write!(f, "group {g}"),
            AclPeer::Node(n) => f.write_str(n.as_str()),
        }
    }
}

/// What a rule lets through: a TCP or UDP port range (inclusive) or ICMP echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclPort {
    /// TCP ports `low..=high`.
    Tcp(u16, u16),
    /// UDP ports `low..=high`.
    Udp(u16, u16),
    /// ICMP / ICMPv6 echo request.
    Icmp,
}

impl AclPort {
    /// `port` is a TCP port this entry lets in.
    pub fn admits_tcp(&self, port: u16) -> bool {
        matches!(self, AclPort::Tcp(low, high) if (*low..=*high).contains(&port))
    }
}

impl FromStr for AclPort {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "port `{text}` is not a port spec: `5432/tcp`, `53/udp`, a range `6000-6010/tcp`, or `icmp`"
            )
        };
        if text == "icmp" {
            return Ok(AclPort::Icmp);
        }
        let (range, proto) = text.split_once('/').ok_or_else(bad)?;
        let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p != 0);
        let (low, high) = match range.split_once('-') {
            Some((l, h)) => (port(l).ok_or_else(bad)?, port(h).ok_or_else(bad)?),
            None => {
                let p = port(range).ok_or_else(bad)?;
                (p, p)
            }
        };
        if low > high {
            return Err(format!("port range `{range}` runs backwards in `{text}`"));
        }
        match proto {
            "tcp" => Ok(AclPort::Tcp(low, high)),
            "udp" => Ok(AclPort::Udp(low, high)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for AclPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |f: &mut fmt::Formatter<'_>, l: u16, h: u16, p: &str| {
            if l == h {
                write!(f, "{l}/{p}")
            } else {
                write!(f, "{l}-{h}/{p}")
            }
        };
        match *self {
            AclPort::Tcp(l, h) => range(f, l, h, "tcp"),
            AclPort::Udp(l, h) => range(f, l, h, "udp"),
            AclPort::Icmp => f.write_str("icmp"),
        }
    }
}

/// One rule of `mesh.firewall.rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// Who may connect.
    pub from: AclPeer,
    /// The nodes that accept it.
    pub to: AclPeer,
    /// What they accept.
    pub ports: Vec<AclPort>,
    /// 1-based line of the rule in the inventory.
    pub line: usize,
}

/// The mesh ACL: when present, every present node accepts on the mesh interface only
/// established/related traffic, ICMP echo (unless `icmp` is false) and what the rules
/// let in addressed to it, and drops the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshAcl {
    /// ICMP echo (and ICMPv6 echo) from every source is accepted (default true), so
    /// `verify`'s pings keep working.
    pub icmp: bool,
    /// The rules, in file order.
    pub rules: Vec<AclRule>,
}

/// Where a host keeps the nft script of its mesh ACL, which the interface's `PostUp`
/// loads: `<config_dir>/meshup-acl-<interface>.nft`.
pub fn acl_file(config_dir: &str, interface: &str) -> String {
    format!(
        "{}/meshup-acl-{interface}.nft",
        config_dir.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_and_print_back() {
        for (text, port) in [
            ("5432/tcp", AclPort::Tcp(5432, 5432)),
            ("53/udp", AclPort::Udp(53, 53)),
            ("6000-6010/tcp", AclPort::Tcp(6000, 6010)),
            ("icmp", AclPort::Icmp),
        ] {
            assert_eq!(text.parse::<AclPort>(), Ok(port));
            assert_eq!(port.to_string(), text);
        }
        for bad in [
            "5432",
            "0/tcp",
            "70000/tcp",
            "5432/sctp",
            "10-5/tcp",
            "x/tcp",
            "",
        ] {
            assert!(bad.parse::<AclPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn group_names_are_checked() {
        assert!("db".parse::<GroupName>().is_ok());
        assert!("web_1-a".parse::<GroupName>().is_ok());
        for bad in ["any", "Db", "-db", "", "d b", &"x".repeat(33)] {
            assert!(bad.parse::<GroupName>().is_err(), "{bad}");
        }
    }
}

//! Validated value types of the inventory: every string that may reach a remote shell or a
//! config file is one of these, checked once at parse time (never escaped later).
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// Characters allowed in a DNS label or an ssh_config alias.
fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// A node name: `[a-z0-9][a-z0-9.-]*`, at most 63 characters. Used in file names
    /// (`psk-<name>.key`) and remote commands, so it is checked, never escaped.
    NodeName
);

impl FromStr for NodeName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut chars = text.chars();
        let Some(first) = chars.next() else {
            return Err("node name is empty".into());
        };
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(format!(
                "node name `{text}` must start with a lowercase letter or a digit"
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
        {
            return Err(format!(
                "node name `{text}` contains {bad:?}; allowed: a-z, 0-9, '-', '.'"
            ));
        }
        if text.len() > 63 {
            return Err(format!("node name `{text}` is longer than 63 characters"));
        }
        Ok(Self(text.to_owned()))
    }
}

string_newtype!(
    /// A Linux network interface name: 1-15 bytes, no '/', ':', whitespace or control
    /// characters, and not `.` or `..`. Restricted further to `[A-Za-z0-9_.-]` because it
    /// is used in unit names (`wg-quick@<if>`) and file names.
    InterfaceName
);

impl FromStr for InterfaceName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > 15 {
            return Err(format!(
                "interface name `{text}` must be 1 to 15 characters long"
            ));
        }
        if text == "." || text == ".." {
            return Err(format!("interface name `{text}` is reserved"));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(format!(
                "interface name `{text}` contains {bad:?}; allowed: A-Z, a-z, 0-9, '_', '-', '.'"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

string_newtype!(
    /// The mesh's DNS domain (`mesh.domain`, default `mesh`): dot-separated labels of
    /// `[a-z0-9-]`, 1-63 characters each, no hyphen at either end, at most 253 in all.
    /// Written into `/etc/hosts` after each node name (`node-b.mesh`).
    DomainName
);

impl FromStr for DomainName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > 253 {
            return Err(format!("domain `{text}` must be 1 to 253 characters long"));
        }
        for label in text.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!(
                    "domain `{text}`: every label between dots must be 1 to 63 characters"
                ));
            }
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                return Err(format!(
                    "domain `{text}` contains {bad:?}; allowed: a-z, 0-9, '-', '.'"
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(format!(
                    "domain `{text}`: label `{label}` starts or ends with '-'"
                ));
            }
        }
        Ok(Self(text.to_owned()))
    }
}

string_newtype!(
    /// An absolute path on a managed host, made of safe characters only
    /// (`[A-Za-z0-9._/+-]`, no `..` component), so it can be put in a remote command.
    RemotePath
);

impl FromStr for RemotePath {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.starts_with('/') {
            return Err(format!("path `{text}` must be absolute"));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '+' | '-')))
        {
            return Err(format!(
                "path `{text}` contains {bad:?}; allowed: A-Z, a-z, 0-9, '.', '_', '/', '+', '-'"
            ));
        }
        if text.split('/').any(|part| part == "..") {
            return Err(format!("path `{text}` must not contain `..`"));
        }
        let trimmed = text.trim_end_matches('/');
        Ok(Self(if trimmed.is_empty() {
            "/".into()
        } else {
            trimmed.into()
        }))
    }
}

string_newtype!(
    /// A Unix user name for SSH login: `[a-z_][a-z0-9_-]*` (optionally ending in `$`),
    /// at most 32 characters.
    UserName
);

impl FromStr for UserName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let body = text.strip_suffix('$').unwrap_or(text);
        let mut chars = body.chars();
        let valid_first = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let valid_rest =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_first || !valid_rest || text.len() > 32 {
            return Err(format!(
                "user name `{text}` is not a valid Unix user name ([a-z_][a-z0-9_-]*, at most 32 characters)"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

string_newtype!(
    /// The host SSH connects to: an IP address, a DNS name or an `~/.ssh/config` alias
    /// (`[A-Za-z0-9._-]`, not starting with '-').
    SshHost
);

impl FromStr for SshHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.parse::<IpAddr>().is_ok() {
            return Ok(Self(text.to_owned()));
        }
        let valid = !text.is_empty()
            && text.len() <= 253
            && !text.starts_with('-')
            && text.chars().all(is_host_char);
        if !valid {
            return Err(format!(
                "host `{text}` is not an IP address, DNS name or ssh_config alias"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

/// An SSH jump host (ProxyJump): `[user@]host[:port]`, host being an IP, DNS name or
/// ssh_config alias. IPv6 literals go in brackets when a port is given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JumpHost {
    /// Login user on the jump host; `None` lets ssh decide.
    pub user: Option<UserName>,
    /// The jump host itself.
    pub host: SshHost,
    /// SSH port of the jump host; `None` = 22 or what ssh_config says.
    pub port: Option<u16>,
}

impl FromStr for JumpHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (user, rest) = match text.split_once('@') {
            Some((user, rest)) => (Some(user.parse::<UserName>()?), rest),
            None => (None, text),
        };
        let (host, port) = split_host_port(rest).map_err(|e| format!("jump host `{text}`: {e}"))?;
        let host = host.parse::<SshHost>()?;
        Ok(Self { user, host, port })
    }
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        let host = self.host.as_str();
        match (self.port, host.parse::<Ipv6Addr>().is_ok()) {
            (Some(port), true) => write!(f, "[{host}]:{port}"),
            (Some(port), false) => write!(f, "{host}:{port}"),
            (None, _) => f.write_str(host),
        }
    }
}

/// Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing `]` after IPv6 address".to_string())?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(parse_port(port)?))),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Ok((text, None));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((text, None)),
    }
}

/// Parses a UDP/TCP port, 1-65535.
fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        Ok(port) => Err(format!("port {port} is out of range 1-65535")),
        Err(_) => Err(format!("port `{text}` is not a number")),
    }
}

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

/// How commands get root on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Become {
    /// The SSH user is root; commands run directly.
    Root,
    /// Commands run through `sudo -n`.
    Sudo,
}

impl FromStr for Become {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "root" => Ok(Self::Root),
            "sudo" => Ok(Self::Sudo),
            _ => Err(format!("become must be `root` or `sudo`, not `{text}`")),
        }
    }
}

/// Host key policy for SSH connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostKeyChecking {
    /// Only known host keys are accepted.
    Yes,
    /// Unknown hosts are trusted on first use and recorded; changed keys are refused.
    AcceptNew,
    /// Any host key is accepted (labs only).
    Insecure,
}

impl FromStr for HostKeyChecking {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "yes" => Ok(Self::Yes),
            "accept-new" => Ok(Self::AcceptNew),
            "insecure" => Ok(Self::Insecure),
            _ => Err(format!(
                "host_key_checking must be `yes`, `accept-new` or `insecure`, not `{text}`"
            )),
        }
    }
}

/// Whether a node should be part of the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// The node is in the mesh.
    Present,
    /// The node is removed from the mesh (peers drop it; its interface is torn down).
    Absent,
}

impl FromStr for NodeState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "present" => Ok(Self::Present),
            "absent" => Ok(Self::Absent),
            _ => Err(format!("state must be `present` or `absent`, not `{text}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for good in ["node-a", "a", "0", "db1.eu-west", "n-"] {
            assert!(good.parse::<NodeName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "Node",
            "a b",
            "a/b",
            "a;rm",
            "a$x",
            "é",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<NodeName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn domain_names() {
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(longest.len(), 253);
        for good in ["mesh", "mesh.internal", "a-1.b2", "0", longest.as_str()] {
            assert!(good.parse::<DomainName>().is_ok(), "{good}");
        }
        let too_long = format!("{longest}x");
        let long_label = "a".repeat(64);
        for bad in [
            "",
            "Mesh",
            "-mesh",
            "mesh-",
            "a.-b",
            "a..b",
            ".mesh",
            "mesh.",
            "me_sh",
            "me sh",
            "mesh;x",
            long_label.as_str(),
            too_long.as_str(),
        ] {
            assert!(bad.parse::<DomainName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        for good in ["wg0", "wg-mesh", "a", "abcdefghijklmno"] {
            assert!(good.parse::<InterfaceName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "wg/0",
            "wg 0",
            "wg:0",
            "abcdefghijklmnop",
            "wg\t",
        ] {
            assert!(bad.parse::<InterfaceName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_paths() {
        assert_eq!(
            "/etc/wireguard/"
                .parse::<RemotePath>()
                .map(|p| p.to_string()),
            Ok("/etc/wireguard".to_string())
        );
        for bad in [
            "etc/wireguard",
            "/etc/wire guard",
            "/etc/$(x)",
            "/etc/../root",
            "/a;b",
        ] {
            assert!(bad.parse::<RemotePath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn users_and_hosts() {
        for good in ["root", "admin", "_svc", "deploy-1", "machine$"] {
            assert!(good.parse::<UserName>().is_ok(), "{good}");
        }
        for bad in ["", "Root", "1user", "a b", "a;b", &"a".repeat(33)] {
            assert!(bad.parse::<UserName>().is_err(), "{bad}");
        }
        for good in [
            "203.0.113.10",
            "2001:db8::1",
            "web-1.example.com",
            "my_alias",
        ] {
            assert!(good.parse::<SshHost>().is_ok(), "{good}");
        }
        for bad in ["", "-oProxyCommand=x", "a b", "a;b", "a@b"] {
            assert!(bad.parse::<SshHost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn jump_hosts() {
        let jump: JumpHost = "admin@bastion.example.com:2222".parse().expect("valid");
        assert_eq!(jump.to_string(), "admin@bastion.example.com:2222");
        let jump: JumpHost = "[2001:db8::1]:22".parse().expect("valid");
        assert_eq!(jump.to_string(), "[2001:db8::1]:22");
        assert!("bastion:0".parse::<JumpHost>().is_err());
        assert!("x y".parse::<JumpHost>().is_err());
    }

    #[test]
    fn endpoints() {
        let cases = [
            ("203.0.113.10:51820", "203.0.113.10:51820"),
            ("203.0.113.10", "203.0.113.10:51000"),
            ("vpn.example.com:1", "vpn.example.com:1"),
            ("[2001:db8::1]:51820", "[2001:db8::1]:51820"),
            ("2001:db8::1", "[2001:db8::1]:51000"),
        ];
        for (text, want) in cases {
            assert_eq!(
                Endpoint::parse(text, 51000).map(|e| e.to_string()),
                Ok(want.to_string())
            );
        }
        for bad in [
            "203.0.113.10:0",
            "203.0.113.10:65536",
            "203.0.113.10:x",
            "300.1.1.1",
            "0.0.0.0:51820",
            "bad host:1",
            "-a.example.com",
            "[2001:db8::1",
            "",
        ] {
            assert!(Endpoint::parse(bad, 51820).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_endpoints_are_kept_as_names_and_bad_ones_say_why() {
        let parsed = Endpoint::parse("Node-B.Example.NET:51820", 1).expect("valid");
        assert_eq!(parsed.host, EndpointHost::Dns("node-b.example.net".into()));
        assert_eq!(parsed.to_string(), "node-b.example.net:51820");
        let label64 = format!("{}.example", "a".repeat(64));
        let long = format!("{}.example", vec!["a".repeat(60); 5].join("."));
        let too_long = format!(
            "is {} characters long; a DNS name has at most 253",
            long.len()
        );
        let cases: [(&str, &str); 9] = [
            ("node_b.example", "it contains '_'"),
            ("bad_host!", "it contains '_'"),
            ("-x.example", "label `-x` starts or ends with '-'"),
            ("x-.example", "label `x-` starts or ends with '-'"),
            ("a..example", "empty label"),
            (".example", "empty label"),
            ("ex ample", "it contains ' '"),
            (&label64, "label `aaaa"),
            (&long, &too_long),
        ];
        for (host, why) in cases {
            let err = Endpoint::parse(&format!("{host}:51820"), 1).expect_err(host);
            assert!(
                err.contains(&format!("`{host}` is not a valid DNS name: ")) && err.contains(why),
                "{host}: {err}"
            );
        }
        assert!(
            Endpoint::parse("fe80::1::2:51820", 1)
                .expect_err("bad v6")
                .contains("not a valid IPv6 address")
        );
    }

    #[test]
    fn endpoint_names_and_live_addresses() {
        for (endpoint, name) in [
            ("node-b.example.net:51820", Some("node-b.example.net")),
            ("node-b.example.net.:51820", Some("node-b.example.net.")),
            ("198.51.100.20:51820", None),
            ("[2001:db8::1]:51820", None),
        ] {
            assert_eq!(endpoint_dns_name(endpoint), name, "{endpoint}");
        }
        for (live, expected, same) in [
            ("198.51.100.20:51820", "198.51.100.20:51820", true),
            ("198.51.100.21:51820", "198.51.100.20:51820", false),
            ("198.51.100.20:51820", "node-b.example.net:51820", true),
            ("203.0.113.99:51820", "node-b.example.net:51820", true),
            ("[2001:db8::1]:51820", "node-b.example.net:51820", true),
            ("198.51.100.20:51821", "node-b.example.net:51820", false),
            (
                "node-b.example.net:51820",
                "node-b.example.net:51820",
                false,
            ),
        ] {
            assert_eq!(
                endpoint_matches(live, expected),
                same,
                "{live} vs {expected}"
            );
        }
    }
}

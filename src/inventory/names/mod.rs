//! Validated value types of the inventory: every string that may reach a remote shell or a
//! config file is one of these, checked once at parse time (never escaped later).
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

mod endpoint;

pub use endpoint::{Endpoint, EndpointHost, endpoint_dns_name, endpoint_matches};

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
mod tests;

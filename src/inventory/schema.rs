//! The inventory's JSON Schema (`meshup schema`), derived from the raw types the parser
//! reads (`raw.rs`): their fields, doc comments and defaults. A string the parser
//! turns into a validated type names that type (`#[schemars(with = "NodeName")]`); the
//! schema of each such type is here and says its format as a pattern or a list of values.
//! The parser stays the judge (a pattern cannot say "inside mesh.network"): the schema is
//! what editors check and complete while one types.
use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::names::{
    Become, DomainName, Endpoint, HostKeyChecking, InterfaceName, JumpHost, NodeName, NodeState,
    RemotePath, SshHost, UserName,
};
use super::{AclPort, Age, FirewallMode, GroupName, LabelName, Topology};
use crate::keys::PublicKey;

/// The JSON Schema (draft 7, which every editor's YAML support reads) of `T`, the raw
/// inventory ([`super::json_schema`]).
pub(super) fn draft7<T: JsonSchema>() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    without_null(&mut schema);
    schema
}

/// Drops the `null` that schemars allows for every `Option` field: the parser reads
/// `key: ~` (or a bare `key:`) as unset, but an editor should flag it, since a forgotten
/// value (an empty `endpoint:` makes a node NAT'd) is what it means far more often.
fn without_null(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    let only = only.clone();
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any_of)) = map.get_mut("anyOf") {
                any_of.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if let [only] = any_of.as_slice() {
                    // Draft 7 ignores the siblings of a `$ref` (the description, the
                    // default): a lone reference goes under `allOf`, as schemars does.
                    let only = only.clone();
                    map.remove("anyOf");
                    map.insert("allOf".into(), Value::Array(vec![only]));
                }
            }
            map.values_mut().for_each(without_null);
        }
        Value::Array(items) => items.iter_mut().for_each(without_null),
        _ => {}
    }
}

/// A string type of the inventory with a format: its schema is a `$ref`'d definition
/// named after the type.
macro_rules! string_format {
    ($ty:ty, $name:literal, $description:literal, pattern: $pattern:literal, examples: [$($ex:literal),+] $(, max: $max:literal)?) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                #[allow(unused_mut)]
                let mut schema = json_schema!({
                    "type": "string",
                    "description": $description,
                    "pattern": $pattern,
                    "examples": [$($ex),+],
                });
                $(schema.insert("maxLength".into(), $max.into());)?
                schema
            }
        }
    };
}

/// A string type of the inventory with a fixed set of values.
macro_rules! string_enum {
    ($ty:ty, $name:literal, $description:literal, [$($value:literal),+]) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "description": $description,
                    "enum": [$($value),+],
                })
            }
        }
    };
}

string_format!(
    NodeName,
    "NodeName",
    "A node or client name: a lowercase letter or digit, then a-z, 0-9, '-', '.'; at most 63 characters.",
    pattern: "^[a-z0-9][a-z0-9.-]{0,62}$",
    examples: ["node-a", "fra-1"]
);
string_format!(
    InterfaceName,
    "InterfaceName",
    "A Linux interface name: 1 to 15 of A-Z, a-z, 0-9, '_', '-', '.' (not `.` or `..`).",
    pattern: "^[A-Za-z0-9_.-]{1,15}$",
    examples: ["wg0", "wg-mesh"]
);
string_format!(
    DomainName,
    "DomainName",
    "A DNS domain: dot-separated labels of a-z, 0-9, '-' (1 to 63 characters, no '-' at either end).",
    pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
    examples: ["mesh", "corp.internal"],
    max: 253
);
string_format!(
    RemotePath,
    "RemotePath",
    "An absolute path on the hosts, of A-Z, a-z, 0-9, '.', '_', '/', '+', '-' (no `..`).",
    pattern: "^/[A-Za-z0-9._/+-]*$",
    examples: ["/etc/wireguard"]
);
string_format!(
    UserName,
    "UserName",
    "A Unix user name: [a-z_][a-z0-9_-]*, optionally ending in '$'; at most 32 characters.",
    pattern: "^[a-z_][a-z0-9_-]*\\$?$",
    examples: ["root", "deploy"],
    max: 32
);
string_format!(
    SshHost,
    "SshHost",
    "An IP address, a DNS name or an ssh_config alias (A-Z, a-z, 0-9, '.', '_', '-'; not starting with '-').",
    pattern: "^([A-Za-z0-9._][A-Za-z0-9._-]*|[0-9A-Fa-f:.]+)$",
    examples: ["203.0.113.10", "node-a.example.com"],
    max: 253
);
string_format!(
    JumpHost,
    "JumpHost",
    "A ProxyJump host: [user@]host[:port]; an IPv6 address with a port goes in brackets.",
    pattern: "^([a-z_][a-z0-9_-]*\\$?@)?(\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9._][A-Za-z0-9._-]*(:[0-9]{1,5})?)$",
    examples: ["bastion", "admin@198.51.100.1:2222"]
);
string_format!(
    Endpoint,
    "Endpoint",
    "A public WireGuard endpoint: host[:port], the host an IP address or a DNS name (resolved on the hosts), an IPv6 address with a port in brackets; the port defaults to the node's listen_port.",
    pattern: "^(\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9.-]+(:[0-9]{1,5})?)$",
    examples: ["203.0.113.10:51820", "vpn.example.com", "[2001:db8::1]:51820"]
);
string_format!(
    Age,
    "Age",
    "A span of time: a number and a unit s, m, h, d or w (a bare number is seconds).",
    pattern: "^[0-9]+[smhdw]?$",
    examples: ["90d", "12h", "30s"]
);
string_format!(
    GroupName,
    "GroupName",
    "A group name: [a-z0-9][a-z0-9_-]*, at most 32 characters; `any` is reserved.",
    pattern: "^[a-z0-9][a-z0-9_-]{0,31}$",
    examples: ["db", "web"]
);
string_format!(
    AclPort,
    "AclPort",
    "What a rule lets through: a TCP or UDP port or range (`5432/tcp`, `6000-6010/udp`) or `icmp` (echo).",
    pattern: "^(icmp|[0-9]{1,5}(-[0-9]{1,5})?/(tcp|udp))$",
    examples: ["5432/tcp", "53/udp", "6000-6010/tcp", "icmp"]
);
string_format!(
    PublicKey,
    "PublicKey",
    "A WireGuard public key: `wg pubkey` output, 44 characters of base64 (32 bytes).",
    pattern: "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$",
    examples: ["xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="]
);

string_format!(
    LabelName,
    "LabelName",
    "A private network's or a site's name: [a-z0-9][a-z0-9_-]*, at most 32 characters.",
    pattern: "^[a-z0-9][a-z0-9_-]{0,31}$",
    examples: ["dc1", "eu"]
);

string_enum!(
    Topology,
    "Topology",
    "`full`: every node peers with every other; `hub`: spokes peer with their hubs (and their site's members), hubs forward.",
    ["full", "hub"]
);
string_enum!(
    NodeState,
    "NodeState",
    "`present` (in the mesh) or `absent` (removed: peers drop it, its interface is torn down).",
    ["present", "absent"]
);
string_enum!(
    Become,
    "Become",
    "How commands get root: `root` (the SSH user is root) or `sudo` (`sudo -n`).",
    ["root", "sudo"]
);
string_enum!(
    HostKeyChecking,
    "HostKeyChecking",
    "Host key policy: `yes` (only known keys), `accept-new` (trust on first use, refuse changed keys) or `insecure` (any key; labs only). Quote `\"yes\"` for YAML 1.1 tools.",
    ["yes", "accept-new", "insecure"]
);
string_enum!(
    FirewallMode,
    "FirewallMode",
    "`trust` makes every active firewall carry mesh traffic; `none` leaves firewalls alone.",
    ["trust", "none"]
);

/// Formats of values the parser reads with a foreign type (`ipnet`, `std::net`): named
/// here for their schema only.
pub(super) mod format {
    use super::{Cow, JsonSchema, Schema, SchemaGenerator, json_schema};

    /// An IPv4 network in CIDR notation (`mesh.network`).
    pub struct Ipv4Network;
    /// An IPv6 network in CIDR notation (`mesh.network6`).
    pub struct Ipv6Network;
    /// An IPv4 or IPv6 network in CIDR notation (a node's `subnets`).
    pub struct IpNetwork;
    /// An IPv4 or IPv6 address (a node's `probe`).
    pub struct IpAddress;
    /// An address and a port (`192.0.2.1:7`, `[2001:db8::1]:7`: `mesh.exit_probe`).
    pub struct SocketAddress;

    impl JsonSchema for SocketAddress {
        fn schema_name() -> Cow<'static, str> {
            "SocketAddress".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "description": "An IP address and a port: `192.0.2.1:7`, `[2001:db8::1]:7`.",
                "pattern": "^([0-9.]+|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$",
                "examples": ["192.0.2.1:7"],
            })
        }
    }

    impl JsonSchema for Ipv4Network {
        fn schema_name() -> Cow<'static, str> {
            "Ipv4Network".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "description": "An IPv4 network in CIDR notation, without host bits, at most /30.",
                "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$",
                "examples": ["10.10.0.0/24"],
            })
        }
    }

    impl JsonSchema for Ipv6Network {
        fn schema_name() -> Cow<'static, str> {
            "Ipv6Network".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "description": "An IPv6 network in CIDR notation, without host bits, at most /126.",
                "pattern": "^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*/[0-9]{1,3}$",
                "examples": ["fd10:10::/64"],
            })
        }
    }

    impl JsonSchema for IpNetwork {
        fn schema_name() -> Cow<'static, str> {
            "IpNetwork".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "description": "An IPv4 or IPv6 network in CIDR notation, without host bits.",
                "pattern": "^[0-9A-Fa-f:.]+/[0-9]{1,3}$",
                "examples": ["192.168.50.0/24", "fd00:10::/64"],
            })
        }
    }

    impl JsonSchema for IpAddress {
        fn schema_name() -> Cow<'static, str> {
            "IpAddress".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "description": "An IPv4 or IPv6 address.",
                "pattern": "^[0-9A-Fa-f:.]+$",
                "examples": ["192.168.50.10"],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::without_null;

    #[test]
    fn option_fields_lose_their_null_and_a_lone_reference_keeps_its_description() {
        for (mut schema, want) in [
            (
                json!({"type": ["integer", "null"], "minimum": 1}),
                json!({"type": "integer", "minimum": 1}),
            ),
            (
                json!({"type": ["array", "null"], "items": {"type": "string"}}),
                json!({"type": "array", "items": {"type": "string"}}),
            ),
            (
                json!({"anyOf": [{"$ref": "#/definitions/Age"}, {"type": "null"}], "description": "d"}),
                json!({"allOf": [{"$ref": "#/definitions/Age"}], "description": "d"}),
            ),
            (
                json!({"properties": {"a": {"type": ["boolean", "null"]}}}),
                json!({"properties": {"a": {"type": "boolean"}}}),
            ),
            // Not an Option: left as it is.
            (
                json!({"anyOf": [{"type": "boolean"}, {"$ref": "#/definitions/Map"}]}),
                json!({"anyOf": [{"type": "boolean"}, {"$ref": "#/definitions/Map"}]}),
            ),
        ] {
            without_null(&mut schema);
            assert_eq!(schema, want);
        }
    }
}

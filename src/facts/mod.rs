//! Facts: what a host looks like, gathered read-only in one SSH exec.
//!
//! [`gather_script`] renders one POSIX sh script that prints every fact as a section:
//!
//! ```text
//! @@meshup:gather:v1
//! @@meshup:section:<name>
//! <body; a body line starting with "@@" gets one more "@">
//! @@meshup:status:<name>:<exit status>
//! ...
//! @@meshup:done
//! ```
//!
//! [`parse`] turns that output into [`HostFacts`]; each section has a pure parser with
//! a typed empty default, so a missing or odd section never fails the whole host.
//! No fact holds a secret: the script redacts on the host (see `gather.sh`).

mod commands;
mod config;
mod files;
mod firewall;
mod firewalld;
mod hosts_file;
mod ip;
mod iptables;
mod keys;
mod nftables;
mod os_release;
mod port_spec;
mod route;
mod sections;
mod service;
mod system;
mod ufw;
mod watchdog;
mod wg_dump;

use std::fmt;

use serde::Serialize;

pub use commands::{Commands, PackageManager};
pub use config::CurrentConfig;
pub use files::{FileFacts, Hold, LockHolder};
pub use firewall::FirewallFacts;
pub use firewalld::{FirewalldFacts, FirewalldMeshup, FirewalldZone};
pub use hosts_file::{HostsFileFacts, HostsFileKind};
pub use ip::{InterfaceAddresses, InterfaceRoutes, LinkInfo, Route};
pub use iptables::{IptablesChain, IptablesFacts};
pub use keys::{KeyFacts, KeyFileState, PublicKeyFile};
pub use nftables::{NftChain, NftChainRef, NftTable, NftablesFacts};
pub use os_release::OsRelease;
pub use port_spec::port_in_spec;
pub use route::RouteFacts;
pub use sections::{DONE, HEADER, Section, Sections};
pub use service::{ForwardFacts, ServiceFacts, ServiceManager};
pub use system::{InitSystem, WireguardSupport};
pub use ufw::{UfwFacts, UfwRule};
pub use watchdog::{CronDaemon, Fallback, WatchdogFacts};
pub use wg_dump::{WgDump, WgInterfaceDump, WgPeerDump};

/// The gather script body; [`gather_script`] prepends the parameters.
const GATHER_SH: &str = crate::scripts::GATHER;

/// Names of every section the script prints, in order.
pub const SECTION_NAMES: [&str; 26] = [
    "os-release",
    "commands",
    "init",
    "wireguard",
    "keys",
    "files",
    "config",
    "wg-dump",
    "ip-addr",
    "ip-route",
    "underlay",
    "service",
    "forward",
    "hosts-file",
    "watchdog",
    "route",
    "ufw",
    "firewalld-state",
    "firewalld-zone",
    "nftables",
    "iptables-input",
    "iptables-forward",
    "ip6tables-input",
    "ip6tables-forward",
    "firewalld-zones",
    "firewalld-meshup",
];

/// Sections a host may lack without being odd: added after the captured fixtures, and
/// only used when present (a host without `underlay` is not peered over its LAN).
pub const OPTIONAL_SECTIONS: [&str; 3] = ["underlay", "watchdog", "route"];

/// Exit status the script uses for "command not installed".
const NOT_INSTALLED: i32 = 127;

/// Errors from building a gather script or parsing its output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    /// A gather parameter failed validation.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidParam {
        /// Which parameter.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The output is not from the gather script at all (e.g. the shell failed).
    #[error("host output is not meshup gather output (starts with {start:?})")]
    NotGatherOutput {
        /// The first characters of the output, for the error message.
        start: String,
    },
}

/// Validated inputs of the gather script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherParams {
    interface: String,
    config_dir: String,
    listen_port: u16,
    peer_names: Vec<String>,
    hold: Option<crate::run_lock::RunLock>,
    live_psks: bool,
}

impl GatherParams {
    /// Validates the parameters: a kernel interface name, an absolute config dir without
    /// control characters, a non-zero port and node-style peer names.
    pub fn new(
        interface: &str,
        config_dir: &str,
        listen_port: u16,
        peer_names: &[String],
    ) -> Result<GatherParams, FactsError> {
        let invalid = |what, value: &str, reason| FactsError::InvalidParam {
            what,
            value: value.to_string(),
            reason,
        };
        if !valid_interface(interface) {
            return Err(invalid(
                "interface",
                interface,
                "must be 1-15 characters of A-Z a-z 0-9 _ = + . -",
            ));
        }
        if !config_dir.starts_with('/') || config_dir.chars().any(char::is_control) {
            return Err(invalid(
                "config_dir",
                config_dir,
                "must be an absolute path without control characters",
            ));
        }
        if listen_port == 0 {
            return Err(invalid("listen_port", "0", "must be 1-65535"));
        }
        for name in peer_names {
            if !valid_node_name(name) {
                return Err(invalid("peer name", name, "must match [a-z0-9][a-z0-9.-]*"));
            }
        }
        Ok(GatherParams {
            interface: interface.to_string(),
            config_dir: config_dir
                .trim_end_matches('/')
                .to_string()
                .max("/".to_string()),
            listen_port,
            peer_names: peer_names.to_vec(),
            hold: None,
            live_psks: false,
        })
    }

    /// Apply's gather: it also takes meshup's lock on the host for `run` and keeps it
    /// while the run's connection is open (`mu_hold`).
    pub fn holding(mut self, run: &crate::run_lock::RunLock) -> GatherParams {
        self.hold = Some(run.clone());
        self
    }

    /// Verify's gather: the keys fact also carries the digest prefix of the preshared key
    /// the interface runs with each peer ([`KeyFacts::live_psk_digests`]).
    pub fn with_live_psks(mut self) -> GatherParams {
        self.live_psks = true;
        self
    }

    /// The WireGuard interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The config dir on the host.
    pub fn config_dir(&self) -> &str {
        &self.config_dir
    }
}

/// A Linux interface name: 1-15 bytes, no `/`, whitespace or `:`; not `.`/`..`.
pub fn valid_interface(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '=' | '+' | '.' | '-'))
}

fn valid_node_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// The gather script for one host: run it with `sh` as root. Read-only, except that
/// with [`GatherParams::holding`] it takes meshup's lock for the run.
pub fn gather_script(params: &GatherParams) -> String {
    let values = crate::scripts::Values::new()
        .set("MU_IF", &params.interface)
        .set("MU_DIR", &params.config_dir)
        .set("MU_PORT", &params.listen_port.to_string())
        .set("MU_PEERS", &params.peer_names.join(" "))
        .set("MU_MARK", &crate::scripts::gather_mark());
    let values = if params.live_psks {
        values.set("MU_PSK_LIVE", "1")
    } else {
        values
    };
    match &params.hold {
        Some(run) => values.set("MU_RUN", run.id()).set("MU_RUN_BY", run.by()),
        None => values,
    }
    .before(GATHER_SH)
}

/// Everything meshup knows about one host. No field can hold a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// Distribution.
    pub os_release: OsRelease,
    /// Programs present.
    pub commands: Commands,
    /// Init system.
    pub init: InitSystem,
    /// WireGuard implementation support.
    pub wireguard: WireguardSupport,
    /// Key file states and public keys.
    pub keys: KeyFacts,
    /// meshup file presence.
    pub files: FileFacts,
    /// The current config, redacted.
    pub config: CurrentConfig,
    /// The live interface.
    pub wg_dump: WgDump,
    /// Addresses on the interface.
    pub addresses: InterfaceAddresses,
    /// Routes through the interface.
    pub routes: InterfaceRoutes,
    /// The host's IPv4 addresses outside the mesh (its LAN side).
    #[serde(skip_serializing_if = "InterfaceAddresses::is_empty")]
    pub underlay: InterfaceAddresses,
    /// The wg-quick service.
    pub service: ServiceFacts,
    /// IP forwarding.
    pub forward: ForwardFacts,
    /// Firewall backends.
    pub firewall: FirewallFacts,
    /// meshup's block of `/etc/hosts` (peer names).
    pub hosts_file: HostsFileFacts,
    /// The host-side watchdog: timers, its files, its last tick and fallbacks.
    pub watchdog: WatchdogFacts,
    /// meshup's routing script and what it lives beside (NetworkManager, networkd).
    #[serde(skip_serializing_if = "RouteFacts::is_empty")]
    pub route: RouteFacts,
    /// The run printed its final marker (was not cut off).
    pub complete: bool,
    /// Known sections that were missing from the output (old or odd hosts).
    pub missing_sections: Vec<String>,
}

impl HostFacts {
    /// Package managers present on the host.
    pub fn package_managers(&self) -> Vec<PackageManager> {
        self.commands.package_managers()
    }

    /// wg and wg-quick are installed.
    pub fn wireguard_tools_installed(&self) -> bool {
        self.commands.has("wg") && self.commands.has("wg-quick")
    }

    /// The interface is up (wg shows it).
    pub fn interface_up(&self) -> bool {
        self.wg_dump.interface.is_some()
    }
}

impl fmt::Display for HostFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; wireguard-tools {}; interface {}",
            self.os_release.describe(),
            self.wireguard.tools_version().unwrap_or("missing"),
            if self.interface_up() { "up" } else { "down" }
        )
    }
}

/// Parses the full output of [`gather_script`]. Missing sections yield empty defaults;
/// the only error is output that has no meshup marker at all.
pub fn parse(output: &str) -> Result<HostFacts, FactsError> {
    let sections = Sections::split(output);
    if !sections.has_header && sections.sections.is_empty() {
        return Err(FactsError::NotGatherOutput {
            start: output.chars().take(80).collect(),
        });
    }
    let body = |name| sections.ok_body(name).unwrap_or("");
    let installed = |name| {
        sections
            .get(name)
            .is_some_and(|s| s.status.is_some() && s.status != Some(NOT_INSTALLED))
    };

    let files = FileFacts::parse(body("files"));
    let config_present = sections.get("config").is_some_and(Section::ok);
    let firewalld_running = sections
        .get("firewalld-state")
        .is_some_and(|s| s.ok() && FirewalldFacts::parse_state(&s.body));
    let firewall = FirewallFacts {
        ufw: if installed("ufw") {
            UfwFacts::parse(body("ufw"))
        } else {
            UfwFacts::default()
        },
        firewalld: FirewalldFacts {
            installed: installed("firewalld-state"),
            running: firewalld_running,
            zone: if firewalld_running {
                sections
                    .ok_body("firewalld-zone")
                    .and_then(FirewalldZone::parse)
            } else {
                None
            },
            zones: if firewalld_running {
                FirewalldZone::parse_all(body("firewalld-zones"))
            } else {
                Vec::new()
            },
            meshup: if firewalld_running {
                FirewalldMeshup::parse(body("firewalld-meshup"))
            } else {
                FirewalldMeshup::default()
            },
        },
        nftables: match sections.ok_body("nftables") {
            Some(text) => {
                let mut nft = NftablesFacts::parse(text);
                for t in &mut nft.tables {
                    t.firewalld_managed = firewalld_running && t.name == "firewalld";
                }
                nft
            }
            None => NftablesFacts::default(),
        },
        iptables: IptablesFacts {
            available: sections.get("iptables-input").is_some_and(Section::ok),
            input: IptablesChain::parse(body("iptables-input")),
            forward: IptablesChain::parse(body("iptables-forward")),
            available6: sections.get("ip6tables-input").is_some_and(Section::ok),
            input6: IptablesChain::parse(body("ip6tables-input")),
            forward6: IptablesChain::parse(body("ip6tables-forward")),
        },
    };
    Ok(HostFacts {
        os_release: OsRelease::parse(body("os-release")),
        commands: Commands::parse(body("commands")),
        init: InitSystem::parse(body("init")),
        wireguard: WireguardSupport::parse(body("wireguard")),
        keys: KeyFacts::parse(body("keys")),
        config: CurrentConfig::parse(body("config"), config_present),
        files,
        wg_dump: WgDump::parse(body("wg-dump")),
        addresses: InterfaceAddresses::parse(body("ip-addr")),
        routes: InterfaceRoutes::parse(body("ip-route")),
        underlay: InterfaceAddresses::parse(body("underlay")),
        service: ServiceFacts::parse(body("service")),
        forward: ForwardFacts::parse(body("forward")),
        firewall,
        hosts_file: match sections.get("hosts-file") {
            None => HostsFileFacts::default(),
            Some(s) if s.ok() => HostsFileFacts::parse(&s.body),
            Some(_) => HostsFileFacts::unreadable(),
        },
        watchdog: sections
            .ok_body("watchdog")
            .map(WatchdogFacts::parse)
            .unwrap_or_default(),
        route: sections
            .ok_body("route")
            .map(RouteFacts::parse)
            .unwrap_or_default(),
        complete: sections.complete,
        missing_sections: SECTION_NAMES
            .iter()
            .filter(|name| sections.get(name).is_none() && !OPTIONAL_SECTIONS.contains(name))
            .map(|name| name.to_string())
            .collect(),
    })
}

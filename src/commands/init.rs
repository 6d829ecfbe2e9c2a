//! `meshup init`: probes fresh hosts (read-only, the same one-exec scan as import) and
//! writes a commented inventory for them. The pure part is [`crate::init`].
use std::net::{IpAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::ExitCode;

use super::import::{absolute_ssh_config, scan, write_inventory};
use crate::init::{self, InitHost};

/// Options of `meshup init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// SSH targets (addresses or ssh_config aliases).
    pub hosts: Vec<String>,
    /// An ssh_config file used like `ssh -F` (else ~/.ssh/config).
    pub ssh_config: Option<PathBuf>,
    /// Where the inventory goes (default stdout).
    pub output: Option<PathBuf>,
    /// Hosts handled at once.
    pub parallel: usize,
}

/// The address a connection to `host` goes to (as written, or resolved).
fn reached(host: &str) -> Option<IpAddr> {
    host.parse().ok().or_else(|| {
        (host, 22)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
    })
}

/// Arguments of `meshup init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The hosts: addresses or ~/.ssh/config aliases.
    #[arg(required = true, value_name = "HOST")]
    pub hosts: Vec<String>,
    /// An ssh_config file used like `ssh -F` (default ~/.ssh/config).
    #[arg(long, short = 'F', value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Write the inventory to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `meshup init`.
pub fn run(globals: &super::Globals, args: &Args) -> miette::Result<ExitCode> {
    init(&InitOptions {
        hosts: args.hosts.clone(),
        ssh_config: args.ssh_config.clone(),
        output: args.output.clone(),
        parallel: globals.parallel(super::DEFAULT_PARALLEL),
    })
}

/// Runs `meshup init` with its options.
pub fn init(options: &InitOptions) -> Result<ExitCode, miette::Report> {
    let hosts: Vec<InitHost> = scan(
        &options.hosts,
        options.ssh_config.as_deref(),
        options.parallel,
    )?
    .into_iter()
    .map(|s| InitHost {
        reached: reached(&s.address),
        host: s.host,
    })
    .collect();
    for h in hosts.iter().filter(|h| !h.host.scan.interfaces.is_empty()) {
        eprintln!(
            "note: {} already has WireGuard ({}): `meshup import` adopts a mesh built by hand",
            h.host.target,
            h.host
                .scan
                .interfaces
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let ssh_config = absolute_ssh_config(options.ssh_config.as_deref())?;
    write_inventory(
        &init::build(&hosts, ssh_config.as_deref()),
        options.output.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

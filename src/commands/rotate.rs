//! `meshup rotate`: new key pairs (or preshared keys) made on the hosts, every peer
//! switched at one agreed instant; an apply of the same inventory with a rotation.
use std::process::ExitCode;
use std::time::Duration;

use super::{DEFAULT_PARALLEL, Globals, HostArgs};
use crate::apply::{ApplyOptions, Rotate};

/// Arguments of `meshup rotate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Rotate these nodes' keys.
    #[arg(
        long,
        value_name = "NODE[,NODE]",
        value_delimiter = ',',
        required_unless_present_any = ["all", "older_than"],
        conflicts_with = "all"
    )]
    pub nodes: Vec<String>,
    /// Rotate every node's key.
    #[arg(long)]
    pub all: bool,
    /// Renew the preshared keys of the pairs among the nodes (both sides switch
    /// together) instead of their key pairs.
    #[arg(long)]
    pub psk: bool,
    /// Rotate the keys older than this (`90d`, `12h`, `2w`).
    #[arg(long, value_name = "AGE", conflicts_with_all = ["nodes", "all"])]
    pub older_than: Option<crate::inventory::Age>,
    /// Rotate without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print timing and connection statistics at the end.
    #[arg(long)]
    pub stats: bool,
    /// When another meshup run holds a host this run changes, wait up to this long for
    /// it (`60s`, `5m`) instead of stopping at once. Nothing is changed while waiting.
    #[arg(long, value_name = "DURATION")]
    pub wait_lock: Option<crate::inventory::Age>,
}

/// Runs `meshup rotate`.
pub fn run(globals: &Globals, args: &Args) -> miette::Result<ExitCode> {
    crate::apply::apply(&ApplyOptions {
        session: args.hosts.session(globals, DEFAULT_PARALLEL),
        yes: args.yes,
        stats: args.stats,
        rotate: match args.older_than {
            Some(age) => Rotate::OlderThan(age),
            None => Rotate::from_names(&args.nodes, args.all),
        },
        rotate_psk: args.psk,
        detailed_exitcode: false,
        wait_lock: args.wait_lock.map(|a| Duration::from_secs(a.secs())),
    })
}

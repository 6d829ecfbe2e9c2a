//! `meshup apply`: converges every host to the inventory.
use std::process::ExitCode;
use std::time::Duration;

use super::{DEFAULT_PARALLEL, Globals, HostArgs};
use crate::apply::{ApplyOptions, Rotate};

/// Arguments of `meshup apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Apply without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print timing and connection statistics at the end.
    #[arg(long)]
    pub stats: bool,
    /// Exit 0 when nothing needed a change, 2 when changes were applied, 1 on failure
    /// (for a scheduled run: 2 means the mesh had drifted, e.g. a punched path died).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// When another meshup run holds a host this run changes, wait up to this long for
    /// it (`60s`, `5m`) instead of stopping at once. Nothing is changed while waiting.
    #[arg(long, value_name = "DURATION")]
    pub wait_lock: Option<crate::inventory::Age>,
}

/// Runs `meshup apply`.
pub fn run(globals: &Globals, args: &Args) -> miette::Result<ExitCode> {
    if globals.quiet && !args.yes {
        return Err(miette::miette!(
            help = "review the plan with `meshup plan`, then run `meshup apply --quiet --yes`",
            "apply --quiet does not show the plan, so it cannot ask for confirmation"
        ));
    }
    crate::apply::apply(&ApplyOptions {
        session: args.hosts.session(globals, DEFAULT_PARALLEL),
        yes: args.yes,
        stats: args.stats,
        rotate: Rotate::None,
        rotate_psk: false,
        detailed_exitcode: args.detailed_exitcode,
        wait_lock: args.wait_lock.map(|a| Duration::from_secs(a.secs())),
    })
}

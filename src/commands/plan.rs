//! `meshup plan`: what apply would change on each host, as diffs (read-only).
use std::process::ExitCode;

use super::{DEFAULT_PARALLEL, Globals, HostArgs};
use crate::apply::{PlanFormat, PlanOptions, Rotate};

/// Arguments of `meshup plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Show the plan of a key rotation of these nodes (`all`, or node names).
    #[arg(long, value_name = "all|NODE[,NODE]", value_delimiter = ',')]
    pub rotate: Vec<String>,
    /// With --rotate: renew the preshared keys of the pairs among those nodes instead.
    #[arg(long, requires = "rotate")]
    pub psk: bool,
}

/// Runs `meshup plan`.
pub fn run(globals: &Globals, args: &Args) -> miette::Result<ExitCode> {
    crate::apply::plan(&PlanOptions {
        session: args.hosts.session(globals, DEFAULT_PARALLEL),
        detailed_exitcode: args.detailed_exitcode,
        format: args.format,
        rotate: Rotate::from_names(&args.rotate, false),
        rotate_psk: args.psk,
    })
}

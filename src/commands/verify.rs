//! `meshup verify`: handshakes, a ping and TCP matrix between every pair, and a
//! diagnosis naming the host and the cause.
use std::process::ExitCode;

use super::{Globals, HostArgs, VERIFY_PARALLEL};
use crate::verify::command::{VerifyFormat, VerifyOptions};

/// Arguments of `meshup verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    /// Print timing statistics at the end.
    #[arg(long)]
    pub stats: bool,
    /// Print the full N×N matrix (by default above 20 nodes: the per-node summary and
    /// the failing pairs).
    #[arg(long)]
    pub matrix: bool,
}

/// Runs `meshup verify`.
pub fn run(globals: &Globals, args: &Args) -> miette::Result<ExitCode> {
    crate::verify::command::run(&VerifyOptions {
        session: args.hosts.session(globals, VERIFY_PARALLEL),
        format: args.format,
        stats: args.stats,
        matrix: args.matrix,
    })
}

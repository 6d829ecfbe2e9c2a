//! `meshup client NAME`: writes an unmanaged client's config and prints its path, or
//! shows it (text or QR code).
use std::process::ExitCode;

use super::{DEFAULT_PARALLEL, Globals, HostArgs};
use crate::client::ClientOptions;

/// Arguments of `meshup client`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The client's name (from `clients:`).
    pub name: String,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Print the config (a generated client's holds its private key).
    #[arg(long)]
    pub show: bool,
    /// Print the config as a QR code (for the WireGuard mobile apps).
    #[arg(long)]
    pub qr: bool,
}

/// Runs `meshup client`.
pub fn run(globals: &Globals, args: &Args) -> miette::Result<ExitCode> {
    crate::client::run(&ClientOptions {
        session: args.hosts.session(globals, DEFAULT_PARALLEL),
        name: args.name.clone(),
        show: args.show,
        qr: args.qr,
    })
}

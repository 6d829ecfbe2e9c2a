//! `meshup check`: validates the inventory and prints the mesh it describes (offline).
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use super::Globals;

/// Arguments of `meshup check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory file.
    #[arg(default_value = "inventory.yaml")]
    pub inventory: PathBuf,
    /// Print every node's peer list, also in meshes of more than 30 nodes.
    #[arg(long)]
    pub peers: bool,
}

/// Runs `meshup check`.
pub fn run(_globals: &Globals, args: &Args) -> miette::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    crate::check::check(&args.inventory, args.peers, &mut |text| {
        let _ = out.write_all(text.as_bytes());
    })?;
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

//! One thin file per command: its arguments (clap) and where it starts (`run`), over the
//! session and the layers below it. `cli` parses into these and dispatches; nothing
//! below this module knows about the command line.
pub mod apply;
pub mod check;
pub mod client;
pub mod completions;
pub mod exec;
pub mod import;
pub mod init;
pub mod man;
pub mod plan;
pub mod rotate;
pub mod schema;
pub mod verify;

use std::path::PathBuf;

use crate::session::SessionOptions;

/// Hosts handled at once unless `--parallel` says otherwise.
pub const DEFAULT_PARALLEL: u16 = 32;
/// verify's default: every host of all but huge meshes probed at once.
pub const VERIFY_PARALLEL: u16 = 100;

/// The options every command takes (global flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Globals {
    /// Maximum number of hosts handled at the same time [default: 32; verify: 100].
    ///
    /// verify probes every host at once by default: its probe is light, and a host
    /// waiting for a slot delays the whole run.
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
    /// More output (repeat for more detail).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only errors and failures.
    ///
    /// No progress display. `apply` prints neither the plan nor the hosts that
    /// succeeded, only the recap lines of failed or unreachable hosts, so it needs
    /// `--yes`. What a command is run for is still printed: check's mesh, plan's plan,
    /// verify's report, exec's output, `--stats`. The exit status is unchanged.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Globals {
    /// Hosts handled at once: `--parallel`, else `default`.
    pub fn parallel(&self, default: u16) -> usize {
        usize::from(self.parallel.unwrap_or(default))
    }
}

/// What every command that talks to the inventory's hosts takes.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// Inventory file.
    #[arg(default_value = "inventory.yaml")]
    pub inventory: PathBuf,
    /// Only these hosts (comma-separated node names); their peer lists stay complete.
    #[arg(long, value_name = "HOST[,HOST]", value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Directory of playbooks overriding the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
}

impl HostArgs {
    /// The session these arguments and the global flags describe.
    pub fn session(&self, globals: &Globals, default_parallel: u16) -> SessionOptions {
        SessionOptions {
            inventory: self.inventory.clone(),
            playbooks: self.playbooks.clone(),
            limit: self.limit.clone(),
            parallel: globals.parallel(default_parallel),
            verbose: globals.verbose > 0,
        }
    }
}

//! Command-line interface: parses the arguments into each command's options and
//! dispatches. Nothing else imports this module but `main.rs`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::apply::{ApplyOptions, PlanFormat, PlanOptions};
use crate::exec::ExecOptions;
use crate::session::SessionOptions;
use crate::verify::command::{VerifyFormat, VerifyOptions};

/// meshup: build and keep a WireGuard full mesh across Linux servers over SSH.
#[derive(Debug, Parser)]
#[command(name = "meshup", version, about, propagate_version = true)]
pub struct Cli {
    /// Maximum number of hosts handled at the same time.
    #[arg(long, global = true, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// More output (repeat for more detail).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the inventory and print the mesh it describes (no network access).
    Check(CheckArgs),
    /// Show what apply would change on each host, as diffs (read-only).
    Plan(PlanArgs),
    /// Converge every host to the inventory.
    Apply(ApplyArgs),
    /// Check handshakes and ping every pair across the mesh.
    Verify(VerifyArgs),
    /// Run a shell command on every host (as root, through sudo where configured).
    Exec(ExecArgs),
}

/// What every command that talks to hosts takes.
#[derive(Debug, Args)]
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

/// Arguments of `meshup check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Inventory file.
    #[arg(default_value = "inventory.yaml")]
    pub inventory: PathBuf,
    /// Print every node's peer list, also in meshes of more than 30 nodes.
    #[arg(long)]
    pub peers: bool,
}

/// Arguments of `meshup plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    hosts: HostArgs,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

/// Arguments of `meshup apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    hosts: HostArgs,
    /// Apply without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print timing and connection statistics at the end.
    #[arg(long)]
    pub stats: bool,
}

/// Arguments of `meshup verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    hosts: HostArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    /// Print timing statistics at the end.
    #[arg(long)]
    pub stats: bool,
}

/// Arguments of `meshup exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Inventory file.
    pub inventory: PathBuf,
    /// Only these hosts (comma-separated node names).
    #[arg(long, value_name = "HOST[,HOST]", value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Per-command timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The command, run with `sh -c` on each host.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

impl Cli {
    fn session(&self, hosts: &HostArgs) -> SessionOptions {
        SessionOptions {
            inventory: hosts.inventory.clone(),
            playbooks: hosts.playbooks.clone(),
            limit: hosts.limit.clone(),
            parallel: usize::from(self.parallel),
            verbose: self.verbose > 0,
        }
    }
}

/// Entry point used by `main`: parses arguments, runs, maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: &Cli) -> Result<ExitCode, miette::Report> {
    match &cli.command {
        Command::Check(args) => {
            print!("{}", crate::check::check(&args.inventory, args.peers)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => crate::apply::plan(&PlanOptions {
            session: cli.session(&args.hosts),
            detailed_exitcode: args.detailed_exitcode,
            format: args.format,
        }),
        Command::Apply(args) => crate::apply::apply(&ApplyOptions {
            session: cli.session(&args.hosts),
            yes: args.yes,
            stats: args.stats,
        }),
        Command::Verify(args) => crate::verify::command::run(&VerifyOptions {
            session: cli.session(&args.hosts),
            format: args.format,
            stats: args.stats,
        }),
        Command::Exec(args) => crate::exec::run(&ExecOptions {
            session: SessionOptions {
                inventory: args.inventory.clone(),
                playbooks: None,
                limit: args.limit.clone(),
                parallel: usize::from(cli.parallel),
                verbose: cli.verbose > 0,
            },
            timeout: std::time::Duration::from_secs(args.timeout.max(1)),
            command: args.command.join(" "),
        }),
    }
}

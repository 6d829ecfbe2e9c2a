//! Command-line interface: parses the arguments into each command's options and
//! dispatches. Nothing else imports this module but `main.rs`.
use std::ffi::{OsStr, OsString};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use miette::IntoDiagnostic as _;

use crate::apply::{ApplyOptions, PlanFormat, PlanOptions, Rotate};
use crate::client::ClientOptions;
use crate::exec::ExecOptions;
use crate::session::SessionOptions;
use crate::verify::command::{VerifyFormat, VerifyOptions};

/// meshup: build and keep a WireGuard full mesh across Linux servers over SSH.
#[derive(Debug, Parser)]
#[command(
    name = "meshup",
    version = env!("MESHUP_VERSION"),
    about,
    propagate_version = true
)]
pub struct Cli {
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
    /// When to colour error reports and help.
    ///
    /// `auto` colours a terminal unless the NO_COLOR environment variable is set and
    /// not empty; `always` colours even into a pipe or file, whatever NO_COLOR says.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
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
    /// Rotate key pairs across the live mesh: new keys made on the hosts, every peer
    /// switched at one agreed instant.
    Rotate(RotateArgs),
    /// Check handshakes and ping every pair across the mesh.
    Verify(VerifyArgs),
    /// Run a shell command on every host (as root, through sudo where configured).
    Exec(ExecArgs),
    /// Write an unmanaged client's config (`clients:`) and print its path, or show it.
    Client(ClientArgs),
    /// Read a mesh built by hand from its hosts (read-only) and write the inventory
    /// that reproduces it; keys stay where they are until apply adopts them unchanged.
    Import(ImportArgs),
    /// Probe fresh hosts (read-only) and write a commented inventory for them: public
    /// nodes with endpoints, nodes behind NAT without, preshared keys on.
    Init(InitArgs),
    /// Print a shell completion script (e.g. `meshup completions bash > /etc/bash_completion.d/meshup`).
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout (e.g. `meshup man | man -l -`).
    Man,
    /// Print the inventory's JSON Schema, for editors (e.g. `meshup schema >
    /// meshup.schema.json`, then `# yaml-language-server: $schema=meshup.schema.json` at
    /// the top of the inventory).
    Schema,
}

/// `--color`: when error reports and help are coloured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set and not empty.
    #[default]
    Auto,
    /// Always, even into a pipe or file and whatever NO_COLOR says.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// Whether to colour, given the NO_COLOR variable and whether the output is a
    /// terminal. An empty NO_COLOR counts as unset, as no-color.org specifies.
    pub fn enabled(self, no_color: Option<&OsStr>, terminal: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => terminal && no_color.is_none_or(OsStr::is_empty),
        }
    }

    /// The `--color` value among raw arguments (before a `--`), for colouring clap's own
    /// help and usage errors, which are printed before parsing is done; the last one
    /// wins, as in parsing.
    pub fn scan(args: &[OsString]) -> ColorWhen {
        let mut found = ColorWhen::Auto;
        let mut args = args.iter().skip(1).filter_map(|a| a.to_str());
        while let Some(arg) = args.next() {
            let value = match arg {
                "--" => break,
                "--color" => args.next(),
                _ => arg.strip_prefix("--color="),
            };
            if let Some(when) = value.and_then(|v| ColorWhen::from_str(v, true).ok()) {
                found = when;
            }
        }
        found
    }

    fn for_clap(self, no_color: Option<&OsStr>) -> clap::ColorChoice {
        match self {
            ColorWhen::Always => clap::ColorChoice::Always,
            ColorWhen::Never => clap::ColorChoice::Never,
            // clap decides per stream whether it is a terminal.
            ColorWhen::Auto if no_color.is_some_and(|v| !v.is_empty()) => clap::ColorChoice::Never,
            ColorWhen::Auto => clap::ColorChoice::Auto,
        }
    }
}

/// Arguments of `meshup completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// Show the plan of a key rotation of these nodes (`all`, or node names).
    #[arg(long, value_name = "all|NODE[,NODE]", value_delimiter = ',')]
    pub rotate: Vec<String>,
    /// With --rotate: renew the preshared keys of the pairs among those nodes instead.
    #[arg(long, requires = "rotate")]
    pub psk: bool,
}

/// Arguments of `meshup rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    hosts: HostArgs,
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

fn rotation(names: &[String], all: bool) -> Rotate {
    if all || names.iter().any(|n| n == "all") {
        Rotate::All
    } else if names.is_empty() {
        Rotate::None
    } else {
        Rotate::Nodes(names.to_vec())
    }
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
    /// Exit 0 when nothing needed a change, 2 when changes were applied, 1 on failure
    /// (for a scheduled run: 2 means the mesh had drifted, e.g. a punched path died).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// When another meshup run holds a host this run changes, wait up to this long for
    /// it (`60s`, `5m`) instead of stopping at once. Nothing is changed while waiting.
    #[arg(long, value_name = "DURATION")]
    pub wait_lock: Option<crate::inventory::Age>,
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
    /// Print the full N×N matrix (by default above 20 nodes: the per-node summary and
    /// the failing pairs).
    #[arg(long)]
    pub matrix: bool,
}

/// Arguments of `meshup client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The client's name (from `clients:`).
    pub name: String,
    #[command(flatten)]
    hosts: HostArgs,
    /// Print the config (a generated client's holds its private key).
    #[arg(long)]
    pub show: bool,
    /// Print the config as a QR code (for the WireGuard mobile apps).
    #[arg(long)]
    pub qr: bool,
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

/// Arguments of `meshup import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The mesh's hosts: addresses or ~/.ssh/config aliases (comma-separated).
    #[arg(
        long,
        value_name = "HOST[,HOST]",
        value_delimiter = ',',
        required = true
    )]
    pub hosts: Vec<String>,
    /// An ssh_config file used like `ssh -F` (default ~/.ssh/config).
    #[arg(long, short = 'F', value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// The WireGuard interface to import [default: the one every host has, else wg0].
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// Write the inventory to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write what the inventory cannot express (an exit peer, hooks, Table=) into it as
    /// comments instead of refusing; apply then leaves those out.
    #[arg(long)]
    pub keep_unsupported: bool,
}

/// Arguments of `meshup init`.
#[derive(Debug, Args)]
pub struct InitArgs {
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

/// Hosts handled at once unless `--parallel` says otherwise.
const DEFAULT_PARALLEL: u16 = 32;
/// verify's default: every host of all but huge meshes probed at once.
const VERIFY_PARALLEL: u16 = 100;

impl Cli {
    fn session(&self, hosts: &HostArgs) -> SessionOptions {
        self.session_with(hosts, DEFAULT_PARALLEL)
    }

    fn session_with(&self, hosts: &HostArgs, default_parallel: u16) -> SessionOptions {
        SessionOptions {
            inventory: hosts.inventory.clone(),
            playbooks: hosts.playbooks.clone(),
            limit: hosts.limit.clone(),
            parallel: usize::from(self.parallel.unwrap_or(default_parallel)),
            verbose: self.verbose > 0,
        }
    }
}

/// Entry point used by `main`: parses arguments, sets up colours and quiet output,
/// runs, maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let no_color = std::env::var_os("NO_COLOR");
    let matches = Cli::command()
        .color(ColorWhen::scan(&args).for_clap(no_color.as_deref()))
        .get_matches_from(&args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let color = cli
        .color
        .enabled(no_color.as_deref(), std::io::stderr().is_terminal());
    install_report_hook(color);
    crate::ui::console::set_quiet(cli.quiet);
    match run(&cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }
    }
}

/// Error reports are miette's graphical ones, coloured or not by `--color`; without
/// colour there are no terminal hyperlinks either (they are escape sequences too).
fn install_report_hook(color: bool) {
    let _ = miette::set_hook(Box::new(move |_| {
        let options = miette::MietteHandlerOpts::new().color(color);
        let options = if color {
            options
        } else {
            options.terminal_links(false)
        };
        Box::new(options.build())
    }));
}

/// Runs a parsed command line.
pub fn run(cli: &Cli) -> Result<ExitCode, miette::Report> {
    match &cli.command {
        Command::Check(args) => {
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::check::check(&args.inventory, args.peers, &mut |text| {
                let _ = out.write_all(text.as_bytes());
            })?;
            let _ = out.flush();
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => crate::apply::plan(&PlanOptions {
            session: cli.session(&args.hosts),
            detailed_exitcode: args.detailed_exitcode,
            format: args.format,
            rotate: rotation(&args.rotate, false),
            rotate_psk: args.psk,
        }),
        Command::Apply(args) if cli.quiet && !args.yes => Err(miette::miette!(
            help = "review the plan with `meshup plan`, then run `meshup apply --quiet --yes`",
            "apply --quiet does not show the plan, so it cannot ask for confirmation"
        )),
        Command::Apply(args) => crate::apply::apply(&ApplyOptions {
            session: cli.session(&args.hosts),
            yes: args.yes,
            stats: args.stats,
            rotate: Rotate::None,
            rotate_psk: false,
            detailed_exitcode: args.detailed_exitcode,
            wait_lock: args
                .wait_lock
                .map(|a| std::time::Duration::from_secs(a.secs())),
        }),
        Command::Rotate(args) => crate::apply::apply(&ApplyOptions {
            session: cli.session(&args.hosts),
            yes: args.yes,
            stats: args.stats,
            rotate: match args.older_than {
                Some(age) => Rotate::OlderThan(age),
                None => rotation(&args.nodes, args.all),
            },
            rotate_psk: args.psk,
            detailed_exitcode: false,
            wait_lock: args
                .wait_lock
                .map(|a| std::time::Duration::from_secs(a.secs())),
        }),
        Command::Verify(args) => crate::verify::command::run(&VerifyOptions {
            session: cli.session_with(&args.hosts, VERIFY_PARALLEL),
            format: args.format,
            stats: args.stats,
            matrix: args.matrix,
        }),
        Command::Exec(args) => crate::exec::run(&ExecOptions {
            session: SessionOptions {
                inventory: args.inventory.clone(),
                playbooks: None,
                limit: args.limit.clone(),
                parallel: usize::from(cli.parallel.unwrap_or(DEFAULT_PARALLEL)),
                verbose: cli.verbose > 0,
            },
            timeout: std::time::Duration::from_secs(args.timeout.max(1)),
            command: args.command.join(" "),
        }),
        Command::Client(args) => crate::client::run(&ClientOptions {
            session: cli.session(&args.hosts),
            name: args.name.clone(),
            show: args.show,
            qr: args.qr,
        }),
        Command::Import(args) => {
            crate::commands::import::run(&crate::commands::import::ImportOptions {
                hosts: args.hosts.clone(),
                ssh_config: args.ssh_config.clone(),
                interface: args.interface.clone(),
                output: args.output.clone(),
                keep_unsupported: args.keep_unsupported,
                parallel: usize::from(cli.parallel.unwrap_or(DEFAULT_PARALLEL)),
            })
        }
        Command::Init(args) => crate::commands::init::run(&crate::commands::init::InitOptions {
            hosts: args.hosts.clone(),
            ssh_config: args.ssh_config.clone(),
            output: args.output.clone(),
            parallel: usize::from(cli.parallel.unwrap_or(DEFAULT_PARALLEL)),
        }),
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "meshup",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => crate::commands::schema::run(),
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .into_diagnostic()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! Command-line interface: parses the arguments into each command's options and
//! dispatches. Nothing else imports this module but `main.rs`.
use std::ffi::{OsStr, OsString};
use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::commands::{self, Globals};

/// meshup: build and keep a WireGuard full mesh across Linux servers over SSH.
#[derive(Debug, Parser)]
#[command(
    name = "meshup",
    version = env!("MESHUP_VERSION"),
    about,
    propagate_version = true
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub globals: Globals,
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
    Check(commands::check::Args),
    /// Show what apply would change on each host, as diffs (read-only).
    Plan(commands::plan::Args),
    /// Converge every host to the inventory.
    Apply(commands::apply::Args),
    /// Rotate key pairs across the live mesh: new keys made on the hosts, every peer
    /// switched at one agreed instant.
    Rotate(commands::rotate::Args),
    /// Check handshakes and ping every pair across the mesh.
    Verify(commands::verify::Args),
    /// Run a shell command on every host (as root, through sudo where configured).
    Exec(commands::exec::Args),
    /// Write an unmanaged client's config (`clients:`) and print its path, or show it.
    Client(commands::client::Args),
    /// Read a mesh built by hand from its hosts (read-only) and write the inventory
    /// that reproduces it; keys stay where they are until apply adopts them unchanged.
    Import(commands::import::Args),
    /// Probe fresh hosts (read-only) and write a commented inventory for them: public
    /// nodes with endpoints, nodes behind NAT without, preshared keys on.
    Init(commands::init::Args),
    /// Print a shell completion script (e.g. `meshup completions bash > /etc/bash_completion.d/meshup`).
    Completions(commands::completions::Args),
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
    crate::ui::console::set_quiet(cli.globals.quiet);
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
    let g = &cli.globals;
    match &cli.command {
        Command::Check(args) => commands::check::run(g, args),
        Command::Plan(args) => commands::plan::run(g, args),
        Command::Apply(args) => commands::apply::run(g, args),
        Command::Rotate(args) => commands::rotate::run(g, args),
        Command::Verify(args) => commands::verify::run(g, args),
        Command::Exec(args) => commands::exec::run(g, args),
        Command::Client(args) => commands::client::run(g, args),
        Command::Import(args) => commands::import::run(g, args),
        Command::Init(args) => commands::init::run(g, args),
        Command::Completions(args) => commands::completions::run(args, Cli::command()),
        Command::Schema => commands::schema::run(),
        Command::Man => commands::man::run(Cli::command()),
    }
}

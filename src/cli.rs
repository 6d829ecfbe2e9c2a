//! Command-line interface: argument definitions and the `check` command.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::address::{self, AddressLock, Allocation};
use crate::inventory::Inventory;
use crate::topology::{Mesh, Role};

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

/// Arguments of `meshup check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Inventory file.
    #[arg(default_value = "inventory.yaml")]
    pub inventory: PathBuf,
}

/// Output format of `meshup plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Human-readable diffs.
    Text,
    /// Machine-readable plan.
    Json,
}

/// Output format of `meshup verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// Human-readable matrix.
    Text,
    /// Machine-readable results.
    Json,
    /// Graphviz graph of the mesh.
    Dot,
}

/// Arguments of `meshup plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Inventory file.
    #[arg(default_value = "inventory.yaml")]
    pub inventory: PathBuf,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Only these hosts (comma-separated node names); their peer lists stay complete.
    #[arg(long, value_name = "HOST[,HOST]", value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Directory of playbooks overriding the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
}

/// Arguments of `meshup apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Inventory file.
    #[arg(default_value = "inventory.yaml")]
    pub inventory: PathBuf,
    /// Apply without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only these hosts (comma-separated node names); their peer lists stay complete.
    #[arg(long, value_name = "HOST[,HOST]", value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Directory of playbooks overriding the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
    /// Print timing and connection statistics at the end.
    #[arg(long)]
    pub stats: bool,
}

/// Arguments of `meshup verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Inventory file.
    #[arg(default_value = "inventory.yaml")]
    pub inventory: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    /// Print timing statistics at the end.
    #[arg(long)]
    pub stats: bool,
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
            print!("{}", check(&args.inventory)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => crate::apply::command::plan(cli, args),
        Command::Apply(args) => crate::apply::command::apply(cli, args),
        Command::Verify(args) => crate::verify::command::run(cli, args),
        Command::Exec(args) => crate::exec::run(cli, args),
    }
}

/// Loads, validates and allocates, then describes the mesh (the output of `meshup check`).
/// Reads the address lock but never writes it.
pub fn check(path: &Path) -> Result<String, miette::Report> {
    let inventory = Inventory::load(path)?;
    let lock = AddressLock::load(inventory.lock_path())?;
    let (allocation, updated) = address::allocate(&inventory, &lock)?;
    let mesh = Mesh::build(&inventory, &allocation);
    Ok(describe(&inventory, &allocation, &lock, &updated, &mesh))
}

/// The text of `meshup check` for a valid inventory.
pub fn describe(
    inventory: &Inventory,
    allocation: &Allocation,
    lock: &AddressLock,
    updated: &AddressLock,
    mesh: &Mesh,
) -> String {
    let settings = &mesh.settings;
    let mut out = String::new();
    let _ = writeln!(out, "{}: valid", inventory.path().display());
    let mut network = settings.network.to_string();
    if let Some(network6) = settings.network6 {
        let _ = write!(network, " + {network6}");
    }
    let keepalive = settings
        .persistent_keepalive
        .map_or_else(|| "off".to_owned(), |k| format!("{k}s"));
    let _ = writeln!(
        out,
        "mesh: interface {}, network {network}, port {}, keepalive {keepalive}, mtu {}, preshared keys {}, config dir {}",
        settings.interface,
        settings.listen_port,
        settings
            .mtu
            .map_or_else(|| "default".to_owned(), |m| m.to_string()),
        if settings.preshared_keys { "on" } else { "off" },
        settings.config_dir,
    );

    let _ = writeln!(out, "\nnodes ({}):", mesh.nodes.len());
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "ADDRESS".to_owned(),
        "ROLE".to_owned(),
        "ENDPOINT".to_owned(),
        "TRANSIT".to_owned(),
        "SSH".to_owned(),
    ]];
    for spec in &mesh.nodes {
        let Some(node) = inventory.node(&spec.name) else {
            continue;
        };
        let mut address = spec.address.to_string();
        if let Some(v6) = spec.address6 {
            let _ = write!(address, " {v6}");
        }
        let source = match (
            node.address,
            lock.get(spec.name.as_str()).and_then(|e| e.address),
        ) {
            (Some(_), _) => "",
            (None, Some(pinned)) if pinned == spec.address => " (auto, locked)",
            (None, _) => " (auto, new)",
        };
        address.push_str(source);
        let mut transit = Vec::new();
        if !spec.subnets.is_empty() {
            let subnets: Vec<String> = spec.subnets.iter().map(ToString::to_string).collect();
            transit.push(format!("routes {}", subnets.join(",")));
        }
        if !spec.relay_for.is_empty() {
            let names: Vec<&str> = spec.relay_for.iter().map(|n| n.as_str()).collect();
            transit.push(format!("relays {}", names.join(",")));
        }
        let ssh = &node.ssh;
        let mut ssh_text = format!("{}@{}:{}", ssh.user, ssh.host, ssh.port);
        if let Some(jump) = &ssh.jump {
            let _ = write!(ssh_text, " via {jump}");
        }
        rows.push(vec![
            spec.name.to_string(),
            address,
            match spec.role {
                Role::Public => "public".to_owned(),
                Role::Nat => "nat".to_owned(),
            },
            spec.endpoint.clone().unwrap_or_else(|| "-".to_owned()),
            if spec.is_transit {
                transit.join("; ")
            } else {
                "-".to_owned()
            },
            ssh_text,
        ]);
    }
    write_table(&mut out, &rows, "  ");

    let _ = writeln!(out, "\npeers:");
    for spec in &mesh.nodes {
        let _ = writeln!(out, "  {} ({} peers)", spec.name, spec.peers.len());
        let rows: Vec<Vec<String>> = spec
            .peers
            .iter()
            .map(|peer| {
                let allowed: Vec<String> =
                    peer.allowed_ips.iter().map(ToString::to_string).collect();
                vec![
                    format!("-> {}", peer.name),
                    peer.endpoint.as_ref().map_or_else(
                        || "no endpoint (peer behind NAT)".to_owned(),
                        |e| format!("endpoint {e}"),
                    ),
                    format!("allowed {}", allowed.join(", ")),
                    peer.persistent_keepalive
                        .map_or_else(String::new, |k| format!("keepalive {k}")),
                ]
            })
            .collect();
        write_table(&mut out, &rows, "    ");
    }

    let relayed: Vec<String> = mesh
        .nodes
        .iter()
        .filter_map(|n| n.relay.as_ref().map(|r| format!("{} via {r}", n.name)))
        .collect();
    let _ = writeln!(
        out,
        "\nrelays: {}",
        if relayed.is_empty() {
            "none needed".to_owned()
        } else {
            relayed.join(", ")
        }
    );
    if !mesh.absent.is_empty() {
        let names: Vec<&str> = mesh.absent.iter().map(|n| n.as_str()).collect();
        let _ = writeln!(out, "absent (to be removed): {}", names.join(", "));
    }
    let tunnels = mesh.nodes.iter().map(|n| n.peers.len()).sum::<usize>() / 2;
    let _ = writeln!(
        out,
        "\n{} nodes, {} tunnels, {} addresses allocated automatically",
        mesh.nodes.len(),
        tunnels,
        allocation
            .iter()
            .filter(|(name, _)| inventory.node(name).is_some_and(|n| n.address.is_none()))
            .count(),
    );
    if updated != lock {
        let _ = writeln!(
            out,
            "address lock {} is not up to date; `meshup apply` will write it",
            inventory.lock_path().display()
        );
    }
    out
}

/// Writes rows as left-aligned columns, trimming trailing spaces.
fn write_table(out: &mut String, rows: &[Vec<String>], indent: &str) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = indent.to_owned();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

//! `meshup import`: reads a hand-built mesh from its hosts (read-only, one exec per host,
//! secrets redacted on the host) and writes the inventory that reproduces it. The pure
//! part (config parsing, inventory building, the report) is [`crate::import`].
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::IntoDiagnostic as _;

use crate::fanout;
use crate::import::{self, ImportHost, ScannedHost};
use crate::scripts::Values;
use crate::transport::{SshSession, Stats, TargetSpec, TransportError};

/// How long the read-only scan may take on one host.
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of `meshup import`.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// SSH targets (addresses or ssh_config aliases).
    pub hosts: Vec<String>,
    /// An ssh_config file used like `ssh -F` (else ~/.ssh/config).
    pub ssh_config: Option<PathBuf>,
    /// The interface to import (default: the one every host has).
    pub interface: Option<String>,
    /// Where the inventory goes (default stdout).
    pub output: Option<PathBuf>,
    /// Write what the inventory cannot express as comments instead of refusing.
    pub keep_unsupported: bool,
    /// Hosts handled at once.
    pub parallel: usize,
}

/// The script sent to each host: the gather as `mu_gather_one`, then import.sh.
pub fn script() -> String {
    let body = format!(
        "mu_gather_one() {{\n{}\n}}\n{}",
        crate::scripts::GATHER,
        import::IMPORT_SH
    );
    Values::new()
        .set("MU_DIR", "/etc/wireguard")
        .set("MU_PORT", "51820")
        .set("MU_PEERS", "")
        .set("MU_PSK_LIVE", "1")
        .set("MU_MARK", &crate::scripts::gather_mark())
        .before(&body)
}

/// A scanned host and the address (or name) its SSH connection went to.
pub struct Scanned {
    /// How it was reached and what it reported.
    pub host: ImportHost,
    /// The resolved `HostName` the connection went to.
    pub address: String,
}

/// Scans every host (one read-only exec each); any host that fails is reported on
/// stderr and fails the whole scan: a mesh needs all of its hosts.
pub fn scan(
    targets: &[String],
    ssh_config: Option<&Path>,
    parallel: usize,
) -> miette::Result<Vec<Scanned>> {
    if targets.is_empty() {
        return Err(miette::miette!(
            help = "e.g. `--hosts node-a,node-b,node-c`",
            "no hosts given"
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let stats = Arc::new(Stats::new());
    let script = script();
    let outcomes = runtime.block_on(fanout::run(targets.to_vec(), parallel, |alias| {
        let stats = &stats;
        let script = &script;
        async move {
            let spec = TargetSpec {
                ssh_config: ssh_config.map(Path::to_path_buf),
                ..TargetSpec::new(alias.clone())
            };
            let target = spec.resolve()?;
            let session = SshSession::connect(&target, stats).await?;
            let out = crate::transport::Session::exec(&session, script, b"", SCAN_TIMEOUT).await?;
            Ok::<_, TransportError>((target, out))
        }
    }));
    let mut hosts = Vec::new();
    let mut failed = false;
    for (name, outcome) in outcomes {
        match outcome {
            Ok((target, out)) => match ScannedHost::parse(&out.stdout_str()) {
                Ok(scan) if scan.complete => hosts.push(Scanned {
                    host: ImportHost {
                        target: name,
                        user: (target.user != "root").then(|| target.user.clone()),
                        port: (target.port != 22).then_some(target.port),
                        scan,
                    },
                    address: target.host.clone(),
                }),
                Ok(_) => {
                    failed = true;
                    eprintln!(
                        "{name}: the scan was cut short: {}",
                        out.stderr_str().trim()
                    );
                }
                Err(e) => {
                    failed = true;
                    eprintln!("{name}: {e}: {}", out.stderr_str().trim());
                }
            },
            Err(e) => {
                failed = true;
                eprintln!("{name}: FAILED: {e}");
            }
        }
    }
    if failed {
        return Err(miette::miette!(
            "every host of the mesh must be read; nothing was written"
        ));
    }
    Ok(hosts)
}

/// The `-F` file as the inventory names it (absolute: the inventory may live elsewhere).
pub fn absolute_ssh_config(ssh_config: Option<&Path>) -> miette::Result<Option<String>> {
    ssh_config
        .map(|p| {
            std::path::absolute(p)
                .into_diagnostic()
                .map(|p| p.display().to_string())
        })
        .transpose()
}

/// Writes an inventory to `output` (or stdout) after checking that meshup accepts it.
pub fn write_inventory(text: &str, output: Option<&Path>) -> miette::Result<()> {
    let path = output.unwrap_or(Path::new("inventory.yaml"));
    crate::inventory::Inventory::from_str(text, path)?;
    match output {
        Some(p) => std::fs::write(p, text).into_diagnostic()?,
        None => print!("{text}"),
    }
    Ok(())
}

/// Arguments of `meshup import`.
#[derive(Debug, clap::Args)]
pub struct Args {
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

/// Runs `meshup import`.
pub fn run(globals: &super::Globals, args: &Args) -> miette::Result<ExitCode> {
    import(&ImportOptions {
        hosts: args.hosts.clone(),
        ssh_config: args.ssh_config.clone(),
        interface: args.interface.clone(),
        output: args.output.clone(),
        keep_unsupported: args.keep_unsupported,
        parallel: globals.parallel(super::DEFAULT_PARALLEL),
    })
}

/// Runs `meshup import` with its options.
pub fn import(options: &ImportOptions) -> Result<ExitCode, miette::Report> {
    if let Some(i) = &options.interface
        && !crate::facts::valid_interface(i)
    {
        return Err(miette::miette!("invalid interface name {i:?}"));
    }
    let hosts: Vec<ImportHost> = scan(
        &options.hosts,
        options.ssh_config.as_deref(),
        options.parallel,
    )?
    .into_iter()
    .map(|s| s.host)
    .collect();
    let interface = import::pick_interface(&hosts, options.interface.as_deref())
        .map_err(|e| miette::miette!("{e}"))?;
    let ssh_config = absolute_ssh_config(options.ssh_config.as_deref())?;
    let imported = import::build(&hosts, &interface, ssh_config.as_deref());
    for f in &imported.findings {
        let kind = if f.unsupported { "unsupported" } else { "note" };
        eprintln!("{kind}: {f}");
    }
    if imported.unsupported().next().is_some() && !options.keep_unsupported {
        return Err(miette::miette!(
            help = "fix those on the hosts, or write them into the inventory as comments with --keep-unsupported (apply then leaves them out)",
            "the inventory cannot express everything {interface} does on these hosts; nothing was written"
        ));
    }
    write_inventory(&imported.inventory, options.output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

//! `meshup exec`: one ad-hoc command on every host of the inventory, in parallel, over the
//! same SSH transport as apply (host keys checked, sudo where configured). Output is
//! printed per host, prefixed with its name; the exit status is 0 only when every host
//! ran the command with status 0.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{DEFAULT_PARALLEL, Globals};
use crate::fanout;
use crate::host_error::HostError;
use crate::session::{Session, SessionOptions};

/// Options of `meshup exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Where and how to run (`--limit` is validated like every command's).
    pub session: SessionOptions,
    /// Per-command timeout.
    pub timeout: Duration,
    /// The command line, run with the login shell of the SSH user (as root).
    pub command: String,
}

/// Arguments of `meshup exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
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

/// Runs `meshup exec`.
pub fn run(globals: &Globals, args: &Args) -> miette::Result<ExitCode> {
    exec(&ExecOptions {
        session: SessionOptions {
            inventory: args.inventory.clone(),
            playbooks: None,
            limit: args.limit.clone(),
            parallel: globals.parallel(DEFAULT_PARALLEL),
            verbose: globals.verbose > 0,
        },
        timeout: Duration::from_secs(args.timeout.max(1)),
        command: args.command.join(" "),
    })
}

/// Runs the command on every host of `options`.
pub fn exec(options: &ExecOptions) -> Result<ExitCode, miette::Report> {
    let session = Session::open(&options.session)?;
    let nodes: Vec<_> = session
        .nodes()
        .into_iter()
        .filter(|n| session.in_limit(&n.name))
        .collect();
    let outcomes = session.block_on(fanout::run(nodes, session.parallel, |node| {
        let session = &session;
        async move {
            let ssh = crate::hosts::connect(node, &session.stats).await?;
            Ok::<_, HostError>(ssh.exec(&options.command, b"", options.timeout).await?)
        }
    }));
    let mut all_ok = true;
    for (node, outcome) in outcomes {
        let name = node.name.as_str();
        match outcome {
            Ok(out) => {
                for line in out.stdout_str().lines() {
                    println!("{name}: {line}");
                }
                for line in out.stderr_str().lines() {
                    eprintln!("{name}: {line}");
                }
                if !out.success() {
                    all_ok = false;
                    eprintln!(
                        "{name}: exit status {}",
                        out.status.map_or_else(
                            || "none (killed by a signal)".to_string(),
                            |s| s.to_string()
                        )
                    );
                }
            }
            Err(e) => {
                all_ok = false;
                eprintln!("{name}: FAILED: {e}");
            }
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

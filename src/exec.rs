//! `meshup exec`: one ad-hoc command on every host of the inventory, in parallel, over the
//! same SSH transport as apply (host keys checked, sudo where configured). Output is
//! printed per host, prefixed with its name; the exit status is 0 only when every host
//! ran the command with status 0.

use crate::cli::{Cli, ExecArgs};
use crate::fanout;
use crate::hosts;
use crate::inventory::Inventory;
use crate::transport::Stats;
use miette::IntoDiagnostic;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Runs `meshup exec`.
pub fn run(cli: &Cli, args: &ExecArgs) -> Result<ExitCode, miette::Report> {
    let inventory = Inventory::load(&args.inventory)?;
    let nodes: Vec<_> = inventory
        .nodes()
        .iter()
        .filter(|n| args.limit.is_empty() || args.limit.iter().any(|l| l.trim() == n.name.as_str()))
        .collect();
    if nodes.is_empty() {
        return Err(miette::miette!("no node of the inventory matches --limit"));
    }
    let command = args.command.join(" ");
    let timeout = Duration::from_secs(args.timeout.max(1));
    let stats = Arc::new(Stats::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let outcomes = rt.block_on(fanout::run(nodes, usize::from(cli.parallel), |node| {
        let stats = &stats;
        let command = &command;
        async move {
            let session = hosts::connect(node, stats).await?;
            session.exec(command, b"", timeout).await
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

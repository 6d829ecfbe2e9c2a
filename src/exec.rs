//! `meshup exec`: one ad-hoc command on every host of the inventory, in parallel, over the
//! same SSH transport as apply (host keys checked, sudo where configured). Output is
//! printed per host, prefixed with its name; the exit status is 0 only when every host
//! ran the command with status 0.
use std::process::ExitCode;
use std::time::Duration;

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

/// Runs `meshup exec`.
pub fn run(options: &ExecOptions) -> Result<ExitCode, miette::Report> {
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

//! `meshup man`: prints the man page (roff).
use std::process::ExitCode;

use miette::IntoDiagnostic as _;

/// Runs `meshup man` for the command line `cli` describes.
pub fn run(cli: clap::Command) -> miette::Result<ExitCode> {
    clap_mangen::Man::new(cli)
        .render(&mut std::io::stdout())
        .into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}

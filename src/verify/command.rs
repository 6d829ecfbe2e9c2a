//! The `verify` command: probe every host over SSH and report.
use crate::cli::{Cli, VerifyArgs};
use std::process::ExitCode;

/// `meshup verify`.
pub fn run(_cli: &Cli, _args: &VerifyArgs) -> Result<ExitCode, miette::Report> {
    Err(miette::miette!("`meshup verify` is not built yet"))
}

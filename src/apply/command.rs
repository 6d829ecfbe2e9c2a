//! The `plan` and `apply` commands.
use crate::cli::{ApplyArgs, Cli, PlanArgs};
use std::process::ExitCode;

/// `meshup plan`.
pub fn plan(_cli: &Cli, _args: &PlanArgs) -> Result<ExitCode, miette::Report> {
    Err(miette::miette!("`meshup plan` is not built yet"))
}

/// `meshup apply`.
pub fn apply(_cli: &Cli, _args: &ApplyArgs) -> Result<ExitCode, miette::Report> {
    Err(miette::miette!("`meshup apply` is not built yet"))
}

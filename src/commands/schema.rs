//! `meshup schema`: prints the inventory's JSON Schema ([`crate::inventory::json_schema`])
//! for editors and CI checks.
use std::io::Write as _;
use std::process::ExitCode;

use miette::IntoDiagnostic as _;

/// Runs `meshup schema`: the schema as pretty-printed JSON on stdout.
pub fn run() -> Result<ExitCode, miette::Report> {
    let text = serde_json::to_string_pretty(&crate::inventory::json_schema()).into_diagnostic()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}

//! `meshup completions SHELL`: prints a shell completion script.
use std::process::ExitCode;

/// Arguments of `meshup completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Runs `meshup completions` for the command line `cli` describes.
pub fn run(args: &Args, mut cli: clap::Command) -> miette::Result<ExitCode> {
    clap_complete::generate(args.shell, &mut cli, "meshup", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

//! Placeholder: this subcommand is being built.

use std::process::ExitCode;

/// Arguments (none yet).
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}

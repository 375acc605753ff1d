//! `concur check`: judge a recorded history (linearizability) or replicas' final states
//! (convergence). Exit code 0 = the property holds, 1 = it does not, 2 = bad input or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use check::convergence::{self, ConvergenceVerdict};
use check::history::{self, Format};
use check::linearizability::{self, Verdict};

/// Arguments of `concur check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: CheckCommand,
}

#[derive(clap::Subcommand, Debug)]
enum CheckCommand {
    /// Is the history linearizable? Prints `linearizable` or `not linearizable` and the smallest
    /// window that cannot be linearized.
    Lin {
        /// The history file.
        file: PathBuf,
        /// Its format; `auto` detects it from the first line.
        #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
        format: FormatArg,
    },
    /// Did the replicas converge? FILE holds JSON Lines `{"replica":N,"value":...}`.
    Converge {
        /// The final-states file.
        file: PathBuf,
    },
}

/// History formats accepted on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum FormatArg {
    /// Detect from the content.
    Auto,
    /// concur JSON Lines (docs/history.md).
    Concur,
    /// Jepsen etcd log lines.
    JepsenEtcd,
    /// Porcupine key-value EDN lines.
    PorcupineKv,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Format {
        match format {
            FormatArg::Auto => Format::Auto,
            FormatArg::Concur => Format::Concur,
            FormatArg::JepsenEtcd => Format::JepsenEtcd,
            FormatArg::PorcupineKv => Format::PorcupineKv,
        }
    }
}

/// Runs `concur check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        CheckCommand::Lin { file, format } => linearizable(&file, format.into()),
        CheckCommand::Converge { file } => converge(&file),
    }
}

fn linearizable(file: &std::path::Path, format: Format) -> anyhow::Result<ExitCode> {
    let history = history::load(file, format)
        .with_context(|| format!("{} is not a valid history", file.display()))?;
    match linearizability::check(&history) {
        Verdict::Linearizable => {
            println!("linearizable");
            Ok(ExitCode::SUCCESS)
        }
        Verdict::NotLinearizable(counterexample) => {
            println!("not linearizable");
            print!("{counterexample}");
            Ok(ExitCode::from(1))
        }
    }
}

fn converge(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let states = convergence::parse_states(&text)
        .with_context(|| format!("{} is not a valid list of final states", file.display()))?;
    anyhow::ensure!(
        !states.is_empty(),
        "{} holds no replica state",
        file.display()
    );
    match convergence::check(&states) {
        ConvergenceVerdict::Converged => {
            println!("converged ({} replicas)", states.len());
            Ok(ExitCode::SUCCESS)
        }
        ConvergenceVerdict::Diverged(divergence) => {
            println!("not converged");
            print!("{divergence}");
            Ok(ExitCode::from(1))
        }
    }
}

//! `concur check`: judge a recorded history (linearizability) or replicas' final states
//! (convergence). Exit code 0 = the property holds, 1 = it does not, 2 = bad input or usage.

use std::path::{Path, PathBuf};
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
        /// Its format; `auto` detects it from the content.
        #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
        format: FormatArg,
        /// Give up (exit 2) after this many search steps instead of running on; a search that
        /// must refute a history with many pending indeterminate operations can be exponential.
        #[arg(long)]
        max_steps: Option<u64>,
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
    let mut report = String::new();
    let code = match args.command {
        CheckCommand::Lin {
            file,
            format,
            max_steps,
        } => linearizable(&file, format.into(), max_steps, &mut report)?,
        CheckCommand::Converge { file } => converge(&file, &mut report)?,
    };
    print!("{report}");
    Ok(ExitCode::from(code))
}

/// Writes the verdict to `report`; returns the exit code (0 linearizable, 1 not).
fn linearizable(
    file: &Path,
    format: Format,
    max_steps: Option<u64>,
    report: &mut String,
) -> anyhow::Result<u8> {
    let history = history::load(file, format)
        .with_context(|| format!("{} is not a valid history", file.display()))?;
    let verdict = match (max_steps, history.format()) {
        (None, _) => linearizability::check(&history),
        (Some(steps), Format::PorcupineKv) => {
            linearizability::check_bounded(&history, &linearizability::KeyValue, steps)?
        }
        (Some(steps), _) => {
            linearizability::check_bounded(&history, &linearizability::Register, steps)?
        }
    };
    Ok(match verdict {
        Verdict::Linearizable => {
            report.push_str("linearizable\n");
            0
        }
        Verdict::NotLinearizable(counterexample) => {
            report.push_str(&format!("not linearizable\n{counterexample}"));
            1
        }
    })
}

/// Writes the verdict to `report`; returns the exit code (0 converged, 1 not).
fn converge(file: &Path, report: &mut String) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let states = convergence::parse_states(&text)
        .with_context(|| format!("{} is not a valid list of final states", file.display()))?;
    anyhow::ensure!(
        !states.is_empty(),
        "{} holds no replica state",
        file.display()
    );
    Ok(match convergence::check(&states) {
        ConvergenceVerdict::Converged => {
            report.push_str(&format!("converged ({} replicas)\n", states.len()));
            0
        }
        ConvergenceVerdict::Diverged(divergence) => {
            report.push_str(&format!("not converged\n{divergence}"));
            1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch file in the temp folder, unique per process and name.
    fn scratch(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("concur-check-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("temp dir is writable");
        path
    }

    const STALE_READ: &str = r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1}
{"process":0,"type":"ok","f":"write","key":"x","value":1}
{"process":1,"type":"invoke","f":"read","key":"x","value":null}
{"process":1,"type":"ok","f":"read","key":"x","value":null}
"#;

    #[test]
    fn lin_exit_codes_are_0_1_and_errors_name_the_line() {
        let mut report = String::new();
        let good_text = STALE_READ.replacen(
            r#""type":"ok","f":"read","key":"x","value":null"#,
            r#""type":"ok","f":"read","key":"x","value":1"#,
            1,
        );
        let good = scratch("good.jsonl", &good_text);
        assert_eq!(
            linearizable(&good, Format::Auto, None, &mut report).expect("valid"),
            0
        );
        assert_eq!(report, "linearizable\n");

        let stale = scratch("stale.jsonl", STALE_READ);
        report.clear();
        assert_eq!(
            linearizable(&stale, Format::Concur, Some(1_000), &mut report).expect("valid"),
            1
        );
        assert!(
            report.starts_with("not linearizable\nkey \"x\""),
            "{report}"
        );

        let broken = scratch(
            "broken.jsonl",
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{oops\n",
        );
        let error = linearizable(&broken, Format::Auto, None, &mut report).expect_err("malformed");
        assert!(format!("{error:#}").contains("line 2:"), "{error:#}");
        let error = linearizable(&good, Format::Auto, Some(1), &mut report).expect_err("gives up");
        assert!(format!("{error:#}").contains("gave up"), "{error:#}");
        for path in [good, stale, broken] {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn converge_exit_codes_are_0_1_and_empty_input_is_an_error() {
        let mut report = String::new();
        let same = scratch(
            "same.jsonl",
            "{\"replica\":1,\"value\":[1]}\n{\"replica\":2,\"value\":[1]}\n",
        );
        assert_eq!(converge(&same, &mut report).expect("valid"), 0);
        let differ = scratch(
            "differ.jsonl",
            "{\"replica\":1,\"value\":[1]}\n{\"replica\":2,\"value\":[2]}\n",
        );
        report.clear();
        assert_eq!(converge(&differ, &mut report).expect("valid"), 1);
        assert!(report.contains("differ at /0"), "{report}");
        let empty = scratch("empty.jsonl", "\n");
        assert!(converge(&empty, &mut report).is_err());
        for path in [same, differ, empty] {
            let _ = std::fs::remove_file(path);
        }
    }
}

//! `concur`: one binary for distributed knowledge — simulate, check, measure.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Wraps the system allocator to count heap use, so `concur bench` can report peak memory.
#[global_allocator]
static PEAK_ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// concur: keep truth across machines that never all know the same thing at once.
#[derive(Parser, Debug)]
#[command(name = "concur", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a whole local cluster on loopback (Redis on 700i, HTTP on 800i, data in ./concur-data).
    Up(cmd::node::UpArgs),
    /// Run one node of a cluster.
    Node(cmd::node::NodeArgs),
    /// Cut a running cluster's links into groups, e.g. `concur partition "n1 n2|n3"`.
    Partition(cmd::cluster::PartitionArgs),
    /// Restore every link of a running cluster.
    Heal(cmd::cluster::HealArgs),
    /// Append to, read and tail the event store of a running cluster.
    Events(cmd::events::Args),
    /// Run a deterministic simulation of a protocol under faults.
    Sim(cmd::sim::Args),
    /// Check a history: linearizability, convergence.
    Check(cmd::check::Args),
    /// Minimum one-way and round-trip delay between two places on Earth.
    Delay(cmd::delay::Args),
    /// Benchmarks users can run: text traces, simulator throughput.
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    // Like any Unix tool, end quietly when the reader goes away (`concur sim … | head`) instead of
    // panicking in println!.
    sigpipe::reset();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCUR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // `concur sim raft …` has flags and help of its own: hand it the words before `concur sim`'s
    // parser, which would answer `--help` with its own page.
    let words: Vec<std::ffi::OsString> = std::env::args_os().take(3).collect();
    if words.len() == 3 && words[1] == "sim" && words[2] == "raft" {
        return match cmd::sim_raft::run_raft_from_command_line() {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            }
        };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => cmd::node::run_up(args),
        Command::Node(args) => cmd::node::run_node(args),
        Command::Partition(args) => cmd::cluster::partition(&args).map(|()| ExitCode::SUCCESS),
        Command::Heal(args) => cmd::cluster::heal(&args).map(|()| ExitCode::SUCCESS),
        Command::Events(args) => cmd::events::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Delay(args) => cmd::delay::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            // Exit code 2 is "bad input or usage"; 1 is reserved for a failed check.
            ExitCode::from(2)
        }
    }
}

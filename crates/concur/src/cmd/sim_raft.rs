//! `concur sim raft`: run Raft (with the KV store behind a register workload) in the
//! deterministic simulator under a random nemesis, for one seed or a sweep. Every run is checked
//! twice: Raft's five safety properties after every event, and the client history by the
//! independent linearizability checker.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use check::linearizability::{self, Verdict};
use sim::adapters::raft::{RaftRunOptions, RaftRunOutput, client_latencies_ns, run};
use sim::history::write_jsonl;

use super::sim::{
    optional_flags, parse_duration_ns, parse_nemesis, parse_regions, parse_seeds, sweep_progress,
    write_history_and_trace,
};

/// Steps the linearizability search may take per run before calling the run unknown.
const SEARCH_STEPS_MAX: u64 = 200_000_000;

/// Arguments of `concur sim raft`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Each run: 3 or 5 Raft replicas spread over regions, clients doing reads, writes and
compare-and-set on three keys through any node (retried exactly-once via sessions), and a
random fault plan drawn from the seed. Checked: election safety, leader append-only, log
matching, leader completeness and state-machine safety after every event; linearizability of
the history at the end.

Exit: 0 no violation; 1 a violation (the replay command is printed); 2 bad arguments.")]
pub struct RaftArgs {
    /// One seed (default 0 when --seeds is absent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sweep seeds `A..B` (end exclusive) or `A..=B`; ends with `N runs, V violations`.
    #[arg(long, value_name = "A..B")]
    pub seeds: Option<String>,
    /// Number of replicas: 3 or 5.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Faults, comma-separated: partition, crash, pause, skew, loss, duplicate, reorder, all or
    /// none.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Virtual time the clients run: 10s, 500ms, 2m.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Number of clients (default two per node).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Places of the nodes: `new-york,london,tokyo` or `lat,lon;lat,lon`; default a spread.
    #[arg(long)]
    pub regions: Option<String>,
    /// For a single seed: write history.jsonl, trace.jsonl and shiviz.log here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also reconfigure during the run: every 1-3 s the leader is asked to remove a voter
    /// (possibly itself), add one back, or replace the voter set (joint consensus).
    #[arg(long)]
    pub membership: bool,
}

/// `concur sim raft …` parsed on its own (raft defaults: 3 nodes, every fault, 10 s).
#[derive(clap::Parser, Debug)]
#[command(name = "concur sim raft")]
struct RaftCommand {
    #[command(flatten)]
    args: RaftArgs,
}

/// Runs `concur sim raft` from the process's command line: the words after `raft` are parsed
/// as [`RaftArgs`], so the raft defaults apply rather than those of `concur sim`'s own flags.
pub fn run_raft_from_command_line() -> anyhow::Result<ExitCode> {
    let words: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(position) = words.iter().position(|word| word == "raft") else {
        bail!("expected `concur sim raft …`");
    };
    let rest = words[position + 1..].iter().cloned();
    let command = std::iter::once(std::ffi::OsString::from("concur sim raft")).chain(rest);
    match <RaftCommand as clap::Parser>::try_parse_from(command) {
        Ok(parsed) => run_raft(parsed.args),
        Err(error) => {
            let usage = error.use_stderr();
            // Prints help/version to stdout, usage errors to stderr.
            let _ = error.print();
            Ok(if usage {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Runs `concur sim raft`.
pub fn run_raft(args: RaftArgs) -> anyhow::Result<ExitCode> {
    if args.nodes != 3 && args.nodes != 5 {
        bail!("--nodes must be 3 or 5, got {}", args.nodes);
    }
    let template = template(&args)?;
    let seeds = match (&args.seeds, args.seed) {
        (Some(_), Some(_)) => bail!("give --seed or --seeds, not both"),
        (Some(range), None) => parse_seeds(range)?,
        (None, seed) => vec![seed.unwrap_or(0)],
    };
    if args.out.is_some() && seeds.len() != 1 {
        bail!("--out writes one run: use it with --seed S (or --seeds S..S+1)");
    }
    if seeds.len() == 1 {
        return single(&args, &template, seeds[0]);
    }
    sweep(&args, &template, &seeds)
}

fn template(args: &RaftArgs) -> anyhow::Result<RaftRunOptions> {
    let nemesis = match args.nemesis.trim() {
        "all" => RaftRunOptions::all_faults(),
        text => parse_nemesis(text)?,
    };
    let regions = parse_regions(args.regions.as_deref())?;
    if args.clients == Some(0) {
        bail!("--clients must be at least 1");
    }
    Ok(RaftRunOptions {
        seed: 0,
        nodes: args.nodes,
        nemesis,
        duration_ns: parse_duration_ns(&args.duration)?,
        clients: args.clients,
        trace: false,
        regions,
        lease_reads: false,
        membership_changes: args.membership,
    })
}

/// The command that replays `seed` with the same options.
fn replay_line(args: &RaftArgs, seed: u64) -> String {
    let optional = optional_flags(args.clients, args.regions.as_deref());
    let membership = if args.membership { " --membership" } else { "" };
    format!(
        "concur sim raft --seed {seed} --nodes {} --nemesis {} --duration {}{optional}{membership}",
        args.nodes, args.nemesis, args.duration
    )
}

/// `Some(reason)` when the run violated safety or linearizability; `None` when it passed.
/// The checker's verdict is `None` when its search budget ran out.
fn judge(output: &RaftRunOutput) -> anyhow::Result<(Option<String>, Option<bool>)> {
    if let Some((at_ns, violation)) = &output.violation {
        let reason = format!("{violation} (at {:.3} s)", *at_ns as f64 / 1e9);
        return Ok((Some(reason), None));
    }
    let mut jsonl = Vec::new();
    write_jsonl(&output.report.history, &mut jsonl)?;
    let text = String::from_utf8(jsonl)?;
    let history = check::history::History::from_jsonl(&text).map_err(|error| {
        anyhow::anyhow!("the simulator wrote a history check cannot read: {error}")
    })?;
    let model = linearizability::Register;
    match linearizability::check_bounded(&history, &model, SEARCH_STEPS_MAX) {
        Ok(Verdict::Linearizable) => Ok((None, Some(true))),
        Ok(Verdict::NotLinearizable(counterexample)) => {
            let reason = format!("history not linearizable:\n{counterexample}");
            Ok((Some(reason), Some(false)))
        }
        Err(_) => Ok((None, None)),
    }
}

fn percentile_ms(sorted_ns: &[u64], fraction: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted_ns.len() - 1) as f64 * fraction).round() as usize;
    sorted_ns[rank.min(sorted_ns.len() - 1)] as f64 / 1e6
}

fn single(args: &RaftArgs, template: &RaftRunOptions, seed: u64) -> anyhow::Result<ExitCode> {
    let options = RaftRunOptions {
        seed,
        trace: args.out.is_some(),
        ..template.clone()
    };
    let started = Instant::now();
    let output = run(&options);
    let wall_s = started.elapsed().as_secs_f64();
    let (violation, linearizable) = judge(&output)?;
    let stats = &output.report.stats;
    println!(
        "seed {seed}: {} nodes, {:.1} s virtual in {wall_s:.2} s wall; {} nemesis steps",
        options.nodes,
        output.report.end_ns as f64 / 1e9,
        output.report.nemesis.len()
    );
    for step in &output.report.nemesis {
        println!("  {:>8.3} s  {}", step.at_ns as f64 / 1e9, step.description);
    }
    println!(
        "operations: {} ok, {} fail, {} info; {} leaders elected; commit index {}",
        stats.ok, stats.fail, stats.info, output.elections, output.committed_index
    );
    if args.membership {
        println!(
            "membership changes: {} asked, {} committed",
            output.reconfigurations_asked, output.reconfigurations_committed
        );
    }
    let mut latencies = client_latencies_ns(&output.report.history, &["write", "cas"]);
    latencies.sort_unstable();
    println!(
        "client write latency: median {:.1} ms, p99 {:.1} ms ({} writes)",
        percentile_ms(&latencies, 0.5),
        percentile_ms(&latencies, 0.99),
        latencies.len()
    );
    match linearizable {
        Some(true) => println!("linearizable: yes"),
        Some(false) => println!("linearizable: NO"),
        None if violation.is_none() => println!("linearizable: unknown (search budget)"),
        None => {}
    }
    if let Some(directory) = &args.out {
        write_run(directory, &output)?;
        println!("wrote {}", directory.display());
    }
    let violations = usize::from(violation.is_some());
    if let Some(reason) = &violation {
        println!("VIOLATION: {reason}");
        println!("replay: {}", replay_line(args, seed));
    }
    println!("1 runs, {violations} violations");
    Ok(exit(violations))
}

fn exit(violations: usize) -> ExitCode {
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn write_run(directory: &Path, output: &RaftRunOutput) -> anyhow::Result<()> {
    write_history_and_trace(directory, &output.report, output.trace.as_ref())
}

fn sweep(args: &RaftArgs, template: &RaftRunOptions, seeds: &[u64]) -> anyhow::Result<ExitCode> {
    let total = seeds.len() as u64;
    let progress = sweep_progress(total);
    let started = Instant::now();
    let mut failing = Vec::new();
    let mut unknown = 0u64;
    let mut ok_operations = 0u64;
    for &seed in seeds {
        let options = RaftRunOptions {
            seed,
            ..template.clone()
        };
        let output = run(&options);
        ok_operations += output.report.stats.ok;
        let (violation, linearizable) = judge(&output)?;
        if violation.is_none() && linearizable.is_none() {
            unknown += 1;
        }
        if let Some(reason) = violation {
            let line = format!(
                "seed {seed}: {reason}\n  replay: {}",
                replay_line(args, seed)
            );
            match &progress {
                Some(bar) => bar.println(&line),
                None => println!("{line}"),
            }
            failing.push(seed);
        }
        if let Some(bar) = &progress {
            bar.set_message(format!("{} violations", failing.len()));
            bar.inc(1);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    println!(
        "{} ok operations in {:.1} s wall",
        ok_operations,
        started.elapsed().as_secs_f64()
    );
    if unknown > 0 {
        println!("{unknown} histories too large for the checker's budget (safety still checked)");
    }
    for &seed in &failing {
        println!("replay: {}", replay_line(args, seed));
    }
    println!("{total} runs, {} violations", failing.len());
    Ok(exit(failing.len()))
}

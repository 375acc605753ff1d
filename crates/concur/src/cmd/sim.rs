//! `concur sim`: run a scenario in the deterministic simulator, judge its history with the
//! independent checker, write history + trace + ShiViz log, replay a run, or sweep many seeds.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use check::linearizability::{self, Verdict};
use serde::{Deserialize, Serialize};
use sim::NemesisKind;
use sim::geo::Location;
use sim::history::write_jsonl;
use sim::scenario::{RegisterKind, RunOutput, ScenarioOptions, run_echo, run_register_in};

/// Steps the linearizability search may take per run in a sweep before calling it unknown.
const SWEEP_SEARCH_STEPS_MAX: u64 = 200_000_000;

/// Arguments of `concur sim`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Scenarios:
  register   a correct single-copy register and an unsafe primary-backup register, same seed and
             faults; the linearizability checker judges both
  echo       every node bounces messages to its neighbour; measures simulator throughput
  replay     rerun a recorded run: `concur sim replay runs/sim/register-seed-7/unsafe`

Exit: 0 ok; 1 a violation (single run: the correct register failed or the selected service
failed; sweep: any violation); 2 bad arguments.")]
pub struct Args {
    /// Scenario: register, echo, or replay.
    pub scenario: String,
    /// For `replay`: the run directory (or its run.json / history.jsonl).
    pub target: Option<PathBuf>,
    /// The seed every random choice derives from.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sweep seeds `A..B` (end exclusive) or `A..=B`; prints `N runs, V violations`.
    #[arg(long, value_name = "A..B")]
    pub seeds: Option<String>,
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Faults, comma-separated: partition, crash, pause, skew, loss, duplicate, reorder (or none).
    #[arg(long, default_value = "none")]
    pub nemesis: String,
    /// Virtual time the clients run: 30s, 500ms, 2m.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Number of clients (default two per node).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Regions the nodes are spread over, round-robin: names or `lat,lon`, comma-separated
    /// (e.g. new-york,london,tokyo); default virginia, london, frankfurt, california, tokyo, ….
    #[arg(long)]
    pub regions: Option<String>,
    /// For `register`: correct, unsafe, or both.
    #[arg(long, default_value = "both")]
    pub service: String,
    /// Where history, trace and ShiViz log go (default runs/sim/<scenario>-seed-<N>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// For `raft`: also change the membership during the run (see `concur sim raft --help`).
    #[arg(long)]
    pub membership: bool,
}

/// What `run.json` records: enough to rerun exactly and to tell whether the rerun matched.
#[derive(Debug, Serialize, Deserialize)]
struct RunRecord {
    scenario: String,
    service: RegisterKind,
    options: ScenarioOptions,
    #[serde(default)]
    regions: Vec<Location>,
    hash: u64,
    linearizable: bool,
    stats: sim::Stats,
}

/// Runs `concur sim`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.scenario.as_str() {
        "register" => {
            let options = options(&args, args.seed)?;
            let services = services(&args.service)?;
            match &args.seeds {
                Some(range) => sweep(&args, &options, &services, parse_seeds(range)?),
                None => register(&args, &options, &services),
            }
        }
        "echo" => echo(&args),
        "replay" => replay(args.target.as_deref()),
        "raft" => super::sim_raft::run_raft_from_command_line(),
        other => bail!("unknown scenario `{other}`; known: register, raft, echo, replay"),
    }
}

fn options(args: &Args, seed: u64) -> anyhow::Result<ScenarioOptions> {
    if args.nodes == 0 || args.nodes > 100_000 {
        bail!("--nodes must be within 1..=100000, got {}", args.nodes);
    }
    Ok(ScenarioOptions {
        seed,
        nodes: args.nodes,
        nemesis: parse_nemesis(&args.nemesis)?,
        duration_ns: parse_duration_ns(&args.duration)?,
        clients: args.clients,
        trace: args.seeds.is_none(),
    })
}

fn services(text: &str) -> anyhow::Result<Vec<RegisterKind>> {
    if text == "both" {
        return Ok(RegisterKind::BOTH.to_vec());
    }
    let kind = text.parse::<RegisterKind>().map_err(anyhow::Error::msg)?;
    Ok(vec![kind])
}

/// Parses `new-york,london` or `51.5,-0.12;35.7,139.7` (`;` separates `lat,lon` points).
pub fn parse_regions(text: Option<&str>) -> anyhow::Result<Vec<Location>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let separator = if text.contains(';') { ';' } else { ',' };
    let places: Result<Vec<Location>, _> = text
        .split(separator)
        .filter(|part| !part.trim().is_empty())
        .map(|part| part.trim().parse::<Location>())
        .collect();
    let places = places.context("--regions")?;
    if places.is_empty() {
        bail!("--regions names no place");
    }
    Ok(places)
}

/// Parses `partition,crash` (or `none`).
pub fn parse_nemesis(text: &str) -> anyhow::Result<Vec<NemesisKind>> {
    if text.trim().is_empty() || text.trim() == "none" {
        return Ok(Vec::new());
    }
    let kinds: Result<Vec<NemesisKind>, _> = text.split(',').map(str::parse).collect();
    Ok(kinds?)
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `250us`, or a bare number of seconds.
pub fn parse_duration_ns(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("bad duration `{text}`: expected e.g. 30s, 500ms, 2m"))?;
    let scale = match unit {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" => 1e3,
        "ns" => 1.0,
        "m" => 60e9,
        "h" => 3600e9,
        _ => bail!("bad duration unit in `{text}`: use ns, us, ms, s, m or h"),
    };
    let nanoseconds = value * scale;
    if !(1.0..=1e15).contains(&nanoseconds) {
        bail!("duration `{text}` out of range (1ns to ~11 days)");
    }
    Ok(nanoseconds as u64)
}

/// Parses `A..B` (exclusive) or `A..=B` (inclusive) into the list of seeds.
pub fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    let bad = || anyhow::anyhow!("bad --seeds `{text}`: expected A..B or A..=B, e.g. 0..100");
    let (start, end) = text.split_once("..").ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let (end, inclusive) = match end.strip_prefix('=') {
        Some(end) => (end, true),
        None => (end, false),
    };
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    let end = if inclusive {
        end.saturating_add(1)
    } else {
        end
    };
    if end <= start || end - start > 1_000_000 {
        bail!("--seeds `{text}` must name between 1 and 1,000,000 seeds");
    }
    Ok((start..end).collect())
}

fn judge(output: &RunOutput, steps_max: u64) -> anyhow::Result<Option<Verdict>> {
    let mut jsonl = Vec::new();
    write_jsonl(&output.report.history, &mut jsonl)?;
    let text = String::from_utf8(jsonl)?;
    let history = check::history::History::from_jsonl(&text).map_err(|error| {
        anyhow::anyhow!("the simulator wrote a history check cannot read: {error}")
    })?;
    let model = linearizability::Register;
    Ok(linearizability::check_bounded(&history, &model, steps_max).ok())
}

fn command_line(args: &Args, options: &ScenarioOptions, service: &str) -> String {
    let nemesis = if options.nemesis.is_empty() {
        String::new()
    } else {
        format!(" --nemesis {}", args.nemesis)
    };
    let optional = optional_flags(args.clients, args.regions.as_deref());
    format!(
        "concur sim register --service {service} --seed {} --nodes {}{nemesis} --duration {}{optional}",
        options.seed, options.nodes, args.duration
    )
}

/// The `--clients` and `--regions` part of a replay command, when they were given.
pub fn optional_flags(clients: Option<usize>, regions: Option<&str>) -> String {
    let clients = clients
        .map(|count| format!(" --clients {count}"))
        .unwrap_or_default();
    let regions = regions
        .map(|regions| format!(" --regions '{regions}'"))
        .unwrap_or_default();
    format!("{clients}{regions}")
}

/// A progress bar for a sweep of `total` runs, shown only when stderr is a terminal.
pub fn sweep_progress(total: u64) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        let style = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs, {msg} [{elapsed} < {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    })
}

/// Writes a run's history, and its trace and ShiViz log when one was recorded, into `directory`.
pub fn write_history_and_trace(
    directory: &Path,
    report: &sim::Report,
    trace: Option<&sim::trace::Trace>,
) -> anyhow::Result<()> {
    fs::create_dir_all(directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    let mut history = Vec::new();
    write_jsonl(&report.history, &mut history)?;
    fs::write(directory.join("history.jsonl"), history)?;
    if let Some(trace) = trace {
        let mut jsonl = Vec::new();
        trace.write_jsonl(&mut jsonl)?;
        fs::write(directory.join("trace.jsonl"), jsonl)?;
        let mut shiviz = Vec::new();
        trace.write_shiviz(&mut shiviz)?;
        fs::write(directory.join("shiviz.log"), shiviz)?;
    }
    Ok(())
}

fn register(
    args: &Args,
    options: &ScenarioOptions,
    services: &[RegisterKind],
) -> anyhow::Result<ExitCode> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/sim/register-seed-{}", options.seed)));
    let regions = parse_regions(args.regions.as_deref())?;
    let mut config = options.config();
    if !regions.is_empty() {
        config.placement = regions.clone();
    }
    let places: Vec<String> = (0..options.nodes.min(9))
        .map(|node| config.placement[node % config.placement.len()].name.clone())
        .collect();
    println!(
        "{} nodes ({}{}), {} clients, {:.0} s of virtual time, seed {}",
        options.nodes,
        places.join(", "),
        if options.nodes > 9 { ", …" } else { "" },
        config.clients.count,
        options.duration_ns as f64 / 1e9,
        options.seed
    );
    print_nemesis(&config.nemesis);
    println!();
    println!(
        "{:<8} {:<52} {:>6} {:>6} {:>5} {:>5} {:>8} {:>8}  verdict",
        "service", "", "ops", "ok", "fail", "info", "sent", "dropped"
    );
    let mut failures = Vec::new();
    let mut counterexamples = Vec::new();
    for &service in services {
        let output = run_register_in(service, options, &regions);
        let verdict = judge(&output, u64::MAX)?;
        let linearizable = verdict.as_ref().is_none_or(Verdict::is_linearizable);
        let stats = &output.report.stats;
        println!(
            "{:<8} {:<52} {:>6} {:>6} {:>5} {:>5} {:>8} {:>8}  {}",
            service.name(),
            service.description(),
            stats.operations,
            stats.ok,
            stats.fail,
            stats.info,
            stats.messages_sent,
            stats.messages_dropped,
            if linearizable {
                "linearizable ✓"
            } else {
                "NOT linearizable ✗"
            }
        );
        let directory = out.join(service.name());
        write_run(
            &directory,
            &output,
            service,
            options,
            &regions,
            linearizable,
        )?;
        if let Some(Verdict::NotLinearizable(counterexample)) = verdict {
            let during = fault_at(&output.report, counterexample.operation.invoke.time_ns);
            counterexamples.push((service, counterexample, directory.clone(), during));
        }
        if !linearizable && (service == RegisterKind::SingleCopy || services.len() == 1) {
            failures.push(service);
        }
    }
    for (service, counterexample, directory, during) in &counterexamples {
        print_counterexample(*service, counterexample, during.as_deref());
        println!(
            "full counterexample: concur check lin {}",
            directory.join("history.jsonl").display()
        );
        println!("replay: concur sim replay {}", directory.display());
        println!("   or:  {}", command_line(args, options, service.name()));
    }
    println!(
        "\nwritten: {}/<service>/{{history.jsonl, trace.jsonl, shiviz.log, run.json}}",
        out.display()
    );
    if services.len() == 2 && failures.is_empty() {
        let unsafe_verdict = if counterexamples.is_empty() {
            "also passes the unsafe one (no split brain showed this time)"
        } else {
            "catches the unsafe one"
        };
        println!("the checker passes the correct register and {unsafe_verdict}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A short account of a violation: the operation no order explains, what the key could hold,
/// the operations overlapping it, and the fault in force.
fn print_counterexample(
    service: RegisterKind,
    counterexample: &check::linearizability::Counterexample,
    during: Option<&str>,
) {
    const WINDOW_SHOWN: usize = 4;
    println!(
        "\n{service}: NOT linearizable on key {:?}. No order consistent with real time explains",
        counterexample.key
    );
    println!("    {}", counterexample.operation);
    println!(
        "  every legal order leaves the key holding {} when it returns.",
        counterexample.possible_states.join(" or ")
    );
    let overlapping: Vec<_> = counterexample
        .window
        .iter()
        .filter(|entry| entry.operation != counterexample.operation)
        .collect();
    if !overlapping.is_empty() {
        println!("  overlapping operations:");
        for entry in overlapping.iter().take(WINDOW_SHOWN) {
            println!("    {}", entry.operation);
        }
        if overlapping.len() > WINDOW_SHOWN {
            println!("    … {} more", overlapping.len() - WINDOW_SHOWN);
        }
    }
    if let Some(during) = during {
        println!("  the last fault before it: {during}");
    }
}

/// The last nemesis step at or before `time_ns`, as `at 9.895 s: partition ...`.
fn fault_at(report: &sim::Report, time_ns: Option<u64>) -> Option<String> {
    let time_ns = time_ns?;
    let step = report
        .nemesis
        .iter()
        .rev()
        .find(|step| step.at_ns <= time_ns)?;
    Some(format!(
        "at {:.3} s, {}",
        step.at_ns as f64 / 1e9,
        step.description
    ))
}

fn print_nemesis(plan: &sim::NemesisPlan) {
    const SHOWN: usize = 6;
    if plan.steps.is_empty() {
        println!("nemesis: none");
        return;
    }
    println!("nemesis: {} steps", plan.steps.len());
    for step in plan.steps.iter().take(SHOWN) {
        println!("  {:>8.3} s  {}", step.at_ns as f64 / 1e9, step.fault);
    }
    if plan.steps.len() > SHOWN {
        println!("  … {} more (all in run.json)", plan.steps.len() - SHOWN);
    }
}

fn write_run(
    directory: &Path,
    output: &RunOutput,
    service: RegisterKind,
    options: &ScenarioOptions,
    regions: &[Location],
    linearizable: bool,
) -> anyhow::Result<()> {
    write_history_and_trace(directory, &output.report, output.trace.as_ref())?;
    let record = RunRecord {
        scenario: "register".into(),
        service,
        options: options.clone(),
        regions: regions.to_vec(),
        hash: output.report.hash,
        linearizable,
        stats: output.report.stats.clone(),
    };
    let mut json = serde_json::to_value(&record)?;
    json["nemesis"] = serde_json::to_value(&output.report.nemesis)?;
    fs::write(
        directory.join("run.json"),
        serde_json::to_vec_pretty(&json)?,
    )?;
    Ok(())
}

fn replay(target: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(target) = target else {
        bail!("usage: concur sim replay <run directory | run.json | history.jsonl>");
    };
    if !target.exists() {
        bail!(
            "no run at {}: give the directory `concur sim register` wrote (e.g. runs/sim/register-seed-7/unsafe)",
            target.display()
        );
    }
    let directory = if target.is_dir() {
        target.to_path_buf()
    } else {
        target.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let path = directory.join("run.json");
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (written by `concur sim register`)",
            path.display()
        )
    })?;
    let record: RunRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a concur sim run record", path.display()))?;
    let output = run_register_in(record.service, &record.options, &record.regions);
    let verdict = judge(&output, u64::MAX)?;
    let linearizable = verdict.as_ref().is_none_or(Verdict::is_linearizable);
    let same = output.report.hash == record.hash && output.report.stats == record.stats;
    println!(
        "replayed {} register, seed {}: {} ({} ops, hash {:016x})",
        record.service,
        record.options.seed,
        if same {
            "identical run"
        } else {
            "DIFFERENT run — determinism broken"
        },
        output.report.stats.operations,
        output.report.hash
    );
    match verdict {
        Some(Verdict::NotLinearizable(counterexample)) => {
            println!("NOT linearizable:\n{counterexample}");
        }
        _ => println!("linearizable"),
    }
    Ok(
        if same && linearizable == record.linearizable && linearizable {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

fn sweep(
    args: &Args,
    template: &ScenarioOptions,
    services: &[RegisterKind],
    seeds: Vec<u64>,
) -> anyhow::Result<ExitCode> {
    let regions = parse_regions(args.regions.as_deref())?;
    let total = (seeds.len() * services.len()) as u64;
    let progress = sweep_progress(total);
    let mut violations = Vec::new();
    let mut unknown = 0u64;
    let mut per_service = vec![(0u64, 0u64); services.len()];
    for &seed in &seeds {
        let options = ScenarioOptions {
            seed,
            ..template.clone()
        };
        for (index, &service) in services.iter().enumerate() {
            let output = run_register_in(service, &options, &regions);
            per_service[index].0 += 1;
            match judge(&output, SWEEP_SEARCH_STEPS_MAX)? {
                Some(Verdict::Linearizable) => {}
                Some(Verdict::NotLinearizable(_)) => {
                    per_service[index].1 += 1;
                    let line = command_line(args, &options, service.name());
                    match &progress {
                        Some(bar) => bar.println(format!(
                            "seed {seed}: {service} NOT linearizable — replay: {line}"
                        )),
                        None => {
                            println!("seed {seed}: {service} NOT linearizable — replay: {line}")
                        }
                    }
                    violations.push(line);
                }
                None => unknown += 1,
            }
            if let Some(bar) = &progress {
                bar.set_message(format!("{} violations", violations.len()));
                bar.inc(1);
            }
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    for (service, (runs, bad)) in services.iter().zip(&per_service) {
        println!("{service}: {runs} runs, {bad} violations");
    }
    if unknown > 0 {
        println!("{unknown} runs too large for the checker's budget (not counted)");
    }
    println!("{total} runs, {} violations", violations.len());
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn echo(args: &Args) -> anyhow::Result<ExitCode> {
    let nodes = args.nodes.max(2);
    let delivered = 2_000_000;
    let started = Instant::now();
    let simulation = run_echo(args.seed, nodes, 8, delivered);
    let wall_s = started.elapsed().as_secs_f64();
    let stats = simulation.stats();
    println!(
        "echo: {nodes} nodes, {} messages delivered in {:.3} s of virtual time and {wall_s:.3} s of wall time",
        stats.messages_delivered,
        simulation.now_ns() as f64 / 1e9
    );
    println!(
        "throughput: {:.0} delivered messages per wall second (one core, tracing off)",
        stats.messages_delivered as f64 / wall_s
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(scenario: &str, out: &Path) -> Args {
        Args {
            scenario: scenario.into(),
            target: None,
            seed: 7,
            seeds: None,
            nodes: 5,
            nemesis: "partition".into(),
            duration: "10s".into(),
            clients: None,
            regions: None,
            service: "both".into(),
            out: Some(out.to_path_buf()),
            membership: false,
        }
    }

    #[test]
    fn register_writes_files_and_replay_reruns_exactly() {
        let out = std::env::temp_dir().join(format!("concur-sim-test-{}", std::process::id()));
        let code = run(args("register", &out)).unwrap();
        assert_eq!(code, ExitCode::SUCCESS, "the correct register passes");
        for service in ["correct", "unsafe"] {
            for file in ["history.jsonl", "trace.jsonl", "shiviz.log", "run.json"] {
                let path = out.join(service).join(file);
                assert!(path.metadata().unwrap().len() > 0, "{}", path.display());
            }
        }
        let mut replay_args = args("replay", &out);
        replay_args.target = Some(out.join("correct"));
        assert_eq!(run(replay_args).unwrap(), ExitCode::SUCCESS);
        let _ = fs::remove_dir_all(&out);
    }

    #[test]
    fn sweep_counts_violations_of_the_unsafe_register_only() {
        let out = std::env::temp_dir();
        let mut correct = args("register", &out);
        correct.seeds = Some("0..3".into());
        correct.service = "correct".into();
        assert_eq!(run(correct).unwrap(), ExitCode::SUCCESS);
        let mut unsafe_register = args("register", &out);
        unsafe_register.seeds = Some("0..3".into());
        unsafe_register.service = "unsafe".into();
        assert_eq!(run(unsafe_register).unwrap(), ExitCode::from(1));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let out = std::env::temp_dir();
        assert!(run(args("raft-but-misspelt", &out)).is_err());
        let mut bad = args("register", &out);
        bad.nemesis = "meteor".into();
        assert!(run(bad).is_err());
        let mut bad = args("register", &out);
        bad.service = "maybe".into();
        assert!(run(bad).is_err());
        assert!(run(args("replay", &out)).is_err());
    }

    #[test]
    fn durations_and_seed_ranges_parse() {
        assert_eq!(parse_duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration_ns("2m").unwrap(), 120_000_000_000);
        assert_eq!(parse_duration_ns("1.5").unwrap(), 1_500_000_000);
        assert!(parse_duration_ns("soon").is_err());
        assert!(parse_duration_ns("3 weeks").is_err());
        assert_eq!(parse_seeds("3..6").unwrap(), vec![3, 4, 5]);
        assert_eq!(parse_seeds("3..=4").unwrap(), vec![3, 4]);
        assert!(parse_seeds("5..5").is_err());
        assert!(parse_seeds("x").is_err());
        assert!(parse_nemesis("partition,crash").unwrap().len() == 2);
        assert!(parse_nemesis("none").unwrap().is_empty());
        assert!(parse_nemesis("meteor").is_err());
        assert_eq!(parse_regions(Some("tokyo,london")).unwrap().len(), 2);
        assert_eq!(
            parse_regions(Some("51.5,-0.12;35.7,139.7")).unwrap().len(),
            2
        );
        assert!(parse_regions(Some("atlantis")).is_err());
        assert!(parse_regions(None).unwrap().is_empty());
    }
}

//! `concur bench`: benchmarks users can run on their own machine.
//!
//! `concur bench text FILE` replays an editing trace (the format of `shared/traces/README.md`):
//! a sequential trace as local edits into one document, a concurrent one with one replica per
//! agent. It checks the final text, then reports replay time (median of several runs),
//! operations (patches) per second, peak heap during one replay, the encoded size of the final
//! document and the time to load that encoding into a fresh replica.
//!
//! `concur bench kv --target redis://…|etcd://…` is a closed-loop key-value load generator for
//! concur, Redis and etcd alike (see [`loadgen`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use text::Document;
use text::trace::{Trace, replay_concurrent, replay_patches};

// Lives beside this file (cmd/loadgen.rs); declared here because only `bench` uses it.
#[path = "loadgen.rs"]
pub mod loadgen;

/// Arguments of `concur bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Replay an editing trace through the text CRDT and check the result.
    Text(TextArgs),
    /// Closed-loop key-value load (set, get, incr) against RESP servers or etcd.
    Kv(loadgen::KvArgs),
}

/// Arguments of `concur bench text`.
#[derive(clap::Args, Debug)]
pub struct TextArgs {
    /// Trace file: JSON, optionally gzip-compressed.
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Number of timed replays (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Text(args) => run_text(&args),
        BenchCommand::Kv(args) => loadgen::run(&args),
    }
}

/// What one trace benchmark measured.
#[derive(Debug, serde::Serialize)]
struct TextReport {
    /// The trace file.
    file: String,
    /// "sequential" or "concurrent".
    kind: &'static str,
    /// Transactions in the trace.
    txns: usize,
    /// Patches in the trace (the operations counted by `ops_per_s`).
    patches: usize,
    /// Timed replays.
    runs: u32,
    /// Median replay time.
    replay_ms: f64,
    /// Patches per second at the median replay time.
    ops_per_s: f64,
    /// Peak heap during one replay, above what was in use before it.
    peak_heap_bytes: usize,
    /// Size of the final document's encoding.
    encoded_bytes: usize,
    /// Median time to decode that encoding into a fresh replica.
    load_ms: f64,
    /// Final text length in code points.
    final_chars: u64,
    /// Whether every replica ended with the same text.
    converged: bool,
    /// Whether the final text equals the trace's `endContent`.
    matches_end_content: bool,
    /// Whether the decoded document equals the replayed one.
    load_matches: bool,
}

/// Median of durations, in milliseconds.
fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

/// Replays the trace once in the way its kind requires; returns the replicas.
fn replay(trace: &Trace, patches: &[text::trace::Patch]) -> anyhow::Result<Vec<Document>> {
    if trace.is_concurrent() {
        Ok(replay_concurrent(trace)?)
    } else {
        Ok(vec![replay_patches(&trace.start_content, patches)?])
    }
}

/// `concur bench text FILE`.
fn run_text(args: &TextArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let trace =
        Trace::parse(&bytes).with_context(|| format!("cannot parse {}", args.file.display()))?;
    drop(bytes);
    let patches = if trace.is_concurrent() {
        Vec::new()
    } else {
        trace.flat_patches()
    };

    // One untimed replay measures the heap peak (and checks the trace replays at all).
    let baseline = crate::PEAK_ALLOC.current_usage();
    crate::PEAK_ALLOC.reset_peak_usage();
    let replicas = replay(&trace, &patches)
        .with_context(|| format!("cannot replay {}", args.file.display()))?;
    let peak_heap_bytes = crate::PEAK_ALLOC.peak_usage().saturating_sub(baseline);
    drop(replicas);

    let mut times = Vec::with_capacity(args.runs as usize);
    let mut replicas = Vec::new();
    for _ in 0..args.runs {
        drop(std::mem::take(&mut replicas));
        let start = Instant::now();
        replicas = replay(&trace, &patches)?;
        times.push(start.elapsed());
    }
    let replay_ms = median_ms(times);

    let first = replicas.first().context("the trace has no agents")?.text();
    let converged = replicas.iter().all(|r| r.text() == first);
    let matches_end_content = first == trace.end_content;
    let encoded = replicas[0].encode();
    let mut load_times = Vec::with_capacity(args.runs as usize);
    let mut load_matches = true;
    for _ in 0..args.runs {
        let start = Instant::now();
        let loaded =
            Document::decode(&encoded, u64::MAX - 1).context("decoding our own encoding failed")?;
        load_times.push(start.elapsed());
        load_matches &= loaded.text() == first && loaded.version() == replicas[0].version();
    }

    let report = TextReport {
        file: args.file.display().to_string(),
        kind: if trace.is_concurrent() {
            "concurrent"
        } else {
            "sequential"
        },
        txns: trace.txns.len(),
        patches: trace.patch_count(),
        runs: args.runs,
        replay_ms,
        ops_per_s: trace.patch_count() as f64 / (replay_ms / 1e3),
        peak_heap_bytes,
        encoded_bytes: encoded.len(),
        load_ms: median_ms(load_times),
        final_chars: replicas[0].len(),
        converged,
        matches_end_content,
        load_matches,
    };
    print_report(&report, args.json)?;
    // Sequential traces must reproduce endContent; concurrent ones must converge (another
    // correct CRDT may order concurrent inserts differently from the trace's recording).
    let passed = report.converged
        && report.load_matches
        && (trace.is_concurrent() || report.matches_end_content);
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints the report as JSON or as text.
fn print_report(report: &TextReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    println!(
        "trace      {} ({}, {} txns, {} patches)",
        report.file, report.kind, report.txns, report.patches
    );
    println!(
        "replay     {:.2} ms (median of {}), {:.0} ops/s",
        report.replay_ms, report.runs, report.ops_per_s
    );
    println!("peak heap  {} bytes", report.peak_heap_bytes);
    println!(
        "encoded    {} bytes, load {:.2} ms (decoded copy matches: {})",
        report.encoded_bytes,
        report.load_ms,
        yes_no(report.load_matches)
    );
    println!(
        "final      {} chars; replicas converged: {}; equals endContent: {}",
        report.final_chars,
        yes_no(report.converged),
        yes_no(report.matches_end_content)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `json` to a fresh file under the temp directory and returns its path.
    fn trace_file(name: &str, json: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("concur-bench-{}-{name}", std::process::id()));
        std::fs::write(&path, json).expect("temp dir is writable");
        path
    }

    /// Runs `concur bench text` on `path` with two runs.
    fn bench(path: PathBuf) -> anyhow::Result<ExitCode> {
        run(Args {
            command: BenchCommand::Text(TextArgs {
                file: path,
                json: true,
                runs: 2,
            }),
        })
    }

    #[test]
    fn sequential_trace_with_unicode_and_replacements_passes() {
        let json = r#"{"startContent":"ab","endContent":"añ😀d","txns":[
            {"time":"t","patches":[[1,1,"ñ"],[2,0,"cd"]]},
            {"time":"t","patches":[[2,1,"😀"]]}]}"#;
        let code = bench(trace_file("ok.json", json)).expect("runs");
        assert_eq!(code, ExitCode::SUCCESS);
    }

    #[test]
    fn wrong_end_content_exits_one() {
        let json = r#"{"startContent":"","endContent":"xyz","txns":[
            {"time":"t","patches":[[0,0,"abc"]]}]}"#;
        let code = bench(trace_file("wrong.json", json)).expect("runs");
        assert_eq!(code, ExitCode::from(1));
    }

    #[test]
    fn concurrent_trace_converges() {
        // Two agents type at the same place concurrently, then agent 0 edits on top of both.
        let json = r#"{"kind":"concurrent","numAgents":2,"endContent":"Hello World!","txns":[
            {"agent":0,"parents":[],"numChildren":2,"patches":[[0,0,"Hello"]]},
            {"agent":1,"parents":[],"numChildren":1,"patches":[[0,0,"World"]]},
            {"agent":0,"parents":[0,1],"numChildren":0,"patches":[[5,0," "],[11,0,"!"]]}]}"#;
        let code = bench(trace_file("concurrent.json", json)).expect("runs");
        assert_eq!(code, ExitCode::SUCCESS);
    }

    #[test]
    fn malformed_and_impossible_traces_are_errors() {
        assert!(bench(trace_file("bad.json", r#"{"txns": ["#)).is_err());
        let out_of_range = r#"{"startContent":"","endContent":"","txns":[
            {"time":"t","patches":[[3,0,"a"]]}]}"#;
        assert!(bench(trace_file("range.json", out_of_range)).is_err());
        assert!(bench(PathBuf::from("/nonexistent/trace.json")).is_err());
    }
}

//! Goal: measure the commit latency clients see on a 3-node Raft cluster spread over New York,
//! London and Tokyo, and check it against physics. Method: no faults, 20 s of the register
//! workload; every acknowledged write needs the leader plus one follower, so no write can beat
//! the round trip of the closest pair of nodes. Prints median and p99 (`--nocapture`).

use sim::adapters::raft::{RaftRunOptions, client_latencies_ns, run};
use sim::geo::Location;

fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    let rank = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[rank]
}

#[test]
fn commit_latency_new_york_london_tokyo() {
    let mut options = RaftRunOptions::new(42);
    options.nemesis = Vec::new();
    options.duration_ns = 20_000_000_000;
    options.regions = ["new-york", "london", "tokyo"]
        .iter()
        .map(|name| name.parse::<Location>().expect("known region"))
        .collect();
    let output = run(&options);
    assert!(output.violation.is_none(), "{:?}", output.violation);
    let mut writes = client_latencies_ns(&output.report.history, &["write", "cas"]);
    let mut reads = client_latencies_ns(&output.report.history, &["read"]);
    writes.sort_unstable();
    reads.sort_unstable();
    assert!(writes.len() > 100, "{} writes", writes.len());
    let (median, p99) = (percentile(&writes, 0.5), percentile(&writes, 0.99));
    let (read_median, read_p99) = (percentile(&reads, 0.5), percentile(&reads, 0.99));
    println!(
        "new-york/london/tokyo, {} writes: median {:.1} ms, p99 {:.1} ms; {} reads: median {:.1} ms, p99 {:.1} ms",
        writes.len(),
        median as f64 / 1e6,
        p99 as f64 / 1e6,
        reads.len(),
        read_median as f64 / 1e6,
        read_p99 as f64 / 1e6,
    );
    // New York - London is the closest pair: ~5,570 km, ~28 ms one way in fibre.
    let new_york: Location = "new-york".parse().unwrap();
    let london: Location = "london".parse().unwrap();
    let round_trip_ns = 2 * new_york.one_way_ns(&london, sim::geo::FIBRE_FRACTION);
    assert!(
        writes[0] >= round_trip_ns,
        "fastest write {} ns beats the {round_trip_ns} ns round trip",
        writes[0]
    );
    assert!(
        median < 1_000_000_000 && p99 < 2_000_000_000,
        "{median} {p99}"
    );
}

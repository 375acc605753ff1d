//! Goal: the independent linearizability checker passes the correct register and catches the
//! unsafe one under partitions. Method: run both services on the same seeds and faults, write
//! the history as JSON Lines, parse it with `check`, and judge it.

use sim::NemesisKind;
use sim::history::write_jsonl;
use sim::scenario::{RegisterKind, ScenarioOptions, run_register};

fn verdict(kind: RegisterKind, options: &ScenarioOptions) -> (bool, sim::Stats) {
    let output = run_register(kind, options);
    let mut jsonl = Vec::new();
    write_jsonl(&output.report.history, &mut jsonl).unwrap();
    let text = String::from_utf8(jsonl).unwrap();
    let history = check::history::History::from_jsonl(&text).expect("sim writes valid histories");
    let verdict = check::linearizability::check(&history);
    (verdict.is_linearizable(), output.report.stats)
}

fn partitioned(seed: u64) -> ScenarioOptions {
    ScenarioOptions {
        seed,
        nemesis: vec![NemesisKind::Partition],
        duration_ns: 20_000_000_000,
        ..ScenarioOptions::default()
    }
}

#[test]
fn correct_register_stays_linearizable_under_partitions() {
    for seed in [1, 7, 42] {
        let (linearizable, stats) = verdict(RegisterKind::SingleCopy, &partitioned(seed));
        assert!(linearizable, "seed {seed}: {stats:?}");
        assert!(
            stats.ok > 100,
            "seed {seed}: the register made progress: {stats:?}"
        );
        assert!(
            stats.info > 0,
            "seed {seed}: partitions cut some clients off: {stats:?}"
        );
    }
}

#[test]
fn unsafe_register_is_caught_under_partitions() {
    let caught = [1u64, 7, 42]
        .iter()
        .filter(|&&seed| !verdict(RegisterKind::PrimaryBackup, &partitioned(seed)).0)
        .count();
    assert!(
        caught >= 2,
        "split brain must show up in most partitioned runs ({caught}/3)"
    );
    let (linearizable, _) = verdict(RegisterKind::PrimaryBackup, &partitioned(7));
    assert!(!linearizable, "seed 7 is the README's example");
}

#[test]
fn unsafe_register_is_linearizable_without_faults() {
    let calm = ScenarioOptions {
        seed: 3,
        duration_ns: 10_000_000_000,
        ..ScenarioOptions::default()
    };
    let (linearizable, stats) = verdict(RegisterKind::PrimaryBackup, &calm);
    assert!(linearizable, "no faults, one primary: {stats:?}");
    assert_eq!(stats.info, 0, "{stats:?}");
}

#[test]
fn correct_register_survives_crashes_pauses_and_skew() {
    for seed in [2, 5] {
        let options = ScenarioOptions {
            seed,
            nemesis: vec![
                NemesisKind::Crash,
                NemesisKind::Pause,
                NemesisKind::Skew,
                NemesisKind::Partition,
                NemesisKind::Loss,
            ],
            duration_ns: 20_000_000_000,
            ..ScenarioOptions::default()
        };
        let (linearizable, stats) = verdict(RegisterKind::SingleCopy, &options);
        assert!(linearizable, "seed {seed}: {stats:?}");
        assert!(stats.nemesis_steps > 4, "{stats:?}");
    }
}

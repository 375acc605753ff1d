//! Checker throughput: the Porcupine test corpus and generated 100,000-operation histories.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use check::history::{self, Format, History};
use check::linearizability;
use check::synthetic::{self, SyntheticConfig};
use criterion::{Criterion, criterion_group, criterion_main};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/linearizability/porcupine-test-data"
);

fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in ["jepsen", "kv"] {
        let Ok(entries) = std::fs::read_dir(Path::new(CORPUS).join(folder)) else {
            continue;
        };
        files.extend(entries.filter_map(|entry| entry.ok().map(|entry| entry.path())));
    }
    files.sort();
    files
}

/// Parses and checks every history of the corpus, as `concur check lin` would.
fn corpus(criterion: &mut Criterion) {
    let files = corpus_files();
    if files.is_empty() {
        eprintln!("skipping the corpus benchmark: {CORPUS} is absent");
        return;
    }
    let texts: Vec<String> = files
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("corpus file is readable"))
        .collect();
    let mut group = criterion.benchmark_group("porcupine_corpus");
    group.sample_size(10);
    group.bench_function("parse_and_check_all_76_files", |bencher| {
        bencher.iter(|| {
            let mut linearizable = 0;
            for text in &texts {
                let history = History::parse(text, Format::Auto).expect("corpus parses");
                linearizable += usize::from(linearizability::check(&history).is_linearizable());
            }
            // 14 jepsen and 3 kv histories are linearizable.
            assert_eq!(linearizable, 17);
            black_box(linearizable)
        });
    });
    group.finish();
    let _ = history::load;
}

fn generated(corrupt_read: bool) -> History {
    let config = SyntheticConfig {
        operations: 100_000,
        keys: 100,
        clients: 10,
        indeterminate_per_mille: 10,
        values: 5,
        seed: 42,
        corrupt_read,
    };
    History::from_jsonl(&synthetic::generate(&config)).expect("generated history parses")
}

/// A 100,000-operation, 100-key, 10-client history with 1% indeterminate operations.
fn synthetic_100k(criterion: &mut Criterion) {
    let linearizable = generated(false);
    let not_linearizable = generated(true);
    let text = synthetic::generate(&SyntheticConfig {
        operations: 100_000,
        keys: 100,
        clients: 10,
        seed: 42,
        ..SyntheticConfig::default()
    });
    let mut group = criterion.benchmark_group("synthetic_100k");
    group.sample_size(10);
    group.bench_function("parse", |bencher| {
        bencher.iter(|| black_box(History::from_jsonl(&text).expect("parses").len()));
    });
    group.bench_function("check_linearizable", |bencher| {
        bencher
            .iter(|| assert!(linearizability::check(black_box(&linearizable)).is_linearizable()));
    });
    group.bench_function("check_not_linearizable", |bencher| {
        bencher.iter(|| {
            assert!(!linearizability::check(black_box(&not_linearizable)).is_linearizable());
        });
    });
    group.finish();
}

criterion_group!(benches, corpus, synthetic_100k);
criterion_main!(benches);

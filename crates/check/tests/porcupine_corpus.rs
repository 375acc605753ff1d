//! Goal: the checker agrees with Porcupine's own verdicts on Porcupine's test corpus.
//! Method: every Jepsen etcd log against EXPECTED.txt, every kv file against its name (-ok/-bad),
//! each read with format auto-detection. Skips with a message when ../shared is absent.

use std::path::{Path, PathBuf};
use std::time::Instant;

use check::history::{self, Format};
use check::linearizability::{self, Verdict};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/linearizability/porcupine-test-data"
);

fn corpus() -> Option<PathBuf> {
    let path = Path::new(CORPUS);
    if path.join("EXPECTED.txt").is_file() {
        Some(path.to_path_buf())
    } else {
        eprintln!("skipping: the Porcupine corpus is absent at {CORPUS}");
        None
    }
}

fn verdict(path: &Path) -> Verdict {
    let history = history::load(path, Format::Auto)
        .unwrap_or_else(|error| panic!("{} does not parse: {error}", path.display()));
    linearizability::check(&history)
}

#[test]
fn jepsen_etcd_verdicts_match_expected() {
    let Some(corpus) = corpus() else { return };
    let expected = std::fs::read_to_string(corpus.join("EXPECTED.txt")).expect("readable");
    let mut checked = 0;
    let mut linearizable = 0;
    for line in expected.lines().filter(|line| !line.trim().is_empty()) {
        let (file, verdict_expected) = line.split_once(' ').expect("`file verdict` lines");
        let started = Instant::now();
        let found = verdict(&corpus.join(file));
        assert_eq!(
            found.is_linearizable(),
            verdict_expected.trim() == "linearizable",
            "{file}: expected {verdict_expected}, found {found:?}"
        );
        if let Verdict::NotLinearizable(counterexample) = &found {
            assert_eq!(counterexample.key, "", "{file}: one register");
            assert!(!counterexample.possible_states.is_empty(), "{file}");
            assert!(
                counterexample.prefix_length < counterexample.operations_on_key,
                "{file}"
            );
        }
        eprintln!("{file}: {verdict_expected} in {:?}", started.elapsed());
        checked += 1;
        linearizable += usize::from(found.is_linearizable());
    }
    assert_eq!((checked, linearizable), (70, 14));
}

#[test]
fn porcupine_kv_verdicts_match_file_names() {
    let Some(corpus) = corpus() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join("kv"))
        .expect("kv folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    for file in files {
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_string();
        let started = Instant::now();
        let found = verdict(&file);
        let expected = name.contains("-ok");
        assert!(
            expected || name.contains("-bad"),
            "{name} is neither -ok nor -bad"
        );
        assert_eq!(found.is_linearizable(), expected, "{name}: found {found:?}");
        if let Verdict::NotLinearizable(counterexample) = &found {
            eprintln!("{name}:\n{counterexample}");
        }
        eprintln!(
            "{name}: {} in {:?}",
            if expected { "ok" } else { "bad" },
            started.elapsed()
        );
    }
}

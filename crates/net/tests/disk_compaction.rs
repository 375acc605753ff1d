//! Compaction of the node's store log: the contents survive any number of compactions and
//! reopenings, a compaction a crash interrupted leaves the real log untouched, the group-commit
//! writer keeps acknowledging in order across compactions, and a compacted file still has its torn
//! tail cut at recovery.

use std::collections::BTreeMap;
use std::path::Path;

use net::disk::{COMPACTION_FILE, DiskLog, DiskWriter, LOG_FILE, Write, encode_record};
use proptest::prelude::*;
use sim::Storage;

/// A threshold above twice the largest possible live set of the property test (6 keys of at most
/// 178-byte records), so every check over the threshold finds a compaction due.
const THRESHOLD_BYTES: u64 = 4096;

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Sync,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, proptest::collection::vec(any::<u8>(), 0..160)).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..6).prop_map(Op::Delete),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

fn key(index: u8) -> String {
    format!("key{index}")
}

fn storage_of(model: &BTreeMap<String, Vec<u8>>) -> Storage {
    let mut storage = Storage::new();
    for (key, value) in model {
        storage.apply(key.clone(), Some(value.clone()));
    }
    storage
}

fn live_bytes_of(model: &BTreeMap<String, Vec<u8>>) -> u64 {
    model
        .iter()
        .map(|(key, value)| encode_record(key, Some(value)).unwrap().len() as u64)
        .sum()
}

fn file_length(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(LOG_FILE)).unwrap().len()
}

fn open_with_threshold(dir: &Path) -> (DiskLog, Storage) {
    let (mut log, storage, recovery) = DiskLog::open(dir).unwrap();
    assert_eq!(recovery.truncated_bytes, 0);
    log.set_compaction_threshold(THRESHOLD_BYTES);
    (log, storage)
}

/// Syncs, compacts if due, and checks the log's byte accounting against the file and the model.
fn sync_and_check(
    log: &mut DiskLog,
    dir: &Path,
    model: &BTreeMap<String, Vec<u8>>,
    compactions: &mut u64,
) {
    log.sync().unwrap();
    let before = log.compactions();
    if log.compact_if_due().unwrap() {
        assert_eq!(log.compactions(), before + 1);
        *compactions += 1;
        // A compacted file is exactly the live records.
        assert_eq!(log.file_bytes(), live_bytes_of(model));
        assert!(!dir.join(COMPACTION_FILE).exists());
    }
    assert_eq!(file_length(dir), log.file_bytes());
    assert!(!log.compaction_due());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random puts, overwrites and deletes with a tiny threshold; after every step the live-byte
    /// count matches the model, and every reopen (including the final one) recovers the model.
    #[test]
    fn contents_survive_compactions_and_reopens(ops in proptest::collection::vec(op(), 100..300)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, storage) = open_with_threshold(dir.path());
        prop_assert!(storage.is_empty());
        let mut model = BTreeMap::new();
        let mut appended_bytes = 0u64;
        let mut compactions = 0u64;
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Put(index, value) => {
                    log.append(&key(*index), Some(value)).unwrap();
                    appended_bytes += encode_record(&key(*index), Some(value)).unwrap().len() as u64;
                    model.insert(key(*index), value.clone());
                }
                Op::Delete(index) => {
                    log.append(&key(*index), None).unwrap();
                    appended_bytes += encode_record(&key(*index), None).unwrap().len() as u64;
                    model.remove(&key(*index));
                }
                Op::Sync => sync_and_check(&mut log, dir.path(), &model, &mut compactions),
                Op::Reopen => {
                    log.sync().unwrap();
                    drop(log);
                    let (reopened, storage) = open_with_threshold(dir.path());
                    log = reopened;
                    prop_assert_eq!(&storage, &storage_of(&model), "step {}", step);
                }
            }
            prop_assert_eq!(log.live_bytes(), live_bytes_of(&model), "step {}", step);
            if step % 4 == 3 {
                sync_and_check(&mut log, dir.path(), &model, &mut compactions);
            }
        }
        sync_and_check(&mut log, dir.path(), &model, &mut compactions);
        drop(log);
        let (log, storage) = open_with_threshold(dir.path());
        prop_assert_eq!(&storage, &storage_of(&model));
        prop_assert_eq!(log.live_bytes(), live_bytes_of(&model));
        prop_assert_eq!(log.file_bytes(), file_length(dir.path()));
        if appended_bytes > THRESHOLD_BYTES {
            // The last check saw a file over the threshold unless an earlier compaction shrank it.
            prop_assert!(compactions > 0, "{} bytes appended, no compaction", appended_bytes);
            prop_assert!(
                file_length(dir.path()) < appended_bytes,
                "file {} bytes, appended {}",
                file_length(dir.path()),
                appended_bytes
            );
        }
    }
}

/// Writes a log with overwrites and deletes; returns the expected contents.
fn write_history(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let (mut log, _, _) = DiskLog::open(dir).unwrap();
    let mut model = BTreeMap::new();
    for round in 0..20u8 {
        for index in 0..5u8 {
            let value = vec![round; usize::from(index) * 10 + 1];
            log.append(&key(index), Some(&value)).unwrap();
            model.insert(key(index), value);
        }
        log.append(&key(round % 5), None).unwrap();
        model.remove(&key(round % 5));
    }
    log.sync().unwrap();
    model
}

#[test]
fn a_leftover_compaction_file_is_deleted_and_the_log_recovered_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_history(dir.path());
    let log_bytes = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
    // Leftovers a crash could leave: garbage, a valid prefix cut short, and a whole compacted
    // file that was synced but never renamed (in it, a key the real log has deleted is alive, so
    // using it would resurrect that key).
    let mut stale = encode_record("key0", Some(b"stale")).unwrap();
    stale.extend_from_slice(&encode_record("zombie", Some(b"resurrected")).unwrap());
    let leftovers: [Vec<u8>; 3] = [
        (0..=255u8).cycle().take(1000).collect(),
        stale[..stale.len() - 3].to_vec(),
        stale.clone(),
    ];
    for leftover in leftovers {
        std::fs::write(dir.path().join(COMPACTION_FILE), &leftover).unwrap();
        let (log, storage, recovery) = DiskLog::open(dir.path()).unwrap();
        assert!(!dir.path().join(COMPACTION_FILE).exists());
        assert_eq!(recovery.abandoned_compaction_bytes, leftover.len() as u64);
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(recovery.records, 120);
        assert_eq!(storage, storage_of(&model));
        assert_eq!(storage.get("zombie"), None);
        assert_eq!(log.live_bytes(), live_bytes_of(&model));
        drop(log);
        assert_eq!(std::fs::read(dir.path().join(LOG_FILE)).unwrap(), log_bytes);
    }
    // With nothing left over, recovery reports nothing abandoned.
    let (_, _, recovery) = DiskLog::open(dir.path()).unwrap();
    assert_eq!(recovery.abandoned_compaction_bytes, 0);
}

#[test]
fn a_compacted_log_is_sorted_live_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_history(dir.path());
    let (mut log, _, _) = DiskLog::open(dir.path()).unwrap();
    let before = log.file_bytes();
    log.compact().unwrap();
    let expected: Vec<u8> = model
        .iter()
        .flat_map(|(key, value)| encode_record(key, Some(value)).unwrap())
        .collect();
    assert_eq!(std::fs::read(dir.path().join(LOG_FILE)).unwrap(), expected);
    assert_eq!(log.file_bytes(), expected.len() as u64);
    assert!(log.file_bytes() < before);
    // Appends continue after the compacted records, in the renamed file.
    log.append("later", Some(b"v")).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, storage, recovery) = DiskLog::open(dir.path()).unwrap();
    assert_eq!(recovery.records, model.len() as u64 + 1);
    assert_eq!(storage.get("later"), Some(&b"v"[..]));
    assert_eq!(storage.len(), model.len() + 1);
}

#[tokio::test]
async fn the_writer_acknowledges_every_token_in_order_across_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = DiskLog::open(dir.path()).unwrap();
    log.set_compaction_threshold(THRESHOLD_BYTES);
    let (writer, mut acks) = DiskWriter::spawn(log);
    let mut model = BTreeMap::new();
    let writes = 2_000u64;
    for token in 1..=writes {
        let key = format!("k{}", token % 11);
        let value = (token % 13 != 0).then(|| token.to_le_bytes().repeat(8));
        match &value {
            Some(bytes) => model.insert(key.clone(), bytes.clone()),
            None => model.remove(&key),
        };
        assert!(writer.submit(Write { key, value, token }));
        if token % 50 == 0 {
            // Let the writer sync and compact while more writes arrive.
            tokio::task::yield_now().await;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let mut highest = 0;
    let mut fsyncs = 0;
    while highest < writes {
        let token = acks.recv().await.unwrap().unwrap();
        assert!(token > highest, "ack {token} after {highest}");
        highest = token;
        fsyncs += 1;
    }
    drop(writer);
    assert!(acks.recv().await.is_none(), "nothing after the last ack");
    let (_, storage, recovery) = DiskLog::open(dir.path()).unwrap();
    assert_eq!(storage, storage_of(&model));
    // Without a compaction every write would still be a record.
    assert!(
        recovery.records < writes,
        "{} records after {writes} writes and {fsyncs} fsyncs: no compaction",
        recovery.records
    );
}

#[tokio::test]
async fn a_compaction_error_is_reported_and_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = DiskLog::open(dir.path()).unwrap();
    log.set_compaction_threshold(1024);
    // A directory where the compaction file must go: the compaction cannot create its file.
    std::fs::create_dir(dir.path().join(COMPACTION_FILE)).unwrap();
    let (writer, mut acks) = DiskWriter::spawn(log);
    let mut acknowledged = 0;
    let mut token = 0u64;
    let error = loop {
        token += 1;
        if !writer.submit(Write {
            key: "same".to_string(),
            value: Some(vec![7; 100]),
            token,
        }) {
            // The writer already stopped; its error is in the channel.
            break acks.recv().await.unwrap().unwrap_err();
        }
        match acks.recv().await.unwrap() {
            Ok(ack) => acknowledged = ack,
            Err(error) => break error,
        }
    };
    assert!(error.contains(COMPACTION_FILE), "{error}");
    // The first batch that takes the file past 1 KiB is acknowledged, then compaction fails.
    let record_bytes = encode_record("same", Some(&[7; 100])).unwrap().len() as u64;
    assert_eq!(acknowledged, 1024 / record_bytes + 1);
    assert!(acks.recv().await.is_none(), "the writer stopped");
    drop(writer);
    // Every acknowledged write is in the old log, which the failed compaction left in place.
    std::fs::remove_dir(dir.path().join(COMPACTION_FILE)).unwrap();
    let (_, storage, recovery) = DiskLog::open(dir.path()).unwrap();
    assert!(recovery.records >= acknowledged);
    assert_eq!(storage.get("same"), Some(&[7; 100][..]));
}

#[test]
fn a_torn_tail_after_a_compaction_is_dropped_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    let model = write_history(dir.path());
    {
        let (mut log, _, _) = DiskLog::open(dir.path()).unwrap();
        log.set_compaction_threshold(0);
        assert!(log.compact_if_due().unwrap());
        assert_eq!(log.file_bytes(), log.live_bytes());
    }
    let prefix = std::fs::read(&path).unwrap();
    let last = encode_record("torn", Some(b"a value a crash cut short")).unwrap();
    for cut in 0..last.len() {
        let mut bytes = prefix.clone();
        bytes.extend_from_slice(&last[..cut]);
        std::fs::write(&path, &bytes).unwrap();
        let (mut log, storage, recovery) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(storage, storage_of(&model), "cut {cut}");
        assert_eq!(recovery.truncated_bytes, cut as u64, "cut {cut}");
        assert_eq!(recovery.records, model.len() as u64, "cut {cut}");
        assert_eq!(log.file_bytes(), prefix.len() as u64, "cut {cut}");
        // The log is usable after truncation: a new record lands right after the good ones.
        log.append("after", Some(b"x")).unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, storage, recovery) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(recovery.records, model.len() as u64 + 1, "cut {cut}");
        assert_eq!(storage.get("after"), Some(&b"x"[..]), "cut {cut}");
        assert_eq!(storage.get("torn"), None, "cut {cut}");
    }
}

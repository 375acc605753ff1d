//! Storage: durability only after sync (crash drops unsynced writes), checksummed records,
//! torn tails, corruption detection, and compaction after snapshots — for both implementations.

use raft::{
    Entry, EntryPayload, FileStorage, HardState, Membership, MemoryStorage, PersistRequest,
    Snapshot, SnapshotMeta, Storage,
};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command {
            client_id: 1,
            sequence: index,
            command: vec![index as u8; 16].into(),
        },
    }
}

fn append(token: u64, from: u64, entries: Vec<Entry>) -> PersistRequest {
    PersistRequest {
        token,
        hard_state: None,
        snapshot: None,
        log_from: Some(from),
        entries: entries.into(),
        repairing: None,
    }
}

fn exercise(storage: &mut dyn Storage) {
    let hard_state = HardState {
        term: 3,
        voted_for: Some(2),
    };
    storage
        .write(&PersistRequest {
            token: 1,
            hard_state: Some(hard_state),
            ..append(1, 1, (1..=5).map(|i| entry(i, 1)).collect())
        })
        .expect("write");
    // Conflict: replace from 4 with term-3 entries.
    storage
        .write(&append(2, 4, vec![entry(4, 3), entry(5, 3), entry(6, 3)]))
        .expect("write");
    storage.sync().expect("sync");
    let recovered = storage.load().expect("load");
    assert_eq!(recovered.hard_state, hard_state);
    assert_eq!(
        recovered
            .entries
            .iter()
            .map(|e| (e.index, e.term))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 1), (3, 1), (4, 3), (5, 3), (6, 3)]
    );
    assert!(!recovered.corrupted);
    // A snapshot at 4 drops the prefix and keeps the matching suffix; the store compacts.
    let meta = SnapshotMeta {
        index: 4,
        term: 3,
        membership: Membership::with_voters([1, 2, 3]),
    };
    let snapshot = Snapshot {
        meta,
        data: b"state".to_vec().into(),
    };
    storage
        .write(&PersistRequest {
            token: 3,
            snapshot: Some(Box::new(snapshot.clone())),
            ..PersistRequest::default()
        })
        .expect("write");
    storage.sync().expect("sync");
    let recovered = storage.load().expect("load");
    assert_eq!(recovered.snapshot, Some(snapshot));
    assert_eq!(
        recovered
            .entries
            .iter()
            .map(|e| e.index)
            .collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert_eq!(recovered.hard_state, hard_state);
}

#[test]
fn memory_storage_contract() {
    let mut storage = MemoryStorage::new();
    exercise(&mut storage);
}

#[test]
fn memory_storage_crash_drops_unsynced_writes_only() {
    let mut storage = MemoryStorage::new();
    storage
        .write(&append(1, 1, vec![entry(1, 1)]))
        .expect("write");
    storage.sync().expect("sync");
    storage
        .write(&append(2, 2, vec![entry(2, 1)]))
        .expect("write");
    storage.crash();
    let recovered = storage.load().expect("load");
    assert_eq!(
        recovered.entries.len(),
        1,
        "the synced write survives and the unsynced one is gone"
    );
}

#[test]
fn memory_storage_detects_corruption() {
    let mut storage = MemoryStorage::new();
    for index in 1..=4 {
        storage
            .write(&append(index, index, vec![entry(index, 1)]))
            .expect("write");
    }
    storage.sync().expect("sync");
    let middle = storage.durable_bytes() / 2;
    assert!(storage.corrupt_byte(middle));
    let recovered = storage.load().expect("load");
    assert!(recovered.corrupted);
    assert!(recovered.entries.len() < 4);
}

fn scratch(name: &str) -> std::path::PathBuf {
    let directory = std::env::temp_dir().join(format!("concur-raft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    directory
}

#[test]
fn file_storage_contract_and_reopen() {
    let directory = scratch("contract");
    {
        let mut storage = FileStorage::open(&directory).expect("open");
        exercise(&mut storage);
        storage
            .write(&append(9, 7, vec![entry(7, 3)]))
            .expect("write");
        storage.sync().expect("sync");
    }
    let reopened = FileStorage::open(&directory).expect("reopen");
    let recovered = reopened.load().expect("load");
    assert_eq!(
        recovered
            .entries
            .iter()
            .map(|e| e.index)
            .collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert_eq!(recovered.hard_state.term, 3);
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[test]
fn file_storage_torn_tail_is_dropped_and_corruption_is_reported() {
    let directory = scratch("torn");
    let mut storage = FileStorage::open(&directory).expect("open");
    for index in 1..=3 {
        storage
            .write(&append(index, index, vec![entry(index, 1)]))
            .expect("write");
    }
    storage.sync().expect("sync");
    drop(storage);
    let path = directory.join("raft.log");
    let bytes = std::fs::read(&path).expect("read");
    // Torn write: the last record is cut short (never acknowledged): silently dropped.
    std::fs::write(&path, &bytes[..bytes.len() - 5]).expect("write");
    let recovered = FileStorage::open(&directory)
        .expect("open")
        .load()
        .expect("load");
    assert_eq!(recovered.entries.len(), 2);
    assert!(!recovered.corrupted);
    // Bit rot in the middle: detected by the checksum.
    let mut rotten = bytes.clone();
    rotten[bytes.len() / 2] ^= 0x10;
    std::fs::write(&path, &rotten).expect("write");
    let recovered = FileStorage::open(&directory)
        .expect("open")
        .load()
        .expect("load");
    assert!(recovered.corrupted);
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

/// Goal: a crash at any byte of an unsynced group commit loses nothing that was synced and never
/// looks like corruption. Method: sync a base, then cut the file at every offset inside the next
/// (unacknowledged) batch and reload.
#[test]
fn file_storage_crash_at_every_byte_keeps_synced_prefix() {
    let directory = scratch("every-byte");
    let mut storage = FileStorage::open(&directory).expect("open");
    let hard_state = HardState {
        term: 2,
        voted_for: Some(1),
    };
    storage
        .write(&PersistRequest {
            token: 1,
            hard_state: Some(hard_state),
            ..append(1, 1, vec![entry(1, 1), entry(2, 1)])
        })
        .expect("write");
    storage.sync().expect("sync");
    let synced = std::fs::metadata(directory.join("raft.log"))
        .expect("metadata")
        .len() as usize;
    storage
        .write(&append(2, 3, vec![entry(3, 2)]))
        .expect("write");
    storage
        .write(&append(3, 2, vec![entry(2, 2), entry(3, 2)]))
        .expect("write");
    storage.sync().expect("sync");
    drop(storage);
    let path = directory.join("raft.log");
    let full = std::fs::read(&path).expect("read");
    for cut in synced..=full.len() {
        std::fs::write(&path, &full[..cut]).expect("write");
        let recovered = FileStorage::open(&directory)
            .expect("open")
            .load()
            .expect("load");
        assert!(!recovered.corrupted, "cut at {cut} reported as corruption");
        assert_eq!(recovered.hard_state, hard_state, "cut at {cut}");
        // Exactly the state after some prefix of whole records: the synced base, or base + one or
        // both unsynced records.
        let log: Vec<(u64, u64)> = recovered
            .entries
            .iter()
            .map(|e| (e.index, e.term))
            .collect();
        let allowed: [&[(u64, u64)]; 3] = [
            &[(1, 1), (2, 1)],
            &[(1, 1), (2, 1), (3, 2)],
            &[(1, 1), (2, 2), (3, 2)],
        ];
        assert!(allowed.contains(&log.as_slice()), "cut at {cut}: {log:?}");
    }
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

/// Goal: the key-value layout (for the simulator's disk) recovers exactly what was written after
/// any prefix of its writes, including mid-compaction, and bounds the number of keys.
#[test]
fn record_keys_recover_after_every_prefix_of_writes() {
    use std::collections::BTreeMap;
    let requests = vec![
        PersistRequest {
            token: 1,
            hard_state: Some(HardState {
                term: 1,
                voted_for: Some(1),
            }),
            ..append(1, 1, (1..=4).map(|i| entry(i, 1)).collect())
        },
        append(2, 3, vec![entry(3, 2), entry(4, 2), entry(5, 2)]),
        PersistRequest {
            token: 3,
            snapshot: Some(Box::new(Snapshot {
                meta: SnapshotMeta {
                    index: 4,
                    term: 2,
                    membership: Membership::with_voters([1]),
                },
                data: b"s".to_vec().into(),
            })),
            ..PersistRequest::default()
        },
        append(4, 6, vec![entry(6, 2)]),
    ];
    // Expected state after each whole request, by replaying into MemoryStorage.
    let mut expected = Vec::new();
    let mut reference = MemoryStorage::new();
    expected.push(reference.load().expect("load"));
    for request in &requests {
        reference.write(request).expect("write");
        reference.sync().expect("sync");
        expected.push(reference.load().expect("load"));
    }
    let mut layout = raft::RecordKeys::default();
    let mut writes = Vec::new();
    let mut completes_request = Vec::new();
    for request in &requests {
        let batch = layout.writes(request).expect("writes");
        writes.extend(batch);
        completes_request.push(writes.len());
    }
    for cut in 0..=writes.len() {
        let mut disk: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (key, value) in &writes[..cut] {
            match value {
                Some(bytes) => disk.insert(key.clone(), bytes.clone()),
                None => disk.remove(key),
            };
        }
        let (_, recovered) =
            raft::RecordKeys::recover(disk.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        let whole = completes_request.iter().filter(|&&end| end <= cut).count();
        // A prefix of writes recovers the state after the last whole request, or the next one when
        // its first (atomic) record is already written.
        let candidates = [&expected[whole], &expected[(whole + 1).min(requests.len())]];
        assert!(candidates.contains(&&recovered), "cut {cut}: {recovered:?}");
        assert!(!recovered.corrupted);
    }
    let mut final_disk: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in &writes {
        match value {
            Some(bytes) => final_disk.insert(key.clone(), bytes.clone()),
            None => final_disk.remove(key),
        };
    }
    assert!(
        final_disk.len() <= 2,
        "compaction left {} records",
        final_disk.len()
    );
}

/// Goal: after a corrupt record is detected, records written later are not lost behind it, and
/// the repair status survives restarts until the replica records that it finished. `restart`
/// simulates a crash + restart and optionally flips a byte in the middle of the durable records.
fn check_corruption_then_restarts<S: Storage>(mut storage: S, restart: impl Fn(S, bool) -> S) {
    for index in 1..=4 {
        storage
            .write(&append(index, index, vec![entry(index, 1)]))
            .expect("write");
    }
    storage.sync().expect("sync");
    storage = restart(storage, true);
    let first = storage.load().expect("load");
    assert!(first.corrupted, "checksum failure not reported");
    let kept = first.entries.len() as u64;
    assert!(kept < 4);
    // The replica catches up from a leader: new records after the dropped tail.
    storage
        .write(&append(
            10,
            kept + 1,
            (kept + 1..=6).map(|i| entry(i, 2)).collect(),
        ))
        .expect("write");
    storage.sync().expect("sync");
    storage = restart(storage, false);
    let second = storage.load().expect("load");
    assert_eq!(
        second.entries.len(),
        6,
        "records written after the repair point were lost"
    );
    assert!(second.corrupted, "repair status forgotten across a restart");
    storage
        .write(&PersistRequest {
            token: 11,
            repairing: Some(false),
            ..PersistRequest::default()
        })
        .expect("write");
    storage.sync().expect("sync");
    storage = restart(storage, false);
    let third = storage.load().expect("load");
    assert!(!third.corrupted, "repair status not cleared");
    assert_eq!(third.entries.len(), 6);
}

#[test]
fn memory_storage_keeps_records_written_after_corruption() {
    check_corruption_then_restarts(MemoryStorage::new(), |mut storage, corrupt| {
        if corrupt {
            let middle = storage.durable_bytes() / 2;
            assert!(storage.corrupt_byte(middle));
        }
        storage.crash();
        storage
    });
}

#[test]
fn file_storage_keeps_records_written_after_corruption() {
    let directory = scratch("after-corruption");
    let path = directory.join("raft.log");
    check_corruption_then_restarts(
        FileStorage::open(&directory).expect("open"),
        |storage, corrupt| {
            drop(storage);
            if corrupt {
                let mut bytes = std::fs::read(&path).expect("read");
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
                std::fs::write(&path, &bytes).expect("write");
            }
            FileStorage::open(&directory).expect("reopen")
        },
    );
    assert!(
        directory.join("raft.log.corrupt").exists(),
        "corrupt bytes kept as evidence"
    );
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

/// The same for the simulator's key-value layout: every prefix of the cleanup writes still
/// recovers as repairing, and records written after it are readable.
#[test]
fn record_keys_keep_records_written_after_corruption() {
    use std::collections::BTreeMap;
    fn apply(disk: &mut BTreeMap<String, Vec<u8>>, writes: &[raft::KeyWrite]) {
        for (key, value) in writes {
            match value {
                Some(bytes) => disk.insert(key.clone(), bytes.clone()),
                None => disk.remove(key),
            };
        }
    }
    fn recover(disk: &BTreeMap<String, Vec<u8>>) -> (raft::RecordKeys, raft::RecoveredState) {
        raft::RecordKeys::recover(disk.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }
    let mut layout = raft::RecordKeys::default();
    let mut disk = BTreeMap::new();
    for index in 1..=4 {
        let writes = layout
            .writes(&append(index, index, vec![entry(index, 1)]))
            .expect("writes");
        apply(&mut disk, &writes);
    }
    let victim = disk.keys().nth(2).expect("third record").clone();
    disk.get_mut(&victim).expect("record")[12] ^= 0x40;
    let (mut layout, recovered) = recover(&disk);
    assert!(recovered.corrupted);
    assert_eq!(recovered.entries.len(), 2);
    let writes = layout
        .writes(&append(10, 3, (3..=6).map(|i| entry(i, 2)).collect()))
        .expect("writes");
    for cut in 0..=writes.len() {
        let mut partial = disk.clone();
        apply(&mut partial, &writes[..cut]);
        let (_, state) = recover(&partial);
        assert!(state.corrupted, "cut {cut}: repair status lost mid-cleanup");
        assert!(state.entries.len() >= 2);
    }
    apply(&mut disk, &writes);
    let (mut layout, recovered) = recover(&disk);
    assert_eq!(
        recovered.entries.len(),
        6,
        "records written after the repair point were lost"
    );
    assert!(recovered.corrupted);
    let done = PersistRequest {
        token: 11,
        repairing: Some(false),
        ..PersistRequest::default()
    };
    apply(&mut disk, &layout.writes(&done).expect("writes"));
    assert!(!recover(&disk).1.corrupted);
}

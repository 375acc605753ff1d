//! The durable store end to end: reopen, reads, time travel, concurrency, subscriptions,
//! projections, deletion and recovery from damaged files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use events::{
    AsOf, CommandError, Direction, EventData, EventStore, ExpectedVersion, FileOptions, Metadata,
    Projection, ProjectionRunner, ReadOptions, RecordedEvent, StorageError, StoreError,
    StreamRevision, SubscriptionStart, Uuid,
};
use serde::{Deserialize, Serialize};

fn note(text: &str) -> EventData {
    EventData::json("Noted", &serde_json::json!({ "text": text })).expect("json")
}

fn texts(events: &[Arc<RecordedEvent>]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            event.data_as::<serde_json::Value>().expect("json")["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn segment_files(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(directory)
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn events_survive_reopen_with_revisions_positions_and_metadata() {
    let directory = tempfile::tempdir().expect("tempdir");
    let correlation = Uuid::new_v4();
    let cause = Uuid::new_v4();
    {
        let store = EventStore::open(directory.path()).expect("open");
        store
            .append("a", ExpectedVersion::NoStream, vec![note("a0"), note("a1")])
            .expect("append");
        let tagged = note("b0").with_metadata(Metadata::caused_by(correlation, cause));
        store
            .append("b", ExpectedVersion::NoStream, vec![tagged])
            .expect("append");
        store
            .append("a", ExpectedVersion::Exact(1), vec![note("a2")])
            .expect("append");
    }
    let store = EventStore::open(directory.path()).expect("reopen");
    assert_eq!(store.recovery_report().record_count, 4);
    assert_eq!(store.recovery_report().torn_tail_bytes, 0);
    assert_eq!(store.stream_revision("a"), StreamRevision::Revision(2));
    let all = store.read_all(ReadOptions::forwards()).expect("read");
    assert_eq!(texts(&all), ["a0", "a1", "b0", "a2"]);
    assert_eq!(
        all.iter().map(|event| event.position).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(all[2].event.metadata.correlation_id, Some(correlation));
    assert_eq!(all[2].event.metadata.causation_id, Some(cause));
    assert!(
        all.windows(2)
            .all(|pair| pair[0].recorded_at <= pair[1].recorded_at)
    );
    // New appends continue the numbering after recovery.
    let next = store
        .append("b", ExpectedVersion::StreamExists, vec![note("b1")])
        .expect("append");
    assert_eq!((next.next_expected_revision, next.first_position), (1, 4));
}

#[test]
fn reads_go_both_ways_from_a_revision_or_position() {
    let store = EventStore::in_memory();
    for index in 0..10 {
        store
            .append("s", ExpectedVersion::Any, vec![note(&format!("s{index}"))])
            .expect("append");
        store
            .append("t", ExpectedVersion::Any, vec![note(&format!("t{index}"))])
            .expect("append");
    }
    let forwards = store
        .read_stream("s", ReadOptions::forwards().from(3).max_count(3))
        .expect("read");
    assert_eq!(texts(&forwards), ["s3", "s4", "s5"]);
    let backwards = store
        .read_stream("s", ReadOptions::backwards().from(3).max_count(10))
        .expect("read");
    assert_eq!(texts(&backwards), ["s3", "s2", "s1", "s0"]);
    let last = store
        .read_stream("t", ReadOptions::backwards().max_count(1))
        .expect("read");
    assert_eq!(texts(&last), ["t9"]);
    let all_back = store
        .read_all(ReadOptions::backwards().from(5).max_count(3))
        .expect("read");
    assert_eq!(
        all_back
            .iter()
            .map(|event| event.position)
            .collect::<Vec<_>>(),
        [5, 4, 3]
    );
    assert!(
        store
            .read_stream("never", ReadOptions::forwards())
            .expect("read")
            .is_empty()
    );
}

#[test]
fn time_travel_by_revision_position_and_time() {
    let store = EventStore::in_memory();
    store
        .append("s", ExpectedVersion::Any, vec![note("first")])
        .expect("append");
    store
        .append("other", ExpectedVersion::Any, vec![note("other")])
        .expect("append");
    thread::sleep(Duration::from_millis(2));
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![note("second"), note("third")],
        )
        .expect("append");
    let all = store.read_all(ReadOptions::forwards()).expect("read");
    let at_revision = store
        .read_stream("s", ReadOptions::forwards().as_of(AsOf::Revision(1)))
        .expect("read");
    assert_eq!(texts(&at_revision), ["first", "second"]);
    let at_position = store
        .read_stream("s", ReadOptions::forwards().as_of(AsOf::Position(1)))
        .expect("read");
    assert_eq!(texts(&at_position), ["first"]);
    let at_time = store
        .read_stream(
            "s",
            ReadOptions::backwards().as_of(AsOf::Time(all[1].recorded_at)),
        )
        .expect("read");
    assert_eq!(texts(&at_time), ["first"]);
    let all_at_time = store
        .read_all(ReadOptions::forwards().as_of(AsOf::Time(all[1].recorded_at)))
        .expect("read");
    assert_eq!(texts(&all_at_time), ["first", "other"]);
    assert!(matches!(
        store.read_all(ReadOptions::forwards().as_of(AsOf::Revision(0))),
        Err(StoreError::Read(_))
    ));
}

#[test]
fn concurrent_writers_get_gapless_positions_and_exact_conflicts() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EventStore::open(directory.path()).expect("open");
    let writers = 8;
    let per_writer = 50;
    let handles: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            thread::spawn(move || {
                for index in 0..per_writer {
                    let expected = if index == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(index - 1)
                    };
                    store
                        .append(
                            &format!("w{writer}"),
                            expected,
                            vec![note(&format!("{writer}:{index}"))],
                        )
                        .expect("append");
                    // Everyone also races on one shared stream with an expected revision.
                    loop {
                        let current = store.stream_revision("shared");
                        let expected = match current {
                            StreamRevision::NoStream => ExpectedVersion::NoStream,
                            StreamRevision::Revision(revision) => ExpectedVersion::Exact(revision),
                        };
                        match store.append("shared", expected, vec![note("x")]) {
                            Ok(_) => break,
                            Err(error) => assert!(error.is_wrong_expected_version(), "{error}"),
                        }
                    }
                }
            })
        })
        .collect();
    handles
        .into_iter()
        .for_each(|handle| handle.join().expect("writer"));
    let total = writers * per_writer * 2;
    let all = store.read_all(ReadOptions::forwards()).expect("read");
    assert_eq!(all.len() as u64, total);
    assert!(
        all.iter()
            .enumerate()
            .all(|(index, event)| event.position == index as u64)
    );
    assert_eq!(
        store.stream_revision("shared"),
        StreamRevision::Revision(total / 2 - 1)
    );
    drop(store);
    let reopened = EventStore::open(directory.path()).expect("reopen");
    assert_eq!(
        reopened.read_all(ReadOptions::forwards()).expect("read"),
        all
    );
}

#[test]
fn conflict_error_names_the_actual_revision() {
    let store = EventStore::in_memory();
    store
        .append("s", ExpectedVersion::Any, vec![note("0"), note("1")])
        .expect("append");
    let error = store
        .append("s", ExpectedVersion::Exact(0), vec![note("2")])
        .unwrap_err();
    match &error {
        StoreError::Command(CommandError::WrongExpectedVersion {
            actual,
            expected,
            stream,
        }) => {
            assert_eq!(
                (*actual, *expected, stream.as_str()),
                (StreamRevision::Revision(1), ExpectedVersion::Exact(0), "s")
            );
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(
        error.to_string(),
        "wrong expected version on stream \"s\": expected revision 0, actual revision 1"
    );
}

#[test]
fn retried_appends_are_written_once_even_after_reopen() {
    let directory = tempfile::tempdir().expect("tempdir");
    let batch = vec![note("a"), note("b")];
    let original = {
        let store = EventStore::open(directory.path()).expect("open");
        store
            .append("s", ExpectedVersion::NoStream, batch.clone())
            .expect("append")
    };
    let store = EventStore::open(directory.path()).expect("reopen");
    let retry = store
        .append("s", ExpectedVersion::NoStream, batch)
        .expect("retry");
    assert!(retry.duplicate);
    assert_eq!(retry.first_position, original.first_position);
    assert_eq!(
        store.read_all(ReadOptions::forwards()).expect("read").len(),
        2
    );
}

#[test]
fn catch_up_subscription_reads_history_then_live_without_gaps() {
    let store = EventStore::in_memory();
    for index in 0..100 {
        store
            .append(
                &format!("s{}", index % 7),
                ExpectedVersion::Any,
                vec![note(&index.to_string())],
            )
            .expect("append");
    }
    let mut subscription = store.subscribe_all(SubscriptionStart::After(49));
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            for index in 100..300 {
                store
                    .append(
                        &format!("s{}", index % 7),
                        ExpectedVersion::Any,
                        vec![note(&index.to_string())],
                    )
                    .expect("append");
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 250 {
        let event = subscription
            .next_timeout(Duration::from_secs(10))
            .expect("subscription")
            .expect("event in time");
        seen.push(event.position);
    }
    writer.join().expect("writer");
    assert_eq!(seen, (50..300).collect::<Vec<u64>>());
    assert_eq!(subscription.checkpoint(), Some(299));
    assert!(
        subscription
            .next_timeout(Duration::from_millis(20))
            .expect("subscription")
            .is_none()
    );

    store.save_checkpoint("mailer", 120).expect("checkpoint");
    store.save_checkpoint("mailer", 299).expect("checkpoint");
    assert_eq!(store.load_checkpoint("mailer").expect("load"), Some(299));
    assert_eq!(store.load_checkpoint("nobody").expect("load"), None);
    // A checkpointed subscriber resumes after its checkpoint.
    let mut resumed = store
        .subscribe_from_checkpoint("mailer", events::SubscriptionFilter::All)
        .expect("resume");
    assert!(resumed.drain().expect("drain").is_empty());
    let mut fresh = store
        .subscribe_from_checkpoint("auditor", events::SubscriptionFilter::All)
        .expect("start");
    assert_eq!(
        fresh.try_next().expect("next").map(|event| event.position),
        Some(0)
    );
    fresh.save_checkpoint("auditor").expect("save");
    assert_eq!(store.load_checkpoint("auditor").expect("load"), Some(0));
    // Checkpoint streams are system streams: a user subscription does not see them.
    assert!(subscription.drain().expect("drain").is_empty());
    let mut stream_only = store.subscribe_stream("s3", SubscriptionStart::Beginning);
    let s3 = stream_only.drain().expect("drain");
    assert!(s3.iter().all(|event| event.stream == "s3") && s3.len() == 43);
}

#[derive(Default, Serialize, Deserialize)]
struct CountPerStream {
    counts: std::collections::BTreeMap<String, u64>,
    applied: u64,
}

impl Projection for CountPerStream {
    fn apply(&mut self, event: &RecordedEvent) {
        *self.counts.entry(event.stream.clone()).or_default() += 1;
        self.applied += 1;
    }
}

#[test]
fn projection_continues_after_restart_and_rebuilds_to_the_same_state() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let store = EventStore::open(directory.path()).expect("open");
        for index in 0..30 {
            store
                .append(
                    &format!("s{}", index % 3),
                    ExpectedVersion::Any,
                    vec![note("x")],
                )
                .expect("append");
        }
        let mut runner = ProjectionRunner::<CountPerStream>::start(&store, "counts")
            .expect("start")
            .checkpoint_every(7);
        assert_eq!(runner.catch_up().expect("catch up"), 30);
        assert_eq!(runner.state().counts["s0"], 10);
        for _ in 0..5 {
            store
                .append("s0", ExpectedVersion::Any, vec![note("y")])
                .expect("append");
        }
    }
    let store = EventStore::open(directory.path()).expect("reopen");
    let mut resumed = ProjectionRunner::<CountPerStream>::start(&store, "counts").expect("start");
    assert_eq!(resumed.state().applied, 30, "saved state restored");
    assert_eq!(
        resumed.catch_up().expect("catch up"),
        5,
        "only the new events are applied"
    );
    let mut rebuilt = ProjectionRunner::<CountPerStream>::rebuild(&store, "counts");
    assert_eq!(rebuilt.catch_up().expect("rebuild"), 35);
    assert_eq!(rebuilt.state().counts, resumed.state().counts);
    assert_eq!(rebuilt.state().applied, resumed.state().applied);
}

#[test]
fn truncate_and_tombstone_then_compaction_removes_the_bytes() {
    let directory = tempfile::tempdir().expect("tempdir");
    let secret = "SECRET-PAYLOAD-TO-ERASE";
    let store = EventStore::open(directory.path()).expect("open");
    store
        .append("keep", ExpectedVersion::Any, vec![note("kept")])
        .expect("append");
    store
        .append(
            "old",
            ExpectedVersion::Any,
            vec![note(secret), note(secret), note("recent")],
        )
        .expect("append");
    store
        .append("gone", ExpectedVersion::Any, vec![note(secret)])
        .expect("append");
    assert_eq!(store.truncate_before("old", 2).expect("truncate"), 2);
    assert_eq!(
        texts(
            &store
                .read_stream("old", ReadOptions::forwards())
                .expect("read")
        ),
        ["recent"]
    );
    // Truncation keeps the revision: the stream continues where it was.
    assert_eq!(store.stream_revision("old"), StreamRevision::Revision(2));
    store
        .tombstone("gone", ExpectedVersion::Exact(0))
        .expect("tombstone");
    assert!(matches!(
        store.read_stream("gone", ReadOptions::forwards()),
        Err(StoreError::Read(_))
    ));
    assert!(matches!(
        store.append("gone", ExpectedVersion::Any, vec![note("again")]),
        Err(StoreError::Command(CommandError::StreamDeleted { .. }))
    ));
    assert_eq!(
        texts(&store.read_all(ReadOptions::forwards()).expect("read")),
        ["kept", "recent"]
    );

    let on_disk = |needle: &str| {
        segment_files(directory.path()).iter().any(|path| {
            fs::read(path)
                .expect("read")
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
    };
    assert!(
        on_disk(secret),
        "deleted bytes stay on disk until compaction"
    );
    let report = store.compact().expect("compact");
    assert_eq!(report.events_erased, 3);
    assert!(report.bytes_reclaimed > 0);
    assert!(!on_disk(secret), "compaction removes deleted payloads");
    drop(store);
    let store = EventStore::open(directory.path()).expect("reopen");
    assert_eq!(
        texts(&store.read_all(ReadOptions::forwards()).expect("read")),
        ["kept", "recent"]
    );
    assert_eq!(store.stream_revision("old"), StreamRevision::Revision(2));
    let next = store
        .append("keep", ExpectedVersion::Exact(0), vec![note("more")])
        .expect("append");
    assert_eq!(
        next.first_position, 5,
        "positions stay gapless across erased events"
    );
}

#[test]
fn torn_tail_is_cut_and_corruption_elsewhere_refuses_to_open() {
    let directory = tempfile::tempdir().expect("tempdir");
    // Tiny segments, and nothing kept in memory: every read goes to disk.
    let options = events::StoreOptions {
        file: FileOptions {
            segment_size_bytes: 400,
        },
        resident_events_max: 0,
    };
    {
        let store = EventStore::open_with(directory.path(), options.clone()).expect("open");
        for index in 0..20 {
            store
                .append("s", ExpectedVersion::Any, vec![note(&index.to_string())])
                .expect("append");
        }
    }
    let files = segment_files(directory.path());
    assert!(files.len() > 2, "small segments roll over");
    // A crash mid-write leaves half a record at the end of the last segment.
    let last = files.last().expect("segment");
    let whole = fs::read(last).expect("read");
    OpenOptions::new()
        .append(true)
        .open(last)
        .expect("open")
        .write_all(&whole[12..40])
        .expect("write");
    {
        let store = EventStore::open_with(directory.path(), options.clone()).expect("recover");
        assert_eq!(store.recovery_report().torn_tail_bytes, 28);
        assert_eq!(
            store.read_all(ReadOptions::forwards()).expect("read").len(),
            20
        );
        store
            .append("s", ExpectedVersion::Exact(19), vec![note("20")])
            .expect("append after recovery");
    }
    let store = EventStore::open_with(directory.path(), options.clone()).expect("reopen");
    assert_eq!(
        store.read_all(ReadOptions::forwards()).expect("read").len(),
        21
    );
    drop(store);
    // A flipped bit in a sealed segment is not a torn tail: opening fails and names the file.
    let first = &segment_files(directory.path())[0];
    let mut bytes = fs::read(first).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(first, bytes).expect("write");
    match EventStore::open_with(directory.path(), options) {
        Err(StoreError::Storage(StorageError::Corrupt { file, .. })) => {
            assert!(file.starts_with("segment-"))
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn unknown_format_version_is_named() {
    let directory = tempfile::tempdir().expect("tempdir");
    EventStore::open(directory.path())
        .expect("open")
        .append("s", ExpectedVersion::Any, vec![note("x")])
        .expect("append");
    let file = &segment_files(directory.path())[0];
    let mut bytes = fs::read(file).expect("read");
    bytes[8] = 9;
    fs::write(file, bytes).expect("write");
    match EventStore::open(directory.path()) {
        Err(StoreError::Storage(StorageError::UnsupportedVersion { found: 9, .. })) => {}
        other => panic!("expected unsupported version, got {other:?}"),
    }
}

#[test]
fn backwards_read_of_all_skips_deleted_events() {
    let store = EventStore::in_memory();
    store
        .append("a", ExpectedVersion::Any, vec![note("a0"), note("a1")])
        .expect("append");
    store
        .append("b", ExpectedVersion::Any, vec![note("b0")])
        .expect("append");
    store.truncate_before("a", 1).expect("truncate");
    let back = store.read_all(ReadOptions::backwards()).expect("read");
    assert_eq!(texts(&back), ["b0", "a1"]);
    assert_eq!(back[0].position, 2);
    let _ = Direction::Forwards;
}

/// Goal: a reader holding position P never misses an event committed later. Method: 8 writers
/// append concurrently while a poller reads `$all` after its last position and a subscription
/// follows live; both must see every position exactly once, in order, with no gap.
#[test]
fn readers_after_a_position_never_miss_later_commits() {
    for resident_events_max in [100_000, 5] {
        readers_never_miss_with(resident_events_max);
    }
}

fn readers_never_miss_with(resident_events_max: u64) {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = events::StoreOptions {
        resident_events_max,
        ..Default::default()
    };
    let store = EventStore::open_with(directory.path(), options).expect("open");
    let writers = 8_u64;
    let appends_per_writer = 60_u64;
    let total: u64 = (0..appends_per_writer)
        .map(|index| 1 + index % 3)
        .sum::<u64>()
        * writers;
    let poller = {
        let store = store.clone();
        thread::spawn(move || {
            let mut next = 0_u64;
            while next < total {
                let page = store
                    .read_all(ReadOptions::forwards().from(next).max_count(64))
                    .expect("read");
                for event in page {
                    assert_eq!(event.position, next, "a reader after {next} saw a gap");
                    next += 1;
                }
                thread::yield_now();
            }
            next
        })
    };
    let follower = {
        let store = store.clone();
        thread::spawn(move || {
            let mut subscription = store.subscribe_all(SubscriptionStart::Beginning);
            let mut seen = Vec::new();
            while (seen.len() as u64) < total {
                let event = subscription
                    .next_timeout(Duration::from_secs(20))
                    .expect("subscription")
                    .expect("in time");
                seen.push(event.position);
            }
            seen
        })
    };
    let handles: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            thread::spawn(move || {
                for index in 0..appends_per_writer {
                    let batch = (0..1 + index % 3)
                        .map(|_| note(&format!("{writer}")))
                        .collect();
                    store
                        .append(&format!("w{writer}"), ExpectedVersion::Any, batch)
                        .expect("append");
                }
            })
        })
        .collect();
    handles
        .into_iter()
        .for_each(|handle| handle.join().expect("writer"));
    assert_eq!(poller.join().expect("poller"), total);
    assert_eq!(
        follower.join().expect("follower"),
        (0..total).collect::<Vec<_>>()
    );
}

#[test]
fn subscription_skips_deleted_events_without_skipping_new_ones() {
    let store = EventStore::in_memory();
    store
        .append(
            "gone",
            ExpectedVersion::Any,
            (0..10).map(|index| note(&index.to_string())).collect(),
        )
        .expect("append");
    store
        .tombstone("gone", ExpectedVersion::Any)
        .expect("tombstone");
    let mut subscription = store.subscribe_all(SubscriptionStart::Beginning);
    assert!(subscription.drain().expect("drain").is_empty());
    store
        .append("new", ExpectedVersion::Any, vec![note("fresh")])
        .expect("append");
    let next = subscription
        .next_timeout(Duration::from_secs(5))
        .expect("subscription")
        .expect("event");
    assert_eq!((next.position, next.stream.as_str()), (10, "new"));
}

/// A storage whose disk "fails" after a number of writes, to check the store stops cleanly.
struct FailingStorage {
    inner: events::MemoryStorage,
    writes_left: u32,
    panic_instead: bool,
}

impl events::Storage for FailingStorage {
    fn recover(
        &mut self,
        visit: &mut dyn FnMut(events::LogRecord) -> Result<(), events::RestoreError>,
    ) -> Result<events::RecoveryReport, StorageError> {
        self.inner.recover(visit)
    }

    fn write_durable(
        &mut self,
        records: &[u8],
        events: &[events::EventSpan],
    ) -> Result<(), StorageError> {
        if self.writes_left == 0 {
            assert!(!self.panic_instead, "simulated storage panic");
            return Err(StorageError::Io {
                context: "simulated fsync failure".into(),
                source: std::io::Error::other("EIO"),
            });
        }
        self.writes_left -= 1;
        self.inner.write_durable(records, events)
    }

    fn compact(
        &mut self,
        is_live: &dyn Fn(u64) -> bool,
    ) -> Result<events::CompactionReport, StorageError> {
        self.inner.compact(is_live)
    }
}

#[test]
fn a_failed_fsync_stops_the_store_and_hides_the_unacknowledged_event() {
    for panic_instead in [false, true] {
        let storage = FailingStorage {
            inner: events::MemoryStorage::new(),
            writes_left: 1,
            panic_instead,
        };
        let store = EventStore::with_storage(Box::new(storage)).expect("open");
        store
            .append("s", ExpectedVersion::Any, vec![note("durable")])
            .expect("first write");
        let writer = {
            let store = store.clone();
            thread::spawn(move || store.append("s", ExpectedVersion::Any, vec![note("lost")]))
        };
        match writer.join() {
            Ok(result) => assert!(matches!(result, Err(StoreError::Storage(_))), "{result:?}"),
            Err(_) => assert!(panic_instead, "only the panicking storage unwinds"),
        }
        // The event whose write failed was never acknowledged and never becomes visible.
        assert_eq!(
            texts(&store.read_all(ReadOptions::forwards()).expect("read")),
            ["durable"]
        );
        assert!(matches!(
            store.append("s", ExpectedVersion::Any, vec![note("after")]),
            Err(StoreError::Failed(_))
        ));
    }
}

/// Goal: events evicted from memory read back from disk exactly as they were written, through
/// every read path, across truncation, compaction (which moves records) and reopening.
/// Method: the same workload on a store that keeps everything resident and one that keeps 3 events.
#[test]
fn evicted_events_read_back_from_disk_identically() {
    let workload = |store: &EventStore| {
        for index in 0..60 {
            let batch = (0..1 + index % 3)
                .map(|part| note(&format!("{index}.{part}")))
                .collect();
            store
                .append(&format!("s{}", index % 4), ExpectedVersion::Any, batch)
                .expect("append");
        }
    };
    let snapshot = |store: &EventStore| {
        let mut reads = vec![
            store.read_all(ReadOptions::forwards()).expect("all"),
            store
                .read_all(ReadOptions::backwards().from(70).max_count(25))
                .expect("all back"),
            store
                .read_all(ReadOptions::forwards().as_of(AsOf::Position(40)))
                .expect("as of"),
        ];
        for stream in ["s0", "s1", "s3"] {
            reads.push(
                store
                    .read_stream(stream, ReadOptions::forwards().from(2).max_count(9))
                    .expect("stream"),
            );
            reads.push(
                store
                    .read_stream(stream, ReadOptions::backwards())
                    .expect("stream back"),
            );
        }
        let mut subscription = store.subscribe_all(SubscriptionStart::After(10));
        reads.push(subscription.drain().expect("subscription"));
        if let Ok(s2) = store.read_stream("s2", ReadOptions::forwards()) {
            reads.push(s2);
        }
        // Ids and commit times differ between the two stores; compare what each event says.
        reads
            .iter()
            .map(|read| {
                read.iter()
                    .map(|event| {
                        format!(
                            "{}@{}#{}:{}",
                            event.stream,
                            event.revision,
                            event.position,
                            texts(std::slice::from_ref(event))[0]
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let resident_directory = tempfile::tempdir().expect("tempdir");
    let evicting_directory = tempfile::tempdir().expect("tempdir");
    let small_segments = FileOptions {
        segment_size_bytes: 2048,
    };
    let resident_options = events::StoreOptions {
        file: small_segments.clone(),
        resident_events_max: u64::MAX,
    };
    let evicting_options = events::StoreOptions {
        file: small_segments,
        resident_events_max: 3,
    };
    let resident =
        EventStore::open_with(resident_directory.path(), resident_options.clone()).expect("open");
    let evicting =
        EventStore::open_with(evicting_directory.path(), evicting_options.clone()).expect("open");
    workload(&resident);
    workload(&evicting);
    assert_eq!(resident.resident_event_count(), 120);
    assert_eq!(
        evicting.resident_event_count(),
        3,
        "older events live on disk only"
    );
    assert_eq!(snapshot(&evicting), snapshot(&resident));
    assert_eq!(snapshot(&evicting)[0].len(), 120);
    for store in [&resident, &evicting] {
        store.truncate_before("s1", 7).expect("truncate");
        store
            .tombstone("s2", ExpectedVersion::Any)
            .expect("tombstone");
        let report = store.compact().expect("compact");
        assert!(report.events_erased > 0 && report.segments_rewritten > 0);
    }
    assert_eq!(snapshot(&evicting), snapshot(&resident));
    drop((resident, evicting));
    let resident =
        EventStore::open_with(resident_directory.path(), resident_options).expect("reopen");
    let evicting =
        EventStore::open_with(evicting_directory.path(), evicting_options).expect("reopen");
    assert!(evicting.resident_event_count() <= 3, "recovery evicts too");
    let expected = snapshot(&resident);
    assert_eq!(snapshot(&evicting), expected);
    assert!(!expected[0].is_empty());
}

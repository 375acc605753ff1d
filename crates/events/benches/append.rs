//! Durable append throughput of the event store beside plain SQLite (WAL, synchronous=FULL) on the
//! same disk in the same run, for 1, 16 and 256 concurrent writers and batches of 1 and 100 events;
//! then read throughput of all events (recovery scan from disk and `$all` reads).
//!
//! Run: `cargo bench -p events --bench append` (each case runs `EVENTS_BENCH_SECONDS`, default 1.5 s).
//! SQLite runs twice per case: one connection per writer thread, and one shared connection.
//! A custom harness because the measure is events per second across threads, not time per call.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use events::{EventData, EventStore, ExpectedVersion, ReadOptions};

const WRITER_COUNTS: [usize; 3] = [1, 16, 256];
const BATCH_SIZES: [usize; 2] = [1, 100];

fn payload(writer: usize, sequence: u64) -> serde_json::Value {
    serde_json::json!({ "writer": writer, "sequence": sequence, "sku": "tea-earl-grey", "quantity": 2, "note": "benchmark event" })
}

fn run_for(
    duration: Duration,
    writers: usize,
    work: impl Fn(usize, &AtomicBool) -> u64 + Sync,
) -> (u64, Duration) {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        for writer in 0..writers {
            let (stop, total, work) = (&stop, &total, &work);
            scope.spawn(move || total.fetch_add(work(writer, stop), Ordering::Relaxed));
        }
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    (total.load(Ordering::Relaxed), started.elapsed())
}

/// Events per second, and `fsync`s per second (one per group commit).
fn bench_store(directory: &Path, writers: usize, batch: usize, duration: Duration) -> (f64, f64) {
    let store = EventStore::open(directory).expect("open store");
    let (events, elapsed) = run_for(duration, writers, |writer, stop| {
        let stream = format!("writer-{writer}");
        let mut written = 0;
        while !stop.load(Ordering::Relaxed) {
            let events: Vec<EventData> = (0..batch as u64)
                .map(|offset| {
                    EventData::json("ItemAdded", &payload(writer, written + offset)).expect("json")
                })
                .collect();
            store
                .append(&stream, ExpectedVersion::Any, events)
                .expect("append");
            written += batch as u64;
        }
        written
    });
    let seconds = elapsed.as_secs_f64();
    (
        events as f64 / seconds,
        store.durable_group_count() as f64 / seconds,
    )
}

fn open_sqlite(path: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).expect("open sqlite");
    connection
        .busy_timeout(Duration::from_secs(60))
        .expect("busy timeout");
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    connection
        .pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    connection
}

/// How SQLite writers share the database.
#[derive(Clone, Copy)]
enum Sharing {
    /// One connection per writer thread (SQLite serialises them with its file lock and busy timeout).
    ConnectionPerWriter,
    /// One connection behind a mutex: writers queue in-process instead of sleeping in busy handlers.
    SharedConnection,
}

fn insert_batch(
    connection: &mut rusqlite::Connection,
    stream: &str,
    writer: usize,
    first: u64,
    batch: usize,
) {
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("begin");
    {
        let mut insert = transaction
            .prepare_cached(
                "INSERT INTO events (stream, event_id, event_type, data) VALUES (?1, ?2, ?3, ?4)",
            )
            .expect("prepare");
        for offset in 0..batch as u64 {
            let data = serde_json::to_vec(&payload(writer, first + offset)).expect("json");
            let id = events::Uuid::new_v4();
            insert
                .execute(rusqlite::params![
                    stream,
                    id.as_bytes().as_slice(),
                    "ItemAdded",
                    data
                ])
                .expect("insert");
        }
    }
    transaction.commit().expect("commit");
}

fn bench_sqlite(
    path: &Path,
    writers: usize,
    batch: usize,
    duration: Duration,
    sharing: Sharing,
) -> f64 {
    let shared = Mutex::new(open_sqlite(path));
    shared
        .lock()
        .expect("lock")
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, \
             event_id BLOB NOT NULL UNIQUE, event_type TEXT NOT NULL, data BLOB NOT NULL)",
        )
        .expect("schema");
    let (events, elapsed) = run_for(duration, writers, |writer, stop| {
        let mut own = match sharing {
            Sharing::ConnectionPerWriter => Some(open_sqlite(path)),
            Sharing::SharedConnection => None,
        };
        let stream = format!("writer-{writer}");
        let mut written = 0;
        while !stop.load(Ordering::Relaxed) {
            match own.as_mut() {
                Some(connection) => insert_batch(connection, &stream, writer, written, batch),
                None => insert_batch(
                    &mut shared.lock().expect("lock"),
                    &stream,
                    writer,
                    written,
                    batch,
                ),
            }
            written += batch as u64;
        }
        written
    });
    events as f64 / elapsed.as_secs_f64()
}

/// Reads all of `$all` in pages; returns the events and data bytes read.
fn read_everything(store: &EventStore) -> (u64, u64) {
    let (mut count, mut bytes, mut cursor) = (0, 0, 0);
    loop {
        let page = store
            .read_all(ReadOptions::forwards().from(cursor).max_count(4096))
            .expect("read");
        let Some(last) = page.last() else { break };
        cursor = last.position + 1;
        count += page.len() as u64;
        bytes += page
            .iter()
            .map(|event| event.event.data.len() as u64)
            .sum::<u64>();
    }
    (count, bytes)
}

fn main() {
    let seconds: f64 = std::env::var("EVENTS_BENCH_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1.5);
    let duration = Duration::from_secs_f64(seconds);
    let root = tempfile::tempdir().expect("tempdir");
    println!("disk: {} ({}s per case)", root.path().display(), seconds);
    println!(
        "{:>8} {:>6} {:>15} {:>10} {:>15} {:>15} {:>8}",
        "writers", "batch", "store ev/s", "fsync/s", "sqlite conn/wr", "sqlite shared", "ratio"
    );
    let mut largest = (0.0, root.path().join("none"));
    let mut largest_sqlite = (0.0, root.path().join("none"));
    for batch in BATCH_SIZES {
        for writers in WRITER_COUNTS {
            let directory = root.path().join(format!("store-{writers}-{batch}"));
            let (store_rate, fsync_rate) = bench_store(&directory, writers, batch, duration);
            let sqlite_path = root.path().join(format!("sqlite-{writers}-{batch}.db"));
            let per_writer = bench_sqlite(
                &sqlite_path,
                writers,
                batch,
                duration,
                Sharing::ConnectionPerWriter,
            );
            let shared_path = root
                .path()
                .join(format!("sqlite-shared-{writers}-{batch}.db"));
            let shared = bench_sqlite(
                &shared_path,
                writers,
                batch,
                duration,
                Sharing::SharedConnection,
            );
            for (rate, path) in [(per_writer, sqlite_path), (shared, shared_path)] {
                if rate > largest_sqlite.0 {
                    largest_sqlite = (rate, path);
                }
            }
            // The ratio is against the better of the two SQLite setups.
            let ratio = store_rate / per_writer.max(shared);
            println!(
                "{writers:>8} {batch:>6} {store_rate:>15.0} {fsync_rate:>10.0} {per_writer:>15.0} {shared:>15.0} {ratio:>7.1}x"
            );
            if store_rate > largest.0 {
                largest = (store_rate, directory);
            }
        }
    }

    // Read throughput over the largest store: recovery (scan + checksum + decode from disk), then
    // all of `$all` read back from the segment files (nothing resident) and from memory.
    for (label, resident_events_max) in [("from disk", 0), ("from memory", u64::MAX)] {
        let options = events::StoreOptions {
            resident_events_max,
            ..Default::default()
        };
        let started = Instant::now();
        let store = EventStore::open_with(&largest.1, options).expect("reopen");
        let recovery = started.elapsed();
        let count = store.recovery_report().record_count;
        let started = Instant::now();
        let (read_count, read_bytes) = read_everything(&store);
        let reading = started.elapsed();
        assert_eq!(read_count, count, "every event read");
        assert!(read_bytes > count, "every event read has its data");
        println!(
            "read {label}: {count} events; open+recover {:.0} events/s; read $all {:.0} events/s",
            count as f64 / recovery.as_secs_f64(),
            count as f64 / reading.as_secs_f64()
        );
    }
    let sqlite = rusqlite::Connection::open(&largest_sqlite.1).expect("open");
    let started = Instant::now();
    let mut statement = sqlite
        .prepare(
            "SELECT position, stream, event_id, event_type, data FROM events ORDER BY position",
        )
        .expect("prepare");
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Vec<u8>>(4)?,
            ))
        })
        .expect("query")
        .filter(Result::is_ok)
        .count();
    println!(
        "sqlite read all: {rows} rows, {:.0} rows/s",
        rows as f64 / started.elapsed().as_secs_f64()
    );
}

//! Goal: no acknowledged event is lost and no torn event is visible after `kill -9`.
//! Method: this test binary re-runs itself as a child writer (selected by an environment variable)
//! that appends from several threads and prints every acknowledged event; the parent SIGKILLs it
//! mid-stream, reopens the store and checks every acknowledged event is there, intact, in order,
//! with gapless positions. Three rounds on the same directory also recover from earlier crashes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::thread;

use events::{EventData, EventStore, ExpectedVersion, ReadOptions, Uuid};
use serde::{Deserialize, Serialize};

const CHILD_DIRECTORY_VARIABLE: &str = "EVENTS_CRASH_CHILD_DIRECTORY";
const WRITER_THREADS: u64 = 6;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Payload {
    writer: u64,
    sequence: u64,
    filler: String,
}

fn payload(writer: u64, sequence: u64) -> Payload {
    // Sizes vary so records straddle pages and a kill can tear one.
    let length = 100 + ((writer * 7919 + sequence * 104_729) % 3000) as usize;
    Payload {
        writer,
        sequence,
        filler: "x".repeat(length),
    }
}

/// The child: appends forever from several threads, printing `ack <id> <stream> <revision> <position>`
/// after each event is acknowledged. Does nothing unless started by the parent test.
#[test]
fn crash_child_writer() {
    let Ok(directory) = std::env::var(CHILD_DIRECTORY_VARIABLE) else {
        return;
    };
    let store = EventStore::open(&directory).expect("child open");
    let handles: Vec<_> = (0..WRITER_THREADS)
        .map(|writer| {
            let store = store.clone();
            thread::spawn(move || {
                let stream = format!("writer-{writer}-{}", std::process::id());
                for sequence in 0.. {
                    let batch_size = 1 + sequence % 4;
                    let events: Vec<EventData> = (0..batch_size)
                        .map(|offset| {
                            EventData::json("Written", &payload(writer, sequence * 4 + offset))
                                .expect("json")
                        })
                        .collect();
                    let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
                    let result = store
                        .append(&stream, ExpectedVersion::Any, events)
                        .expect("child append");
                    let mut out = std::io::stdout().lock();
                    for (offset, id) in ids.iter().enumerate() {
                        let revision =
                            result.next_expected_revision + 1 - batch_size + offset as u64;
                        let position = result.first_position + offset as u64;
                        writeln!(out, "ack {id} {stream} {revision} {position}").expect("stdout");
                    }
                    out.flush().expect("flush");
                }
            })
        })
        .collect();
    handles
        .into_iter()
        .for_each(|handle| handle.join().expect("writer"));
}

struct Acknowledged {
    stream: String,
    revision: u64,
    position: u64,
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_event() {
    if std::env::var(CHILD_DIRECTORY_VARIABLE).is_ok() {
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let mut acknowledged: BTreeMap<Uuid, Acknowledged> = BTreeMap::new();
    for (round, kill_after_acks) in [40_usize, 700, 3000].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIRECTORY_VARIABLE, directory.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        while lines.len() < kill_after_acks {
            let mut line = String::new();
            if stdout.read_line(&mut line).expect("read child") == 0 {
                panic!("child exited early in round {round}");
            }
            if line.starts_with("ack ") {
                lines.push(line);
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // Lines already in the pipe were acknowledged before the kill.
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("drain");
        for line in lines
            .iter()
            .map(String::as_str)
            .chain(rest.split_inclusive('\n'))
        {
            let fields: Vec<&str> = line.trim_end().split(' ').collect();
            if !line.ends_with('\n') || fields.len() != 5 || fields[0] != "ack" {
                continue;
            }
            let id = Uuid::parse_str(fields[1]).expect("uuid");
            let entry = Acknowledged {
                stream: fields[2].to_owned(),
                revision: fields[3].parse().expect("revision"),
                position: fields[4].parse().expect("position"),
            };
            acknowledged.insert(id, entry);
        }

        // Keep nothing in memory: every event checked is read back from the segment files.
        let options = events::StoreOptions {
            resident_events_max: 0,
            ..Default::default()
        };
        let store =
            EventStore::open_with(directory.path(), options).expect("recover after kill -9");
        let all = store.read_all(ReadOptions::forwards()).expect("read");
        for (index, event) in all.iter().enumerate() {
            assert_eq!(event.position, index as u64, "positions are gapless");
            let data: Payload = event.data_as().expect("no torn event is visible");
            assert_eq!(
                data,
                payload(data.writer, data.sequence),
                "event data intact"
            );
        }
        for (id, expected) in &acknowledged {
            let event = all.get(expected.position as usize).unwrap_or_else(|| {
                panic!(
                    "round {round}: acknowledged event {id} at position {} lost",
                    expected.position
                )
            });
            assert_eq!(event.event.event_id, *id);
            assert_eq!(
                (event.stream.as_str(), event.revision),
                (expected.stream.as_str(), expected.revision)
            );
        }
        // Within each stream, revisions are in order and gapless too.
        for stream in store.stream_names() {
            let events = store
                .read_stream(&stream, ReadOptions::forwards())
                .expect("read stream");
            assert!(
                events
                    .iter()
                    .enumerate()
                    .all(|(index, event)| event.revision == index as u64)
            );
        }
        eprintln!(
            "round {round}: {} acknowledged so far, {} events recovered, torn tail {} bytes",
            acknowledged.len(),
            all.len(),
            store.recovery_report().torn_tail_bytes
        );
    }
    assert!(acknowledged.len() >= 3740);
}

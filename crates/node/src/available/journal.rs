//! Durability: every change becomes a storage record, and a node rebuilds its keyspace from them.
//!
//! Records (all keys under [`RECORD_PREFIX`]):
//! - `ap/log/<sequence, 16 hex digits>`: one per change (a local operation or a joined
//!   anti-entropy reply): `[version = 1][part count]` then per part `[kind][form][length][bytes]`,
//!   where the bytes are a `crdt` delta or state encoding.
//! - `ap/snapshot`: `[version = 1][next sequence][length][bytes] ×4`, the four maps' full states.
//!
//! Once the log outgrows the last snapshot (or [`COMPACT_LOG_BYTES_MIN`], whichever is larger) or
//! holds more than [`COMPACT_STATE_PARTS_MAX`] states, a new snapshot is written and the log
//! records deleted, in that order. A crash between the two leaves log records the snapshot
//! already covers; joining them again changes nothing, because joins are idempotent. Recovery
//! joins everything it finds, in any order, for the same reason.

use crdt::codec::{Reader, Writer};

use super::AvailableError;
use super::keyspace::{Decoded, Form, Keyspace, Kind, Origin, Part};

/// Every storage key this module writes starts with this.
pub const RECORD_PREFIX: &str = "ap/";

/// Key of the snapshot record.
const SNAPSHOT_KEY: &str = "ap/snapshot";

/// Prefix of log record keys.
const LOG_PREFIX: &str = "ap/log/";

/// Format version of both record kinds.
const RECORD_VERSION: u8 = 1;

/// The log is compacted into a snapshot no sooner than this many bytes.
pub const COMPACT_LOG_BYTES_MIN: u64 = 1 << 20;

/// The log is compacted once it holds this many states (each costs a full join on recovery).
pub const COMPACT_STATE_PARTS_MAX: usize = 64;

/// Where the log stands, and the writes not yet handed to the driver.
#[derive(Clone, Debug, Default)]
pub(crate) struct Journal {
    next_sequence: u64,
    live_sequences: Vec<u64>,
    log_bytes: u64,
    log_state_parts: usize,
    snapshot_bytes: u64,
    snapshots_written: u64,
    writes: Vec<(String, Option<Vec<u8>>)>,
}

fn log_key(sequence: u64) -> String {
    format!("{LOG_PREFIX}{sequence:016x}")
}

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::String => 0,
        Kind::Hash => 1,
        Kind::Set => 2,
        Kind::Counter => 3,
    }
}

fn encode_log(parts: &[Part]) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.byte(RECORD_VERSION);
    writer.varint(parts.len() as u64);
    for part in parts {
        writer.byte(kind_byte(part.kind));
        writer.byte(match part.form {
            Form::Delta => 0,
            Form::State => 1,
        });
        writer.bytes(&part.bytes);
    }
    writer.into_bytes()
}

fn decode_log(bytes: &[u8]) -> Result<Vec<Part>, crdt::DecodeError> {
    let mut reader = Reader::new(bytes);
    check_version(&mut reader)?;
    let count = reader.count(3)?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = match reader.byte()? {
            0 => Kind::String,
            1 => Kind::Hash,
            2 => Kind::Set,
            3 => Kind::Counter,
            _ => return Err(reader.invalid("unknown map kind")),
        };
        let form = match reader.byte()? {
            0 => Form::Delta,
            1 => Form::State,
            _ => return Err(reader.invalid("unknown part form")),
        };
        let bytes = reader.bytes()?.to_vec();
        parts.push(Part { kind, form, bytes });
    }
    reader.finish()?;
    Ok(parts)
}

fn check_version(reader: &mut Reader<'_>) -> Result<(), crdt::DecodeError> {
    let found = reader.byte()?;
    if found != RECORD_VERSION {
        return Err(crdt::DecodeError::UnsupportedVersion {
            found,
            supported: RECORD_VERSION,
        });
    }
    Ok(())
}

fn encode_snapshot(next_sequence: u64, maps: &[Vec<u8>; 4]) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.byte(RECORD_VERSION);
    writer.varint(next_sequence);
    for map in maps {
        writer.bytes(map);
    }
    writer.into_bytes()
}

fn decode_snapshot(bytes: &[u8]) -> Result<(u64, Keyspace), crdt::DecodeError> {
    let mut reader = Reader::new(bytes);
    check_version(&mut reader)?;
    let next_sequence = reader.varint()?;
    let maps = [
        reader.bytes()?,
        reader.bytes()?,
        reader.bytes()?,
        reader.bytes()?,
    ];
    reader.finish()?;
    Ok((next_sequence, Keyspace::decode(maps)?))
}

impl Journal {
    /// Records one change (parts already joined into `keyspace`), compacting when due.
    pub(crate) fn record(&mut self, parts: &[Part], keyspace: &Keyspace) {
        if parts.is_empty() {
            return;
        }
        let bytes = encode_log(parts);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.live_sequences.push(sequence);
        self.log_bytes += bytes.len() as u64;
        self.log_state_parts += parts.iter().filter(|part| part.form == Form::State).count();
        self.writes.push((log_key(sequence), Some(bytes)));
        if self.log_bytes > COMPACT_LOG_BYTES_MIN.max(self.snapshot_bytes)
            || self.log_state_parts > COMPACT_STATE_PARTS_MAX
        {
            self.compact(keyspace);
        }
    }

    /// Writes a snapshot of `keyspace`, then deletes the log records it covers.
    pub(crate) fn compact(&mut self, keyspace: &Keyspace) {
        let bytes = encode_snapshot(self.next_sequence, &keyspace.encode());
        self.snapshot_bytes = bytes.len() as u64;
        self.snapshots_written += 1;
        self.writes.push((SNAPSHOT_KEY.to_string(), Some(bytes)));
        for sequence in self.live_sequences.drain(..) {
            self.writes.push((log_key(sequence), None));
        }
        self.log_bytes = 0;
        self.log_state_parts = 0;
    }

    /// The writes produced since the last call, in the order they must be applied.
    pub(crate) fn take_writes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.writes)
    }

    /// Live log records.
    pub(crate) fn log_records(&self) -> usize {
        self.live_sequences.len()
    }

    /// Bytes in live log records.
    pub(crate) fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// Snapshots written since this node started.
    pub(crate) fn snapshots_written(&self) -> u64 {
        self.snapshots_written
    }

    /// Rebuilds the keyspace and the journal's position from stored records. Keys outside
    /// [`RECORD_PREFIX`] are skipped; an unknown key inside it or any corrupt record is an error.
    pub(crate) fn recover<'a>(
        records: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<(Keyspace, Journal), AvailableError> {
        let corrupt = |key: &str, error: crdt::DecodeError| AvailableError::CorruptRecord {
            key: key.to_string(),
            source: error,
        };
        let mut snapshot: Option<(u64, Keyspace, u64)> = None;
        let mut logs: Vec<(u64, Vec<Part>, u64)> = Vec::new();
        for (key, bytes) in records {
            if !key.starts_with(RECORD_PREFIX) {
                continue;
            }
            if key == SNAPSHOT_KEY {
                let (next_sequence, keyspace) =
                    decode_snapshot(bytes).map_err(|error| corrupt(key, error))?;
                snapshot = Some((next_sequence, keyspace, bytes.len() as u64));
                continue;
            }
            let sequence = key
                .strip_prefix(LOG_PREFIX)
                .filter(|digits| digits.len() == 16)
                .and_then(|digits| u64::from_str_radix(digits, 16).ok())
                .ok_or_else(|| AvailableError::UnknownRecord {
                    key: key.to_string(),
                })?;
            let parts = decode_log(bytes).map_err(|error| corrupt(key, error))?;
            logs.push((sequence, parts, bytes.len() as u64));
        }
        logs.sort_by_key(|log| log.0);
        let (mut next_sequence, mut keyspace, snapshot_bytes) = snapshot.unwrap_or_default();
        let mut journal = Journal {
            snapshot_bytes,
            ..Journal::default()
        };
        let mut decoded = Decoded::default();
        for (sequence, parts, bytes) in &logs {
            decoded.extend(
                Decoded::from_parts(parts, Origin::Own)
                    .map_err(|error| corrupt(&log_key(*sequence), error))?,
            );
            next_sequence = next_sequence.max(sequence.saturating_add(1));
            journal.live_sequences.push(*sequence);
            journal.log_bytes += bytes;
            journal.log_state_parts += parts.iter().filter(|part| part.form == Form::State).count();
        }
        // One join of everything: the log's states fold together before touching the snapshot.
        keyspace.join(decoded);
        journal.next_sequence = next_sequence;
        Ok((keyspace, journal))
    }
}

//! The storage trait, checksummed record replay, and the in-memory storage used by simulators.
//!
//! Storage is a sequence of records, each one `PersistRequest` framed by `codec` (length + CRC32).
//! `write` buffers a record; `sync` makes every buffered record durable at once (group commit);
//! only after `sync` returns may the driver feed `Input::PersistDone` for those tokens.

use std::collections::BTreeMap;

use crate::codec::{self, CodecError};
use crate::replica::{PersistRequest, RecoveredState};
use crate::types::{Entry, HardState, LogIndex, Snapshot};

/// Durable storage for one replica.
pub trait Storage {
    /// Buffers one persist request (not yet durable). On error nothing was buffered.
    fn write(&mut self, request: &PersistRequest) -> Result<(), StorageError>;
    /// Makes every buffered request durable (one fsync for the batch). On error, the buffered
    /// requests may or may not be durable; the driver must not acknowledge them.
    fn sync(&mut self) -> Result<(), StorageError>;
    /// Reads back the durable state. A record failing its checksum ends the replay and sets
    /// `RecoveredState::corrupted`. Implementations drop bad tails before appending again (so later
    /// records stay readable) and record that the replica must repair until it says it is done.
    fn load(&self) -> Result<RecoveredState, StorageError>;
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system reported an IO error; durability of the batch is unknown.
    #[error("storage io: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be encoded; nothing was written.
    #[error("storage codec: {0}")]
    Codec(#[from] CodecError),
}

/// Replays records into the state they describe.
#[derive(Clone, Debug, Default)]
pub(crate) struct Replay {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: BTreeMap<LogIndex, Entry>,
    repairing: bool,
}

/// The result of scanning framed records.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scan {
    pub(crate) replay: Replay,
    /// Bytes up to the end of the last good record.
    pub(crate) valid_bytes: usize,
    /// True when a record failed its checksum (as opposed to a torn, short tail).
    pub(crate) corrupted: bool,
}

/// The record storage writes after dropping corrupt records: the replica must repair.
pub(crate) fn repair_marker() -> PersistRequest {
    PersistRequest {
        repairing: Some(true),
        ..PersistRequest::default()
    }
}

impl Replay {
    pub(crate) fn apply(&mut self, request: PersistRequest) {
        if let Some(snapshot) = request.snapshot {
            let index = snapshot.meta.index;
            let matches = self
                .entries
                .get(&index)
                .is_some_and(|e| e.term == snapshot.meta.term);
            if matches {
                self.entries = self.entries.split_off(&(index + 1));
            } else {
                self.entries.clear();
            }
            self.snapshot = Some(*snapshot);
        }
        if let Some(from) = request.log_from {
            self.entries.split_off(&from);
            for entry in request.entries.iter().cloned() {
                self.entries.insert(entry.index, entry);
            }
        }
        if let Some(hard_state) = request.hard_state {
            self.hard_state = hard_state;
        }
        if let Some(repairing) = request.repairing {
            self.repairing = repairing;
        }
    }

    /// Replays framed records from `bytes` up to the first bad one.
    pub(crate) fn scan(bytes: &[u8]) -> Scan {
        let mut scan = Scan::default();
        while scan.valid_bytes < bytes.len() {
            match codec::decode_frame::<PersistRequest>(&bytes[scan.valid_bytes..]) {
                Ok((request, used)) => {
                    scan.replay.apply(request);
                    scan.valid_bytes += used;
                }
                // A torn tail (short write at crash) was never acknowledged: drop it silently.
                Err(CodecError::Truncated { .. }) => break,
                Err(_) => {
                    scan.corrupted = true;
                    scan.replay.repairing = true;
                    break;
                }
            }
        }
        scan
    }

    pub(crate) fn into_recovered(self) -> RecoveredState {
        let first = self.snapshot.as_ref().map_or(1, |s| s.meta.index + 1);
        let mut entries = Vec::new();
        for (index, entry) in self.entries {
            // Keep only the contiguous run after the snapshot.
            if index != first + entries.len() as u64 {
                break;
            }
            entries.push(entry);
        }
        RecoveredState {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            entries,
            corrupted: self.repairing,
        }
    }

    /// One record describing the whole state (used to compact after a snapshot). Replayed after
    /// any earlier records it yields exactly this state: `log_from` always replaces the whole log.
    pub(crate) fn checkpoint(&self) -> PersistRequest {
        let entries: Vec<Entry> = self.entries.values().cloned().collect();
        let first = self.snapshot.as_ref().map_or(1, |s| s.meta.index + 1);
        PersistRequest {
            token: 0,
            hard_state: Some(self.hard_state),
            snapshot: self.snapshot.clone().map(Box::new),
            log_from: Some(entries.first().map_or(first, |e| e.index.min(first))),
            entries: entries.into(),
            repairing: Some(self.repairing),
        }
    }
}

/// In-memory storage with explicit durability: `crash` drops everything not yet synced.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    durable: Vec<u8>,
    unsynced: Vec<u8>,
    compact_on_sync: bool,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash: buffered but unsynced records are lost. Like a restart of the file
    /// storage, it then drops a bad tail so later records stay readable, leaving a repair marker.
    pub fn crash(&mut self) {
        self.unsynced.clear();
        let scan = Replay::scan(&self.durable);
        if scan.valid_bytes < self.durable.len() {
            self.durable.truncate(scan.valid_bytes);
            if scan.corrupted {
                self.durable
                    .extend(codec::encode_frame(&repair_marker()).unwrap_or_default());
            }
        }
    }

    /// Bytes of durable records.
    pub fn durable_bytes(&self) -> usize {
        self.durable.len()
    }

    /// Flips one bit of the durable bytes at `offset` (a disk fault); false if out of range.
    pub fn corrupt_byte(&mut self, offset: usize) -> bool {
        match self.durable.get_mut(offset) {
            Some(byte) => {
                *byte ^= 0x40;
                true
            }
            None => false,
        }
    }
}

impl Storage for MemoryStorage {
    fn write(&mut self, request: &PersistRequest) -> Result<(), StorageError> {
        let frame = codec::encode_frame(request)?;
        self.unsynced.extend_from_slice(&frame);
        self.compact_on_sync |= request.snapshot.is_some();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.durable.append(&mut self.unsynced);
        // Compact once a snapshot made the record history mostly obsolete.
        if std::mem::take(&mut self.compact_on_sync) {
            let scan = Replay::scan(&self.durable);
            if !scan.corrupted {
                self.durable = codec::encode_frame(&scan.replay.checkpoint())?;
            }
        }
        Ok(())
    }

    fn load(&self) -> Result<RecoveredState, StorageError> {
        Ok(Replay::scan(&self.durable).replay.into_recovered())
    }
}

/// One key-value disk write: `(key, Some(bytes))` stores, `(key, None)` deletes.
pub type KeyWrite = (String, Option<Vec<u8>>);

/// Maps persist requests onto a key-value disk such as the simulator's (`key -> bytes`, each key
/// write atomic, durability in write order). Each request becomes one framed record under an
/// increasing key, so it is atomic; a request carrying a snapshot is followed by one checkpoint
/// record and the deletion of every older record, which bounds the disk. Pure: it returns the
/// writes, the driver performs them in order and acknowledges the request once its last write is
/// durable.
#[derive(Clone, Debug, Default)]
pub struct RecordKeys {
    mirror: Replay,
    next_key: u64,
    live_keys: Vec<u64>,
    /// The corrupt record and every record after it, deleted (after a repair marker) by the next
    /// `writes`, so records written later stay readable.
    bad_keys: Vec<u64>,
}

impl RecordKeys {
    /// Prefix of every key this layout writes.
    pub const PREFIX: &'static str = "raft/record/";

    fn key(number: u64) -> String {
        format!("{}{number:020}", Self::PREFIX)
    }

    /// Rebuilds the layout and the durable state from the stored `(key, bytes)` pairs under
    /// [`Self::PREFIX`] (any order; other keys are ignored). A record failing its checksum ends
    /// the replay and sets `RecoveredState::corrupted`.
    pub fn recover<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> (Self, RecoveredState) {
        let mut records: Vec<(u64, &[u8])> = pairs
            .into_iter()
            .filter_map(|(key, bytes)| {
                key.strip_prefix(Self::PREFIX)?
                    .parse()
                    .ok()
                    .map(|n| (n, bytes))
            })
            .collect();
        records.sort_unstable_by_key(|(number, _)| *number);
        let mut layout = Self::default();
        for (number, bytes) in records {
            layout.next_key = layout.next_key.max(number + 1);
            if !layout.bad_keys.is_empty() {
                layout.bad_keys.push(number);
                continue;
            }
            match codec::decode_frame::<PersistRequest>(bytes) {
                Ok((request, used)) if used == bytes.len() => {
                    layout.mirror.apply(request);
                    layout.live_keys.push(number);
                }
                _ => {
                    layout.mirror.repairing = true;
                    layout.bad_keys.push(number);
                }
            }
        }
        let recovered = layout.mirror.clone().into_recovered();
        (layout, recovered)
    }

    /// The key-value writes (`None` deletes) that make `request` durable, in order.
    pub fn writes(&mut self, request: &PersistRequest) -> Result<Vec<KeyWrite>, CodecError> {
        let frame = codec::encode_frame(request)?;
        let mut writes = Vec::new();
        if !self.bad_keys.is_empty() {
            // Marker first (under a new key, unseen while the corrupt record still stops replay),
            // then delete the bad records newest first, the corrupt one last: every prefix of
            // these writes still recovers as "repairing".
            writes.push((
                Self::key(self.next_key),
                Some(codec::encode_frame(&repair_marker())?),
            ));
            self.live_keys.push(self.next_key);
            self.next_key += 1;
            for bad in std::mem::take(&mut self.bad_keys).into_iter().rev() {
                writes.push((Self::key(bad), None));
            }
        }
        self.mirror.apply(request.clone());
        writes.push((Self::key(self.next_key), Some(frame)));
        self.live_keys.push(self.next_key);
        self.next_key += 1;
        if request.snapshot.is_some() {
            // Checkpoint first (atomic), then drop the history it supersedes: a crash between the
            // deletions leaves older records whose replay the checkpoint overrides.
            writes.push((
                Self::key(self.next_key),
                Some(codec::encode_frame(&self.mirror.checkpoint())?),
            ));
            for old in std::mem::take(&mut self.live_keys) {
                writes.push((Self::key(old), None));
            }
            self.live_keys.push(self.next_key);
            self.next_key += 1;
        }
        Ok(writes)
    }
}

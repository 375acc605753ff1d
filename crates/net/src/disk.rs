//! Durable storage for one node: what `Effect::Persist { key, value, token }` needs on a real disk.
//!
//! The store is an append-only log file (`store.log`) in the node's data directory. Each record is
//! `length (u32 LE) ‖ crc32 of body (u32 LE) ‖ body`, where body is `key length (u32 LE) ‖ tag
//! (1 = value, 0 = tombstone) ‖ key ‖ value`. A write is acknowledged only after `sync_data`
//! returns. [`DiskWriter`] does group commit: every write that arrives while one fsync runs goes
//! into the next one, so one fsync acknowledges many writes under load.
//!
//! Recovery ([`DiskLog::open`]) replays the log into a [`sim::Storage`] — exactly what a process
//! builder gets in the simulator — and truncates a torn tail (a record cut short by a crash). A
//! record whose checksum fails with more records after it is corruption, not a crash, and is
//! reported as an error rather than silently dropped.
//!
//! Compaction: the log counts its bytes and its live bytes (for each key, the length of its latest
//! record unless that is a tombstone). Once the file is larger than a threshold (default
//! [`COMPACTION_THRESHOLD_BYTES_DEFAULT`]) and more than twice its live bytes,
//! [`DiskLog::compact_if_due`] writes the latest record of every live key, in key order, to
//! `store.log.compact`, fsyncs it, renames it over `store.log` and fsyncs the directory. Until the
//! rename the old log is whole, and after it the new one is (rename is atomic), so a crash at any
//! point recovers the same contents; [`DiskLog::open`] deletes a leftover `store.log.compact` (a
//! compaction the crash interrupted) before replaying. Deleted keys are simply absent from the
//! compacted file, so no tombstone is needed to keep them deleted.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sim::{Storage, Token};
use thiserror::Error;
use tokio::sync::mpsc;

/// The log's file name inside a data directory.
pub const LOG_FILE: &str = "store.log";
/// The file a compaction writes before renaming it over [`LOG_FILE`].
pub const COMPACTION_FILE: &str = "store.log.compact";
/// The file size below which the log is never compacted (64 MiB).
pub const COMPACTION_THRESHOLD_BYTES_DEFAULT: u64 = 64 << 20;
/// Bytes before a record's body: length and checksum.
const HEADER_BYTES: usize = 8;
/// Bytes of a body before the key: key length and tag.
const BODY_PREFIX_BYTES: usize = 5;
/// Largest record accepted: bigger lengths are treated as garbage.
const RECORD_BYTES_MAX: usize = 1 << 30;

/// Why the store could not be opened or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The operating system refused a file operation.
    #[error("disk io on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record in the middle of the log failed its checksum (bit rot, not a torn write).
    #[error("corrupt record at byte {offset} of {path}: checksum mismatch with data after it")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
    },
    /// A key or value too large to be framed in one record.
    #[error("record of {length} bytes exceeds the limit of {RECORD_BYTES_MAX} bytes")]
    TooLarge {
        /// The body length.
        length: usize,
    },
}

/// What recovery found, besides the contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Whole records replayed.
    pub records: u64,
    /// Bytes of torn tail cut off the end of the log.
    pub truncated_bytes: u64,
    /// Bytes of an interrupted compaction's leftover file, deleted before replay.
    pub abandoned_compaction_bytes: u64,
}

/// Where the latest record of a live key sits in the log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LiveRecord {
    /// Byte offset of the record's header.
    offset: u64,
    /// Bytes of the whole record (header and body).
    length: u64,
}

/// The open append-only log of one node.
#[derive(Debug)]
pub struct DiskLog {
    path: PathBuf,
    directory: PathBuf,
    file: File,
    /// Bytes in the file (every record appended, live or not).
    file_bytes: u64,
    /// Sum of the lengths in `live`.
    live_bytes: u64,
    /// The latest record of every key whose latest record is not a tombstone.
    live: BTreeMap<String, LiveRecord>,
    compaction_threshold_bytes: u64,
    compactions: u64,
}

/// One write waiting to be made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// Storage key.
    pub key: String,
    /// New bytes, or `None` to delete.
    pub value: Option<Vec<u8>>,
    /// Handed back once durable.
    pub token: Token,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes one record (header and body).
pub fn encode_record(key: &str, value: Option<&[u8]>) -> Result<Vec<u8>, DiskError> {
    let value_bytes = value.unwrap_or_default();
    let body_length = BODY_PREFIX_BYTES + key.len() + value_bytes.len();
    if body_length > RECORD_BYTES_MAX {
        return Err(DiskError::TooLarge {
            length: body_length,
        });
    }
    let mut body = Vec::with_capacity(body_length);
    body.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    body.push(u8::from(value.is_some()));
    body.extend_from_slice(key.as_bytes());
    body.extend_from_slice(value_bytes);
    let mut record = Vec::with_capacity(HEADER_BYTES + body.len());
    record.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    record.extend_from_slice(&body);
    Ok(record)
}

/// How one record at the front of some bytes parses.
enum Parsed {
    /// A whole, valid record: key, value, bytes used.
    Record(String, Option<Vec<u8>>, usize),
    /// Cut short: the bytes end inside it.
    Torn,
    /// Whole length present but the checksum or layout is wrong.
    Bad,
}

fn parse_record(bytes: &[u8]) -> Parsed {
    if bytes.len() < HEADER_BYTES {
        return Parsed::Torn;
    }
    let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if !(BODY_PREFIX_BYTES..=RECORD_BYTES_MAX).contains(&length) {
        return Parsed::Bad;
    }
    let Some(body) = bytes.get(HEADER_BYTES..HEADER_BYTES + length) else {
        return Parsed::Torn;
    };
    if crc32fast::hash(body) != crc {
        return Parsed::Bad;
    }
    let key_length = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let tag = body[4];
    let Some(key_bytes) = body.get(BODY_PREFIX_BYTES..BODY_PREFIX_BYTES + key_length) else {
        return Parsed::Bad;
    };
    let Ok(key) = String::from_utf8(key_bytes.to_vec()) else {
        return Parsed::Bad;
    };
    let rest = &body[BODY_PREFIX_BYTES + key_length..];
    let value = match tag {
        1 => Some(rest.to_vec()),
        0 if rest.is_empty() => None,
        _ => return Parsed::Bad,
    };
    Parsed::Record(key, value, HEADER_BYTES + length)
}

/// The log's contents as replayed from its bytes.
struct Replay {
    storage: Storage,
    live: BTreeMap<String, LiveRecord>,
    live_bytes: u64,
    records: u64,
    /// Bytes of whole, valid records (where a torn tail starts).
    valid_bytes: u64,
}

impl Replay {
    /// Replays `bytes`, stopping at a torn tail; a bad record before the last one is corruption.
    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, DiskError> {
        let mut replay = Self {
            storage: Storage::new(),
            live: BTreeMap::new(),
            live_bytes: 0,
            records: 0,
            valid_bytes: 0,
        };
        let mut offset = 0usize;
        while offset < bytes.len() {
            match parse_record(&bytes[offset..]) {
                Parsed::Record(key, value, used) => {
                    let record = LiveRecord {
                        offset: offset as u64,
                        length: used as u64,
                    };
                    track_live(
                        &mut replay.live,
                        &mut replay.live_bytes,
                        &key,
                        value.is_some(),
                        record,
                    );
                    replay.storage.apply(key, value);
                    replay.records += 1;
                    offset += used;
                }
                Parsed::Torn => break,
                Parsed::Bad => {
                    if !DiskLog::is_last_record(&bytes[offset..]) {
                        return Err(DiskError::Corrupt {
                            path: path.to_path_buf(),
                            offset: offset as u64,
                        });
                    }
                    // A bad checksum on the final record is a write the crash interrupted.
                    break;
                }
            }
        }
        replay.valid_bytes = offset as u64;
        Ok(replay)
    }
}

/// Records that `key`'s latest record is now `record` (a value if `is_value`, else a tombstone).
fn track_live(
    live: &mut BTreeMap<String, LiveRecord>,
    live_bytes: &mut u64,
    key: &str,
    is_value: bool,
    record: LiveRecord,
) {
    let previous = if is_value {
        match live.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, record)),
            None => {
                live.insert(key.to_string(), record);
                None
            }
        }
    } else {
        live.remove(key)
    };
    if let Some(previous) = previous {
        *live_bytes -= previous.length;
    }
    if is_value {
        *live_bytes += record.length;
    }
}

/// Syncs a directory so a file created, renamed or deleted in it stays so after a crash.
fn sync_directory(directory: &Path) -> Result<(), DiskError> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(directory))
}

/// Deletes a compaction file an interrupted compaction left behind; returns its size.
fn remove_abandoned_compaction(directory: &Path) -> Result<u64, DiskError> {
    let path = directory.join(COMPACTION_FILE);
    let bytes = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(io_error(&path)(error)),
    };
    std::fs::remove_file(&path).map_err(io_error(&path))?;
    sync_directory(directory)?;
    tracing::warn!(
        path = %path.display(),
        bytes,
        "deleted the file of an interrupted store log compaction"
    );
    Ok(bytes)
}

impl DiskLog {
    /// Opens (creating if needed) the store in `dir`, replays it, and truncates a torn tail.
    /// Returns the log ready for appends, the recovered contents, and what recovery did.
    ///
    /// A `store.log.compact` left by a compaction a crash interrupted is deleted first: the
    /// rename had not happened, so `store.log` is the whole log.
    pub fn open(dir: &Path) -> Result<(Self, Storage, Recovery), DiskError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let abandoned_compaction_bytes = remove_abandoned_compaction(dir)?;
        let path = dir.join(LOG_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error(&path))?;
        if created {
            // A new file's directory entry is durable only once the directory itself is synced.
            sync_directory(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(&path))?;
        let replay = Replay::from_bytes(&bytes, &path)?;
        let recovery = Recovery {
            records: replay.records,
            truncated_bytes: bytes.len() as u64 - replay.valid_bytes,
            abandoned_compaction_bytes,
        };
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                truncated_bytes = recovery.truncated_bytes,
                "dropping torn tail of the store log"
            );
            file.set_len(replay.valid_bytes).map_err(io_error(&path))?;
            file.sync_data().map_err(io_error(&path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_error(&path))?;
        let log = Self {
            path,
            directory: dir.to_path_buf(),
            file,
            file_bytes: replay.valid_bytes,
            live_bytes: replay.live_bytes,
            live: replay.live,
            compaction_threshold_bytes: COMPACTION_THRESHOLD_BYTES_DEFAULT,
            compactions: 0,
        };
        Ok((log, replay.storage, recovery))
    }

    /// Whether the bad record at the front of `bytes` is the last thing in the log (its declared
    /// length reaches the end), so it may be a torn write rather than rot in the middle.
    fn is_last_record(bytes: &[u8]) -> bool {
        if bytes.len() < HEADER_BYTES {
            return true;
        }
        let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        HEADER_BYTES.saturating_add(length) >= bytes.len()
    }

    /// Appends writes (not yet durable: call [`DiskLog::sync`]).
    ///
    /// After an error the file may end in a partial record: drop the log and reopen it (recovery
    /// cuts the torn tail) rather than appending more.
    pub fn append(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), DiskError> {
        let record = encode_record(key, value)?;
        self.file.write_all(&record).map_err(io_error(&self.path))?;
        let live_record = LiveRecord {
            offset: self.file_bytes,
            length: record.len() as u64,
        };
        track_live(
            &mut self.live,
            &mut self.live_bytes,
            key,
            value.is_some(),
            live_record,
        );
        self.file_bytes += live_record.length;
        Ok(())
    }

    /// Makes every append so far durable.
    pub fn sync(&mut self) -> Result<(), DiskError> {
        self.file.sync_data().map_err(io_error(&self.path))
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the log file: every record appended since the last compaction.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Bytes of the latest record of every key that holds a value: what a compaction keeps.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Compactions this log has done since it was opened.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    /// The file size below which the log is never compacted.
    pub fn compaction_threshold_bytes(&self) -> u64 {
        self.compaction_threshold_bytes
    }

    /// Sets the file size below which the log is never compacted (default
    /// [`COMPACTION_THRESHOLD_BYTES_DEFAULT`]; tests use a few KiB).
    pub fn set_compaction_threshold(&mut self, bytes: u64) {
        self.compaction_threshold_bytes = bytes;
    }

    /// Whether the file is over the threshold and more than half of it is dead records.
    pub fn compaction_due(&self) -> bool {
        self.file_bytes > self.compaction_threshold_bytes
            && self.file_bytes > self.live_bytes.saturating_mul(2)
    }

    /// Compacts the log if [`DiskLog::compaction_due`]; returns whether it did.
    pub fn compact_if_due(&mut self) -> Result<bool, DiskError> {
        if !self.compaction_due() {
            return Ok(false);
        }
        self.compact()?;
        Ok(true)
    }

    /// Rewrites the log as the latest record of each live key, in key order, then continues
    /// appending to the new file. Appends not yet synced are carried over and become durable.
    ///
    /// On error the old log is still the one in place (or the new one is, complete and synced,
    /// if only the directory sync failed); the log must not be used further.
    pub fn compact(&mut self) -> Result<(), DiskError> {
        let compact_path = self.directory.join(COMPACTION_FILE);
        // Only an earlier failed compaction of this same log could have left one; start afresh.
        match std::fs::remove_file(&compact_path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(&compact_path)(error));
            }
            _ => {}
        }
        let compact_file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&compact_path)
            .map_err(io_error(&compact_path))?;
        let live = self.write_live_records(&compact_file, &compact_path)?;
        compact_file.sync_all().map_err(io_error(&compact_path))?;
        std::fs::rename(&compact_path, &self.path).map_err(io_error(&self.path))?;
        // The handle now names the new store.log; appends continue after its last record.
        self.file = compact_file;
        self.file_bytes = self.live_bytes;
        self.live = live;
        self.compactions += 1;
        sync_directory(&self.directory)?;
        tracing::debug!(
            path = %self.path.display(),
            bytes = self.file_bytes,
            keys = self.live.len(),
            "compacted the store log"
        );
        Ok(())
    }

    /// Copies the latest record of every live key, in key order, to `target`, checking each
    /// record's checksum on the way; returns where each landed.
    fn write_live_records(
        &self,
        target: &File,
        target_path: &Path,
    ) -> Result<BTreeMap<String, LiveRecord>, DiskError> {
        let mut writer = BufWriter::with_capacity(1 << 20, target);
        let mut placed = BTreeMap::new();
        let mut offset = 0u64;
        let mut record = Vec::new();
        for (key, live) in &self.live {
            let length = usize::try_from(live.length).unwrap_or(usize::MAX);
            record.resize(length, 0);
            self.file
                .read_exact_at(&mut record, live.offset)
                .map_err(io_error(&self.path))?;
            // Copy verbatim only what still parses as this key's value: rot found here must not
            // be laundered into a fresh, valid-looking file.
            match parse_record(&record) {
                Parsed::Record(found, Some(_), used) if found == *key && used == length => {}
                _ => {
                    return Err(DiskError::Corrupt {
                        path: self.path.clone(),
                        offset: live.offset,
                    });
                }
            }
            writer.write_all(&record).map_err(io_error(target_path))?;
            placed.insert(
                key.clone(),
                LiveRecord {
                    offset,
                    length: live.length,
                },
            );
            offset += live.length;
        }
        writer.flush().map_err(io_error(target_path))?;
        debug_assert_eq!(offset, self.live_bytes);
        Ok(placed)
    }
}

/// A background thread owning a [`DiskLog`] that group-commits writes and reports the highest
/// durable token after each fsync.
#[derive(Debug)]
pub struct DiskWriter {
    writes: std::sync::mpsc::Sender<Write>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiskWriter {
    /// Starts the writer thread; the receiver yields, after each fsync, the last token it covered
    /// (and, on a disk error, the error — after which the writer stops). After acknowledging a
    /// batch the writer compacts the log when [`DiskLog::compaction_due`]; a compaction error is
    /// reported the same way.
    pub fn spawn(log: DiskLog) -> (Self, mpsc::UnboundedReceiver<Result<Token, String>>) {
        let (writes, incoming) = std::sync::mpsc::channel::<Write>();
        let (acks, ack_receiver) = mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || Self::run(log, incoming, acks));
        (
            Self {
                writes,
                thread: Some(thread),
            },
            ack_receiver,
        )
    }

    /// Queues one write; its token comes back on the ack channel once it is durable.
    pub fn submit(&self, write: Write) -> bool {
        self.writes.send(write).is_ok()
    }

    fn run(
        mut log: DiskLog,
        incoming: std::sync::mpsc::Receiver<Write>,
        acks: mpsc::UnboundedSender<Result<Token, String>>,
    ) {
        // Block for the first write of a batch, then take everything else already queued: those
        // arrived while the previous fsync ran and share the next one.
        while let Ok(first) = incoming.recv() {
            let mut batch = vec![first];
            batch.extend(incoming.try_iter());
            let mut outcome = Ok(0);
            for write in &batch {
                if let Err(error) = log.append(&write.key, write.value.as_deref()) {
                    outcome = Err(error.to_string());
                    break;
                }
                outcome = Ok(write.token);
            }
            if outcome.is_ok()
                && let Err(error) = log.sync()
            {
                outcome = Err(error.to_string());
            }
            let failed = outcome.is_err();
            if acks.send(outcome).is_err() || failed {
                return;
            }
            // After the ack, so a compaction never delays writes already durable; writes arriving
            // meanwhile wait in the channel and form the next batch.
            if let Err(error) = log.compact_if_due() {
                let _ = acks.send(Err(error.to_string()));
                return;
            }
        }
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once queued writes are synced.
        let (closed, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.writes, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_recovers_writes_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, storage, _) = DiskLog::open(dir.path()).unwrap();
            assert!(storage.is_empty());
            log.append("a", Some(b"1")).unwrap();
            log.append("b", Some(b"2")).unwrap();
            log.append("a", Some(b"3")).unwrap();
            log.append("b", None).unwrap();
            log.sync().unwrap();
        }
        let (_, storage, recovery) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(recovery.records, 4);
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(storage.get("a"), Some(&b"3"[..]));
        assert_eq!(storage.get("b"), None);
        assert_eq!(storage.len(), 1);
    }

    #[test]
    fn a_torn_tail_is_dropped_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        {
            let (mut log, _, _) = DiskLog::open(dir.path()).unwrap();
            log.append("keep", Some(b"kept value")).unwrap();
            log.sync().unwrap();
        }
        let prefix = std::fs::read(&path).unwrap();
        let last = encode_record("torn", Some(b"a value a crash cut short")).unwrap();
        for cut in 0..last.len() {
            let mut bytes = prefix.clone();
            bytes.extend_from_slice(&last[..cut]);
            std::fs::write(&path, &bytes).unwrap();
            let (mut log, storage, recovery) = DiskLog::open(dir.path()).unwrap();
            assert_eq!(storage.get("keep"), Some(&b"kept value"[..]), "cut {cut}");
            assert_eq!(storage.get("torn"), None, "cut {cut}");
            assert_eq!(recovery.truncated_bytes, cut as u64, "cut {cut}");
            // The log is usable after truncation: a new record lands right after the good ones.
            log.append("after", Some(b"x")).unwrap();
            log.sync().unwrap();
            drop(log);
            let (_, storage, recovery) = DiskLog::open(dir.path()).unwrap();
            assert_eq!(recovery.records, 2, "cut {cut}");
            assert_eq!(storage.get("after"), Some(&b"x"[..]), "cut {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_in_the_middle_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        {
            let (mut log, _, _) = DiskLog::open(dir.path()).unwrap();
            log.append("first", Some(b"one")).unwrap();
            log.append("second", Some(b"two")).unwrap();
            log.append("third", Some(b"three")).unwrap();
            log.sync().unwrap();
        }
        let clean = std::fs::read(&path).unwrap();
        let first = encode_record("first", Some(b"one")).unwrap().len();
        let second = encode_record("second", Some(b"two")).unwrap().len();
        // Flip each bit of the second record's checksum and body (not its length, which could
        // make it look like it runs past the end).
        for byte in first + 4..first + second {
            for bit in 0..8 {
                let mut bytes = clean.clone();
                bytes[byte] ^= 1 << bit;
                std::fs::write(&path, &bytes).unwrap();
                match DiskLog::open(dir.path()) {
                    Err(DiskError::Corrupt { offset, .. }) => assert_eq!(offset, first as u64),
                    other => panic!("byte {byte} bit {bit}: expected corruption, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn writes_queued_during_an_fsync_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = DiskLog::open(dir.path()).unwrap();
        let (writes, incoming) = std::sync::mpsc::channel();
        let (acks, mut ack_receiver) = mpsc::unbounded_channel();
        // Everything is already queued when the writer looks: one batch, one fsync, one ack
        // carrying the last token.
        for token in 1..=20 {
            writes
                .send(Write {
                    key: format!("k{token}"),
                    value: Some(vec![1]),
                    token,
                })
                .unwrap();
        }
        drop(writes);
        DiskWriter::run(log, incoming, acks);
        assert_eq!(ack_receiver.try_recv().unwrap(), Ok(20));
        assert!(
            ack_receiver.try_recv().is_err(),
            "more than one fsync for one batch"
        );
        let (_, storage, _) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(storage.len(), 20);
    }

    #[tokio::test]
    async fn the_writer_acknowledges_every_token_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = DiskLog::open(dir.path()).unwrap();
        let (writer, mut acks) = DiskWriter::spawn(log);
        for token in 1..=50u64 {
            assert!(writer.submit(Write {
                key: format!("k{}", token % 7),
                value: Some(token.to_le_bytes().to_vec()),
                token,
            }));
        }
        let mut highest = 0;
        let mut fsyncs = 0;
        while highest < 50 {
            let token = acks.recv().await.unwrap().unwrap();
            assert!(token > highest);
            highest = token;
            fsyncs += 1;
        }
        assert!(fsyncs <= 50);
        drop(writer);
        let (_, storage, recovery) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(recovery.records, 50);
        assert_eq!(storage.get("k1"), Some(&50u64.to_le_bytes()[..]));
    }
}

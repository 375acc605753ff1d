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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use sim::{Storage, Token};
use thiserror::Error;
use tokio::sync::mpsc;

/// The log's file name inside a data directory.
pub const LOG_FILE: &str = "store.log";
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
}

/// The open append-only log of one node.
#[derive(Debug)]
pub struct DiskLog {
    path: PathBuf,
    file: File,
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

impl DiskLog {
    /// Opens (creating if needed) the store in `dir`, replays it, and truncates a torn tail.
    /// Returns the log ready for appends, the recovered contents, and what recovery did.
    pub fn open(dir: &Path) -> Result<(Self, Storage, Recovery), DiskError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
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
            File::open(dir)
                .and_then(|directory| directory.sync_all())
                .map_err(io_error(dir))?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(&path))?;
        let mut storage = Storage::new();
        let mut recovery = Recovery::default();
        let mut offset = 0usize;
        while offset < bytes.len() {
            match parse_record(&bytes[offset..]) {
                Parsed::Record(key, value, used) => {
                    storage.apply(key, value);
                    recovery.records += 1;
                    offset += used;
                }
                Parsed::Torn => break,
                Parsed::Bad => {
                    if !Self::is_last_record(&bytes[offset..]) {
                        return Err(DiskError::Corrupt {
                            path,
                            offset: offset as u64,
                        });
                    }
                    // A bad checksum on the final record is a write the crash interrupted.
                    break;
                }
            }
        }
        if offset < bytes.len() {
            recovery.truncated_bytes = (bytes.len() - offset) as u64;
            tracing::warn!(
                path = %path.display(),
                truncated_bytes = recovery.truncated_bytes,
                "dropping torn tail of the store log"
            );
            file.set_len(offset as u64).map_err(io_error(&path))?;
            file.sync_data().map_err(io_error(&path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_error(&path))?;
        Ok((Self { path, file }, storage, recovery))
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
    pub fn append(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), DiskError> {
        let record = encode_record(key, value)?;
        self.file.write_all(&record).map_err(io_error(&self.path))
    }

    /// Makes every append so far durable.
    pub fn sync(&mut self) -> Result<(), DiskError> {
        self.file.sync_data().map_err(io_error(&self.path))
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
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
    /// (and, on a disk error, the error — after which the writer stops).
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

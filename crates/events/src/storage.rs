//! Where the log lives: the [`Storage`] trait, the record codec, an in-memory storage for tests
//! and the durable segmented file log ([`FileStorage`]).
//!
//! ## Record format (version 1)
//! Each segment file starts with a 12-byte header: the magic `CONCUREV` and the format version
//! (u32 little-endian). Then records follow back to back:
//!
//! ```text
//! length: u32 LE   bytes of body
//! crc32:  u32 LE   CRC-32 (crc32fast) of body
//! body:   version u8 | kind u8 | postcard payload
//! ```
//!
//! Kinds: 1 event, 2 truncated, 3 tombstoned, 4 erased (an event whose payload compaction removed,
//! kept as a placeholder so positions, revisions, time bounds and idempotency survive).
//! Recovery reads records until the first one that is short or fails its checksum; in the last
//! segment that is a torn tail from a crash and is cut off, anywhere else it is corruption and
//! opening fails.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use clock::HlcTimestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::event::{EVENT_SIZE_MAX_BYTES, RecordedEvent};
use crate::log::{LogRecord, RestoreError};

/// Version of the record and segment format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Magic bytes opening every segment file.
const SEGMENT_MAGIC: &[u8; 8] = b"CONCUREV";

/// Bytes of the segment header (magic + version).
const SEGMENT_HEADER_BYTES: usize = 12;

/// Bytes of a record header (length + checksum).
const RECORD_HEADER_BYTES: usize = 8;

/// Largest record body accepted by the decoder: the largest event plus room for its envelope.
pub const RECORD_BODY_MAX_BYTES: usize = EVENT_SIZE_MAX_BYTES + 64 * 1024;

const KIND_EVENT: u8 = 1;
const KIND_TRUNCATED: u8 = 2;
const KIND_TOMBSTONED: u8 = 3;
const KIND_ERASED: u8 = 4;

/// Failures of the storage layer. After any of them while writing, the store stops accepting
/// writes (it cannot know what reached the disk) and must be reopened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system refused an operation.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on which file.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record that is not the torn tail failed its checks.
    #[error("corrupt log in {file} at byte {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        file: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A segment or record written by a format this build cannot read.
    #[error(
        "log format version {found} in {file} is not readable by this build (reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// The version found.
        found: u32,
    },
    /// Records decoded fine but do not continue the log (gap in positions or revisions).
    #[error("log is inconsistent: {0}")]
    Inconsistent(#[from] RestoreError),
    /// A record could not be encoded.
    #[error("cannot encode record: {0}")]
    Encode(String),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed.
    pub record_count: u64,
    /// Bytes of torn tail cut off the last segment (0 after a clean shutdown).
    pub torn_tail_bytes: u64,
    /// Why the tail was judged torn, if it was.
    pub torn_tail_reason: Option<String>,
    /// Segment files read.
    pub segment_count: usize,
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Segments rewritten.
    pub segments_rewritten: usize,
    /// Event payloads physically removed.
    pub events_erased: u64,
    /// Bytes the log shrank by.
    pub bytes_reclaimed: u64,
}

/// Durable home of the log. Implementations must make [`Storage::write_durable`] return only
/// after the bytes would survive a crash (power loss or kill -9), and recover exactly a prefix of
/// what was written, never a torn record.
pub trait Storage: Send {
    /// Replays every durable record in log order into `visit`, cutting off any torn tail.
    fn recover(
        &mut self,
        visit: &mut dyn FnMut(LogRecord) -> Result<(), RestoreError>,
    ) -> Result<RecoveryReport, StorageError>;

    /// Appends whole encoded records (see [`encode_record`]) and makes them durable. `events`
    /// says where each event record lies inside `records` (for storages that read events back).
    fn write_durable(&mut self, records: &[u8], events: &[EventSpan]) -> Result<(), StorageError>;

    /// A handle that reads committed events back by position, if this storage can (then the store
    /// keeps only recent events in memory); `None` means the store must keep every event resident.
    fn event_reader(&self) -> Option<Arc<dyn EventReader>> {
        None
    }

    /// Physically removes the payloads of events for which `is_live(position)` is false, leaving
    /// erased placeholders; may be a no-op for storages that keep nothing to reclaim.
    fn compact(&mut self, is_live: &dyn Fn(u64) -> bool) -> Result<CompactionReport, StorageError>;
}

/// Where one event record lies inside a group of encoded records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSpan {
    /// The event's global position.
    pub position: u64,
    /// Byte offset of the record (its header) in the group.
    pub offset: usize,
    /// Bytes of the whole record, header included.
    pub length: usize,
}

/// Reads committed events back from durable storage, concurrently with writes.
pub trait EventReader: Send + Sync {
    /// The events at `positions`, in the same order; `None` where the event was erased by
    /// compaction. Every position asked must have been written (be below the durable head).
    fn read_events(
        &self,
        positions: &[u64],
    ) -> Result<Vec<Option<Arc<RecordedEvent>>>, StorageError>;
}

/// Borrowed form of a record payload, for encoding without copying event data.
#[derive(Serialize)]
struct TruncatedRef<'a> {
    stream: &'a str,
    before_revision: u64,
}

/// Owned form of a truncation payload.
#[derive(Deserialize)]
struct TruncatedOwned {
    stream: String,
    before_revision: u64,
}

/// Payload of an erased event.
#[derive(Serialize, Deserialize)]
struct Erased {
    stream: String,
    revision: u64,
    position: u64,
    recorded_at: HlcTimestamp,
    event_id: Uuid,
}

/// Appends the encoded form of `record` (header, checksum, body) to `out`.
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    out.push(FORMAT_VERSION as u8);
    let encoded = match record {
        LogRecord::Event(event) => {
            out.push(KIND_EVENT);
            postcard::to_extend(&**event, std::mem::take(out))
        }
        LogRecord::Truncated {
            stream,
            before_revision,
        } => {
            out.push(KIND_TRUNCATED);
            let payload = TruncatedRef {
                stream,
                before_revision: *before_revision,
            };
            postcard::to_extend(&payload, std::mem::take(out))
        }
        LogRecord::Tombstoned { stream } => {
            out.push(KIND_TOMBSTONED);
            postcard::to_extend(stream, std::mem::take(out))
        }
        LogRecord::Erased {
            stream,
            revision,
            position,
            recorded_at,
            event_id,
        } => {
            out.push(KIND_ERASED);
            let payload = Erased {
                stream: stream.clone(),
                revision: *revision,
                position: *position,
                recorded_at: *recorded_at,
                event_id: *event_id,
            };
            postcard::to_extend(&payload, std::mem::take(out))
        }
    };
    *out = encoded.map_err(|error| StorageError::Encode(error.to_string()))?;
    let body = &out[start + RECORD_HEADER_BYTES..];
    if body.len() > RECORD_BODY_MAX_BYTES {
        let length = body.len();
        out.truncate(start);
        return Err(StorageError::Encode(format!(
            "record of {length} bytes exceeds the limit"
        )));
    }
    let length = (body.len() as u32).to_le_bytes();
    let checksum = crc32fast::hash(body).to_le_bytes();
    out[start..start + 4].copy_from_slice(&length);
    out[start + 4..start + 8].copy_from_slice(&checksum);
    Ok(())
}

/// Result of decoding one record from a byte slice.
#[derive(Debug)]
pub enum Decoded {
    /// A whole, valid record and the bytes it used.
    Record(LogRecord, usize),
    /// The bytes end before the record does, or its checksum fails: a torn or damaged write.
    Torn(String),
}

/// Decodes the record at the start of `bytes`. A checksum-valid record that does not parse is an
/// error (a bug or another format), not a torn write.
pub fn decode_record(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Ok(Decoded::Torn(format!(
            "{} bytes left, header needs {RECORD_HEADER_BYTES}",
            bytes.len()
        )));
    }
    let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let checksum = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if !(2..=RECORD_BODY_MAX_BYTES).contains(&length) {
        return Ok(Decoded::Torn(format!(
            "record length {length} out of bounds"
        )));
    }
    let Some(body) = bytes.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length) else {
        return Ok(Decoded::Torn(format!("record of {length} bytes cut short")));
    };
    if crc32fast::hash(body) != checksum {
        return Ok(Decoded::Torn("checksum mismatch".to_owned()));
    }
    if u32::from(body[0]) != FORMAT_VERSION {
        return Err(format!(
            "record format version {} is not readable (reads {FORMAT_VERSION})",
            body[0]
        ));
    }
    let payload = &body[2..];
    let parse_error =
        |error: postcard::Error| format!("record kind {} does not parse: {error}", body[1]);
    let record = match body[1] {
        KIND_EVENT => LogRecord::Event(Arc::new(
            postcard::from_bytes::<RecordedEvent>(payload).map_err(parse_error)?,
        )),
        KIND_TRUNCATED => {
            let TruncatedOwned {
                stream,
                before_revision,
            } = postcard::from_bytes(payload).map_err(parse_error)?;
            LogRecord::Truncated {
                stream,
                before_revision,
            }
        }
        KIND_TOMBSTONED => LogRecord::Tombstoned {
            stream: postcard::from_bytes(payload).map_err(parse_error)?,
        },
        KIND_ERASED => {
            let Erased {
                stream,
                revision,
                position,
                recorded_at,
                event_id,
            } = postcard::from_bytes(payload).map_err(parse_error)?;
            LogRecord::Erased {
                stream,
                revision,
                position,
                recorded_at,
                event_id,
            }
        }
        kind => return Err(format!("unknown record kind {kind}")),
    };
    Ok(Decoded::Record(record, RECORD_HEADER_BYTES + length))
}

/// Storage in memory: durable only as long as the process lives. For tests and the simulator.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    bytes: Vec<u8>,
}

impl MemoryStorage {
    /// An empty in-memory storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, encoded.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Storage for MemoryStorage {
    fn recover(
        &mut self,
        visit: &mut dyn FnMut(LogRecord) -> Result<(), RestoreError>,
    ) -> Result<RecoveryReport, StorageError> {
        let (report, valid_bytes) =
            replay_bytes(&self.bytes, 0, "memory", true, &mut |record, _, _| {
                visit(record)
            })?;
        self.bytes.truncate(valid_bytes);
        Ok(RecoveryReport {
            segment_count: 1,
            ..report
        })
    }

    fn write_durable(&mut self, records: &[u8], _events: &[EventSpan]) -> Result<(), StorageError> {
        self.bytes.extend_from_slice(records);
        Ok(())
    }

    fn compact(
        &mut self,
        _is_live: &dyn Fn(u64) -> bool,
    ) -> Result<CompactionReport, StorageError> {
        Ok(CompactionReport::default())
    }
}

/// Replays the records in `bytes` (starting at `offset`); returns the report and where the valid
/// records end. A torn record is accepted only when `is_last` (the tail of the log).
fn replay_bytes(
    bytes: &[u8],
    offset: usize,
    file: &str,
    is_last: bool,
    visit: &mut dyn FnMut(LogRecord, usize, usize) -> Result<(), RestoreError>,
) -> Result<(RecoveryReport, usize), StorageError> {
    let mut report = RecoveryReport::default();
    let mut cursor = offset;
    while cursor < bytes.len() {
        let corrupt = |reason: String| StorageError::Corrupt {
            file: file.to_owned(),
            offset: cursor as u64,
            reason,
        };
        match decode_record(&bytes[cursor..]).map_err(corrupt)? {
            Decoded::Record(record, used) => {
                visit(record, cursor, used)?;
                report.record_count += 1;
                cursor += used;
            }
            Decoded::Torn(reason) if is_last => {
                report.torn_tail_bytes = (bytes.len() - cursor) as u64;
                report.torn_tail_reason = Some(reason);
                break;
            }
            Decoded::Torn(reason) => return Err(corrupt(reason)),
        }
    }
    Ok((report, cursor))
}

/// The position a record occupies and whether it is an erased placeholder; `None` for records
/// that occupy no position (truncations, tombstones).
fn record_position(record: &LogRecord) -> Option<(u64, bool)> {
    match record {
        LogRecord::Event(event) => Some((event.position, false)),
        LogRecord::Erased { position, .. } => Some((*position, true)),
        LogRecord::Truncated { .. } | LogRecord::Tombstoned { .. } => None,
    }
}

/// Tuning of the file log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// A segment is sealed and a new one started once it holds this many bytes.
    pub segment_size_bytes: u64,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            segment_size_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The durable log: a directory of append-only segment files, `fsync`ed (`sync_data`) on every
/// write; the store batches concurrent appends into one write (group commit).
#[derive(Debug)]
pub struct FileStorage {
    directory: PathBuf,
    options: FileOptions,
    /// Segment numbers in order; the last is active.
    segments: Vec<u64>,
    active: Option<File>,
    active_length_bytes: u64,
    /// Where every position lies, shared with readers.
    reader: Arc<FileReader>,
}

/// Where a position's record lies on disk; `length == 0` marks an erased event.
#[derive(Clone, Copy, Debug)]
struct Location {
    segment: u64,
    offset: u64,
    length: u32,
}

#[derive(Debug, Default)]
struct ReaderIndex {
    /// Location of each position, indexed by position.
    locations: Vec<Location>,
    /// A read handle per segment.
    files: BTreeMap<u64, Arc<File>>,
}

/// Reads events back from the segment files with positioned reads (`pread`), without taking the
/// write path's lock: an `fsync` in progress does not block readers.
#[derive(Debug, Default)]
pub struct FileReader {
    index: RwLock<ReaderIndex>,
}

impl FileReader {
    fn index(&self) -> std::sync::RwLockReadGuard<'_, ReaderIndex> {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, ReaderIndex> {
        self.index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, position: u64, location: Location) -> Result<(), StorageError> {
        let mut index = self.index_mut();
        if position != index.locations.len() as u64 {
            return Err(StorageError::Corrupt {
                file: segment_name(location.segment),
                offset: location.offset,
                reason: format!("position {position} indexed out of order"),
            });
        }
        index.locations.push(location);
        Ok(())
    }
}

impl EventReader for FileReader {
    fn read_events(
        &self,
        positions: &[u64],
    ) -> Result<Vec<Option<Arc<RecordedEvent>>>, StorageError> {
        let mut wanted = Vec::with_capacity(positions.len());
        {
            let index = self.index();
            for (slot, &position) in positions.iter().enumerate() {
                let Some(&location) = index.locations.get(position as usize) else {
                    return Err(StorageError::Corrupt {
                        file: "index".into(),
                        offset: position,
                        reason: format!("position {position} was never written"),
                    });
                };
                let file = index.files.get(&location.segment).cloned();
                wanted.push((slot, position, location, file));
            }
        }
        // Read runs of adjacent records with one positioned read each.
        wanted.sort_by_key(|&(_, _, location, _)| (location.segment, location.offset));
        let mut out = vec![None; positions.len()];
        let mut start = 0;
        while start < wanted.len() {
            let mut end = start + 1;
            while end < wanted.len() {
                let (previous, next) = (wanted[end - 1].2, wanted[end].2);
                let adjacent = previous.segment == next.segment
                    && previous.offset + u64::from(previous.length) == next.offset;
                if !adjacent || next.length == 0 {
                    break;
                }
                end += 1;
            }
            self.read_run(&wanted[start..end], &mut out)?;
            start = end;
        }
        Ok(out)
    }
}

type Wanted = (usize, u64, Location, Option<Arc<File>>);

impl FileReader {
    fn read_run(
        &self,
        run: &[Wanted],
        out: &mut [Option<Arc<RecordedEvent>>],
    ) -> Result<(), StorageError> {
        let (_, _, first, file) = &run[0];
        if first.length == 0 {
            return Ok(()); // Erased: nothing to read.
        }
        let name = segment_name(first.segment);
        let Some(file) = file else {
            return Err(StorageError::Corrupt {
                file: name,
                offset: first.offset,
                reason: "segment not open".into(),
            });
        };
        let last = run[run.len() - 1].2;
        let length = (last.offset + u64::from(last.length) - first.offset) as usize;
        let mut bytes = vec![0; length];
        file.read_exact_at(&mut bytes, first.offset)
            .map_err(io_error(format!("reading {name} at {}", first.offset)))?;
        for &(slot, position, location, _) in run {
            let at = (location.offset - first.offset) as usize;
            let corrupt = |reason: String| StorageError::Corrupt {
                file: name.clone(),
                offset: location.offset,
                reason,
            };
            match decode_record(&bytes[at..at + location.length as usize]).map_err(corrupt)? {
                Decoded::Record(LogRecord::Event(event), _) if event.position == position => {
                    out[slot] = Some(event)
                }
                _ => return Err(corrupt(format!("no intact event for position {position}"))),
            }
        }
        Ok(())
    }
}

fn segment_name(number: u64) -> String {
    format!("segment-{number:012}.log")
}

fn sync_directory(directory: &Path) -> Result<(), StorageError> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(format!(
            "syncing directory {}",
            directory.display()
        )))
}

impl FileStorage {
    /// Opens (creating if needed) the log in `directory`. Call [`Storage::recover`] before writing.
    pub fn open(directory: impl AsRef<Path>, options: FileOptions) -> Result<Self, StorageError> {
        let directory = directory.as_ref().to_path_buf();
        fs::create_dir_all(&directory)
            .map_err(io_error(format!("creating {}", directory.display())))?;
        let mut segments = Vec::new();
        let entries = fs::read_dir(&directory)
            .map_err(io_error(format!("listing {}", directory.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_error("listing segments"))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let number = name
                .strip_prefix("segment-")
                .and_then(|rest| rest.strip_suffix(".log"))
                .and_then(|number| number.parse::<u64>().ok());
            segments.extend(number);
        }
        segments.sort_unstable();
        Ok(Self {
            directory,
            options,
            segments,
            active: None,
            active_length_bytes: 0,
            reader: Arc::new(FileReader::default()),
        })
    }

    /// The directory holding the segments.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> Result<u64, StorageError> {
        let mut total = 0;
        for &number in &self.segments {
            let path = self.directory.join(segment_name(number));
            total += fs::metadata(&path)
                .map_err(io_error(format!("stat {}", path.display())))?
                .len();
        }
        Ok(total)
    }

    fn read_segment(&self, number: u64) -> Result<Vec<u8>, StorageError> {
        let path = self.directory.join(segment_name(number));
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(io_error(format!("reading {}", path.display())))?;
        let file = segment_name(number);
        if bytes.len() < SEGMENT_HEADER_BYTES || &bytes[..8] != SEGMENT_MAGIC {
            return Err(StorageError::Corrupt {
                file,
                offset: 0,
                reason: "bad segment header".into(),
            });
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != FORMAT_VERSION {
            return Err(StorageError::UnsupportedVersion {
                file,
                found: version,
            });
        }
        Ok(bytes)
    }

    /// Opens (or reopens, after compaction replaced the file) the read handle of a segment.
    fn open_for_reading(&self, number: u64) -> Result<(), StorageError> {
        let path = self.directory.join(segment_name(number));
        let file = File::open(&path)
            .map_err(io_error(format!("opening {} for reading", path.display())))?;
        self.reader.index_mut().files.insert(number, Arc::new(file));
        Ok(())
    }

    fn create_segment(&mut self, number: u64) -> Result<(), StorageError> {
        let path = self.directory.join(segment_name(number));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_error(format!("creating {}", path.display())))?;
        let mut header = SEGMENT_MAGIC.to_vec();
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.write_all(&header)
            .and_then(|()| file.sync_all())
            .map_err(io_error(format!("writing header of {}", path.display())))?;
        sync_directory(&self.directory)?;
        self.segments.push(number);
        self.open_for_reading(number)?;
        self.active = Some(file);
        self.active_length_bytes = SEGMENT_HEADER_BYTES as u64;
        Ok(())
    }

    fn open_active(&mut self, number: u64, length_bytes: u64) -> Result<(), StorageError> {
        let path = self.directory.join(segment_name(number));
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(format!("opening {}", path.display())))?;
        let on_disk = file
            .metadata()
            .map_err(io_error("stat active segment"))?
            .len();
        if on_disk != length_bytes {
            // Cut the torn tail so new records follow the last valid one.
            file.set_len(length_bytes)
                .and_then(|()| file.sync_all())
                .map_err(io_error(format!(
                    "truncating torn tail of {}",
                    path.display()
                )))?;
        }
        self.active = Some(file);
        self.active_length_bytes = length_bytes;
        Ok(())
    }

    /// Starts a new segment so every existing one is sealed (and may be compacted).
    fn seal_active(&mut self) -> Result<(), StorageError> {
        let next = self.segments.last().map_or(0, |last| last + 1);
        self.create_segment(next)
    }
}

impl Storage for FileStorage {
    fn recover(
        &mut self,
        visit: &mut dyn FnMut(LogRecord) -> Result<(), RestoreError>,
    ) -> Result<RecoveryReport, StorageError> {
        let mut report = RecoveryReport::default();
        let Some(&last) = self.segments.last() else {
            self.create_segment(0)?;
            return Ok(report);
        };
        let mut last_valid_bytes = 0;
        for &number in &self.segments.clone() {
            let bytes = self.read_segment(number)?;
            self.open_for_reading(number)?;
            let is_last = number == last;
            let reader = self.reader.clone();
            let (found, valid_bytes) = replay_bytes(
                &bytes,
                SEGMENT_HEADER_BYTES,
                &segment_name(number),
                is_last,
                &mut |record, offset, length| {
                    if let Some((position, erased)) = record_position(&record) {
                        let length = if erased { 0 } else { length as u32 };
                        let location = Location {
                            segment: number,
                            offset: offset as u64,
                            length,
                        };
                        // An out-of-order position is reported by the log's own check below.
                        let _ = reader.record(position, location);
                    }
                    visit(record)
                },
            )?;
            report.record_count += found.record_count;
            report.torn_tail_bytes += found.torn_tail_bytes;
            report.torn_tail_reason = report.torn_tail_reason.or(found.torn_tail_reason);
            report.segment_count += 1;
            last_valid_bytes = valid_bytes as u64;
        }
        self.open_active(last, last_valid_bytes)?;
        Ok(report)
    }

    fn write_durable(&mut self, records: &[u8], events: &[EventSpan]) -> Result<(), StorageError> {
        if self.active.is_none() || self.active_length_bytes >= self.options.segment_size_bytes {
            self.seal_active()?;
        }
        let Some(file) = self.active.as_mut() else {
            return Err(StorageError::Encode("no active segment".into()));
        };
        file.write_all(records)
            .and_then(|()| file.sync_data())
            .map_err(io_error("appending to the active segment"))?;
        let segment = self.segments.last().copied().unwrap_or_default();
        let base = self.active_length_bytes;
        self.active_length_bytes += records.len() as u64;
        for span in events {
            let location = Location {
                segment,
                offset: base + span.offset as u64,
                length: span.length as u32,
            };
            self.reader.record(span.position, location)?;
        }
        Ok(())
    }

    fn event_reader(&self) -> Option<Arc<dyn EventReader>> {
        Some(self.reader.clone())
    }

    fn compact(&mut self, is_live: &dyn Fn(u64) -> bool) -> Result<CompactionReport, StorageError> {
        self.seal_active()?;
        let mut report = CompactionReport::default();
        let sealed: Vec<u64> = self.segments[..self.segments.len() - 1].to_vec();
        for number in sealed {
            let bytes = self.read_segment(number)?;
            let mut records = Vec::new();
            replay_bytes(
                &bytes,
                SEGMENT_HEADER_BYTES,
                &segment_name(number),
                false,
                &mut |record, _, _| {
                    records.push(record);
                    Ok(())
                },
            )?;
            let mut rewritten = bytes[..SEGMENT_HEADER_BYTES].to_vec();
            let mut erased = 0;
            let mut relocated = Vec::new();
            for record in records {
                let record = match record {
                    LogRecord::Event(event) if !is_live(event.position) => {
                        erased += 1;
                        LogRecord::Erased {
                            stream: event.stream.clone(),
                            revision: event.revision,
                            position: event.position,
                            recorded_at: event.recorded_at,
                            event_id: event.event.event_id,
                        }
                    }
                    record => record,
                };
                let offset = rewritten.len();
                encode_record(&record, &mut rewritten)?;
                if let Some((position, erased)) = record_position(&record) {
                    let length = if erased {
                        0
                    } else {
                        (rewritten.len() - offset) as u32
                    };
                    relocated.push((
                        position,
                        Location {
                            segment: number,
                            offset: offset as u64,
                            length,
                        },
                    ));
                }
            }
            if erased == 0 {
                continue;
            }
            let path = self.directory.join(segment_name(number));
            let temporary = self
                .directory
                .join(format!("{}.compacting", segment_name(number)));
            let mut file = File::create(&temporary)
                .map_err(io_error(format!("creating {}", temporary.display())))?;
            file.write_all(&rewritten)
                .and_then(|()| file.sync_all())
                .map_err(io_error(format!("writing {}", temporary.display())))?;
            // Readers switch to the new file and locations at once, under the index lock; a
            // reader still holding the old handle reads the old (still valid) file.
            let reopened = File::open(&temporary)
                .map_err(io_error(format!("opening {}", temporary.display())))?;
            {
                let mut index = self.reader.index_mut();
                fs::rename(&temporary, &path)
                    .map_err(io_error(format!("replacing {}", path.display())))?;
                index.files.insert(number, Arc::new(reopened));
                for (position, location) in relocated {
                    if let Some(slot) = index.locations.get_mut(position as usize) {
                        *slot = location;
                    }
                }
            }
            sync_directory(&self.directory)?;
            report.segments_rewritten += 1;
            report.events_erased += erased;
            report.bytes_reclaimed += (bytes.len() - rewritten.len()) as u64;
        }
        Ok(report)
    }
}

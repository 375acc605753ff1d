//! The pure core: a deterministic state machine over the event log.
//!
//! [`EventLog`] decides every append, truncation and tombstone from its own state and the command
//! alone — no clock, no IO, no randomness — and returns the [`LogRecord`]s to make durable. Feeding
//! the same commands in the same order to two `EventLog`s yields the same records, positions and
//! errors, so a replicated log (Raft) can order commands and every replica commits the same events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use clock::HlcTimestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::event::{
    AppendResult, AsOf, BATCH_EVENT_COUNT_MAX, Direction, EVENT_SIZE_MAX_BYTES,
    EVENT_TYPE_LENGTH_MAX, EventData, ExpectedVersion, RecordedEvent, STREAM_NAME_LENGTH_MAX,
    StreamRevision,
};

/// One entry of the durable log: what recovery replays to rebuild an [`EventLog`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRecord {
    /// An event committed at its position.
    Event(Arc<RecordedEvent>),
    /// Events of `stream` with a revision below `before_revision` were deleted.
    Truncated {
        /// The stream truncated.
        stream: String,
        /// First revision kept.
        before_revision: u64,
    },
    /// `stream` was hard-deleted: its events are gone and it can never be written again.
    Tombstoned {
        /// The stream deleted.
        stream: String,
    },
    /// An event whose payload compaction removed from disk after it was deleted; it keeps its
    /// place so positions stay gapless, time bounds hold and retries of it stay idempotent.
    Erased {
        /// Stream it belonged to.
        stream: String,
        /// Its revision.
        revision: u64,
        /// Its global position.
        position: u64,
        /// Its commit time.
        recorded_at: HlcTimestamp,
        /// Its event id.
        event_id: Uuid,
    },
}

/// A command for the log; the unit a replicated log would order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Append `events` to `stream` if `expected` holds.
    Append {
        /// Target stream.
        stream: String,
        /// Condition on the stream's revision.
        expected: ExpectedVersion,
        /// Events in order.
        events: Vec<EventData>,
        /// Proposed commit time; the log raises it to stay monotonic.
        timestamp: HlcTimestamp,
    },
    /// Delete the events of `stream` below `before_revision`.
    Truncate {
        /// Target stream.
        stream: String,
        /// First revision to keep.
        before_revision: u64,
    },
    /// Hard-delete `stream` if `expected` holds.
    Tombstone {
        /// Target stream.
        stream: String,
        /// Condition on the stream's revision.
        expected: ExpectedVersion,
    },
}

/// What a command did when it succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Events appended (or found already appended).
    Appended(AppendResult),
    /// Events deleted by a truncation (how many became invisible now).
    Truncated {
        /// Number of events removed by this command.
        removed: u64,
    },
    /// The stream was tombstoned.
    Tombstoned,
}

/// Why a command was refused. In every case the log's state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CommandError {
    /// The stream's actual revision does not satisfy the expected version.
    #[error("wrong expected version on stream {stream:?}: expected {expected}, actual {actual}")]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// What the stream really is at.
        actual: StreamRevision,
    },
    /// The stream was tombstoned; it can be neither written nor read.
    #[error("stream {stream:?} is deleted (tombstoned)")]
    StreamDeleted {
        /// The stream.
        stream: String,
    },
    /// Some, but not all, events of the batch were written before, or elsewhere: a retry that
    /// does not match the original append.
    #[error(
        "event {event_id} was already written, but not as part of this same append to {stream:?}"
    )]
    IdempotencyConflict {
        /// The first event id found written elsewhere.
        event_id: Uuid,
        /// The stream the append targeted.
        stream: String,
    },
    /// The same event id appears twice in one batch.
    #[error("event {event_id} appears twice in one append")]
    DuplicateEventInBatch {
        /// The repeated id.
        event_id: Uuid,
    },
    /// An append with no events.
    #[error("an append needs at least one event")]
    EmptyBatch,
    /// More events in one append than [`BATCH_EVENT_COUNT_MAX`].
    #[error("append of {count} events exceeds the limit of {BATCH_EVENT_COUNT_MAX}")]
    BatchTooLarge {
        /// Events in the batch.
        count: usize,
    },
    /// An event larger than [`EVENT_SIZE_MAX_BYTES`] or with an over-long type.
    #[error("event {event_id} is too large ({size_bytes} bytes, limit {EVENT_SIZE_MAX_BYTES})")]
    EventTooLarge {
        /// The event.
        event_id: Uuid,
        /// Its size.
        size_bytes: usize,
    },
    /// The stream name is empty or longer than [`STREAM_NAME_LENGTH_MAX`].
    #[error("invalid stream name ({length_bytes} bytes; must be 1..={STREAM_NAME_LENGTH_MAX})")]
    InvalidStreamName {
        /// Length of the name given.
        length_bytes: usize,
    },
}

/// Why a read failed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream was tombstoned.
    #[error("stream {stream:?} is deleted (tombstoned)")]
    StreamDeleted {
        /// The stream.
        stream: String,
    },
    /// The event at this position was evicted from memory; read it through the storage.
    #[error("event at position {position} is not resident in memory")]
    NotResident {
        /// The position.
        position: u64,
    },
    /// `AsOf::Revision` means nothing for `$all`.
    #[error("a read of $all can be bounded by position or time, not by stream revision")]
    RevisionBoundOnAll,
}

/// Why recovery could not replay a record: the log is inconsistent with itself.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// An event's position is not the next global position.
    #[error("event at position {found} where position {expected} was due")]
    PositionGap {
        /// Due position.
        expected: u64,
        /// Position read.
        found: u64,
    },
    /// An event's revision is not its stream's next revision.
    #[error("event of stream {stream:?} at revision {found} where revision {expected} was due")]
    RevisionGap {
        /// The stream.
        stream: String,
        /// Due revision.
        expected: u64,
        /// Revision read.
        found: u64,
    },
}

/// Where an event id was written: enough to answer a retry even after the event is deleted.
#[derive(Clone, Debug)]
struct EventLocation {
    stream: Arc<str>,
    revision: u64,
    position: u64,
}

/// What the log knows about one stream.
#[derive(Clone, Debug, Default)]
struct StreamState {
    /// Global position of each revision (index = revision), including deleted ones.
    positions: Vec<u64>,
    /// Revisions below this one are deleted.
    truncated_before: u64,
    /// Hard-deleted.
    tombstoned: bool,
}

impl StreamState {
    fn revision(&self) -> StreamRevision {
        match self.positions.len() {
            0 => StreamRevision::NoStream,
            length => StreamRevision::Revision(length as u64 - 1),
        }
    }
}

/// What the log holds for one global position.
#[derive(Clone, Debug)]
enum Slot {
    /// The event, in memory.
    Resident(Arc<RecordedEvent>),
    /// The event is live but only on durable storage (evicted from memory); its id is kept.
    OnDisk(Uuid),
    /// The event was deleted; its id is kept for idempotency and snapshots.
    Deleted(Uuid),
}

/// The event store's state machine: streams, revisions, global positions, idempotency.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    /// What each global position holds.
    events: Vec<Slot>,
    /// Positions below this were considered for eviction already.
    evicted_before: u64,
    /// Commit time of each global position (kept after deletion, for time-travel bounds).
    timestamps: Vec<HlcTimestamp>,
    /// Streams by name (a `BTreeMap` so any listing is deterministic).
    streams: BTreeMap<Arc<str>, StreamState>,
    /// Every event id ever written (lookups only, never iterated).
    event_ids: HashMap<Uuid, EventLocation>,
    /// Events present (not deleted).
    live_event_count: u64,
}

fn check_expected(
    stream: &str,
    expected: ExpectedVersion,
    actual: StreamRevision,
) -> Result<(), CommandError> {
    let holds = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual == StreamRevision::NoStream,
        ExpectedVersion::StreamExists => actual != StreamRevision::NoStream,
        ExpectedVersion::Exact(revision) => actual == StreamRevision::Revision(revision),
    };
    if holds {
        Ok(())
    } else {
        Err(CommandError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual,
        })
    }
}

fn check_stream_name(stream: &str) -> Result<(), CommandError> {
    if stream.is_empty() || stream.len() > STREAM_NAME_LENGTH_MAX {
        return Err(CommandError::InvalidStreamName {
            length_bytes: stream.len(),
        });
    }
    Ok(())
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position the next committed event will get (= number of events ever committed).
    pub fn next_position(&self) -> u64 {
        self.events.len() as u64
    }

    /// Number of events not deleted.
    pub fn live_event_count(&self) -> u64 {
        self.live_event_count
    }

    /// Commit time of the last event, or zero for an empty log.
    pub fn last_timestamp(&self) -> HlcTimestamp {
        self.timestamps.last().copied().unwrap_or_default()
    }

    /// The stream's current revision (`NoStream` if it never had an event).
    pub fn stream_revision(&self, stream: &str) -> StreamRevision {
        self.streams
            .get(stream)
            .map_or(StreamRevision::NoStream, StreamState::revision)
    }

    /// Whether the stream was tombstoned.
    pub fn is_tombstoned(&self, stream: &str) -> bool {
        self.streams
            .get(stream)
            .is_some_and(|state| state.tombstoned)
    }

    /// First revision of the stream still present (0 unless truncated).
    pub fn truncated_before(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |state| state.truncated_before)
    }

    /// Names of all streams, in order (including tombstoned ones).
    pub fn stream_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.streams.keys().map(|name| &**name)
    }

    /// Runs any command: the entry point a replicated log applies in log order.
    pub fn execute(&mut self, command: Command) -> Result<(Outcome, Vec<LogRecord>), CommandError> {
        match command {
            Command::Append {
                stream,
                expected,
                events,
                timestamp,
            } => self
                .append(&stream, expected, events, timestamp)
                .map(|(result, records)| (Outcome::Appended(result), records)),
            Command::Truncate {
                stream,
                before_revision,
            } => self
                .truncate_before(&stream, before_revision)
                .map(|(removed, records)| (Outcome::Truncated { removed }, records)),
            Command::Tombstone { stream, expected } => self
                .tombstone(&stream, expected)
                .map(|records| (Outcome::Tombstoned, records)),
        }
    }

    /// Appends `events` to `stream` if `expected` holds, assigning revisions, positions and the
    /// commit time (`timestamp`, raised if needed so time never goes backwards along positions).
    ///
    /// A batch whose events were all appended before, in the same order to the same stream, is a
    /// retry: it succeeds with `duplicate: true` and writes nothing, whatever `expected` says.
    pub fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        timestamp: HlcTimestamp,
    ) -> Result<(AppendResult, Vec<LogRecord>), CommandError> {
        check_stream_name(stream)?;
        Self::check_batch(&events)?;
        if let Some(result) = self.find_retry(stream, &events)? {
            return Ok((result, Vec::new()));
        }
        let actual = self.stream_revision(stream);
        if self.is_tombstoned(stream) {
            return Err(CommandError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        check_expected(stream, expected, actual)?;
        let recorded_at = self.next_timestamp(timestamp);
        let name = self.stream_key(stream);
        let first_revision = actual.next();
        let first_position = self.next_position();
        let mut records = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let recorded = Arc::new(RecordedEvent {
                stream: stream.to_owned(),
                revision: first_revision + offset as u64,
                position: first_position + offset as u64,
                recorded_at,
                event,
            });
            self.insert(&name, recorded.clone());
            records.push(LogRecord::Event(recorded));
        }
        let count = records.len() as u64;
        let result = AppendResult {
            next_expected_revision: first_revision + count - 1,
            first_position,
            last_position: first_position + count - 1,
            duplicate: false,
        };
        Ok((result, records))
    }

    fn check_batch(events: &[EventData]) -> Result<(), CommandError> {
        if events.is_empty() {
            return Err(CommandError::EmptyBatch);
        }
        if events.len() > BATCH_EVENT_COUNT_MAX {
            return Err(CommandError::BatchTooLarge {
                count: events.len(),
            });
        }
        let mut seen = HashSet::with_capacity(events.len());
        for event in events {
            let size_bytes = event.size_bytes();
            if size_bytes > EVENT_SIZE_MAX_BYTES || event.event_type.len() > EVENT_TYPE_LENGTH_MAX {
                return Err(CommandError::EventTooLarge {
                    event_id: event.event_id,
                    size_bytes,
                });
            }
            if !seen.insert(event.event_id) {
                return Err(CommandError::DuplicateEventInBatch {
                    event_id: event.event_id,
                });
            }
        }
        Ok(())
    }

    /// `Some(result)` if the batch is an exact retry of an earlier append, `None` if no event of it
    /// was written, an error if it partly overlaps earlier writes.
    fn find_retry(
        &self,
        stream: &str,
        events: &[EventData],
    ) -> Result<Option<AppendResult>, CommandError> {
        let conflict = |event_id| CommandError::IdempotencyConflict {
            event_id,
            stream: stream.to_owned(),
        };
        let Some(first) = self.event_ids.get(&events[0].event_id) else {
            if let Some(event) = events
                .iter()
                .find(|event| self.event_ids.contains_key(&event.event_id))
            {
                return Err(conflict(event.event_id));
            }
            return Ok(None);
        };
        let mut last_position = first.position;
        for (offset, event) in events.iter().enumerate() {
            match self.event_ids.get(&event.event_id) {
                Some(location)
                    if &*location.stream == stream
                        && location.revision == first.revision + offset as u64 =>
                {
                    last_position = location.position;
                }
                _ => return Err(conflict(event.event_id)),
            }
        }
        Ok(Some(AppendResult {
            next_expected_revision: first.revision + events.len() as u64 - 1,
            first_position: first.position,
            last_position,
            duplicate: true,
        }))
    }

    fn next_timestamp(&self, proposed: HlcTimestamp) -> HlcTimestamp {
        let last = self.last_timestamp();
        if proposed > last || self.timestamps.is_empty() {
            proposed
        } else {
            HlcTimestamp {
                wall_ns: last.wall_ns,
                logical: last.logical.saturating_add(1),
            }
        }
    }

    fn insert(&mut self, name: &Arc<str>, recorded: Arc<RecordedEvent>) {
        let state = self.streams.entry(name.clone()).or_default();
        state.positions.push(recorded.position);
        self.event_ids.insert(
            recorded.event.event_id,
            EventLocation {
                stream: name.clone(),
                revision: recorded.revision,
                position: recorded.position,
            },
        );
        self.timestamps.push(recorded.recorded_at);
        self.events.push(Slot::Resident(recorded));
        self.live_event_count += 1;
    }

    /// Deletes the events of `stream` with a revision below `before_revision` (clamped to the
    /// stream's next revision). Returns how many events this removed.
    pub fn truncate_before(
        &mut self,
        stream: &str,
        before_revision: u64,
    ) -> Result<(u64, Vec<LogRecord>), CommandError> {
        check_stream_name(stream)?;
        if self.is_tombstoned(stream) {
            return Err(CommandError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        let removed = self.apply_truncate(stream, before_revision);
        let record = LogRecord::Truncated {
            stream: stream.to_owned(),
            before_revision,
        };
        Ok((removed, vec![record]))
    }

    fn apply_truncate(&mut self, stream: &str, before_revision: u64) -> u64 {
        let Some(state) = self.streams.get_mut(stream) else {
            return 0;
        };
        let before = before_revision.min(state.positions.len() as u64);
        let mut removed = 0;
        for revision in state.truncated_before..before {
            let position = state.positions[revision as usize];
            let slot = &mut self.events[position as usize];
            let event_id = match slot {
                Slot::Resident(event) => event.event.event_id,
                Slot::OnDisk(event_id) => *event_id,
                Slot::Deleted(_) => continue,
            };
            *slot = Slot::Deleted(event_id);
            removed += 1;
        }
        state.truncated_before = state.truncated_before.max(before);
        self.live_event_count -= removed;
        removed
    }

    /// Hard-deletes `stream` if `expected` holds: its events disappear and it refuses all writes.
    pub fn tombstone(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<Vec<LogRecord>, CommandError> {
        check_stream_name(stream)?;
        if self.is_tombstoned(stream) {
            return Err(CommandError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        check_expected(stream, expected, self.stream_revision(stream))?;
        self.apply_tombstone(stream);
        Ok(vec![LogRecord::Tombstoned {
            stream: stream.to_owned(),
        }])
    }

    fn apply_tombstone(&mut self, stream: &str) {
        self.apply_truncate(stream, u64::MAX);
        self.streams
            .entry(Arc::from(stream))
            .or_default()
            .tombstoned = true;
    }

    fn stream_key(&self, stream: &str) -> Arc<str> {
        match self.streams.get_key_value(stream) {
            Some((name, _)) => name.clone(),
            None => Arc::from(stream),
        }
    }

    fn check_continues(
        &self,
        stream: &str,
        revision: u64,
        position: u64,
    ) -> Result<(), RestoreError> {
        if position != self.next_position() {
            return Err(RestoreError::PositionGap {
                expected: self.next_position(),
                found: position,
            });
        }
        let due = self.stream_revision(stream).next();
        if revision != due {
            return Err(RestoreError::RevisionGap {
                stream: stream.to_owned(),
                expected: due,
                found: revision,
            });
        }
        Ok(())
    }

    /// Replays one durable record during recovery, checking it continues the log gaplessly.
    pub fn restore(&mut self, record: LogRecord) -> Result<(), RestoreError> {
        match record {
            LogRecord::Event(recorded) => {
                self.check_continues(&recorded.stream, recorded.revision, recorded.position)?;
                let name = self.stream_key(&recorded.stream);
                self.insert(&name, recorded);
            }
            LogRecord::Truncated {
                stream,
                before_revision,
            } => {
                self.apply_truncate(&stream, before_revision);
            }
            LogRecord::Tombstoned { stream } => self.apply_tombstone(&stream),
            LogRecord::Erased {
                stream,
                revision,
                position,
                recorded_at,
                event_id,
            } => {
                self.check_continues(&stream, revision, position)?;
                let name = self.stream_key(&stream);
                let state = self.streams.entry(name.clone()).or_default();
                state.positions.push(position);
                self.event_ids.insert(
                    event_id,
                    EventLocation {
                        stream: name,
                        revision,
                        position,
                    },
                );
                self.timestamps.push(recorded_at);
                self.events.push(Slot::Deleted(event_id));
            }
        }
        Ok(())
    }

    /// The whole state as records that [`EventLog::restore`] replays into an equal log: every
    /// position in order (deleted ones as `Erased`), then each stream's truncation and tombstone.
    /// What a replicated log would ship as a snapshot. Needs every live event resident: fails with
    /// [`ReadError::NotResident`] if one was evicted to disk.
    pub fn snapshot_records(&self) -> Result<Vec<LogRecord>, ReadError> {
        let mut records = Vec::with_capacity(self.events.len() + self.streams.len());
        let mut owner = BTreeMap::new();
        for (name, state) in &self.streams {
            for (revision, &position) in state.positions.iter().enumerate() {
                if matches!(self.events[position as usize], Slot::Deleted(_)) {
                    owner.insert(position, (name.clone(), revision as u64));
                }
            }
        }
        for (position, (slot, recorded_at)) in self.events.iter().zip(&self.timestamps).enumerate()
        {
            let position = position as u64;
            let record = match (slot, owner.get(&position)) {
                (Slot::Resident(event), _) => LogRecord::Event(event.clone()),
                (Slot::OnDisk(_), _) => return Err(ReadError::NotResident { position }),
                (Slot::Deleted(event_id), Some((stream, revision))) => LogRecord::Erased {
                    stream: stream.to_string(),
                    revision: *revision,
                    position,
                    recorded_at: *recorded_at,
                    event_id: *event_id,
                },
                // Every position belongs to a stream, so every deleted one was found above.
                (Slot::Deleted(_), None) => continue,
            };
            records.push(record);
        }
        for (name, state) in &self.streams {
            if state.tombstoned {
                records.push(LogRecord::Tombstoned {
                    stream: name.to_string(),
                });
            } else if state.truncated_before > 0 {
                records.push(LogRecord::Truncated {
                    stream: name.to_string(),
                    before_revision: state.truncated_before,
                });
            }
        }
        Ok(records)
    }

    /// Number of events held in memory (the rest of the live ones are on storage only).
    pub fn resident_event_count(&self) -> u64 {
        let tail = &self.events[self.evicted_before.min(self.next_position()) as usize..];
        tail.iter()
            .filter(|slot| matches!(slot, Slot::Resident(_)))
            .count() as u64
    }

    /// Drops from memory the events below `position` (they stay live, readable from storage by
    /// whoever resolves [`EventLog::read_all_positions`]). Only durable events may be evicted.
    pub fn evict_before(&mut self, position: u64) {
        let end = position.min(self.next_position());
        for slot in &mut self.events[self.evicted_before.min(end) as usize..end as usize] {
            if let Slot::Resident(event) = slot {
                *slot = Slot::OnDisk(event.event.event_id);
            }
        }
        self.evicted_before = self.evicted_before.max(end);
    }

    /// Whether the event at `position` is still present (not deleted).
    pub fn is_live(&self, position: u64) -> bool {
        matches!(
            self.events.get(position as usize),
            Some(Slot::Resident(_) | Slot::OnDisk(_))
        )
    }

    /// The event at `position`, if committed, not deleted and resident in memory.
    pub fn event_at(&self, position: u64) -> Option<&Arc<RecordedEvent>> {
        match self.events.get(position as usize) {
            Some(Slot::Resident(event)) => Some(event),
            _ => None,
        }
    }

    fn resolve_resident(&self, positions: Vec<u64>) -> Result<Vec<Arc<RecordedEvent>>, ReadError> {
        positions
            .into_iter()
            .map(|position| {
                self.event_at(position)
                    .cloned()
                    .ok_or(ReadError::NotResident { position })
            })
            .collect()
    }

    /// First position not recorded at or before `time`.
    fn position_end_for_time(&self, time: HlcTimestamp) -> u64 {
        self.timestamps
            .partition_point(|&recorded| recorded <= time) as u64
    }

    /// Reads up to `max_count` events of `stream` from revision `from` (inclusive; `None` = the
    /// start going forwards, the end going backwards), seeing only positions below `visible_end`
    /// and, if given, only history as of `as_of`. A stream that never existed reads as empty.
    /// Needs the events resident (see [`EventLog::read_stream_positions`] otherwise).
    pub fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: Option<u64>,
        max_count: usize,
        as_of: Option<AsOf>,
        visible_end: u64,
    ) -> Result<Vec<Arc<RecordedEvent>>, ReadError> {
        let positions =
            self.read_stream_positions(stream, direction, from, max_count, as_of, visible_end)?;
        self.resolve_resident(positions)
    }

    /// Like [`EventLog::read_stream`], but returns the global positions of the live events.
    pub fn read_stream_positions(
        &self,
        stream: &str,
        direction: Direction,
        from: Option<u64>,
        max_count: usize,
        as_of: Option<AsOf>,
        visible_end: u64,
    ) -> Result<Vec<u64>, ReadError> {
        let Some(state) = self.streams.get(stream) else {
            return Ok(Vec::new());
        };
        if state.tombstoned {
            return Err(ReadError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        let mut position_end = visible_end;
        let mut revision_end = state.positions.len() as u64;
        match as_of {
            Some(AsOf::Revision(revision)) => {
                revision_end = revision_end.min(revision.saturating_add(1))
            }
            Some(AsOf::Position(position)) => {
                position_end = position_end.min(position.saturating_add(1))
            }
            Some(AsOf::Time(time)) => {
                position_end = position_end.min(self.position_end_for_time(time))
            }
            None => {}
        }
        let visible = state
            .positions
            .partition_point(|&position| position < position_end) as u64;
        let end = revision_end.min(visible);
        let start = state.truncated_before;
        let mut out = Vec::new();
        let revisions: Box<dyn Iterator<Item = u64>> = match direction {
            Direction::Forwards => Box::new(from.unwrap_or(0).max(start)..end),
            Direction::Backwards => {
                let top = from.map_or(end, |from| from.saturating_add(1).min(end));
                Box::new((start..top).rev())
            }
        };
        for revision in revisions.take(max_count) {
            let position = state.positions[revision as usize];
            if self.is_live(position) {
                out.push(position);
            }
        }
        Ok(out)
    }

    /// Reads up to `max_count` events of `$all` from position `from` (inclusive; `None` = the start
    /// going forwards, the end going backwards), skipping deleted events, seeing only positions
    /// below `visible_end`, and only history as of `as_of` if given. Needs the events resident
    /// (see [`EventLog::read_all_positions`] otherwise).
    pub fn read_all(
        &self,
        direction: Direction,
        from: Option<u64>,
        max_count: usize,
        as_of: Option<AsOf>,
        visible_end: u64,
    ) -> Result<Vec<Arc<RecordedEvent>>, ReadError> {
        let positions = self.read_all_positions(direction, from, max_count, as_of, visible_end)?;
        self.resolve_resident(positions)
    }

    /// Like [`EventLog::read_all`], but returns the global positions of the live events.
    pub fn read_all_positions(
        &self,
        direction: Direction,
        from: Option<u64>,
        max_count: usize,
        as_of: Option<AsOf>,
        visible_end: u64,
    ) -> Result<Vec<u64>, ReadError> {
        let mut end = visible_end.min(self.next_position());
        match as_of {
            Some(AsOf::Revision(_)) => return Err(ReadError::RevisionBoundOnAll),
            Some(AsOf::Position(position)) => end = end.min(position.saturating_add(1)),
            Some(AsOf::Time(time)) => end = end.min(self.position_end_for_time(time)),
            None => {}
        }
        let positions: Box<dyn Iterator<Item = u64>> = match direction {
            Direction::Forwards => Box::new(from.unwrap_or(0)..end),
            Direction::Backwards => {
                let top = from.map_or(end, |from| from.saturating_add(1).min(end));
                Box::new((0..top).rev())
            }
        };
        Ok(positions
            .filter(|&position| self.is_live(position))
            .take(max_count)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str) -> EventData {
        EventData::json(event_type, &serde_json::json!({ "n": 1 })).expect("json")
    }

    fn at(wall_ns: u64) -> HlcTimestamp {
        HlcTimestamp {
            wall_ns,
            logical: 0,
        }
    }

    #[test]
    fn expected_version_semantics_follow_kurrentdb() {
        let mut log = EventLog::new();
        let stream = "cart-1";
        assert!(matches!(
            log.append(
                stream,
                ExpectedVersion::StreamExists,
                vec![event("A")],
                at(1)
            ),
            Err(CommandError::WrongExpectedVersion {
                actual: StreamRevision::NoStream,
                ..
            })
        ));
        assert!(matches!(
            log.append(stream, ExpectedVersion::Exact(0), vec![event("A")], at(1)),
            Err(CommandError::WrongExpectedVersion {
                actual: StreamRevision::NoStream,
                ..
            })
        ));
        let (first, _) = log
            .append(stream, ExpectedVersion::NoStream, vec![event("A")], at(1))
            .unwrap();
        assert_eq!(first.next_expected_revision, 0);
        let error = log
            .append(stream, ExpectedVersion::NoStream, vec![event("B")], at(2))
            .unwrap_err();
        assert_eq!(
            error,
            CommandError::WrongExpectedVersion {
                stream: stream.into(),
                expected: ExpectedVersion::NoStream,
                actual: StreamRevision::Revision(0)
            }
        );
        assert!(error.to_string().contains("actual revision 0"), "{error}");
        log.append(
            stream,
            ExpectedVersion::StreamExists,
            vec![event("B")],
            at(2),
        )
        .unwrap();
        log.append(stream, ExpectedVersion::Exact(1), vec![event("C")], at(3))
            .unwrap();
        let stale = log.append(stream, ExpectedVersion::Exact(1), vec![event("D")], at(4));
        assert!(matches!(
            stale,
            Err(CommandError::WrongExpectedVersion {
                actual: StreamRevision::Revision(2),
                ..
            })
        ));
        let (any, _) = log
            .append(stream, ExpectedVersion::Any, vec![event("D")], at(4))
            .unwrap();
        assert_eq!(any.next_expected_revision, 3);
        assert_eq!(log.next_position(), 4);
    }

    #[test]
    fn retries_write_nothing_twice_in_every_mode() {
        for expected in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::StreamExists,
            ExpectedVersion::Exact(0),
        ] {
            let mut log = EventLog::new();
            log.append("s", ExpectedVersion::Any, vec![event("Seed")], at(1))
                .unwrap();
            let batch = vec![event("A"), event("B")];
            let mode = if expected == ExpectedVersion::NoStream {
                ExpectedVersion::Any
            } else {
                expected
            };
            let (original, records) = log.append("s", mode, batch.clone(), at(2)).unwrap();
            assert_eq!(records.len(), 2);
            let (retry, records) = log.append("s", expected, batch.clone(), at(3)).unwrap();
            assert!(records.is_empty(), "retry with {expected:?} wrote again");
            assert!(retry.duplicate);
            assert_eq!(retry.first_position, original.first_position);
            assert_eq!(
                retry.next_expected_revision,
                original.next_expected_revision
            );
            assert_eq!(log.next_position(), 3);
            // A partial overlap is not a retry.
            let overlap = vec![batch[1].clone(), event("C")];
            assert!(matches!(
                log.append("s", ExpectedVersion::Any, overlap, at(4)),
                Err(CommandError::IdempotencyConflict { .. })
            ));
            // The same ids to another stream are not a retry either.
            assert!(matches!(
                log.append("other", ExpectedVersion::Any, batch, at(4)),
                Err(CommandError::IdempotencyConflict { .. })
            ));
        }
    }

    #[test]
    fn timestamps_never_go_backwards_along_positions() {
        let mut log = EventLog::new();
        log.append("s", ExpectedVersion::Any, vec![event("A")], at(100))
            .unwrap();
        log.append("s", ExpectedVersion::Any, vec![event("B")], at(50))
            .unwrap();
        let events = log
            .read_all(Direction::Forwards, None, 10, None, u64::MAX)
            .unwrap();
        assert!(events[1].recorded_at > events[0].recorded_at);
    }

    #[test]
    fn same_commands_same_log_on_every_replica() {
        let commands: Vec<Command> = (0..50)
            .map(|index| Command::Append {
                stream: format!("s-{}", index % 3),
                expected: if index % 4 == 0 {
                    ExpectedVersion::Exact(index / 3)
                } else {
                    ExpectedVersion::Any
                },
                events: vec![event("E").with_id(Uuid::from_u128(index as u128 + 1))],
                timestamp: at(index),
            })
            .collect();
        let run = |commands: &[Command]| {
            let mut log = EventLog::new();
            let outcomes: Vec<_> = commands
                .iter()
                .map(|command| log.execute(command.clone()))
                .collect();
            (
                outcomes,
                log.read_all(Direction::Forwards, None, 1000, None, u64::MAX)
                    .unwrap(),
            )
        };
        assert_eq!(run(&commands), run(&commands));
    }
}

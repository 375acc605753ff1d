//! The embedded driver: an [`EventStore`] runs the pure [`EventLog`] over a [`Storage`] with group
//! commit, and is shared between threads.
//!
//! **Contract.** An append returns `Ok` only after its records are durable. Readers and
//! subscriptions see an event only once it is durable, and they see positions in order with no
//! gap: when position `p` is visible, so is every position below it. So a reader that has handled
//! everything up to `p` and then asks for more never misses an event committed later.
//!
//! Group commit: an appender runs the log's decision under the state lock (this fixes the log
//! order) and queues its encoded records. If no group is being written, it becomes the writer:
//! it takes *everything* queued so far, writes it with one `fsync`, publishes the new durable
//! point and wakes all waiters. Appenders arriving during that `fsync` queue up and leave together
//! with the next one, so `n` concurrent writers share one `fsync` instead of paying `n`.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clock::HybridClock;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::{
    AppendResult, AsOf, Direction, EventData, ExpectedVersion, RecordedEvent, StreamRevision,
};
use crate::log::{CommandError, EventLog, LogRecord, ReadError};
use crate::storage::{
    CompactionReport, EventReader, EventSpan, FileOptions, FileStorage, MemoryStorage,
    RecoveryReport, Storage, StorageError, encode_record,
};

/// Largest clock offset assumed between the machines whose clocks stamp events (250 ms).
const MAX_CLOCK_OFFSET_NS: u64 = 250_000_000;

/// Errors of the store. Every variant but `Storage` and `Failed` leaves the store unchanged.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The log refused the command (conflict, deleted stream, limits); nothing was written.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The read was refused; nothing changed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The disk failed; the store now refuses writes and must be reopened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An earlier storage failure stopped the store; reopen it.
    #[error("the store stopped after a storage failure: {0}")]
    Failed(String),
    /// Event data could not be (de)serialized.
    #[error("event data: {0}")]
    Data(#[from] serde_json::Error),
}

impl StoreError {
    /// The conflict error if this is a wrong-expected-version failure.
    pub fn is_wrong_expected_version(&self) -> bool {
        matches!(
            self,
            Self::Command(CommandError::WrongExpectedVersion { .. })
        )
    }
}

/// What to read and how: direction, start, count and time-travel bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// Which way to walk.
    pub direction: Direction,
    /// First revision (stream reads) or position (`$all` reads) to return, inclusive; `None` is
    /// the start going forwards and the end going backwards.
    pub from: Option<u64>,
    /// Most events returned.
    pub max_count: usize,
    /// See history only as of this point.
    pub as_of: Option<AsOf>,
}

impl ReadOptions {
    /// Read forwards from the start, everything.
    pub fn forwards() -> Self {
        Self {
            direction: Direction::Forwards,
            from: None,
            max_count: usize::MAX,
            as_of: None,
        }
    }

    /// Read backwards from the end, everything.
    pub fn backwards() -> Self {
        Self {
            direction: Direction::Backwards,
            ..Self::forwards()
        }
    }

    /// Start at this revision or position (inclusive).
    #[must_use]
    pub fn from(mut self, revision_or_position: u64) -> Self {
        self.from = Some(revision_or_position);
        self
    }

    /// Return at most this many events.
    #[must_use]
    pub fn max_count(mut self, max_count: usize) -> Self {
        self.max_count = max_count;
        self
    }

    /// Time travel: see history only as of this point.
    #[must_use]
    pub fn as_of(mut self, as_of: AsOf) -> Self {
        self.as_of = Some(as_of);
        self
    }
}

/// Tuning of an [`EventStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Segment files.
    pub file: FileOptions,
    /// Most recent events kept in memory; older ones are read back from disk when asked for
    /// (ignored by storages that cannot read back, such as [`MemoryStorage`]).
    pub resident_events_max: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            file: FileOptions::default(),
            resident_events_max: 100_000,
        }
    }
}

/// How often (in positions) recovery evicts old events from memory while replaying.
const RECOVERY_EVICTION_INTERVAL: u64 = 4096;

/// State behind the state lock.
struct Shared {
    log: EventLog,
    clock: HybridClock,
    /// Encoded records decided but not yet written.
    pending: Vec<u8>,
    /// Where the event records lie in `pending`.
    pending_spans: Vec<EventSpan>,
    /// Commands whose records were queued, counted since open.
    queued_sequence: u64,
    /// Commands whose records are durable.
    durable_sequence: u64,
    /// Groups written (one `fsync` each) since open.
    group_count: u64,
    /// Positions below this are durable and visible to readers.
    visible_end: u64,
    /// Set after a storage failure.
    failed: Option<String>,
    /// A thread is writing a group now.
    writing: bool,
    /// An empty buffer kept to swap with `pending` (saves an allocation per group).
    spare: Vec<u8>,
}

struct Inner {
    state: Mutex<Shared>,
    storage: Mutex<Box<dyn Storage>>,
    /// Signalled whenever a group becomes durable (`visible_end` grows) or the store fails.
    visible_changed: Condvar,
    recovery: RecoveryReport,
    /// Reads evicted events back from storage, if the storage can.
    reader: Option<Arc<dyn EventReader>>,
    /// Events kept resident behind the durable head (when `reader` is set).
    resident_events_max: u64,
}

/// Fails the store if the thread writing a group unwinds before finishing.
struct WriterGuard<'a> {
    store: &'a EventStore,
    armed: bool,
}

impl WriterGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.store.state();
            state.writing = false;
            state.failed = Some("a thread panicked while writing a group".to_owned());
            drop(state);
            self.store.inner.visible_changed.notify_all();
        }
    }
}

/// An embedded event store; cheap to clone, safe to share between threads.
///
/// ```
/// use events::{EventData, EventStore, ExpectedVersion, ReadOptions};
///
/// let store = EventStore::in_memory();
/// let event = EventData::json("UserRegistered", &serde_json::json!({"name": "Ada"}))?;
/// let appended = store.append("user-1", ExpectedVersion::NoStream, vec![event])?;
/// assert_eq!(appended.next_expected_revision, 0);
/// let read = store.read_stream("user-1", ReadOptions::forwards())?;
/// assert_eq!(read[0].event.event_type, "UserRegistered");
/// # Ok::<(), events::StoreError>(())
/// ```
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("head_position", &self.head_position())
            .finish()
    }
}

fn physical_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

impl EventStore {
    /// Opens (or creates) a durable store in `directory`, recovering from any crash.
    pub fn open(directory: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(directory, StoreOptions::default())
    }

    /// Opens a durable store with explicit options.
    pub fn open_with(
        directory: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let storage = FileStorage::open(directory, options.file.clone())?;
        Self::with_storage_options(Box::new(storage), &options)
    }

    /// A store held in memory only (tests, examples, simulation).
    pub fn in_memory() -> Self {
        match Self::with_storage(Box::new(MemoryStorage::new())) {
            Ok(store) => store,
            // An empty memory storage has nothing to recover, so this cannot fail.
            Err(error) => unreachable!("empty memory storage failed to recover: {error}"),
        }
    }

    /// A store over any storage, replaying what it holds.
    pub fn with_storage(storage: Box<dyn Storage>) -> Result<Self, StoreError> {
        Self::with_storage_options(storage, &StoreOptions::default())
    }

    /// A store over any storage with explicit options (the file options are not used).
    pub fn with_storage_options(
        mut storage: Box<dyn Storage>,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let reader = storage.event_reader();
        let resident_events_max = options.resident_events_max;
        let mut log = EventLog::new();
        let mut evicted_at = 0;
        let recovery = storage.recover(&mut |record| {
            log.restore(record)?;
            let next = log.next_position();
            if reader.is_some() && next >= evicted_at + RECOVERY_EVICTION_INTERVAL {
                log.evict_before(next.saturating_sub(resident_events_max));
                evicted_at = next;
            }
            Ok(())
        })?;
        if reader.is_some() {
            log.evict_before(log.next_position().saturating_sub(resident_events_max));
        }
        let mut clock = HybridClock::new(MAX_CLOCK_OFFSET_NS);
        // Never stamp an event earlier than one already recorded, even if the wall clock went back.
        let last = log.last_timestamp();
        let _ = clock.observe(last, last.wall_ns);
        let visible_end = log.next_position();
        let shared = Shared {
            log,
            clock,
            pending: Vec::new(),
            pending_spans: Vec::new(),
            queued_sequence: 0,
            durable_sequence: 0,
            group_count: 0,
            visible_end,
            failed: None,
            writing: false,
            spare: Vec::new(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(shared),
                storage: Mutex::new(storage),
                visible_changed: Condvar::new(),
                recovery,
                reader,
                resident_events_max,
            }),
        })
    }

    /// What recovery found when the store was opened (records replayed, torn bytes cut).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    fn state(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the log half-updated in a way readers could
        // observe as torn (updates are single pushes), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `events` to `stream` if `expected` holds; returns once they are durable.
    pub fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        let (result, ticket) = {
            let mut state = self.state();
            if let Some(reason) = &state.failed {
                return Err(StoreError::Failed(reason.clone()));
            }
            let timestamp = state.clock.now(physical_now_ns());
            let (result, records) = state.log.append(stream, expected, events, timestamp)?;
            (result, Self::queue(&mut state, &records)?)
        };
        self.wait_durable(ticket)?;
        Ok(result)
    }

    /// Deletes the events of `stream` before `before_revision`; returns how many were removed.
    /// Reads stop returning them at once; their bytes leave the disk at the next [`Self::compact`].
    pub fn truncate_before(&self, stream: &str, before_revision: u64) -> Result<u64, StoreError> {
        let (removed, ticket) = {
            let mut state = self.state();
            let (removed, records) = state.log.truncate_before(stream, before_revision)?;
            (removed, Self::queue(&mut state, &records)?)
        };
        self.wait_durable(ticket)?;
        Ok(removed)
    }

    /// Hard-deletes `stream` if `expected` holds: reads and appends fail from now on. Bytes leave
    /// the disk at the next [`Self::compact`].
    pub fn tombstone(&self, stream: &str, expected: ExpectedVersion) -> Result<(), StoreError> {
        let ticket = {
            let mut state = self.state();
            let records = state.log.tombstone(stream, expected)?;
            Self::queue(&mut state, &records)?
        };
        self.wait_durable(ticket)
    }

    /// Rewrites sealed segments without the payloads of deleted events (scavenging).
    pub fn compact(&self) -> Result<CompactionReport, StoreError> {
        let mut storage = self
            .inner
            .storage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let live: Vec<bool> = {
            let state = self.state();
            (0..state.log.next_position())
                .map(|position| state.log.is_live(position))
                .collect()
        };
        // Positions committed after the snapshot above are live: they were just written.
        let report =
            storage.compact(&|position| live.get(position as usize).copied().unwrap_or(true))?;
        Ok(report)
    }

    /// Encodes and queues `records`; returns the sequence number to wait for.
    fn queue(state: &mut Shared, records: &[LogRecord]) -> Result<u64, StoreError> {
        if records.is_empty() {
            // A retry of an append possibly still in flight: wait for everything queued so far.
            return Ok(state.queued_sequence);
        }
        for record in records {
            let offset = state.pending.len();
            let encoded = encode_record(record, &mut state.pending);
            if let (Ok(()), LogRecord::Event(event)) = (&encoded, record) {
                let length = state.pending.len() - offset;
                state.pending_spans.push(EventSpan {
                    position: event.position,
                    offset,
                    length,
                });
            }
            if let Err(error) = encoded {
                // The log already applied the record; the store cannot stay consistent.
                state.failed = Some(error.to_string());
                return Err(error.into());
            }
        }
        state.queued_sequence += 1;
        Ok(state.queued_sequence)
    }

    /// Blocks until the command numbered `ticket` is durable. If no write is in progress, this
    /// thread becomes the writer and writes everything queued so far with one `fsync`; otherwise
    /// it waits for the writer's signal, and is released as soon as a write covers its ticket.
    fn wait_durable(&self, ticket: u64) -> Result<(), StoreError> {
        let mut state = self.state();
        loop {
            if let Some(reason) = &state.failed {
                return Err(StoreError::Failed(reason.clone()));
            }
            if state.durable_sequence >= ticket {
                return Ok(());
            }
            if state.writing {
                state = self
                    .inner
                    .visible_changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.writing = true;
            let shared = &mut *state;
            let bytes = std::mem::replace(&mut shared.pending, std::mem::take(&mut shared.spare));
            let spans = std::mem::take(&mut shared.pending_spans);
            let (sequence, visible_end) = (state.queued_sequence, state.log.next_position());
            drop(state);
            // If the storage panics mid-write, the guard fails the store and wakes the waiters
            // instead of leaving them waiting forever for a writer that is gone.
            let guard = WriterGuard {
                store: self,
                armed: true,
            };
            let written = self.write_group(&bytes, &spans);
            guard.disarm();
            state = self.state();
            state.writing = false;
            match written {
                Ok(()) => {
                    state.durable_sequence = sequence;
                    state.visible_end = visible_end;
                    state.group_count += 1;
                    if self.inner.reader.is_some() {
                        let keep_from = visible_end.saturating_sub(self.inner.resident_events_max);
                        state.log.evict_before(keep_from);
                    }
                    let mut spare = bytes;
                    spare.clear();
                    state.spare = spare;
                }
                Err(error) => {
                    state.failed = Some(error.to_string());
                    self.inner.visible_changed.notify_all();
                    return Err(error.into());
                }
            }
            self.inner.visible_changed.notify_all();
        }
    }

    fn write_group(&self, bytes: &[u8], spans: &[EventSpan]) -> Result<(), StorageError> {
        let mut storage = self
            .inner
            .storage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        storage.write_durable(bytes, spans)
    }

    /// Reads events of `stream`; a stream that never existed reads as empty.
    pub fn read_stream(
        &self,
        stream: &str,
        options: ReadOptions,
    ) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        let ReadOptions {
            direction,
            from,
            max_count,
            as_of,
        } = options;
        let state = self.state();
        let positions = state.log.read_stream_positions(
            stream,
            direction,
            from,
            max_count,
            as_of,
            state.visible_end,
        )?;
        self.resolve(state, positions)
    }

    /// Reads events of `$all`, every stream interleaved in commit order.
    pub fn read_all(&self, options: ReadOptions) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        let ReadOptions {
            direction,
            from,
            max_count,
            as_of,
        } = options;
        let state = self.state();
        let positions =
            state
                .log
                .read_all_positions(direction, from, max_count, as_of, state.visible_end)?;
        self.resolve(state, positions)
    }

    /// Reads a page of `$all` forwards from `from` together with the head position the read saw,
    /// taken under one lock (so a caller can skip deleted positions without skipping new ones).
    pub(crate) fn read_all_page(
        &self,
        from: u64,
        max_count: usize,
    ) -> Result<(Vec<Arc<RecordedEvent>>, u64), StoreError> {
        let state = self.state();
        let head = state.visible_end;
        let positions =
            state
                .log
                .read_all_positions(Direction::Forwards, Some(from), max_count, None, head)?;
        Ok((self.resolve(state, positions)?, head))
    }

    /// Turns positions into events: resident ones from memory (under the lock), evicted ones from
    /// storage (after releasing it, so disk reads never hold up appends). An event erased between
    /// the two steps (a concurrent deletion and compaction) is left out.
    fn resolve(
        &self,
        state: MutexGuard<'_, Shared>,
        positions: Vec<u64>,
    ) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        let resident: Vec<Option<Arc<RecordedEvent>>> = positions
            .iter()
            .map(|&position| state.log.event_at(position).cloned())
            .collect();
        drop(state);
        let missing: Vec<u64> = positions
            .iter()
            .zip(&resident)
            .filter(|(_, event)| event.is_none())
            .map(|(&position, _)| position)
            .collect();
        if missing.is_empty() {
            return Ok(resident.into_iter().flatten().collect());
        }
        let Some(reader) = &self.inner.reader else {
            // Without a reader nothing is ever evicted, so a miss was deleted meanwhile.
            return Ok(resident.into_iter().flatten().collect());
        };
        let mut fetched = reader.read_events(&missing)?.into_iter();
        let mut out = Vec::with_capacity(positions.len());
        for event in resident {
            match event {
                Some(event) => out.push(event),
                None => out.extend(fetched.next().flatten()),
            }
        }
        Ok(out)
    }

    /// The stream's current revision as the log decided it (including appends still being made
    /// durable, so a writer can chain expected versions without waiting).
    pub fn stream_revision(&self, stream: &str) -> StreamRevision {
        self.state().log.stream_revision(stream)
    }

    /// First position not yet visible: every position below it is durable and readable.
    pub fn head_position(&self) -> u64 {
        self.state().visible_end
    }

    /// Number of events present (not deleted), including appends in flight.
    pub fn live_event_count(&self) -> u64 {
        self.state().log.live_event_count()
    }

    /// Groups written since open, each with one `fsync`: appends divided by this is the group
    /// commit's batching factor.
    pub fn durable_group_count(&self) -> u64 {
        self.state().group_count
    }

    /// Number of events held in memory (bounded by `StoreOptions::resident_events_max` when the
    /// storage can read events back).
    pub fn resident_event_count(&self) -> u64 {
        self.state().log.resident_event_count()
    }

    /// Names of every stream ever written, in order.
    pub fn stream_names(&self) -> Vec<String> {
        self.state().log.stream_names().map(str::to_owned).collect()
    }

    /// Blocks until some position at or above `position` is visible, or `timeout` passes;
    /// returns the head position then.
    pub fn wait_for_position(&self, position: u64, timeout: Duration) -> Result<u64, StoreError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if let Some(reason) = &state.failed {
                return Err(StoreError::Failed(reason.clone()));
            }
            if state.visible_end > position {
                return Ok(state.visible_end);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(state.visible_end);
            }
            state = self
                .inner
                .visible_changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

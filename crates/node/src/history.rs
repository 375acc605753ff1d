//! The event store as part of the replicated machine: streams of events kept in Raft beside the
//! strong keyspace, so every acknowledged event survives the loss of a minority of nodes.
//!
//! Writes are [`EventsCommand`]s applied in log order on every replica; reads are [`EventsQuery`]s
//! answered by the leader after a ReadIndex round. Both produce an [`EventsOutput`]. The state is
//! an [`EventHistory`] wrapping the pure, deterministic [`events::EventLog`].
//!
//! **Determinism: every replica must compute the same positions, revisions and errors from the
//! same log.** So nothing here reads a clock or draws a random number: an append's commit time
//! and its event ids travel inside the command, chosen by the node that proposes it (see
//! [`NodeHandle::events_append`]), and the log only raises the time to keep it non-decreasing
//! along positions. A refused command changes no replica.

use std::time::{SystemTime, UNIX_EPOCH};

use clock::HlcTimestamp;
use events::{
    AppendResult, Command, CommandError, Direction, EventData, EventLog, ExpectedVersion,
    LogRecord, Outcome, ReadError, ReadOptions, RecordedEvent, StreamRevision,
};
use raft::{ClientOperation, ReadConsistency};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::handle::{NodeError, NodeHandle};
use crate::machine::{MachineCommand, MachineOutput, MachineQuery};

/// Most events one read returns, whatever limit the caller asks for.
pub const READ_COUNT_MAX: u64 = 4_096;

/// Most event bytes (data, metadata, type) one read returns; a read always returns at least one
/// event if there is one, so a single large event is still readable.
pub const READ_SIZE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// A write to the event store, replicated through the Raft log: the event log's own command
/// (append with an expected version, truncate, tombstone). Everything time-dependent — the commit
/// timestamp and the event ids — travels inside it, chosen by the node that proposes it, so every
/// replica applying it records the same thing.
pub type EventsCommand = Command;

/// Which events a read asks for: the event log's own read options (direction, start, count,
/// point in history); the count is clamped to [`READ_COUNT_MAX`] per read.
pub type ReadRange = ReadOptions;

/// A read answered from the event store's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventsQuery {
    /// Events of one stream, by revision.
    ReadStream {
        /// The stream.
        stream: String,
        /// Which events.
        range: ReadRange,
    },
    /// Events of every stream (`$all`), by global position.
    ReadAll(ReadRange),
    /// What the store knows about one stream.
    Stream(String),
    /// How far the log reaches.
    Head,
}

/// The events a read returned, and where to go on from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadSlice {
    /// The events, in the order read.
    pub events: Vec<RecordedEvent>,
    /// Where the next read in the same direction starts (a revision for stream reads, a
    /// position for `$all`), or `None` when this read reached the end of what is visible.
    pub next: Option<u64>,
    /// The position the next committed event will get: a subscriber that read everything below
    /// it has caught up.
    pub head_position: u64,
}

/// One stream's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream.
    pub stream: String,
    /// Its last revision (`NoStream` if it never had an event).
    pub revision: StreamRevision,
    /// First revision still present (0 unless truncated).
    pub truncated_before: u64,
    /// Hard-deleted.
    pub tombstoned: bool,
}

/// How far the log reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// The position the next committed event will get (= events ever committed).
    pub next_position: u64,
    /// Events not deleted.
    pub live_events: u64,
    /// Commit time of the last event (zero for an empty log).
    pub last_recorded_at: HlcTimestamp,
}

/// What an events command or query produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventsOutput {
    /// An append succeeded (or was an exact retry: `duplicate`).
    Appended(AppendResult),
    /// A truncation deleted this many events.
    Truncated {
        /// Events this command deleted.
        removed: u64,
    },
    /// The stream was tombstoned.
    Tombstoned,
    /// A read's events.
    Events(ReadSlice),
    /// A stream's state.
    Stream(StreamInfo),
    /// The log's head.
    Head(LogHead),
    /// The command or query was refused (identically on every replica; nothing changed).
    Error(EventsError),
}

/// Why the event store refused a command or a read: the event log's own errors, which travel
/// back through the Raft reply. In every case the state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Error)]
#[non_exhaustive]
pub enum EventsError {
    /// The log refused the command (expected version, tombstone, idempotency, limits).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The log refused the read (tombstoned stream, a revision bound on `$all`).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The state machine could not answer (a bug, or bytes that do not decode).
    #[error("event store failure: {0}")]
    Internal(String),
}

/// The event store's replicated state: an [`EventLog`] that is never evicted to disk (Raft's
/// log and snapshots are its durable storage).
///
/// Serializes as the log's snapshot records (every position in order, then truncations and
/// tombstones) and deserializes by replaying them, checking they continue gaplessly.
#[derive(Clone, Debug, Default)]
pub struct EventHistory {
    log: EventLog,
}

impl PartialEq for EventHistory {
    /// Two histories are equal when they would snapshot to the same records.
    fn eq(&self, other: &Self) -> bool {
        self.log.next_position() == other.log.next_position()
            && self.log.snapshot_records().ok() == other.log.snapshot_records().ok()
    }
}

impl Eq for EventHistory {}

impl EventHistory {
    /// An empty event store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The log, for direct reads.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Applies one command in log order.
    pub fn execute(&mut self, command: EventsCommand) -> EventsOutput {
        match self.log.execute(command) {
            Ok((Outcome::Appended(result), _)) => EventsOutput::Appended(result),
            Ok((Outcome::Truncated { removed }, _)) => EventsOutput::Truncated { removed },
            Ok((Outcome::Tombstoned, _)) => EventsOutput::Tombstoned,
            Err(error) => EventsOutput::Error(error.into()),
        }
    }

    /// Answers one read against the current state.
    pub fn query(&self, query: &EventsQuery) -> EventsOutput {
        let answer = match query {
            EventsQuery::ReadStream { stream, range } => self.read_stream(stream, range),
            EventsQuery::ReadAll(range) => self.read_all(range),
            EventsQuery::Stream(stream) => Ok(EventsOutput::Stream(StreamInfo {
                stream: stream.clone(),
                revision: self.log.stream_revision(stream),
                truncated_before: self.log.truncated_before(stream),
                tombstoned: self.log.is_tombstoned(stream),
            })),
            EventsQuery::Head => Ok(EventsOutput::Head(LogHead {
                next_position: self.log.next_position(),
                live_events: self.log.live_event_count(),
                last_recorded_at: self.log.last_timestamp(),
            })),
        };
        answer.unwrap_or_else(|error| EventsOutput::Error(error.into()))
    }

    fn read_stream(&self, stream: &str, range: &ReadRange) -> Result<EventsOutput, ReadError> {
        let positions = self.log.read_stream_positions(
            stream,
            range.direction,
            range.from,
            range.max_count.min(READ_COUNT_MAX as usize),
            range.as_of,
            u64::MAX,
        )?;
        let (events, cut) = self.collect(&positions)?;
        let next = self.next_after(&events, range, cut, |event| event.revision);
        Ok(EventsOutput::Events(ReadSlice {
            events,
            next,
            head_position: self.log.next_position(),
        }))
    }

    fn read_all(&self, range: &ReadRange) -> Result<EventsOutput, ReadError> {
        let positions = self.log.read_all_positions(
            range.direction,
            range.from,
            range.max_count.min(READ_COUNT_MAX as usize),
            range.as_of,
            u64::MAX,
        )?;
        let (events, cut) = self.collect(&positions)?;
        let next = self.next_after(&events, range, cut, |event| event.position);
        Ok(EventsOutput::Events(ReadSlice {
            events,
            next,
            head_position: self.log.next_position(),
        }))
    }

    /// The events at `positions` within the read size budget; `true` when the budget cut the
    /// read short (more events follow).
    fn collect(&self, positions: &[u64]) -> Result<(Vec<RecordedEvent>, bool), ReadError> {
        let mut events = Vec::with_capacity(positions.len());
        let mut size_bytes = 0usize;
        for &position in positions {
            let event = self
                .log
                .event_at(position)
                .ok_or(ReadError::NotResident { position })?;
            size_bytes = size_bytes.saturating_add(event.event.size_bytes());
            if size_bytes > READ_SIZE_MAX_BYTES && !events.is_empty() {
                return Ok((events, true));
            }
            events.push(RecordedEvent::clone(event));
        }
        Ok((events, false))
    }

    /// Where a read that returned `events` continues: after the last one when the read was full
    /// or cut by size, nowhere when it reached the end.
    fn next_after(
        &self,
        events: &[RecordedEvent],
        range: &ReadRange,
        cut: bool,
        key: impl Fn(&RecordedEvent) -> u64,
    ) -> Option<u64> {
        let full = events.len() >= range.max_count.min(READ_COUNT_MAX as usize);
        let last = events.last().map(key)?;
        if !(full || cut) {
            return None;
        }
        match range.direction {
            Direction::Forwards => last.checked_add(1),
            Direction::Backwards => last.checked_sub(1),
        }
    }
}

impl Serialize for EventHistory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.log
            .snapshot_records()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EventHistory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let records = Vec::<LogRecord>::deserialize(deserializer)?;
        let mut log = EventLog::new();
        for record in records {
            log.restore(record).map_err(serde::de::Error::custom)?;
        }
        Ok(Self { log })
    }
}

/// Why an event store call through the node failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The cluster could not serve it (no quorum, uncertain outcome, node stopping…).
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The event store refused it (conflict, deleted stream, invalid request); nothing changed.
    #[error(transparent)]
    Events(#[from] EventsError),
}

/// Now as a hybrid timestamp from this machine's wall clock: the proposer's choice of commit
/// time (the log raises it if another node's clock ran ahead).
pub fn proposal_timestamp() -> HlcTimestamp {
    let wall_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        });
    HlcTimestamp::new(wall_ns, 0)
}

fn events_output(bytes: &[u8]) -> Result<EventsOutput, HistoryError> {
    match MachineOutput::decode(bytes) {
        MachineOutput::Events(EventsOutput::Error(error)) => Err(error.into()),
        MachineOutput::Events(output) => Ok(output),
        other => Err(EventsError::Internal(format!("unexpected output {other:?}")).into()),
    }
}

fn unexpected(output: &EventsOutput) -> HistoryError {
    EventsError::Internal(format!("unexpected output {output:?}")).into()
}

impl NodeHandle {
    /// Replicates one event store command through the leader (linearizable).
    pub async fn events_command(
        &self,
        command: EventsCommand,
    ) -> Result<EventsOutput, HistoryError> {
        let bytes = MachineCommand::Events(command).encode();
        let output = self.strong_operation(ClientOperation::Write(bytes)).await?;
        events_output(&output)
    }

    /// Answers one event store query at the leader after a ReadIndex round (linearizable).
    pub async fn events_query(&self, query: EventsQuery) -> Result<EventsOutput, HistoryError> {
        let operation = ClientOperation::Read {
            query: MachineQuery::Events(query).encode(),
            consistency: ReadConsistency::Linearizable,
        };
        let output = self.strong_operation(operation).await?;
        events_output(&output)
    }

    /// Appends `events` to `stream` if `expected` holds, stamped with this node's clock.
    /// Retrying with the same events (same ids) writes nothing twice.
    pub async fn events_append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, HistoryError> {
        let command = EventsCommand::Append {
            stream: stream.to_owned(),
            expected,
            events,
            timestamp: proposal_timestamp(),
        };
        match self.events_command(command).await? {
            EventsOutput::Appended(result) => Ok(result),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes the events of `stream` below `before_revision`; returns how many this removed.
    pub async fn events_truncate(
        &self,
        stream: &str,
        before_revision: u64,
    ) -> Result<u64, HistoryError> {
        let command = EventsCommand::Truncate {
            stream: stream.to_owned(),
            before_revision,
        };
        match self.events_command(command).await? {
            EventsOutput::Truncated { removed } => Ok(removed),
            other => Err(unexpected(&other)),
        }
    }

    /// Hard-deletes `stream` if `expected` holds; it can never be written again.
    pub async fn events_tombstone(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<(), HistoryError> {
        let command = EventsCommand::Tombstone {
            stream: stream.to_owned(),
            expected,
        };
        match self.events_command(command).await? {
            EventsOutput::Tombstoned => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads events of `stream` (linearizable).
    pub async fn events_read_stream(
        &self,
        stream: &str,
        range: ReadRange,
    ) -> Result<ReadSlice, HistoryError> {
        let query = EventsQuery::ReadStream {
            stream: stream.to_owned(),
            range,
        };
        match self.events_query(query).await? {
            EventsOutput::Events(slice) => Ok(slice),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads events of every stream by global position (linearizable).
    pub async fn events_read_all(&self, range: ReadRange) -> Result<ReadSlice, HistoryError> {
        match self.events_query(EventsQuery::ReadAll(range)).await? {
            EventsOutput::Events(slice) => Ok(slice),
            other => Err(unexpected(&other)),
        }
    }

    /// One stream's state (linearizable).
    pub async fn events_stream_info(&self, stream: &str) -> Result<StreamInfo, HistoryError> {
        match self
            .events_query(EventsQuery::Stream(stream.to_owned()))
            .await?
        {
            EventsOutput::Stream(info) => Ok(info),
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use events::{Metadata, Uuid};
    use raft::StateMachine;

    use events::AsOf;

    use super::*;
    use crate::machine::NodeMachine;

    fn event(event_type: &str, id: u128) -> EventData {
        EventData::json(event_type, &serde_json::json!({ "id": id }))
            .expect("json")
            .with_id(Uuid::from_u128(id))
    }

    fn at(wall_ns: u64) -> HlcTimestamp {
        HlcTimestamp::new(wall_ns, 0)
    }

    fn append(
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        wall_ns: u64,
    ) -> EventsCommand {
        EventsCommand::Append {
            stream: stream.into(),
            expected,
            events,
            timestamp: at(wall_ns),
        }
    }

    /// Applies through the raft state machine interface, as every replica does.
    fn apply(machine: &mut NodeMachine, command: EventsCommand) -> EventsOutput {
        let bytes = MachineCommand::Events(command).encode();
        match MachineOutput::decode(&machine.apply(&bytes)) {
            MachineOutput::Events(output) => output,
            other => panic!("not an events output: {other:?}"),
        }
    }

    fn query(machine: &NodeMachine, query: EventsQuery) -> EventsOutput {
        match MachineOutput::decode(&machine.query(&MachineQuery::Events(query).encode())) {
            MachineOutput::Events(output) => output,
            other => panic!("not an events output: {other:?}"),
        }
    }

    fn read_stream(machine: &NodeMachine, stream: &str, range: ReadRange) -> ReadSlice {
        let query = EventsQuery::ReadStream {
            stream: stream.into(),
            range,
        };
        match self::query(machine, query) {
            EventsOutput::Events(slice) => slice,
            other => panic!("not events: {other:?}"),
        }
    }

    fn read_all(machine: &NodeMachine, range: ReadRange) -> ReadSlice {
        match query(machine, EventsQuery::ReadAll(range)) {
            EventsOutput::Events(slice) => slice,
            other => panic!("not events: {other:?}"),
        }
    }

    fn types(slice: &ReadSlice) -> Vec<&str> {
        slice
            .events
            .iter()
            .map(|event| event.event.event_type.as_str())
            .collect()
    }

    #[test]
    fn appends_check_the_expected_version_and_name_the_actual_revision() {
        let mut machine = NodeMachine::default();
        let first = apply(
            &mut machine,
            append(
                "cart-1",
                ExpectedVersion::NoStream,
                vec![event("CartCreated", 1)],
                10,
            ),
        );
        assert!(matches!(
            first,
            EventsOutput::Appended(AppendResult {
                next_expected_revision: 0,
                first_position: 0,
                last_position: 0,
                duplicate: false
            })
        ));
        let second = apply(
            &mut machine,
            append(
                "cart-1",
                ExpectedVersion::Exact(0),
                vec![event("ItemAdded", 2), event("ItemAdded", 3)],
                20,
            ),
        );
        assert!(matches!(
            second,
            EventsOutput::Appended(AppendResult {
                next_expected_revision: 2,
                first_position: 1,
                last_position: 2,
                ..
            })
        ));
        let stale = apply(
            &mut machine,
            append(
                "cart-1",
                ExpectedVersion::Exact(0),
                vec![event("ItemAdded", 4)],
                30,
            ),
        );
        let EventsOutput::Error(error) = stale else {
            panic!("a stale expected version must conflict: {stale:?}");
        };
        assert_eq!(
            error,
            EventsError::Command(CommandError::WrongExpectedVersion {
                stream: "cart-1".into(),
                expected: ExpectedVersion::Exact(0),
                actual: StreamRevision::Revision(2),
            })
        );
        assert!(error.to_string().contains("actual revision 2"), "{error}");
        let exists = apply(
            &mut machine,
            append(
                "other",
                ExpectedVersion::StreamExists,
                vec![event("X", 5)],
                30,
            ),
        );
        assert!(matches!(
            exists,
            EventsOutput::Error(EventsError::Command(CommandError::WrongExpectedVersion {
                actual: StreamRevision::NoStream,
                ..
            }))
        ));
        // Refused commands changed nothing.
        assert_eq!(read_all(&machine, ReadRange::forwards()).events.len(), 3);
        assert_eq!(machine.events().log().next_position(), 3);
    }

    #[test]
    fn a_retried_append_writes_nothing_twice_and_answers_like_the_original() {
        let mut machine = NodeMachine::default();
        let batch = vec![event("A", 1), event("B", 2)];
        let original = apply(
            &mut machine,
            append("s", ExpectedVersion::NoStream, batch.clone(), 1),
        );
        // The retry's expected version no longer holds, yet it is recognised as a retry.
        let retry = apply(
            &mut machine,
            append("s", ExpectedVersion::NoStream, batch, 2),
        );
        let (EventsOutput::Appended(original), EventsOutput::Appended(retry)) = (original, retry)
        else {
            panic!("both appends succeed");
        };
        assert!(retry.duplicate && !original.duplicate);
        assert_eq!(retry.first_position, original.first_position);
        assert_eq!(retry.last_position, original.last_position);
        assert_eq!(machine.events().log().next_position(), 2);
        let overlap = apply(
            &mut machine,
            append(
                "s",
                ExpectedVersion::Any,
                vec![event("B", 2), event("C", 3)],
                3,
            ),
        );
        assert!(matches!(
            overlap,
            EventsOutput::Error(EventsError::Command(
                CommandError::IdempotencyConflict { .. }
            ))
        ));
    }

    #[test]
    fn reads_go_forwards_and_backwards_and_page_with_next() {
        let mut machine = NodeMachine::default();
        for index in 0..5u128 {
            let stream = if index % 2 == 0 { "even" } else { "odd" };
            let output = apply(
                &mut machine,
                append(
                    stream,
                    ExpectedVersion::Any,
                    vec![event(&format!("E{index}"), index + 1)],
                    index as u64,
                ),
            );
            assert!(matches!(output, EventsOutput::Appended(_)), "{output:?}");
        }
        let even = read_stream(&machine, "even", ReadRange::forwards());
        assert_eq!(types(&even), ["E0", "E2", "E4"]);
        assert_eq!(even.next, None, "read to the end");
        assert_eq!(even.head_position, 5);
        let revisions: Vec<u64> = even.events.iter().map(|event| event.revision).collect();
        assert_eq!(revisions, [0, 1, 2]);

        let back = read_stream(&machine, "even", ReadRange::backwards().max_count(2));
        assert_eq!(types(&back), ["E4", "E2"]);
        assert_eq!(back.next, Some(0));
        let rest = read_stream(&machine, "even", ReadRange::backwards().from(0));
        assert_eq!(types(&rest), ["E0"]);

        let page = read_all(&machine, ReadRange::forwards().from(1).max_count(2));
        assert_eq!(types(&page), ["E1", "E2"]);
        assert_eq!(page.next, Some(3));
        let page = read_all(&machine, ReadRange::forwards().from(3).max_count(2));
        assert_eq!(types(&page), ["E3", "E4"]);
        let end = read_all(&machine, ReadRange::forwards().from(5));
        assert!(end.events.is_empty());
        assert_eq!(end.next, None);
        assert!(matches!(
            query(&machine, EventsQuery::Head),
            EventsOutput::Head(LogHead {
                next_position: 5,
                live_events: 5,
                ..
            })
        ));
        assert!(
            read_stream(&machine, "never", ReadRange::forwards())
                .events
                .is_empty()
        );
    }

    #[test]
    fn time_travel_by_revision_position_and_time() {
        let mut machine = NodeMachine::default();
        for index in 0..4u128 {
            apply(
                &mut machine,
                append(
                    "s",
                    ExpectedVersion::Any,
                    vec![event(&format!("E{index}"), index + 1)],
                    100 * (index as u64 + 1),
                ),
            );
        }
        let range = ReadRange::forwards();
        let by_revision = read_stream(&machine, "s", range.as_of(AsOf::Revision(1)));
        assert_eq!(types(&by_revision), ["E0", "E1"]);
        let by_position = read_all(&machine, range.as_of(AsOf::Position(2)));
        assert_eq!(types(&by_position), ["E0", "E1", "E2"]);
        // The commit times are the proposers' timestamps carried in the commands.
        let by_time = read_stream(&machine, "s", range.as_of(AsOf::Time(at(250))));
        assert_eq!(types(&by_time), ["E0", "E1"]);
        assert_eq!(by_time.events[1].recorded_at, at(200));
        let refused = query(
            &machine,
            EventsQuery::ReadAll(range.as_of(AsOf::Revision(0))),
        );
        assert!(matches!(
            refused,
            EventsOutput::Error(EventsError::Read(ReadError::RevisionBoundOnAll))
        ));
    }

    #[test]
    fn truncation_and_tombstones_replicate_as_commands() {
        let mut machine = NodeMachine::default();
        let events = (1..=4).map(|id| event("E", id)).collect();
        apply(&mut machine, append("s", ExpectedVersion::Any, events, 1));
        let truncated = apply(
            &mut machine,
            EventsCommand::Truncate {
                stream: "s".into(),
                before_revision: 2,
            },
        );
        assert_eq!(truncated, EventsOutput::Truncated { removed: 2 });
        let left = read_stream(&machine, "s", ReadRange::forwards());
        let revisions: Vec<u64> = left.events.iter().map(|event| event.revision).collect();
        assert_eq!(revisions, [2, 3]);
        assert!(matches!(
            query(&machine, EventsQuery::Stream("s".into())),
            EventsOutput::Stream(StreamInfo {
                revision: StreamRevision::Revision(3),
                truncated_before: 2,
                tombstoned: false,
                ..
            })
        ));
        let tombstoned = apply(
            &mut machine,
            EventsCommand::Tombstone {
                stream: "s".into(),
                expected: ExpectedVersion::Exact(3),
            },
        );
        assert_eq!(tombstoned, EventsOutput::Tombstoned);
        assert!(matches!(
            query(
                &machine,
                EventsQuery::ReadStream {
                    stream: "s".into(),
                    range: ReadRange::forwards()
                }
            ),
            EventsOutput::Error(EventsError::Read(ReadError::StreamDeleted { .. }))
        ));
        let refused = apply(
            &mut machine,
            append("s", ExpectedVersion::Any, vec![event("E", 9)], 2),
        );
        assert!(matches!(
            refused,
            EventsOutput::Error(EventsError::Command(CommandError::StreamDeleted { .. }))
        ));
        // Positions stay gapless: deleted events keep their place in $all.
        assert_eq!(machine.events().log().next_position(), 4);
        assert!(read_all(&machine, ReadRange::forwards()).events.is_empty());
    }

    #[test]
    fn snapshots_restore_an_equal_store_beside_the_strong_keys() {
        let mut machine = NodeMachine::default();
        let metadata = Metadata::caused_by(Uuid::from_u128(77), Uuid::from_u128(78));
        let first = event("A", 1).with_metadata(metadata.clone());
        apply(
            &mut machine,
            append("a", ExpectedVersion::Any, vec![first, event("B", 2)], 5),
        );
        apply(
            &mut machine,
            append("b", ExpectedVersion::Any, vec![event("C", 3)], 6),
        );
        apply(
            &mut machine,
            EventsCommand::Truncate {
                stream: "a".into(),
                before_revision: 1,
            },
        );
        apply(
            &mut machine,
            EventsCommand::Tombstone {
                stream: "b".into(),
                expected: ExpectedVersion::Any,
            },
        );
        apply(
            &mut machine,
            append("c", ExpectedVersion::Any, vec![event("D", 4)], 7),
        );
        let snapshot = machine.snapshot();
        let mut restored = NodeMachine::default();
        restored.restore(&snapshot).expect("snapshot restores");
        assert_eq!(restored, machine);
        assert_eq!(
            read_all(&restored, ReadRange::forwards()),
            read_all(&machine, ReadRange::forwards())
        );
        assert_eq!(restored.events().log().next_position(), 4);
        assert!(restored.events().log().is_tombstoned("b"));
        // Deleted ids are remembered: a retry of the truncated event is still a retry, not a new
        // write, after the restore.
        let retry = apply(
            &mut restored,
            append(
                "a",
                ExpectedVersion::Any,
                vec![event("A", 1).with_metadata(metadata)],
                8,
            ),
        );
        assert!(
            matches!(
                retry,
                EventsOutput::Appended(AppendResult {
                    duplicate: true,
                    ..
                })
            ),
            "{retry:?}"
        );
        // The restored log goes on from the same positions and commit times.
        let next = apply(
            &mut restored,
            append("c", ExpectedVersion::Exact(0), vec![event("E", 5)], 1),
        );
        assert!(matches!(
            next,
            EventsOutput::Appended(AppendResult {
                first_position: 4,
                ..
            })
        ));
        let last = read_stream(&restored, "c", ReadRange::backwards().max_count(1));
        assert!(last.events[0].recorded_at > at(7), "time never goes back");
    }

    #[test]
    fn replicas_fed_the_same_commands_agree_and_undecodable_bytes_change_nothing() {
        let commands: Vec<EventsCommand> = (0..40u128)
            .map(|index| match index % 7 {
                6 => EventsCommand::Truncate {
                    stream: format!("s{}", index % 3),
                    before_revision: (index / 7) as u64,
                },
                _ => append(
                    &format!("s{}", index % 3),
                    if index % 4 == 0 {
                        ExpectedVersion::Exact((index / 3) as u64)
                    } else {
                        ExpectedVersion::Any
                    },
                    vec![event("E", index % 30 + 1)],
                    1_000 - index as u64,
                ),
            })
            .collect();
        let run = || {
            let mut machine = NodeMachine::default();
            let outputs: Vec<Vec<u8>> = commands
                .iter()
                .map(|command| machine.apply(&MachineCommand::Events(command.clone()).encode()))
                .collect();
            (outputs, machine.snapshot())
        };
        assert_eq!(run(), run());

        let mut machine = NodeMachine::default();
        let garbage = machine.apply(&[9, 9, 9, 9]);
        assert!(matches!(
            MachineOutput::decode(&garbage),
            MachineOutput::Strong(_) | MachineOutput::Events(EventsOutput::Error(_))
        ));
        assert_eq!(machine, NodeMachine::default());
    }

    /// A random command over three streams and a small id space, so conflicts, retries,
    /// partial overlaps, truncations and tombstones all happen.
    fn arbitrary_command() -> impl proptest::strategy::Strategy<Value = EventsCommand> {
        use proptest::prelude::*;
        let stream = prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from);
        let expected = prop_oneof![
            Just(ExpectedVersion::Any),
            Just(ExpectedVersion::NoStream),
            Just(ExpectedVersion::StreamExists),
            (0u64..6).prop_map(ExpectedVersion::Exact),
        ];
        let ids = proptest::collection::vec(1u128..40, 1..4);
        prop_oneof![
            6 => (stream.clone(), expected.clone(), ids, 0u64..1_000).prop_map(
                |(stream, expected, ids, wall_ns)| {
                    let events = ids.into_iter().map(|id| event("E", id)).collect();
                    append(&stream, expected, events, wall_ns)
                }
            ),
            1 => (stream.clone(), 0u64..5).prop_map(|(stream, before_revision)| {
                EventsCommand::Truncate {
                    stream,
                    before_revision,
                }
            }),
            1 => (stream, expected).prop_map(|(stream, expected)| EventsCommand::Tombstone {
                stream,
                expected,
            }),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_history_snapshots_and_restores_into_a_replica_that_answers_alike(
            commands in proptest::collection::vec(arbitrary_command(), 1..60),
            split in 0usize..60,
        ) {
            // Goal: a replica restored from a snapshot taken at any point answers every later
            // command and read exactly like the replica that never stopped. Method: run a random
            // prefix, snapshot, restore into a fresh machine, run the rest on both.
            let split = split.min(commands.len());
            let mut original = NodeMachine::default();
            for command in &commands[..split] {
                apply(&mut original, command.clone());
            }
            let mut restored = NodeMachine::default();
            restored.restore(&original.snapshot()).expect("snapshot restores");
            proptest::prop_assert_eq!(&restored, &original);
            for command in &commands[split..] {
                let expected = apply(&mut original, command.clone());
                proptest::prop_assert_eq!(apply(&mut restored, command.clone()), expected);
            }
            let all = read_all(&original, ReadRange::forwards());
            proptest::prop_assert_eq!(&read_all(&restored, ReadRange::forwards()), &all);
            // Live events keep increasing positions; every position ever assigned is accounted.
            let positions: Vec<u64> = all.events.iter().map(|event| event.position).collect();
            proptest::prop_assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
            let log = original.events().log();
            proptest::prop_assert_eq!(all.events.len() as u64, log.live_event_count());
            proptest::prop_assert!(positions.iter().all(|&position| position < log.next_position()));
        }
    }

    #[test]
    fn reads_are_bounded_by_count_and_size() {
        let mut history = EventHistory::new();
        let big = EventData::binary("Big", vec![7; 3 * 1024 * 1024]).with_id(Uuid::from_u128(1));
        let big_too =
            EventData::binary("Big", vec![8; 3 * 1024 * 1024]).with_id(Uuid::from_u128(2));
        let big_three =
            EventData::binary("Big", vec![9; 3 * 1024 * 1024]).with_id(Uuid::from_u128(3));
        let output = history.execute(append(
            "big",
            ExpectedVersion::Any,
            vec![big, big_too, big_three],
            1,
        ));
        assert!(matches!(output, EventsOutput::Appended(_)));
        let EventsOutput::Events(slice) =
            history.query(&EventsQuery::ReadAll(ReadRange::forwards()))
        else {
            panic!("a read");
        };
        assert_eq!(slice.events.len(), 2, "8 MiB budget holds two 3 MiB events");
        assert_eq!(slice.next, Some(2));
        let range = ReadRange::forwards().max_count(usize::MAX);
        let EventsOutput::Events(slice) = history.query(&EventsQuery::ReadStream {
            stream: "big".into(),
            range: range.from(2),
        }) else {
            panic!("a read");
        };
        assert_eq!(slice.events.len(), 1);
        assert_eq!(slice.next, None);
    }
}

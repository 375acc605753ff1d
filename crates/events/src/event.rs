//! Events as written (`EventData`) and as recorded (`RecordedEvent`), and the words around them:
//! stream, revision, position, expected version.

use clock::HlcTimestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Content type of event data and metadata that is JSON (the default).
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Content type of opaque binary event data.
pub const CONTENT_TYPE_BINARY: &str = "application/octet-stream";

/// Longest stream name accepted, in bytes.
pub const STREAM_NAME_LENGTH_MAX: usize = 1024;

/// Longest event type accepted, in bytes.
pub const EVENT_TYPE_LENGTH_MAX: usize = 256;

/// Largest event (data plus metadata) accepted, in bytes; bounds every record on disk.
pub const EVENT_SIZE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Largest number of events accepted in one append.
pub const BATCH_EVENT_COUNT_MAX: usize = 10_000;

/// Metadata every event carries besides its data: who caused it and in which conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Id shared by every event of one business conversation (request, saga, workflow).
    pub correlation_id: Option<Uuid>,
    /// Id of the event or command that directly caused this event.
    pub causation_id: Option<Uuid>,
    /// Free-form user metadata (JSON by convention), stored and returned untouched.
    pub custom: Vec<u8>,
}

impl Metadata {
    /// Metadata for an event caused by `cause` inside the conversation `correlation`.
    pub fn caused_by(correlation: Uuid, cause: Uuid) -> Self {
        Self {
            correlation_id: Some(correlation),
            causation_id: Some(cause),
            custom: Vec::new(),
        }
    }
}

/// An event proposed for appending: what happened, not yet where or when it was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    /// Unique id; appending the same id twice writes it once (idempotent retries).
    pub event_id: Uuid,
    /// Name of what happened, in past tense (`ItemAdded`).
    pub event_type: String,
    /// Schema version of `data` for this event type, starting at 1; see [`crate::Upcasters`].
    pub schema_version: u32,
    /// Media type of `data`, usually [`CONTENT_TYPE_JSON`].
    pub content_type: String,
    /// The payload.
    pub data: Vec<u8>,
    /// Correlation, causation and custom metadata.
    pub metadata: Metadata,
}

impl EventData {
    /// A JSON event with a fresh random id and schema version 1.
    pub fn json<T: Serialize + ?Sized>(
        event_type: &str,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id: Uuid::new_v4(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            content_type: CONTENT_TYPE_JSON.to_owned(),
            data: serde_json::to_vec(data)?,
            metadata: Metadata::default(),
        })
    }

    /// An opaque binary event with a fresh random id and schema version 1.
    pub fn binary(event_type: &str, data: Vec<u8>) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            content_type: CONTENT_TYPE_BINARY.to_owned(),
            data,
            metadata: Metadata::default(),
        }
    }

    /// The same event with the given id (for deterministic ids and retries).
    #[must_use]
    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// The same event with the given metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The same event declared at another schema version.
    #[must_use]
    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }

    /// Bytes this event occupies in data and metadata, the figure bounded by [`EVENT_SIZE_MAX_BYTES`].
    pub fn size_bytes(&self) -> usize {
        self.data.len()
            + self.metadata.custom.len()
            + self.event_type.len()
            + self.content_type.len()
    }
}

/// An event as the store recorded it: its data plus where (stream, revision, position) and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The stream the event belongs to.
    pub stream: String,
    /// Its index inside the stream, from 0, gapless.
    pub revision: u64,
    /// Its index in the whole store (`$all`), from 0, gapless, assigned at commit.
    pub position: u64,
    /// When it was committed (hybrid logical clock; non-decreasing with position).
    pub recorded_at: HlcTimestamp,
    /// What the appender wrote.
    pub event: EventData,
}

impl RecordedEvent {
    /// The data parsed as JSON into `T`.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.event.data)
    }
}

/// The condition an append places on the stream's current revision, as KurrentDB defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check: append whatever the stream's state (except a tombstoned stream).
    Any,
    /// The stream must not exist (no event was ever appended to it).
    NoStream,
    /// The stream must exist (have at least one event, even if truncated since).
    StreamExists,
    /// The stream's last revision must be exactly this one.
    Exact(u64),
}

/// The current state of a stream's revisions, the "actual version" conflict errors report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StreamRevision {
    /// The stream has no event.
    NoStream,
    /// The stream's last event has this revision.
    Revision(u64),
}

impl StreamRevision {
    /// The revision the next appended event will get.
    pub fn next(self) -> u64 {
        match self {
            Self::NoStream => 0,
            Self::Revision(revision) => revision + 1,
        }
    }
}

impl std::fmt::Display for StreamRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoStream => write!(f, "no stream"),
            Self::Revision(revision) => write!(f, "revision {revision}"),
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => write!(f, "any"),
            Self::NoStream => write!(f, "no stream"),
            Self::StreamExists => write!(f, "stream exists"),
            Self::Exact(revision) => write!(f, "revision {revision}"),
        }
    }
}

/// What a successful append reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// Revision of the last event of the batch; pass it as `ExpectedVersion::Exact` next time.
    pub next_expected_revision: u64,
    /// Global position of the first event of the batch.
    pub first_position: u64,
    /// Global position of the last event of the batch.
    pub last_position: u64,
    /// True when every event was already written by an earlier append: nothing was written now.
    pub duplicate: bool,
}

/// Which way a read walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// From older to newer.
    Forwards,
    /// From newer to older.
    Backwards,
}

/// A point in history to read as of: later events are invisible (time travel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AsOf {
    /// Events of the stream up to and including this revision.
    Revision(u64),
    /// Events up to and including this global position.
    Position(u64),
    /// Events recorded at or before this time.
    Time(HlcTimestamp),
}

impl AsOf {
    /// Whether `event` belongs to history as of this point.
    pub fn includes(&self, event: &RecordedEvent) -> bool {
        match *self {
            Self::Revision(revision) => event.revision <= revision,
            Self::Position(position) => event.position <= position,
            Self::Time(time) => event.recorded_at <= time,
        }
    }
}

/// Whether a stream name belongs to the store itself (checkpoints, snapshots): it starts with `$`.
pub fn is_system_stream(stream: &str) -> bool {
    stream.starts_with('$')
}

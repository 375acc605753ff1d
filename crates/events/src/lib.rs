//! An event store: state derived from an immutable log ("truth through history").
//!
//! Streams are append-only sequences of events, numbered by **revision** from 0. Every committed
//! event also gets a gapless global **position** in `$all`. Appends carry an [`ExpectedVersion`]
//! (any, no stream, stream exists, exact revision) and fail with a conflict naming the actual
//! revision; retrying with the same event ids writes nothing twice. Reads go forwards or backwards
//! from a revision or position, and can travel back to a revision, a position or a time.
//! On top: catch-up [`Subscription`]s with checkpoints, [`Projection`]s that rebuild from zero and
//! continue, [`Aggregate`]s with snapshots and upcasting, truncation and tombstones.
//!
//! **The contract: an append returns `Ok` only once its events are durable, and readers see
//! durable events only, as a gapless prefix of positions — so whoever has read up to position `p`
//! and reads on from there never misses an event committed later.**
//!
//! Layers:
//! - [`EventLog`] — the pure, deterministic core: each command's outcome is a function of the log
//!   order alone, so a replicated log (Raft) can later drive it on every replica.
//! - [`Storage`] — where records live: [`FileStorage`] (segmented, checksummed, `fsync`ed) or
//!   [`MemoryStorage`].
//! - [`EventStore`] — the embedded driver: thread-safe, group commit, durable before acknowledged.
//!
//! ```
//! use events::{AsOf, EventData, EventStore, ExpectedVersion, ReadOptions, SubscriptionStart};
//!
//! let store = EventStore::in_memory();
//! let opened = EventData::json("CartCreated", &serde_json::json!({"customer": "ada"}))?;
//! store.append("cart-1", ExpectedVersion::NoStream, vec![opened])?;
//! let added = EventData::json("ItemAdded", &serde_json::json!({"sku": "tea", "quantity": 2}))?;
//! store.append("cart-1", ExpectedVersion::Exact(0), vec![added])?;
//!
//! // A stale writer is told the actual revision.
//! let stale = EventData::json("ItemAdded", &serde_json::json!({"sku": "cake", "quantity": 1}))?;
//! let conflict = store.append("cart-1", ExpectedVersion::Exact(0), vec![stale]).unwrap_err();
//! assert!(conflict.to_string().contains("actual revision 1"));
//!
//! // Time travel: the cart as of its first revision.
//! let then = store.read_stream("cart-1", ReadOptions::forwards().as_of(AsOf::Revision(0)))?;
//! assert_eq!(then.len(), 1);
//!
//! // A catch-up subscription sees history, then live events, by global position.
//! let mut subscription = store.subscribe_all(SubscriptionStart::Beginning);
//! assert_eq!(subscription.drain()?.len(), 2);
//! # Ok::<(), events::StoreError>(())
//! ```

mod aggregate;
mod event;
mod log;
mod projection;
mod storage;
mod store;
mod subscription;

pub use aggregate::{
    Aggregate, AggregateError, Loaded, Repository, SNAPSHOT_EVENT_TYPE, UpcastFn, Upcasters,
    decode_event, encode_event,
};
pub use event::{
    AppendResult, AsOf, BATCH_EVENT_COUNT_MAX, CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON, Direction,
    EVENT_SIZE_MAX_BYTES, EVENT_TYPE_LENGTH_MAX, EventData, ExpectedVersion, Metadata,
    RecordedEvent, STREAM_NAME_LENGTH_MAX, StreamRevision, is_system_stream,
};
pub use log::{Command, CommandError, EventLog, LogRecord, Outcome, ReadError, RestoreError};
pub use projection::{PROJECTION_STATE_EVENT_TYPE, Projection, ProjectionRunner};
pub use storage::{
    CompactionReport, Decoded, EventReader, EventSpan, FORMAT_VERSION, FileOptions, FileReader,
    FileStorage, MemoryStorage, RECORD_BODY_MAX_BYTES, RecoveryReport, Storage, StorageError,
    decode_record, encode_record,
};
pub use store::{EventStore, ReadOptions, StoreError, StoreOptions};
pub use subscription::{
    CHECKPOINT_EVENT_TYPE, Subscription, SubscriptionFilter, SubscriptionStart,
};

/// Event ids are UUIDs; re-exported so callers need not depend on `uuid` themselves.
pub use uuid::Uuid;

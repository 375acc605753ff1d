//! Aggregates (the command side of CQRS): state rebuilt from a stream's history or from a snapshot
//! plus the events after it, commands decided against that state and appended with an exact
//! expected version, snapshots every N events, and old event versions upcast on read.
//!
//! Domain events are serde enums tagged adjacently — `#[serde(tag = "type", content = "data")]` —
//! so the variant name becomes the stored event type and its fields the JSON data.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::event::{AsOf, EventData, ExpectedVersion, Metadata, RecordedEvent, StreamRevision};
use crate::store::{EventStore, ReadOptions, StoreError};

/// Event type of snapshot events.
pub const SNAPSHOT_EVENT_TYPE: &str = "$snapshot";

/// Longest chain of upcasts applied to one event (guards against a cycle).
const UPCAST_STEPS_MAX: u32 = 64;

/// Times a command is retried after losing a race with a concurrent writer.
const CONFLICT_RETRIES_MAX: usize = 3;

/// One upcast step: data at version `v` to data at version `v + 1`.
pub type UpcastFn = fn(Value) -> Value;

/// Registry of upcasters, keyed by event type and the version they read.
#[derive(Clone, Debug, Default)]
pub struct Upcasters {
    steps: BTreeMap<(String, u32), UpcastFn>,
}

impl Upcasters {
    /// No upcasters: every event type is at version 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `step`, turning `event_type` data of `from_version` into `from_version + 1`.
    #[must_use]
    pub fn register(mut self, event_type: &str, from_version: u32, step: UpcastFn) -> Self {
        self.steps
            .insert((event_type.to_owned(), from_version), step);
        self
    }

    /// The newest version of `event_type`: the one new events are written at.
    pub fn current_version(&self, event_type: &str) -> u32 {
        let mut version = 1;
        while version < UPCAST_STEPS_MAX
            && self.steps.contains_key(&(event_type.to_owned(), version))
        {
            version += 1;
        }
        version
    }

    /// `data` of `event_type` at `version`, upcast step by step to the newest version.
    pub fn upcast(&self, event_type: &str, version: u32, mut data: Value) -> Value {
        // Bounded so a registration mistake cannot loop forever.
        for version in (version..).take(UPCAST_STEPS_MAX as usize) {
            let Some(step) = self.steps.get(&(event_type.to_owned(), version)) else {
                break;
            };
            data = step(data);
        }
        data
    }
}

/// Errors of event (de)coding and of the repository.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AggregateError<E: std::error::Error + 'static> {
    /// The command was refused by the aggregate; nothing was written.
    #[error("command rejected: {0}")]
    Rejected(#[source] E),
    /// The store failed or refused the append.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event does not decode into the aggregate's event type, even after upcasting.
    #[error("event at position {position} ({event_type}) does not decode: {reason}")]
    Decode {
        /// Where the event is.
        position: u64,
        /// Its type.
        event_type: String,
        /// Why.
        reason: String,
    },
    /// Concurrent writers kept winning the race; give up after a few retries.
    #[error(
        "stream {stream:?} kept changing under the command; gave up after {CONFLICT_RETRIES_MAX} retries"
    )]
    TooMuchContention {
        /// The contended stream.
        stream: String,
    },
}

/// Encodes an adjacently tagged domain event into `EventData` (type = variant, data = fields).
pub fn encode_event<T: Serialize>(
    event: &T,
    upcasters: &Upcasters,
) -> Result<EventData, serde_json::Error> {
    let value = serde_json::to_value(event)?;
    let (event_type, data) = match value {
        Value::Object(mut object) => {
            let event_type = match object.remove("type") {
                Some(Value::String(event_type)) => event_type,
                _ => {
                    return Err(serde::ser::Error::custom(
                        "event must serialize with a string \"type\" tag",
                    ));
                }
            };
            (event_type, object.remove("data").unwrap_or(Value::Null))
        }
        _ => {
            return Err(serde::ser::Error::custom(
                "event must serialize as an adjacently tagged enum",
            ));
        }
    };
    let version = upcasters.current_version(&event_type);
    Ok(EventData::json(&event_type, &data)?.with_schema_version(version))
}

/// Decodes a recorded event into `T`, upcasting its data to the newest version first.
pub fn decode_event<T: DeserializeOwned>(
    event: &RecordedEvent,
    upcasters: &Upcasters,
) -> Result<T, String> {
    let data: Value =
        serde_json::from_slice(&event.event.data).map_err(|error| error.to_string())?;
    let data = upcasters.upcast(&event.event.event_type, event.event.schema_version, data);
    let mut object = serde_json::Map::new();
    object.insert("type".into(), Value::String(event.event.event_type.clone()));
    if !data.is_null() {
        object.insert("data".into(), data);
    }
    serde_json::from_value(Value::Object(object)).map_err(|error| error.to_string())
}

/// A consistency boundary: state folded from its own stream, deciding commands into new events.
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// Its events (an adjacently tagged serde enum).
    type Event: Serialize + DeserializeOwned;
    /// Its commands.
    type Command;
    /// Why a command is refused.
    type Error: std::error::Error + 'static;

    /// Stream name prefix; an aggregate `id` lives in stream `{CATEGORY}-{id}`.
    const CATEGORY: &'static str;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);

    /// Decides which events `command` causes, or refuses it; never changes the state itself.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// An aggregate's state and where in its stream it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded<A> {
    /// The folded state.
    pub state: A,
    /// Revision of the last event folded in.
    pub revision: StreamRevision,
    /// Whether loading started from a snapshot.
    pub from_snapshot: bool,
    /// Events read and folded after the snapshot (or from the start).
    pub events_replayed: u64,
}

#[derive(Serialize, Deserialize)]
struct Snapshot<A> {
    /// Revision of the last event included.
    revision: u64,
    state: A,
}

/// Loads and saves aggregates of type `A` in an event store.
#[derive(Clone, Debug)]
pub struct Repository<A> {
    store: EventStore,
    upcasters: Upcasters,
    snapshot_every_events: u64,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Repository<A> {
    /// A repository over `store`, snapshotting every 100 events.
    pub fn new(store: &EventStore) -> Self {
        Self {
            store: store.clone(),
            upcasters: Upcasters::new(),
            snapshot_every_events: 100,
            aggregate: PhantomData,
        }
    }

    /// Uses these upcasters when reading events.
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Takes a snapshot whenever a stream crosses a multiple of `events` (0 disables snapshots).
    #[must_use]
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_every_events = events;
        self
    }

    /// The stream holding aggregate `id`.
    pub fn stream(id: &str) -> String {
        format!("{}-{id}", A::CATEGORY)
    }

    fn snapshot_stream(id: &str) -> String {
        format!("$snapshot-{}", Self::stream(id))
    }

    fn fold(
        &self,
        mut loaded: Loaded<A>,
        events: &[std::sync::Arc<RecordedEvent>],
    ) -> Result<Loaded<A>, AggregateError<A::Error>> {
        for recorded in events {
            let event: A::Event = decode_event(recorded, &self.upcasters).map_err(|reason| {
                AggregateError::Decode {
                    position: recorded.position,
                    event_type: recorded.event.event_type.clone(),
                    reason,
                }
            })?;
            loaded.state.apply(&event);
            loaded.revision = StreamRevision::Revision(recorded.revision);
            loaded.events_replayed += 1;
        }
        Ok(loaded)
    }

    /// Rebuilds aggregate `id` from its whole history, ignoring snapshots.
    pub fn load_from_history(&self, id: &str) -> Result<Loaded<A>, AggregateError<A::Error>> {
        self.load_as_of(id, None)
    }

    /// Rebuilds aggregate `id` as it was at `as_of` (time travel), or now if `None`.
    pub fn load_as_of(
        &self,
        id: &str,
        as_of: Option<AsOf>,
    ) -> Result<Loaded<A>, AggregateError<A::Error>> {
        let mut options = ReadOptions::forwards();
        options.as_of = as_of;
        let events = self.store.read_stream(&Self::stream(id), options)?;
        let empty = Loaded {
            state: A::default(),
            revision: StreamRevision::NoStream,
            from_snapshot: false,
            events_replayed: 0,
        };
        self.fold(empty, &events)
    }

    /// Loads aggregate `id` from its latest snapshot plus the events after it (or its whole
    /// history if it has no snapshot, or the snapshot no longer decodes).
    pub fn load(&self, id: &str) -> Result<Loaded<A>, AggregateError<A::Error>> {
        let snapshot = self.store.read_stream(
            &Self::snapshot_stream(id),
            ReadOptions::backwards().max_count(1),
        )?;
        let Some(snapshot) = snapshot
            .first()
            .and_then(|event| event.data_as::<Snapshot<A>>().ok())
        else {
            return self.load_from_history(id);
        };
        let start = Loaded {
            state: snapshot.state,
            revision: StreamRevision::Revision(snapshot.revision),
            from_snapshot: true,
            events_replayed: 0,
        };
        let events = self.store.read_stream(
            &Self::stream(id),
            ReadOptions::forwards().from(snapshot.revision + 1),
        )?;
        self.fold(start, &events)
    }

    /// Decides `command` against the current state of aggregate `id` and appends the events with an
    /// exact expected version, retrying on a concurrent change. Returns the new state.
    pub fn execute(
        &self,
        id: &str,
        command: &A::Command,
        metadata: Metadata,
    ) -> Result<Loaded<A>, AggregateError<A::Error>> {
        let stream = Self::stream(id);
        for _ in 0..=CONFLICT_RETRIES_MAX {
            let loaded = self.load(id)?;
            let decided = loaded
                .state
                .decide(command)
                .map_err(AggregateError::Rejected)?;
            if decided.is_empty() {
                return Ok(loaded);
            }
            let mut events = Vec::with_capacity(decided.len());
            for event in &decided {
                events.push(
                    encode_event(event, &self.upcasters)
                        .map_err(StoreError::from)?
                        .with_metadata(metadata.clone()),
                );
            }
            let expected = match loaded.revision {
                StreamRevision::NoStream => ExpectedVersion::NoStream,
                StreamRevision::Revision(revision) => ExpectedVersion::Exact(revision),
            };
            match self.store.append(&stream, expected, events) {
                Ok(result) => {
                    let mut state = loaded.state;
                    decided.iter().for_each(|event| state.apply(event));
                    let after = Loaded {
                        state,
                        revision: StreamRevision::Revision(result.next_expected_revision),
                        from_snapshot: loaded.from_snapshot,
                        events_replayed: loaded.events_replayed,
                    };
                    self.maybe_snapshot(id, loaded.revision, &after)?;
                    return Ok(after);
                }
                Err(error) if error.is_wrong_expected_version() => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AggregateError::TooMuchContention { stream })
    }

    /// Snapshots when the stream crossed a multiple of the snapshot interval.
    fn maybe_snapshot(
        &self,
        id: &str,
        before: StreamRevision,
        after: &Loaded<A>,
    ) -> Result<(), StoreError> {
        let every = self.snapshot_every_events;
        let StreamRevision::Revision(revision) = after.revision else {
            return Ok(());
        };
        if every == 0 || before.next() / every == (revision + 1) / every {
            return Ok(());
        }
        self.snapshot(id, revision, &after.state)
    }

    /// Saves a snapshot of `state` at `revision` of aggregate `id` now (older ones are truncated).
    pub fn snapshot(&self, id: &str, revision: u64, state: &A) -> Result<(), StoreError> {
        let stream = Self::snapshot_stream(id);
        let event = EventData::json(SNAPSHOT_EVENT_TYPE, &Snapshot { revision, state })?;
        let appended = self
            .store
            .append(&stream, ExpectedVersion::Any, vec![event])?;
        self.store
            .truncate_before(&stream, appended.next_expected_revision)?;
        Ok(())
    }
}

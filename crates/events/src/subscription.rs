//! Catch-up subscriptions: read history from a checkpoint, then follow live appends, with no gap
//! and no duplicate between the two phases (both are reads by global position).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::event::{EventData, ExpectedVersion, RecordedEvent, is_system_stream};
use crate::store::{EventStore, ReadOptions, StoreError};

/// Events fetched per read while catching up.
const CATCH_UP_BATCH_EVENT_COUNT: usize = 512;

/// Event type of checkpoint events.
pub const CHECKPOINT_EVENT_TYPE: &str = "$checkpoint";

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionStart {
    /// From the first event.
    Beginning,
    /// After the event at this position (a checkpoint: the last position handled).
    After(u64),
    /// Only events committed from now on.
    End,
}

impl SubscriptionStart {
    /// Start after a saved checkpoint, or from the beginning if there is none.
    pub fn from_checkpoint(checkpoint: Option<u64>) -> Self {
        checkpoint.map_or(Self::Beginning, Self::After)
    }
}

/// Which events a subscription delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionFilter {
    /// Every event of user streams (system streams, starting with `$`, are skipped).
    All,
    /// Every event including system streams.
    AllWithSystem,
    /// Events of one stream only.
    Stream(String),
    /// Events of streams whose name starts with this prefix (a category, `cart-`).
    StreamPrefix(String),
}

impl SubscriptionFilter {
    fn accepts(&self, event: &RecordedEvent) -> bool {
        match self {
            Self::All => !is_system_stream(&event.stream),
            Self::AllWithSystem => true,
            Self::Stream(stream) => &event.stream == stream,
            Self::StreamPrefix(prefix) => event.stream.starts_with(prefix.as_str()),
        }
    }
}

/// A catch-up subscription over `$all`: call [`Subscription::next_timeout`] (blocking) or
/// [`Subscription::try_next`] (non-blocking) to receive events in position order.
#[derive(Debug)]
pub struct Subscription {
    store: EventStore,
    filter: SubscriptionFilter,
    /// Next position to read.
    cursor: u64,
    buffer: VecDeque<Arc<RecordedEvent>>,
    /// Position of the last event delivered (or skipped by the filter), for checkpointing.
    checkpoint: Option<u64>,
}

impl Subscription {
    /// A subscription to `store` from `start`, delivering what `filter` accepts.
    pub fn new(store: &EventStore, start: SubscriptionStart, filter: SubscriptionFilter) -> Self {
        let (cursor, checkpoint) = match start {
            SubscriptionStart::Beginning => (0, None),
            SubscriptionStart::After(position) => (position + 1, Some(position)),
            SubscriptionStart::End => {
                let head = store.head_position();
                (head, head.checked_sub(1))
            }
        };
        Self {
            store: store.clone(),
            filter,
            cursor,
            buffer: VecDeque::new(),
            checkpoint,
        }
    }

    /// Position of the last event handed out or filtered away: save it to resume later.
    pub fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    fn refill(&mut self) -> Result<(), StoreError> {
        let (batch, head) = self
            .store
            .read_all_page(self.cursor, CATCH_UP_BATCH_EVENT_COUNT)?;
        if let Some(last) = batch.last() {
            self.cursor = last.position + 1;
        } else {
            // Nothing visible at or after the cursor but deleted events: skip past them, up to the
            // head this very read saw (never past an event that became visible since).
            self.cursor = self.cursor.max(head);
        }
        self.buffer.extend(batch);
        Ok(())
    }

    /// The next event if one is already visible, without blocking.
    pub fn try_next(&mut self) -> Result<Option<Arc<RecordedEvent>>, StoreError> {
        // Bounded: each refill either returns events or moves the cursor to the head.
        loop {
            if self.buffer.is_empty() {
                self.refill()?;
            }
            let Some(event) = self.buffer.pop_front() else {
                return Ok(None);
            };
            // Filtered events count as handled, so checkpoints move past them.
            self.checkpoint = Some(event.position);
            if self.filter.accepts(&event) {
                return Ok(Some(event));
            }
        }
    }

    /// The next event, waiting up to `timeout` for one to be committed (live phase).
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Arc<RecordedEvent>>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.try_next()? {
                return Ok(Some(event));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.store.wait_for_position(self.cursor, deadline - now)?;
        }
    }

    /// Durably saves this subscription's checkpoint under `name` (no-op before the first event).
    pub fn save_checkpoint(&self, name: &str) -> Result<(), StoreError> {
        match self.checkpoint {
            Some(position) => self.store.save_checkpoint(name, position),
            None => Ok(()),
        }
    }

    /// Every event visible now, without blocking (the catch-up phase, or a poll of the live one).
    pub fn drain(&mut self) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        let mut out = Vec::new();
        while let Some(event) = self.try_next()? {
            out.push(event);
        }
        Ok(out)
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointData {
    position: u64,
}

fn checkpoint_stream(name: &str) -> String {
    format!("$checkpoint-{name}")
}

impl EventStore {
    /// Subscribes to `$all` (user streams) from `start`.
    pub fn subscribe_all(&self, start: SubscriptionStart) -> Subscription {
        Subscription::new(self, start, SubscriptionFilter::All)
    }

    /// Subscribes to one stream from `start` (positions are global).
    pub fn subscribe_stream(&self, stream: &str, start: SubscriptionStart) -> Subscription {
        Subscription::new(self, start, SubscriptionFilter::Stream(stream.to_owned()))
    }

    /// Resumes subscriber `name` after its saved checkpoint (or from the beginning), with `filter`.
    /// Call [`Subscription::save_checkpoint`] with the same name as it makes progress.
    pub fn subscribe_from_checkpoint(
        &self,
        name: &str,
        filter: SubscriptionFilter,
    ) -> Result<Subscription, StoreError> {
        let start = SubscriptionStart::from_checkpoint(self.load_checkpoint(name)?);
        Ok(Subscription::new(self, start, filter))
    }

    /// Durably records that subscriber `name` handled everything up to `position`; older
    /// checkpoints of the same subscriber are truncated.
    pub fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        let stream = checkpoint_stream(name);
        let event = EventData::json(CHECKPOINT_EVENT_TYPE, &CheckpointData { position })?;
        let appended = self.append(&stream, ExpectedVersion::Any, vec![event])?;
        self.truncate_before(&stream, appended.next_expected_revision)?;
        Ok(())
    }

    /// The last checkpoint saved by subscriber `name`, if any.
    pub fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let last = self.read_stream(
            &checkpoint_stream(name),
            ReadOptions::backwards().max_count(1),
        )?;
        match last.first() {
            Some(event) => Ok(Some(event.data_as::<CheckpointData>()?.position)),
            None => Ok(None),
        }
    }
}

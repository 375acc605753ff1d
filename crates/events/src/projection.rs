//! Projections: read models folded from events, resumable from a saved checkpoint and rebuildable
//! from zero.
//!
//! A projection's state and the position it reflects are saved together in one event of the
//! stream `$projection-<name>`, so after a restart the projection continues exactly where its
//! saved state ends: no event is applied twice or skipped.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::{EventData, ExpectedVersion, RecordedEvent};
use crate::store::{EventStore, ReadOptions, StoreError};
use crate::subscription::{Subscription, SubscriptionFilter, SubscriptionStart};

/// Event type of saved projection states.
pub const PROJECTION_STATE_EVENT_TYPE: &str = "$projection-state";

/// A read model built by folding events in position order.
pub trait Projection: Default + Serialize + DeserializeOwned {
    /// Which events the projection sees (default: every user stream).
    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::All
    }

    /// Folds one event into the read model. Must be deterministic: a rebuild from zero reaches the
    /// same state.
    fn apply(&mut self, event: &RecordedEvent);
}

#[derive(Serialize, Deserialize)]
struct SavedState<P> {
    /// Last position folded into `state`.
    position: Option<u64>,
    state: P,
}

/// Runs a [`Projection`] over a store: catch up, follow live, save checkpoints every N events.
#[derive(Debug)]
pub struct ProjectionRunner<P: Projection> {
    name: String,
    store: EventStore,
    projection: P,
    subscription: Subscription,
    checkpoint_every_events: u64,
    applied_since_checkpoint: u64,
}

fn state_stream(name: &str) -> String {
    format!("$projection-{name}")
}

impl<P: Projection> ProjectionRunner<P> {
    /// Resumes projection `name` from its last saved state, or starts it from zero.
    pub fn start(store: &EventStore, name: &str) -> Result<Self, StoreError> {
        let saved =
            store.read_stream(&state_stream(name), ReadOptions::backwards().max_count(1))?;
        let (projection, position) = match saved.first() {
            Some(event) => {
                let saved: SavedState<P> = event.data_as()?;
                (saved.state, saved.position)
            }
            None => (P::default(), None),
        };
        Ok(Self::from_state(
            store,
            name,
            projection,
            SubscriptionStart::from_checkpoint(position),
        ))
    }

    /// Starts projection `name` from zero, ignoring (and, at the next checkpoint, replacing) any
    /// saved state.
    pub fn rebuild(store: &EventStore, name: &str) -> Self {
        Self::from_state(store, name, P::default(), SubscriptionStart::Beginning)
    }

    fn from_state(store: &EventStore, name: &str, projection: P, start: SubscriptionStart) -> Self {
        let subscription = Subscription::new(store, start, projection.filter());
        Self {
            name: name.to_owned(),
            store: store.clone(),
            projection,
            subscription,
            checkpoint_every_events: 1000,
            applied_since_checkpoint: 0,
        }
    }

    /// Saves state every `events` events (default 1000).
    #[must_use]
    pub fn checkpoint_every(mut self, events: u64) -> Self {
        self.checkpoint_every_events = events.max(1);
        self
    }

    /// The read model as of [`Self::position`].
    pub fn state(&self) -> &P {
        &self.projection
    }

    /// The read model, consuming the runner.
    pub fn into_state(self) -> P {
        self.projection
    }

    /// Last position folded in (or skipped by the filter).
    pub fn position(&self) -> Option<u64> {
        self.subscription.checkpoint()
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), StoreError> {
        self.projection.apply(event);
        self.applied_since_checkpoint += 1;
        if self.applied_since_checkpoint >= self.checkpoint_every_events {
            self.save()?;
        }
        Ok(())
    }

    /// Folds every event visible now; returns how many were applied. Saves state at the end.
    pub fn catch_up(&mut self) -> Result<u64, StoreError> {
        let mut applied = 0;
        while let Some(event) = self.subscription.try_next()? {
            self.apply(&event)?;
            applied += 1;
        }
        if self.applied_since_checkpoint > 0 {
            self.save()?;
        }
        Ok(applied)
    }

    /// Follows live appends for `duration`, folding each as it commits; returns how many.
    pub fn follow_for(&mut self, duration: Duration) -> Result<u64, StoreError> {
        let deadline = Instant::now() + duration;
        let mut applied = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.subscription.next_timeout(left)? else {
                break;
            };
            self.apply(&event)?;
            applied += 1;
        }
        if self.applied_since_checkpoint > 0 {
            self.save()?;
        }
        Ok(applied)
    }

    /// Saves the state and its position now (truncating older saves).
    pub fn save(&mut self) -> Result<(), StoreError> {
        let stream = state_stream(&self.name);
        let saved = SavedState {
            position: self.position(),
            state: &self.projection,
        };
        let event = EventData::json(PROJECTION_STATE_EVENT_TYPE, &saved)?;
        let appended = self
            .store
            .append(&stream, ExpectedVersion::Any, vec![event])?;
        self.store
            .truncate_before(&stream, appended.next_expected_revision)?;
        self.applied_since_checkpoint = 0;
        Ok(())
    }
}

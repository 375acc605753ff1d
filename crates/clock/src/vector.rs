//! Vector clocks: one counter per replica, ordered by causality.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ReplicaId;

/// How two causal histories relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Causality {
    /// Everything the left side saw, the right side saw too, and more.
    Before,
    /// The right side happened before the left.
    After,
    /// Both saw exactly the same events.
    Equal,
    /// Each saw an event the other did not.
    Concurrent,
}

impl Causality {
    /// The relation seen from the other side.
    pub fn reverse(self) -> Self {
        match self {
            Causality::Before => Causality::After,
            Causality::After => Causality::Before,
            other => other,
        }
    }
}

/// Per-replica counters with zero entries omitted; the shared body of vector clocks and version
/// vectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Counters(BTreeMap<ReplicaId, u64>);

impl Counters {
    pub(crate) fn get(&self, replica: ReplicaId) -> u64 {
        self.0.get(&replica).copied().unwrap_or(0)
    }

    pub(crate) fn set(&mut self, replica: ReplicaId, counter: u64) {
        if counter == 0 {
            self.0.remove(&replica);
        } else {
            self.0.insert(replica, counter);
        }
    }

    pub(crate) fn increment(&mut self, replica: ReplicaId) -> u64 {
        let counter = self.0.entry(replica).or_insert(0);
        *counter += 1;
        *counter
    }

    pub(crate) fn merge(&mut self, other: &Counters) {
        for (&replica, &counter) in &other.0 {
            let mine = self.0.entry(replica).or_insert(0);
            *mine = (*mine).max(counter);
        }
    }

    pub(crate) fn remove(&mut self, replica: ReplicaId) -> u64 {
        self.0.remove(&replica).unwrap_or(0)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter().map(|(&replica, &counter)| (replica, counter))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Compares pointwise in one merged walk over both sorted maps.
    pub(crate) fn compare(&self, other: &Counters) -> Causality {
        let mut less = false; // some entry of self is below other's
        let mut greater = false; // some entry of self is above other's
        let mut left = self.0.iter().map(|(&k, &v)| (k, v)).peekable();
        let mut right = other.0.iter().map(|(&k, &v)| (k, v)).peekable();
        loop {
            let (a, b) = match (left.peek().copied(), right.peek().copied()) {
                (None, None) => break,
                (Some((_, a)), None) => {
                    left.next();
                    (a, 0)
                }
                (None, Some((_, b))) => {
                    right.next();
                    (0, b)
                }
                (Some((ka, a)), Some((kb, b))) => match ka.cmp(&kb) {
                    std::cmp::Ordering::Less => {
                        left.next();
                        (a, 0)
                    }
                    std::cmp::Ordering::Greater => {
                        right.next();
                        (0, b)
                    }
                    std::cmp::Ordering::Equal => {
                        left.next();
                        right.next();
                        (a, b)
                    }
                },
            };
            less |= a < b;
            greater |= a > b;
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }
}

/// A vector clock: the number of events of each replica that causally precede a point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorClock(pub(crate) Counters);

impl VectorClock {
    /// The clock before any event.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many of `replica`'s events this clock has seen.
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.0.get(replica)
    }

    /// Records a new local event at `replica`; returns its counter.
    pub fn increment(&mut self, replica: ReplicaId) -> u64 {
        self.0.increment(replica)
    }

    /// Takes in everything `other` has seen (pointwise maximum): the join of the two clocks.
    pub fn merge(&mut self, other: &VectorClock) {
        self.0.merge(&other.0)
    }

    /// Causal relation of `self` to `other`.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        self.0.compare(&other.0)
    }

    /// True when `self` happened before or equals `other`.
    pub fn le(&self, other: &VectorClock) -> bool {
        matches!(self.compare(other), Causality::Before | Causality::Equal)
    }

    /// The non-zero entries, ordered by replica.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter()
    }

    /// Number of replicas with a non-zero entry.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True before any event.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Drops a retired replica's entry (see the crdt docs for when this is safe).
    pub fn remove(&mut self, replica: ReplicaId) -> u64 {
        self.0.remove(replica)
    }
}

impl FromIterator<(ReplicaId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(entries: I) -> Self {
        let mut clock = VectorClock::new();
        for (replica, counter) in entries {
            let counter = counter.max(clock.get(replica));
            clock.0.set(replica, counter);
        }
        clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(entries: &[(ReplicaId, u64)]) -> VectorClock {
        entries.iter().copied().collect()
    }

    #[test]
    fn compare_covers_all_four_relations() {
        let a = clock(&[(1, 2), (2, 1)]);
        assert_eq!(a.compare(&a.clone()), Causality::Equal);
        assert_eq!(a.compare(&clock(&[(1, 2), (2, 2)])), Causality::Before);
        assert_eq!(a.compare(&clock(&[(1, 2)])), Causality::After);
        assert_eq!(a.compare(&clock(&[(1, 1), (2, 2)])), Causality::Concurrent);
        assert_eq!(a.compare(&clock(&[(3, 1)])), Causality::Concurrent);
    }

    #[test]
    fn zero_entries_are_absent() {
        let a = clock(&[(1, 0), (2, 3)]);
        assert_eq!(a.len(), 1);
        assert_eq!(a, clock(&[(2, 3)]));
    }
}

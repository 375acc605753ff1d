//! Dots and version vectors: naming events, and summarising which ones a replica has seen.

use serde::{Deserialize, Serialize};

use crate::ReplicaId;
use crate::vector::{Causality, Counters};

/// One event: the `counter`-th event (from 1) created by `replica`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that created the event.
    pub replica: ReplicaId,
    /// Its sequence number at that replica, starting at 1.
    pub counter: u64,
}

impl Dot {
    /// The dot of `replica`'s `counter`-th event.
    pub fn new(replica: ReplicaId, counter: u64) -> Self {
        Self { replica, counter }
    }
}

/// Which events a state has seen: for each replica, a contiguous prefix `1..=n` of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionVector(Counters);

impl VersionVector {
    /// A version vector that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many of `replica`'s events have been seen (all of `1..=get`).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.0.get(replica)
    }

    /// Sets the seen prefix of `replica` to `1..=counter` (0 removes the entry).
    pub fn set(&mut self, replica: ReplicaId, counter: u64) {
        self.0.set(replica, counter)
    }

    /// True when `dot` lies inside the seen prefix.
    pub fn contains(&self, dot: &Dot) -> bool {
        dot.counter <= self.get(dot.replica)
    }

    /// Creates the next event of `replica` and records it as seen.
    pub fn increment(&mut self, replica: ReplicaId) -> Dot {
        Dot::new(replica, self.0.increment(replica))
    }

    /// Takes in everything `other` has seen (pointwise maximum).
    pub fn merge(&mut self, other: &VersionVector) {
        self.0.merge(&other.0)
    }

    /// Causal relation of `self` to `other`.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        self.0.compare(&other.0)
    }

    /// True when everything `self` has seen, `other` has seen too.
    pub fn le(&self, other: &VersionVector) -> bool {
        matches!(self.compare(other), Causality::Before | Causality::Equal)
    }

    /// Forgets a retired replica; returns how many of its events had been seen.
    pub fn remove(&mut self, replica: ReplicaId) -> u64 {
        self.0.remove(replica)
    }

    /// The non-zero entries, ordered by replica.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter()
    }

    /// Number of replicas with a non-zero entry.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Total number of events covered (the sum of all entries).
    pub fn event_count(&self) -> u64 {
        self.0.iter().map(|(_, counter)| counter).sum()
    }

    /// The dots `self` has seen that `other` has not, per replica as a range `(replica, first, last)`.
    pub fn missing_from<'a>(
        &'a self,
        other: &'a VersionVector,
    ) -> impl Iterator<Item = (ReplicaId, u64, u64)> + 'a {
        self.iter().filter_map(move |(replica, counter)| {
            let theirs = other.get(replica);
            (counter > theirs).then_some((replica, theirs + 1, counter))
        })
    }
}

impl FromIterator<(ReplicaId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(entries: I) -> Self {
        let mut vector = VersionVector::new();
        for (replica, counter) in entries {
            let counter = counter.max(vector.get(replica));
            vector.set(replica, counter);
        }
        vector
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increment_names_the_next_event() {
        let mut vector = VersionVector::new();
        assert_eq!(vector.increment(7), Dot::new(7, 1));
        assert_eq!(vector.increment(7), Dot::new(7, 2));
        assert!(vector.contains(&Dot::new(7, 2)));
        assert!(!vector.contains(&Dot::new(7, 3)));
        assert!(!vector.contains(&Dot::new(8, 1)));
    }

    #[test]
    fn missing_from_lists_only_what_the_other_lacks() {
        let mine: VersionVector = [(1, 5), (2, 3), (3, 1)].into_iter().collect();
        let theirs: VersionVector = [(1, 5), (2, 1)].into_iter().collect();
        let missing: Vec<_> = mine.missing_from(&theirs).collect();
        assert_eq!(missing, vec![(2, 2, 3), (3, 1, 1)]);
    }
}

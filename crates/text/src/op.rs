//! Identifiers, versions and operations: what replicas exchange.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Identifier of a replica (an agent editing the document); the same as `clock::ReplicaId`.
pub type ReplicaId = clock::ReplicaId;

/// Identifier of one operation element: a character inserted, or one deletion.
///
/// Every replica numbers its own insertions and deletions 0, 1, 2, … (one number per
/// character inserted or deleted); the pair is unique across replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CharId {
    /// The replica that made the operation.
    pub replica: ReplicaId,
    /// Its sequence number at that replica, from 0.
    pub seq: u64,
}

/// A version: for each replica, how many of its operation elements are included.
///
/// Operations are applied in causal order, so a version is a contiguous prefix per replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    counts: BTreeMap<ReplicaId, u64>,
}

impl Version {
    /// The empty version (nothing seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// How many elements of `replica` are included.
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.counts.get(&replica).copied().unwrap_or(0)
    }

    /// Sets the count for `replica` (zero removes it).
    pub fn set(&mut self, replica: ReplicaId, count: u64) {
        if count == 0 {
            self.counts.remove(&replica);
        } else {
            self.counts.insert(replica, count);
        }
    }

    /// Whether the element `id` is included.
    pub fn contains(&self, id: CharId) -> bool {
        id.seq < self.get(id.replica)
    }

    /// Raises every count to at least `other`'s (the union of two versions).
    pub fn merge(&mut self, other: &Version) {
        for (&replica, &count) in &other.counts {
            let entry = self.counts.entry(replica).or_insert(0);
            *entry = (*entry).max(count);
        }
    }

    /// Whether everything in `other` is included in `self`.
    pub fn includes(&self, other: &Version) -> bool {
        other.counts.iter().all(|(&r, &c)| self.get(r) >= c)
    }

    /// (replica, count) pairs in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.counts.iter().map(|(&r, &c)| (r, c))
    }

    /// Whether nothing is included.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl From<&Version> for clock::VersionVector {
    /// The same counts: element `seq` of a replica is the clock crate's dot `seq + 1`.
    fn from(version: &Version) -> Self {
        let mut vector = clock::VersionVector::new();
        for (replica, count) in version.iter() {
            vector.set(replica, count);
        }
        vector
    }
}

impl From<&clock::VersionVector> for Version {
    /// The same counts, read back from a clock-crate version vector.
    fn from(vector: &clock::VersionVector) -> Self {
        let mut version = Version::new();
        for (replica, count) in vector.iter() {
            version.set(replica, count);
        }
        version
    }
}

impl Version {
    /// Whether this version includes the clock crate's `dot` (its counter starts at 1).
    pub fn contains_dot(&self, dot: &clock::Dot) -> bool {
        dot.counter >= 1 && dot.counter <= self.get(dot.replica)
    }

    /// Causal comparison with another version (before, after, equal or concurrent).
    pub fn compare(&self, other: &Version) -> clock::Causality {
        clock::VersionVector::from(self).compare(&clock::VersionVector::from(other))
    }
}

/// One operation on the document, as sent between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Insert `text`; its characters get identifiers `id`, `id+1`, …, each placed right after the
    /// previous one, the first right after `origin_left` and all before `origin_right` (as seen
    /// by the inserting replica). `None` is the document start (left) or end (right).
    ///
    /// Characters deleted before the operation was extracted travel as U+0000: the same batch of
    /// operations always carries their deletion too.
    Insert {
        /// Identifier of the first character.
        id: CharId,
        /// The character just before the insertion point, if any.
        origin_left: Option<CharId>,
        /// The character just after the insertion point, if any.
        origin_right: Option<CharId>,
        /// The characters inserted (non-empty).
        text: String,
    },
    /// Delete `len` characters: element `id + i` deletes character `target + i`, or
    /// `target - i` when `reversed` (a run of backspaces).
    Delete {
        /// Identifier of the first deletion element.
        id: CharId,
        /// Number of characters deleted (at least 1).
        len: u64,
        /// The character deleted by the first element.
        target: CharId,
        /// Whether successive elements delete successively earlier characters.
        reversed: bool,
    },
}

impl Op {
    /// Identifier of the operation's first element.
    pub fn id(&self) -> CharId {
        match self {
            Op::Insert { id, .. } | Op::Delete { id, .. } => *id,
        }
    }

    /// Number of elements (characters inserted or deleted).
    pub fn len(&self) -> u64 {
        match self {
            Op::Insert { text, .. } => text.chars().count() as u64,
            Op::Delete { len, .. } => *len,
        }
    }

    /// Whether the operation has no elements (never true for a valid operation).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A position that stays on the same character across concurrent edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Anchor {
    /// The character the cursor sits before; `None` is the document end.
    pub before: Option<CharId>,
}

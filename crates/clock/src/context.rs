//! Causal contexts: exact sets of dots, stored as a version vector plus out-of-order exceptions.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Causality, Dot, ReplicaId, VersionVector};

/// A set of dots kept compact: a contiguous prefix per replica (the version vector) plus a
/// "dot cloud" of dots received out of order. Delta-CRDTs use it to know which events a state
/// has seen, so a removal needs no per-element tombstone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CausalContext {
    prefix: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding exactly the prefixes of `vector`.
    pub fn from_version_vector(vector: VersionVector) -> Self {
        Self {
            prefix: vector,
            cloud: BTreeSet::new(),
        }
    }

    /// True when `dot` is in the set.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.prefix.contains(dot) || self.cloud.contains(dot)
    }

    /// Adds `dot`, folding the cloud into the prefix where it becomes contiguous.
    pub fn insert(&mut self, dot: Dot) {
        if self.contains(&dot) {
            return;
        }
        if dot.counter == self.prefix.get(dot.replica) + 1 {
            self.prefix.set(dot.replica, dot.counter);
            self.compact_replica(dot.replica);
        } else {
            self.cloud.insert(dot);
        }
    }

    /// Creates the next dot of `replica` (after every dot of it in the set) and adds it.
    pub fn next_dot(&mut self, replica: ReplicaId) -> Dot {
        let highest_in_cloud = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map_or(0, |dot| dot.counter);
        let dot = Dot::new(replica, self.prefix.get(replica).max(highest_in_cloud) + 1);
        self.insert(dot);
        dot
    }

    /// The highest counter of `replica` in the set (0 if none).
    pub fn max_counter(&self, replica: ReplicaId) -> u64 {
        let in_cloud = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map_or(0, |dot| dot.counter);
        self.prefix.get(replica).max(in_cloud)
    }

    /// Set union with `other`.
    pub fn merge(&mut self, other: &CausalContext) {
        self.prefix.merge(&other.prefix);
        for dot in &other.cloud {
            if !self.prefix.contains(dot) {
                self.cloud.insert(*dot);
            }
        }
        self.compact();
    }

    /// The contiguous prefixes.
    pub fn version_vector(&self) -> &VersionVector {
        &self.prefix
    }

    /// The out-of-order dots beyond the prefixes.
    pub fn dots(&self) -> impl Iterator<Item = &Dot> + '_ {
        self.cloud.iter()
    }

    /// Number of out-of-order dots held beside the prefixes (0 when fully compact).
    pub fn cloud_len(&self) -> usize {
        self.cloud.len()
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.prefix.is_empty() && self.cloud.is_empty()
    }

    /// Forgets every dot of a retired replica.
    pub fn remove_replica(&mut self, replica: ReplicaId) {
        self.prefix.remove(replica);
        self.cloud.retain(|dot| dot.replica != replica);
    }

    /// Set inclusion compared both ways, as for vector clocks.
    pub fn compare(&self, other: &CausalContext) -> Causality {
        let left = self.is_subset(other);
        let right = other.is_subset(self);
        match (left, right) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        }
    }

    /// True when every dot of `self` is in `other`.
    pub fn is_subset(&self, other: &CausalContext) -> bool {
        self.cloud.iter().all(|dot| other.contains(dot))
            && self.prefix.iter().all(|(replica, counter)| {
                let covered = other.prefix.get(replica);
                covered >= counter
                    || (covered + 1..=counter).all(|c| other.cloud.contains(&Dot::new(replica, c)))
            })
    }

    fn compact(&mut self) {
        let replicas: BTreeSet<ReplicaId> = self.cloud.iter().map(|dot| dot.replica).collect();
        for replica in replicas {
            self.compact_replica(replica);
        }
    }

    /// Moves `replica`'s cloud dots that now extend (or sit inside) the prefix into it.
    fn compact_replica(&mut self, replica: ReplicaId) {
        loop {
            let Some(&dot) = self
                .cloud
                .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
                .next()
            else {
                return;
            };
            let covered = self.prefix.get(replica);
            if dot.counter <= covered {
                self.cloud.remove(&dot);
            } else if dot.counter == covered + 1 {
                self.cloud.remove(&dot);
                self.prefix.set(replica, dot.counter);
            } else {
                return;
            }
        }
    }
}

impl FromIterator<Dot> for CausalContext {
    fn from_iter<I: IntoIterator<Item = Dot>>(dots: I) -> Self {
        let mut context = CausalContext::new();
        for dot in dots {
            context.insert(dot);
        }
        context
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_dots_fold_into_the_prefix() {
        let mut context = CausalContext::new();
        context.insert(Dot::new(1, 3));
        context.insert(Dot::new(1, 2));
        assert_eq!(context.version_vector().get(1), 0);
        assert_eq!(context.cloud_len(), 2);
        context.insert(Dot::new(1, 1));
        assert_eq!(context.version_vector().get(1), 3);
        assert_eq!(context.cloud_len(), 0);
    }

    #[test]
    fn next_dot_skips_past_the_cloud() {
        let mut context: CausalContext = [Dot::new(4, 1), Dot::new(4, 5)].into_iter().collect();
        assert_eq!(context.next_dot(4), Dot::new(4, 6));
        assert!(context.contains(&Dot::new(4, 6)));
        assert!(!context.contains(&Dot::new(4, 3)));
    }

    #[test]
    fn retiring_a_replica_forgets_all_its_dots() {
        let mut context: CausalContext = [Dot::new(1, 1), Dot::new(2, 1), Dot::new(2, 3)]
            .into_iter()
            .collect();
        context.remove_replica(2);
        assert!(!context.contains(&Dot::new(2, 1)));
        assert!(!context.contains(&Dot::new(2, 3)));
        assert!(context.contains(&Dot::new(1, 1)));
    }
}

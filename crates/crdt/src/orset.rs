//! The observed-remove set, add-wins: each element carries the dots of the adds that put it there;
//! a remove drops the dots it has observed, so a concurrent add (a dot it has not seen) survives.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use clock::{CausalContext, Dot, ReplicaId};
use serde::{Deserialize, Serialize};

use crate::Delta;
use crate::codec::{Decode, DecodeError, Encode, Reader, Writer, read_dot_runs, write_dot_runs};
use crate::dot_store::{Causal, DotSet, DotStore};

/// What an OR-Set element or a map key needs: ordered, cloneable, encodable.
pub trait Key: Ord + Clone + Debug + Encode + Decode {}

impl<T: Ord + Clone + Debug + Encode + Decode> Key for T {}

/// The dot store of an [`OrSet`]: element → dots of the adds that are still live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "E: Serialize", deserialize = "E: Deserialize<'de> + Ord"))]
pub struct SetStore<E> {
    pub(crate) entries: BTreeMap<E, DotSet>,
}

impl<E> Default for SetStore<E> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<E: Key> SetStore<E> {
    /// Elements present, with their live dots.
    pub fn iter(&self) -> impl Iterator<Item = (&E, &DotSet)> + '_ {
        self.entries.iter()
    }
}

impl<E: Key> DotStore for SetStore<E> {
    type Value = BTreeSet<E>;
    const TYPE_TAG: u8 = 10;
    const TYPE_NAME: &'static str = "OrSet";

    fn value(&self) -> BTreeSet<E> {
        self.entries
            .iter()
            .filter(|(_, dots)| !dots.is_empty())
            .map(|(element, _)| element.clone())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.entries.values().all(DotSet::is_empty)
    }

    fn join(&mut self, own_context: &CausalContext, other: &Self, other_context: &CausalContext) {
        // One ordered walk over both maps, then a bulk rebuild: O(n + m), no per-key search.
        let mut merged: Vec<(E, DotSet)> =
            Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let mut left = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut right = other.entries.iter().peekable();
        let empty = DotSet::default();
        loop {
            let order = match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            let (element, dots) = match order {
                std::cmp::Ordering::Less => {
                    let Some((element, mut dots)) = left.next() else {
                        break;
                    };
                    dots.join_with(own_context, &empty, other_context);
                    (element, dots)
                }
                std::cmp::Ordering::Greater => {
                    let Some((element, theirs)) = right.next() else {
                        break;
                    };
                    let mut dots = DotSet::default();
                    dots.join_with(own_context, theirs, other_context);
                    (element.clone(), dots)
                }
                std::cmp::Ordering::Equal => {
                    let (Some((element, mut dots)), Some((_, theirs))) =
                        (left.next(), right.next())
                    else {
                        break;
                    };
                    dots.join_with(own_context, theirs, other_context);
                    (element, dots)
                }
            };
            if !dots.is_empty() {
                merged.push((element, dots));
            }
        }
        self.entries = merged.into_iter().collect();
    }

    fn join_delta(
        &mut self,
        own_context: &CausalContext,
        delta: &Self,
        delta_context: &CausalContext,
    ) {
        for (element, theirs) in &delta.entries {
            match self.entries.get_mut(element) {
                Some(dots) => {
                    dots.join_with(own_context, theirs, delta_context);
                    if dots.is_empty() {
                        self.entries.remove(element);
                    }
                }
                None => {
                    let mut dots = DotSet::default();
                    dots.join_with(own_context, theirs, delta_context);
                    if !dots.is_empty() {
                        self.entries.insert(element.clone(), dots);
                    }
                }
            }
        }
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        for dots in self.entries.values() {
            for dot in dots.iter() {
                visit(*dot);
            }
        }
    }

    fn retain_dots(&mut self, keep: &mut dyn FnMut(&Dot) -> bool) {
        self.entries.retain(|_, dots| {
            dots.retain(|dot| keep(dot));
            !dots.is_empty()
        });
    }

    fn rewrite_dots(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot) {
        for dots in self.entries.values_mut() {
            dots.rewrite(rewrite);
        }
    }

    /// Layout: dots in (replica, counter) order as runs of consecutive counters, each run followed
    /// by the element of every dot in it; then the keys a delta removes (with no dot).
    fn encode_store(&self, writer: &mut Writer) {
        let mut pairs: Vec<(Dot, &E)> = Vec::with_capacity(self.entries.len());
        let mut removed: Vec<&E> = Vec::new();
        for (element, dots) in &self.entries {
            if dots.is_empty() {
                removed.push(element);
            }
            for dot in dots.iter() {
                pairs.push((*dot, element));
            }
        }
        pairs.sort_unstable_by_key(|pair| pair.0);
        let dots: Vec<Dot> = pairs.iter().map(|pair| pair.0).collect();
        write_dot_runs(writer, &dots, |writer, run| {
            for (_, element) in &pairs[run] {
                element.encode(writer);
            }
        });
        writer.varint(removed.len() as u64);
        for element in removed {
            element.encode(writer);
        }
    }

    fn decode_store(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut entries: BTreeMap<E, DotSet> = BTreeMap::new();
        read_dot_runs(reader, 1, |reader, dot| {
            let element = E::decode(reader)?;
            entries.entry(element).or_default().insert(dot);
            Ok(())
        })?;
        let removed = reader.count(1)?;
        for _ in 0..removed {
            let element = E::decode(reader)?;
            if entries.insert(element, DotSet::default()).is_some() {
                return Err(reader.invalid("element both present and removed"));
            }
        }
        Ok(Self { entries })
    }
}

/// An add-wins observed-remove set with no per-element tombstones.
pub type OrSet<E> = Causal<SetStore<E>>;

impl<E: Key> Causal<SetStore<E>> {
    /// Adds `element` on behalf of `replica` (a fresh dot replaces the dots it had).
    pub fn add(&mut self, replica: ReplicaId, element: E) -> Delta<Self> {
        let dot = self.context.next_dot(replica);
        let mut delta_context = CausalContext::new();
        delta_context.insert(dot);
        match self.store.entries.entry(element.clone()) {
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                for old in entry.get().iter() {
                    delta_context.insert(*old);
                }
                *entry.get_mut() = DotSet::single(dot);
            }
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(DotSet::single(dot));
            }
        }
        let mut delta_entries = BTreeMap::new();
        delta_entries.insert(element, DotSet::single(dot));
        Delta::new(Self::from_parts(
            SetStore {
                entries: delta_entries,
            },
            delta_context,
        ))
    }

    /// Removes `element` as observed here; a concurrent add elsewhere survives.
    pub fn remove(&mut self, element: &E) -> Delta<Self> {
        let Some(dots) = self.store.entries.remove(element) else {
            return Delta::new(Self::new());
        };
        let observed: CausalContext = dots.iter().copied().collect();
        let mut delta_entries = BTreeMap::new();
        delta_entries.insert(element.clone(), DotSet::default());
        Delta::new(Self::from_parts(
            SetStore {
                entries: delta_entries,
            },
            observed,
        ))
    }

    /// Removes every element observed here.
    pub fn clear(&mut self) -> Delta<Self> {
        let mut observed = CausalContext::new();
        self.store.for_each_dot(&mut |dot| observed.insert(dot));
        let entries = std::mem::take(&mut self.store.entries)
            .into_keys()
            .map(|element| (element, DotSet::default()))
            .collect();
        Delta::new(Self::from_parts(SetStore { entries }, observed))
    }

    /// True when `element` is in the set.
    pub fn contains(&self, element: &E) -> bool {
        self.store.entries.contains_key(element)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.store.entries.len()
    }

    /// True when the set has no element.
    pub fn is_empty(&self) -> bool {
        self.store.entries.is_empty()
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &E> + '_ {
        self.store.entries.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Crdt};

    #[test]
    fn remove_leaves_no_tombstone() {
        let mut set: OrSet<u64> = OrSet::new();
        for element in 0..100 {
            set.add(1, element);
        }
        for element in 0..100 {
            set.remove(&element);
        }
        assert!(set.is_empty());
        assert_eq!(set.context().cloud_len(), 0);
        assert_eq!(set.context().version_vector().len(), 1);
    }

    #[test]
    fn concurrent_add_wins_over_remove() {
        let mut alice: OrSet<u64> = OrSet::new();
        alice.add(1, 7);
        let mut bob = alice.clone();
        bob.remove(&7);
        alice.add(1, 7);
        let mut left = alice.clone();
        left.merge(&bob);
        bob.merge(&alice);
        assert_eq!(left, bob);
        assert!(left.contains(&7));
    }

    #[test]
    fn removal_delta_round_trips_with_its_removed_key() {
        let mut set: OrSet<String> = OrSet::new();
        set.add(3, "a".into());
        let delta = set.remove(&"a".into());
        let bytes = delta.to_bytes();
        assert_eq!(Delta::<OrSet<String>>::from_bytes(&bytes).unwrap(), delta);
        let full = set.to_bytes();
        assert_eq!(OrSet::<String>::from_bytes(&full).unwrap(), set);
    }
}

//! Grow-only and two-phase sets: the simplest set CRDTs, with tombstones by design.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::codec::{Codec, Decode, DecodeError, Encode, Reader, Writer};
use crate::orset::Key;
use crate::{Crdt, Delta};

/// A grow-only set: add only; merge is union.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(deserialize = "E: Deserialize<'de> + Ord"))]
pub struct GSet<E> {
    elements: BTreeSet<E>,
}

impl<E> Default for GSet<E> {
    fn default() -> Self {
        Self {
            elements: BTreeSet::new(),
        }
    }
}

impl<E: Key> GSet<E> {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element`.
    pub fn add(&mut self, element: E) -> Delta<Self> {
        self.elements.insert(element.clone());
        Delta::new(Self {
            elements: BTreeSet::from([element]),
        })
    }

    /// True when `element` was ever added.
    pub fn contains(&self, element: &E) -> bool {
        self.elements.contains(element)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

impl<E: Key> Crdt for GSet<E> {
    type Value = BTreeSet<E>;

    fn merge(&mut self, other: &Self) {
        for element in &other.elements {
            if !self.elements.contains(element) {
                self.elements.insert(element.clone());
            }
        }
    }

    fn value(&self) -> BTreeSet<E> {
        self.elements.clone()
    }
}

fn encode_sorted<E: Encode>(writer: &mut Writer, elements: &BTreeSet<E>) {
    writer.varint(elements.len() as u64);
    for element in elements {
        element.encode(writer);
    }
}

fn decode_sorted<E: Key>(reader: &mut Reader<'_>) -> Result<BTreeSet<E>, DecodeError> {
    let length = reader.count(1)?;
    let mut elements = BTreeSet::new();
    let mut previous: Option<E> = None;
    for _ in 0..length {
        let element = E::decode(reader)?;
        if previous
            .as_ref()
            .is_some_and(|previous| *previous >= element)
        {
            return Err(reader.invalid("set elements not strictly increasing"));
        }
        elements.insert(element.clone());
        previous = Some(element);
    }
    Ok(elements)
}

impl<E: Key> Encode for GSet<E> {
    fn encode(&self, writer: &mut Writer) {
        encode_sorted(writer, &self.elements);
    }
}

impl<E: Key> Decode for GSet<E> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            elements: decode_sorted(reader)?,
        })
    }
}

impl<E: Key> Codec for GSet<E> {
    const TYPE_TAG: u8 = 5;
    const TYPE_NAME: &'static str = "GSet";
}

/// A two-phase set: an element can be added and then removed, once; a removed element can never
/// come back (the remove set is a permanent tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(deserialize = "E: Deserialize<'de> + Ord"))]
pub struct TwoPhaseSet<E> {
    added: BTreeSet<E>,
    removed: BTreeSet<E>,
}

impl<E> Default for TwoPhaseSet<E> {
    fn default() -> Self {
        Self {
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }
}

impl<E: Key> TwoPhaseSet<E> {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` (no effect if it was ever removed).
    pub fn add(&mut self, element: E) -> Delta<Self> {
        self.added.insert(element.clone());
        Delta::new(Self {
            added: BTreeSet::from([element]),
            removed: BTreeSet::new(),
        })
    }

    /// Removes `element` forever.
    pub fn remove(&mut self, element: E) -> Delta<Self> {
        self.removed.insert(element.clone());
        Delta::new(Self {
            added: BTreeSet::new(),
            removed: BTreeSet::from([element]),
        })
    }

    /// True when `element` was added and never removed.
    pub fn contains(&self, element: &E) -> bool {
        self.added.contains(element) && !self.removed.contains(element)
    }
}

impl<E: Key> Crdt for TwoPhaseSet<E> {
    type Value = BTreeSet<E>;

    fn merge(&mut self, other: &Self) {
        self.added.extend(other.added.iter().cloned());
        self.removed.extend(other.removed.iter().cloned());
    }

    fn value(&self) -> BTreeSet<E> {
        self.added.difference(&self.removed).cloned().collect()
    }
}

impl<E: Key> Encode for TwoPhaseSet<E> {
    fn encode(&self, writer: &mut Writer) {
        encode_sorted(writer, &self.added);
        encode_sorted(writer, &self.removed);
    }
}

impl<E: Key> Decode for TwoPhaseSet<E> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            added: decode_sorted(reader)?,
            removed: decode_sorted(reader)?,
        })
    }
}

impl<E: Key> Codec for TwoPhaseSet<E> {
    const TYPE_TAG: u8 = 6;
    const TYPE_NAME: &'static str = "TwoPhaseSet";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_phase_set_remove_is_forever() {
        let mut set = TwoPhaseSet::new();
        set.add(1u64);
        set.remove(1);
        set.add(1);
        assert!(!set.contains(&1));
        let mut other = TwoPhaseSet::new();
        other.add(2u64);
        set.merge(&other);
        assert_eq!(set.value(), BTreeSet::from([2]));
    }
}

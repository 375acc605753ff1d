//! Maps: the observed-remove map of nested causal CRDTs, and the last-writer-wins map.

use std::collections::BTreeMap;

use clock::{CausalContext, Dot, HlcTimestamp, ReplicaId};
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, Decode, DecodeError, Encode, Reader, Writer};
use crate::dot_store::{Causal, DotStore};
use crate::orset::Key;
use crate::register::LwwRegister;
use crate::{Crdt, Delta};

/// The dot store of an [`OrMap`]: key → the nested CRDT's dot store. All nested values share the
/// map's causal context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, S: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, S: Deserialize<'de>"
))]
pub struct MapStore<K, S> {
    entries: BTreeMap<K, S>,
}

impl<K, S> Default for MapStore<K, S> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Key, S: DotStore> DotStore for MapStore<K, S> {
    type Value = BTreeMap<K, S::Value>;
    const TYPE_TAG: u8 = 40;
    const TYPE_NAME: &'static str = "OrMap";

    fn value(&self) -> Self::Value {
        self.entries
            .iter()
            .filter(|(_, store)| !store.is_empty())
            .map(|(key, store)| (key.clone(), store.value()))
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.entries.values().all(DotStore::is_empty)
    }

    fn join(&mut self, own_context: &CausalContext, other: &Self, other_context: &CausalContext) {
        let mut merged: Vec<(K, S)> = Vec::with_capacity(self.entries.len());
        let mut left = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut right = other.entries.iter().peekable();
        let bottom = S::default();
        loop {
            let order = match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            let joined = match order {
                std::cmp::Ordering::Less => left.next().map(|(key, mut store)| {
                    store.join(own_context, &bottom, other_context);
                    (key, store)
                }),
                std::cmp::Ordering::Greater => right.next().map(|(key, theirs)| {
                    let mut store = S::default();
                    store.join(own_context, theirs, other_context);
                    (key.clone(), store)
                }),
                std::cmp::Ordering::Equal => match (left.next(), right.next()) {
                    (Some((key, mut store)), Some((_, theirs))) => {
                        store.join(own_context, theirs, other_context);
                        Some((key, store))
                    }
                    _ => None,
                },
            };
            if let Some((key, store)) = joined
                && !store.is_empty()
            {
                merged.push((key, store));
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
        for (key, theirs) in &delta.entries {
            let mut store = self.entries.remove(key).unwrap_or_default();
            store.join(own_context, theirs, delta_context);
            if !store.is_empty() {
                self.entries.insert(key.clone(), store);
            }
        }
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        for store in self.entries.values() {
            store.for_each_dot(visit);
        }
    }

    fn retain_dots(&mut self, keep: &mut dyn FnMut(&Dot) -> bool) {
        self.entries.retain(|_, store| {
            store.retain_dots(keep);
            !store.is_empty()
        });
    }

    fn rewrite_dots(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot) {
        for store in self.entries.values_mut() {
            store.rewrite_dots(rewrite);
        }
    }

    fn encode_store(&self, writer: &mut Writer) {
        writer.varint(self.entries.len() as u64);
        for (key, store) in &self.entries {
            key.encode(writer);
            store.encode_store(writer);
        }
    }

    fn decode_store(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let length = reader.count(2)?;
        let mut entries = BTreeMap::new();
        let mut previous: Option<K> = None;
        for _ in 0..length {
            let key = K::decode(reader)?;
            if previous.as_ref().is_some_and(|previous| *previous >= key) {
                return Err(reader.invalid("map keys not strictly increasing"));
            }
            let store = S::decode_store(reader)?;
            previous = Some(key.clone());
            entries.insert(key, store);
        }
        Ok(Self { entries })
    }
}

/// An observed-remove map whose values are causal CRDTs ([`crate::OrSet`]'s store,
/// [`crate::CausalCounter`]'s, a register's, a flag's, another map's). Updates to a key are
/// add-wins against a concurrent remove, and a removed key's value *resets*: when the key comes
/// back through a concurrent update, only the effects the remover had not seen remain.
pub type OrMap<K, S> = Causal<MapStore<K, S>>;

impl<K: Key, S: DotStore> Causal<MapStore<K, S>> {
    /// Runs a mutator of the nested CRDT at `key` (created empty if absent) and returns the map
    /// delta carrying the nested delta.
    pub fn update(
        &mut self,
        key: K,
        mutate: impl FnOnce(&mut Causal<S>) -> Delta<Causal<S>>,
    ) -> Delta<Self> {
        let context = std::mem::take(&mut self.context);
        let store = self.store.entries.remove(&key).unwrap_or_default();
        let mut nested = Causal::from_parts(store, context);
        let inner = mutate(&mut nested).into_state();
        self.context = nested.context;
        if !nested.store.is_empty() {
            self.store.entries.insert(key.clone(), nested.store);
        }
        let mut delta_entries = BTreeMap::new();
        delta_entries.insert(key, inner.store);
        Delta::new(Self::from_parts(
            MapStore {
                entries: delta_entries,
            },
            inner.context,
        ))
    }

    /// Removes `key`, resetting its value for everything observed here.
    pub fn remove(&mut self, key: &K) -> Delta<Self> {
        let Some(store) = self.store.entries.remove(key) else {
            return Delta::new(Self::new());
        };
        let mut observed = CausalContext::new();
        store.for_each_dot(&mut |dot| observed.insert(dot));
        let mut delta_entries = BTreeMap::new();
        delta_entries.insert(key.clone(), S::default());
        Delta::new(Self::from_parts(
            MapStore {
                entries: delta_entries,
            },
            observed,
        ))
    }

    /// The nested store at `key`.
    pub fn get(&self, key: &K) -> Option<&S> {
        self.store.entries.get(key)
    }

    /// The value of the nested CRDT at `key`.
    pub fn value_at(&self, key: &K) -> Option<S::Value> {
        self.get(key).map(DotStore::value)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.store.entries.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.store.entries.len()
    }

    /// True when the map has no key.
    pub fn is_empty(&self) -> bool {
        self.store.entries.is_empty()
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.store.entries.keys()
    }
}

/// A last-writer-wins map: each key is an [`LwwRegister`]; a remove writes a timestamped
/// tombstone so an older concurrent put cannot resurrect the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, V: Deserialize<'de>"
))]
pub struct LwwMap<K, V> {
    entries: BTreeMap<K, LwwRegister<Option<V>>>,
}

impl<K, V> Default for LwwMap<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Key, V: Key> LwwMap<K, V> {
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `key`.
    pub fn insert(
        &mut self,
        key: K,
        value: V,
        timestamp: HlcTimestamp,
        replica: ReplicaId,
    ) -> Delta<Self> {
        self.write(key, Some(value), timestamp, replica)
    }

    /// Removes `key` (a tombstone write).
    pub fn remove(&mut self, key: K, timestamp: HlcTimestamp, replica: ReplicaId) -> Delta<Self> {
        self.write(key, None, timestamp, replica)
    }

    /// The value at `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries
            .get(key)
            .and_then(|register| register.get()?.as_ref())
    }

    fn write(
        &mut self,
        key: K,
        value: Option<V>,
        timestamp: HlcTimestamp,
        replica: ReplicaId,
    ) -> Delta<Self> {
        let delta = self
            .entries
            .entry(key.clone())
            .or_default()
            .set(value, timestamp, replica)
            .into_state();
        Delta::new(Self {
            entries: BTreeMap::from([(key, delta)]),
        })
    }
}

impl<K: Key, V: Key> Crdt for LwwMap<K, V> {
    type Value = BTreeMap<K, V>;

    fn merge(&mut self, other: &Self) {
        for (key, theirs) in &other.entries {
            match self.entries.get_mut(key) {
                Some(mine) => mine.merge(theirs),
                None => {
                    self.entries.insert(key.clone(), theirs.clone());
                }
            }
        }
    }

    fn value(&self) -> BTreeMap<K, V> {
        self.entries
            .iter()
            .filter_map(|(key, register)| Some((key.clone(), register.get()?.clone()?)))
            .collect()
    }
}

impl<K: Key, V: Key> Encode for LwwMap<K, V> {
    fn encode(&self, writer: &mut Writer) {
        writer.varint(self.entries.len() as u64);
        for (key, register) in &self.entries {
            key.encode(writer);
            register.encode(writer);
        }
    }
}

impl<K: Key, V: Key> Decode for LwwMap<K, V> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let length = reader.count(2)?;
        let mut entries = BTreeMap::new();
        let mut previous: Option<K> = None;
        for _ in 0..length {
            let key = K::decode(reader)?;
            if previous.as_ref().is_some_and(|previous| *previous >= key) {
                return Err(reader.invalid("map keys not strictly increasing"));
            }
            let register = LwwRegister::decode(reader)?;
            previous = Some(key.clone());
            entries.insert(key, register);
        }
        Ok(Self { entries })
    }
}

impl<K: Key, V: Key> Codec for LwwMap<K, V> {
    const TYPE_TAG: u8 = 41;
    const TYPE_NAME: &'static str = "LwwMap";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CausalCounter, CounterStore};

    #[test]
    fn removed_key_resets_its_counter_but_keeps_concurrent_increments() {
        let mut alice: OrMap<String, CounterStore> = OrMap::new();
        alice.update("milk".into(), |counter: &mut CausalCounter| {
            counter.add(1, 2)
        });
        let mut bob = alice.clone();
        alice.remove(&"milk".into());
        bob.update("milk".into(), |counter: &mut CausalCounter| {
            counter.add(2, 1)
        });
        alice.merge(&bob);
        bob.merge(&alice);
        assert_eq!(alice, bob);
        assert_eq!(alice.value_at(&"milk".into()), Some(1));
    }

    #[test]
    fn lww_map_tombstone_beats_older_put() {
        let mut a: LwwMap<String, u64> = LwwMap::new();
        let mut b = a.clone();
        a.insert("k".into(), 1, HlcTimestamp::new(5, 0), 1);
        b.remove("k".into(), HlcTimestamp::new(6, 0), 2);
        a.merge(&b);
        assert_eq!(a.get(&"k".into()), None);
    }
}

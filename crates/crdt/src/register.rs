//! Registers: last-writer-wins under hybrid logical clock timestamps, and multi-value.

use std::collections::BTreeSet;

use clock::{CausalContext, Dot, HlcTimestamp, ReplicaId};
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, Decode, DecodeError, Encode, Reader, Writer};
use crate::dot_store::{Causal, DotFun, DotStore};
use crate::orset::Key;
use crate::{Crdt, Delta};

/// A last-writer-wins register: the write with the greatest (timestamp, replica) wins. Timestamps
/// come from the writer's [`clock::HybridClock`], so "later" tracks physical time within the clock
/// offset bound and never contradicts causality; the replica id breaks exact ties.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LwwRegister<V> {
    write: Option<(HlcTimestamp, ReplicaId, V)>,
}

impl<V> Default for LwwRegister<V> {
    fn default() -> Self {
        Self { write: None }
    }
}

impl<V: Key> LwwRegister<V> {
    /// An unwritten register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `timestamp` on behalf of `replica`. A write older than the current one is
    /// lost, as it would be at any replica that saw both.
    pub fn set(&mut self, value: V, timestamp: HlcTimestamp, replica: ReplicaId) -> Delta<Self> {
        let delta = Self {
            write: Some((timestamp, replica, value)),
        };
        self.merge(&delta);
        Delta::new(delta)
    }

    /// The current value, if written.
    pub fn get(&self) -> Option<&V> {
        self.write.as_ref().map(|write| &write.2)
    }

    /// Timestamp and writer of the winning write.
    pub fn stamp(&self) -> Option<(HlcTimestamp, ReplicaId)> {
        self.write.as_ref().map(|write| (write.0, write.1))
    }
}

impl<V: Key> Crdt for LwwRegister<V> {
    type Value = Option<V>;

    fn merge(&mut self, other: &Self) {
        // The value takes part in the order only so that two forged writes with one stamp still
        // merge commutatively; real replicas never reuse a (timestamp, replica) pair.
        if other.write > self.write {
            self.write.clone_from(&other.write);
        }
    }

    fn value(&self) -> Option<V> {
        self.get().cloned()
    }
}

impl<V: Key> Encode for LwwRegister<V> {
    fn encode(&self, writer: &mut Writer) {
        match &self.write {
            None => writer.byte(0),
            Some((timestamp, replica, value)) => {
                writer.byte(1);
                timestamp.encode(writer);
                writer.varint(*replica);
                value.encode(writer);
            }
        }
    }
}

impl<V: Key> Decode for LwwRegister<V> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.byte()? {
            0 => Ok(Self::new()),
            1 => {
                let timestamp = HlcTimestamp::decode(reader)?;
                let replica = reader.varint()?;
                let value = V::decode(reader)?;
                Ok(Self {
                    write: Some((timestamp, replica, value)),
                })
            }
            _ => Err(reader.invalid("register presence byte is neither 0 nor 1")),
        }
    }
}

impl<V: Key> Codec for LwwRegister<V> {
    const TYPE_TAG: u8 = 20;
    const TYPE_NAME: &'static str = "LwwRegister";
}

/// The dot store of an [`MvRegister`]: the concurrent writes, each under its dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MvStore<V> {
    writes: DotFun<V>,
}

impl<V> Default for MvStore<V> {
    fn default() -> Self {
        Self {
            writes: DotFun::default(),
        }
    }
}

impl<V: Key> DotStore for MvStore<V> {
    type Value = BTreeSet<V>;
    const TYPE_TAG: u8 = 21;
    const TYPE_NAME: &'static str = "MvRegister";

    fn value(&self) -> BTreeSet<V> {
        self.writes.iter().map(|(_, value)| value.clone()).collect()
    }

    fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    fn join(&mut self, own_context: &CausalContext, other: &Self, other_context: &CausalContext) {
        self.writes
            .join_with(own_context, &other.writes, other_context);
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.writes.for_each(visit);
    }

    fn retain_dots(&mut self, keep: &mut dyn FnMut(&Dot) -> bool) {
        self.writes.retain(keep);
    }

    fn rewrite_dots(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot) {
        self.writes.rewrite(rewrite);
    }

    fn encode_store(&self, writer: &mut Writer) {
        self.writes.encode_entries(writer);
    }

    fn decode_store(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            writes: DotFun::decode_entries(reader)?,
        })
    }
}

/// A multi-value register: a write replaces every value it has seen; concurrent writes are all
/// kept until a later write supersedes them.
pub type MvRegister<V> = Causal<MvStore<V>>;

impl<V: Key> Causal<MvStore<V>> {
    /// Writes `value` on behalf of `replica`, superseding every value observed here.
    pub fn write(&mut self, replica: ReplicaId, value: V) -> Delta<Self> {
        let mut delta_context = CausalContext::new();
        self.store
            .writes
            .for_each(&mut |dot| delta_context.insert(dot));
        let dot = self.context.next_dot(replica);
        delta_context.insert(dot);
        self.store.writes = DotFun::single(dot, value.clone());
        let delta_store = MvStore {
            writes: DotFun::single(dot, value),
        };
        Delta::new(Self::from_parts(delta_store, delta_context))
    }

    /// Clears the register of every value observed here.
    pub fn clear(&mut self) -> Delta<Self> {
        let mut observed = CausalContext::new();
        self.store.writes.for_each(&mut |dot| observed.insert(dot));
        self.store.writes = DotFun::default();
        Delta::new(Self::from_parts(MvStore::default(), observed))
    }

    /// The concurrent values, in order.
    pub fn values(&self) -> Vec<&V> {
        self.store.writes.iter().map(|(_, value)| value).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_hlc_timestamp_wins_and_replica_breaks_ties() {
        let mut a = LwwRegister::new();
        let mut b = LwwRegister::new();
        a.set("old".to_string(), HlcTimestamp::new(10, 0), 1);
        b.set("new".to_string(), HlcTimestamp::new(10, 1), 0);
        a.merge(&b);
        assert_eq!(a.get().map(String::as_str), Some("new"));
        let mut c = LwwRegister::new();
        c.set("tie".to_string(), HlcTimestamp::new(10, 1), 2);
        a.merge(&c);
        assert_eq!(a.get().map(String::as_str), Some("tie"));
    }

    #[test]
    fn mv_register_keeps_concurrent_writes_until_superseded() {
        let mut a: MvRegister<u64> = MvRegister::new();
        let mut b = a.clone();
        a.write(1, 10);
        b.write(2, 20);
        a.merge(&b);
        assert_eq!(a.value(), BTreeSet::from([10, 20]));
        a.write(1, 30);
        b.merge(&a);
        assert_eq!(b.value(), BTreeSet::from([30]));
    }
}

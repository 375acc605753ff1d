//! Counters: grow-only (GCounter), positive-negative (PNCounter), and a causal counter that an
//! OR-Map can reset.

use clock::{CausalContext, Dot, ReplicaId};
use serde::{Deserialize, Serialize};

use crate::codec::{
    Codec, Decode, DecodeError, Encode, Reader, Writer, read_replica_gap, write_replica_gap,
};
use crate::dot_store::{Causal, DotFun, DotStore};
use crate::{Crdt, Delta};

/// A grow-only counter: one monotone count per replica; the value is their sum.
///
/// Stored as a vector sorted by replica id so a merge is one linear walk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GCounter {
    counts: Vec<(ReplicaId, u64)>,
}

impl GCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The count contributed by `replica`.
    pub fn count_of(&self, replica: ReplicaId) -> u64 {
        match self.counts.binary_search_by_key(&replica, |entry| entry.0) {
            Ok(index) => self.counts[index].1,
            Err(_) => 0,
        }
    }

    /// Adds `amount` on behalf of `replica`; the delta carries only that replica's new count.
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) -> Delta<Self> {
        let count = match self.counts.binary_search_by_key(&replica, |entry| entry.0) {
            Ok(index) => {
                let entry = &mut self.counts[index].1;
                *entry = entry.saturating_add(amount);
                *entry
            }
            Err(index) => {
                self.counts.insert(index, (replica, amount));
                amount
            }
        };
        if count == 0 {
            self.counts.retain(|entry| entry.1 != 0);
            return Delta::new(Self::new());
        }
        Delta::new(Self {
            counts: vec![(replica, count)],
        })
    }

    /// Number of replicas with a non-zero count.
    pub fn replica_count(&self) -> usize {
        self.counts.len()
    }

    /// Iterates `(replica, count)` in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.counts.iter().copied()
    }
}

impl Crdt for GCounter {
    type Value = u64;

    fn merge(&mut self, other: &Self) {
        if other.counts.is_empty() {
            return;
        }
        // Fast path: the same replicas in the same order, the common case between peers.
        if self.counts.len() == other.counts.len()
            && self
                .counts
                .iter()
                .zip(&other.counts)
                .all(|(a, b)| a.0 == b.0)
        {
            for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
                mine.1 = mine.1.max(theirs.1);
            }
            return;
        }
        let mut merged = Vec::with_capacity(self.counts.len() + other.counts.len());
        let (mut left, mut right) = (0, 0);
        while left < self.counts.len() && right < other.counts.len() {
            let (a, b) = (self.counts[left], other.counts[right]);
            match a.0.cmp(&b.0) {
                std::cmp::Ordering::Less => {
                    merged.push(a);
                    left += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(b);
                    right += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push((a.0, a.1.max(b.1)));
                    left += 1;
                    right += 1;
                }
            }
        }
        merged.extend_from_slice(&self.counts[left..]);
        merged.extend_from_slice(&other.counts[right..]);
        self.counts = merged;
    }

    fn value(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, entry| sum.saturating_add(entry.1))
    }
}

/// Layout: `[mode]` then either `0`: `[entry count] ([replica gap] [count])*`, or `1` for dense
/// replica ids: `[run count] ([replica gap] [run length - 1] [count]*)*` where a run is a stretch
/// of consecutive replica ids. The writer picks whichever is shorter.
impl Encode for GCounter {
    fn encode(&self, writer: &mut Writer) {
        let runs = self.id_runs();
        if runs.len() * 2 > self.counts.len() {
            writer.byte(0);
            writer.varint(self.counts.len() as u64);
            let mut previous = None;
            for &(replica, count) in &self.counts {
                write_replica_gap(writer, previous, replica);
                writer.varint(count);
                previous = Some(replica);
            }
            return;
        }
        writer.byte(1);
        writer.varint(runs.len() as u64);
        let mut previous = None;
        for run in runs {
            let entries = &self.counts[run];
            write_replica_gap(writer, previous, entries[0].0);
            writer.varint((entries.len() - 1) as u64);
            for &(_, count) in entries {
                writer.varint(count);
            }
            previous = entries.last().map(|entry| entry.0);
        }
    }
}

impl GCounter {
    /// Index ranges of maximal stretches of consecutive replica ids.
    fn id_runs(&self) -> Vec<std::ops::Range<usize>> {
        let mut runs = Vec::new();
        let mut start = 0;
        for index in 1..=self.counts.len() {
            if index == self.counts.len() || self.counts[index].0 != self.counts[index - 1].0 + 1 {
                runs.push(start..index);
                start = index;
            }
        }
        runs
    }
}

impl Decode for GCounter {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut counts = Vec::new();
        let mut previous = None;
        let mut push = |reader: &mut Reader<'_>, replica: ReplicaId| -> Result<(), DecodeError> {
            let count = reader.varint()?;
            if count == 0 {
                return Err(reader.invalid("zero count stored"));
            }
            counts.push((replica, count));
            Ok(())
        };
        match reader.byte()? {
            0 => {
                let length = reader.count(2)?;
                for _ in 0..length {
                    let replica = read_replica_gap(reader, previous)?;
                    push(reader, replica)?;
                    previous = Some(replica);
                }
            }
            1 => {
                let runs = reader.count(3)?;
                for _ in 0..runs {
                    let first = read_replica_gap(reader, previous)?;
                    let extra = reader.varint()?;
                    if extra >= reader.remaining() as u64 {
                        return Err(reader.invalid("run longer than the input"));
                    }
                    let last = first
                        .checked_add(extra)
                        .ok_or_else(|| reader.invalid("replica id overflows"))?;
                    for replica in first..=last {
                        push(reader, replica)?;
                    }
                    previous = Some(last);
                }
            }
            _ => return Err(reader.invalid("unknown counter layout")),
        }
        Ok(Self { counts })
    }
}

impl Codec for GCounter {
    const TYPE_TAG: u8 = 1;
    const TYPE_NAME: &'static str = "GCounter";
}

/// A counter that goes up and down: two grow-only counters, increments minus decrements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PnCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` (possibly negative) on behalf of `replica`.
    pub fn add(&mut self, replica: ReplicaId, amount: i64) -> Delta<Self> {
        let mut delta = Self::new();
        if amount >= 0 {
            delta.increments = self
                .increments
                .increment(replica, amount.unsigned_abs())
                .into_state();
        } else {
            delta.decrements = self
                .decrements
                .increment(replica, amount.unsigned_abs())
                .into_state();
        }
        Delta::new(delta)
    }
}

impl Crdt for PnCounter {
    type Value = i64;

    fn merge(&mut self, other: &Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }

    fn value(&self) -> i64 {
        let up = i128::from(self.increments.value());
        let down = i128::from(self.decrements.value());
        (up - down).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

impl Encode for PnCounter {
    fn encode(&self, writer: &mut Writer) {
        self.increments.encode(writer);
        self.decrements.encode(writer);
    }
}

impl Decode for PnCounter {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            increments: GCounter::decode(reader)?,
            decrements: GCounter::decode(reader)?,
        })
    }
}

impl Codec for PnCounter {
    const TYPE_TAG: u8 = 2;
    const TYPE_NAME: &'static str = "PNCounter";
}

/// The dot store of a [`CausalCounter`]: each replica's running total under its latest dot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CounterStore {
    totals: DotFun<i64>,
}

impl DotStore for CounterStore {
    type Value = i64;
    const TYPE_TAG: u8 = 3;
    const TYPE_NAME: &'static str = "CausalCounter";

    fn value(&self) -> i64 {
        self.totals
            .iter()
            .fold(0i64, |sum, (_, value)| sum.saturating_add(*value))
    }

    fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    fn join(&mut self, own_context: &CausalContext, other: &Self, other_context: &CausalContext) {
        self.totals
            .join_with(own_context, &other.totals, other_context);
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.totals.for_each(visit);
    }

    fn retain_dots(&mut self, keep: &mut dyn FnMut(&Dot) -> bool) {
        self.totals.retain(keep);
    }

    fn rewrite_dots(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot) {
        self.totals.rewrite(rewrite);
    }

    fn encode_store(&self, writer: &mut Writer) {
        self.totals.encode_entries(writer);
    }

    fn decode_store(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            totals: DotFun::decode_entries(reader)?,
        })
    }
}

/// A PN-counter built from dots, so a container can reset it: each replica keeps one dot holding
/// its running total, and a reset removes the dots it has observed. A replica that increments
/// concurrently with a reset re-issues its *whole running total* under a fresh dot, so its own
/// earlier contributions survive that reset while every other observed contribution is gone. One
/// dot per replica keeps the metadata bounded. Use it as an [`crate::OrMap`] value.
pub type CausalCounter = Causal<CounterStore>;

impl Causal<CounterStore> {
    /// Adds `amount` on behalf of `replica`, replacing the replica's previous dot(s).
    pub fn add(&mut self, replica: ReplicaId, amount: i64) -> Delta<Self> {
        let mut total = amount;
        let mut replaced = Vec::new();
        for (dot, value) in self.store.totals.iter() {
            if dot.replica == replica {
                total = total.saturating_add(*value);
                replaced.push(*dot);
            }
        }
        let dot = self.context.next_dot(replica);
        let mut delta_context: CausalContext = replaced.iter().copied().collect();
        delta_context.insert(dot);
        self.store
            .totals
            .retain(|candidate| candidate.replica != replica);
        self.store.totals.insert(dot, total);
        let delta_store = CounterStore {
            totals: DotFun::single(dot, total),
        };
        Delta::new(Self::from_parts(delta_store, delta_context))
    }

    /// Resets the counter to zero for everything this replica has observed.
    pub fn reset(&mut self) -> Delta<Self> {
        let mut observed = CausalContext::new();
        self.store.for_each_dot(&mut |dot| observed.insert(dot));
        self.store = CounterStore::default();
        Delta::new(Self::from_parts(CounterStore::default(), observed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcounter_merge_takes_the_maximum_per_replica() {
        let mut a = GCounter::new();
        let mut b = GCounter::new();
        a.increment(1, 5);
        b.increment(1, 3);
        b.increment(2, 4);
        a.merge(&b);
        assert_eq!(a.value(), 9);
        assert_eq!(a.count_of(1), 5);
    }

    #[test]
    fn dense_replica_ids_encode_as_runs_and_sparse_ones_as_gaps() {
        let mut dense = GCounter::new();
        let mut sparse = GCounter::new();
        for replica in 0..1_000u64 {
            dense.increment(replica, 3);
            sparse.increment(replica.wrapping_mul(0x9e37_79b9_7f4a_7c15), 3);
        }
        let dense_bytes = dense.to_bytes();
        assert!(dense_bytes.len() < 1_010, "{}", dense_bytes.len());
        assert_eq!(GCounter::from_bytes(&dense_bytes).unwrap(), dense);
        let sparse_bytes = sparse.to_bytes();
        assert_eq!(sparse_bytes[2], 0, "sparse ids use the gap layout");
        assert_eq!(GCounter::from_bytes(&sparse_bytes).unwrap(), sparse);
    }

    #[test]
    fn pn_counter_goes_below_zero() {
        let mut counter = PnCounter::new();
        counter.add(1, 2);
        counter.add(2, -5);
        assert_eq!(counter.value(), -3);
    }

    #[test]
    fn causal_counter_reset_keeps_concurrent_increments() {
        let mut alice = CausalCounter::default();
        alice.add(1, 3);
        let mut bob = alice.clone();
        alice.reset();
        bob.add(2, 1);
        alice.merge(&bob);
        bob.merge(&alice);
        assert_eq!(alice.value(), 1);
        assert_eq!(bob.value(), 1);
    }
}

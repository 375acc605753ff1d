//! Dot stores and the causal CRDT wrapper (Almeida, Shoker, Baquero, "Delta State Replicated Data
//! Types", 2018).
//!
//! A causal CRDT is a *dot store* (which events are still live, and what they carry) paired with a
//! *causal context* (every event the replica has seen). Joining two of them keeps a dot if both
//! sides have it, or if one side has it and the other has never seen it; a dot one side has seen
//! but no longer holds was removed, so it goes. That is why a removal needs no tombstone: the
//! context, which compresses to one counter per replica, remembers the removal.

use std::collections::BTreeSet;
use std::fmt::Debug;

use clock::{CausalContext, Dot, ReplicaId};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use thiserror::Error;

use crate::codec::{Codec, Decode, DecodeError, Encode, Reader, Writer};
use crate::codec::{decode_replica_set, encode_replica_set};
use crate::{Crdt, Delta};

/// The state part of a causal CRDT: live dots and their payloads.
pub trait DotStore: Clone + Default + PartialEq + Debug {
    /// What a reader sees.
    type Value;
    /// Type tag of the top-level encoding of `Causal<Self>`.
    const TYPE_TAG: u8;
    /// Human-readable name of `Causal<Self>`, for errors.
    const TYPE_NAME: &'static str;

    /// The value a reader sees.
    fn value(&self) -> Self::Value;

    /// True when the store holds no dot (the bottom element).
    fn is_empty(&self) -> bool;

    /// Joins `other` into `self`; `own_context` and `other_context` are the two causal contexts.
    fn join(&mut self, own_context: &CausalContext, other: &Self, other_context: &CausalContext);

    /// Joins a delta whose context only covers dots of entries it mentions; maps override this to
    /// touch only the mentioned keys instead of walking the whole store.
    fn join_delta(
        &mut self,
        own_context: &CausalContext,
        delta: &Self,
        delta_context: &CausalContext,
    ) {
        self.join(own_context, delta, delta_context);
    }

    /// Calls `visit` with every live dot.
    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot));

    /// Keeps only dots for which `keep` is true, dropping entries left empty.
    fn retain_dots(&mut self, keep: &mut dyn FnMut(&Dot) -> bool);

    /// Replaces every dot by `rewrite(dot)` (used to move a retired replica's dots to a successor).
    fn rewrite_dots(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot);

    /// Writes the store.
    fn encode_store(&self, writer: &mut Writer);

    /// Reads a store; entries may be empty (deltas mention keys they remove).
    fn decode_store(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A set of dots, sorted; usually one, so it lives inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DotSet {
    dots: SmallVec<[Dot; 1]>,
}

impl DotSet {
    /// A set holding exactly `dot`.
    pub fn single(dot: Dot) -> Self {
        let mut dots = SmallVec::new();
        dots.push(dot);
        Self { dots }
    }

    /// The dots, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Dot> + '_ {
        self.dots.iter()
    }

    /// Number of dots.
    pub fn len(&self) -> usize {
        self.dots.len()
    }

    /// True when the set has no dot.
    pub fn is_empty(&self) -> bool {
        self.dots.is_empty()
    }

    /// Adds a dot, keeping order.
    pub fn insert(&mut self, dot: Dot) {
        if let Err(index) = self.dots.binary_search(&dot) {
            self.dots.insert(index, dot);
        }
    }

    /// Keeps only dots for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Dot) -> bool) {
        self.dots.retain(|dot| keep(dot));
    }

    /// Joins two dot sets under their contexts: (s ∩ s') ∪ (s \ c') ∪ (s' \ c).
    pub fn join_with(
        &mut self,
        own_context: &CausalContext,
        other: &DotSet,
        other_context: &CausalContext,
    ) {
        if self.dots == other.dots {
            return;
        }
        let mut joined: SmallVec<[Dot; 1]> = SmallVec::new();
        let (mut left, mut right) = (0, 0);
        while left < self.dots.len() || right < other.dots.len() {
            let a = self.dots.get(left).copied();
            let b = other.dots.get(right).copied();
            match (a, b) {
                (Some(a), Some(b)) if a == b => {
                    joined.push(a);
                    left += 1;
                    right += 1;
                }
                (Some(a), b) if b.is_none_or(|b| a < b) => {
                    if !other_context.contains(&a) {
                        joined.push(a);
                    }
                    left += 1;
                }
                (_, Some(b)) => {
                    if !own_context.contains(&b) {
                        joined.push(b);
                    }
                    right += 1;
                }
                _ => break,
            }
        }
        self.dots = joined;
    }

    fn sort(&mut self) {
        self.dots.sort_unstable();
        self.dots.dedup();
    }
}

impl FromIterator<Dot> for DotSet {
    fn from_iter<I: IntoIterator<Item = Dot>>(dots: I) -> Self {
        let mut set = Self {
            dots: dots.into_iter().collect(),
        };
        set.sort();
        set
    }
}

/// A function from dots to values, sorted by dot (the store of a multi-value register).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DotFun<V> {
    entries: SmallVec<[(Dot, V); 1]>,
}

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        Self {
            entries: SmallVec::new(),
        }
    }
}

impl<V: Clone> DotFun<V> {
    /// A function with one entry.
    pub fn single(dot: Dot, value: V) -> Self {
        let mut entries = SmallVec::new();
        entries.push((dot, value));
        Self { entries }
    }

    /// The entries, sorted by dot.
    pub fn iter(&self) -> impl Iterator<Item = (&Dot, &V)> + '_ {
        self.entries.iter().map(|(dot, value)| (dot, value))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets the value of `dot`.
    pub fn insert(&mut self, dot: Dot, value: V) {
        match self.entries.binary_search_by(|entry| entry.0.cmp(&dot)) {
            Ok(index) => self.entries[index].1 = value,
            Err(index) => self.entries.insert(index, (dot, value)),
        }
    }

    /// Keeps only entries whose dot satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&Dot) -> bool) {
        self.entries.retain(|entry| keep(&entry.0));
    }

    /// Joins as a dot set, carrying values along.
    pub fn join_with(
        &mut self,
        own_context: &CausalContext,
        other: &DotFun<V>,
        other_context: &CausalContext,
    ) {
        let mut joined: SmallVec<[(Dot, V); 1]> = SmallVec::new();
        let (mut left, mut right) = (0, 0);
        while left < self.entries.len() || right < other.entries.len() {
            let a = self.entries.get(left).map(|entry| entry.0);
            let b = other.entries.get(right).map(|entry| entry.0);
            match (a, b) {
                (Some(a), Some(b)) if a == b => {
                    joined.push(self.entries[left].clone());
                    left += 1;
                    right += 1;
                }
                (Some(a), b) if b.is_none_or(|b| a < b) => {
                    if !other_context.contains(&a) {
                        joined.push(self.entries[left].clone());
                    }
                    left += 1;
                }
                (_, Some(b)) => {
                    if !own_context.contains(&b) {
                        joined.push(other.entries[right].clone());
                    }
                    right += 1;
                }
                _ => break,
            }
        }
        self.entries = joined;
    }

    pub(crate) fn for_each(&self, visit: &mut dyn FnMut(Dot)) {
        for (dot, _) in &self.entries {
            visit(*dot);
        }
    }

    pub(crate) fn rewrite(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot) {
        for entry in &mut self.entries {
            entry.0 = rewrite(entry.0);
        }
        self.entries.sort_by_key(|entry| entry.0);
    }
}

impl<V: Encode> DotFun<V> {
    pub(crate) fn encode_entries(&self, writer: &mut Writer) {
        writer.varint(self.entries.len() as u64);
        for (dot, value) in &self.entries {
            dot.encode(writer);
            value.encode(writer);
        }
    }
}

impl<V: Decode + Clone> DotFun<V> {
    pub(crate) fn decode_entries(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let length = reader.count(3)?;
        let mut entries: SmallVec<[(Dot, V); 1]> = SmallVec::with_capacity(length);
        for _ in 0..length {
            let dot = Dot::decode(reader)?;
            let value = V::decode(reader)?;
            if entries.last().is_some_and(|last| last.0 >= dot) {
                return Err(reader.invalid("dots not strictly increasing"));
            }
            entries.push((dot, value));
        }
        Ok(Self { entries })
    }
}

impl Encode for DotSet {
    fn encode(&self, writer: &mut Writer) {
        writer.varint(self.dots.len() as u64);
        for dot in &self.dots {
            dot.encode(writer);
        }
    }
}

impl Decode for DotSet {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let length = reader.count(2)?;
        let mut dots: SmallVec<[Dot; 1]> = SmallVec::with_capacity(length);
        for _ in 0..length {
            let dot = Dot::decode(reader)?;
            if dots.last().is_some_and(|last| *last >= dot) {
                return Err(reader.invalid("dots not strictly increasing"));
            }
            dots.push(dot);
        }
        Ok(Self { dots })
    }
}

impl DotSet {
    pub(crate) fn rewrite(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot) {
        for dot in &mut self.dots {
            *dot = rewrite(*dot);
        }
        self.sort();
    }
}

/// A causal CRDT: a dot store, the causal context of everything seen, and the replicas retired
/// from the context (see [`Causal::retire`] and `docs/crdt.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Causal<S> {
    pub(crate) store: S,
    pub(crate) context: CausalContext,
    pub(crate) retired: BTreeSet<ReplicaId>,
}

/// Why a retired replica cannot be pruned yet. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PruneError {
    /// The store still holds live dots of the replica: move them to a successor first.
    #[error("replica {replica} still has {live_dots} live dots; move them with retire first")]
    LiveDots {
        /// The replica asked to be pruned.
        replica: ReplicaId,
        /// How many of its dots are live.
        live_dots: usize,
    },
}

impl<S: DotStore> Causal<S> {
    /// The empty CRDT.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn from_parts(store: S, context: CausalContext) -> Self {
        Self {
            store,
            context,
            retired: BTreeSet::new(),
        }
    }

    /// The dot store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The causal context: every dot this replica has seen.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Replicas pruned from the context; their dots are ignored if they ever arrive again.
    pub fn retired(&self) -> &BTreeSet<ReplicaId> {
        &self.retired
    }

    /// Step 1 of retiring `replica`: `successor` re-issues every live dot of `replica` under its
    /// own fresh dots, so no live state depends on the retired replica's dots any more. Run it on
    /// exactly one replica (the successor), after it has received the retired replica's final
    /// state, and disseminate the delta like any other.
    pub fn retire(&mut self, replica: ReplicaId, successor: ReplicaId) -> Delta<Self> {
        let mut delta_context = CausalContext::new();
        let mut moved = false;
        let context = &mut self.context;
        self.store.rewrite_dots(&mut |dot| {
            if dot.replica != replica {
                return dot;
            }
            moved = true;
            delta_context.insert(dot);
            let fresh = context.next_dot(successor);
            delta_context.insert(fresh);
            fresh
        });
        let mut delta_store = self.store.clone();
        if moved {
            delta_store.retain_dots(&mut |dot| delta_context.contains(dot));
        } else {
            delta_store = S::default();
        }
        Delta::new(Self::from_parts(delta_store, delta_context))
    }

    /// Step 2: forget `replica` in the causal context. Call it only once every live replica has
    /// seen all of the retired replica's dots and the successor's [`Causal::retire`] delta (the
    /// membership layer decides; see `docs/crdt.md`). The retired id is remembered so stale
    /// messages carrying its dots are ignored; merges spread the pruning to other replicas.
    pub fn prune(&mut self, replica: ReplicaId) -> Result<(), PruneError> {
        let mut live_dots = 0;
        self.store.for_each_dot(&mut |dot| {
            if dot.replica == replica {
                live_dots += 1;
            }
        });
        if live_dots > 0 {
            return Err(PruneError::LiveDots { replica, live_dots });
        }
        self.context.remove_replica(replica);
        self.retired.insert(replica);
        Ok(())
    }

    /// Drops dots of retired replicas from a state received from a replica that may not know.
    fn without_retired<'a>(&self, other: &'a Self) -> std::borrow::Cow<'a, Self> {
        let touches_retired = |state: &Self| {
            self.retired.iter().any(|replica| {
                state.context.version_vector().get(*replica) > 0
                    || state.context.dots().any(|dot| dot.replica == *replica)
            })
        };
        if self.retired.is_empty() || !touches_retired(other) {
            return std::borrow::Cow::Borrowed(other);
        }
        let mut cleaned = other.clone();
        let retired = &self.retired;
        cleaned
            .store
            .retain_dots(&mut |dot| !retired.contains(&dot.replica));
        for replica in retired {
            cleaned.context.remove_replica(*replica);
        }
        std::borrow::Cow::Owned(cleaned)
    }

    fn absorb_retired(&mut self, other: &Self) {
        for replica in other.retired.difference(&self.retired.clone()) {
            // The other side pruned only once everyone (us included) had seen the successor's
            // re-issue, so our store holds no live dot of it either: prune is safe here.
            let retired = *replica;
            self.store.retain_dots(&mut |dot| dot.replica != retired);
            self.context.remove_replica(retired);
            self.retired.insert(retired);
        }
    }

    fn join_from(&mut self, other: &Self, keyed: bool) {
        self.absorb_retired(other);
        let other = self.without_retired(other);
        if keyed {
            self.store
                .join_delta(&self.context, &other.store, &other.context);
        } else {
            self.store.join(&self.context, &other.store, &other.context);
        }
        self.context.merge(&other.context);
    }

    /// Checks the invariants a decoded value must satisfy.
    fn validate(&self, reader: &Reader<'_>) -> Result<(), DecodeError> {
        let mut dots = Vec::new();
        self.store.for_each_dot(&mut |dot| dots.push(dot));
        dots.sort_unstable();
        if dots.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(reader.invalid("the same dot is live in two places"));
        }
        if dots.iter().any(|dot| !self.context.contains(dot)) {
            return Err(reader.invalid("live dot missing from the causal context"));
        }
        if dots.iter().any(|dot| self.retired.contains(&dot.replica))
            || self.retired.iter().any(|replica| {
                self.context.version_vector().get(*replica) > 0
                    || self.context.dots().any(|dot| dot.replica == *replica)
            })
        {
            return Err(reader.invalid("retired replica still present"));
        }
        Ok(())
    }
}

impl<S: DotStore> Crdt for Causal<S> {
    type Value = S::Value;

    fn merge(&mut self, other: &Self) {
        self.join_from(other, false);
    }

    fn value(&self) -> S::Value {
        self.store.value()
    }

    fn apply(&mut self, delta: &Delta<Self>) {
        self.join_from(delta.as_state(), true);
    }
}

impl<S: DotStore> Encode for Causal<S> {
    fn encode(&self, writer: &mut Writer) {
        self.context.encode(writer);
        encode_replica_set(writer, &self.retired);
        self.store.encode_store(writer);
    }
}

impl<S: DotStore> Decode for Causal<S> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let context = CausalContext::decode(reader)?;
        let retired = decode_replica_set(reader)?;
        let store = S::decode_store(reader)?;
        let state = Self {
            store,
            context,
            retired,
        };
        state.validate(reader)?;
        Ok(state)
    }
}

impl<S: DotStore> Codec for Causal<S> {
    const TYPE_TAG: u8 = S::TYPE_TAG;
    const TYPE_NAME: &'static str = S::TYPE_NAME;

    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut state = decode_framed::<Self>(bytes, Self::TYPE_TAG, Self::TYPE_NAME)?;
        // A full state has no empty entries; deltas may (they name the keys they remove).
        state.store.retain_dots(&mut |_| true);
        Ok(state)
    }
}

/// Shared body of `from_bytes`: header check, payload, no trailing bytes.
pub(crate) fn decode_framed<T: Decode>(
    bytes: &[u8],
    tag: u8,
    name: &'static str,
) -> Result<T, DecodeError> {
    let mut reader = Reader::new(bytes);
    let version = reader.byte()?;
    if version != crate::codec::FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: crate::codec::FORMAT_VERSION,
        });
    }
    let found = reader.byte()?;
    if found != tag {
        return Err(DecodeError::WrongType {
            expected: name,
            found,
        });
    }
    let value = T::decode(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

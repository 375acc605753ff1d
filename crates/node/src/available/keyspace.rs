//! The replicated data: one observed-remove map per value type (the per-type *slots* of a key),
//! with the reads and writes the operations need. Every write returns the encoded deltas it made,
//! which the caller persists.

use std::collections::{BTreeMap, BTreeSet};

use clock::{HlcTimestamp, ReplicaId, VersionVector};
use crdt::{Codec, CounterStore, Crdt, Delta, DotStore, MapStore, MvStore, OrMap, SetStore};
use serde::{Deserialize, Serialize};

use super::operation::Bytes;
use super::value::{Stamped, last_writer};

/// Strings: key → multi-value register of stamped values, read as last-writer-wins.
pub(crate) type Strings = OrMap<Bytes, MvStore<Stamped>>;
/// Hashes: key → field → multi-value register of stamped values, read as last-writer-wins.
pub(crate) type Hashes = OrMap<Bytes, MapStore<Bytes, MvStore<Stamped>>>;
/// Sets: key → observed-remove set of members.
pub(crate) type Sets = OrMap<Bytes, SetStore<Bytes>>;
/// Counters: key → resettable PN-counter (one running total per replica).
pub(crate) type Counters = OrMap<Bytes, CounterStore>;

/// The value type of a key, in precedence order: when concurrent writes leave a key with values
/// of several types, the first kind present is the one readers see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// A string (`SET`).
    String,
    /// A hash (`HSET`).
    Hash,
    /// A set (`SADD`).
    Set,
    /// A counter (`INCRBY` on an absent key); Redis calls it a string.
    Counter,
}

impl Kind {
    /// Every kind, in precedence order.
    pub(crate) const ALL: [Kind; 4] = [Kind::String, Kind::Hash, Kind::Set, Kind::Counter];

    /// Name used in JSON and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::Counter => "counter",
        }
    }
}

/// How a part's bytes join the keyspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Form {
    /// A mutator's delta (`Delta::to_bytes`), joined with the cheap keyed `apply`.
    Delta,
    /// A state (`Codec::to_bytes`), such as an anti-entropy reply, joined with `merge`.
    State,
}

/// One encoded change to one of the four maps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    /// Which map.
    pub(crate) kind: Kind,
    /// Delta or state.
    pub(crate) form: Form,
    /// The CRDT encoding.
    pub(crate) bytes: Vec<u8>,
}

/// A decoded value ready to join one map.
pub(crate) enum Join<T> {
    /// Joined with `apply`.
    Delta(Delta<T>),
    /// Joined with `merge`.
    State(T),
}

/// Decoded parts, grouped by map, so a batch is checked whole before any of it is joined.
#[derive(Default)]
pub(crate) struct Decoded {
    strings: Vec<Join<Strings>>,
    hashes: Vec<Join<Hashes>>,
    sets: Vec<Join<Sets>>,
    counters: Vec<Join<Counters>>,
}

/// Whether a batch's deltas may be joined with the keyed `apply`, which trusts that a delta names
/// every key its context covers: true of this node's own mutator deltas, not of a peer's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Records this node wrote.
    Own,
    /// A peer's message: only states, joined with the full `merge`.
    Peer,
}

fn decode_one<T: Codec>(part: &Part, origin: Origin) -> Result<Join<T>, crdt::DecodeError> {
    Ok(match (part.form, origin) {
        (Form::Delta, Origin::Own) => Join::Delta(Delta::from_bytes(&part.bytes)?),
        // Peers answer with states; refusing their deltas also keeps the log's deltas our own.
        (Form::Delta, Origin::Peer) => {
            return Err(crdt::DecodeError::Invalid {
                offset: 0,
                reason: "a peer sent a delta where a state belongs",
            });
        }
        (Form::State, _) => Join::State(T::from_bytes(&part.bytes)?),
    })
}

impl Decoded {
    /// Decodes every part; the first bad one fails the whole batch.
    pub(crate) fn from_parts<'a>(
        parts: impl IntoIterator<Item = &'a Part>,
        origin: Origin,
    ) -> Result<Self, crdt::DecodeError> {
        let mut decoded = Self::default();
        for part in parts {
            match part.kind {
                Kind::String => decoded.strings.push(decode_one(part, origin)?),
                Kind::Hash => decoded.hashes.push(decode_one(part, origin)?),
                Kind::Set => decoded.sets.push(decode_one(part, origin)?),
                Kind::Counter => decoded.counters.push(decode_one(part, origin)?),
            }
        }
        Ok(decoded)
    }

    /// Adds `other`'s parts to this batch.
    pub(crate) fn extend(&mut self, other: Decoded) {
        self.strings.extend(other.strings);
        self.hashes.extend(other.hashes);
        self.sets.extend(other.sets);
        self.counters.extend(other.counters);
    }
}

fn join_into<T: Crdt>(map: &mut T, joins: Vec<Join<T>>) {
    // States first folded together: joining small states with each other and the result once into
    // the (large) map costs one walk of the map instead of one per state.
    let mut states: Option<T> = None;
    for join in joins {
        match join {
            Join::Delta(delta) => map.apply(&delta),
            Join::State(state) => match &mut states {
                Some(folded) => folded.merge(&state),
                None => states = Some(state),
            },
        }
    }
    if let Some(folded) = states {
        map.merge(&folded);
    }
}

fn delta_part<T: Codec>(kind: Kind, delta: &Delta<T>) -> Part {
    Part {
        kind,
        form: Form::Delta,
        bytes: delta.to_bytes(),
    }
}

/// The four maps. A key may hold a value in more than one of them only after concurrent writes
/// of different types; every local write of one type removes what this node has seen of the key
/// in the other three.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Keyspace {
    pub(crate) strings: Strings,
    pub(crate) hashes: Hashes,
    pub(crate) sets: Sets,
    pub(crate) counters: Counters,
}

impl Keyspace {
    /// Joins decoded parts (the caller has checked them all).
    pub(crate) fn join(&mut self, decoded: Decoded) {
        join_into(&mut self.strings, decoded.strings);
        join_into(&mut self.hashes, decoded.hashes);
        join_into(&mut self.sets, decoded.sets);
        join_into(&mut self.counters, decoded.counters);
    }

    /// The type readers see at `key`, if any.
    pub(crate) fn kind_of(&self, key: &Bytes) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| self.holds(*kind, key))
    }

    fn holds(&self, kind: Kind, key: &Bytes) -> bool {
        match kind {
            Kind::String => self.strings.contains_key(key),
            Kind::Hash => self.hashes.contains_key(key),
            Kind::Set => self.sets.contains_key(key),
            Kind::Counter => self.counters.contains_key(key),
        }
    }

    /// Every key holding a value, in byte order.
    pub(crate) fn keys(&self) -> BTreeSet<&Bytes> {
        let mut keys: BTreeSet<&Bytes> = self.strings.keys().collect();
        keys.extend(self.hashes.keys());
        keys.extend(self.sets.keys());
        keys.extend(self.counters.keys());
        keys
    }

    /// The string at `key` (last writer among concurrent writes).
    pub(crate) fn string(&self, key: &Bytes) -> Option<Stamped> {
        last_writer(self.strings.get(key)?.value())
    }

    /// The counter at `key`.
    pub(crate) fn counter(&self, key: &Bytes) -> Option<i64> {
        self.counters.get(key).map(DotStore::value)
    }

    /// What `GET` shows: a string, or a counter in decimal. `None` for other kinds too.
    pub(crate) fn readable_string(&self, key: &Bytes) -> Option<Bytes> {
        match self.kind_of(key)? {
            Kind::String => self.string(key).map(|value| value.bytes),
            Kind::Counter => self
                .counter(key)
                .map(|value| value.to_string().into_bytes()),
            Kind::Hash | Kind::Set => None,
        }
    }

    /// The members of the set at `key`, in order.
    pub(crate) fn members(&self, key: &Bytes) -> Vec<Bytes> {
        self.sets
            .get(key)
            .map(|set| set.iter().map(|(member, _)| member.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether the set at `key` holds `member`.
    pub(crate) fn is_member(&self, key: &Bytes, member: &Bytes) -> bool {
        // SetStore offers no point lookup outside the crdt crate, so this walks the set.
        self.sets
            .get(key)
            .is_some_and(|set| set.iter().any(|(candidate, _)| candidate == member))
    }

    /// Number of members of the set at `key`.
    pub(crate) fn cardinality(&self, key: &Bytes) -> usize {
        self.sets.get(key).map_or(0, |set| set.iter().count())
    }

    /// The hash at `key`: field → last writer's value.
    pub(crate) fn hash(&self, key: &Bytes) -> BTreeMap<Bytes, Bytes> {
        let Some(hash) = self.hashes.get(key) else {
            return BTreeMap::new();
        };
        hash.value()
            .into_iter()
            .filter_map(|(field, values)| Some((field, last_writer(values)?.bytes)))
            .collect()
    }

    /// Removes what this node has seen of `key` in every map except `keep`.
    pub(crate) fn clear_other_kinds(
        &mut self,
        key: &Bytes,
        keep: Option<Kind>,
        parts: &mut Vec<Part>,
    ) {
        for kind in Kind::ALL {
            if Some(kind) == keep || !self.holds(kind, key) {
                continue;
            }
            let part = match kind {
                Kind::String => delta_part(kind, &self.strings.remove(key)),
                Kind::Hash => delta_part(kind, &self.hashes.remove(key)),
                Kind::Set => delta_part(kind, &self.sets.remove(key)),
                Kind::Counter => delta_part(kind, &self.counters.remove(key)),
            };
            parts.push(part);
        }
    }

    /// Writes a string, superseding every value of the key this node has seen.
    pub(crate) fn write_string(
        &mut self,
        replica: ReplicaId,
        stamp: HlcTimestamp,
        key: &Bytes,
        bytes: Bytes,
        parts: &mut Vec<Part>,
    ) {
        self.clear_other_kinds(key, Some(Kind::String), parts);
        let value = Stamped {
            stamp,
            writer: replica,
            bytes,
        };
        let delta = self
            .strings
            .update(key.clone(), |register| register.write(replica, value));
        parts.push(delta_part(Kind::String, &delta));
    }

    /// Adds `amount` to the counter at `key` (creating it).
    pub(crate) fn add_to_counter(
        &mut self,
        replica: ReplicaId,
        key: &Bytes,
        amount: i64,
        parts: &mut Vec<Part>,
    ) {
        self.clear_other_kinds(key, Some(Kind::Counter), parts);
        let delta = self
            .counters
            .update(key.clone(), |counter| counter.add(replica, amount));
        parts.push(delta_part(Kind::Counter, &delta));
    }

    /// Adds `members` to the set at `key`; answers how many were not present.
    pub(crate) fn add_members(
        &mut self,
        replica: ReplicaId,
        key: &Bytes,
        members: &[Bytes],
        parts: &mut Vec<Part>,
    ) -> usize {
        self.clear_other_kinds(key, Some(Kind::Set), parts);
        let mut added = 0;
        for member in members {
            // Members already present are added again under a fresh dot: the client wants them
            // present, so they survive a concurrent SREM elsewhere (add wins).
            let delta = self.sets.update(key.clone(), |set| {
                if !set.contains(member) {
                    added += 1;
                }
                set.add(replica, member.clone())
            });
            parts.push(delta_part(Kind::Set, &delta));
        }
        added
    }

    /// Removes `members` from the set at `key`; answers how many were present.
    pub(crate) fn remove_members(
        &mut self,
        key: &Bytes,
        members: &[Bytes],
        parts: &mut Vec<Part>,
    ) -> usize {
        let mut removed = 0;
        for member in members {
            if !self.is_member(key, member) {
                continue;
            }
            removed += 1;
            let delta = self.sets.update(key.clone(), |set| set.remove(member));
            parts.push(delta_part(Kind::Set, &delta));
        }
        removed
    }

    /// Writes hash fields in order; answers how many were new.
    pub(crate) fn write_fields(
        &mut self,
        replica: ReplicaId,
        stamps: &mut dyn FnMut() -> HlcTimestamp,
        key: &Bytes,
        pairs: &[(Bytes, Bytes)],
        parts: &mut Vec<Part>,
    ) -> usize {
        self.clear_other_kinds(key, Some(Kind::Hash), parts);
        let mut added = 0;
        for (field, bytes) in pairs {
            let value = Stamped {
                stamp: stamps(),
                writer: replica,
                bytes: bytes.clone(),
            };
            let delta = self.hashes.update(key.clone(), |hash| {
                if !hash.contains_key(field) {
                    added += 1;
                }
                hash.update(field.clone(), |register| register.write(replica, value))
            });
            parts.push(delta_part(Kind::Hash, &delta));
        }
        added
    }

    /// Removes hash fields; answers how many were present.
    pub(crate) fn remove_fields(
        &mut self,
        key: &Bytes,
        fields: &[Bytes],
        parts: &mut Vec<Part>,
    ) -> usize {
        let mut removed = 0;
        for field in fields {
            if !self.hash_has_field(key, field) {
                continue;
            }
            removed += 1;
            let delta = self.hashes.update(key.clone(), |hash| hash.remove(field));
            parts.push(delta_part(Kind::Hash, &delta));
        }
        removed
    }

    fn hash_has_field(&self, key: &Bytes, field: &Bytes) -> bool {
        // MapStore offers no point lookup outside the crdt crate; its value map is built instead.
        self.hashes
            .get(key)
            .is_some_and(|hash| hash.value().contains_key(field))
    }

    /// Removes every value of `key` this node has seen; answers whether it existed.
    pub(crate) fn delete(&mut self, key: &Bytes, parts: &mut Vec<Part>) -> bool {
        let existed = self.kind_of(key).is_some();
        self.clear_other_kinds(key, None, parts);
        existed
    }

    /// Each map's version vector (the contiguous events seen per replica), by kind name.
    pub(crate) fn version_vectors(&self) -> BTreeMap<&'static str, &VersionVector> {
        BTreeMap::from([
            (Kind::String.name(), self.strings.context().version_vector()),
            (Kind::Hash.name(), self.hashes.context().version_vector()),
            (Kind::Set.name(), self.sets.context().version_vector()),
            (
                Kind::Counter.name(),
                self.counters.context().version_vector(),
            ),
        ])
    }

    /// The four maps' full encodings, in [`Kind::ALL`] order.
    pub(crate) fn encode(&self) -> [Vec<u8>; 4] {
        [
            self.strings.to_bytes(),
            self.hashes.to_bytes(),
            self.sets.to_bytes(),
            self.counters.to_bytes(),
        ]
    }

    /// The keyspace from the four maps' full encodings, in [`Kind::ALL`] order.
    pub(crate) fn decode(maps: [&[u8]; 4]) -> Result<Self, crdt::DecodeError> {
        Ok(Self {
            strings: Strings::from_bytes(maps[0])?,
            hashes: Hashes::from_bytes(maps[1])?,
            sets: Sets::from_bytes(maps[2])?,
            counters: Counters::from_bytes(maps[3])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_deltas_apply_but_a_peer_may_only_send_states() {
        let mut keyspace = Keyspace::default();
        let mut parts = Vec::new();
        keyspace.add_members(1, &b"ap:s".to_vec(), &[b"m".to_vec()], &mut parts);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].form, Form::Delta);
        let mut replica = Keyspace::default();
        replica.join(Decoded::from_parts(&parts, Origin::Own).expect("own delta"));
        assert_eq!(replica, keyspace);
        assert!(Decoded::from_parts(&parts, Origin::Peer).is_err());
        let state = Part {
            kind: Kind::Set,
            form: Form::State,
            bytes: keyspace.sets.to_bytes(),
        };
        let mut peer = Keyspace::default();
        peer.join(Decoded::from_parts([&state], Origin::Peer).expect("a state"));
        assert_eq!(peer, keyspace);
        let mislabelled = Part {
            kind: Kind::Counter,
            ..state
        };
        assert!(Decoded::from_parts([&mislabelled], Origin::Peer).is_err());
    }
}

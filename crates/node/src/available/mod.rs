//! The available keyspace: `ap:` keys as CRDTs, synced between nodes by anti-entropy.
//!
//! Every node accepts writes to `ap:` keys on its own, even cut off in a minority partition, and
//! nodes converge by exchanging only what the other lacks. [`Available`] is a pure state machine:
//! time and randomness are arguments, effects are return values (messages) or drained
//! ([`Available::take_writes`]).
//!
//! Values, one observed-remove map (`crdt::OrMap`) per type, each with its own causal context:
//! - strings: multi-value registers of values stamped by a hybrid logical clock, read as
//!   last-writer-wins (timestamp, then replica id);
//! - counters: resettable PN-counters (`crdt::CausalCounter`, one running total per replica);
//! - sets: observed-remove sets (add wins);
//! - hashes: observed-remove maps of field → string register as above.
//!
//! `DEL` removes what this node has seen, so a concurrent write elsewhere survives it. When
//! concurrent writes of different types meet at one key, readers see the first present of
//! string, hash, set, counter (see `docs/available.md`).
//!
//! **Contract for the driver: write every record from [`Available::take_writes`] durably before
//! acknowledging the operation that produced it, and send no message returned by
//! [`Available::tick`] or [`Available::receive`] while a record produced by
//! [`Available::execute`] is not yet durable** (queue such messages behind that write). A node
//! that sent a dot of its own and then lost it in a crash would mint that dot again for a
//! different value, and replicas would disagree about it for ever. Records produced by
//! `receive` (joined peer states) may be lost in a crash without harm: the next round brings the
//! peers' dots back.
//!
//! ```
//! use node::available::{ApOperation, ApOutput, Available};
//!
//! let mut alice = Available::new(1);
//! let mut bob = Available::new(2);
//! let add = |member: &str| ApOperation::SAdd {
//!     key: b"ap:cart".to_vec(),
//!     members: vec![member.as_bytes().to_vec()],
//! };
//! alice.execute(1_000, add("milk")).unwrap();
//! bob.execute(1_000, add("eggs")).unwrap();
//!
//! // One anti-entropy round: digest → deltas and digest → deltas.
//! # use rand::SeedableRng;
//! let mut rng = sim::SimRng::seed_from_u64(7);
//! let mut mail = alice.tick(2_000, &[1, 2], &mut rng);
//! while let Some((to, message)) = mail.pop() {
//!     let (from, node) = if to == 2 { (1, &mut bob) } else { (2, &mut alice) };
//!     mail.extend(node.receive(3_000, from, message).unwrap());
//! }
//! let members = ApOperation::SMembers(b"ap:cart".to_vec());
//! let both = ApOutput::Members(vec![b"eggs".to_vec(), b"milk".to_vec()]);
//! assert_eq!(alice.execute(4_000, members.clone()), Ok(both.clone()));
//! assert_eq!(bob.execute(4_000, members), Ok(both));
//! assert_eq!(alice.snapshot_json(), bob.snapshot_json());
//! ```

mod anti_entropy;
mod journal;
mod keyspace;
mod operation;
mod value;

use std::collections::BTreeMap;

use clock::HybridClock;
use rand::RngExt;
use serde::Serialize;
use thiserror::Error;

pub use anti_entropy::{ApMessage, Deltas, Digest};
pub use journal::{COMPACT_LOG_BYTES_MIN, COMPACT_STATE_PARTS_MAX, RECORD_PREFIX};
pub use operation::{ApError, ApOperation, ApOutput, Bytes, SetCondition};

use anti_entropy::Summary;
use journal::Journal;
use keyspace::{Decoded, Keyspace, Kind, Origin, Part};

/// Identifies a node; the same id names its dots in every causal context.
pub type ReplicaId = clock::ReplicaId;

/// Bound on clock offset assumed by the hybrid logical clock that stamps strings.
const MAX_CLOCK_OFFSET_NS: u64 = 500_000_000;

/// Why recovery or a peer's message failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AvailableError {
    /// A stored record does not decode; recovery produced nothing.
    #[error("stored record {key} is corrupt: {source}")]
    CorruptRecord {
        /// The record's storage key.
        key: String,
        /// What is wrong with it.
        source: crdt::DecodeError,
    },
    /// A storage key under [`RECORD_PREFIX`] that this module never writes; recovery produced
    /// nothing.
    #[error("stored record {key} is not one this module writes")]
    UnknownRecord {
        /// The record's storage key.
        key: String,
    },
    /// A peer's message does not decode; nothing changed here.
    #[error("anti-entropy message from replica {from} does not decode: {source}")]
    BadMessage {
        /// The sending replica.
        from: ReplicaId,
        /// What is wrong with it.
        source: crdt::DecodeError,
    },
}

/// Counters kept for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApCounters {
    /// Operations executed (reads, writes and refused ones).
    pub operations: u64,
    /// Operations that changed state.
    pub writes: u64,
    /// Anti-entropy rounds this node opened.
    pub rounds_started: u64,
    /// Received states joined into the keyspace.
    pub merges: u64,
    /// Messages returned for sending.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// CRDT payload bytes in messages sent.
    pub payload_bytes_sent: u64,
    /// CRDT payload bytes in messages received.
    pub payload_bytes_received: u64,
    /// Received messages refused because they did not decode.
    pub messages_refused: u64,
}

/// Numbers for `/cluster` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApStatus {
    /// This node.
    pub replica: ReplicaId,
    /// Keys holding a value.
    pub keys: usize,
    /// Keys per map (`string`, `hash`, `set`, `counter`); a key with concurrent values of two
    /// types counts in both.
    pub keys_by_kind: BTreeMap<&'static str, usize>,
    /// Each map's version vector: replica → events seen contiguously.
    pub version_vectors: BTreeMap<&'static str, BTreeMap<ReplicaId, u64>>,
    /// Bytes of the four maps' full encodings.
    pub state_bytes: u64,
    /// Storage log records not yet compacted.
    pub log_records: usize,
    /// Bytes in those records.
    pub log_bytes: u64,
    /// Snapshots written since start.
    pub snapshots_written: u64,
    /// Local time of the last message from each peer.
    pub last_heard_ns: BTreeMap<ReplicaId, u64>,
    /// Event counters.
    pub counters: ApCounters,
}

/// One node's replica of every available key.
#[derive(Clone, Debug)]
pub struct Available {
    replica: ReplicaId,
    keyspace: Keyspace,
    hlc: HybridClock,
    journal: Journal,
    counters: ApCounters,
    last_heard_ns: BTreeMap<ReplicaId, u64>,
}

impl Available {
    /// Every storage key this module writes starts with this.
    pub const RECORD_PREFIX: &'static str = RECORD_PREFIX;

    /// An empty replica for node `replica`.
    pub fn new(replica: ReplicaId) -> Self {
        Self::from_parts(replica, Keyspace::default(), Journal::default())
    }

    fn from_parts(replica: ReplicaId, keyspace: Keyspace, journal: Journal) -> Self {
        Self {
            replica,
            keyspace,
            hlc: HybridClock::new(MAX_CLOCK_OFFSET_NS),
            journal,
            counters: ApCounters::default(),
            last_heard_ns: BTreeMap::new(),
        }
    }

    /// Rebuilds from the records this module asked to persist (keys outside
    /// [`Self::RECORD_PREFIX`] are skipped). Any corrupt or unknown record is an error.
    pub fn recover<'a>(
        replica: ReplicaId,
        records: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, AvailableError> {
        let (keyspace, journal) = Journal::recover(records)?;
        Ok(Self::from_parts(replica, keyspace, journal))
    }

    /// This node's id.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Runs one client operation at physical time `now_ns` (unix-epoch nanoseconds from the
    /// driver). A refused operation changes nothing.
    pub fn execute(&mut self, now_ns: u64, operation: ApOperation) -> Result<ApOutput, ApError> {
        self.counters.operations += 1;
        let mut parts = Vec::new();
        let output = self.run(now_ns, operation, &mut parts);
        if !parts.is_empty() {
            self.counters.writes += 1;
            self.journal.record(&parts, &self.keyspace);
        }
        output
    }

    /// Storage writes produced since the last call, in order: key under [`Self::RECORD_PREFIX`],
    /// and `Some(bytes)` to write or `None` to delete.
    #[must_use]
    pub fn take_writes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        self.journal.take_writes()
    }

    /// Periodic anti-entropy: opens a round with one random peer among `peers` (this node is
    /// skipped). Returns the message to send, if any peer remains.
    #[must_use]
    pub fn tick(
        &mut self,
        _now_ns: u64,
        peers: &[ReplicaId],
        rng: &mut impl rand::Rng,
    ) -> Vec<(ReplicaId, ApMessage)> {
        let others: Vec<ReplicaId> = peers
            .iter()
            .copied()
            .filter(|peer| *peer != self.replica)
            .collect();
        if others.is_empty() {
            return Vec::new();
        }
        let peer = others[rng.random_range(0..others.len())];
        self.counters.rounds_started += 1;
        let digest = Summary::of(&self.keyspace).digest();
        self.outgoing(vec![(peer, ApMessage::Digest(digest))])
    }

    /// Handles a peer's anti-entropy message received at local time `now_ns`; returns messages
    /// to send back. A message that does not decode is refused whole and changes nothing.
    #[must_use = "the returned messages continue the anti-entropy round"]
    pub fn receive(
        &mut self,
        now_ns: u64,
        from: ReplicaId,
        message: ApMessage,
    ) -> Result<Vec<(ReplicaId, ApMessage)>, AvailableError> {
        self.counters.messages_received += 1;
        self.counters.payload_bytes_received += message.payload_bytes() as u64;
        self.last_heard_ns.insert(from, now_ns);
        let result = self.handle(from, message);
        if result.is_err() {
            self.counters.messages_refused += 1;
        }
        result.map(|messages| self.outgoing(messages))
    }

    fn handle(
        &mut self,
        from: ReplicaId,
        message: ApMessage,
    ) -> Result<Vec<(ReplicaId, ApMessage)>, AvailableError> {
        let bad = |source| AvailableError::BadMessage { from, source };
        match message {
            ApMessage::Digest(digest) => {
                let requests = digest.decode().map_err(bad)?;
                let ours = Summary::of(&self.keyspace);
                let deltas = Deltas::answering(&self.keyspace, &requests, &ours);
                Ok(vec![(
                    from,
                    ApMessage::DeltasAndDigest(deltas, ours.digest()),
                )])
            }
            ApMessage::DeltasAndDigest(deltas, digest) => {
                let requests = digest.decode().map_err(bad)?;
                let decoded = Decoded::from_parts(deltas.parts(), Origin::Peer).map_err(bad)?;
                self.absorb(decoded, deltas.parts());
                let ours = Summary::of(&self.keyspace);
                let answer = Deltas::answering(&self.keyspace, &requests, &ours);
                if answer.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![(from, ApMessage::Deltas(answer))])
            }
            ApMessage::Deltas(deltas) => {
                let decoded = Decoded::from_parts(deltas.parts(), Origin::Peer).map_err(bad)?;
                self.absorb(decoded, deltas.parts());
                Ok(Vec::new())
            }
        }
    }

    fn absorb(&mut self, decoded: Decoded, parts: &[Part]) {
        if parts.is_empty() {
            return;
        }
        self.counters.merges += parts.len() as u64;
        self.keyspace.join(decoded);
        self.journal.record(parts, &self.keyspace);
    }

    fn outgoing(&mut self, messages: Vec<(ReplicaId, ApMessage)>) -> Vec<(ReplicaId, ApMessage)> {
        for (_, message) in &messages {
            self.counters.messages_sent += 1;
            self.counters.payload_bytes_sent += message.payload_bytes() as u64;
        }
        messages
    }

    /// Numbers for `/cluster` and `/metrics`. Encodes the whole state to measure it.
    pub fn status(&self) -> ApStatus {
        let keyspace = &self.keyspace;
        ApStatus {
            replica: self.replica,
            keys: keyspace.keys().len(),
            keys_by_kind: BTreeMap::from([
                (Kind::String.name(), keyspace.strings.len()),
                (Kind::Hash.name(), keyspace.hashes.len()),
                (Kind::Set.name(), keyspace.sets.len()),
                (Kind::Counter.name(), keyspace.counters.len()),
            ]),
            version_vectors: keyspace
                .version_vectors()
                .into_iter()
                .map(|(name, vector)| (name, vector.iter().collect()))
                .collect(),
            state_bytes: keyspace.encode().iter().map(|map| map.len() as u64).sum(),
            log_records: self.journal.log_records(),
            log_bytes: self.journal.log_bytes(),
            snapshots_written: self.journal.snapshots_written(),
            last_heard_ns: self.last_heard_ns.clone(),
            counters: self.counters.clone(),
        }
    }

    /// Every key's visible value as JSON: `{key: {"type": t, "value": v}}` with `t` one of
    /// `string`, `counter`, `set`, `hash`. Bytes show as UTF-8 text, or `0x…` hex when not UTF-8.
    pub fn snapshot_json(&self) -> serde_json::Value {
        let keyspace = &self.keyspace;
        let mut object = serde_json::Map::new();
        for key in keyspace.keys() {
            let Some(kind) = keyspace.kind_of(key) else {
                continue;
            };
            let value = match kind {
                Kind::String => keyspace
                    .string(key)
                    .map_or(serde_json::Value::Null, |value| text(&value.bytes)),
                Kind::Counter => serde_json::Value::from(keyspace.counter(key).unwrap_or(0)),
                Kind::Set => keyspace
                    .members(key)
                    .iter()
                    .map(|member| text(member))
                    .collect(),
                Kind::Hash => serde_json::Value::Object(
                    keyspace
                        .hash(key)
                        .iter()
                        .map(|(field, value)| (text_string(field), text(value)))
                        .collect(),
                ),
            };
            object.insert(
                text_string(key),
                serde_json::json!({ "type": kind.name(), "value": value }),
            );
        }
        serde_json::Value::Object(object)
    }

    /// The four maps' full encodings (strings, hashes, sets, counters): equal on two replicas
    /// exactly when they hold the same state, causal contexts included.
    pub fn encoded_state(&self) -> Vec<Vec<u8>> {
        self.keyspace.encode().into()
    }
}

fn text_string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

fn text(bytes: &[u8]) -> serde_json::Value {
    serde_json::Value::String(text_string(bytes))
}

/// Parses a Redis integer: optional `-`, decimal digits, no `+`, spaces or leading zeros.
fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && bytes != b"-0";
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

impl Available {
    fn run(
        &mut self,
        now_ns: u64,
        operation: ApOperation,
        parts: &mut Vec<Part>,
    ) -> Result<ApOutput, ApError> {
        let keyspace = &self.keyspace;
        let integer = |count: usize| ApOutput::Integer(i64::try_from(count).unwrap_or(i64::MAX));
        match operation {
            ApOperation::Get(key) => match keyspace.kind_of(&key) {
                None => Ok(ApOutput::Nil),
                Some(Kind::Hash | Kind::Set) => Err(ApError::WrongType),
                Some(Kind::String | Kind::Counter) => Ok(keyspace
                    .readable_string(&key)
                    .map_or(ApOutput::Nil, ApOutput::Bulk)),
            },
            ApOperation::MGet(keys) => Ok(ApOutput::Array(
                keys.iter()
                    .map(|key| keyspace.readable_string(key))
                    .collect(),
            )),
            ApOperation::Set {
                key,
                value,
                condition,
                get,
            } => self.set(now_ns, key, value, condition, get, parts),
            ApOperation::MSet(pairs) => {
                for (key, value) in pairs {
                    let stamp = self.hlc.now(now_ns);
                    self.keyspace
                        .write_string(self.replica, stamp, &key, value, parts);
                }
                Ok(ApOutput::Ok)
            }
            ApOperation::Del(keys) => {
                let removed = keys
                    .iter()
                    .filter(|key| self.keyspace.delete(key, parts))
                    .count();
                Ok(integer(removed))
            }
            ApOperation::Exists(keys) => Ok(integer(
                keys.iter()
                    .filter(|key| keyspace.kind_of(key).is_some())
                    .count(),
            )),
            ApOperation::IncrBy { key, delta } => self.increment(now_ns, key, delta, parts),
            ApOperation::SAdd { key, members } => {
                self.expect_kind(&key, Kind::Set)?;
                let added = self
                    .keyspace
                    .add_members(self.replica, &key, &members, parts);
                Ok(integer(added))
            }
            ApOperation::SRem { key, members } => {
                self.expect_kind(&key, Kind::Set)?;
                Ok(integer(self.keyspace.remove_members(&key, &members, parts)))
            }
            ApOperation::SMembers(key) => {
                self.expect_kind(&key, Kind::Set)?;
                Ok(ApOutput::Members(keyspace.members(&key)))
            }
            ApOperation::SIsMember { key, member } => {
                self.expect_kind(&key, Kind::Set)?;
                Ok(integer(usize::from(keyspace.is_member(&key, &member))))
            }
            ApOperation::SCard(key) => {
                self.expect_kind(&key, Kind::Set)?;
                Ok(integer(keyspace.cardinality(&key)))
            }
            ApOperation::HSet { key, pairs } => {
                self.expect_kind(&key, Kind::Hash)?;
                let hlc = &mut self.hlc;
                let mut stamps = || hlc.now(now_ns);
                let added =
                    self.keyspace
                        .write_fields(self.replica, &mut stamps, &key, &pairs, parts);
                Ok(integer(added))
            }
            ApOperation::HGet { key, field } => {
                self.expect_kind(&key, Kind::Hash)?;
                Ok(keyspace
                    .hash(&key)
                    .remove(&field)
                    .map_or(ApOutput::Nil, ApOutput::Bulk))
            }
            ApOperation::HDel { key, fields } => {
                self.expect_kind(&key, Kind::Hash)?;
                Ok(integer(self.keyspace.remove_fields(&key, &fields, parts)))
            }
            ApOperation::HGetAll(key) => {
                self.expect_kind(&key, Kind::Hash)?;
                Ok(ApOutput::Pairs(keyspace.hash(&key).into_iter().collect()))
            }
            ApOperation::Type(key) => Ok(ApOutput::Type(match keyspace.kind_of(&key) {
                None => "none",
                Some(Kind::String | Kind::Counter) => "string",
                Some(Kind::Set) => "set",
                Some(Kind::Hash) => "hash",
            })),
            ApOperation::Keys => Ok(ApOutput::Members(
                keyspace.keys().into_iter().cloned().collect(),
            )),
            ApOperation::DbSize => Ok(integer(keyspace.keys().len())),
        }
    }

    /// Refuses with `WRONGTYPE` unless `key` is absent or of `kind`.
    fn expect_kind(&self, key: &Bytes, kind: Kind) -> Result<(), ApError> {
        match self.keyspace.kind_of(key) {
            Some(found) if found != kind => Err(ApError::WrongType),
            _ => Ok(()),
        }
    }

    fn set(
        &mut self,
        now_ns: u64,
        key: Bytes,
        value: Bytes,
        condition: SetCondition,
        get: bool,
        parts: &mut Vec<Part>,
    ) -> Result<ApOutput, ApError> {
        let kind = self.keyspace.kind_of(&key);
        if get && matches!(kind, Some(Kind::Hash | Kind::Set)) {
            return Err(ApError::WrongType);
        }
        let previous = self.keyspace.readable_string(&key);
        let skip = match condition {
            SetCondition::Always => false,
            SetCondition::IfAbsent => kind.is_some(),
            SetCondition::IfPresent => kind.is_none(),
        };
        if !skip {
            let stamp = self.hlc.now(now_ns);
            self.keyspace
                .write_string(self.replica, stamp, &key, value, parts);
        }
        Ok(match (get, skip) {
            (true, _) => previous.map_or(ApOutput::Nil, ApOutput::Bulk),
            (false, true) => ApOutput::Nil,
            (false, false) => ApOutput::Ok,
        })
    }

    fn increment(
        &mut self,
        now_ns: u64,
        key: Bytes,
        delta: i64,
        parts: &mut Vec<Part>,
    ) -> Result<ApOutput, ApError> {
        match self.keyspace.kind_of(&key) {
            Some(Kind::Hash | Kind::Set) => Err(ApError::WrongType),
            Some(Kind::String) => {
                // A string stays a string: INCR on it is a read-modify-write of the register, so
                // concurrent increments of one string key are last-writer-wins. Keys that only
                // ever see INCRBY are counters and lose no increment.
                let current = self
                    .keyspace
                    .string(&key)
                    .and_then(|value| parse_integer(&value.bytes))
                    .ok_or(ApError::NotAnInteger)?;
                let next = current.checked_add(delta).ok_or(ApError::Overflow)?;
                let stamp = self.hlc.now(now_ns);
                self.keyspace.write_string(
                    self.replica,
                    stamp,
                    &key,
                    next.to_string().into_bytes(),
                    parts,
                );
                Ok(ApOutput::Integer(next))
            }
            None | Some(Kind::Counter) => {
                let current = self.keyspace.counter(&key).unwrap_or(0);
                let next = current.checked_add(delta).ok_or(ApError::Overflow)?;
                self.keyspace
                    .add_to_counter(self.replica, &key, delta, parts);
                Ok(ApOutput::Integer(next))
            }
        }
    }
}

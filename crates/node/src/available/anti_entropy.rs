//! Anti-entropy between two nodes: a push-pull round of three messages, each carrying only what
//! the receiver lacks.
//!
//! 1. A → B [`ApMessage::Digest`]: for each of A's four maps, a `crdt::sync::SyncRequest` (the
//!    map's causal context — a version vector plus exception dots — and a hash per bucket of live
//!    dots).
//! 2. B → A [`ApMessage::DeltasAndDigest`]: for each map whose request differs from B's own,
//!    `crdt::sync::reply` — a small state with B's entries whose dots A has not seen and the
//!    removals A missed — omitted when empty; and B's own digest.
//! 3. A joins the deltas, then A → B [`ApMessage::Deltas`]: what B lacks, by B's digest.

use crdt::sync::{SyncRequest, reply};
use crdt::{Causal, Codec, DotStore};
use serde::{Deserialize, Serialize};

use super::keyspace::{Form, Keyspace, Kind, Part};

/// One node's summary of its four maps: what it has seen, not what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Encoded sync requests, one per map, in the keyspace's kind order.
    requests: Vec<Vec<u8>>,
}

/// States holding what the receiver lacks, at most one per map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deltas {
    parts: Vec<Part>,
}

/// A message between two nodes' available keyspaces (the node serialises it with postcard).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApMessage {
    /// Opens a round: the sender's digest; answer with what it lacks and your digest.
    Digest(Digest),
    /// Answers a digest: what the opener lacks, and the answerer's digest.
    DeltasAndDigest(Deltas, Digest),
    /// Closes a round: what the answerer lacks.
    Deltas(Deltas),
}

impl ApMessage {
    /// Bytes of encoded CRDT payload carried (digests and deltas; framing not counted).
    pub fn payload_bytes(&self) -> usize {
        match self {
            ApMessage::Digest(digest) => digest.bytes(),
            ApMessage::DeltasAndDigest(deltas, digest) => deltas.bytes() + digest.bytes(),
            ApMessage::Deltas(deltas) => deltas.bytes(),
        }
    }
}

/// This node's own sync requests, one per map: the digest it sends, and what it compares a
/// peer's digest with to skip maps that are already equal.
pub(crate) struct Summary([SyncRequest; 4]);

impl Summary {
    /// The summary of `keyspace` (walks every live dot once).
    pub(crate) fn of(keyspace: &Keyspace) -> Self {
        Self([
            SyncRequest::new(&keyspace.strings),
            SyncRequest::new(&keyspace.hashes),
            SyncRequest::new(&keyspace.sets),
            SyncRequest::new(&keyspace.counters),
        ])
    }

    /// The digest to send.
    pub(crate) fn digest(&self) -> Digest {
        Digest {
            requests: self.0.iter().map(Codec::to_bytes).collect(),
        }
    }
}

impl Digest {
    fn bytes(&self) -> usize {
        self.requests.iter().map(Vec::len).sum()
    }

    /// The requests, decoded and checked.
    pub(crate) fn decode(&self) -> Result<[SyncRequest; 4], crdt::DecodeError> {
        let [strings, hashes, sets, counters] = self.requests.as_slice() else {
            return Err(crdt::DecodeError::Invalid {
                offset: 0,
                reason: "a digest holds exactly four sync requests",
            });
        };
        Ok([
            SyncRequest::from_bytes(strings)?,
            SyncRequest::from_bytes(hashes)?,
            SyncRequest::from_bytes(sets)?,
            SyncRequest::from_bytes(counters)?,
        ])
    }
}

impl Deltas {
    /// What the sender of `requests` lacks from `keyspace`, whose own summary is `ours`.
    pub(crate) fn answering(
        keyspace: &Keyspace,
        requests: &[SyncRequest; 4],
        ours: &Summary,
    ) -> Self {
        // Same context and same live-dot digest: the reply would be empty, so it is not built
        // (building it copies the whole map).
        let differs = |index: usize| requests[index] != ours.0[index];
        let mut parts = Vec::new();
        if differs(0) {
            parts.extend(reply_part(Kind::String, &keyspace.strings, &requests[0]));
        }
        if differs(1) {
            parts.extend(reply_part(Kind::Hash, &keyspace.hashes, &requests[1]));
        }
        if differs(2) {
            parts.extend(reply_part(Kind::Set, &keyspace.sets, &requests[2]));
        }
        if differs(3) {
            parts.extend(reply_part(Kind::Counter, &keyspace.counters, &requests[3]));
        }
        Self { parts }
    }

    /// The parts, to decode and join.
    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when the sender had nothing the receiver lacked.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn bytes(&self) -> usize {
        self.parts.iter().map(|part| part.bytes.len()).sum()
    }
}

fn reply_part<S: DotStore>(kind: Kind, map: &Causal<S>, request: &SyncRequest) -> Option<Part> {
    let answer = reply(map, request);
    // An empty context means the requester has seen every dot we have and misses no removal.
    if answer.context().is_empty() && answer.store().is_empty() {
        return None;
    }
    Some(Part {
        kind,
        form: Form::State,
        bytes: answer.to_bytes(),
    })
}

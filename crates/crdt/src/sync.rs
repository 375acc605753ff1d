//! Anti-entropy for causal CRDTs: a replica learns what it lacks by sending a summary, not state.
//!
//! One round, sans-IO (the caller moves the bytes):
//! 1. A sends a [`SyncRequest`]: its causal context (a version vector plus a few exception dots)
//!    and a digest of its *live* dots, one 64-bit hash per bucket of [`BUCKET_DOTS`] consecutive
//!    counters of each replica.
//! 2. B answers with [`reply`]: a state holding only B's live entries whose dots A has not seen,
//!    and a context made of the dots B has seen and A has not, plus — for buckets whose digest
//!    differs from B's view — the dots A has seen that B has removed.
//! 3. A joins the reply with [`crate::Crdt::merge`]. A's new dots flow to B by the same round in
//!    the other direction.
//!
//! The reply is an ordinary state of the CRDT, so the join is the usual one and stays correct
//! whatever the reply contains; the digest only decides how many removal dots to include. A digest
//! collision (two different bucket contents with one 64-bit hash) would hide a removal from that
//! round; the next change in the bucket exposes it, and a periodic full-state merge rules it out.

use std::collections::{BTreeMap, BTreeSet};

use clock::{CausalContext, Dot, ReplicaId};

use crate::codec::{
    Codec, Decode, DecodeError, Encode, Reader, Writer, read_replica_gap, write_replica_gap,
};
use crate::dot_store::{Causal, DotStore};

/// A requester missing more dots than this gets the full state instead of a difference.
pub const FULL_STATE_BEHIND_DOTS: u64 = 1 << 16;

/// Number of consecutive counters of one replica summarised by one digest hash.
pub const BUCKET_DOTS: u64 = 1024;

/// What a replica sends to ask a peer for what it lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    context: CausalContext,
    /// `(replica, bucket) → XOR of mixed live dots`, for buckets holding live dots.
    digest: BTreeMap<(ReplicaId, u64), u64>,
}

/// A well-spread 64-bit hash of a dot (SplitMix64 finaliser), XOR-combined per bucket so the
/// digest does not depend on the order dots are visited.
fn mix(dot: Dot) -> u64 {
    let mut value = dot
        .replica
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(dot.counter)
        .wrapping_add(0x632b_e59b_d9b4_e019);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

fn bucket_of(dot: Dot) -> (ReplicaId, u64) {
    (dot.replica, (dot.counter - 1) / BUCKET_DOTS)
}

impl SyncRequest {
    /// The request replica A sends, summarising `state`.
    pub fn new<S: DotStore>(state: &Causal<S>) -> Self {
        let mut digest: BTreeMap<(ReplicaId, u64), u64> = BTreeMap::new();
        state.store().for_each_dot(&mut |dot| {
            *digest.entry(bucket_of(dot)).or_insert(0) ^= mix(dot);
        });
        Self {
            context: state.context().clone(),
            digest,
        }
    }

    /// The causal context of the requester.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Number of digest buckets carried.
    pub fn bucket_count(&self) -> usize {
        self.digest.len()
    }
}

/// Replica B's answer to `request`: a small state that, joined into the requester, gives it
/// everything B knows that it lacks. See the module docs for its contents.
pub fn reply<S: DotStore>(state: &Causal<S>, request: &SyncRequest) -> Causal<S> {
    let theirs = &request.context;
    let behind: u64 = state
        .context()
        .version_vector()
        .iter()
        .map(|(replica, counter)| counter.saturating_sub(theirs.version_vector().get(replica)))
        .sum();
    if behind > FULL_STATE_BEHIND_DOTS {
        // So far behind that the difference would be a huge dot cloud: the full state says the
        // same in fewer bytes (its context is a version vector), and joining it is always correct.
        return state.clone();
    }
    let mut store = state.store().clone();
    store.retain_dots(&mut |dot| !theirs.contains(dot));

    let mut context = missing_from(state.context(), theirs);
    for dot in removed_in_differing_buckets(state, request) {
        context.insert(dot);
    }
    let mut answer = Causal::from_parts(store, context);
    answer.retired = state.retired().clone();
    answer
}

/// Dots in `ours` that are not in `theirs`.
fn missing_from(ours: &CausalContext, theirs: &CausalContext) -> CausalContext {
    let mut missing = CausalContext::new();
    for (replica, counter) in ours.version_vector().iter() {
        let start = theirs.version_vector().get(replica) + 1;
        for counter in start..=counter {
            let dot = Dot::new(replica, counter);
            if !theirs.contains(&dot) {
                missing.insert(dot);
            }
        }
    }
    for dot in ours.dots() {
        if !theirs.contains(dot) {
            missing.insert(*dot);
        }
    }
    missing
}

/// For every bucket whose digest of live dots differs, the dots both sides have seen that this
/// side no longer holds: the removals the requester may not know about.
fn removed_in_differing_buckets<S: DotStore>(state: &Causal<S>, request: &SyncRequest) -> Vec<Dot> {
    let theirs = &request.context;
    let mut ours: BTreeMap<(ReplicaId, u64), u64> = BTreeMap::new();
    let mut live: BTreeSet<Dot> = BTreeSet::new();
    state.store().for_each_dot(&mut |dot| {
        live.insert(dot);
        if theirs.contains(&dot) {
            *ours.entry(bucket_of(dot)).or_insert(0) ^= mix(dot);
        }
    });
    let mut removed = Vec::new();
    for (&(replica, bucket), &hash) in &request.digest {
        if ours.get(&(replica, bucket)).copied().unwrap_or(0) == hash {
            continue;
        }
        let first = bucket * BUCKET_DOTS + 1;
        if first > state.context().max_counter(replica) {
            continue; // we have seen nothing there, so we removed nothing there
        }
        for counter in first..first.saturating_add(BUCKET_DOTS) {
            let dot = Dot::new(replica, counter);
            if theirs.contains(&dot) && state.context().contains(&dot) && !live.contains(&dot) {
                removed.push(dot);
            }
        }
    }
    removed
}

impl Encode for SyncRequest {
    fn encode(&self, writer: &mut Writer) {
        self.context.encode(writer);
        writer.varint(self.digest.len() as u64);
        let mut previous: Option<(ReplicaId, u64)> = None;
        for (&(replica, bucket), &hash) in &self.digest {
            // Buckets of one replica are delta-coded; a new replica restarts at bucket 0.
            match previous {
                Some((last_replica, last_bucket)) if last_replica == replica => {
                    writer.byte(0);
                    writer.varint(bucket - last_bucket - 1);
                }
                _ => {
                    writer.byte(1);
                    write_replica_gap(writer, previous.map(|entry| entry.0), replica);
                    writer.varint(bucket);
                }
            }
            writer.bytes_fixed(&hash.to_le_bytes());
            previous = Some((replica, bucket));
        }
    }
}

impl Decode for SyncRequest {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let context = CausalContext::decode(reader)?;
        let length = reader.count(10)?;
        let mut digest = BTreeMap::new();
        let mut previous: Option<(ReplicaId, u64)> = None;
        for _ in 0..length {
            let key = match (reader.byte()?, previous) {
                (0, Some((replica, bucket))) => {
                    let gap = reader.varint()?;
                    let bucket = bucket
                        .checked_add(gap)
                        .and_then(|b| b.checked_add(1))
                        .ok_or_else(|| reader.invalid("bucket overflows"))?;
                    (replica, bucket)
                }
                (1, previous) => {
                    let replica = read_replica_gap(reader, previous.map(|entry| entry.0))?;
                    (replica, reader.varint()?)
                }
                _ => return Err(reader.invalid("bad digest entry marker")),
            };
            if key.1 > u64::MAX / BUCKET_DOTS - 1 {
                return Err(reader.invalid("bucket beyond the counter range"));
            }
            let hash = u64::from_le_bytes(reader.fixed::<8>()?);
            digest.insert(key, hash);
            previous = Some(key);
        }
        Ok(Self { context, digest })
    }
}

impl Codec for SyncRequest {
    const TYPE_TAG: u8 = 60;
    const TYPE_NAME: &'static str = "SyncRequest";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Crdt, OrSet};

    fn round(requester: &mut OrSet<u64>, responder: &OrSet<u64>) -> usize {
        let request = SyncRequest::new(requester);
        let request_bytes = request.to_bytes();
        let decoded = SyncRequest::from_bytes(&request_bytes).unwrap();
        let answer = reply(responder, &decoded);
        let answer_bytes = answer.to_bytes();
        requester.merge(&OrSet::from_bytes(&answer_bytes).unwrap());
        request_bytes.len() + answer_bytes.len()
    }

    #[test]
    fn sync_brings_adds_and_removes_both_ways() {
        let mut a: OrSet<u64> = OrSet::new();
        for element in 0..50 {
            a.add(1, element);
        }
        let mut b = a.clone();
        a.add(1, 100);
        b.remove(&3);
        b.add(2, 200);
        round(&mut a, &b);
        round(&mut b, &a);
        assert_eq!(a, b);
        assert!(!a.contains(&3));
        assert!(a.contains(&100) && a.contains(&200));
    }
}

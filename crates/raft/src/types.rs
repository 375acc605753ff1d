//! The vocabulary shared by every module: ids, terms, indexes, log entries, membership, snapshots.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A replica's identity (the clock crate's replica id, so clocks and Raft name nodes alike).
pub type NodeId = clock::ReplicaId;
/// A Raft term (election epoch); starts at 0, only grows.
pub type Term = u64;
/// A position in the replicated log; the first entry has index 1, index 0 means "before the log".
pub type LogIndex = u64;
/// Identifies a client session for exactly-once semantics (§6.3 of the Raft dissertation).
pub type ClientId = u64;

/// The durable per-replica state that votes depend on (Raft Figure 2 "persistent state").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this replica has seen.
    pub term: Term,
    /// The candidate this replica voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
}

/// Voters and learners of a cluster configuration; `outgoing_voters` is set while in joint consensus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Voters of the (incoming) configuration.
    pub voters: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration while a joint change is in progress; empty otherwise.
    pub outgoing_voters: BTreeSet<NodeId>,
    /// Non-voting members that receive the log (new servers catching up, read replicas).
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A configuration of the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            ..Self::default()
        }
    }

    /// True while the configuration is joint (old and new voter sets must both agree).
    pub fn is_joint(&self) -> bool {
        !self.outgoing_voters.is_empty()
    }

    /// True when `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing_voters.contains(&id)
    }

    /// Every member that should receive the log: voters of both halves and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.outgoing_voters.iter().copied());
        all.extend(self.learners.iter().copied());
        all
    }
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// The entry a new leader appends to commit entries of earlier terms (Raft §5.4.2, §8).
    Noop,
    /// A state-machine command from a client session.
    Command {
        /// The session that proposed it.
        client_id: ClientId,
        /// The session's request number; a retried request reuses it and is applied once.
        sequence: u64,
        /// State-machine specific bytes (for the KV store, an encoded `KvCommand`).
        // Shared, immutable bytes: the log, every AppendEntries carrying the entry and the
        // persist request hold the same buffer instead of copies. Serialised as a byte string
        // (the same postcard encoding as `serde_bytes` on a `Vec<u8>`).
        command: bytes::Bytes,
    },
    /// A new cluster configuration; takes effect as soon as it is appended (dissertation §4.1).
    // Boxed: configurations are rare, and inline they would make every command entry a third
    // larger (the log holds millions of entries). Same encoding as the unboxed value.
    Membership(Box<Membership>),
}

/// One record of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// What the entry carries.
    pub payload: EntryPayload,
}

impl Entry {
    /// Approximate encoded size in bytes, used to bound message batches.
    pub fn size_bytes(&self) -> usize {
        let payload = match &self.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Command { command, .. } => command.len() + 16,
            EntryPayload::Membership(m) => {
                8 * (m.voters.len() + m.outgoing_voters.len() + m.learners.len())
            }
        };
        payload + 24
    }
}

/// A run of consecutive log entries in one shared, immutable buffer: the log, the AppendEntries
/// that carry them and the persist requests that store them hold the same entries, not copies.
#[derive(Clone, Default)]
pub struct Entries {
    // `None` for the empty run (heartbeats), so it costs no allocation.
    shared: Option<Arc<[Entry]>>,
    start: usize,
    end: usize,
}

impl Entries {
    /// The entries at positions `range` of this run (clipped to it), sharing its buffer.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        let end = (self.start + range.end).min(self.end);
        let start = (self.start + range.start).min(end);
        if start == end {
            return Self::default();
        }
        Self {
            shared: self.shared.clone(),
            start,
            end,
        }
    }
}

impl std::ops::Deref for Entries {
    type Target = [Entry];

    fn deref(&self) -> &[Entry] {
        match &self.shared {
            Some(shared) => &shared[self.start..self.end],
            None => &[],
        }
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(entries: Vec<Entry>) -> Self {
        entries.into_iter().collect()
    }
}

impl FromIterator<Entry> for Entries {
    fn from_iter<I: IntoIterator<Item = Entry>>(entries: I) -> Self {
        let shared: Arc<[Entry]> = entries.into_iter().collect();
        let end = shared.len();
        if end == 0 {
            return Self::default();
        }
        Self {
            shared: Some(shared),
            start: 0,
            end,
        }
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Entries {}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Entries {
    // The encoding of a `Vec<Entry>`: a length, then the entries.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Entry>::deserialize(deserializer).map(Self::from)
    }
}

/// Identifies a snapshot: the last log entry it covers and the configuration as of that entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot includes.
    pub index: LogIndex,
    /// Term of that entry.
    pub term: Term,
    /// The configuration in force at `index`.
    pub membership: Membership,
}

/// A state-machine snapshot (state + client sessions) replacing the log prefix up to `meta.index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// Encoded state: see `SnapshotData` in the replica module.
    // Shared bytes: the replica keeps the latest snapshot to send to followers and hands the same
    // buffer to storage. Encoded as a byte string, like `serde_bytes` on a `Vec<u8>`.
    pub data: bytes::Bytes,
}

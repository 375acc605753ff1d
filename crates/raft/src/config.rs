//! Replica configuration: timeouts, flow-control bounds, feature switches and the random seed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// How one replica behaves. Times are in milliseconds of the driver's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftConfig {
    /// This replica's id.
    pub id: NodeId,
    /// Voters of a freshly bootstrapped cluster; empty for a server that joins later.
    pub initial_voters: BTreeSet<NodeId>,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_timeout_max_ms: u64,
    /// Interval between leader heartbeats.
    pub heartbeat_interval_ms: u64,
    /// Run a pre-vote round before incrementing the term (avoids disruption by partitioned nodes).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down; followers
    /// that heard from a leader within the minimum election timeout refuse to vote for others.
    pub check_quorum: bool,
    /// Serve linearizable reads from the leader lease instead of a ReadIndex round. Assumes clock
    /// rates differ by less than `clock_drift_bound_ms` per minimum election timeout.
    pub lease_reads: bool,
    /// How much the lease is shortened to tolerate clock drift between replicas.
    pub clock_drift_bound_ms: u64,
    /// Most entries in one AppendEntries.
    pub max_entries_per_message: usize,
    /// Most entry bytes in one AppendEntries (at least one entry is always sent).
    pub max_bytes_per_message: usize,
    /// Most unacknowledged AppendEntries in flight to one follower (pipelining window).
    pub max_inflight_messages: usize,
    /// Most pending client requests (writes + reads) a leader holds before refusing more.
    pub max_pending_requests: usize,
    /// Take a snapshot once this many applied entries follow the last one; 0 disables snapshots.
    pub snapshot_threshold_entries: u64,
    /// Entries kept in memory behind a new snapshot, so a follower that far behind catches up
    /// from the log rather than by InstallSnapshot; 0 compacts up to the snapshot itself.
    pub snapshot_trailing_entries: u64,
    /// Bytes per InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot a follower accepts.
    pub snapshot_bytes_max: usize,
    /// Most client sessions remembered; the least recently active is evicted beyond it.
    pub max_sessions: usize,
    /// Seed of the replica's random choices (election timeouts).
    pub seed: u64,
    /// Emit [`Effect::Applied`](crate::Effect::Applied) (index, term and a payload fingerprint)
    /// for every applied entry: what tracing and safety checkers consume. A production node that
    /// runs neither turns it off and skips fingerprinting every entry.
    pub report_applied: bool,
}

impl RaftConfig {
    /// Defaults for replica `id` of a cluster bootstrapped with `voters`.
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            id,
            initial_voters: voters.into_iter().collect(),
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            heartbeat_interval_ms: 50,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            clock_drift_bound_ms: 15,
            max_entries_per_message: 1024,
            max_bytes_per_message: 1024 * 1024,
            max_inflight_messages: 8,
            max_pending_requests: 10_000,
            snapshot_threshold_entries: 1_000,
            snapshot_trailing_entries: 0,
            snapshot_chunk_bytes: 64 * 1024,
            snapshot_bytes_max: 256 * 1024 * 1024,
            max_sessions: 10_000,
            seed: id,
            report_applied: true,
        }
    }

    /// Checks the relations the protocol relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms >= self.election_timeout_min_ms
        {
            return Err(ConfigError(
                "heartbeat_interval_ms must be in 1..election_timeout_min_ms".into(),
            ));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(ConfigError(
                "election_timeout_max_ms must exceed election_timeout_min_ms".into(),
            ));
        }
        if self.lease_reads
            && (!self.check_quorum || self.clock_drift_bound_ms >= self.election_timeout_min_ms)
        {
            return Err(ConfigError("lease_reads needs check_quorum and a drift bound below the minimum election timeout".into()));
        }
        if self.max_entries_per_message == 0
            || self.max_inflight_messages == 0
            || self.snapshot_chunk_bytes == 0
        {
            return Err(ConfigError(
                "message, inflight and chunk limits must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// A configuration violates a rule; the message says which.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid raft configuration: {0}")]
pub struct ConfigError(pub String);

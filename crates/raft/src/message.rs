//! Peer-to-peer messages (Raft Figure 2 RPCs plus pre-vote, chunked snapshots and TimeoutNow).

use serde::{Deserialize, Serialize};

use crate::types::{Entries, LogIndex, NodeId, SnapshotMeta, Term};

/// One message between replicas. `term` is the sender's term, except for pre-votes, where it is
/// the term the sender would campaign in (and a granted pre-vote answer echoes it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sending replica.
    pub from: NodeId,
    /// Receiving replica.
    pub to: NodeId,
    /// Term as described on the struct.
    pub term: Term,
    /// What is being said.
    pub body: MessageBody,
}

/// The kinds of peer messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Log replication, and with no entries a heartbeat.
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_index: LogIndex,
        /// Term of that entry.
        prev_term: Term,
        /// New entries, contiguous from `prev_index + 1`.
        entries: Entries,
        /// The leader's commit index.
        leader_commit: LogIndex,
        /// The leader's heartbeat round, echoed back to confirm leadership for reads.
        heartbeat_seq: u64,
    },
    /// Answer to `AppendEntries`.
    AppendEntriesResponse {
        /// Whether the entries matched and were appended.
        success: bool,
        /// On success, the last index known to match the leader's log.
        match_index: LogIndex,
        /// On rejection, the `prev_index` that did not match (lets the leader drop stale answers).
        rejected_index: LogIndex,
        /// On rejection, where the leader should retry: the follower's last index + 1 or the first
        /// index of the conflicting term.
        hint_index: LogIndex,
        /// On rejection, the conflicting term at `rejected_index`, if the follower has that index.
        hint_term: Option<Term>,
        /// True when the follower lost part of its log (checksum repair) and the leader must forget
        /// what it believed the follower had.
        log_lost: bool,
        /// Echo of the leader's heartbeat round.
        heartbeat_seq: u64,
    },
    /// Vote request; a pre-vote changes no state on either side.
    RequestVote {
        /// Candidate's last log index.
        last_index: LogIndex,
        /// Candidate's last log term.
        last_term: Term,
        /// True for the pre-vote phase.
        pre_vote: bool,
        /// True when the leader asked for this election (overrides the followers' leader lease).
        leadership_transfer: bool,
    },
    /// Answer to `RequestVote`.
    RequestVoteResponse {
        /// Whether the vote (or pre-vote) was granted.
        granted: bool,
        /// True when answering a pre-vote.
        pre_vote: bool,
    },
    /// One chunk of a snapshot.
    InstallSnapshot {
        /// Which snapshot.
        // Boxed, like the snapshot in a persist request: a rare message should not make every
        // message (and every input) as large as itself. Same encoding.
        meta: Box<SnapshotMeta>,
        /// Byte offset of `chunk` within the snapshot data.
        offset: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        chunk: Vec<u8>,
        /// True on the last chunk.
        done: bool,
        /// The leader's heartbeat round.
        heartbeat_seq: u64,
    },
    /// Answer to `InstallSnapshot`.
    InstallSnapshotResponse {
        /// Index of the snapshot being answered.
        snapshot_index: LogIndex,
        /// The next byte offset the follower expects.
        next_offset: u64,
        /// True once the snapshot is installed (or was already covered by the follower's commit).
        installed: bool,
        /// When installed, the last index known to match the leader's log.
        match_index: LogIndex,
        /// Echo of the leader's heartbeat round.
        heartbeat_seq: u64,
    },
    /// Leadership transfer: start an election now, skipping pre-vote.
    TimeoutNow,
}

impl MessageBody {
    /// True for the bodies only a leader sends.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            Self::AppendEntries { .. } | Self::InstallSnapshot { .. } | Self::TimeoutNow
        )
    }
}

//! Client requests, replies, the error taxonomy (definite vs indefinite), and sessions (§6.3).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::types::{ClientId, LogIndex, Membership, NodeId, Term};

/// A request from a client session to one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The client session.
    pub client_id: ClientId,
    /// Increasing per session; a retry reuses the number and is applied at most once.
    pub sequence: u64,
    /// What to do.
    pub operation: ClientOperation,
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// Linearizable: confirmed by ReadIndex (or the leader lease when enabled).
    Linearizable,
    /// Served from the local state machine on any replica; the reply is marked stale.
    Stale,
}

/// A client's operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOperation {
    /// A state-machine command, replicated through the log.
    Write(Vec<u8>),
    /// A state-machine query, not logged.
    Read {
        /// The encoded query.
        query: Vec<u8>,
        /// Required freshness.
        consistency: ReadConsistency,
    },
    /// A membership change, committed through the log.
    ChangeMembership(MembershipChange),
    /// Ask the leader to hand leadership to a voter.
    TransferLeadership(NodeId),
}

/// A requested membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a non-voting learner.
    AddLearner(NodeId),
    /// Add a voter (promoting it if it is a learner).
    AddVoter(NodeId),
    /// Remove a voter or learner.
    Remove(NodeId),
    /// Replace the configuration; more than one voter change goes through joint consensus.
    Replace(Membership),
}

/// A successful result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    /// State-machine output (empty for membership changes and transfers).
    pub output: Vec<u8>,
    /// The log index at which the result was produced (applied index for reads).
    pub index: LogIndex,
    /// True when served without confirming leadership (explicit stale read).
    pub stale: bool,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReply {
    /// The session.
    pub client_id: ClientId,
    /// The request number answered.
    pub sequence: u64,
    /// Result or error.
    pub result: Result<ClientResponse, ClientError>,
}

/// Why a request failed. Each variant says whether the outcome is definite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Definite: not applied. This replica is not the leader; retry at `leader_hint`.
    #[error("not the leader (term {term}); last known leader: {leader_hint:?}")]
    NotLeader {
        /// The last leader this replica heard from, if any.
        leader_hint: Option<NodeId>,
        /// This replica's term.
        term: Term,
    },
    /// Indefinite: the write may or may not be applied (leadership was lost while it was pending).
    /// Retry with the same sequence number; the session makes the retry exactly-once.
    #[error("outcome unknown: leadership lost while pending; last known leader: {leader_hint:?}")]
    Indefinite {
        /// The last leader this replica heard from, if any.
        leader_hint: Option<NodeId>,
    },
    /// Definite: another membership change is in progress or the leader has not committed an
    /// entry of its term yet (bug class B9).
    #[error("membership change refused: {reason}")]
    MembershipChangeRefused {
        /// Why.
        reason: String,
    },
    /// Definite: a leadership transfer is in progress; writes are refused until it ends.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// Definite: the transfer did not complete in time.
    #[error("leadership transfer to {target} timed out")]
    TransferFailed {
        /// The intended new leader.
        target: NodeId,
    },
    /// Indefinite: the session no longer remembers this sequence number's result.
    #[error("session {client_id} has no record of request {sequence}")]
    SessionExpired {
        /// The session.
        client_id: ClientId,
        /// The request.
        sequence: u64,
    },
    /// Definite: the leader holds too many pending requests; retry later.
    #[error("too many pending requests")]
    Overloaded,
    /// Definite: the request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl ClientError {
    /// True when the failed operation certainly had no effect.
    pub fn is_definite(&self) -> bool {
        !matches!(self, Self::Indefinite { .. } | Self::SessionExpired { .. })
    }
}

/// What a session remembers: the latest applied request and its output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The last applied sequence number.
    pub sequence: u64,
    /// Its output, returned again for a retry.
    // A byte string: the same encoding as a sequence of bytes, written in one call.
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    /// Log index of the application, used to expire the least recently active session.
    pub index: LogIndex,
}

/// The replicated session table; part of every snapshot so dedup survives compaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    // Hashed for the lookups of every applied command; encoded in id order like a B-tree.
    #[serde(serialize_with = "crate::kv::serialize_sorted")]
    records: HashMap<ClientId, SessionRecord, crate::kv::StableHasher>,
}

/// What the session table says about a request about to be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// First time: apply it.
    New,
    /// Already applied: return this output without applying again.
    Duplicate(Vec<u8>),
    /// Older than the last applied request; its result is forgotten.
    Expired,
}

impl Sessions {
    /// Classifies a request from `client_id` with `sequence`.
    pub fn check(&self, client_id: ClientId, sequence: u64) -> SessionCheck {
        match self.records.get(&client_id) {
            Some(record) if record.sequence == sequence => {
                SessionCheck::Duplicate(record.output.clone())
            }
            Some(record) if record.sequence > sequence => SessionCheck::Expired,
            _ => SessionCheck::New,
        }
    }

    /// Records an applied request, evicting the least recently active session beyond `max_sessions`.
    /// Deterministic: every replica applies the same entries, so every replica evicts the same one.
    pub fn record(
        &mut self,
        client_id: ClientId,
        sequence: u64,
        output: Vec<u8>,
        index: LogIndex,
        max_sessions: usize,
    ) {
        self.records.insert(
            client_id,
            SessionRecord {
                sequence,
                output,
                index,
            },
        );
        self.evict_beyond(max_sessions.max(1));
    }

    /// Applies a committed request at most once: runs `apply` on `command` for a new request and
    /// records its output, returns the recorded output for a duplicate, or fails for a request
    /// older than the session's last one. Same outcome as `check` followed by `record`, with one
    /// lookup and no copy of the output.
    pub(crate) fn apply(
        &mut self,
        client_id: ClientId,
        sequence: u64,
        index: LogIndex,
        max_sessions: usize,
        command: &[u8],
        apply: impl FnOnce(&[u8], &mut Vec<u8>),
    ) -> Result<&[u8], ClientError> {
        let expired = ClientError::SessionExpired {
            client_id,
            sequence,
        };
        if self.records.len() >= max_sessions.max(1) && !self.records.contains_key(&client_id) {
            // Make room first: the new record would have the highest index, so evicting after
            // inserting it would remove the same sessions.
            self.evict_beyond(max_sessions.max(1) - 1);
        }
        let record = match self.records.entry(client_id) {
            std::collections::hash_map::Entry::Occupied(occupied) => {
                let record = occupied.into_mut();
                if record.sequence > sequence {
                    return Err(expired);
                }
                if record.sequence < sequence {
                    // The previous output's buffer is recycled for the new one.
                    record.output.clear();
                    apply(command, &mut record.output);
                    record.sequence = sequence;
                    record.index = index;
                }
                record
            }
            std::collections::hash_map::Entry::Vacant(vacant) => {
                let mut output = Vec::new();
                apply(command, &mut output);
                vacant.insert(SessionRecord {
                    sequence,
                    output,
                    index,
                })
            }
        };
        Ok(&record.output)
    }

    /// Evicts the least recently active sessions until at most `max_sessions` remain.
    fn evict_beyond(&mut self, max_sessions: usize) {
        while self.records.len() > max_sessions {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(id, r)| (r.index, **id))
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => self.records.remove(&id),
                None => break,
            };
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions are part of every snapshot: whatever the table's layout, they encode as the
    /// id-ordered map, so every replica's snapshot of the same state is the same bytes.
    #[test]
    fn sessions_encode_in_id_order() {
        let mut sessions = Sessions::default();
        let mut ordered = std::collections::BTreeMap::new();
        for (index, client_id) in [9u64, 2, 70_000, 5, 1 << 40, 3].into_iter().enumerate() {
            let index = index as u64 + 1;
            let output = vec![client_id as u8; 3];
            let applied = sessions.apply(client_id, 1, index, 100, b"c", |_, out| {
                out.extend_from_slice(&output)
            });
            assert_eq!(applied, Ok(output.as_slice()));
            let record = SessionRecord {
                sequence: 1,
                output,
                index,
            };
            ordered.insert(client_id, record);
        }
        let bytes = postcard::to_allocvec(&sessions).expect("encode");
        assert_eq!(bytes, postcard::to_allocvec(&ordered).expect("encode"));
        let decoded: Sessions = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(decoded, sessions);
        #[derive(Serialize)]
        struct OrderedSessions {
            records: std::collections::BTreeMap<ClientId, SessionRecord>,
        }
        let ordered = OrderedSessions { records: ordered };
        assert_eq!(
            serde_json::to_string(&sessions).ok(),
            serde_json::to_string(&ordered).ok()
        );
    }

    #[test]
    fn apply_runs_a_request_once_and_refuses_older_ones() {
        let mut sessions = Sessions::default();
        let mut runs = 0;
        let mut apply = |sessions: &mut Sessions, sequence: u64, index: u64| {
            sessions
                .apply(7, sequence, index, 10, b"x", |_, out| {
                    runs += 1;
                    out.push(sequence as u8);
                })
                .map(<[u8]>::to_vec)
        };
        assert_eq!(apply(&mut sessions, 1, 1), Ok(vec![1]));
        assert_eq!(apply(&mut sessions, 1, 2), Ok(vec![1]));
        assert_eq!(apply(&mut sessions, 2, 3), Ok(vec![2]));
        assert!(matches!(
            apply(&mut sessions, 1, 4),
            Err(ClientError::SessionExpired { .. })
        ));
        assert_eq!(runs, 2);
        assert_eq!(sessions.check(7, 2), SessionCheck::Duplicate(vec![2]));
    }

    #[test]
    fn apply_evicts_the_least_recently_active_session_beyond_the_limit() {
        let mut sessions = Sessions::default();
        for (index, client_id) in [(1, 10), (2, 20), (3, 10), (4, 30)] {
            let applied = sessions.apply(client_id, index, index, 2, b"c", |_, out| out.push(1));
            assert!(applied.is_ok());
        }
        assert_eq!(sessions.len(), 2);
        assert_eq!(
            sessions.check(20, 2),
            SessionCheck::New,
            "20 was least recent"
        );
        assert_eq!(sessions.check(10, 3), SessionCheck::Duplicate(vec![1]));
        assert_eq!(sessions.check(30, 4), SessionCheck::Duplicate(vec![1]));
    }
}

//! The replica: state, the input/effect contract, persistence gating and applying committed entries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::client::{ClientError, ClientReply, ClientResponse, Sessions};
use crate::config::{ConfigError, RaftConfig};
use crate::kv::{StableHasher, StateMachine, StateMachineError};
use crate::log::RaftLog;
use crate::message::{Message, MessageBody};
use crate::types::{
    ClientId, Entries, Entry, EntryPayload, HardState, LogIndex, Membership, NodeId, Snapshot,
    SnapshotMeta, Term,
};

/// Identifies one persist request; the driver acknowledges it with `Input::PersistDone(token)`.
pub type PersistToken = u64;

/// Something that happened to the replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A message from a peer.
    Message(Message),
    /// A request from a client.
    Client(crate::client::ClientRequest),
    /// A timer set with `Effect::SetTimer` fired (stale or early firings are harmless).
    Timeout,
    /// The persist request with this token is durable (fsync'd).
    PersistDone(PersistToken),
}

/// Something the driver must do. Drain with `Replica::poll_effect` after every `step`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Make this durable, in token order, then feed back `Input::PersistDone(token)`.
    Persist(PersistRequest),
    /// Deliver to a peer (best effort; loss, duplication and reordering are tolerated).
    Send(Message),
    /// Answer a client.
    Reply(ClientReply),
    /// A committed entry was applied to the state machine (for tracing and safety checkers).
    Applied(AppliedEntry),
    /// Feed `Input::Timeout` at or after this time; replaces any earlier request.
    SetTimer {
        /// Driver time in milliseconds.
        at_ms: u64,
    },
    /// The replica's role, term or known leader changed (for tracing).
    RoleChanged {
        /// The new term.
        term: Term,
        /// The new role.
        role: Role,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
}

/// One durable write. Storage applies it atomically in this order: store `snapshot` (dropping
/// entries up to its index, and all entries if its last entry's term differs), then delete entries
/// at or after `log_from` and append `entries` (which start at `log_from`), then store `hard_state`
/// and `repairing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistRequest {
    /// Acknowledge with this token.
    pub token: PersistToken,
    /// New term/vote, if changed.
    pub hard_state: Option<HardState>,
    /// A snapshot replacing the log prefix.
    // Boxed: rare, and inline it would make every effect (most are replies) twice as large.
    pub snapshot: Option<Box<Snapshot>>,
    /// Where the stored log is replaced from, if it changes.
    pub log_from: Option<LogIndex>,
    /// Entries starting at `log_from` (shared with the log and the messages carrying them).
    pub entries: Entries,
    /// `Some(true)`: storage dropped corrupt records, the replica must repair before voting
    /// (written by storage itself); `Some(false)`: the replica finished repairing.
    pub repairing: Option<bool>,
}

/// An applied entry as reported to safety checkers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedEntry {
    /// Log index.
    pub index: LogIndex,
    /// Entry term.
    pub term: Term,
    /// CRC32 of the encoded payload, to compare entries across replicas cheaply.
    pub payload_crc: u32,
}

/// A replica's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes; the term has not been incremented.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads the current term.
    Leader,
}

/// Durable state read back at start-up (from `Storage::load`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredState {
    /// Term and vote.
    pub hard_state: HardState,
    /// The latest snapshot, if one was taken or installed.
    pub snapshot: Option<Snapshot>,
    /// Entries following the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// True when storage found a record failing its checksum and dropped it and everything after;
    /// the replica then refuses to vote until it has caught up from a leader (repair).
    pub corrupted: bool,
}

/// Errors constructing a replica.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    /// The configuration is invalid; nothing was built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The recovered snapshot does not restore; nothing was built.
    #[error("recovered snapshot does not restore: {0}")]
    Snapshot(String),
}

impl From<StateMachineError> for RaftError {
    fn from(e: StateMachineError) -> Self {
        Self::Snapshot(e.to_string())
    }
}

/// The snapshot payload: state-machine bytes plus the session table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotData {
    // A byte string: the same encoding as a sequence of bytes, read in one call.
    #[serde(with = "serde_bytes")]
    pub(crate) state: Vec<u8>,
    pub(crate) sessions: Sessions,
}

/// How the leader replicates to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressState {
    /// One AppendEntries at a time until the match point is found.
    Probe,
    /// Pipelined AppendEntries up to the inflight window.
    Replicate,
    /// Sending a snapshot in chunks.
    Snapshot,
}

/// The leader's view of one follower.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: LogIndex,
    pub(crate) next_index: LogIndex,
    pub(crate) state: ProgressState,
    pub(crate) inflight: VecDeque<LogIndex>,
    pub(crate) paused: bool,
    pub(crate) recent_active: bool,
    pub(crate) progressed: bool,
    pub(crate) acked_heartbeat_seq: u64,
    pub(crate) snapshot_index: LogIndex,
    pub(crate) snapshot_offset: u64,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex) -> Self {
        Self {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            inflight: VecDeque::new(),
            paused: false,
            recent_active: true,
            progressed: false,
            acked_heartbeat_seq: 0,
            snapshot_index: 0,
            snapshot_offset: 0,
        }
    }
}

/// A linearizable read waiting for confirmation and application.
#[derive(Clone, Debug)]
pub(crate) struct PendingRead {
    pub(crate) client_id: ClientId,
    pub(crate) sequence: u64,
    pub(crate) query: Vec<u8>,
    /// None until the leader has committed an entry of its term (B6).
    pub(crate) read_index: Option<LogIndex>,
    pub(crate) heartbeat_seq: u64,
    /// True once confirmed by a quorum or the lease.
    pub(crate) confirmed: bool,
}

/// Leader: clients waiting for their entry to be applied, in index order (one per proposal, plus
/// retries that wait on the entry already in the log).
#[derive(Clone, Debug, Default)]
pub(crate) struct PendingWrites {
    waiters: VecDeque<(LogIndex, ClientId, u64)>,
}

impl PendingWrites {
    /// Adds a waiter for the entry at `index`, after any earlier waiter for the same entry.
    pub(crate) fn add(&mut self, index: LogIndex, client_id: ClientId, sequence: u64) {
        if self.waiters.back().is_none_or(|&(last, ..)| last <= index) {
            self.waiters.push_back((index, client_id, sequence));
        } else {
            let at = self.waiters.partition_point(|&(i, ..)| i <= index);
            self.waiters.insert(at, (index, client_id, sequence));
        }
    }

    /// Number of waiting requests.
    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Removes and returns the next waiter for the entry at `index`, if any. Entries apply in
    /// index order, so a waiter for `index` is always at the front.
    pub(crate) fn pop(&mut self, index: LogIndex) -> Option<(ClientId, u64)> {
        match self.waiters.front() {
            Some(&(i, client_id, sequence)) if i == index => {
                self.waiters.pop_front();
                Some((client_id, sequence))
            }
            _ => None,
        }
    }

    /// Removes every waiter, in index order.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = (ClientId, u64)> + use<> {
        std::mem::take(&mut self.waiters)
            .into_iter()
            .map(|(_, client_id, sequence)| (client_id, sequence))
    }
}

/// A leadership transfer in progress.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transfer {
    pub(crate) target: NodeId,
    pub(crate) deadline_ms: u64,
    /// The client to tell once TimeoutNow is sent; None afterwards.
    pub(crate) waiter: Option<(ClientId, u64)>,
}

/// What the current step changed that must become durable.
#[derive(Clone, Debug, Default)]
pub(crate) struct PersistBuffer {
    pub(crate) hard_state: bool,
    pub(crate) log_from: Option<LogIndex>,
    pub(crate) snapshot: Option<Box<Snapshot>>,
    pub(crate) repair_finished: bool,
}

/// What an issued persist wrote, to learn what became durable on acknowledgement.
#[derive(Clone, Debug)]
pub(crate) struct IssuedPersist {
    pub(crate) last_entry: Option<(LogIndex, Term)>,
    pub(crate) snapshot: Option<(LogIndex, Term)>,
}

/// Whether a message must wait for every earlier persist (`Log`) or only for hard-state writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// The message asserts something about this replica's log or vote (responses, vote requests).
    Log,
    /// The message only depends on the term being durable (leader traffic; §10.2.1 lets a leader
    /// replicate entries before writing them locally).
    HardState,
}

/// A Raft replica driving a state machine `M`.
///
/// **Contract:** after every `step`, drain `poll_effect` until it returns `None`, and perform the
/// effects in order. `Persist` must be made durable in token order before `Input::PersistDone` is fed
/// back; messages that depend on it are held inside the replica until then.
pub struct Replica<M: StateMachine> {
    pub(crate) config: RaftConfig,
    pub(crate) now_ms: u64,
    pub(crate) rng_state: u64,
    pub(crate) hard_state: HardState,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) last_known_leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) commit_index: LogIndex,
    pub(crate) applied_index: LogIndex,
    pub(crate) durable_index: LogIndex,
    pub(crate) membership: Membership,
    pub(crate) state_machine: M,
    pub(crate) sessions: Sessions,
    pub(crate) latest_snapshot: Option<Snapshot>,
    pub(crate) incoming_snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    pub(crate) repairing: bool,
    // Timers (data, not callbacks): a firing before its deadline does nothing.
    pub(crate) election_deadline_ms: u64,
    pub(crate) heartbeat_deadline_ms: u64,
    pub(crate) last_leader_contact_ms: Option<u64>,
    pub(crate) last_timer_ms: Option<u64>,
    // Candidate state.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    // Leader state.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    pub(crate) heartbeat_seq: u64,
    pub(crate) heartbeat_sent_ms: BTreeMap<u64, u64>,
    pub(crate) lease_until_ms: u64,
    pub(crate) pending_writes: PendingWrites,
    /// Leader: the log index of each unapplied command by (session, request number), so a retry
    /// finds its entry without scanning the uncommitted log (B16). Looked up, never iterated.
    pub(crate) proposals: std::collections::HashMap<(ClientId, u64), LogIndex, StableHasher>,
    /// Leader: commands were appended during this step; replicate them when it finishes.
    pub(crate) append_pending: bool,
    pub(crate) pending_reads: Vec<PendingRead>,
    pub(crate) transfer: Option<Transfer>,
    // Persistence.
    pub(crate) persist: PersistBuffer,
    pub(crate) next_token: PersistToken,
    pub(crate) acked_through: PersistToken,
    pub(crate) last_hard_state_token: PersistToken,
    pub(crate) issued: BTreeMap<PersistToken, IssuedPersist>,
    pub(crate) acked_early: BTreeSet<PersistToken>,
    pub(crate) step_messages: Vec<(Message, Gate)>,
    pub(crate) held_messages: VecDeque<(PersistToken, Message)>,
    pub(crate) effects: VecDeque<Effect>,
}

impl<M: StateMachine> std::fmt::Debug for Replica<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.config.id)
            .field("term", &self.hard_state.term)
            .field("voted_for", &self.hard_state.voted_for)
            .field("role", &self.role)
            .field("leader", &self.leader)
            .field("last_index", &self.log.last_index())
            .field("commit_index", &self.commit_index)
            .field("applied_index", &self.applied_index)
            .field("durable_index", &self.durable_index)
            .field("snapshot_index", &self.log.snapshot().index)
            .field("membership", &self.membership)
            .field("repairing", &self.repairing)
            .finish_non_exhaustive()
    }
}

impl<M: StateMachine> Replica<M> {
    /// Builds a replica from its configuration, what storage recovered, and an empty state machine.
    pub fn new(
        config: RaftConfig,
        recovered: RecoveredState,
        mut state_machine: M,
        now_ms: u64,
    ) -> Result<Self, RaftError> {
        config.validate()?;
        let mut sessions = Sessions::default();
        let (meta, latest_snapshot) = match recovered.snapshot {
            Some(snapshot) => {
                let data: SnapshotData = postcard::from_bytes(&snapshot.data)
                    .map_err(|e| RaftError::Snapshot(e.to_string()))?;
                state_machine.restore(&data.state)?;
                sessions = data.sessions;
                (snapshot.meta.clone(), Some(snapshot))
            }
            None => (
                SnapshotMeta {
                    index: 0,
                    term: 0,
                    membership: Membership::with_voters(config.initial_voters.iter().copied()),
                },
                None,
            ),
        };
        let log = RaftLog::new(meta, recovered.entries);
        let membership = log.membership_at(log.last_index());
        let base = log.snapshot().index;
        // Tokens of different incarnations differ (unless one issued over 2^20 writes per ms of
        // uptime), so a stray completion from before a crash cannot acknowledge a new write.
        let first_token = now_ms.saturating_mul(1 << 20).saturating_add(1);
        let mut replica = Self {
            rng_state: config.seed ^ config.id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            config,
            now_ms,
            hard_state: recovered.hard_state,
            role: Role::Follower,
            leader: None,
            last_known_leader: None,
            durable_index: log.last_index(),
            log,
            commit_index: base,
            applied_index: base,
            membership,
            state_machine,
            sessions,
            latest_snapshot,
            incoming_snapshot: None,
            repairing: recovered.corrupted,
            election_deadline_ms: 0,
            heartbeat_deadline_ms: u64::MAX,
            last_leader_contact_ms: None,
            last_timer_ms: None,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            heartbeat_seq: 0,
            heartbeat_sent_ms: BTreeMap::new(),
            lease_until_ms: 0,
            pending_writes: PendingWrites::default(),
            proposals: Default::default(),
            append_pending: false,
            pending_reads: Vec::new(),
            transfer: None,
            persist: PersistBuffer::default(),
            next_token: first_token,
            acked_through: first_token - 1,
            last_hard_state_token: first_token - 1,
            issued: BTreeMap::new(),
            acked_early: BTreeSet::new(),
            step_messages: Vec::new(),
            held_messages: VecDeque::new(),
            effects: VecDeque::new(),
        };
        replica.reset_election_deadline();
        replica.finish_step();
        Ok(replica)
    }

    /// Feeds one input at driver time `now_ms`; then drain `poll_effect`.
    pub fn step(&mut self, now_ms: u64, input: Input) {
        self.now_ms = self.now_ms.max(now_ms);
        self.handle_input(input);
        self.finish_step();
    }

    /// Feeds several inputs that arrived together at driver time `now_ms`, in order, then
    /// finishes once; then drain `poll_effect`. The outcome is that of stepping them one by one,
    /// except that the work is shared: the client writes among them become one log append, one
    /// `Persist` and one AppendEntries per follower (as flow control allows), and everything
    /// committed is applied once at the end. Messages that depend on the batch's writes are
    /// released when its single persist is acknowledged. A driver uses this to hand over
    /// everything it has queued for the replica (a burst of client requests, a socket's backlog).
    pub fn step_many(&mut self, now_ms: u64, inputs: impl IntoIterator<Item = Input>) {
        self.now_ms = self.now_ms.max(now_ms);
        for input in inputs {
            self.handle_input(input);
        }
        self.finish_step();
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Message(message) => self.handle_message(message),
            Input::Client(request) => self.handle_client(request),
            Input::Timeout => self.handle_timeout(),
            Input::PersistDone(token) => self.handle_persist_done(token),
        }
    }

    /// The next effect to perform, in order; `None` when drained.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Drains every pending effect.
    #[must_use]
    pub fn drain_effects(&mut self) -> Vec<Effect> {
        self.effects.drain(..).collect()
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// Current term.
    pub fn term(&self) -> Term {
        self.hard_state.term
    }

    /// Current vote.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.hard_state.voted_for
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Commit index.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// Index of the last entry applied to the state machine.
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    /// Index of the last log entry.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// Term of the entry at `index`, if known (held or the snapshot boundary).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }

    /// The entry at `index`, if held (not compacted).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The compaction boundary: entries at or below it are no longer held (index 0 when none
    /// were compacted). The latest snapshot itself is at or above it, by at most
    /// `snapshot_trailing_entries`.
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        self.log.snapshot()
    }

    /// The latest configuration (in force as soon as appended).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The state machine.
    pub fn state_machine(&self) -> &M {
        &self.state_machine
    }

    /// True while recovering from a corrupted log (no votes until caught up).
    pub fn is_repairing(&self) -> bool {
        self.repairing
    }

    /// The configuration.
    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    // ---- randomness and timers -------------------------------------------------------------

    /// SplitMix64: small, seedable and deterministic.
    pub(crate) fn next_random(&mut self) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn reset_election_deadline(&mut self) {
        let span = self.config.election_timeout_max_ms - self.config.election_timeout_min_ms;
        let jitter = self.next_random() % span.max(1);
        self.election_deadline_ms = self.now_ms + self.config.election_timeout_min_ms + jitter;
    }

    fn handle_timeout(&mut self) {
        if self.role == Role::Leader {
            if self.now_ms >= self.heartbeat_deadline_ms {
                self.heartbeat_deadline_ms = self.now_ms + self.config.heartbeat_interval_ms;
                self.broadcast_heartbeat();
            }
            if self.now_ms >= self.election_deadline_ms {
                self.election_deadline_ms = self.now_ms + self.config.election_timeout_min_ms;
                self.check_quorum_or_step_down();
            }
            if let Some(Transfer {
                target,
                deadline_ms,
                waiter,
            }) = self.transfer
                && self.now_ms >= deadline_ms
            {
                self.transfer = None;
                if let Some((client_id, sequence)) = waiter {
                    self.reply(
                        client_id,
                        sequence,
                        Err(ClientError::TransferFailed { target }),
                    );
                }
            }
        } else if self.now_ms >= self.election_deadline_ms {
            self.reset_election_deadline();
            if self.leader.is_some() {
                self.leader = None;
                self.emit_role();
            }
            self.start_election(self.config.pre_vote, false);
        }
    }

    fn next_deadline_ms(&self) -> u64 {
        let mut at = self.election_deadline_ms;
        if self.role == Role::Leader {
            at = at.min(self.heartbeat_deadline_ms);
            if let Some(transfer) = self.transfer {
                at = at.min(transfer.deadline_ms);
            }
        }
        at
    }

    // ---- outputs ------------------------------------------------------------------------------

    pub(crate) fn send(&mut self, to: NodeId, term: Term, body: MessageBody, gate: Gate) {
        let message = Message {
            from: self.config.id,
            to,
            term,
            body,
        };
        self.step_messages.push((message, gate));
    }

    pub(crate) fn reply(
        &mut self,
        client_id: ClientId,
        sequence: u64,
        result: Result<ClientResponse, ClientError>,
    ) {
        self.effects.push_back(Effect::Reply(ClientReply {
            client_id,
            sequence,
            result,
        }));
    }

    pub(crate) fn emit_role(&mut self) {
        self.effects.push_back(Effect::RoleChanged {
            term: self.hard_state.term,
            role: self.role,
            leader: self.leader,
        });
    }

    pub(crate) fn not_leader_error(&self) -> ClientError {
        ClientError::NotLeader {
            leader_hint: self.leader.or(self.last_known_leader),
            term: self.hard_state.term,
        }
    }

    /// Ends a step: apply what committed, snapshot, issue the persist, release or hold messages,
    /// and ask for a timer.
    fn finish_step(&mut self) {
        if std::mem::take(&mut self.append_pending) && self.role == Role::Leader {
            self.broadcast_append();
        }
        self.apply_committed();
        self.maybe_take_snapshot();
        let issued_token = self.issue_persist();
        let log_gate = self.next_token - 1;
        for (message, gate) in std::mem::take(&mut self.step_messages) {
            let token = match gate {
                Gate::Log => log_gate,
                Gate::HardState => self.last_hard_state_token,
            };
            if token <= self.acked_through {
                self.effects.push_back(Effect::Send(message));
            } else {
                self.held_messages.push_back((token, message));
            }
        }
        let _ = issued_token;
        let at_ms = self.next_deadline_ms();
        if self.last_timer_ms != Some(at_ms) {
            self.last_timer_ms = Some(at_ms);
            self.effects.push_back(Effect::SetTimer { at_ms });
        }
    }

    // ---- persistence --------------------------------------------------------------------------

    /// Marks the log as changed from `index` on (truncation or append).
    pub(crate) fn log_changed_from(&mut self, index: LogIndex) {
        self.persist.log_from = Some(self.persist.log_from.map_or(index, |from| from.min(index)));
        self.durable_index = self.durable_index.min(index.saturating_sub(1));
    }

    fn issue_persist(&mut self) -> Option<PersistToken> {
        let buffer = std::mem::take(&mut self.persist);
        if !buffer.hard_state
            && buffer.log_from.is_none()
            && buffer.snapshot.is_none()
            && !buffer.repair_finished
        {
            return None;
        }
        let token = self.next_token;
        self.next_token += 1;
        let log_from = buffer.log_from.map(|from| from.max(self.log.first_index()));
        let entries = match log_from {
            Some(from) => self.log.slice(from, self.log.last_index() + 1, usize::MAX),
            None => Entries::default(),
        };
        let last_entry = entries.last().map(|e| (e.index, e.term));
        let snapshot_id = buffer
            .snapshot
            .as_ref()
            .map(|s| (s.meta.index, s.meta.term));
        if buffer.hard_state {
            self.last_hard_state_token = token;
        }
        self.issued.insert(
            token,
            IssuedPersist {
                last_entry,
                snapshot: snapshot_id,
            },
        );
        self.effects.push_back(Effect::Persist(PersistRequest {
            token,
            hard_state: buffer.hard_state.then_some(self.hard_state),
            snapshot: buffer.snapshot,
            log_from,
            entries,
            repairing: buffer.repair_finished.then_some(false),
        }));
        Some(token)
    }

    fn handle_persist_done(&mut self, token: PersistToken) {
        if token <= self.acked_through || token >= self.next_token {
            return; // duplicate or unknown acknowledgement
        }
        self.acked_early.insert(token);
        // Acknowledgements may arrive out of order (B13); durability is learned in token order.
        while self.acked_early.remove(&(self.acked_through + 1)) {
            self.acked_through += 1;
            if let Some(issued) = self.issued.remove(&self.acked_through) {
                for (index, term) in issued.snapshot.into_iter().chain(issued.last_entry) {
                    if self.log.term_at(index) == Some(term) {
                        self.durable_index = self.durable_index.max(index);
                    }
                }
            }
        }
        while let Some((gate, _)) = self.held_messages.front() {
            if *gate > self.acked_through {
                break;
            }
            if let Some((_, message)) = self.held_messages.pop_front() {
                self.effects.push_back(Effect::Send(message));
            }
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    // ---- applying -----------------------------------------------------------------------------

    fn apply_committed(&mut self) {
        // Apply only what is committed *and* durable here, so a restart never finds an applied
        // entry missing from its own log (B12).
        let limit = self.commit_index.min(self.durable_index);
        while self.applied_index < limit {
            let index = self.applied_index + 1;
            let Some(entry) = self.log.entry(index) else {
                break;
            };
            self.applied_index = index;
            if self.config.report_applied {
                let payload_crc = payload_fingerprint(&entry.payload);
                self.effects.push_back(Effect::Applied(AppliedEntry {
                    index,
                    term: entry.term,
                    payload_crc,
                }));
            }
            let is_membership = matches!(entry.payload, EntryPayload::Membership(_));
            // Commands, the hot path, are applied in place: the entry stays borrowed from the log
            // while the session table and the state machine change, instead of being cloned.
            if let EntryPayload::Command {
                client_id,
                sequence,
                command,
            } = &entry.payload
            {
                let (client_id, sequence) = (*client_id, *sequence);
                if !self.proposals.is_empty()
                    && let std::collections::hash_map::Entry::Occupied(proposal) =
                        self.proposals.entry((client_id, sequence))
                    && *proposal.get() == index
                {
                    proposal.remove();
                }
                let state_machine = &mut self.state_machine;
                let result = self.sessions.apply(
                    client_id,
                    sequence,
                    index,
                    self.config.max_sessions,
                    command,
                    |command, output| state_machine.apply_into(command, output),
                );
                answer_waiters(&mut self.effects, &mut self.pending_writes, index, result);
                continue;
            }
            if is_membership {
                self.after_membership_applied();
            }
            answer_waiters(&mut self.effects, &mut self.pending_writes, index, Ok(&[]));
        }
        self.serve_ready_reads();
    }

    pub(crate) fn snapshot_data(&self) -> bytes::Bytes {
        encode_snapshot_data(&self.state_machine.snapshot(), &self.sessions).into()
    }

    fn maybe_take_snapshot(&mut self) {
        let threshold = self.config.snapshot_threshold_entries;
        let last_snapshot = self
            .latest_snapshot
            .as_ref()
            .map_or(self.log.snapshot().index, |s| s.meta.index)
            .max(self.log.snapshot().index);
        if threshold == 0 || self.applied_index < last_snapshot + threshold {
            return;
        }
        let index = self.applied_index;
        let Some(term) = self.log.term_at(index) else {
            return;
        };
        let meta = SnapshotMeta {
            index,
            term,
            membership: self.log.membership_at(index),
        };
        let snapshot = Snapshot {
            meta: meta.clone(),
            data: self.snapshot_data(),
        };
        // Keep the last `snapshot_trailing_entries` in memory: a follower a little behind then
        // catches up from the log instead of downloading the whole snapshot (etcd keeps 5,000).
        // Storage compacts at the snapshot itself; these entries are a cache for followers.
        let boundary = index.saturating_sub(self.config.snapshot_trailing_entries);
        if boundary == index {
            self.log.install_snapshot(meta);
        } else if boundary > self.log.snapshot().index
            && let Some(boundary_term) = self.log.term_at(boundary)
        {
            let boundary_meta = SnapshotMeta {
                index: boundary,
                term: boundary_term,
                membership: self.log.membership_at(boundary),
            };
            self.log.install_snapshot(boundary_meta);
        }
        self.latest_snapshot = Some(snapshot.clone());
        self.persist.snapshot = Some(Box::new(snapshot));
    }
}

/// The encoding of `SnapshotData { state, sessions }`, from borrowed parts: the session table is
/// not copied to be encoded.
fn encode_snapshot_data(state: &[u8], sessions: &Sessions) -> Vec<u8> {
    /// Encodes as `SnapshotData` (a byte string is a length and the bytes, like a `Vec<u8>`).
    #[derive(Serialize)]
    struct Borrowed<'a> {
        #[serde(with = "serde_bytes")]
        state: &'a [u8],
        sessions: &'a Sessions,
    }
    // Sized up front (a session record is typically a few dozen bytes) so the encoding does not
    // grow, and copy, its buffer several times.
    let estimate = state.len() + 64 * sessions.len() + 16;
    postcard::to_extend(&Borrowed { state, sessions }, Vec::with_capacity(estimate))
        .unwrap_or_default()
}

/// Replies to every client waiting for the entry at `index` (usually one; more after retries).
fn answer_waiters(
    effects: &mut VecDeque<Effect>,
    waiters: &mut PendingWrites,
    index: LogIndex,
    result: Result<&[u8], ClientError>,
) {
    while let Some((client_id, sequence)) = waiters.pop(index) {
        let result = match &result {
            Ok(output) => Ok(ClientResponse {
                output: output.to_vec(),
                index,
                stale: false,
            }),
            Err(error) => Err(error.clone()),
        };
        effects.push_back(Effect::Reply(ClientReply {
            client_id,
            sequence,
            result,
        }));
    }
}

/// CRC32 of an entry's payload, computed without encoding it: applied on every replica for every
/// entry, so it must not allocate. Equal payloads give equal fingerprints on every replica.
fn payload_fingerprint(payload: &EntryPayload) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    match payload {
        EntryPayload::Noop => hasher.update(&[0]),
        EntryPayload::Command {
            client_id,
            sequence,
            command,
        } => {
            // One call for the fixed-size head: the CRC of a concatenation does not depend on
            // how it is split, and small updates are the slow path.
            let mut head = [0u8; 17];
            head[0] = 1;
            head[1..9].copy_from_slice(&client_id.to_le_bytes());
            head[9..].copy_from_slice(&sequence.to_le_bytes());
            hasher.update(&head);
            hasher.update(command);
        }
        EntryPayload::Membership(membership) => {
            // Rare: encoding it is fine.
            hasher.update(&[2]);
            hasher.update(&postcard::to_allocvec(membership).unwrap_or_default());
        }
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_data_encodes_as_the_owned_struct() {
        let mut sessions = Sessions::default();
        for client_id in [3u64, 1, 2] {
            let applied = sessions.apply(client_id, 5, client_id, 10, b"c", |_, out| {
                out.extend_from_slice(&[client_id as u8; 70])
            });
            assert!(applied.is_ok());
        }
        let state = vec![9u8; 300];
        let bytes = encode_snapshot_data(&state, &sessions);
        let owned = SnapshotData { state, sessions };
        assert_eq!(bytes, postcard::to_allocvec(&owned).expect("encode"));
        assert_eq!(postcard::from_bytes::<SnapshotData>(&bytes), Ok(owned));
    }

    #[test]
    fn command_fingerprint_is_the_crc_of_tag_session_and_bytes() {
        let payload = EntryPayload::Command {
            client_id: 0x0102_0304_0506_0708,
            sequence: 42,
            command: b"put k v".to_vec().into(),
        };
        let mut bytes = vec![1];
        bytes.extend_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        bytes.extend_from_slice(&42u64.to_le_bytes());
        bytes.extend_from_slice(b"put k v");
        assert_eq!(payload_fingerprint(&payload), crc32fast::hash(&bytes));
        assert_eq!(
            payload_fingerprint(&EntryPayload::Noop),
            crc32fast::hash(&[0])
        );
    }
}

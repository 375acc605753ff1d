//! Raft on the simulator: [`RaftNode`] runs a `raft::Replica` with the KV state machine as a
//! [`Process`], [`SafetyObserver`] asserts Raft's five safety properties after every event, and
//! [`run`] drives one seeded run (register workload, random nemesis) with both.
//!
//! Each node is also a client **gateway**: a register operation arriving at any node is sent to
//! the leader it believes in (itself included), and retried on redirect, indefinite answers and
//! timeouts with the same `(client, sequence)`, so the replicated session table applies it at
//! most once. The gateway answers `ok` on success, `fail` only when the outcome is certain (the
//! local replica refused before proposing, or a compare-and-set found another value) and `info`
//! otherwise — a forwarded request may be duplicated by the network and applied later, so once a
//! request left the node its failure is never called definite.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use raft::{
    AppliedEntry, ClientError, ClientOperation, ClientRequest, ClientResponse, Entry, Kv,
    KvCommand, KvOutput, KvQuery, LogIndex, RaftConfig, ReadConsistency, RecordKeys, Replica, Role,
    StateMachine, Term,
};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::nemesis::{NemesisKind, NemesisPlan};
use crate::process::{ClientId, Context, Input, NodeId, Process, Storage, Token};
use crate::scenario::ScenarioOptions;
use crate::simulation::{Report, Simulation};
use crate::trace::Trace;
use crate::workload::{Call, Invocation, Outcome, RegisterOperation, RegisterService, Workload};
use crate::{RegisterWorkload, SimRng};

/// Timer tokens with this bit set belong to the gateway; the others carry raft's `at_ms`.
const GATEWAY_TIMER_BIT: Token = 1 << 63;

/// Most requests one node forwards or serves for others at a time (older entries are dropped).
const ROUTES_MAX: usize = 4_096;

/// Most applied entries a node keeps for the observer between two `take_applied` calls (a node
/// run without an observer stops recording beyond this, instead of growing without bound).
const APPLIED_MAX: usize = 1 << 20;

/// Most attempts the gateway makes for one request before giving up.
const ATTEMPTS_MAX: u32 = 64;

/// Protocol and gateway settings shared by every node of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftSettings {
    /// Voters of the bootstrap configuration (other nodes start as bystanders until added).
    pub voters: Vec<NodeId>,
    /// Every node of the run, `first_node..first_node + nodes`; the gateway tries them in turn.
    pub nodes: usize,
    /// The lowest node id (0 in the simulator; a real cluster may number its nodes from 1).
    pub first_node: NodeId,
    /// Shortest election timeout, in milliseconds of local time.
    pub election_timeout_min_ms: u64,
    /// Longest election timeout, in milliseconds.
    pub election_timeout_max_ms: u64,
    /// Leader heartbeat period, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Applied entries between snapshots.
    pub snapshot_threshold_entries: u64,
    /// Entries kept behind a new snapshot for followers to catch up from.
    pub snapshot_trailing_entries: u64,
    /// Snapshot chunk size, in bytes.
    pub snapshot_chunk_bytes: usize,
    /// A gateway attempt unanswered after this long is retried elsewhere, in milliseconds.
    pub attempt_timeout_ms: u64,
    /// The gateway stops retrying and answers after this long, in milliseconds.
    pub give_up_ms: u64,
    /// Serve linearizable reads from the leader lease instead of a ReadIndex round.
    pub lease_reads: bool,
    /// Report every applied entry (the safety observer needs it; a production node does not).
    pub report_applied: bool,
}

impl RaftSettings {
    /// Settings for `nodes` nodes, all voters, with timeouts suited to cross-continent links.
    pub fn new(nodes: usize) -> Self {
        Self {
            voters: (0..nodes as NodeId).collect(),
            nodes,
            first_node: 0,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            heartbeat_interval_ms: 60,
            snapshot_threshold_entries: 200,
            snapshot_trailing_entries: 0,
            snapshot_chunk_bytes: 4 * 1024,
            attempt_timeout_ms: 400,
            give_up_ms: 1_500,
            lease_reads: false,
            report_applied: true,
        }
    }

    fn raft_config(&self, node: NodeId, seed: u64) -> RaftConfig {
        let mut config = RaftConfig::new(node, self.voters.iter().copied());
        config.election_timeout_min_ms = self.election_timeout_min_ms;
        config.election_timeout_max_ms = self.election_timeout_max_ms;
        config.heartbeat_interval_ms = self.heartbeat_interval_ms;
        config.snapshot_threshold_entries = self.snapshot_threshold_entries;
        config.snapshot_trailing_entries = self.snapshot_trailing_entries;
        config.snapshot_chunk_bytes = self.snapshot_chunk_bytes;
        config.lease_reads = self.lease_reads;
        config.report_applied = self.report_applied;
        config.seed = seed;
        config
    }
}

/// What travels between simulated nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftSimMessage {
    /// A Raft protocol message.
    Raft(raft::Message),
    /// A client request relayed by a gateway to the node it believes leads.
    Forward {
        /// The session (the simulator's client id).
        client: ClientId,
        /// The request number (the simulator's request id).
        sequence: u64,
        /// What to do.
        operation: ClientOperation,
    },
    /// The replica's answer to a forwarded request, relayed back to the gateway.
    Answer {
        /// The session.
        client: ClientId,
        /// The request number.
        sequence: u64,
        /// The replica's result.
        result: Result<ClientResponse, ClientError>,
    },
}

/// A request to a simulated node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRequest {
    /// A register operation, routed and retried by the gateway.
    Register(RegisterOperation),
    /// Any operation, routed to the leader and retried by the gateway like a register operation.
    Routed(ClientOperation),
    /// A raw operation handed to this node's replica once, answered with its raw reply (tests:
    /// membership changes, refusals on a minority).
    Direct(ClientOperation),
}

/// What a simulated node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftResponse {
    /// A replica's reply (to a direct request, or the gateway's final answer).
    Reply(Result<ClientResponse, ClientError>),
    /// The gateway gave up; `definite` when no attempt can still take effect.
    GaveUp {
        /// True when the operation certainly had no effect.
        definite: bool,
        /// The last error seen, or why it gave up.
        reason: String,
    },
}

/// The raft operation performing a register operation on the KV store (values as decimal text).
pub fn register_operation(operation: &RegisterOperation) -> ClientOperation {
    match operation {
        RegisterOperation::Read { key } => ClientOperation::Read {
            query: KvQuery::Get { key: key.clone() }.encode(),
            consistency: ReadConsistency::Linearizable,
        },
        RegisterOperation::Write { key, value } => ClientOperation::Write(
            KvCommand::Put {
                key: key.clone(),
                value: value.to_string().into_bytes(),
            }
            .encode(),
        ),
        RegisterOperation::Cas { key, expected, new } => ClientOperation::Write(
            KvCommand::CompareAndSwap {
                key: key.clone(),
                expected: Some(expected.to_string().into_bytes()),
                new: Some(new.to_string().into_bytes()),
            }
            .encode(),
        ),
    }
}

fn decimal(bytes: &Option<Vec<u8>>) -> Option<Option<i64>> {
    match bytes {
        None => Some(None),
        Some(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok().map(Some),
    }
}

/// How a register operation ended, given a node's response.
pub fn register_outcome(operation: &RegisterOperation, response: &RaftResponse) -> Outcome {
    let response = match response {
        RaftResponse::GaveUp { definite, reason } if *definite => {
            return Outcome::Fail(reason.clone());
        }
        RaftResponse::GaveUp { reason, .. } => return Outcome::Info(reason.clone()),
        RaftResponse::Reply(Err(error)) if error.is_definite() => {
            return Outcome::Fail(error.to_string());
        }
        RaftResponse::Reply(Err(error)) => return Outcome::Info(error.to_string()),
        RaftResponse::Reply(Ok(response)) => response,
    };
    match (operation, KvOutput::decode(&response.output)) {
        (RegisterOperation::Read { .. }, KvOutput::Value(value)) => match decimal(&value) {
            Some(value) => Outcome::Ok(json!(value)),
            None => Outcome::Info(format!("undecodable value {value:?}")),
        },
        (RegisterOperation::Write { value, .. }, KvOutput::Value(_)) => Outcome::Ok(json!(value)),
        (RegisterOperation::Cas { expected, new, .. }, KvOutput::Swapped { swapped, .. }) => {
            if swapped {
                Outcome::Ok(json!([expected, new]))
            } else {
                Outcome::Fail("precondition failed".into())
            }
        }
        // A mismatched output says the service is broken; claim nothing about it.
        (_, other) => Outcome::Info(format!("mismatched output {other:?}")),
    }
}

/// A request the gateway is routing.
#[derive(Clone, Debug)]
struct Routing {
    operation: ClientOperation,
    target: NodeId,
    attempts: u32,
    /// Some attempt may still take effect (forwarded, unanswered, or answered indefinitely).
    maybe_applied: bool,
    /// An attempt handed to the local replica has not been answered yet.
    local_pending: bool,
    retry_at_ms: u64,
    deadline_ms: u64,
    last_error: Option<String>,
}

/// Who asked this replica for a request: the local gateway, another node's gateway, or a direct
/// client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Gateway(NodeId),
    Direct,
}

/// A Raft replica with a state machine (the KV store unless told otherwise), as a simulated
/// process (see the module docs).
pub struct RaftNode<S: StateMachine = Kv> {
    node: NodeId,
    settings: Rc<RaftSettings>,
    /// Recovered state waiting for [`Input::Start`], which brings the time the replica needs.
    boot: Option<raft::RecoveredState>,
    replica: Option<Replica<S>>,
    keys: RecordKeys,
    next_persist_token: Token,
    /// `(last sim token of its writes, raft token)`, in issue order.
    persists: VecDeque<(Token, raft::PersistToken)>,
    routing: BTreeMap<(ClientId, u64), Routing>,
    origins: BTreeMap<(ClientId, u64), Origin>,
    /// Final gateway answers produced while draining, replied after the current input.
    finished: Vec<((ClientId, u64), RaftResponse)>,
    gateway_timer_ms: Option<u64>,
    applied: Vec<AppliedEntry>,
    stopped: Option<String>,
}

impl<S: StateMachine + std::fmt::Debug> std::fmt::Debug for RaftNode<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RaftNode")
            .field("node", &self.node)
            .field("replica", &self.replica)
            .field("routing", &self.routing.len())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl<S: StateMachine + Default> RaftNode<S> {
    /// Node `node`, recovering whatever `storage` durably holds (empty on first boot).
    pub fn new(node: NodeId, settings: Rc<RaftSettings>, storage: &Storage) -> Self {
        let (keys, recovered) = RecordKeys::recover(storage.prefix(RecordKeys::PREFIX));
        Self {
            node,
            settings,
            boot: Some(recovered),
            replica: None,
            keys,
            next_persist_token: 1,
            persists: VecDeque::new(),
            routing: BTreeMap::new(),
            origins: BTreeMap::new(),
            finished: Vec::new(),
            gateway_timer_ms: None,
            applied: Vec::new(),
            stopped: None,
        }
    }

    /// The replica, once started (and unless it stopped on a storage error).
    pub fn replica(&self) -> Option<&Replica<S>> {
        self.replica.as_ref()
    }

    /// Why the node stopped (fail-stop on an unencodable persist or a bad recovery), if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Takes the entries applied since the last call (for the safety observer; at most
    /// 2²⁰ are kept between calls).
    pub fn take_applied(&mut self) -> Vec<AppliedEntry> {
        std::mem::take(&mut self.applied)
    }

    fn start(&mut self, now_ms: u64, context: &mut NodeContext<'_>) {
        let Some(recovered) = self.boot.take() else {
            return;
        };
        // Each incarnation draws its election randomness from the run's one RNG.
        let seed = context.rng().random::<u64>();
        let config = self.settings.raft_config(self.node, seed);
        match Replica::new(config, recovered, S::default(), now_ms) {
            Ok(replica) => self.replica = Some(replica),
            Err(error) => self.stopped = Some(format!("cannot start: {error}")),
        }
    }

    fn step(&mut self, now_ms: u64, input: raft::Input, context: &mut NodeContext<'_>) {
        let Some(replica) = self.replica.as_mut() else {
            return;
        };
        replica.step(now_ms, input);
        self.drain(now_ms, context);
    }

    /// Performs the replica's effects in order (the raft contract: drain after every step).
    fn drain(&mut self, now_ms: u64, context: &mut NodeContext<'_>) {
        // Bounded: every effect was produced by the step just taken.
        while let Some(effect) = self.replica.as_mut().and_then(Replica::poll_effect) {
            match effect {
                raft::Effect::Send(message) => {
                    context.send(message.to, RaftSimMessage::Raft(message));
                }
                raft::Effect::Reply(reply) => {
                    let key = (reply.client_id, reply.sequence);
                    self.route_reply(now_ms, key, reply.result, context);
                }
                raft::Effect::SetTimer { at_ms } => {
                    let after_ns = at_ms.saturating_sub(now_ms).saturating_mul(1_000_000);
                    context.set_timer(after_ns, at_ms & !GATEWAY_TIMER_BIT);
                }
                raft::Effect::Persist(request) => self.persist(&request, context),
                raft::Effect::Applied(entry) => {
                    context.log_with(|| format!("applied {entry:?}"));
                    if self.applied.len() < APPLIED_MAX {
                        self.applied.push(entry);
                    }
                }
                raft::Effect::RoleChanged { term, role, leader } => {
                    context.log_with(|| format!("{role:?} in term {term}, leader {leader:?}"));
                }
            }
        }
    }

    fn persist(&mut self, request: &raft::PersistRequest, context: &mut NodeContext<'_>) {
        match self.keys.writes(request) {
            Ok(writes) => {
                for (key, value) in writes {
                    context.persist(key, value, self.next_persist_token);
                    self.next_persist_token += 1;
                }
                self.persists
                    .push_back((self.next_persist_token - 1, request.token));
            }
            Err(error) => {
                // Fail-stop: a replica must not run on after losing a write.
                self.stopped = Some(format!("persist failed: {error}"));
                self.replica = None;
            }
        }
    }

    fn persisted(&mut self, now_ms: u64, token: Token, context: &mut NodeContext<'_>) {
        while let Some(&(last, raft_token)) = self.persists.front() {
            if last > token {
                break;
            }
            self.persists.pop_front();
            self.step(now_ms, raft::Input::PersistDone(raft_token), context);
        }
    }

    fn route_reply(
        &mut self,
        now_ms: u64,
        key: (ClientId, u64),
        result: Result<ClientResponse, ClientError>,
        context: &mut NodeContext<'_>,
    ) {
        match self.origins.remove(&key) {
            Some(Origin::Direct) => context.reply(key.0, key.1, RaftResponse::Reply(result)),
            Some(Origin::Gateway(origin)) if origin == self.node => {
                self.answered(now_ms, key, result, true);
            }
            Some(Origin::Gateway(origin)) => {
                let answer = RaftSimMessage::Answer {
                    client: key.0,
                    sequence: key.1,
                    result,
                };
                context.send(origin, answer);
            }
            None => {}
        }
    }

    fn remember_origin(&mut self, key: (ClientId, u64), origin: Origin) {
        if self.origins.len() >= ROUTES_MAX {
            self.origins.pop_first();
        }
        self.origins.insert(key, origin);
    }

    /// A gateway attempt was answered (by the local replica when `local`).
    fn answered(
        &mut self,
        now_ms: u64,
        key: (ClientId, u64),
        result: Result<ClientResponse, ClientError>,
        local: bool,
    ) {
        let nodes = self.settings.nodes.max(1) as NodeId;
        let first_node = self.settings.first_node;
        let Some(routing) = self.routing.get_mut(&key) else {
            return;
        };
        if local {
            routing.local_pending = false;
        }
        let error = match result {
            Ok(response) => {
                self.routing.remove(&key);
                self.finished.push((key, RaftResponse::Reply(Ok(response))));
                return;
            }
            Err(error) => error,
        };
        let hint = match &error {
            ClientError::NotLeader { leader_hint, .. } => *leader_hint,
            ClientError::Indefinite { leader_hint } => *leader_hint,
            _ => None,
        };
        if !error.is_definite() {
            routing.maybe_applied = true;
        }
        routing.last_error = Some(error.to_string());
        let retryable = matches!(
            error,
            ClientError::NotLeader { .. }
                | ClientError::Indefinite { .. }
                | ClientError::Overloaded
                | ClientError::TransferInProgress
        );
        if !retryable {
            let definite = !routing.maybe_applied && error.is_definite();
            let response = if definite {
                RaftResponse::Reply(Err(error))
            } else {
                RaftResponse::GaveUp {
                    definite: false,
                    reason: error.to_string(),
                }
            };
            self.routing.remove(&key);
            self.finished.push((key, response));
            return;
        }
        // Follow a hint naming another node at once; otherwise try the next node after a pause.
        match hint {
            Some(leader) if leader != routing.target => {
                routing.target = leader;
                routing.retry_at_ms = now_ms;
            }
            _ => {
                let offset = routing.target.wrapping_sub(first_node);
                routing.target = first_node + offset.wrapping_add(1) % nodes;
                routing.retry_at_ms = now_ms + self.settings.heartbeat_interval_ms;
            }
        }
    }
}

/// The context a [`RaftNode`] writes its effects into.
type NodeContext<'a> = Context<'a, RaftSimMessage, RaftResponse>;

impl<S: StateMachine + Default> RaftNode<S> {
    /// Starts routing a register operation from a client of this node.
    fn accept(&mut self, now_ms: u64, key: (ClientId, u64), operation: ClientOperation) {
        if self.routing.contains_key(&key) {
            return;
        }
        let target = self
            .replica
            .as_ref()
            .and_then(Replica::leader)
            .unwrap_or(self.node);
        let routing = Routing {
            operation,
            target,
            attempts: 0,
            maybe_applied: false,
            local_pending: false,
            retry_at_ms: now_ms,
            deadline_ms: now_ms + self.settings.give_up_ms,
            last_error: None,
        };
        self.routing.insert(key, routing);
    }

    /// Sends one attempt of `key` to its current target.
    fn attempt(&mut self, now_ms: u64, key: (ClientId, u64), context: &mut NodeContext<'_>) {
        let attempt_timeout_ms = self.settings.attempt_timeout_ms;
        let Some(routing) = self.routing.get_mut(&key) else {
            return;
        };
        if routing.attempts >= ATTEMPTS_MAX {
            routing.deadline_ms = now_ms;
            routing.retry_at_ms = u64::MAX;
            return;
        }
        routing.attempts += 1;
        routing.retry_at_ms = now_ms + attempt_timeout_ms;
        let operation = routing.operation.clone();
        let target = routing.target;
        if target == self.node {
            // An earlier local attempt still unanswered may yet be applied.
            routing.maybe_applied |= routing.local_pending;
            routing.local_pending = true;
            self.remember_origin(key, Origin::Gateway(self.node));
            let request = ClientRequest {
                client_id: key.0,
                sequence: key.1,
                operation,
            };
            self.step(now_ms, raft::Input::Client(request), context);
        } else {
            // The network may duplicate a forward and deliver it after we answered: never
            // definite from here on.
            routing.maybe_applied = true;
            let forward = RaftSimMessage::Forward {
                client: key.0,
                sequence: key.1,
                operation,
            };
            context.send(target, forward);
        }
    }

    /// Sends due attempts, gives up on expired requests, answers clients and sets the next
    /// gateway timer.
    fn run_gateway(&mut self, now_ms: u64, context: &mut NodeContext<'_>) {
        // Bounded: each pass either sends an attempt (at most ATTEMPTS_MAX per request) or stops.
        for _pass in 0..(self.routing.len() as u32 + 1) * (ATTEMPTS_MAX + 1) {
            let expired = self
                .routing
                .iter()
                .find(|(_, routing)| routing.deadline_ms <= now_ms)
                .map(|(key, _)| *key);
            if let Some(key) = expired {
                if let Some(routing) = self.routing.remove(&key) {
                    let definite = !routing.maybe_applied && !routing.local_pending;
                    let reason = routing.last_error.unwrap_or_else(|| "no answer".into());
                    self.finished
                        .push((key, RaftResponse::GaveUp { definite, reason }));
                }
                continue;
            }
            let due = self
                .routing
                .iter()
                .find(|(_, routing)| routing.retry_at_ms <= now_ms)
                .map(|(key, _)| *key);
            match due {
                Some(key) => self.attempt(now_ms, key, context),
                None => break,
            }
        }
        for ((client, sequence), response) in self.finished.drain(..) {
            context.reply(client, sequence, response);
        }
        let next_ms = self
            .routing
            .values()
            .map(|routing| routing.retry_at_ms.min(routing.deadline_ms))
            .min();
        if let Some(next_ms) = next_ms {
            let scheduled = self.gateway_timer_ms.filter(|&at_ms| at_ms > now_ms);
            if scheduled.is_none_or(|at_ms| next_ms < at_ms) {
                self.gateway_timer_ms = Some(next_ms);
                let after_ns = next_ms.saturating_sub(now_ms).saturating_mul(1_000_000);
                context.set_timer(after_ns, GATEWAY_TIMER_BIT | next_ms);
            }
        }
    }
}

impl<S: StateMachine + Default + std::fmt::Debug> Process for RaftNode<S> {
    type Message = RaftSimMessage;
    type Request = RaftRequest;
    type Response = RaftResponse;

    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<RaftSimMessage, RaftRequest>,
        context: &mut NodeContext<'_>,
    ) {
        if self.stopped.is_some() {
            return;
        }
        let now_ms = now_ns / 1_000_000;
        match input {
            Input::Start => {
                self.start(now_ms, context);
                self.drain(now_ms, context);
            }
            Input::Message { from, message } => match message {
                RaftSimMessage::Raft(message) => {
                    self.step(now_ms, raft::Input::Message(message), context);
                }
                RaftSimMessage::Forward {
                    client,
                    sequence,
                    operation,
                } => {
                    self.remember_origin((client, sequence), Origin::Gateway(from));
                    let request = ClientRequest {
                        client_id: client,
                        sequence,
                        operation,
                    };
                    self.step(now_ms, raft::Input::Client(request), context);
                }
                RaftSimMessage::Answer {
                    client,
                    sequence,
                    result,
                } => self.answered(now_ms, (client, sequence), result, false),
            },
            Input::Request {
                client,
                request_id,
                request,
            } => match request {
                RaftRequest::Register(operation) => {
                    self.accept(now_ms, (client, request_id), register_operation(&operation));
                }
                RaftRequest::Routed(operation) => {
                    self.accept(now_ms, (client, request_id), operation);
                }
                RaftRequest::Direct(operation) => {
                    self.remember_origin((client, request_id), Origin::Direct);
                    let request = ClientRequest {
                        client_id: client,
                        sequence: request_id,
                        operation,
                    };
                    self.step(now_ms, raft::Input::Client(request), context);
                }
            },
            Input::Timer { token } if token & GATEWAY_TIMER_BIT != 0 => {
                if self.gateway_timer_ms == Some(token & !GATEWAY_TIMER_BIT) {
                    self.gateway_timer_ms = None;
                }
            }
            Input::Timer { .. } => self.step(now_ms, raft::Input::Timeout, context),
            Input::Persisted { token } => self.persisted(now_ms, token, context),
        }
        self.run_gateway(now_ms, context);
    }
}

impl RegisterService for RaftNode {
    fn request(operation: &RegisterOperation) -> RaftRequest {
        RaftRequest::Register(operation.clone())
    }

    fn outcome(operation: &RegisterOperation, response: &RaftResponse) -> Outcome {
        register_outcome(operation, response)
    }
}

/// A violated Raft safety property, found by [`SafetyObserver`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SafetyViolation {
    /// Two nodes led the same term.
    #[error("election safety: n{first} and n{second} both led term {term}")]
    ElectionSafety {
        /// The term.
        term: Term,
        /// The leader seen first.
        first: NodeId,
        /// The other leader.
        second: NodeId,
    },
    /// A leader removed or overwrote an entry of its own log during its term.
    #[error("leader append-only: n{node}, leader of term {term}: {detail}")]
    LeaderAppendOnly {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: Term,
        /// What changed.
        detail: String,
    },
    /// Two logs hold an entry with the same index and term but differ at or before it.
    #[error("log matching: n{first} and n{second} differ at index {index}")]
    LogMatching {
        /// One node.
        first: NodeId,
        /// The other.
        second: NodeId,
        /// Where they differ.
        index: LogIndex,
    },
    /// A leader lacks an entry committed in an earlier term.
    #[error("leader completeness: n{node}, leader of term {term}, lacks committed index {index}")]
    LeaderCompleteness {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: Term,
        /// The committed entry it lacks.
        index: LogIndex,
    },
    /// Two nodes applied (or committed) different entries at the same index.
    #[error("state machine safety: n{node} has {detail} at index {index}")]
    StateMachineSafety {
        /// The node that disagrees with what was committed before.
        node: NodeId,
        /// The index.
        index: LogIndex,
        /// What differs.
        detail: String,
    },
    /// A replica's own indices are out of order.
    #[error("n{node}: {detail}")]
    Invariant {
        /// The node.
        node: NodeId,
        /// Which relation broke.
        detail: String,
    },
}

/// A committed entry as first seen: the entry and the term of the node that saw it committed.
#[derive(Clone, Debug)]
struct Committed {
    entry: Entry,
    seen_in_term: Term,
}

/// Per-node memory between observations.
#[derive(Clone, Debug, Default)]
struct Seen {
    commit: LogIndex,
    /// `(term, last index, last term)` while leading.
    leading: Option<(Term, LogIndex, Term)>,
}

/// Watches every replica after every event and reports the first violation of Raft's five
/// safety properties (Figure 3 of the paper) plus `applied ≤ commit ≤ last`.
///
/// Committed entries are recorded as each node's commit index passes them (and compared: state
/// machine safety, with applied entries compared by term and checksum too); log matching is
/// checked between every pair of logs above their common commit index (below it both logs were
/// compared with the committed record); a leader must hold every entry committed in an earlier
/// term above its own commit index.
#[derive(Clone, Debug, Default)]
pub struct SafetyObserver {
    leaders: BTreeMap<Term, NodeId>,
    committed: BTreeMap<LogIndex, Committed>,
    applied: BTreeMap<LogIndex, (Term, u32)>,
    seen: BTreeMap<NodeId, Seen>,
    /// Leaders observed (term, node), for reports.
    elections: u64,
}

impl SafetyObserver {
    /// An observer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct (term, leader) pairs seen.
    pub fn elections(&self) -> u64 {
        self.elections
    }

    /// Highest index known committed.
    pub fn committed_index(&self) -> LogIndex {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    /// Checks every node of `simulation` now.
    pub fn observe(
        &mut self,
        simulation: &mut Simulation<RaftNode>,
    ) -> Result<(), SafetyViolation> {
        let nodes = simulation.config().nodes as NodeId;
        for node in 0..nodes {
            let Some(process) = simulation.node_mut(node) else {
                // Crashed: its volatile state (commit index, leadership) is gone.
                self.seen.remove(&node);
                continue;
            };
            let applied = process.take_applied();
            for entry in applied {
                self.check_applied(node, &entry)?;
            }
            if let Some(replica) = process.replica() {
                self.check_node(node, replica)?;
            }
        }
        for first in 0..nodes {
            for second in first + 1..nodes {
                let left = simulation.node(first).and_then(RaftNode::replica);
                let right = simulation.node(second).and_then(RaftNode::replica);
                if let (Some(left), Some(right)) = (left, right) {
                    log_matching(first, left, second, right)?;
                }
            }
        }
        Ok(())
    }

    fn check_applied(&mut self, node: NodeId, entry: &AppliedEntry) -> Result<(), SafetyViolation> {
        let fingerprint = (entry.term, entry.payload_crc);
        match self.applied.get(&entry.index) {
            Some(&known) if known != fingerprint => Err(SafetyViolation::StateMachineSafety {
                node,
                index: entry.index,
                detail: format!("applied (term, crc) {fingerprint:?}, others applied {known:?}"),
            }),
            Some(_) => Ok(()),
            None => {
                self.applied.insert(entry.index, fingerprint);
                Ok(())
            }
        }
    }

    fn check_node(&mut self, node: NodeId, replica: &Replica<Kv>) -> Result<(), SafetyViolation> {
        let (term, commit, last) = (replica.term(), replica.commit_index(), replica.last_index());
        let base = replica.snapshot_meta().index;
        if replica.applied_index() > commit || commit > last {
            let detail = format!(
                "applied {} ≤ commit {commit} ≤ last {last} broken",
                replica.applied_index()
            );
            return Err(SafetyViolation::Invariant { node, detail });
        }
        let seen = self.seen.entry(node).or_default();
        // A restarted replica forgets its commit index; start again from what it knows.
        let from = if seen.commit > commit {
            base
        } else {
            seen.commit.max(base)
        };
        seen.commit = commit;
        for index in from + 1..=commit {
            let Some(entry) = replica.entry(index) else {
                continue;
            };
            match self.committed.get(&index) {
                Some(known) if known.entry != *entry => {
                    return Err(SafetyViolation::StateMachineSafety {
                        node,
                        index,
                        detail: format!(
                            "committed term {} but term {} was committed before",
                            entry.term, known.entry.term
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    let committed = Committed {
                        entry: entry.clone(),
                        seen_in_term: term,
                    };
                    self.committed.insert(index, committed);
                }
            }
        }
        if replica.role() != Role::Leader {
            if let Some(seen) = self.seen.get_mut(&node) {
                seen.leading = None;
            }
            return Ok(());
        }
        match self.leaders.get(&term) {
            Some(&other) if other != node => {
                return Err(SafetyViolation::ElectionSafety {
                    term,
                    first: other,
                    second: node,
                });
            }
            Some(_) => {}
            None => {
                self.leaders.insert(term, node);
                self.elections += 1;
            }
        }
        self.check_append_only(node, replica)?;
        // Leader completeness: entries at or below its commit index were compared above.
        for (&index, committed) in self.committed.range(commit + 1..) {
            if committed.seen_in_term >= term || index <= base {
                continue;
            }
            if replica.entry(index) != Some(&committed.entry) {
                return Err(SafetyViolation::LeaderCompleteness { node, term, index });
            }
        }
        Ok(())
    }

    fn check_append_only(
        &mut self,
        node: NodeId,
        replica: &Replica<Kv>,
    ) -> Result<(), SafetyViolation> {
        let term = replica.term();
        let last = replica.last_index();
        let base = replica.snapshot_meta().index;
        let seen = self.seen.entry(node).or_default();
        if let Some((leading_term, leading_last, leading_last_term)) = seen.leading
            && leading_term == term
        {
            let kept =
                leading_last <= base || replica.term_at(leading_last) == Some(leading_last_term);
            if last < leading_last || !kept {
                let detail = format!(
                    "had last index {leading_last} (term {leading_last_term}), now last {last} \
                     with term {:?} there",
                    replica.term_at(leading_last)
                );
                return Err(SafetyViolation::LeaderAppendOnly { node, term, detail });
            }
        }
        let last_term = replica.term_at(last).unwrap_or(0);
        seen.leading = Some((term, last, last_term));
        Ok(())
    }
}

/// Log matching between two logs above their common commit index (both logs' committed prefixes
/// were compared entry by entry with the committed record).
fn log_matching(
    first: NodeId,
    left: &Replica<Kv>,
    second: NodeId,
    right: &Replica<Kv>,
) -> Result<(), SafetyViolation> {
    let low = left
        .commit_index()
        .min(right.commit_index())
        .max(left.snapshot_meta().index)
        .max(right.snapshot_meta().index);
    let high = left.last_index().min(right.last_index());
    let mut matched = false;
    for index in (low + 1..=high).rev() {
        let (Some(a), Some(b)) = (left.entry(index), right.entry(index)) else {
            continue;
        };
        if matched || a.term == b.term {
            matched = true;
            if a != b {
                return Err(SafetyViolation::LogMatching {
                    first,
                    second,
                    index,
                });
            }
        }
    }
    Ok(())
}

/// The register workload until a shared flag says stop (the driver steps the simulation itself,
/// so it stops clients this way instead of through [`Simulation::run`]).
struct UntilStopped {
    inner: RegisterWorkload,
    stop: Rc<Cell<bool>>,
}

impl Workload<RaftNode> for UntilStopped {
    fn next_call(
        &mut self,
        client: ClientId,
        nodes: usize,
        rng: &mut SimRng,
    ) -> Option<Call<RaftRequest>> {
        if self.stop.get() {
            return None;
        }
        <RegisterWorkload as Workload<RaftNode>>::next_call(&mut self.inner, client, nodes, rng)
    }

    fn outcome(&mut self, invocation: &Invocation, response: &RaftResponse) -> Outcome {
        <RegisterWorkload as Workload<RaftNode>>::outcome(&mut self.inner, invocation, response)
    }
}

/// Most events one [`RaftCluster::run_until`] call processes (a guard against runaway runs).
const EVENTS_MAX: u64 = 200_000_000;

/// A simulated Raft cluster with the safety observer checking after every event.
pub struct RaftCluster {
    /// The simulation (faults, network and nodes are reachable through it).
    pub simulation: Simulation<RaftNode>,
    /// The observer, already fed every event so far.
    pub observer: SafetyObserver,
    stop: Rc<Cell<bool>>,
    violation: Option<(u64, SafetyViolation)>,
}

impl RaftCluster {
    /// Builds the nodes of `config` with `settings` (no clients yet).
    pub fn new(config: crate::Config, settings: RaftSettings) -> Self {
        let settings = Rc::new(settings);
        let simulation = Simulation::new(config, move |node, storage| {
            RaftNode::new(node, Rc::clone(&settings), storage)
        });
        Self {
            simulation,
            observer: SafetyObserver::new(),
            stop: Rc::new(Cell::new(false)),
            violation: None,
        }
    }

    /// Starts the configured clients with the register workload (reads, writes, cas on x, y, z).
    pub fn start_clients(&mut self) {
        self.stop.set(false);
        let workload = UntilStopped {
            inner: RegisterWorkload::default(),
            stop: Rc::clone(&self.stop),
        };
        self.simulation.set_workload(Box::new(workload));
    }

    /// Clients issue no new operations from now on (outstanding ones still finish).
    pub fn stop_clients(&mut self) {
        self.stop.set(true);
    }

    /// Processes events up to true time `end_ns`, observing after each; the first violation
    /// (with the true time it was seen) is kept and returned by every later call.
    pub fn run_until(&mut self, end_ns: u64) -> Result<(), (u64, SafetyViolation)> {
        if let Some(violation) = &self.violation {
            return Err(violation.clone());
        }
        for _event in 0..EVENTS_MAX {
            if self.simulation.now_ns() >= end_ns || !self.simulation.step() {
                break;
            }
            if let Err(violation) = self.observer.observe(&mut self.simulation) {
                let found = (self.simulation.now_ns(), violation);
                self.violation = Some(found.clone());
                return Err(found);
            }
        }
        Ok(())
    }

    /// Runs for `duration_ns` more (virtual).
    pub fn run_for(&mut self, duration_ns: u64) -> Result<(), (u64, SafetyViolation)> {
        let end_ns = self.simulation.now_ns().saturating_add(duration_ns);
        self.run_until(end_ns)
    }

    /// Stops clients and runs until every outstanding operation answered or timed out.
    pub fn drain_clients(&mut self) -> Result<(), (u64, SafetyViolation)> {
        self.stop_clients();
        let config = self.simulation.config();
        let drain_ns = config.clients.timeout_ns + 2 * config.network.client_latency_ns + 1;
        self.run_for(drain_ns)
    }

    /// The leader of the highest term among live nodes, if any node leads.
    pub fn leader(&self) -> Option<NodeId> {
        (0..self.simulation.config().nodes as NodeId)
            .filter_map(|node| {
                let replica = self.simulation.node(node)?.replica()?;
                (replica.role() == Role::Leader).then_some((replica.term(), node))
            })
            .max()
            .map(|(_, node)| node)
    }

    /// The replica of `node`, if it is running.
    pub fn replica(&self, node: NodeId) -> Option<&Replica<Kv>> {
        self.simulation.node(node)?.replica()
    }
}

/// The knobs of one nemesis run (what `concur sim raft` takes per seed).
#[derive(Clone, Debug, PartialEq)]
pub struct RaftRunOptions {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Number of nodes (all voters).
    pub nodes: usize,
    /// Fault families the random nemesis draws from.
    pub nemesis: Vec<NemesisKind>,
    /// How long clients run, in virtual nanoseconds.
    pub duration_ns: u64,
    /// Number of clients (default two per node).
    pub clients: Option<usize>,
    /// Whether to record the trace.
    pub trace: bool,
    /// Region of each node (round-robin); empty = the scenario regions.
    pub regions: Vec<crate::geo::Location>,
    /// Linearizable reads by leader lease (relies on bounded clock drift) instead of ReadIndex.
    pub lease_reads: bool,
    /// Reconfigure while the faults run: every 1–3 s (drawn from the seed) the leader is asked to
    /// remove a voter (possibly itself), add a removed node back, or replace the voter set (joint
    /// consensus when more than one voter changes).
    pub membership_changes: bool,
}

impl RaftRunOptions {
    /// Every fault family the sweep uses: partitions (incl. one-way), crashes, pauses, loss,
    /// duplicates, reordering, clock skew.
    pub fn all_faults() -> Vec<NemesisKind> {
        NemesisKind::ALL.iter().map(|&(_, kind)| kind).collect()
    }

    /// Defaults: 3 nodes, every fault family, 10 s of clients.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3,
            nemesis: Self::all_faults(),
            duration_ns: 10_000_000_000,
            clients: None,
            trace: false,
            regions: Vec::new(),
            lease_reads: false,
            membership_changes: false,
        }
    }

    /// The simulator config: scenario placement, clients that wait longer than the gateway
    /// retries, and two independent random nemesis plans drawn from the seed and merged, so
    /// faults also overlap (a crash during a partition, loss during a pause, ...).
    pub fn config(&self) -> crate::Config {
        let scenario = ScenarioOptions {
            seed: self.seed,
            nodes: self.nodes,
            nemesis: self.nemesis.clone(),
            duration_ns: self.duration_ns,
            clients: self.clients,
            trace: self.trace,
        };
        let mut config = scenario.config();
        if !self.regions.is_empty() {
            config.placement = self.regions.clone();
        }
        config.clients.timeout_ns = 2_000_000_000;
        let second = NemesisPlan::random(
            &self.nemesis,
            self.nodes,
            self.duration_ns,
            self.seed ^ OVERLAP_SALT,
        );
        for step in second.steps {
            config.nemesis = std::mem::take(&mut config.nemesis).at(step.at_ns, step.fault);
        }
        config
    }
}

/// Salt for the second, overlapping nemesis plan.
const OVERLAP_SALT: u64 = 0x6f76_6572_6c61_7021;
/// Salt for the membership-change schedule.
const MEMBERSHIP_SALT: u64 = 0x6d65_6d62_6572_7321;

/// One finished nemesis run.
#[derive(Clone, Debug)]
pub struct RaftRunOutput {
    /// Counters, history, nemesis log, hash.
    pub report: Report,
    /// The trace, when recorded.
    pub trace: Option<Trace>,
    /// The first safety violation and the true time it was seen.
    pub violation: Option<(u64, SafetyViolation)>,
    /// Distinct (term, leader) pairs observed.
    pub elections: u64,
    /// Highest index committed.
    pub committed_index: LogIndex,
    /// Membership changes asked for (with [`RaftRunOptions::membership_changes`]).
    pub reconfigurations_asked: u64,
    /// Of those, the ones the leader answered as committed.
    pub reconfigurations_committed: u64,
}

/// Runs Raft under the random nemesis with the register workload, the safety observer checking
/// after every event; the history is for the linearizability checker.
pub fn run(options: &RaftRunOptions) -> RaftRunOutput {
    let mut settings = RaftSettings::new(options.nodes);
    settings.lease_reads = options.lease_reads;
    // Half the seeds keep entries behind each snapshot, so both ways of catching up a follower
    // (InstallSnapshot, or the log kept behind the snapshot) run under the faults.
    if options.seed % 2 == 1 {
        settings.snapshot_trailing_entries = 100;
    }
    let mut cluster = RaftCluster::new(options.config(), settings);
    cluster.start_clients();
    let mut reconfigurations = Reconfigurations::default();
    let result = if options.membership_changes {
        reconfigure_until(&mut cluster, options, &mut reconfigurations)
    } else {
        cluster.run_until(options.duration_ns)
    }
    .and_then(|()| cluster.drain_clients());
    reconfigurations.count_answers(&mut cluster);
    RaftRunOutput {
        report: cluster.simulation.report(),
        trace: cluster.simulation.trace().cloned(),
        violation: result.err(),
        elections: cluster.observer.elections(),
        committed_index: cluster.observer.committed_index(),
        reconfigurations_asked: reconfigurations.asked,
        reconfigurations_committed: reconfigurations.committed,
    }
}

/// Runs until the clients' end, asking the leader for a membership change every 1–3 s. The
/// requests go through the external client, so their answers stay out of the register history;
/// whether a change commits, fails or stays unknown, safety and linearizability must hold.
/// Membership changes asked for during a run, and how many were answered as committed.
#[derive(Debug, Default)]
struct Reconfigurations {
    asked: u64,
    committed: u64,
}

impl Reconfigurations {
    /// Takes the external client's replies received so far (only membership changes use it).
    fn count_answers(&mut self, cluster: &mut RaftCluster) {
        for (_, response) in cluster.simulation.take_replies() {
            if matches!(response, RaftResponse::Reply(Ok(_))) {
                self.committed += 1;
            }
        }
    }
}

fn reconfigure_until(
    cluster: &mut RaftCluster,
    options: &RaftRunOptions,
    reconfigurations: &mut Reconfigurations,
) -> Result<(), (u64, SafetyViolation)> {
    use raft::{Membership, MembershipChange};
    use rand::SeedableRng;
    let mut rng = SimRng::seed_from_u64(options.seed ^ MEMBERSHIP_SALT);
    let nodes: Vec<NodeId> = (0..options.nodes as NodeId).collect();
    loop {
        let next_ns = cluster.simulation.now_ns() + rng.random_range(1_000_000_000..3_000_000_000);
        if next_ns >= options.duration_ns {
            return cluster.run_until(options.duration_ns);
        }
        cluster.run_until(next_ns)?;
        let Some(leader) = cluster.leader() else {
            continue;
        };
        let Some(voters) = cluster
            .replica(leader)
            .map(|r| r.membership().voters.clone())
        else {
            continue;
        };
        let outside: Vec<NodeId> = nodes
            .iter()
            .copied()
            .filter(|n| !voters.contains(n))
            .collect();
        let change = match rng.random_range(0..3u32) {
            // Add a removed node back when there is one (keeps the cluster from shrinking away).
            0 | 1 if !outside.is_empty() => {
                MembershipChange::AddVoter(outside[rng.random_range(0..outside.len())])
            }
            // Remove any voter, the leader included, while at least two would remain.
            0 | 1 if voters.len() > 2 => {
                let voters: Vec<NodeId> = voters.iter().copied().collect();
                MembershipChange::Remove(voters[rng.random_range(0..voters.len())])
            }
            // Replace the voter set with a random one of at least two (or a majority of the
            // nodes): two or more voters changing at once go through joint consensus.
            _ => {
                let smallest = (options.nodes / 2 + 1).max(2);
                let size = rng.random_range(smallest..=options.nodes);
                let mut chosen = nodes.clone();
                while chosen.len() > size {
                    chosen.remove(rng.random_range(0..chosen.len()));
                }
                MembershipChange::Replace(Membership::with_voters(chosen))
            }
        };
        let request = RaftRequest::Direct(ClientOperation::ChangeMembership(change));
        cluster.simulation.submit(leader, request);
        reconfigurations.asked += 1;
        reconfigurations.count_answers(cluster);
    }
}

/// Latencies of the operations that completed `ok` whose function is in `functions` (e.g.
/// `["write", "cas"]`), from invocation to completion as the client saw them, in nanoseconds.
pub fn client_latencies_ns(
    history: &[crate::history::HistoryEvent],
    functions: &[&str],
) -> Vec<u64> {
    use crate::history::EventType;
    let mut invoked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut latencies = Vec::new();
    for event in history {
        match event.event_type {
            EventType::Invoke => {
                invoked.insert(event.process, event.time);
            }
            EventType::Ok if functions.contains(&event.f.as_str()) => {
                if let Some(start) = invoked.remove(&event.process) {
                    latencies.push(event.time.saturating_sub(start));
                }
            }
            _ => {
                invoked.remove(&event.process);
            }
        }
    }
    latencies
}

#[cfg(test)]
mod tests {
    use raft::{EntryPayload, HardState, RecoveredState};

    use super::*;

    fn command(term: Term, index: LogIndex, value: &str) -> Entry {
        let put = KvCommand::Put {
            key: "x".into(),
            value: value.as_bytes().to_vec(),
        };
        Entry {
            term,
            index,
            payload: EntryPayload::Command {
                client_id: 1,
                sequence: index,
                command: put.encode().into(),
            },
        }
    }

    #[test]
    fn observer_catches_logs_that_agree_on_a_term_but_not_on_the_entry() {
        // Two replicas recovered with entry 2 of term 1 holding different commands: Log
        // Matching is broken before anything runs, and the first observation must say so.
        let settings = Rc::new(RaftSettings::new(3));
        let config = crate::Config::new(1, 3);
        let mut simulation = Simulation::new(config, move |node, _storage| {
            let mut raft_node = RaftNode::new(node, Rc::clone(&settings), &Storage::new());
            let value = if node == 1 { "b" } else { "a" };
            raft_node.boot = Some(RecoveredState {
                hard_state: HardState {
                    term: 1,
                    voted_for: None,
                },
                snapshot: None,
                entries: vec![command(1, 1, "a"), command(1, 2, value)],
                corrupted: false,
            });
            raft_node
        });
        simulation.run_until(1);
        let mut observer = SafetyObserver::new();
        let violation = observer.observe(&mut simulation).unwrap_err();
        assert!(
            matches!(violation, SafetyViolation::LogMatching { index: 2, .. }),
            "{violation}"
        );
    }

    #[test]
    fn observer_catches_different_entries_applied_at_one_index() {
        let mut observer = SafetyObserver::new();
        let entry = |crc| AppliedEntry {
            index: 5,
            term: 2,
            payload_crc: crc,
        };
        observer.check_applied(0, &entry(7)).unwrap();
        observer.check_applied(1, &entry(7)).unwrap();
        let violation = observer.check_applied(2, &entry(8)).unwrap_err();
        assert!(matches!(
            violation,
            SafetyViolation::StateMachineSafety {
                node: 2,
                index: 5,
                ..
            }
        ));
    }

    #[test]
    fn outcomes_are_definite_only_when_nothing_can_take_effect() {
        let write = RegisterOperation::Write {
            key: "x".into(),
            value: 3,
        };
        let cas = RegisterOperation::Cas {
            key: "x".into(),
            expected: 1,
            new: 2,
        };
        let read = RegisterOperation::Read { key: "x".into() };
        let reply = |output: Vec<u8>| {
            RaftResponse::Reply(Ok(ClientResponse {
                output,
                index: 1,
                stale: false,
            }))
        };
        // Real outputs of the KV store (its output encoder is private to raft).
        let get = KvQuery::Get { key: "x".into() }.encode();
        let put = |value: &str| {
            KvCommand::Put {
                key: "x".into(),
                value: value.as_bytes().to_vec(),
            }
            .encode()
        };
        let mut kv = Kv::new();
        let absent = raft::StateMachine::query(&kv, &get);
        let written = raft::StateMachine::apply(&mut kv, &put("4"));
        let four = raft::StateMachine::query(&kv, &get);
        let refused = raft::StateMachine::apply(&mut kv, &register_command(&cas));
        let not_leader = RaftResponse::Reply(Err(ClientError::NotLeader {
            leader_hint: Some(2),
            term: 3,
        }));
        let indefinite = RaftResponse::Reply(Err(ClientError::Indefinite { leader_hint: None }));
        let gave_up = |definite| RaftResponse::GaveUp {
            definite,
            reason: "no answer".into(),
        };
        assert!(matches!(
            register_outcome(&write, &not_leader),
            Outcome::Fail(_)
        ));
        assert!(matches!(
            register_outcome(&write, &indefinite),
            Outcome::Info(_)
        ));
        assert!(matches!(
            register_outcome(&write, &gave_up(true)),
            Outcome::Fail(_)
        ));
        assert!(matches!(
            register_outcome(&write, &gave_up(false)),
            Outcome::Info(_)
        ));
        assert_eq!(
            register_outcome(&write, &reply(written)),
            Outcome::Ok(json!(3))
        );
        assert_eq!(
            register_outcome(&cas, &reply(refused)),
            Outcome::Fail("precondition failed".into())
        );
        assert_eq!(register_outcome(&read, &reply(four)), Outcome::Ok(json!(4)));
        assert_eq!(
            register_outcome(&read, &reply(absent)),
            Outcome::Ok(json!(null))
        );
    }

    fn register_command(operation: &RegisterOperation) -> Vec<u8> {
        match register_operation(operation) {
            ClientOperation::Write(command) => command,
            other => panic!("not a write: {other:?}"),
        }
    }
}

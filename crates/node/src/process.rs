//! One node as a sans-IO [`sim::Process`]: a Raft replica of the [`NodeMachine`] (the strong
//! keyspace) beside a replica of the [`Available`] keyspace, sharing one network, one disk and one
//! set of timers.
//!
//! The same process runs under the tokio driver (`net::runtime`) on a real machine and under the
//! deterministic simulator in tests. It multiplexes its two halves:
//! - messages are tagged [`NodeMessage::Raft`] or [`NodeMessage::Available`];
//! - timer tokens with [`GOSSIP_TIMER_BIT`] set are anti-entropy rounds, the others Raft's;
//! - persist tokens are renumbered into one increasing sequence, because the driver acknowledges
//!   durability cumulatively ("everything up to token T");
//! - available writes are answered only once their records are durable, so an acknowledged write
//!   survives a crash of this node even before any peer has it.

use std::collections::VecDeque;
use std::rc::Rc;

use raft::{ClientOperation, Role};
use serde::{Deserialize, Serialize};
use sim::adapters::raft::{RaftNode, RaftRequest, RaftResponse, RaftSettings, RaftSimMessage};
use sim::{ClientId, Context, Effect, Input, NodeId, Process, RequestId, Storage, Token};

use crate::available::{ApError, ApMessage, ApOperation, ApOutput, ApStatus, Available};
use crate::machine::NodeMachine;

/// Timer tokens with this bit set are anti-entropy rounds; Raft's tokens never reach it.
pub const GOSSIP_TIMER_BIT: Token = 1 << 62;

/// Keys starting with this prefix are available (CRDTs); all others are strong (Raft).
pub const AVAILABLE_PREFIX: &[u8] = b"ap:";

/// A key's consistency mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Linearizable, through Raft; refused in a minority partition.
    Strong,
    /// Always writable; replicas converge by anti-entropy.
    Available,
}

impl Mode {
    /// The mode of `key` (keys starting `ap:` are available).
    pub fn of(key: &[u8]) -> Mode {
        if key.starts_with(AVAILABLE_PREFIX) {
            Mode::Available
        } else {
            Mode::Strong
        }
    }

    /// Lower-case name: `strong` or `available`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Strong => "strong",
            Mode::Available => "available",
        }
    }
}

/// How one node behaves.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Every node of the cluster (this one included); all are Raft voters.
    pub nodes: Vec<NodeId>,
    /// Raft timing, snapshots and the client gateway.
    pub raft: RaftSettings,
    /// Time between anti-entropy rounds, in milliseconds.
    pub gossip_interval_ms: u64,
}

impl NodeSettings {
    /// Settings for a cluster of `nodes` (ids need not start at 0 but must be contiguous), with
    /// timeouts suited to a data centre or loopback.
    pub fn new(nodes: Vec<NodeId>) -> Self {
        let mut raft = RaftSettings::new(nodes.len());
        raft.voters = nodes.clone();
        raft.first_node = nodes.iter().copied().min().unwrap_or(0);
        raft.election_timeout_min_ms = 300;
        raft.election_timeout_max_ms = 600;
        raft.heartbeat_interval_ms = 50;
        raft.snapshot_threshold_entries = 50_000;
        // A follower that fell this far behind catches up from the log, not a full snapshot.
        raft.snapshot_trailing_entries = 5_000;
        raft.snapshot_chunk_bytes = 256 * 1024;
        raft.attempt_timeout_ms = 1_000;
        raft.give_up_ms = 5_000;
        // No safety observer runs inside a node: skip fingerprinting every applied entry.
        raft.report_applied = false;
        Self {
            nodes,
            raft,
            gossip_interval_ms: 200,
        }
    }
}

/// What travels between nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NodeMessage {
    /// Raft (and its client gateway's forwards and answers).
    Raft(RaftSimMessage),
    /// Anti-entropy for the available keyspace.
    Available(ApMessage),
}

/// What a client (the RESP or HTTP server) asks a node.
#[derive(Clone, Debug)]
pub enum NodeRequest {
    /// A strong operation, routed to the leader and retried by the gateway.
    Strong(ClientOperation),
    /// A strong operation for this node's own replica only (stale reads, membership changes).
    StrongLocal(ClientOperation),
    /// An operation on the available keyspace, served by this node alone.
    Available(ApOperation),
    /// This node's view of the cluster.
    Status,
}

/// A node's answer.
#[derive(Clone, Debug)]
pub enum NodeResponse {
    /// The Raft gateway's or replica's answer.
    Strong(RaftResponse),
    /// The available keyspace's answer (once durable, for writes).
    Available(Result<ApOutput, ApError>),
    /// This node's view.
    Status(Box<NodeStatus>),
    /// A strong request refused at once: this node hears neither a leader nor a majority.
    Refused {
        /// The last leader this node knew.
        leader: Option<NodeId>,
    },
}

/// One node's view of the cluster, for `/cluster`, `/metrics` and `INFO`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// This node.
    pub node: NodeId,
    /// `leader`, `follower`, `candidate`, `pre-candidate` or `stopped`.
    pub role: String,
    /// Current Raft term.
    pub term: u64,
    /// The leader this node believes in.
    pub leader: Option<NodeId>,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied to the state machine.
    pub applied_index: u64,
    /// Last index in the local log.
    pub last_index: u64,
    /// Voters of the current configuration.
    pub voters: Vec<NodeId>,
    /// Keys in the strong keyspace (this replica's applied state).
    pub strong_keys: u64,
    /// Peers heard from within the last two election timeouts.
    pub reachable: Vec<NodeId>,
    /// Why the Raft half stopped (a storage failure), if it did.
    pub stopped: Option<String>,
    /// The available keyspace's numbers.
    pub available: ApStatus,
}

/// Who asked for a durable write, so its acknowledgement reaches the right half.
#[derive(Clone, Copy, Debug)]
enum Writer {
    /// Raft's own token for that write.
    Raft(Token),
    /// An available-keyspace write (its reply waits in `waiting`).
    Available,
}

/// One node: Raft for strong keys, CRDTs for available keys.
pub struct NodeProcess {
    node: NodeId,
    settings: Rc<NodeSettings>,
    raft: RaftNode<NodeMachine>,
    available: Available,
    /// Writes in flight: `(our token, whose)`, in token order.
    writes: VecDeque<(Token, Writer)>,
    next_token: Token,
    /// Available replies waiting for their writes: `(last token, client, request id, reply)`.
    waiting: VecDeque<(Token, ClientId, RequestId, Result<ApOutput, ApError>)>,
    /// Anti-entropy messages held until the client writes before them are durable.
    held: VecDeque<(Token, NodeId, ApMessage)>,
    /// Scratch buffer for the Raft half's effects.
    raft_effects: Vec<Effect<RaftSimMessage, RaftResponse>>,
    /// Set when the available keyspace's records could not be read back at boot.
    available_error: Option<String>,
    /// When each peer was last heard from (local ns), to refuse strong requests at once in a
    /// minority instead of letting clients wait for the gateway to give up.
    last_heard_ns: std::collections::BTreeMap<NodeId, u64>,
    /// The last leader this node knew (kept after it becomes unreachable, for error messages).
    last_leader: Option<NodeId>,
}

impl std::fmt::Debug for NodeProcess {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeProcess")
            .field("node", &self.node)
            .field("writes", &self.writes.len())
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl NodeProcess {
    /// Node `node`, recovering both keyspaces from what `storage` durably holds.
    pub fn new(node: NodeId, settings: Rc<NodeSettings>, storage: &Storage) -> Self {
        let raft = RaftNode::new(node, Rc::new(settings.raft.clone()), storage);
        let records = storage.prefix(Available::RECORD_PREFIX);
        let (available, available_error) = match Available::recover(node, records) {
            Ok(available) => (available, None),
            Err(error) => (Available::new(node), Some(error.to_string())),
        };
        Self {
            node,
            settings,
            raft,
            available,
            writes: VecDeque::new(),
            next_token: 1,
            waiting: VecDeque::new(),
            held: VecDeque::new(),
            raft_effects: Vec::new(),
            available_error,
            last_heard_ns: std::collections::BTreeMap::new(),
            last_leader: None,
        }
    }

    /// True when `peer` was heard from within the last two election timeouts.
    fn heard_recently(&self, peer: NodeId, now_ns: u64) -> bool {
        let window_ns = self
            .settings
            .raft
            .election_timeout_max_ms
            .saturating_mul(2_000_000);
        self.last_heard_ns
            .get(&peer)
            .is_some_and(|&at_ns| now_ns.saturating_sub(at_ns) <= window_ns)
    }

    /// True when this node is not the leader and hears, within two election timeouts, neither
    /// the leader nor enough peers to form a majority with itself: a strong request could only
    /// wait and fail.
    fn cut_off(&self, now_ns: u64) -> bool {
        let Some(replica) = self.raft.replica() else {
            return true;
        };
        if replica.role() == Role::Leader {
            return false;
        }
        let heard = |peer: &NodeId| self.heard_recently(*peer, now_ns);
        if replica.leader().is_some_and(|leader| heard(&leader)) {
            return false;
        }
        let reachable = 1 + self
            .settings
            .nodes
            .iter()
            .filter(|peer| **peer != self.node && heard(peer))
            .count();
        reachable * 2 <= self.settings.nodes.len()
    }

    /// The Raft half (its replica, once started).
    pub fn raft(&self) -> &RaftNode<NodeMachine> {
        &self.raft
    }

    /// The available keyspace.
    pub fn available(&self) -> &Available {
        &self.available
    }

    /// This node's view of the cluster.
    pub fn status(&self, now_ns: u64) -> NodeStatus {
        let replica = self.raft.replica();
        NodeStatus {
            node: self.node,
            role: match replica.map(raft::Replica::role) {
                Some(Role::Leader) => "leader",
                Some(Role::Candidate) => "candidate",
                Some(Role::Follower) => "follower",
                Some(Role::PreCandidate) => "pre-candidate",
                None => "stopped",
            }
            .to_string(),
            term: replica.map_or(0, raft::Replica::term),
            leader: replica.and_then(raft::Replica::leader),
            commit_index: replica.map_or(0, raft::Replica::commit_index),
            applied_index: replica.map_or(0, raft::Replica::applied_index),
            last_index: replica.map_or(0, raft::Replica::last_index),
            voters: replica
                .map(|replica| replica.membership().voters.iter().copied().collect())
                .unwrap_or_default(),
            strong_keys: replica.map_or(0, |replica| replica.state_machine().strong().len() as u64),
            reachable: self
                .settings
                .nodes
                .iter()
                .copied()
                .filter(|&peer| peer != self.node && self.heard_recently(peer, now_ns))
                .collect(),
            stopped: self
                .raft
                .stopped()
                .map(str::to_string)
                .or_else(|| self.available_error.clone()),
            available: self.available.status(),
        }
    }

    /// Runs the Raft half on one input and carries its effects out under this node's tags.
    fn raft_handle(
        &mut self,
        now_ns: u64,
        input: Input<RaftSimMessage, RaftRequest>,
        context: &mut NodeContext<'_>,
    ) {
        let mut effects = std::mem::take(&mut self.raft_effects);
        {
            let tracing = context.tracing();
            let node = context.node();
            let mut inner = Context::new(node, tracing, context.rng(), &mut effects);
            self.raft.handle(now_ns, input, &mut inner);
        }
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, message } => context.send(to, NodeMessage::Raft(message)),
                Effect::Reply {
                    client,
                    request_id,
                    response,
                } => context.reply(client, request_id, NodeResponse::Strong(response)),
                Effect::SetTimer { after_ns, token } => {
                    // Raft's tokens are deadlines in ms (and its gateway's bit 63): bit 62 is free.
                    context.set_timer(after_ns, token & !GOSSIP_TIMER_BIT);
                }
                Effect::Persist { key, value, token } => {
                    let ours = self.next_token();
                    self.writes.push_back((ours, Writer::Raft(token)));
                    context.persist(key, value, ours);
                }
                Effect::Log { text } => context.push(Effect::Log { text }),
            }
        }
        self.raft_effects = effects;
    }

    fn next_token(&mut self) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    /// Persists the available keyspace's pending writes; returns the last token, if any.
    fn persist_available(&mut self, context: &mut NodeContext<'_>) -> Option<Token> {
        let mut last = None;
        for (key, value) in self.available.take_writes() {
            let token = self.next_token();
            self.writes.push_back((token, Writer::Available));
            context.persist(key, value, token);
            last = Some(token);
        }
        last
    }

    /// Sends anti-entropy messages — after every client write they may carry is durable. A
    /// message must never show a peer a dot this node could lose in a crash: after a restart the
    /// node would mint that dot again for another value and the two replicas would disagree for
    /// good while believing they agree.
    fn send_available(
        &mut self,
        messages: Vec<(NodeId, ApMessage)>,
        context: &mut NodeContext<'_>,
    ) {
        let pending = self.waiting.back().map(|&(last, ..)| last);
        for (to, message) in messages {
            match pending {
                Some(token) => self.held.push_back((token, to, message)),
                None => context.send(to, NodeMessage::Available(message)),
            }
        }
    }

    /// Everything up to `token` is durable: tell Raft, release available replies.
    fn persisted(&mut self, now_ns: u64, token: Token, context: &mut NodeContext<'_>) {
        let mut raft_token = None;
        while let Some(&(ours, writer)) = self.writes.front() {
            if ours > token {
                break;
            }
            self.writes.pop_front();
            if let Writer::Raft(inner) = writer {
                raft_token = Some(inner);
            }
        }
        while let Some(&(last, ..)) = self.waiting.front() {
            if last > token {
                break;
            }
            if let Some((_, client, request_id, reply)) = self.waiting.pop_front() {
                context.reply(client, request_id, NodeResponse::Available(reply));
            }
        }
        while let Some(&(last, ..)) = self.held.front() {
            if last > token {
                break;
            }
            if let Some((_, to, message)) = self.held.pop_front() {
                context.send(to, NodeMessage::Available(message));
            }
        }
        if let Some(inner) = raft_token {
            self.raft_handle(now_ns, Input::Persisted { token: inner }, context);
        }
    }

    fn gossip(&mut self, now_ns: u64, context: &mut NodeContext<'_>) {
        let peers: Vec<NodeId> = self
            .settings
            .nodes
            .iter()
            .copied()
            .filter(|&peer| peer != self.node)
            .collect();
        let messages = self.available.tick(now_ns, &peers, context.rng());
        self.send_available(messages, context);
        self.persist_available(context);
        let interval_ns = self.settings.gossip_interval_ms.saturating_mul(1_000_000);
        context.set_timer(interval_ns, GOSSIP_TIMER_BIT);
    }
}

/// The context a [`NodeProcess`] writes its effects into.
type NodeContext<'a> = Context<'a, NodeMessage, NodeResponse>;

impl Process for NodeProcess {
    type Message = NodeMessage;
    type Request = NodeRequest;
    type Response = NodeResponse;

    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<NodeMessage, NodeRequest>,
        context: &mut NodeContext<'_>,
    ) {
        match input {
            Input::Start => {
                // Give peers the benefit of the doubt at boot: until two election timeouts have
                // passed unheard, strong requests wait for a leader instead of being refused.
                for &peer in &self.settings.nodes {
                    self.last_heard_ns.entry(peer).or_insert(now_ns);
                }
                self.raft_handle(now_ns, Input::Start, context);
                let interval_ns = self.settings.gossip_interval_ms.saturating_mul(1_000_000);
                context.set_timer(interval_ns, GOSSIP_TIMER_BIT);
            }
            Input::Message { from, message } => {
                self.last_heard_ns.insert(from, now_ns);
                match message {
                    NodeMessage::Raft(message) => {
                        self.raft_handle(now_ns, Input::Message { from, message }, context);
                    }
                    NodeMessage::Available(message) => {
                        match self.available.receive(now_ns, from, message) {
                            Ok(replies) => self.send_available(replies, context),
                            Err(error) => {
                                context.log_with(|| format!("anti-entropy from {from}: {error}"))
                            }
                        }
                        self.persist_available(context);
                    }
                }
            }
            Input::Request {
                client,
                request_id,
                request,
            } => match request {
                NodeRequest::Strong(_) if self.cut_off(now_ns) => {
                    let leader = self.last_leader;
                    context.reply(client, request_id, NodeResponse::Refused { leader });
                }
                NodeRequest::Strong(operation) => {
                    let request = RaftRequest::Routed(operation);
                    self.raft_handle(
                        now_ns,
                        Input::Request {
                            client,
                            request_id,
                            request,
                        },
                        context,
                    );
                }
                NodeRequest::StrongLocal(operation) => {
                    let request = RaftRequest::Direct(operation);
                    self.raft_handle(
                        now_ns,
                        Input::Request {
                            client,
                            request_id,
                            request,
                        },
                        context,
                    );
                }
                NodeRequest::Available(operation) => {
                    let reply = self.available.execute(now_ns, operation);
                    match self.persist_available(context) {
                        Some(last) => self.waiting.push_back((last, client, request_id, reply)),
                        None => context.reply(client, request_id, NodeResponse::Available(reply)),
                    }
                }
                NodeRequest::Status => {
                    let status = Box::new(self.status(now_ns));
                    context.reply(client, request_id, NodeResponse::Status(status));
                }
            },
            Input::Timer { token } if token == GOSSIP_TIMER_BIT => self.gossip(now_ns, context),
            Input::Timer { token } => self.raft_handle(now_ns, Input::Timer { token }, context),
            Input::Persisted { token } => self.persisted(now_ns, token, context),
        }
        if let Some(leader) = self.raft.replica().and_then(raft::Replica::leader) {
            self.last_leader = Some(leader);
        }
    }
}

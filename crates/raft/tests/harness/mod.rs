//! A tiny deterministic harness: replicas, a virtual clock, a seeded network with drop, duplicate,
//! reorder and partition controls, storage with explicit sync, crashes, pauses, and Raft's five
//! safety properties checked after every event.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use raft::{
    ClientError, ClientOperation, ClientReply, ClientRequest, ClientResponse, Effect, Entry,
    HardState, Input, Kv, KvCommand, KvOutput, KvQuery, MemoryStorage, Message, MessageBody,
    NodeId, PersistRequest, RaftConfig, ReadConsistency, RecoveredState, Replica, Role, Storage,
};

/// Deterministic randomness for the harness (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
    pub fn chance_per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

pub struct Node {
    pub replica: Option<Replica<Kv>>,
    pub storage: MemoryStorage,
    pub config: RaftConfig,
    pub incarnation: u64,
    pub timer_at_ms: Option<u64>,
    pub paused: bool,
}

#[derive(Clone, Debug)]
enum Event {
    Deliver(Message),
    Timer {
        node: NodeId,
        incarnation: u64,
        at_ms: u64,
    },
    Sync {
        node: NodeId,
        incarnation: u64,
        token: u64,
    },
}

/// Message filter: may edit the message; return false to drop it.
pub type Filter = Box<dyn FnMut(&mut Message) -> bool>;

pub struct Network {
    pub now_ms: u64,
    pub rng: Rng,
    pub nodes: BTreeMap<NodeId, Node>,
    queue: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    /// Directed links that drop everything.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub persist_delay_min_ms: u64,
    pub persist_delay_max_ms: u64,
    pub filter: Option<Filter>,
    pub replies: Vec<(NodeId, ClientReply)>,
    pub checker: SafetyChecker,
    /// Count of delivered messages by kind name.
    pub delivered: BTreeMap<&'static str, u64>,
    /// Hash of every processed event, for the determinism self-check.
    pub trace_hash: u64,
    held_for_paused: Vec<Event>,
}

pub fn kind(body: &MessageBody) -> &'static str {
    match body {
        MessageBody::AppendEntries { .. } => "append",
        MessageBody::AppendEntriesResponse { .. } => "append_response",
        MessageBody::RequestVote { pre_vote: true, .. } => "pre_vote",
        MessageBody::RequestVote { .. } => "vote",
        MessageBody::RequestVoteResponse { .. } => "vote_response",
        MessageBody::InstallSnapshot { .. } => "snapshot",
        MessageBody::InstallSnapshotResponse { .. } => "snapshot_response",
        MessageBody::TimeoutNow => "timeout_now",
    }
}

/// Test configuration: fast timers, small batches, snapshots off unless asked.
pub fn test_config(id: NodeId, voters: &[NodeId], seed: u64) -> RaftConfig {
    let mut config = RaftConfig::new(id, voters.iter().copied());
    config.seed = seed.wrapping_mul(1_000_003).wrapping_add(id);
    config.snapshot_threshold_entries = 0;
    config.max_entries_per_message = 8;
    config
}

impl Network {
    /// A bootstrapped cluster of `voters`.
    pub fn new(voters: &[NodeId], seed: u64) -> Self {
        let configs = voters
            .iter()
            .map(|&id| test_config(id, voters, seed))
            .collect();
        Self::with_configs(configs, seed)
    }

    pub fn with_configs(configs: Vec<RaftConfig>, seed: u64) -> Self {
        let mut network = Self {
            now_ms: 0,
            rng: Rng::new(seed),
            nodes: BTreeMap::new(),
            queue: BTreeMap::new(),
            sequence: 0,
            blocked: BTreeSet::new(),
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            latency_min_ms: 1,
            latency_max_ms: 5,
            persist_delay_min_ms: 1,
            persist_delay_max_ms: 1,
            filter: None,
            replies: Vec::new(),
            checker: SafetyChecker::default(),
            delivered: BTreeMap::new(),
            trace_hash: 0xcbf2_9ce4_8422_2325,
            held_for_paused: Vec::new(),
        };
        for config in configs {
            network.add_node(config, None);
        }
        network
    }

    /// Adds (or re-creates) a node, optionally with pre-seeded durable state.
    pub fn add_node(&mut self, config: RaftConfig, state: Option<(HardState, Vec<Entry>)>) {
        let mut storage = MemoryStorage::new();
        if let Some((hard_state, entries)) = state {
            let request = PersistRequest {
                token: 0,
                hard_state: Some(hard_state),
                snapshot: None,
                log_from: Some(1),
                entries: entries.into(),
                repairing: None,
            };
            storage.write(&request).expect("write");
            storage.sync().expect("sync");
        }
        let id = config.id;
        self.nodes.insert(
            id,
            Node {
                replica: None,
                storage,
                config,
                incarnation: 0,
                timer_at_ms: None,
                paused: false,
            },
        );
        self.restart(id);
    }

    pub fn replica(&self, id: NodeId) -> &Replica<Kv> {
        self.nodes[&id].replica.as_ref().expect("node is up")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.replica.is_some())
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.queue.insert((at_ms, self.sequence), event);
    }

    fn hash_event(&mut self, text: &str) {
        for byte in text.bytes() {
            self.trace_hash = (self.trace_hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }

    /// Feeds one input to a live node and performs its effects.
    pub fn input(&mut self, id: NodeId, input: Input) {
        let now_ms = self.now_ms;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        replica.step(now_ms, input);
        let effects = replica.drain_effects();
        self.perform(id, effects);
    }

    fn perform(&mut self, id: NodeId, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Persist(request) => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    node.storage.write(&request).expect("memory storage write");
                    let incarnation = node.incarnation;
                    let delay = self.persist_delay_min_ms
                        + self
                            .rng
                            .below(self.persist_delay_max_ms - self.persist_delay_min_ms + 1);
                    self.schedule(
                        self.now_ms + delay,
                        Event::Sync {
                            node: id,
                            incarnation,
                            token: request.token,
                        },
                    );
                }
                Effect::Send(message) => self.transmit(message),
                Effect::Reply(reply) => self.replies.push((id, reply)),
                Effect::Applied(applied) => self.checker.on_applied(id, &applied),
                Effect::SetTimer { at_ms } => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    node.timer_at_ms = Some(at_ms);
                    let incarnation = node.incarnation;
                    self.schedule(
                        at_ms.max(self.now_ms),
                        Event::Timer {
                            node: id,
                            incarnation,
                            at_ms,
                        },
                    );
                }
                Effect::RoleChanged { .. } => {}
            }
        }
    }

    fn transmit(&mut self, mut message: Message) {
        if self.blocked.contains(&(message.from, message.to))
            || self.rng.chance_per_mille(self.drop_per_mille)
        {
            return;
        }
        if let Some(filter) = self.filter.as_mut()
            && !filter(&mut message)
        {
            return;
        }
        let copies = if self.rng.chance_per_mille(self.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let latency = self.latency_min_ms
                + self
                    .rng
                    .below(self.latency_max_ms - self.latency_min_ms + 1);
            self.schedule(self.now_ms + latency, Event::Deliver(message.clone()));
        }
    }

    fn target(event: &Event) -> NodeId {
        match event {
            Event::Deliver(message) => message.to,
            Event::Timer { node, .. } | Event::Sync { node, .. } => *node,
        }
    }

    /// Processes the earliest event; false when none is left.
    pub fn step(&mut self) -> bool {
        let Some(((at_ms, _), event)) = self.queue.pop_first() else {
            return false;
        };
        self.now_ms = self.now_ms.max(at_ms);
        let target = Self::target(&event);
        if self.nodes.get(&target).is_some_and(|n| n.paused) {
            self.held_for_paused.push(event);
            return true;
        }
        self.hash_event(&format!("{}:{event:?}", self.now_ms));
        match event {
            Event::Deliver(message) => {
                // A link blocked while the message was in flight drops it too.
                if !self.blocked.contains(&(message.from, message.to)) && self.is_up(message.to) {
                    *self.delivered.entry(kind(&message.body)).or_default() += 1;
                    self.input(message.to, Input::Message(message));
                }
            }
            Event::Timer {
                node,
                incarnation,
                at_ms,
            } => {
                let current = self
                    .nodes
                    .get(&node)
                    .is_some_and(|n| n.incarnation == incarnation && n.timer_at_ms == Some(at_ms));
                if current {
                    self.input(node, Input::Timeout);
                }
            }
            Event::Sync {
                node,
                incarnation,
                token,
            } => {
                let Some(state) = self.nodes.get_mut(&node) else {
                    return true;
                };
                if state.incarnation == incarnation && state.replica.is_some() {
                    state.storage.sync().expect("memory storage sync");
                    self.input(node, Input::PersistDone(token));
                }
            }
        }
        self.checker.check(&self.nodes);
        true
    }

    pub fn run_for(&mut self, duration_ms: u64) {
        let until = self.now_ms + duration_ms;
        while self
            .queue
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= until)
        {
            self.step();
        }
        self.now_ms = until;
    }

    /// Runs until `done` holds, at most `limit_ms`; returns whether it held.
    pub fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Self) -> bool) -> bool {
        let until = self.now_ms + limit_ms;
        loop {
            if done(self) {
                return true;
            }
            match self.queue.first_key_value() {
                Some(((at, _), _)) if *at <= until => {
                    self.step();
                }
                _ => {
                    self.now_ms = until;
                    return done(self);
                }
            }
        }
    }

    /// Crash: volatile state and unsynced writes are lost; in-flight completions are void.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        node.replica = None;
        node.storage.crash();
        node.incarnation += 1;
        node.timer_at_ms = None;
    }

    /// Restart from durable storage.
    pub fn restart(&mut self, id: NodeId) {
        let now_ms = self.now_ms;
        let node = self.nodes.get_mut(&id).expect("node");
        node.storage.crash();
        node.incarnation += 1;
        let recovered: RecoveredState = node.storage.load().expect("load");
        let mut replica =
            Replica::new(node.config.clone(), recovered, Kv::new(), now_ms).expect("replica");
        let effects = replica.drain_effects();
        node.replica = Some(replica);
        self.perform(id, effects);
    }

    pub fn pause(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("node").paused = true;
    }

    /// Resume: everything that arrived meanwhile is delivered now.
    pub fn resume(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("node").paused = false;
        let held = std::mem::take(&mut self.held_for_paused);
        for event in held {
            if Self::target(&event) == id {
                self.schedule(self.now_ms, event);
            } else {
                self.held_for_paused.push(event);
            }
        }
    }

    /// Cuts every link between the groups (both directions); nodes in no group are untouched.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.blocked.clear();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in a.iter() {
                        for &y in b.iter() {
                            self.blocked.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.blocked.insert((id, other));
                self.blocked.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Live leaders with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| {
                n.replica
                    .as_ref()
                    .filter(|r| r.role() == Role::Leader)
                    .map(|r| (*id, r.term()))
            })
            .collect()
    }

    /// The leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|(_, term)| *term)
            .map(|(id, _)| id)
    }

    /// The leader among `group` whose term is the highest of the group (a leader that would serve).
    pub fn leader_in(&self, group: &[NodeId]) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .filter(|(id, _)| group.contains(id))
            .max_by_key(|(_, t)| *t)
            .map(|(id, _)| id)
    }

    pub fn elect(&mut self, limit_ms: u64) -> NodeId {
        assert!(
            self.run_until(limit_ms, |n| n.leader().is_some()),
            "no leader elected within {limit_ms} ms"
        );
        self.leader().expect("leader")
    }

    /// Submits a request to `node` directly (client co-located) and returns nothing.
    pub fn submit(
        &mut self,
        node: NodeId,
        client_id: u64,
        sequence: u64,
        operation: ClientOperation,
    ) {
        self.input(
            node,
            Input::Client(ClientRequest {
                client_id,
                sequence,
                operation,
            }),
        );
    }

    pub fn take_reply(
        &mut self,
        client_id: u64,
        sequence: u64,
    ) -> Option<Result<ClientResponse, ClientError>> {
        let position = self
            .replies
            .iter()
            .position(|(_, r)| r.client_id == client_id && r.sequence == sequence)?;
        Some(self.replies.remove(position).1.result)
    }

    /// Sends to `node` and waits up to `limit_ms` for the reply.
    pub fn request(
        &mut self,
        node: NodeId,
        client_id: u64,
        sequence: u64,
        operation: ClientOperation,
        limit_ms: u64,
    ) -> Option<Result<ClientResponse, ClientError>> {
        self.submit(node, client_id, sequence, operation);
        let found = self.run_until(limit_ms, |n| {
            n.replies
                .iter()
                .any(|(_, r)| r.client_id == client_id && r.sequence == sequence)
        });
        if found {
            self.take_reply(client_id, sequence)
        } else {
            None
        }
    }

    /// A client that retries (same sequence number) at whichever node looks like the leader until
    /// it gets a definite answer or `limit_ms` passes.
    pub fn client_write(
        &mut self,
        client_id: u64,
        sequence: u64,
        command: KvCommand,
        limit_ms: u64,
    ) -> Option<Result<ClientResponse, ClientError>> {
        let deadline = self.now_ms + limit_ms;
        let mut last = None;
        while self.now_ms < deadline {
            let Some(leader) = self.leader() else {
                self.run_for(20);
                continue;
            };
            match self.request(
                leader,
                client_id,
                sequence,
                ClientOperation::Write(command.encode()),
                300,
            ) {
                Some(Ok(response)) => return Some(Ok(response)),
                Some(Err(error)) => {
                    last = Some(Err(error));
                    self.run_for(20);
                }
                None => {}
            }
        }
        last
    }

    pub fn put(&mut self, client_id: u64, sequence: u64, key: &str, value: &str) -> ClientResponse {
        let command = KvCommand::Put {
            key: key.into(),
            value: value.as_bytes().to_vec(),
        };
        match self.client_write(client_id, sequence, command, 5_000) {
            Some(Ok(response)) => response,
            other => panic!("put {key}={value} failed: {other:?}"),
        }
    }

    pub fn read(
        &mut self,
        node: NodeId,
        client_id: u64,
        sequence: u64,
        key: &str,
        consistency: ReadConsistency,
    ) -> Option<Result<ClientResponse, ClientError>> {
        let query = KvQuery::Get { key: key.into() }.encode();
        self.request(
            node,
            client_id,
            sequence,
            ClientOperation::Read { query, consistency },
            1_000,
        )
    }

    /// Runs until every live node has applied everything the leader committed.
    pub fn settle(&mut self, limit_ms: u64) -> bool {
        self.run_until(limit_ms, |n| {
            let Some(leader) = n.leader() else {
                return false;
            };
            let commit = n.replica(leader).commit_index();
            let last = n.replica(leader).last_index();
            let members = n.replica(leader).membership().members();
            commit == last
                && n.nodes
                    .iter()
                    .filter(|(id, _)| members.contains(id))
                    .filter_map(|(_, node)| node.replica.as_ref())
                    .all(|r| r.applied_index() == commit)
        })
    }

    /// One line per node, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = format!("now {} ms\n", self.now_ms);
        for (id, node) in &self.nodes {
            match &node.replica {
                None => out.push_str(&format!("  {id}: down\n")),
                Some(r) => out.push_str(&format!(
                    "  {id}: {:?} term {} vote {:?} leader {:?} last {} (term {:?}) commit {} applied {} snapshot {} repairing {} membership {:?}\n",
                    r.role(),
                    r.term(),
                    r.voted_for(),
                    r.leader(),
                    r.last_index(),
                    r.term_at(r.last_index()),
                    r.commit_index(),
                    r.applied_index(),
                    r.snapshot_meta().index,
                    r.is_repairing(),
                    r.membership()
                )),
            }
        }
        out
    }

    pub fn value(&self, id: NodeId, key: &str) -> Option<String> {
        self.replica(id)
            .state_machine()
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

pub fn output(response: &ClientResponse) -> KvOutput {
    KvOutput::decode(&response.output)
}

/// Raft's five safety properties (Figure 3) plus sanity relations, asserted after every event.
#[derive(Default)]
pub struct SafetyChecker {
    /// Election Safety: at most one leader per term.
    leader_of_term: BTreeMap<u64, NodeId>,
    /// Leader Append-Only: a leader's (term, last index, last term) at the previous check.
    leader_tail: BTreeMap<NodeId, (u64, u64, u64)>,
    /// State Machine Safety: what was applied at each index, by anyone.
    applied: BTreeMap<u64, (u64, u32)>,
    /// For each applied index, the highest term any replica had when it was first applied: the
    /// entry was committed in that term or earlier, so every leader of a later term must hold it.
    committed_by_term: BTreeMap<u64, u64>,
    /// Highest term seen on any replica.
    max_term: u64,
    pub checks: u64,
}

impl SafetyChecker {
    pub fn on_applied(&mut self, node: NodeId, applied: &raft::AppliedEntry) {
        let record = (applied.term, applied.payload_crc);
        self.committed_by_term
            .entry(applied.index)
            .or_insert(self.max_term);
        let previous = self.applied.entry(applied.index).or_insert(record);
        assert_eq!(
            *previous, record,
            "State Machine Safety: node {node} applied a different entry at index {}",
            applied.index
        );
    }

    pub fn check(&mut self, nodes: &BTreeMap<NodeId, Node>) {
        self.checks += 1;
        let live: Vec<(NodeId, &Replica<Kv>)> = nodes
            .iter()
            .filter_map(|(id, n)| n.replica.as_ref().map(|r| (*id, r)))
            .collect();
        self.max_term = live
            .iter()
            .map(|(_, r)| r.term())
            .max()
            .unwrap_or(0)
            .max(self.max_term);
        for &(id, replica) in &live {
            assert!(
                replica.applied_index() <= replica.commit_index(),
                "node {id}: applied beyond commit"
            );
            assert!(
                replica.commit_index() <= replica.last_index(),
                "node {id}: commit beyond log end"
            );
            assert!(
                replica.term() >= replica.term_at(replica.last_index()).unwrap_or(0),
                "node {id}: log term above current term"
            );
            if replica.role() == Role::Leader {
                let term = replica.term();
                let holder = *self.leader_of_term.entry(term).or_insert(id);
                assert_eq!(holder, id, "Election Safety: two leaders in term {term}");
                if let Some(&(old_term, old_last, old_last_term)) = self.leader_tail.get(&id)
                    && old_term == term
                    && old_last > replica.snapshot_meta().index
                {
                    assert!(
                        replica.last_index() >= old_last,
                        "Leader Append-Only: leader {id} shrank its log"
                    );
                    assert_eq!(
                        replica.term_at(old_last),
                        Some(old_last_term),
                        "Leader Append-Only: leader {id} rewrote its log"
                    );
                }
                let last = replica.last_index();
                self.leader_tail
                    .insert(id, (term, last, replica.term_at(last).unwrap_or(0)));
                // Leader Completeness: every applied (hence committed) entry is in the leader's log.
                for (&index, &(entry_term, _)) in
                    self.applied.range(replica.snapshot_meta().index + 1..)
                {
                    if self
                        .committed_by_term
                        .get(&index)
                        .is_some_and(|&t| t >= term)
                    {
                        continue;
                    }
                    assert_eq!(
                        replica.term_at(index),
                        Some(entry_term),
                        "Leader Completeness: leader {id} (term {term}) lacks committed entry {index}"
                    );
                }
            } else {
                self.leader_tail.remove(&id);
            }
        }
        // Log Matching: if two logs hold an entry with the same index and term, they are identical
        // up to it. Checked from the highest shared (index, term) down.
        for (position, &(a_id, a)) in live.iter().enumerate() {
            for &(b_id, b) in &live[position + 1..] {
                let low = a.snapshot_meta().index.max(b.snapshot_meta().index) + 1;
                let high = a.last_index().min(b.last_index());
                let mut index = high;
                while index >= low && a.term_at(index) != b.term_at(index) {
                    index -= 1;
                }
                while index >= low {
                    assert_eq!(
                        a.entry(index),
                        b.entry(index),
                        "Log Matching: nodes {a_id} and {b_id} differ at {index}"
                    );
                    index -= 1;
                }
            }
        }
    }
}

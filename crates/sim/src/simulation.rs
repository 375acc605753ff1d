//! The driver: one event queue ordered by (true time, sequence number), one seeded RNG, the
//! network, disks, clocks, nemesis and clients around a set of [`Process`]es.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use clock::VectorClock;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::SimRng;
use crate::disk::{Disk, DiskConfig, PendingWrite};
use crate::geo::Location;
use crate::history::{EventType, HistoryEvent};
use crate::nemesis::{Fault, NemesisPlan};
use crate::network::{DropReason, Network, NetworkConfig, Route};
use crate::process::{
    ClientId, Context, Effect, Input, NodeId, Process, RequestId, Storage, Token,
};
use crate::trace::{Trace, TraceEvent, TraceKind};
use crate::workload::{ClientConfig, Invocation, Outcome, Workload};

/// Everything that defines a run besides the protocol and the workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The one seed every random choice derives from.
    pub seed: u64,
    /// Number of nodes, with ids `0..nodes`.
    pub nodes: usize,
    /// Node `i` sits at `placement[i % len]` (all in one place if empty).
    pub placement: Vec<Location>,
    /// Link behaviour.
    pub network: NetworkConfig,
    /// Disk timing.
    pub disk: DiskConfig,
    /// Client behaviour (used once a workload is set).
    pub clients: ClientConfig,
    /// Scheduled faults.
    pub nemesis: NemesisPlan,
    /// Whether to record the trace (costs time and memory; off for benchmarks).
    pub trace: bool,
}

impl Config {
    /// Defaults for `nodes` nodes in one region, no faults, no trace.
    pub fn new(seed: u64, nodes: usize) -> Self {
        Self {
            seed,
            nodes,
            placement: Vec::new(),
            network: NetworkConfig::default(),
            disk: DiskConfig::default(),
            clients: ClientConfig::default(),
            nemesis: NemesisPlan::none(),
            trace: false,
        }
    }
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events taken off the queue.
    pub events: u64,
    /// Messages sent by processes.
    pub messages_sent: u64,
    /// Messages handed to a receiver (duplicates included).
    pub messages_delivered: u64,
    /// Messages lost (loss, partition, receiver down).
    pub messages_dropped: u64,
    /// Extra copies the network made.
    pub messages_duplicated: u64,
    /// Timers that fired at a live process.
    pub timers_fired: u64,
    /// Writes that became durable.
    pub writes_durable: u64,
    /// Writes lost in crashes before becoming durable.
    pub writes_lost: u64,
    /// Client operations invoked.
    pub operations: u64,
    /// Operations that completed `ok`.
    pub ok: u64,
    /// Operations that completed `fail`.
    pub fail: u64,
    /// Operations that ended `info` (indeterminate).
    pub info: u64,
    /// Nemesis steps applied.
    pub nemesis_steps: u64,
}

/// A nemesis step as it was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisRecord {
    /// True time in nanoseconds.
    pub at_ns: u64,
    /// What happened.
    pub description: String,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// True time at the end, in nanoseconds.
    pub end_ns: u64,
    /// Counters.
    pub stats: Stats,
    /// Client history in real-time order.
    pub history: Vec<HistoryEvent>,
    /// Nemesis steps applied.
    pub nemesis: Vec<NemesisRecord>,
    /// Hash of every event processed: equal seeds must give equal hashes.
    pub hash: u64,
}

/// The client used by [`Simulation::submit`]: its replies go to [`Simulation::take_replies`].
pub const EXTERNAL_CLIENT: ClientId = u64::MAX;

enum Event<P: Process> {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: P::Message,
        clock: Option<Box<VectorClock>>,
    },
    Timer {
        node: NodeId,
        incarnation: u32,
        token: Token,
    },
    DiskDone {
        node: NodeId,
        incarnation: u32,
    },
    ClientNext {
        client: ClientId,
    },
    ClientRequest {
        client: ClientId,
        node: NodeId,
        request_id: RequestId,
        request: P::Request,
    },
    ClientReply {
        client: ClientId,
        request_id: RequestId,
        response: P::Response,
    },
    ClientTimeout {
        client: ClientId,
        request_id: RequestId,
    },
    Nemesis {
        step: usize,
    },
}

impl<P: Process> Event<P> {
    /// The node the event happens at, if it is held by a pause or lost by a crash.
    fn node(&self) -> Option<NodeId> {
        match self {
            Event::Deliver { to, .. } => Some(*to),
            Event::Timer { node, .. }
            | Event::DiskDone { node, .. }
            | Event::ClientRequest { node, .. } => Some(*node),
            _ => None,
        }
    }
}

struct LocalClock {
    anchor_true_ns: u64,
    anchor_local_ns: i128,
    drift_ppm: i64,
    last_ns: u64,
}

impl LocalClock {
    fn raw(&self, true_ns: u64) -> i128 {
        let elapsed = true_ns.saturating_sub(self.anchor_true_ns) as i128;
        self.anchor_local_ns + elapsed * (1_000_000 + self.drift_ppm as i128) / 1_000_000
    }

    fn read(&mut self, true_ns: u64) -> u64 {
        let raw = self.raw(true_ns).clamp(0, u64::MAX as i128) as u64;
        self.last_ns = self.last_ns.max(raw);
        self.last_ns
    }

    fn set(&mut self, true_ns: u64, offset_ns: i64, drift_ppm: i64) {
        self.anchor_true_ns = true_ns;
        self.anchor_local_ns = true_ns as i128 + offset_ns as i128;
        self.drift_ppm = drift_ppm.clamp(-500_000, 500_000);
    }

    /// True time at which local time reaches `now_local + after_ns`.
    fn deadline_true_ns(&mut self, true_ns: u64, after_ns: u64) -> u64 {
        let target = self.read(true_ns) as i128 + after_ns as i128;
        let rate = (1_000_000 + self.drift_ppm) as i128;
        let at = self.anchor_true_ns as i128 + (target - self.anchor_local_ns) * 1_000_000 / rate;
        at.clamp(true_ns as i128, u64::MAX as i128) as u64
    }
}

struct Node<P> {
    process: Option<P>,
    incarnation: u32,
    paused: bool,
    held: Vec<u32>,
    clock: LocalClock,
    disk: Disk,
    vector: VectorClock,
}

struct Client {
    process: u64,
    outstanding: Option<(RequestId, Invocation, NodeId)>,
}

/// Builds (or rebuilds after a crash) the process of a node from its durable storage.
pub type Builder<P> = dyn FnMut(NodeId, &Storage) -> P;

/// A deterministic run of protocol `P`: build it with [`Simulation::new`], optionally
/// [`Simulation::set_workload`], then [`Simulation::run`] (or step it by hand).
pub struct Simulation<P: Process> {
    config: Config,
    now_ns: u64,
    sequence: u64,
    queue: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slots: Vec<Option<Event<P>>>,
    free_slots: Vec<u32>,
    rng: SimRng,
    nodes: Vec<Node<P>>,
    network: Network,
    builder: Box<Builder<P>>,
    effects: Vec<Effect<P::Message, P::Response>>,
    workload: Option<Box<dyn Workload<P>>>,
    clients: Vec<Client>,
    clients_stop_ns: u64,
    next_request_id: RequestId,
    external_replies: Vec<(RequestId, P::Response)>,
    history: Vec<HistoryEvent>,
    trace: Option<Trace>,
    stats: Stats,
    nemesis_log: Vec<NemesisRecord>,
    hash: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl<P: Process> Simulation<P> {
    /// Builds the nodes with `builder(id, &empty_storage)`, starts them at time 0 and schedules
    /// the nemesis plan. `builder` is called again, with the durable storage, on every restart.
    pub fn new(config: Config, builder: impl FnMut(NodeId, &Storage) -> P + 'static) -> Self {
        let network = Network::new(config.network.clone(), config.nodes, &config.placement);
        let mut simulation = Self {
            now_ns: 0,
            sequence: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            rng: SimRng::seed_from_u64(config.seed),
            nodes: Vec::with_capacity(config.nodes),
            network,
            builder: Box::new(builder),
            effects: Vec::new(),
            workload: None,
            clients: Vec::new(),
            clients_stop_ns: u64::MAX,
            next_request_id: 1,
            external_replies: Vec::new(),
            history: Vec::new(),
            trace: config.trace.then(Trace::default),
            stats: Stats::default(),
            nemesis_log: Vec::new(),
            hash: FNV_OFFSET,
            config,
        };
        let empty = Storage::new();
        for node in 0..simulation.config.nodes as NodeId {
            let process = (simulation.builder)(node, &empty);
            simulation.nodes.push(Node {
                process: Some(process),
                incarnation: 0,
                paused: false,
                held: Vec::new(),
                clock: LocalClock {
                    anchor_true_ns: 0,
                    anchor_local_ns: 0,
                    drift_ppm: 0,
                    last_ns: 0,
                },
                disk: Disk::default(),
                vector: VectorClock::new(),
            });
        }
        for step in 0..simulation.config.nemesis.steps.len() {
            let at_ns = simulation.config.nemesis.steps[step].at_ns;
            simulation.schedule(at_ns, Event::Nemesis { step });
        }
        for node in 0..simulation.config.nodes as NodeId {
            simulation.record_local(node, TraceKind::Start, None, || "boot".into());
            simulation.call(node, Input::Start);
        }
        simulation
    }

    /// Starts `config.clients.count` clients driven by `workload`, first invocations spread over
    /// the first think time.
    pub fn set_workload(&mut self, workload: Box<dyn Workload<P>>) {
        self.workload = Some(workload);
        let count = self.config.clients.count;
        self.clients = (0..count as u64)
            .map(|process| Client {
                process,
                outstanding: None,
            })
            .collect();
        for client in 0..count as ClientId {
            let think_ns = self.think_ns();
            self.schedule(self.now_ns + think_ns, Event::ClientNext { client });
        }
    }

    /// Runs clients for `duration_ns`, then lets outstanding operations finish or time out, and
    /// reports.
    pub fn run(&mut self, duration_ns: u64) -> Report {
        self.clients_stop_ns = duration_ns;
        self.run_until(duration_ns);
        let network = self.network.config();
        let drain_ns = self.config.clients.timeout_ns + 2 * network.client_latency_ns + 1;
        self.run_until(duration_ns + drain_ns);
        self.report()
    }

    /// Processes every event due at or before `end_ns`; afterwards the clock reads `end_ns`.
    pub fn run_until(&mut self, end_ns: u64) {
        while let Some(&Reverse((time_ns, _, _))) = self.queue.peek() {
            if time_ns > end_ns {
                break;
            }
            self.step();
        }
        self.now_ns = self.now_ns.max(end_ns);
    }

    /// Processes the next event; `false` if the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some(Reverse((time_ns, sequence, slot))) = self.queue.pop() else {
            return false;
        };
        self.now_ns = time_ns;
        let Some(event) = self.slots[slot as usize].take() else {
            return true;
        };
        self.free_slots.push(slot);
        self.stats.events += 1;
        self.mix(time_ns);
        self.mix(sequence);
        if let Some(node) = event.node() {
            let Some(state) = self.nodes.get_mut(node as usize) else {
                return true;
            };
            if state.paused {
                let slot = self.store(event);
                self.nodes[node as usize].held.push(slot);
                return true;
            }
        }
        self.dispatch(event);
        true
    }

    /// Sends `request` to `node` as the external client; the answer lands in
    /// [`Simulation::take_replies`]. Returns the request id.
    pub fn submit(&mut self, node: NodeId, request: P::Request) -> RequestId {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let at_ns = self.now_ns + self.network.config().client_latency_ns;
        let request_event = Event::ClientRequest {
            client: EXTERNAL_CLIENT,
            node,
            request_id,
            request,
        };
        self.schedule(at_ns, request_event);
        request_id
    }

    /// Replies to [`Simulation::submit`] received so far (drained).
    pub fn take_replies(&mut self) -> Vec<(RequestId, P::Response)> {
        std::mem::take(&mut self.external_replies)
    }

    /// Applies a fault now (as a nemesis step would).
    pub fn apply_fault(&mut self, fault: &Fault) {
        self.stats.nemesis_steps += 1;
        let description = fault.to_string();
        self.mix(description.len() as u64);
        self.record(TraceKind::Nemesis, None, None, None, &description, None);
        self.nemesis_log.push(NemesisRecord {
            at_ns: self.now_ns,
            description,
        });
        match fault {
            Fault::Partition(partition) => self.network.set_partition(Some(partition.clone())),
            Fault::Heal => {
                self.network.set_partition(None);
                self.network.clear_overrides();
                let configured = &self.config.network;
                let (loss, duplicate, reorder) =
                    (configured.loss, configured.duplicate, configured.reorder);
                self.network.set_loss(loss);
                self.network.set_duplicate(duplicate);
                self.network.set_reorder(reorder);
            }
            Fault::Loss { probability } => self.network.set_loss(*probability),
            Fault::Duplicate { probability } => self.network.set_duplicate(*probability),
            Fault::Reorder { probability } => self.network.set_reorder(*probability),
            Fault::Crash { node } => self.crash(*node),
            Fault::Restart { node } => self.restart(*node),
            Fault::Pause { node } => {
                if let Some(state) = self.nodes.get_mut(*node as usize) {
                    state.paused = true;
                }
            }
            Fault::Resume { node } => self.resume(*node),
            Fault::Skew {
                node,
                offset_ns,
                drift_ppm,
            } => {
                let now_ns = self.now_ns;
                if let Some(state) = self.nodes.get_mut(*node as usize) {
                    state.clock.set(now_ns, *offset_ns, *drift_ppm);
                }
            }
            Fault::ResetClocks => {
                let now_ns = self.now_ns;
                for state in &mut self.nodes {
                    state.clock.set(now_ns, 0, 0);
                }
            }
        }
    }

    /// True time now, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The process of `node`, unless it is crashed.
    pub fn node(&self, node: NodeId) -> Option<&P> {
        self.nodes.get(node as usize)?.process.as_ref()
    }

    /// Mutable access to the process of `node` (for tests that poke at state).
    pub fn node_mut(&mut self, node: NodeId) -> Option<&mut P> {
        self.nodes.get_mut(node as usize)?.process.as_mut()
    }

    /// The durable storage of `node`.
    pub fn storage(&self, node: NodeId) -> Option<&Storage> {
        Some(self.nodes.get(node as usize)?.disk.durable())
    }

    /// The network (placement, latency, partition).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network, to install partitions or link overrides by hand.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The history so far.
    pub fn history(&self) -> &[HistoryEvent] {
        &self.history
    }

    /// The trace, if recording.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// Hash of every event processed so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A snapshot report of the run so far.
    pub fn report(&self) -> Report {
        Report {
            seed: self.config.seed,
            end_ns: self.now_ns,
            stats: self.stats.clone(),
            history: self.history.clone(),
            nemesis: self.nemesis_log.clone(),
            hash: self.hash,
        }
    }

    fn mix(&mut self, word: u64) {
        // FNV-1a over 64-bit words: cheap, stable across platforms and Rust versions.
        self.hash = (self.hash ^ word).wrapping_mul(FNV_PRIME);
    }

    fn store(&mut self, event: Event<P>) -> u32 {
        match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn schedule(&mut self, at_ns: u64, event: Event<P>) {
        let slot = self.store(event);
        self.sequence += 1;
        self.queue.push(Reverse((at_ns, self.sequence, slot)));
    }

    fn think_ns(&mut self) -> u64 {
        let clients = &self.config.clients;
        let (low, high) = (
            clients.think_ns_min,
            clients.think_ns_max.max(clients.think_ns_min),
        );
        self.rng.random_range(low..=high)
    }

    fn dispatch(&mut self, event: Event<P>) {
        match event {
            Event::Deliver {
                from,
                to,
                message,
                clock,
            } => self.deliver(from, to, message, clock),
            Event::Timer {
                node,
                incarnation,
                token,
            } => {
                self.mix(token);
                let state = &self.nodes[node as usize];
                if state.incarnation == incarnation && state.process.is_some() {
                    self.stats.timers_fired += 1;
                    self.record_local(node, TraceKind::Timer, None, || format!("token {token}"));
                    self.call(node, Input::Timer { token });
                }
            }
            Event::DiskDone { node, incarnation } => {
                let state = &mut self.nodes[node as usize];
                if state.incarnation != incarnation {
                    return;
                }
                if let Some(token) = state.disk.complete_oldest() {
                    self.stats.writes_durable += 1;
                    self.mix(token);
                    self.record_local(node, TraceKind::Persisted, None, || {
                        format!("token {token}")
                    });
                    self.call(node, Input::Persisted { token });
                }
            }
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientRequest {
                client,
                node,
                request_id,
                request,
            } => {
                self.mix(request_id);
                if self.nodes[node as usize].process.is_none() {
                    return;
                }
                if self.trace.is_some() {
                    let detail = format!("request {request_id}: {request:?}");
                    self.record_local(node, TraceKind::Request, Some(client), || detail);
                }
                let input = Input::Request {
                    client,
                    request_id,
                    request,
                };
                self.call(node, input);
            }
            Event::ClientReply {
                client,
                request_id,
                response,
            } => self.client_reply(client, request_id, response),
            Event::ClientTimeout { client, request_id } => self.client_timeout(client, request_id),
            Event::Nemesis { step } => {
                let fault = self.config.nemesis.steps[step].fault.clone();
                self.apply_fault(&fault);
            }
        }
    }

    fn deliver(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: P::Message,
        clock: Option<Box<VectorClock>>,
    ) {
        self.mix(from);
        self.mix(to);
        if self.nodes[to as usize].process.is_none() {
            self.stats.messages_dropped += 1;
            if self.trace.is_some() {
                let detail = format!("{}: {message:?}", DropReason::NodeDown);
                let carried = clock.as_deref();
                self.record(
                    TraceKind::Drop,
                    Some(to),
                    Some(from),
                    None,
                    &detail,
                    carried,
                );
            }
            return;
        }
        self.stats.messages_delivered += 1;
        if let Some(trace) = self.trace.as_mut() {
            let vector = &mut self.nodes[to as usize].vector;
            if let Some(carried) = &clock {
                vector.merge(carried);
            }
            vector.increment(to);
            trace.events.push(TraceEvent {
                time: self.now_ns,
                kind: TraceKind::Deliver,
                node: Some(to),
                peer: Some(from),
                client: None,
                detail: format!("{message:?}"),
                clock: vector.clone(),
            });
        }
        self.call(to, Input::Message { from, message });
    }

    fn call(&mut self, node: NodeId, input: Input<P::Message, P::Request>) {
        let now_ns = self.now_ns;
        let tracing = self.trace.is_some();
        let mut effects = std::mem::take(&mut self.effects);
        {
            let state = &mut self.nodes[node as usize];
            let local_ns = state.clock.read(now_ns);
            if let Some(process) = state.process.as_mut() {
                let mut context = Context::new(node, tracing, &mut self.rng, &mut effects);
                process.handle(local_ns, input, &mut context);
            }
        }
        for effect in effects.drain(..) {
            self.apply_effect(node, effect);
        }
        self.effects = effects;
    }

    fn apply_effect(&mut self, node: NodeId, effect: Effect<P::Message, P::Response>) {
        match effect {
            Effect::Send { to, message } => self.send(node, to, message),
            Effect::Reply {
                client,
                request_id,
                response,
            } => {
                if self.trace.is_some() {
                    let detail = format!("reply {request_id}: {response:?}");
                    self.record_local(node, TraceKind::Reply, Some(client), || detail);
                }
                let at_ns = self.now_ns + self.network.config().client_latency_ns;
                let reply = Event::ClientReply {
                    client,
                    request_id,
                    response,
                };
                self.schedule(at_ns, reply);
            }
            Effect::SetTimer { after_ns, token } => {
                let now_ns = self.now_ns;
                let state = &mut self.nodes[node as usize];
                let at_ns = state.clock.deadline_true_ns(now_ns, after_ns);
                let incarnation = state.incarnation;
                let timer = Event::Timer {
                    node,
                    incarnation,
                    token,
                };
                self.schedule(at_ns, timer);
            }
            Effect::Persist { key, value, token } => {
                let now_ns = self.now_ns;
                let state = &mut self.nodes[node as usize];
                let write = PendingWrite { key, value, token };
                let at_ns = state.disk.submit(write, now_ns, &self.config.disk);
                let incarnation = state.incarnation;
                self.schedule(at_ns, Event::DiskDone { node, incarnation });
            }
            Effect::Log { text } => self.record_local(node, TraceKind::Log, None, || text),
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: P::Message) {
        self.stats.messages_sent += 1;
        let clock = match self.trace.as_mut() {
            Some(trace) => {
                let vector = &mut self.nodes[from as usize].vector;
                vector.increment(from);
                trace.events.push(TraceEvent {
                    time: self.now_ns,
                    kind: TraceKind::Send,
                    node: Some(from),
                    peer: Some(to),
                    client: None,
                    detail: format!("{message:?}"),
                    clock: vector.clone(),
                });
                Some(Box::new(vector.clone()))
            }
            None => None,
        };
        match self.network.route(from, to, &mut self.rng) {
            Route::Dropped(reason) => {
                self.stats.messages_dropped += 1;
                self.mix(reason as u64);
                if self.trace.is_some() {
                    let detail = format!("{reason}: {message:?}");
                    let carried = clock.as_deref();
                    self.record(
                        TraceKind::Drop,
                        Some(to),
                        Some(from),
                        None,
                        &detail,
                        carried,
                    );
                }
            }
            Route::Delivered {
                delay_ns,
                duplicate_ns,
            } => {
                if let Some(copy_ns) = duplicate_ns {
                    self.stats.messages_duplicated += 1;
                    let copy = Event::Deliver {
                        from,
                        to,
                        message: message.clone(),
                        clock: clock.clone(),
                    };
                    self.schedule(self.now_ns + copy_ns, copy);
                }
                let at_ns = self.now_ns + delay_ns;
                let deliver = Event::Deliver {
                    from,
                    to,
                    message,
                    clock,
                };
                self.schedule(at_ns, deliver);
            }
        }
    }

    fn crash(&mut self, node: NodeId) {
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return;
        };
        if state.process.is_none() {
            return;
        }
        state.process = None;
        state.incarnation += 1;
        state.paused = false;
        let held = std::mem::take(&mut state.held);
        let lost = state.disk.crash(&mut self.rng);
        self.stats.writes_lost += lost as u64;
        for slot in held {
            self.slots[slot as usize] = None;
            self.free_slots.push(slot);
        }
        self.record_local(node, TraceKind::Crash, None, || {
            format!("{lost} unsynced writes lost")
        });
    }

    fn restart(&mut self, node: NodeId) {
        let Some(state) = self.nodes.get(node as usize) else {
            return;
        };
        if state.process.is_some() {
            return;
        }
        let process = (self.builder)(node, state.disk.durable());
        self.nodes[node as usize].process = Some(process);
        self.record_local(node, TraceKind::Start, None, || "restart".into());
        self.call(node, Input::Start);
    }

    fn resume(&mut self, node: NodeId) {
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return;
        };
        state.paused = false;
        let held = std::mem::take(&mut state.held);
        // Held events are due now, in the order they arrived.
        for slot in held {
            self.sequence += 1;
            self.queue.push(Reverse((self.now_ns, self.sequence, slot)));
        }
    }

    fn client_next(&mut self, client: ClientId) {
        if self.now_ns >= self.clients_stop_ns {
            return;
        }
        let nodes = self.config.nodes;
        let Some(workload) = self.workload.as_mut() else {
            return;
        };
        let Some(call) = workload.next_call(client, nodes, &mut self.rng) else {
            return;
        };
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let Some(state) = self.clients.get_mut(client as usize) else {
            return;
        };
        state.outstanding = Some((request_id, call.invocation.clone(), call.node));
        let process = state.process;
        self.stats.operations += 1;
        self.push_history(
            process,
            EventType::Invoke,
            &call.invocation,
            None,
            call.node,
        );
        let latency_ns = self.network.config().client_latency_ns;
        let request = Event::ClientRequest {
            client,
            node: call.node.min(nodes.saturating_sub(1) as NodeId),
            request_id,
            request: call.request,
        };
        self.schedule(self.now_ns + latency_ns, request);
        let timeout_ns = self.config.clients.timeout_ns;
        let timeout = Event::ClientTimeout { client, request_id };
        self.schedule(self.now_ns + timeout_ns, timeout);
    }

    fn client_reply(&mut self, client: ClientId, request_id: RequestId, response: P::Response) {
        self.mix(request_id);
        if client == EXTERNAL_CLIENT {
            self.external_replies.push((request_id, response));
            return;
        }
        let Some(state) = self.clients.get_mut(client as usize) else {
            return;
        };
        let Some((outstanding_id, invocation, node)) = state.outstanding.take() else {
            return;
        };
        if outstanding_id != request_id {
            // A late or duplicate reply to an operation already ended: the client moved on.
            state.outstanding = Some((outstanding_id, invocation, node));
            return;
        }
        let process = state.process;
        let Some(workload) = self.workload.as_mut() else {
            return;
        };
        let outcome = workload.outcome(&invocation, &response);
        self.complete(client, process, &invocation, outcome, node);
    }

    fn client_timeout(&mut self, client: ClientId, request_id: RequestId) {
        let Some(state) = self.clients.get_mut(client as usize) else {
            return;
        };
        match &state.outstanding {
            Some((outstanding_id, _, _)) if *outstanding_id == request_id => {}
            _ => return,
        }
        let Some((_, invocation, node)) = state.outstanding.take() else {
            return;
        };
        let process = state.process;
        self.complete(
            client,
            process,
            &invocation,
            Outcome::Info("timeout".into()),
            node,
        );
    }

    fn complete(
        &mut self,
        client: ClientId,
        process: u64,
        invocation: &Invocation,
        outcome: Outcome,
        node: NodeId,
    ) {
        match outcome {
            Outcome::Ok(value) => {
                self.stats.ok += 1;
                let done = Invocation {
                    value,
                    ..invocation.clone()
                };
                self.push_history(process, EventType::Ok, &done, None, node);
            }
            Outcome::Fail(error) => {
                self.stats.fail += 1;
                self.push_history(process, EventType::Fail, invocation, Some(error), node);
            }
            Outcome::Info(error) => {
                self.stats.info += 1;
                self.push_history(process, EventType::Info, invocation, Some(error), node);
                // An indeterminate operation may still take effect later: its process can never
                // invoke again, so the client continues as a fresh process.
                let count = self.clients.len() as u64;
                if let Some(state) = self.clients.get_mut(client as usize) {
                    state.process += count;
                }
            }
        }
        let think_ns = self.think_ns();
        self.schedule(self.now_ns + think_ns, Event::ClientNext { client });
    }

    fn push_history(
        &mut self,
        process: u64,
        event_type: EventType,
        invocation: &Invocation,
        error: Option<String>,
        node: NodeId,
    ) {
        self.mix(process);
        self.mix(event_type as u64);
        self.mix(self.now_ns);
        let value_text = invocation.value.to_string();
        for byte in value_text.bytes() {
            self.mix(byte as u64);
        }
        self.history.push(HistoryEvent {
            process,
            event_type,
            f: invocation.f.clone(),
            key: invocation.key.clone(),
            value: invocation.value.clone(),
            time: self.now_ns,
            error,
            node: Some(node),
        });
    }

    /// Records a local event at `node`, ticking its vector clock (only when tracing).
    fn record_local(
        &mut self,
        node: NodeId,
        kind: TraceKind,
        client: Option<ClientId>,
        detail: impl FnOnce() -> String,
    ) {
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return;
        };
        state.vector.increment(node);
        trace.events.push(TraceEvent {
            time: self.now_ns,
            kind,
            node: Some(node),
            peer: None,
            client,
            detail: detail(),
            clock: state.vector.clone(),
        });
    }

    /// Records an event that ticks no clock (drops, nemesis steps).
    fn record(
        &mut self,
        kind: TraceKind,
        node: Option<NodeId>,
        peer: Option<NodeId>,
        client: Option<ClientId>,
        detail: &str,
        clock: Option<&VectorClock>,
    ) {
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        trace.events.push(TraceEvent {
            time: self.now_ns,
            kind,
            node,
            peer,
            client,
            detail: detail.to_string(),
            clock: clock.cloned().unwrap_or_default(),
        });
    }
}

//! The one trait every simulated protocol implements: [`Process::handle`] takes the local time and
//! one [`Input`], and pushes [`Effect`]s into a [`Context`]. Nothing else crosses the boundary.

use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::SimRng;

/// Identifies a node (a replica) in a run; equal to `clock::ReplicaId` so vector clocks key by it.
pub type NodeId = clock::ReplicaId;

/// Identifies a client of the service (one logical client session of the workload).
pub type ClientId = u64;

/// Identifies one client request; unique within a run, increasing per client.
pub type RequestId = u64;

/// A value a process chooses when it sets a timer or asks for a write; handed back unchanged.
pub type Token = u64;

/// One thing that happens to a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<M, Q> {
    /// The process was just built (first boot, or restart from durable storage); set timers here.
    Start,
    /// A message from a peer arrived.
    Message {
        /// The sending node.
        from: NodeId,
        /// The message, by value.
        message: M,
    },
    /// A client request arrived; answer it (maybe much later, maybe never) with [`Context::reply`].
    Request {
        /// The client that sent it.
        client: ClientId,
        /// The id to echo in the reply.
        request_id: RequestId,
        /// The request itself.
        request: Q,
    },
    /// A timer set with [`Context::set_timer`] fired. Timers are never cancelled: a process ignores
    /// tokens it no longer cares about (carry an epoch or term in the token).
    Timer {
        /// The token given when the timer was set.
        token: Token,
    },
    /// Every write requested up to and including the one with this token is durable.
    Persisted {
        /// The token given to [`Context::persist`].
        token: Token,
    },
}

/// One thing a process asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect<M, R> {
    /// Send `message` to node `to` over the (lossy, reordering, partitionable) network.
    Send {
        /// The receiving node.
        to: NodeId,
        /// The message.
        message: M,
    },
    /// Answer a client request.
    Reply {
        /// The client, as given in [`Input::Request`].
        client: ClientId,
        /// The request id, as given in [`Input::Request`].
        request_id: RequestId,
        /// The answer.
        response: R,
    },
    /// Deliver [`Input::Timer`] with `token` after `after_ns` of this node's local time.
    SetTimer {
        /// Delay in local nanoseconds.
        after_ns: u64,
        /// Handed back in [`Input::Timer`].
        token: Token,
    },
    /// Write `value` (or delete, for `None`) under `key` in this node's storage; the driver answers
    /// with [`Input::Persisted`] once it is durable. Until then a crash may lose it.
    Persist {
        /// Storage key.
        key: String,
        /// New bytes, or `None` to delete the key.
        value: Option<Vec<u8>>,
        /// Handed back in [`Input::Persisted`].
        token: Token,
    },
    /// A line for the trace (only produced when tracing is on; see [`Context::log_with`]).
    Log {
        /// Free text.
        text: String,
    },
}

/// A sans-IO protocol replica driven by the simulator (and, through the same shape, by `net`).
///
/// **Contract: `handle` is the only entry point. It must not read clocks, sleep, spawn, do IO or use
/// any randomness other than [`Context::rng`]; given the same inputs in the same order it must push
/// the same effects. Everything the process wants done — send, reply, timer, persist — is an
/// [`Effect`] pushed into the context, and nothing is durable until [`Input::Persisted`] says so.**
pub trait Process {
    /// Messages between peers.
    type Message: Clone + Debug;
    /// What clients send.
    type Request: Clone + Debug;
    /// What the process answers.
    type Response: Clone + Debug;

    /// Reacts to one input at local time `now_ns` (monotonic per node, but skewed and drifting
    /// against true time and other nodes' clocks).
    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<Self::Message, Self::Request>,
        context: &mut Context<'_, Self::Message, Self::Response>,
    );
}

/// What [`Process::handle`] may touch: its node id, the driver's RNG, and the effect buffer.
#[derive(Debug)]
pub struct Context<'a, M, R> {
    node: NodeId,
    tracing: bool,
    rng: &'a mut SimRng,
    effects: &'a mut Vec<Effect<M, R>>,
}

impl<'a, M, R> Context<'a, M, R> {
    /// A context writing into `effects` (drivers and unit tests build these).
    pub fn new(
        node: NodeId,
        tracing: bool,
        rng: &'a mut SimRng,
        effects: &'a mut Vec<Effect<M, R>>,
    ) -> Self {
        Self {
            node,
            tracing,
            rng,
            effects,
        }
    }

    /// The node this process runs as.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The run's single seeded RNG; pass it to protocol code that takes `impl rand::Rng`.
    pub fn rng(&mut self) -> &mut SimRng {
        self.rng
    }

    /// Whether the trace is recorded (so expensive log text can be skipped).
    pub fn tracing(&self) -> bool {
        self.tracing
    }

    /// Sends `message` to `to`.
    pub fn send(&mut self, to: NodeId, message: M) {
        self.effects.push(Effect::Send { to, message });
    }

    /// Answers client request `request_id` of `client`.
    pub fn reply(&mut self, client: ClientId, request_id: RequestId, response: R) {
        self.effects.push(Effect::Reply {
            client,
            request_id,
            response,
        });
    }

    /// Asks for [`Input::Timer`] with `token` after `after_ns` local nanoseconds.
    pub fn set_timer(&mut self, after_ns: u64, token: Token) {
        self.effects.push(Effect::SetTimer { after_ns, token });
    }

    /// Asks for `value` to be written durably under `key`; [`Input::Persisted`] with `token` follows.
    pub fn persist(&mut self, key: impl Into<String>, value: Option<Vec<u8>>, token: Token) {
        self.effects.push(Effect::Persist {
            key: key.into(),
            value,
            token,
        });
    }

    /// Adds a trace line built by `text` — called only when tracing is on, so it costs nothing off.
    pub fn log_with(&mut self, text: impl FnOnce() -> String) {
        if self.tracing {
            self.effects.push(Effect::Log { text: text() });
        }
    }

    /// Pushes an effect as built elsewhere (for wrappers that filter another process's effects).
    pub fn push(&mut self, effect: Effect<M, R>) {
        if matches!(effect, Effect::Log { .. }) && !self.tracing {
            return;
        }
        self.effects.push(effect);
    }

    /// Drains the effects pushed so far (for drivers and unit tests).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Effect<M, R>> {
        self.effects.drain(..)
    }
}

/// The durable contents of one node's disk, handed to the builder on (re)start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    entries: BTreeMap<String, Vec<u8>>,
}

impl Storage {
    /// Empty storage (a fresh node).
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes stored under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn prefix<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = (&'s str, &'s [u8])> + 's {
        self.entries
            .range(prefix.to_string()..)
            .take_while(move |(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.as_str(), value.as_slice()))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies one write (used by the disk model when a write becomes durable).
    pub fn apply(&mut self, key: String, value: Option<Vec<u8>>) {
        match value {
            Some(bytes) => {
                self.entries.insert(key, bytes);
            }
            None => {
                self.entries.remove(&key);
            }
        }
    }
}

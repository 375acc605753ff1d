//! Raft consensus as a sans-IO state machine, with a replicated key-value store and storage.
//!
//! A [`Replica`] owns its protocol state and a [`StateMachine`] (here the [`Kv`] store). The driver
//! (the deterministic simulator, the tokio runtime, or a test harness) feeds it [`Input`]s with the
//! current time and performs the [`Effect`]s it emits. It never reads a clock, spawns a thread or
//! touches a disk; randomness comes from the seed in [`RaftConfig`].
//!
//! **The contract:** after every [`Replica::step`], drain [`Replica::poll_effect`] until `None` and
//! perform the effects in order. A [`Effect::Persist`] must be durable — in token order — before the
//! driver feeds back [`Input::PersistDone`]; every message that depends on it (votes, append answers)
//! is held inside the replica until then. Feed [`Input::Timeout`] at the time of the latest
//! [`Effect::SetTimer`]; early or stale firings are harmless. A driver holding several inputs for
//! one replica (a burst of client requests, a socket's backlog) may hand them over together with
//! [`Replica::step_many`]: the same outcome, but the client writes among them share one log
//! append, one persist and one AppendEntries per follower.
//!
//! ```
//! use raft::{ClientOperation, ClientRequest, Effect, Input, Kv, KvCommand, KvOutput, RaftConfig,
//!            RecoveredState, Replica, Role};
//!
//! // A single-voter cluster elects itself when its election timer fires.
//! let mut replica = Replica::new(RaftConfig::new(1, [1]), RecoveredState::default(), Kv::new(), 0)
//!     .expect("valid configuration");
//! let mut now_ms = 0;
//! let mut replies = Vec::new();
//! let mut pending = Vec::new();
//! replica.step(now_ms, Input::Timeout);
//! for round in 0..20 {
//!     if round == 3 {
//!         let put = KvCommand::Put { key: "x".into(), value: b"1".to_vec() };
//!         let request = ClientRequest { client_id: 7, sequence: 1, operation: ClientOperation::Write(put.encode()) };
//!         replica.step(now_ms, Input::Client(request));
//!     }
//!     while let Some(effect) = replica.poll_effect() {
//!         match effect {
//!             // A real driver writes to `Storage` and fsyncs before acknowledging.
//!             Effect::Persist(request) => pending.push(request.token),
//!             Effect::SetTimer { at_ms } => now_ms = now_ms.max(at_ms),
//!             Effect::Reply(reply) => replies.push(reply),
//!             _ => {}
//!         }
//!     }
//!     for token in pending.drain(..) {
//!         replica.step(now_ms, Input::PersistDone(token));
//!     }
//!     replica.step(now_ms, Input::Timeout);
//! }
//! assert_eq!(replica.role(), Role::Leader);
//! let output = replies[0].result.as_ref().expect("committed").output.clone();
//! assert_eq!(KvOutput::decode(&output), KvOutput::Value(None));
//! assert_eq!(replica.state_machine().get("x"), Some(&b"1".to_vec()));
//! ```

#![warn(missing_docs)]

mod client;
pub mod codec;
mod config;
mod election;
pub mod file_storage;
mod kv;
mod log;
mod message;
pub mod quorum;
mod replica;
mod replication;
mod requests;
mod snapshot;
pub mod storage;
mod types;

pub use client::{
    ClientError, ClientOperation, ClientReply, ClientRequest, ClientResponse, MembershipChange,
    ReadConsistency, SessionCheck, SessionRecord, Sessions,
};
pub use config::{ConfigError, RaftConfig};
pub use file_storage::FileStorage;
pub use kv::{Kv, KvCommand, KvOutput, KvQuery, StateMachine, StateMachineError};
pub use message::{Message, MessageBody};
pub use replica::{
    AppliedEntry, Effect, Input, PersistRequest, PersistToken, RaftError, RecoveredState, Replica,
    Role,
};
pub use storage::{KeyWrite, MemoryStorage, RecordKeys, Storage, StorageError};
pub use types::{
    ClientId, Entries, Entry, EntryPayload, HardState, LogIndex, Membership, NodeId, Snapshot,
    SnapshotMeta, Term,
};

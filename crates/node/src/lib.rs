//! The concur server: one node of a cluster that keeps strong keys in Raft and `ap:` keys in
//! CRDTs, and serves them to stock Redis clients (RESP) and over HTTP.
//!
//! The protocol side is one sans-IO [`process::NodeProcess`] (a Raft replica of
//! [`machine::NodeMachine`] — the strong keyspace and the event log — beside the
//! [`available::Available`] keyspace); [`daemon::run`] drives it for real through `net`, with
//! [`redis`] and [`http`] in front, and the simulator drives the very same process in tests.
//!
//! ```
//! use node::process::Mode;
//! use node::strong::{SetCondition, StrongCommand, StrongOutput, StrongQuery, StrongStore};
//!
//! // A key's prefix decides its consistency.
//! assert_eq!(Mode::of(b"ap:cart"), Mode::Available);
//! assert_eq!(Mode::of(b"config"), Mode::Strong);
//!
//! // The strong keyspace is a deterministic state machine: every replica applying the same
//! // commands in log order answers the same.
//! let mut store = StrongStore::new();
//! let set = StrongCommand::Set { key: b"config".to_vec(), value: b"v1".to_vec(),
//!                                condition: SetCondition::IfAbsent, get: false };
//! assert_eq!(store.execute(set.clone()), StrongOutput::Ok);
//! assert_eq!(store.execute(set), StrongOutput::Nil); // NX: already there
//! assert_eq!(store.query(&StrongQuery::Get(b"config".to_vec())), StrongOutput::Bulk(b"v1".to_vec()));
//! ```

#![warn(missing_docs)]

pub mod available;
pub mod command;
pub mod config;
pub mod daemon;
pub mod handle;
pub mod history;
pub mod http;
pub mod http_events;
pub mod machine;
pub mod metrics;
pub mod process;
pub mod redis;
pub mod resp;
pub mod strong;

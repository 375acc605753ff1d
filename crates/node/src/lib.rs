//! The concur server: one node of a cluster that keeps strong keys in Raft and `ap:` keys in
//! CRDTs, and serves them to stock Redis clients (RESP) and over HTTP.

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

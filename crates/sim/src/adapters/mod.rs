//! Adapters that run protocol crates on the simulator: a small struct holding the protocol core
//! implements [`crate::Process`] and maps its inputs and effects one to one.

pub mod raft;

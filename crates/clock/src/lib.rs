//! Clocks for distributed knowledge: the ways replicas that never share a moment can still agree on
//! what happened before what.
//!
//! - [`LamportClock`]: a scalar logical clock; consistent with causality, blind to concurrency.
//! - [`VectorClock`]: one counter per replica; [`VectorClock::compare`] tells before / after /
//!   equal / concurrent.
//! - [`VersionVector`] and [`Dot`]: which events of each replica a state has seen — the currency of
//!   anti-entropy and of CRDTs.
//! - [`CausalContext`]: a compact set of dots (contiguous prefix plus exceptions) for dot-based CRDTs.
//! - [`HybridClock`]: a hybrid logical clock (Kulkarni et al.) bounded by a maximum clock offset,
//!   with a TrueTime-style uncertainty interval and commit-wait.
//!
//! No clock here reads the system time: physical time is always an argument, so the simulator and a
//! real node drive the same code.
//!
//! ```
//! use clock::{Causality, VectorClock};
//!
//! let mut alice = VectorClock::new();
//! let mut bob = VectorClock::new();
//! alice.increment(1); // Alice writes.
//! bob.increment(2); // Bob writes, not having seen Alice's write.
//! assert_eq!(alice.compare(&bob), Causality::Concurrent);
//!
//! bob.merge(&alice); // Bob receives Alice's write...
//! bob.increment(2); // ...and writes again.
//! assert_eq!(alice.compare(&bob), Causality::Before);
//! ```

mod context;
mod hlc;
mod lamport;
mod vector;
mod version;

pub use context::CausalContext;
pub use hlc::{ClockError, HlcTimestamp, HybridClock, TimeInterval};
pub use lamport::LamportClock;
pub use vector::{Causality, VectorClock};
pub use version::{Dot, VersionVector};

/// Identifies a replica (a node, a client session, an editing agent) everywhere in concur.
pub type ReplicaId = u64;

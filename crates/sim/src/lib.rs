//! A deterministic discrete-event simulator for sans-IO distributed protocols: many replicas, one
//! thread, virtual time, one seeded RNG, a network with real geography and faults, and clients that
//! record a history an independent checker can judge. Same seed ⇒ same run, bit for bit.
//!
//! A protocol implements [`Process`]: `handle(now_ns, input, context)` reacts to one [`Input`] (peer
//! message, client request, timer, durable write, start) by pushing [`Effect`]s (send, reply, set
//! timer, persist, log) into the [`Context`]. **The contract: `handle` is the only entry point; it
//! never reads a clock, sleeps, does IO or uses randomness other than `context.rng()`; nothing is
//! durable before [`Input::Persisted`]; timers are never cancelled, stale tokens are ignored.**
//! Protocol crates do not depend on `sim`; a small adapter struct holding the protocol core
//! implements [`Process`] (see docs/sim.md).
//!
//! ```
//! use sim::services::Echo;
//! use sim::{Config, Simulation};
//!
//! // Two nodes, New York and London, bouncing messages back and forth for one second.
//! let mut config = Config::new(7, 2);
//! config.placement = vec!["new-york".parse()?, "london".parse()?];
//! let mut simulation = Simulation::new(config.clone(), |node, _storage| Echo::new(node, 2, 1));
//! simulation.run_until(1_000_000_000);
//! let delivered = simulation.stats().messages_delivered;
//! // Each node starts one message; one way is ≈ 28 ms in fibre (+ overhead and jitter), so each
//! // message is delivered about 35 times a second.
//! assert!((64..=72).contains(&delivered), "{delivered}");
//!
//! // Same seed, same run.
//! let mut again = Simulation::new(config, |node, _storage| Echo::new(node, 2, 1));
//! again.run_until(1_000_000_000);
//! assert_eq!(simulation.hash(), again.hash());
//! # Ok::<(), sim::geo::LocationError>(())
//! ```
//!
//! Modules: [`process`] (the trait), [`simulation`] (the driver), [`network`] and [`geo`] (links,
//! partitions, distances), [`disk`] (durable vs pending writes), [`nemesis`] (fault plans),
//! [`workload`] and [`history`] (clients and their JSON Lines history), [`trace`] (vector-clocked
//! trace, ShiViz export), [`services`] (example protocols), [`byzantine`] (lying wrappers),
//! [`scenario`] (ready-made runs for the CLI and benches), [`adapters`] (protocol crates as
//! processes).

pub mod adapters;
pub mod byzantine;
pub mod disk;
pub mod geo;
pub mod history;
pub mod nemesis;
pub mod network;
pub mod process;
pub mod scenario;
pub mod services;
pub mod simulation;
pub mod trace;
pub mod workload;

pub use nemesis::{Fault, NemesisKind, NemesisPlan};
pub use process::{ClientId, Context, Effect, Input, NodeId, Process, RequestId, Storage, Token};
pub use simulation::{Config, Report, Simulation, Stats};
pub use workload::{ClientConfig, RegisterWorkload, Workload};

/// The simulator's random number generator: xoshiro256++, seeded once per run. It implements
/// `rand::Rng`, so protocol code generic over an RNG takes `context.rng()` directly.
pub type SimRng = rand_xoshiro::Xoshiro256PlusPlus;

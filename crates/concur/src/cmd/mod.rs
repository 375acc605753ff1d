//! One module per subcommand; each exposes `Args` and `run`.

pub mod bench;
pub mod check;
pub mod cluster;
pub mod delay;
pub mod events;
pub mod node;
pub mod sim;
pub mod sim_raft;

//! One module per subcommand; each exposes `Args` and `run`.

pub mod bench;
pub mod check;
pub mod delay;
pub mod sim;
pub mod sim_raft;

//! Independent checkers for what distributed systems promise: is a history of client operations
//! **linearizable**, and did replicas **converge**? The checkers read histories and final states
//! only; they never link the implementations they judge.
//!
//! - [`history`]: the history formats (this project's JSON Lines, Jepsen etcd logs, Porcupine kv
//!   EDN lines), parsed and validated with line-numbered errors.
//! - [`linearizability`]: Wing–Gong/Lowe search, memoised on (linearized set, state), per key.
//! - [`convergence`]: equal final states, or which replicas differ and at which JSON path.
//! - [`synthetic`]: histories from a simulated linearizable store, for tests and benchmarks.
//!
//! ```
//! use check::history::History;
//! use check::linearizability::{self, Verdict};
//!
//! // Process 1 reads 0 after process 0's write of 1 completed: a stale read.
//! let text = r#"
//! {"process":0,"type":"invoke","f":"write","key":"x","value":1,"time":10}
//! {"process":0,"type":"ok","f":"write","key":"x","value":1,"time":20}
//! {"process":1,"type":"invoke","f":"read","key":"x","value":null,"time":30}
//! {"process":1,"type":"ok","f":"read","key":"x","value":0,"time":40}
//! "#;
//! let history = History::from_jsonl(text)?;
//! let Verdict::NotLinearizable(counterexample) = linearizability::check(&history) else {
//!     panic!("a stale read is not linearizable");
//! };
//! assert_eq!(counterexample.key, "x");
//! assert_eq!(counterexample.possible_states, vec!["1"]);
//! println!("{counterexample}");
//! # Ok::<(), check::history::ParseError>(())
//! ```

pub mod convergence;
pub mod history;
pub mod linearizability;
pub mod synthetic;

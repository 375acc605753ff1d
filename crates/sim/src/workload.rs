//! Clients: what operations they issue, how requests and responses map to history lines, and the
//! ready-made register workload (reads, writes and compare-and-set over a few keys).

use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SimRng;
use crate::process::{ClientId, NodeId, Process};

/// How the client driver behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Number of concurrent clients (each has at most one operation outstanding).
    pub count: usize,
    /// A request unanswered after this long is recorded as `info` (indeterminate), in nanoseconds.
    pub timeout_ns: u64,
    /// Shortest pause between a completion and the client's next invocation, in nanoseconds.
    pub think_ns_min: u64,
    /// Longest such pause, in nanoseconds.
    pub think_ns_max: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            count: 10,
            timeout_ns: 1_000_000_000,
            think_ns_min: 20_000_000,
            think_ns_max: 200_000_000,
        }
    }
}

/// The history side of an operation: function, key and argument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// `read`, `write`, `cas`, ...
    pub f: String,
    /// Register key.
    pub key: String,
    /// Argument (`null` for reads, `[expected, new]` for cas).
    pub value: Value,
}

/// How an operation ended, as the history will record it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Took effect; the value to record (the value read, or the argument).
    Ok(Value),
    /// Definitely did not take effect.
    Fail(String),
    /// May or may not have taken effect.
    Info(String),
}

/// An operation to issue: its history form and the protocol request carrying it.
#[derive(Clone, Debug, PartialEq)]
pub struct Call<Q> {
    /// What the history records.
    pub invocation: Invocation,
    /// What the node receives.
    pub request: Q,
    /// Which node the client sends it to.
    pub node: NodeId,
}

/// Generates client operations for a protocol `P` and judges its responses.
pub trait Workload<P: Process> {
    /// The next operation of `client`, or `None` if this client is done.
    fn next_call(
        &mut self,
        client: ClientId,
        nodes: usize,
        rng: &mut SimRng,
    ) -> Option<Call<P::Request>>;

    /// How the operation `invocation` ended, given the node's `response`.
    fn outcome(&mut self, invocation: &Invocation, response: &P::Response) -> Outcome;
}

/// A register operation, the common language of register-like services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegisterOperation {
    /// Read the value of `key`.
    Read {
        /// Register key.
        key: String,
    },
    /// Overwrite `key` with `value`.
    Write {
        /// Register key.
        key: String,
        /// New value.
        value: i64,
    },
    /// Set `key` to `new` if it holds `expected`.
    Cas {
        /// Register key.
        key: String,
        /// Value required.
        expected: i64,
        /// Value set.
        new: i64,
    },
}

impl RegisterOperation {
    /// The history form of this operation.
    pub fn invocation(&self) -> Invocation {
        match self {
            RegisterOperation::Read { key } => Invocation {
                f: "read".into(),
                key: key.clone(),
                value: Value::Null,
            },
            RegisterOperation::Write { key, value } => Invocation {
                f: "write".into(),
                key: key.clone(),
                value: json!(value),
            },
            RegisterOperation::Cas { key, expected, new } => Invocation {
                f: "cas".into(),
                key: key.clone(),
                value: json!([expected, new]),
            },
        }
    }

    /// Recovers the operation from its history form (`None` if it is not a register operation).
    pub fn from_invocation(invocation: &Invocation) -> Option<Self> {
        let key = invocation.key.clone();
        match (invocation.f.as_str(), &invocation.value) {
            ("read", _) => Some(RegisterOperation::Read { key }),
            ("write", value) => Some(RegisterOperation::Write {
                key,
                value: value.as_i64()?,
            }),
            ("cas", Value::Array(pair)) if pair.len() == 2 => Some(RegisterOperation::Cas {
                key,
                expected: pair[0].as_i64()?,
                new: pair[1].as_i64()?,
            }),
            _ => None,
        }
    }
}

/// A service that speaks register operations: how to wrap one in a request and read a response.
pub trait RegisterService: Process {
    /// The request that performs `operation`.
    fn request(operation: &RegisterOperation) -> Self::Request;
    /// How `operation` ended, given `response`.
    fn outcome(operation: &RegisterOperation, response: &Self::Response) -> Outcome;
}

/// Random reads (50%), writes (30%) and compare-and-sets (20%) over a few keys with small values,
/// each client bound to node `client % nodes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterWorkload {
    /// Keys operated on.
    pub keys: Vec<String>,
    /// Values written are drawn from `0..value_max`.
    pub value_max: i64,
}

impl Default for RegisterWorkload {
    fn default() -> Self {
        Self {
            keys: vec!["x".into(), "y".into(), "z".into()],
            value_max: 5,
        }
    }
}

impl<P: RegisterService> Workload<P> for RegisterWorkload {
    fn next_call(
        &mut self,
        client: ClientId,
        nodes: usize,
        rng: &mut SimRng,
    ) -> Option<Call<P::Request>> {
        if self.keys.is_empty() || nodes == 0 {
            return None;
        }
        let key = self.keys[rng.random_range(0..self.keys.len())].clone();
        let value_max = self.value_max.max(1);
        let roll = rng.random_range(0..10u32);
        let operation = match roll {
            0..=4 => RegisterOperation::Read { key },
            5..=7 => RegisterOperation::Write {
                key,
                value: rng.random_range(0..value_max),
            },
            _ => RegisterOperation::Cas {
                key,
                expected: rng.random_range(0..value_max),
                new: rng.random_range(0..value_max),
            },
        };
        Some(Call {
            invocation: operation.invocation(),
            request: P::request(&operation),
            node: client % nodes as u64,
        })
    }

    fn outcome(&mut self, invocation: &Invocation, response: &P::Response) -> Outcome {
        match RegisterOperation::from_invocation(invocation) {
            Some(operation) => P::outcome(&operation, response),
            None => Outcome::Info(format!("not a register operation: {}", invocation.f)),
        }
    }
}

//! Example services written against [`crate::Process`]: a correct single-copy register, a
//! deliberately unsafe primary-backup register, and two tiny protocols for benchmarks and scale
//! tests (echo, rumor spreading).

mod echo;
mod primary_backup;
mod register;
mod rumor;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use echo::Echo;
pub use primary_backup::{PrimaryBackupMessage, PrimaryBackupRegister};
pub use register::{RegisterMessage, SingleCopyRegister};
pub use rumor::Rumor;

use crate::workload::{Outcome, RegisterOperation};

/// What the register services answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegisterResponse {
    /// The value read (`None`: never written).
    Value(Option<i64>),
    /// The write took effect.
    Written,
    /// The compare-and-set took effect.
    Swapped,
    /// The compare-and-set found another value and did nothing.
    PreconditionFailed,
    /// The node refused without doing anything (queue full, not primary).
    Refused(String),
}

/// Maps a register response to the history outcome of `operation`.
pub fn register_outcome(operation: &RegisterOperation, response: &RegisterResponse) -> Outcome {
    match (operation, response) {
        (RegisterOperation::Read { .. }, RegisterResponse::Value(value)) => {
            Outcome::Ok(json!(value))
        }
        (RegisterOperation::Write { value, .. }, RegisterResponse::Written) => {
            Outcome::Ok(json!(value))
        }
        (RegisterOperation::Cas { expected, new, .. }, RegisterResponse::Swapped) => {
            Outcome::Ok(json!([expected, new]))
        }
        (RegisterOperation::Cas { .. }, RegisterResponse::PreconditionFailed) => {
            Outcome::Fail("precondition failed".into())
        }
        (_, RegisterResponse::Refused(reason)) => Outcome::Fail(reason.clone()),
        // A response that does not match the request says the service is broken; the history
        // must not claim anything about it.
        (_, other) => Outcome::Info(format!("mismatched response {other:?}")),
    }
}

/// Applies `operation` to a map of registers; returns the response and whether state changed.
pub fn apply_register(
    values: &mut std::collections::BTreeMap<String, i64>,
    operation: &RegisterOperation,
) -> (RegisterResponse, bool) {
    match operation {
        RegisterOperation::Read { key } => {
            (RegisterResponse::Value(values.get(key).copied()), false)
        }
        RegisterOperation::Write { key, value } => {
            values.insert(key.clone(), *value);
            (RegisterResponse::Written, true)
        }
        RegisterOperation::Cas { key, expected, new } => {
            if values.get(key) == Some(expected) {
                values.insert(key.clone(), *new);
                (RegisterResponse::Swapped, true)
            } else {
                (RegisterResponse::PreconditionFailed, false)
            }
        }
    }
}

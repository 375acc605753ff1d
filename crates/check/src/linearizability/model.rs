//! Sequential specifications the linearizability search checks histories against.

use std::fmt;
use std::hash::Hash;

use crate::history::{Call, Operation, Outcome, Value};

/// A sequential specification of one object (one key): which operations are legal from which
/// state, and the state each leaves behind.
///
/// Histories are partitioned by key before the search, so a model describes a single key.
pub trait Model {
    /// The object's state; hashed together with the set of linearized operations to memoise
    /// configurations already explored.
    type State: Clone + Eq + Hash + fmt::Debug;

    /// The state before any operation.
    fn initial_state(&self) -> Self::State;

    /// The state after `operation` takes effect in `state`, or `None` if what the operation
    /// returned is impossible from `state`. It must depend only on `operation.call` and
    /// `operation.outcome` (the search treats operations equal in those as interchangeable).
    ///
    /// For an indeterminate operation, return the state it would leave if it did take effect
    /// (the search places it last when it should not have).
    fn step(&self, state: &Self::State, operation: &Operation) -> Option<Self::State>;

    /// Whether `operation` never changes the state: indeterminate read-only operations constrain
    /// nothing and are dropped before the search.
    fn is_read_only(&self, operation: &Operation) -> bool {
        let _ = operation;
        false
    }

    /// How a state is shown to a human in a counterexample.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// A read/write/compare-and-set/append register whose initial value is null (concur and Jepsen
/// histories).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Register;

impl Model for Register {
    type State = Value;

    fn initial_state(&self) -> Value {
        Value::Null
    }

    fn step(&self, state: &Value, operation: &Operation) -> Option<Value> {
        register_step(state, operation)
    }

    fn is_read_only(&self, operation: &Operation) -> bool {
        operation.call == Call::Read
    }

    fn describe_state(&self, state: &Value) -> String {
        state.to_string()
    }
}

/// Porcupine's string key-value store, one key at a time: initial value `""`, so a `get` of a
/// missing key returns `""`; `put` overwrites and `append` concatenates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyValue;

impl Model for KeyValue {
    type State = Value;

    fn initial_state(&self) -> Value {
        Value::string("")
    }

    fn step(&self, state: &Value, operation: &Operation) -> Option<Value> {
        register_step(state, operation)
    }

    fn is_read_only(&self, operation: &Operation) -> bool {
        operation.call == Call::Read
    }

    fn describe_state(&self, state: &Value) -> String {
        state.to_string()
    }
}

fn register_step(state: &Value, operation: &Operation) -> Option<Value> {
    match (&operation.call, &operation.outcome) {
        (Call::Read, Outcome::Ok(read)) => (state == read).then(|| state.clone()),
        (Call::Read, Outcome::Indeterminate | Outcome::Failed) => Some(state.clone()),
        (Call::Write(value), Outcome::Ok(_) | Outcome::Indeterminate) => Some(value.clone()),
        (Call::Cas { expected, new }, Outcome::Ok(_)) => (state == expected).then(|| new.clone()),
        (Call::Cas { expected, .. }, Outcome::Rejected) => {
            (state != expected).then(|| state.clone())
        }
        (Call::Cas { expected, new }, Outcome::Indeterminate) => {
            Some(if state == expected { new } else { state }.clone())
        }
        (Call::Append(suffix), Outcome::Ok(_)) => append(state, suffix),
        // An indeterminate append that could not apply simply did not take effect.
        (Call::Append(suffix), Outcome::Indeterminate) => {
            append(state, suffix).or_else(|| Some(state.clone()))
        }
        // Failed operations never reach the search; the rest cannot be explained.
        (_, Outcome::Failed) => Some(state.clone()),
        (_, Outcome::Rejected) => None,
    }
}

fn append(state: &Value, suffix: &Value) -> Option<Value> {
    let Value::Str(suffix) = suffix else {
        return None;
    };
    match state {
        Value::Null => Some(Value::Str(suffix.clone())),
        Value::Str(prefix) => {
            let mut text = String::with_capacity(prefix.len() + suffix.len());
            text.push_str(prefix);
            text.push_str(suffix);
            Some(Value::string(&text))
        }
        Value::Int(_) => None,
    }
}

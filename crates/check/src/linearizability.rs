//! Linearizability: is there one order of the operations, consistent with real time, in which a
//! sequential object returns exactly what the clients saw?
//!
//! The search is Wing & Gong's, with Lowe's memoisation of (linearized set, state) configurations,
//! run separately on each key (P-compositionality: a history is linearizable iff each key's
//! sub-history is). An operation that failed (`fail`) did not happen and is dropped; an
//! indeterminate one (`info`, or never completed) may take effect at any time after its
//! invocation, so its return is at +infinity.

mod model;
mod search;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use model::{KeyValue, Model, Register};

use crate::history::{Format, History, Operation, Outcome};

/// The checker's answer for a whole history.
// One verdict per check: its size does not matter, and the shape is the shared contract.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Some order of the operations explains every result.
    Linearizable,
    /// No order does; the counterexample shows where the search got stuck.
    NotLinearizable(Counterexample),
}

impl Verdict {
    /// Whether the history is linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// The search ran out of its step budget before reaching a verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("linearizability search gave up on key {key:?} after {steps} steps")]
pub struct SearchBudgetExhausted {
    /// The key being searched when the budget ran out.
    pub key: String,
    /// The budget that was spent.
    pub steps: u64,
}

/// An operation and the state it left, as part of the longest linearizable prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOperation {
    /// The operation.
    pub operation: Operation,
    /// The object's state after it, as the model shows it.
    pub state_after: String,
}

/// An operation in the window around the one that cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowOperation {
    /// The operation.
    pub operation: Operation,
    /// Whether it had taken effect in the longest linearizable prefix.
    pub placed: bool,
}

/// Why a history is not linearizable, as small as the search can make it: the operation whose
/// return no order could reach, the states the key could hold then, and the operations around it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    /// The key whose sub-history is not linearizable.
    pub key: String,
    /// The operation that had to take effect before its return but could not, in any order.
    pub operation: Operation,
    /// The states the key held in every configuration that reached that return.
    pub possible_states: Vec<String>,
    /// How many operations on the key had taken effect in the longest linearizable prefix.
    pub prefix_length: usize,
    /// How many operations on the key the search considered (failed ones are dropped).
    pub operations_on_key: usize,
    /// The last operations of that prefix, oldest first, with the state each left.
    pub prefix_tail: Vec<PlacedOperation>,
    /// The operations overlapping the stuck one (still pending or concurrent with it), in
    /// invocation order: the smallest window of the history to look at.
    pub window: Vec<WindowOperation>,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "key {:?}: no order of its operations consistent with real time explains this one:",
            self.key
        )?;
        writeln!(formatter, "    {}", self.operation)?;
        writeln!(
            formatter,
            "  when it returned, every order the search tried left the key holding: {}",
            self.possible_states.join(", ")
        )?;
        writeln!(
            formatter,
            "  longest linearizable prefix: {} of {} operations on the key, ending with:",
            self.prefix_length, self.operations_on_key
        )?;
        if self.prefix_tail.is_empty() {
            writeln!(formatter, "    (nothing: the initial state)")?;
        }
        for placed in &self.prefix_tail {
            writeln!(
                formatter,
                "    {}  => {}",
                placed.operation, placed.state_after
            )?;
        }
        writeln!(
            formatter,
            "  operations overlapping it, in invocation order (placed = took effect in that prefix):"
        )?;
        if self.window.is_empty() {
            writeln!(formatter, "    (none: nothing ran concurrently with it)")?;
        }
        for entry in &self.window {
            let mark = if entry.placed { "placed " } else { "pending" };
            writeln!(formatter, "    [{mark}] {}", entry.operation)?;
        }
        Ok(())
    }
}

/// Checks `history` with the model its format implies: [`KeyValue`] for Porcupine kv histories,
/// [`Register`] (per key) otherwise.
pub fn check(history: &History) -> Verdict {
    let outcome = match history.format() {
        Format::PorcupineKv => check_bounded(history, &KeyValue, u64::MAX),
        _ => check_bounded(history, &Register, u64::MAX),
    };
    match outcome {
        Ok(verdict) => verdict,
        // A budget of u64::MAX steps cannot run out: the search is finite.
        Err(exhausted) => unreachable!("{exhausted}"),
    }
}

/// Checks `history` against `model`, key by key.
pub fn check_with<M: Model>(history: &History, model: &M) -> Verdict {
    match check_bounded(history, model, u64::MAX) {
        Ok(verdict) => verdict,
        Err(exhausted) => unreachable!("{exhausted}"),
    }
}

/// Checks `history` against `model`, giving up after `steps_max` search steps in total.
///
/// Keys take turns, each running a quantum of steps that doubles every round, so a key that
/// fails quickly is reported without first finishing a hard one.
pub fn check_bounded<M: Model>(
    history: &History,
    model: &M,
    steps_max: u64,
) -> Result<Verdict, SearchBudgetExhausted> {
    let partitions = partition(history, model);
    let mut searches: Vec<(usize, search::Search<'_, M>)> = partitions
        .iter()
        .enumerate()
        .map(|(index, (_, operations))| (index, search::Search::new(model, operations)))
        .collect();
    let mut budget = steps_max;
    let mut quantum: u64 = 4_096;
    while !searches.is_empty() {
        let mut unfinished = Vec::with_capacity(searches.len());
        for (index, mut search) in searches {
            let (key, operations) = &partitions[index];
            if budget == 0 {
                return Err(SearchBudgetExhausted {
                    key: key.to_string(),
                    steps: steps_max,
                });
            }
            let slice = quantum.min(budget);
            let (progress, steps) = search.run(slice);
            budget -= steps;
            match progress {
                search::Progress::Linearizable => {}
                search::Progress::Unfinished => unfinished.push((index, search)),
                search::Progress::NotLinearizable(failure) => {
                    return Ok(Verdict::NotLinearizable(counterexample(
                        model, key, operations, failure,
                    )));
                }
            }
        }
        searches = unfinished;
        quantum = quantum.saturating_mul(2);
    }
    Ok(Verdict::Linearizable)
}

/// Splits the operations the search needs by key, keys in order of first appearance.
fn partition<'a, M: Model>(history: &'a History, model: &M) -> Vec<(Arc<str>, Vec<&'a Operation>)> {
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    let mut partitions: Vec<(Arc<str>, Vec<&Operation>)> = Vec::new();
    for operation in history.operations() {
        let irrelevant = operation.outcome == Outcome::Failed
            || (operation.is_indeterminate() && model.is_read_only(operation));
        if irrelevant {
            continue;
        }
        let index = *index_of.entry(&operation.key).or_insert_with(|| {
            partitions.push((operation.key.clone(), Vec::new()));
            partitions.len() - 1
        });
        partitions[index].1.push(operation);
    }
    partitions
}

fn counterexample<M: Model>(
    model: &M,
    key: &str,
    operations: &[&Operation],
    failure: search::Failure<M::State>,
) -> Counterexample {
    let positions = search::Positions::of(operations);
    let stuck = failure.operation;
    let (stuck_call, stuck_return) = (positions.call[stuck], positions.ret[stuck]);
    let is_placed = |index: usize| failure.linearized[index / 64] & (1 << (index % 64)) != 0;
    let tail: Vec<PlacedOperation> = failure
        .tail
        .iter()
        .map(|(index, state)| PlacedOperation {
            operation: operations[*index].clone(),
            state_after: model.describe_state(state),
        })
        .collect();
    let in_tail = |index: usize| failure.tail.iter().any(|(placed, _)| *placed == index);
    let window = (0..operations.len())
        .filter(|&index| index != stuck)
        .filter(|&index| positions.call[index] < stuck_return && positions.ret[index] > stuck_call)
        // Indeterminate operations placed long before are part of the prefix, not the window.
        .filter(|&index| {
            positions.ret[index] != u64::MAX
                || positions.call[index] > stuck_call
                || !is_placed(index)
                || in_tail(index)
        })
        .map(|index| WindowOperation {
            operation: operations[index].clone(),
            placed: is_placed(index),
        })
        .collect();
    Counterexample {
        key: key.to_string(),
        operation: operations[stuck].clone(),
        possible_states: failure
            .states
            .iter()
            .map(|state| model.describe_state(state))
            .collect(),
        prefix_length: failure.depth,
        operations_on_key: operations.len(),
        prefix_tail: tail,
        window,
    }
}

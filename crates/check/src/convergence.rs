//! Convergence: after quiescence (no more updates, every message delivered), do all replicas hold
//! the same state? On failure it says which replicas differ from the majority and where: the
//! first differing path in the JSON value (a JSON Pointer, RFC 6901).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Replicas whose final states are equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaGroup {
    /// The replicas, in input order.
    pub replicas: Vec<u64>,
    /// Where their state first differs from the reference group's (`""` is the whole value).
    pub path: String,
    /// Their value at `path` (`None`: absent there).
    pub value: Option<serde_json::Value>,
    /// The reference group's value at `path` (`None`: absent there).
    pub reference_value: Option<serde_json::Value>,
}

/// How the replicas' final states split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The largest group of agreeing replicas (ties: the one holding the first replica listed).
    pub reference: Vec<u64>,
    /// Every other group, in order of its first replica in the input.
    pub groups: Vec<ReplicaGroup>,
}

/// The convergence checker's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConvergenceVerdict {
    /// Every replica holds the same state (vacuously true for zero replicas).
    Converged,
    /// At least two replicas hold different states.
    Diverged(Divergence),
}

impl ConvergenceVerdict {
    /// Whether all replicas agree.
    pub fn is_converged(&self) -> bool {
        matches!(self, ConvergenceVerdict::Converged)
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "replicas {} agree (reference); {} other group(s) differ:",
            list(&self.reference),
            self.groups.len()
        )?;
        for group in &self.groups {
            let shown = |value: &Option<serde_json::Value>| match value {
                Some(value) => value.to_string(),
                None => "(absent)".to_string(),
            };
            let path = if group.path.is_empty() {
                "(the whole value)"
            } else {
                &group.path
            };
            writeln!(
                formatter,
                "  replica(s) {} differ at {path}: {} where the reference has {}",
                list(&group.replicas),
                shown(&group.value),
                shown(&group.reference_value)
            )?;
        }
        Ok(())
    }
}

fn list(replicas: &[u64]) -> String {
    let names: Vec<String> = replicas.iter().map(u64::to_string).collect();
    names.join(", ")
}

/// Checks that every replica's final state is the same JSON value.
pub fn check(states: &[(u64, serde_json::Value)]) -> ConvergenceVerdict {
    // Group equal states; each group remembers one representative state.
    let mut groups: Vec<(Vec<u64>, &serde_json::Value)> = Vec::new();
    for (replica, state) in states {
        match groups.iter_mut().find(|(_, held)| *held == state) {
            Some((replicas, _)) => replicas.push(*replica),
            None => groups.push((vec![*replica], state)),
        }
    }
    if groups.len() <= 1 {
        return ConvergenceVerdict::Converged;
    }
    // The largest group is the reference; `max_by_key` keeps the last maximum, so go in reverse.
    let reference_index = groups
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|(_, (replicas, _))| replicas.len())
        .map_or(0, |(index, _)| index);
    let reference = groups.remove(reference_index);
    let groups = groups
        .into_iter()
        .map(|(replicas, state)| {
            let difference = first_difference(reference.1, state, String::new());
            ReplicaGroup {
                replicas,
                path: difference.path,
                value: difference.actual.cloned(),
                reference_value: difference.expected.cloned(),
            }
        })
        .collect();
    ConvergenceVerdict::Diverged(Divergence {
        reference: reference.0,
        groups,
    })
}

struct Difference<'a> {
    path: String,
    expected: Option<&'a serde_json::Value>,
    actual: Option<&'a serde_json::Value>,
}

/// The first path (objects by sorted key, arrays by index) where `expected` and `actual` differ.
/// Only called on unequal values.
fn first_difference<'a>(
    expected: &'a serde_json::Value,
    actual: &'a serde_json::Value,
    path: String,
) -> Difference<'a> {
    use serde_json::Value;
    match (expected, actual) {
        (Value::Object(left), Value::Object(right)) => {
            let mut keys: Vec<&String> = left.keys().chain(right.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let (left_value, right_value) = (left.get(key), right.get(key));
                if left_value == right_value {
                    continue;
                }
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                return match (left_value, right_value) {
                    (Some(left_value), Some(right_value)) => {
                        first_difference(left_value, right_value, child)
                    }
                    _ => Difference {
                        path: child,
                        expected: left_value,
                        actual: right_value,
                    },
                };
            }
        }
        (Value::Array(left), Value::Array(right)) => {
            for index in 0..left.len().max(right.len()) {
                let (left_value, right_value) = (left.get(index), right.get(index));
                if left_value == right_value {
                    continue;
                }
                let child = format!("{path}/{index}");
                return match (left_value, right_value) {
                    (Some(left_value), Some(right_value)) => {
                        first_difference(left_value, right_value, child)
                    }
                    _ => Difference {
                        path: child,
                        expected: left_value,
                        actual: right_value,
                    },
                };
            }
        }
        _ => {}
    }
    Difference {
        path,
        expected: Some(expected),
        actual: Some(actual),
    }
}

/// Why a convergence input could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatesError {
    /// A line is not `{"replica":N,"value":...}`.
    #[error("line {line}: {message}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Parses JSON Lines of final states, `{"replica":N,"value":...}`; a replica may appear once.
pub fn parse_states(text: &str) -> Result<Vec<(u64, serde_json::Value)>, StatesError> {
    #[derive(Deserialize)]
    struct Line {
        replica: u64,
        value: serde_json::Value,
    }
    let mut states: Vec<(u64, serde_json::Value)> = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(line).map_err(|error| StatesError::Malformed {
            line: line_number,
            message: format!("expected {{\"replica\":N,\"value\":...}}: {error}"),
        })?;
        if let Some(first) = seen.insert(parsed.replica, line_number) {
            return Err(StatesError::Malformed {
                line: line_number,
                message: format!(
                    "replica {} already appeared at line {first}",
                    parsed.replica
                ),
            });
        }
        states.push((parsed.replica, parsed.value));
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_states_converge() {
        let states = vec![(1, json!({"a": [1, 2]})), (2, json!({"a": [1, 2]}))];
        assert!(check(&states).is_converged());
        assert!(check(&[]).is_converged());
    }

    #[test]
    fn the_minority_is_reported_with_its_first_differing_path() {
        let states = vec![
            (1, json!({"cart": {"apples": 2, "pears": 1}})),
            (2, json!({"cart": {"apples": 3, "pears": 1}})),
            (3, json!({"cart": {"apples": 2, "pears": 1}})),
        ];
        let ConvergenceVerdict::Diverged(divergence) = check(&states) else {
            panic!("replica 2 differs");
        };
        assert_eq!(divergence.reference, vec![1, 3]);
        assert_eq!(divergence.groups.len(), 1);
        assert_eq!(divergence.groups[0].replicas, vec![2]);
        assert_eq!(divergence.groups[0].path, "/cart/apples");
        assert_eq!(divergence.groups[0].value, Some(json!(3)));
        assert_eq!(divergence.groups[0].reference_value, Some(json!(2)));
        assert!(
            divergence
                .to_string()
                .contains("replica(s) 2 differ at /cart/apples: 3")
        );
    }

    #[test]
    fn missing_keys_and_array_elements_are_absent() {
        let states = vec![
            (7, json!({"a/b": [1, 2, 3], "x": 1})),
            (9, json!({"a/b": [1, 2], "x": 1})),
        ];
        let ConvergenceVerdict::Diverged(divergence) = check(&states) else {
            panic!("replica 9 lacks an element");
        };
        // A tie: the group holding the first replica listed is the reference.
        assert_eq!(divergence.reference, vec![7]);
        assert_eq!(divergence.groups[0].path, "/a~1b/2");
        assert_eq!(divergence.groups[0].value, None);
        assert_eq!(divergence.groups[0].reference_value, Some(json!(3)));
        let states = vec![(1, json!({"x": 1})), (2, json!({"x": 1, "y": 2}))];
        let ConvergenceVerdict::Diverged(divergence) = check(&states) else {
            panic!("replica 2 has an extra key");
        };
        assert_eq!(divergence.groups[0].path, "/y");
        assert_eq!(divergence.groups[0].reference_value, None);
    }

    #[test]
    fn different_types_differ_at_the_whole_value() {
        let states = vec![(1, json!(5)), (2, json!("5"))];
        let ConvergenceVerdict::Diverged(divergence) = check(&states) else {
            panic!("a number is not a string");
        };
        assert_eq!(divergence.groups[0].path, "");
    }

    #[test]
    fn parse_states_names_the_bad_line() {
        let text = "{\"replica\":1,\"value\":{}}\n\n{\"replica\":\"x\",\"value\":1}\n";
        let error = parse_states(text).unwrap_err();
        assert!(error.to_string().starts_with("line 3:"), "{error}");
        let text = "{\"replica\":1,\"value\":1}\n{\"replica\":1,\"value\":1}\n";
        let error = parse_states(text).unwrap_err();
        assert!(
            error.to_string().contains("already appeared at line 1"),
            "{error}"
        );
        let states = parse_states("{\"replica\":4,\"value\":[1]}\n").unwrap();
        assert_eq!(states, vec![(4, serde_json::json!([1]))]);
    }
}

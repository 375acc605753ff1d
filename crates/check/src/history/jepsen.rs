//! Jepsen etcd logs, interpreted exactly as Porcupine does (one CAS register, initial nil).
//!
//! Only `jepsen.util` lines carry events; everything else is ignored. Of those, the ones Porcupine
//! does not read (`:info` timeouts, for example) are ignored too, which leaves their operation
//! without a return: indeterminate.

use std::sync::Arc;

use super::{Call, Event, Operation, Outcome, ParseError, Pending, Value};

const MARKER: &str = "jepsen.util - ";

/// Parses a Jepsen etcd log into operations in invocation order.
pub(crate) fn parse(text: &str) -> Result<Vec<Operation>, ParseError> {
    let mut operations: Vec<Operation> = Vec::new();
    let mut pending = Pending::default();
    let key: Arc<str> = Arc::from("");
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let Some((_, record)) = line.split_once(MARKER) else {
            continue;
        };
        let malformed = |message: String| ParseError::malformed(line_number, message);
        let mut fields = record.trim().splitn(4, char::is_whitespace);
        let (Some(process), Some(kind), Some(function), Some(value)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed(format!(
                "expected `<process> <type> <f> <value>`, got {record:?}"
            )));
        };
        let process: u64 = process
            .parse()
            .map_err(|_| malformed(format!("process {process:?} is not a number")))?;
        let value = value.trim();
        let event = Event {
            line: line_number,
            time_ns: None,
        };
        match (kind, function) {
            (":invoke", _) => {
                let call = match function {
                    ":read" => Call::Read,
                    ":write" => Call::Write(parse_value(value).map_err(malformed)?),
                    ":cas" => {
                        let (expected, new) = parse_pair(value).map_err(malformed)?;
                        Call::Cas { expected, new }
                    }
                    other => return Err(malformed(format!("unknown function {other}"))),
                };
                // An earlier operation still outstanding keeps no return: indeterminate.
                pending.start(process, operations.len());
                operations.push(Operation {
                    process,
                    key: key.clone(),
                    call,
                    outcome: Outcome::Indeterminate,
                    invoke: event,
                    complete: None,
                });
            }
            (":ok", ":read" | ":write" | ":cas") | (":fail", ":cas") | (":fail", ":read") => {
                if kind == ":fail" && function == ":read" && value != ":timed-out" {
                    continue;
                }
                let Some(position) = pending.take(process) else {
                    return Err(malformed(format!(
                        "process {process} completes an operation it never invoked"
                    )));
                };
                let operation = &mut operations[position];
                if format!(":{}", operation.call.function()) != function {
                    return Err(malformed(format!(
                        "completion {function} does not match the invocation at line {} (:{})",
                        operation.invoke.line,
                        operation.call.function()
                    )));
                }
                operation.complete = Some(event);
                operation.outcome = match (kind, function) {
                    (":ok", ":read") => Outcome::Ok(parse_value(value).map_err(malformed)?),
                    (":ok", _) => Outcome::Ok(Value::Null),
                    (_, ":cas") => Outcome::Rejected,
                    // A timed-out read: any value is accepted.
                    _ => Outcome::Indeterminate,
                };
            }
            _ => {}
        }
    }
    Ok(operations)
}

fn parse_value(text: &str) -> Result<Value, String> {
    if text == "nil" {
        return Ok(Value::Null);
    }
    text.parse::<i64>()
        .map(Value::Int)
        .map_err(|_| format!("value {text:?} is neither nil nor an integer"))
}

fn parse_pair(text: &str) -> Result<(Value, Value), String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(|| format!("cas value {text:?} is not [FROM TO]"))?;
    let mut parts = inner.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(expected), Some(new), None) => Ok((parse_value(expected)?, parse_value(new)?)),
        _ => Err(format!("cas value {text:?} is not [FROM TO]")),
    }
}

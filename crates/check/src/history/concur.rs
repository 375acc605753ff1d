//! This project's JSON Lines history format (see `docs/history.md`).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use super::{Call, Event, Operation, Outcome, ParseError, Pending, Value};

/// One line as written; fields the checker does not need are ignored.
#[derive(Deserialize)]
struct RawEvent<'a> {
    process: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(default)]
    key: serde_json::Value,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    time: Option<u64>,
}

/// Parses concur JSON Lines into operations in invocation order.
pub(crate) fn parse(text: &str) -> Result<Vec<Operation>, ParseError> {
    let mut operations: Vec<Operation> = Vec::new();
    let mut pending = Pending::default();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawEvent<'_> = serde_json::from_str(line).map_err(|error| {
            ParseError::malformed(line_number, format!("invalid event: {error}"))
        })?;
        let event = Event {
            line: line_number,
            time_ns: raw.time,
        };
        let key =
            parse_key(&raw.key).map_err(|message| ParseError::malformed(line_number, message))?;
        let function = canonical_function(&raw.f).ok_or_else(|| {
            ParseError::malformed(
                line_number,
                format!(
                    "unknown f {:?} (expected read, write, cas, append, get or put)",
                    raw.f
                ),
            )
        })?;
        match raw.kind.as_ref() {
            "invoke" => {
                let call = parse_call(function, &raw.value)
                    .map_err(|message| ParseError::malformed(line_number, message))?;
                if let Some(earlier) = pending.get(raw.process) {
                    let line = operations[earlier].invoke.line;
                    return Err(ParseError::malformed(
                        line_number,
                        format!(
                            "process {} invokes while its operation invoked at line {line} is \
                             still outstanding",
                            raw.process
                        ),
                    ));
                }
                pending.start(raw.process, operations.len());
                operations.push(Operation {
                    process: raw.process,
                    key,
                    call,
                    outcome: Outcome::Indeterminate,
                    invoke: event,
                    complete: None,
                });
            }
            kind @ ("ok" | "fail" | "info") => {
                let Some(position) = pending.take(raw.process) else {
                    return Err(ParseError::malformed(
                        line_number,
                        format!(
                            "process {} completes an operation it never invoked",
                            raw.process
                        ),
                    ));
                };
                let operation = &mut operations[position];
                if operation.call.function() != function || operation.key != key {
                    return Err(ParseError::malformed(
                        line_number,
                        format!(
                            "completion ({function} on key {key:?}) does not match the invocation \
                             at line {} ({} on key {:?})",
                            operation.invoke.line,
                            operation.call.function(),
                            operation.key
                        ),
                    ));
                }
                operation.complete = Some(event);
                operation.outcome = match kind {
                    "ok" if function == "read" => Outcome::Ok(
                        parse_value(&raw.value)
                            .map_err(|message| ParseError::malformed(line_number, message))?,
                    ),
                    "ok" => Outcome::Ok(Value::Null),
                    "fail" => Outcome::Failed,
                    _ => Outcome::Indeterminate,
                };
            }
            other => {
                return Err(ParseError::malformed(
                    line_number,
                    format!("unknown type {other:?} (expected invoke, ok, fail or info)"),
                ));
            }
        }
    }
    Ok(operations)
}

/// Maps the aliases `get`/`put` onto `read`/`write`.
fn canonical_function(function: &str) -> Option<&'static str> {
    match function {
        "read" | "get" => Some("read"),
        "write" | "put" => Some("write"),
        "cas" => Some("cas"),
        "append" => Some("append"),
        _ => None,
    }
}

fn parse_key(key: &serde_json::Value) -> Result<Arc<str>, String> {
    match key {
        serde_json::Value::Null => Ok(Arc::from("")),
        serde_json::Value::String(text) => Ok(Arc::from(text.as_str())),
        serde_json::Value::Number(number) if number.is_i64() || number.is_u64() => {
            Ok(Arc::from(number.to_string().as_str()))
        }
        other => Err(format!("key must be a string or an integer, not {other}")),
    }
}

fn parse_call(function: &str, value: &serde_json::Value) -> Result<Call, String> {
    Ok(match function {
        "read" => Call::Read,
        "write" => Call::Write(parse_value(value)?),
        "append" => match parse_value(value)? {
            text @ Value::Str(_) => Call::Append(text),
            other => return Err(format!("append needs a string value, not {other}")),
        },
        _ => match value.as_array().map(Vec::as_slice) {
            Some([expected, new]) => Call::Cas {
                expected: parse_value(expected)?,
                new: parse_value(new)?,
            },
            _ => return Err(format!("cas needs value [expected, new], not {value}")),
        },
    })
}

fn parse_value(value: &serde_json::Value) -> Result<Value, String> {
    match value {
        serde_json::Value::Null => Ok(Value::Null),
        serde_json::Value::String(text) => Ok(Value::string(text)),
        serde_json::Value::Number(number) => number
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("value {number} is not a 64-bit signed integer")),
        other => Err(format!(
            "value must be null, an integer or a string, not {other}"
        )),
    }
}

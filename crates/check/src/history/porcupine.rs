//! Porcupine key-value EDN lines: `{:process 0, :type :invoke, :f :get, :key "5", :value nil}`.
//!
//! A string key-value store: `get` returns the key's string (`""` when missing, so a `nil` value
//! read here is `""`), `put` overwrites, `append` concatenates.

use std::sync::Arc;

use super::{Call, Event, Operation, Outcome, ParseError, Pending, Value};

/// One EDN atom the lines use.
#[derive(Debug, PartialEq)]
enum Atom {
    Keyword(String),
    Text(String),
    Integer(i64),
    Nil,
}

/// Parses Porcupine kv EDN lines into operations in invocation order.
pub(crate) fn parse(text: &str) -> Result<Vec<Operation>, ParseError> {
    let mut operations: Vec<Operation> = Vec::new();
    let mut pending = Pending::default();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |message: String| ParseError::malformed(line_number, message);
        let fields = parse_map(line).map_err(malformed)?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, atom)| atom)
                .ok_or_else(|| malformed(format!("missing :{name}")))
        };
        let process = match field("process")? {
            Atom::Integer(number) if *number >= 0 => *number as u64,
            other => {
                return Err(malformed(format!(
                    ":process must be a number, not {other:?}"
                )));
            }
        };
        let kind = keyword(field("type")?).map_err(malformed)?;
        let function = keyword(field("f")?).map_err(malformed)?;
        let key = match field("key")? {
            Atom::Text(text) => Arc::from(text.as_str()),
            Atom::Integer(number) => Arc::from(number.to_string().as_str()),
            other => return Err(malformed(format!(":key must be a string, not {other:?}"))),
        };
        let value = match field("value")? {
            Atom::Text(text) => Value::string(text),
            Atom::Nil => Value::string(""),
            other => return Err(malformed(format!(":value must be a string, not {other:?}"))),
        };
        let event = Event {
            line: line_number,
            time_ns: None,
        };
        match kind {
            "invoke" => {
                let call = match function {
                    "get" => Call::Read,
                    "put" => Call::Write(value),
                    "append" => Call::Append(value),
                    other => return Err(malformed(format!("unknown :f :{other}"))),
                };
                if let Some(earlier) = pending.get(process) {
                    let line = operations[earlier].invoke.line;
                    return Err(malformed(format!(
                        "process {process} invokes while its operation invoked at line {line} \
                         is still outstanding"
                    )));
                }
                pending.start(process, operations.len());
                operations.push(Operation {
                    process,
                    key,
                    call,
                    outcome: Outcome::Indeterminate,
                    invoke: event,
                    complete: None,
                });
            }
            "ok" | "fail" | "info" => {
                let Some(position) = pending.take(process) else {
                    return Err(malformed(format!(
                        "process {process} completes an operation it never invoked"
                    )));
                };
                let operation = &mut operations[position];
                let expected = match operation.call {
                    Call::Read => "get",
                    Call::Write(_) => "put",
                    _ => "append",
                };
                if expected != function || operation.key != key {
                    return Err(malformed(format!(
                        "completion does not match the invocation at line {}",
                        operation.invoke.line
                    )));
                }
                operation.complete = Some(event);
                operation.outcome = match (kind, function) {
                    ("ok", "get") => Outcome::Ok(value),
                    ("ok", _) => Outcome::Ok(Value::Null),
                    ("fail", _) => Outcome::Failed,
                    _ => Outcome::Indeterminate,
                };
            }
            other => return Err(malformed(format!("unknown :type :{other}"))),
        }
    }
    Ok(operations)
}

fn keyword(atom: &Atom) -> Result<&str, String> {
    match atom {
        Atom::Keyword(name) => Ok(name),
        other => Err(format!("expected a keyword, not {other:?}")),
    }
}

/// Parses one `{:key atom, :key atom}` map into its pairs.
fn parse_map(line: &str) -> Result<Vec<(String, Atom)>, String> {
    let inner = line
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or("expected a map `{...}`")?;
    let mut cursor = Cursor { rest: inner };
    let mut pairs = Vec::new();
    while let Some(atom) = cursor.next_atom()? {
        let Atom::Keyword(name) = atom else {
            return Err(format!("expected a keyword, not {atom:?}"));
        };
        let value = cursor
            .next_atom()?
            .ok_or_else(|| format!(":{name} has no value"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

struct Cursor<'a> {
    rest: &'a str,
}

impl Cursor<'_> {
    /// The next atom, skipping whitespace and commas; `None` at the end.
    fn next_atom(&mut self) -> Result<Option<Atom>, String> {
        self.rest = self
            .rest
            .trim_start_matches(|character: char| character.is_whitespace() || character == ',');
        let Some(first) = self.rest.chars().next() else {
            return Ok(None);
        };
        if first == '"' {
            return self.string().map(Some);
        }
        let end = self
            .rest
            .find(|character: char| character.is_whitespace() || character == ',')
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        if let Some(name) = token.strip_prefix(':') {
            return Ok(Some(Atom::Keyword(name.to_string())));
        }
        if token == "nil" {
            return Ok(Some(Atom::Nil));
        }
        token
            .parse()
            .map(|number| Some(Atom::Integer(number)))
            .map_err(|_| format!("unexpected token {token:?}"))
    }

    fn string(&mut self) -> Result<Atom, String> {
        let mut text = String::new();
        let mut characters = self.rest.char_indices().skip(1);
        while let Some((position, character)) = characters.next() {
            match character {
                '"' => {
                    self.rest = &self.rest[position + 1..];
                    return Ok(Atom::Text(text));
                }
                '\\' => match characters.next() {
                    Some((_, 'n')) => text.push('\n'),
                    Some((_, 't')) => text.push('\t'),
                    Some((_, escaped)) => text.push(escaped),
                    None => break,
                },
                other => text.push(other),
            }
        }
        Err("unterminated string".to_string())
    }
}

//! Histories of client operations: the parsed, validated form every checker reads.
//!
//! A history is what clients saw: each operation was *invoked* at one point of real time and
//! *completed* at a later one (or never). Three text formats are read, all by line:
//! this project's JSON Lines ([`Format::Concur`], documented in `docs/history.md`), Jepsen's etcd
//! logs ([`Format::JepsenEtcd`]) and Porcupine's key-value EDN lines ([`Format::PorcupineKv`]).
//! Line order is real-time order in all three.

mod concur;
mod jepsen;
mod porcupine;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A value held by a register or key: null (absent), an integer or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum Value {
    /// No value: the initial content of every register in the concur and Jepsen formats.
    #[default]
    Null,
    /// A signed integer.
    Int(i64),
    /// A string (shared, so that copying a model state never copies the text).
    Str(Arc<str>),
}

impl Value {
    /// Builds a string value.
    pub fn string(text: &str) -> Self {
        Value::Str(Arc::from(text))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => formatter.write_str("null"),
            Value::Int(number) => write!(formatter, "{number}"),
            Value::Str(text) => write!(formatter, "{text:?}"),
        }
    }
}

/// What a client asked for: the operation's function and arguments.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Call {
    /// Read the key (`read`, alias `get`).
    Read,
    /// Overwrite the key (`write`, alias `put`).
    Write(Value),
    /// Compare-and-set: write `new` only if the key holds `expected`.
    Cas {
        /// The value the key must hold for the write to happen.
        expected: Value,
        /// The value written when the precondition holds.
        new: Value,
    },
    /// Append a string to the key's string value (null counts as the empty string).
    Append(Value),
}

impl Call {
    /// The function's name as it appears in the concur format.
    pub fn function(&self) -> &'static str {
        match self {
            Call::Read => "read",
            Call::Write(_) => "write",
            Call::Cas { .. } => "cas",
            Call::Append(_) => "append",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Read => formatter.write_str("read"),
            Call::Write(value) => write!(formatter, "write {value}"),
            Call::Cas { expected, new } => write!(formatter, "cas {expected}->{new}"),
            Call::Append(value) => write!(formatter, "append {value}"),
        }
    }
}

/// How an operation ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Completed and took effect; for a read, the value it returned (`Value::Null` otherwise).
    Ok(Value),
    /// A compare-and-set that completed without effect because the key did not hold `expected`
    /// (Jepsen's `:fail :cas`): the checker verifies that precondition failure.
    Rejected,
    /// Definitely did not take effect (`fail`): the checker drops it.
    Failed,
    /// May or may not have taken effect, at any time after its invocation (`info`, or no
    /// completion by the end of the history): its return is at +infinity.
    Indeterminate,
}

/// Where in the history one event (an invocation or a completion) was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// 1-based line number in the source text; line order is real-time order.
    pub line: usize,
    /// The event's `time` field (virtual nanoseconds), when the format has one.
    pub time_ns: Option<u64>,
}

/// One client operation: its invocation, its completion if any, and what it returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// The client process that issued it.
    pub process: u64,
    /// The key it addressed (`""` for the single register of a register history).
    pub key: Arc<str>,
    /// The function and arguments.
    pub call: Call,
    /// How it ended.
    pub outcome: Outcome,
    /// Its invocation.
    pub invoke: Event,
    /// Its completion event, if one was recorded (an `info` completion included).
    pub complete: Option<Event>,
}

impl Operation {
    /// Whether the operation may have taken effect at any time after its invocation.
    pub fn is_indeterminate(&self) -> bool {
        self.outcome == Outcome::Indeterminate
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let result = match (&self.call, &self.outcome) {
            (Call::Read, Outcome::Ok(value)) => format!("read -> {value}"),
            (call, Outcome::Ok(_)) => format!("{call} ok"),
            (call, Outcome::Rejected) => format!("{call} rejected (precondition false)"),
            (call, Outcome::Failed) => format!("{call} failed"),
            (call, Outcome::Indeterminate) => format!("{call} indeterminate"),
        };
        write!(formatter, "process {:<3} {result:<28}", self.process)?;
        let returned = match self.complete {
            Some(event) if !self.is_indeterminate() => format!("line {}", event.line),
            _ => "never (indeterminate)".to_string(),
        };
        write!(
            formatter,
            " invoked line {}, returned {returned}",
            self.invoke.line
        )?;
        let times = (
            self.invoke.time_ns,
            self.complete.and_then(|event| event.time_ns),
        );
        match times {
            (Some(start), Some(end)) if !self.is_indeterminate() => {
                write!(formatter, " (time {start}..{end})")
            }
            (Some(start), _) => write!(formatter, " (time {start}..)"),
            _ => Ok(()),
        }
    }
}

/// The text formats a history can be read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// Detect the format from the first non-blank line.
    Auto,
    /// This project's JSON Lines (`{"process":3,"type":"invoke",...}`).
    Concur,
    /// Jepsen etcd logs (`INFO  jepsen.util - 3 :invoke :read nil`, tab-separated): one CAS register.
    JepsenEtcd,
    /// Porcupine key-value EDN lines (`{:process 0, :type :invoke, :f :get, ...}`): a string
    /// key-value store whose missing keys read as `""`.
    PorcupineKv,
}

impl Format {
    /// Detects the format of `text` from its first line that looks like an event of one (Jepsen
    /// logs may start with other log lines); `None` if no line does. Empty text is an (empty)
    /// concur history.
    pub fn detect(text: &str) -> Option<Format> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .peekable();
        if lines.peek().is_none() {
            return Some(Format::Concur);
        }
        lines.find_map(|line| {
            if line.starts_with("{:") {
                Some(Format::PorcupineKv)
            } else if line.starts_with('{') {
                Some(Format::Concur)
            } else if line.contains("jepsen.util") {
                Some(Format::JepsenEtcd)
            } else {
                None
            }
        })
    }
}

/// Why a history could not be read. Every variant names the line it stopped at, when there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line is not a valid event of its format, or breaks the history's rules.
    #[error("line {line}: {message}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// No line looks like an event of a known format.
    #[error(
        "line {line}: cannot detect the history format (expected concur JSON Lines, Jepsen etcd \
         log lines or Porcupine kv EDN lines); name it with a format"
    )]
    UnknownFormat {
        /// 1-based line number of the first non-blank line.
        line: usize,
    },
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ParseError {
    /// The 1-based line number the error names, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::Malformed { line, .. } | ParseError::UnknownFormat { line } => Some(*line),
            ParseError::Io { .. } => None,
        }
    }

    pub(crate) fn malformed(line: usize, message: impl Into<String>) -> Self {
        ParseError::Malformed {
            line,
            message: message.into(),
        }
    }
}

/// A parsed, validated history: operations in invocation order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    format: Format,
    operations: Vec<Operation>,
}

impl History {
    /// Parses this project's JSON Lines history format.
    pub fn from_jsonl(text: &str) -> Result<History, ParseError> {
        Self::parse(text, Format::Concur)
    }

    /// Parses `text` in `format` (`Format::Auto` detects it).
    pub fn parse(text: &str, format: Format) -> Result<History, ParseError> {
        let format = match format {
            Format::Auto => Format::detect(text).ok_or_else(|| ParseError::UnknownFormat {
                line: first_content_line(text),
            })?,
            known => known,
        };
        let operations = match format {
            Format::Concur | Format::Auto => concur::parse(text)?,
            Format::JepsenEtcd => jepsen::parse(text)?,
            Format::PorcupineKv => porcupine::parse(text)?,
        };
        Ok(History { format, operations })
    }

    /// Builds a history from operations already in invocation order.
    pub fn from_operations(format: Format, operations: Vec<Operation>) -> History {
        History { format, operations }
    }

    /// The format it was read from (never `Format::Auto`).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The operations, in invocation order.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// How many operations it holds.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether it holds no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

/// Reads and parses the history file at `path`.
pub fn load(path: &Path, format: Format) -> Result<History, ParseError> {
    let text = std::fs::read_to_string(path).map_err(|source| ParseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    History::parse(&text, format)
}

fn first_content_line(text: &str) -> usize {
    text.lines()
        .position(|line| !line.trim().is_empty())
        .map_or(1, |index| index + 1)
}

/// Tracks each process's outstanding operation while a parser walks the lines.
#[derive(Default)]
pub(crate) struct Pending {
    outstanding: std::collections::HashMap<u64, usize>,
}

impl Pending {
    /// The index of `process`'s outstanding operation, removing it.
    pub(crate) fn take(&mut self, process: u64) -> Option<usize> {
        self.outstanding.remove(&process)
    }

    /// Records `index` as `process`'s outstanding operation; returns the one it replaces.
    pub(crate) fn start(&mut self, process: u64, index: usize) -> Option<usize> {
        self.outstanding.insert(process, index)
    }

    /// The index of `process`'s outstanding operation.
    pub(crate) fn get(&self, process: u64) -> Option<usize> {
        self.outstanding.get(&process).copied()
    }
}

//! Client histories in concur's JSON Lines format (see docs/trace.md and docs/history.md): one
//! line per client invocation or completion, in real-time order.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

/// Whether a line starts an operation or says how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client sent the operation.
    Invoke,
    /// It completed and took effect.
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Indeterminate: it may or may not take effect, possibly later.
    Info,
}

/// One history line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Logical process (client session); a process that saw `info` is retired and replaced.
    pub process: u64,
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Function: `read`, `write`, `cas`, `append`, ...
    pub f: String,
    /// Key of the register (empty = the single register).
    #[serde(default)]
    pub key: String,
    /// Argument (invoke) or result (ok of a read); `[expected, new]` for cas.
    pub value: serde_json::Value,
    /// Virtual (true) time in nanoseconds.
    pub time: u64,
    /// Why it failed or is indeterminate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The node the client talked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
}

/// Writes `events` as JSON Lines.
pub fn write_jsonl(events: &[HistoryEvent], mut out: impl Write) -> io::Result<()> {
    for event in events {
        serde_json::to_writer(&mut out, event)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Why a history line could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// Line `line` (1-based) is not a valid history event.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Parses JSON Lines written by [`write_jsonl`] (blank lines are skipped).
pub fn read_jsonl(text: &str) -> Result<Vec<HistoryEvent>, HistoryError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|source| HistoryError::Line {
                line: index + 1,
                source,
            })
        })
        .collect()
}

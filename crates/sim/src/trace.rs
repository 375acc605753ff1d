//! The trace: every send, delivery, drop and local step of a run, each stamped with the node's
//! vector clock, as JSON Lines (docs/trace.md) or as a ShiViz log. Recorded only when asked for.

use std::fmt::Write as _;
use std::io::{self, Write};

use clock::VectorClock;
use serde::{Deserialize, Serialize};

use crate::process::{ClientId, NodeId};

/// What a trace line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TraceKind {
    /// A node booted or restarted (`detail` says which).
    Start,
    /// A node sent a message; `clock` is the sender's clock, carried by the message.
    Send,
    /// A message was handed to its receiver; `clock` is the receiver's after merging.
    Deliver,
    /// A message was lost; `clock` is the one it carried (the sender's at send time).
    Drop,
    /// A timer fired.
    Timer,
    /// A write became durable.
    Persisted,
    /// A client request reached a node.
    Request,
    /// A node answered a client.
    Reply,
    /// A node crashed.
    Crash,
    /// A nemesis step (partition, heal, pause, skew, ...).
    Nemesis,
    /// A line the process logged.
    Log,
}

/// One trace line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// True time in nanoseconds.
    pub time: u64,
    /// What happened.
    pub kind: TraceKind,
    /// The node it happened at (absent for network-wide nemesis steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// The other node of a send, delivery or drop (receiver for send/drop, sender for deliver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<NodeId>,
    /// The client of a request or reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientId>,
    /// Message (Debug form), drop reason, token or text.
    pub detail: String,
    /// Vector clock keyed by node id (see `kind` for whose).
    pub clock: VectorClock,
}

/// A recorded trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Lines in the order they happened.
    pub events: Vec<TraceEvent>,
}

/// The regular expression ShiViz uses to parse [`Trace::write_shiviz`] output (its default one).
pub const SHIVIZ_REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";

impl Trace {
    /// Writes one JSON object per line.
    pub fn write_jsonl(&self, mut out: impl Write) -> io::Result<()> {
        for event in &self.events {
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Writes a ShiViz log: the parsing regex, an empty execution delimiter line, then per event
    /// the description line and `host {"host":n,...}`. Drops and nemesis steps are not events of
    /// any host, so they are left out (they stay in the JSON Lines trace).
    pub fn write_shiviz(&self, mut out: impl Write) -> io::Result<()> {
        writeln!(out, "{SHIVIZ_REGEX}")?;
        writeln!(out)?;
        let mut clock_text = String::new();
        for event in &self.events {
            let Some(node) = event.node else { continue };
            if matches!(event.kind, TraceKind::Drop | TraceKind::Nemesis) {
                continue;
            }
            clock_text.clear();
            clock_text.push('{');
            for (index, (replica, counter)) in event.clock.iter().enumerate() {
                let separator = if index == 0 { "" } else { "," };
                let _ = write!(clock_text, "{separator}\"n{replica}\":{counter}");
            }
            clock_text.push('}');
            let peer = event
                .peer
                .map(|peer| format!(" n{peer}"))
                .unwrap_or_default();
            let kind = serde_json::to_value(event.kind)
                .ok()
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default();
            let detail = event.detail.replace('\n', " ");
            writeln!(out, "{kind}{peer} {detail} @{}ns", event.time)?;
            writeln!(out, "n{node} {clock_text}")?;
        }
        Ok(())
    }
}

//! [`Metrics`]: counters the node's servers record as they serve, rendered for `GET /metrics` in
//! the Prometheus text exposition format (version 0.0.4).
//!
//! Recording is cheap enough for every command of every connection: connection counts are
//! atomics, and per-command numbers sit in one mutex-guarded `BTreeMap` whose lock is held only to
//! bump a few integers. Rendering walks the map in key order, so the output is stable.
//!
//! What `/metrics` shows:
//! - `concur_commands_total{command,mode,outcome}`: commands served;
//! - `concur_command_duration_seconds{command,mode}`: a latency histogram per command and mode;
//! - `concur_connections_open`, `concur_connections_total`: client connections;
//! - `concur_raft_*`: this node's term, commit, applied and last index, role and leader;
//! - `concur_strong_keys`, `concur_available_*`: each keyspace's size and anti-entropy counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::process::{Mode, NodeStatus};

/// Upper bounds of the latency histogram's buckets, in microseconds (100 µs to 10 s).
const LATENCY_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Most distinct command names tracked; later names count as `other`, so a client sending
/// random unknown commands cannot grow the map (or the scrape) without bound.
const COMMAND_NAMES_MAX: usize = 128;

/// Longest command name kept as a label; longer names count as `other`.
const COMMAND_NAME_BYTES_MAX: usize = 32;

/// The label of a command's keyspace mode (`none` when it touched no key).
fn mode_label(mode: Option<Mode>) -> &'static str {
    mode.map_or("none", Mode::name)
}

/// One row of the command table: a command name and the keyspace it touched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CommandKey {
    command: String,
    mode: &'static str,
}

/// Numbers for one [`CommandKey`].
#[derive(Clone, Debug, Default)]
struct CommandStats {
    succeeded: u64,
    failed: u64,
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    latency_us_sum: u64,
}

impl CommandStats {
    fn observe(&mut self, ok: bool, latency: Duration) {
        if ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound_us| latency_us <= bound_us)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[bucket] += 1;
        self.latency_us_sum = self.latency_us_sum.saturating_add(latency_us);
    }

    fn count(&self) -> u64 {
        self.succeeded + self.failed
    }
}

/// What the node's servers record, shared by every connection task (wrap it in an `Arc`).
#[derive(Debug, Default)]
pub struct Metrics {
    commands: Mutex<BTreeMap<CommandKey, CommandStats>>,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// One command served: name (e.g. "set"), keyspace mode if it touched keys, success, latency.
    pub fn record(&self, command: &str, mode: Option<Mode>, ok: bool, latency: Duration) {
        let mut commands = self
            .commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mode = mode_label(mode);
        let mut key = CommandKey {
            command: command_label(command),
            mode,
        };
        if !commands.contains_key(&key) && commands.len() >= COMMAND_NAMES_MAX {
            key.command = "other".to_string();
        }
        commands.entry(key).or_default().observe(ok, latency);
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection ended.
    pub fn connection_closed(&self) {
        // Saturate rather than wrap should a caller close more than it opened.
        let _ = self
            .connections_open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                Some(open.saturating_sub(1))
            });
    }

    /// Client connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// Commands recorded so far (every name, mode and outcome).
    pub fn commands_total(&self) -> u64 {
        self.commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .map(CommandStats::count)
            .sum()
    }

    /// Prometheus text exposition format (content type text/plain; version=0.0.4).
    pub fn render(&self, status: Option<&NodeStatus>) -> String {
        let mut text = String::with_capacity(4096);
        self.render_commands(&mut text);
        family(
            &mut text,
            "concur_connections_open",
            "gauge",
            "Client connections open now.",
        );
        sample(
            &mut text,
            "concur_connections_open",
            "",
            self.connections_open(),
        );
        family(
            &mut text,
            "concur_connections_total",
            "counter",
            "Client connections accepted since start.",
        );
        let accepted = self.connections_total.load(Ordering::Relaxed);
        sample(&mut text, "concur_connections_total", "", accepted);
        family(
            &mut text,
            "concur_node_status_up",
            "gauge",
            "1 when the node answered a status request for this scrape.",
        );
        sample(
            &mut text,
            "concur_node_status_up",
            "",
            u64::from(status.is_some()),
        );
        if let Some(status) = status {
            render_raft(&mut text, status);
            render_available(&mut text, status);
        }
        text
    }

    fn render_commands(&self, text: &mut String) {
        let commands = self
            .commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        family(
            text,
            "concur_commands_total",
            "counter",
            "Commands served, by command, keyspace mode and outcome.",
        );
        for (key, stats) in &commands {
            for (outcome, count) in [("ok", stats.succeeded), ("error", stats.failed)] {
                let labels = format!(
                    "command=\"{}\",mode=\"{}\",outcome=\"{outcome}\"",
                    escape_label(&key.command),
                    key.mode
                );
                sample(text, "concur_commands_total", &labels, count);
            }
        }
        family(
            text,
            "concur_command_duration_seconds",
            "histogram",
            "Time to serve a command, by command and keyspace mode.",
        );
        for (key, stats) in &commands {
            let labels = format!(
                "command=\"{}\",mode=\"{}\"",
                escape_label(&key.command),
                key.mode
            );
            let mut cumulative = 0;
            for (index, count) in stats.buckets.iter().enumerate() {
                cumulative += count;
                let bound = LATENCY_BUCKETS_US
                    .get(index)
                    .map_or_else(|| "+Inf".to_string(), |&bound_us| seconds(bound_us));
                let _ = writeln!(
                    text,
                    "concur_command_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = seconds(stats.latency_us_sum);
            let _ = writeln!(
                text,
                "concur_command_duration_seconds_sum{{{labels}}} {sum}"
            );
            sample(
                text,
                "concur_command_duration_seconds_count",
                &labels,
                stats.count(),
            );
        }
    }
}

/// The Raft half's gauges.
fn render_raft(text: &mut String, status: &NodeStatus) {
    let node = format!("node=\"{}\"", status.node);
    let gauges = [
        ("concur_raft_term", "Current Raft term.", status.term),
        (
            "concur_raft_commit_index",
            "Highest log index known committed.",
            status.commit_index,
        ),
        (
            "concur_raft_applied_index",
            "Highest log index applied to the state machine.",
            status.applied_index,
        ),
        (
            "concur_raft_last_index",
            "Last index in the local log.",
            status.last_index,
        ),
        (
            "concur_raft_voters",
            "Voters in the current configuration.",
            status.voters.len() as u64,
        ),
        (
            "concur_raft_reachable_peers",
            "Peers heard from within the last two election timeouts.",
            status.reachable.len() as u64,
        ),
        (
            "concur_raft_leader",
            "The leader this node believes in (0 when it knows none).",
            status.leader.unwrap_or(0),
        ),
        (
            "concur_raft_stopped",
            "1 when the node's protocol half stopped on a storage failure.",
            u64::from(status.stopped.is_some()),
        ),
        (
            "concur_strong_keys",
            "Keys in the strong keyspace (this replica's applied state).",
            status.strong_keys,
        ),
    ];
    for (name, help, value) in gauges {
        family(text, name, "gauge", help);
        sample(text, name, &node, value);
    }
    family(
        text,
        "concur_raft_role",
        "gauge",
        "1 for this node's current Raft role, 0 for the others.",
    );
    let mut roles = vec![
        "leader",
        "follower",
        "pre-candidate",
        "candidate",
        "learner",
        "stopped",
    ];
    // A role this list does not know still shows (as the one set to 1).
    if !roles.contains(&status.role.as_str()) {
        roles.push(&status.role);
    }
    for role in roles {
        let labels = format!("{node},role=\"{}\"", escape_label(role));
        sample(
            text,
            "concur_raft_role",
            &labels,
            u64::from(status.role == role),
        );
    }
}

/// The available keyspace's gauges and counters.
fn render_available(text: &mut String, status: &NodeStatus) {
    let available = &status.available;
    let node = format!("node=\"{}\"", status.node);
    let gauges = [
        (
            "concur_available_keys",
            "Available keys holding a value.",
            available.keys as u64,
        ),
        (
            "concur_available_state_bytes",
            "Bytes of the available keyspace's full encoding.",
            available.state_bytes,
        ),
        (
            "concur_available_log_records",
            "Available-keyspace storage records not yet compacted.",
            available.log_records as u64,
        ),
        (
            "concur_available_log_bytes",
            "Bytes in those records.",
            available.log_bytes,
        ),
    ];
    for (name, help, value) in gauges {
        family(text, name, "gauge", help);
        sample(text, name, &node, value);
    }
    let counters = &available.counters;
    let totals = [
        (
            "operations",
            "Available operations executed.",
            counters.operations,
        ),
        (
            "writes",
            "Available operations that changed state.",
            counters.writes,
        ),
        (
            "snapshots_written",
            "Available-keyspace snapshots written since start.",
            available.snapshots_written,
        ),
        (
            "anti_entropy_rounds",
            "Anti-entropy rounds this node opened.",
            counters.rounds_started,
        ),
        (
            "merges",
            "Received states joined into the keyspace.",
            counters.merges,
        ),
        (
            "messages_sent",
            "Anti-entropy messages sent.",
            counters.messages_sent,
        ),
        (
            "messages_received",
            "Anti-entropy messages received.",
            counters.messages_received,
        ),
        (
            "messages_refused",
            "Anti-entropy messages refused because they did not decode.",
            counters.messages_refused,
        ),
        (
            "payload_bytes_sent",
            "CRDT payload bytes in anti-entropy messages sent.",
            counters.payload_bytes_sent,
        ),
        (
            "payload_bytes_received",
            "CRDT payload bytes in anti-entropy messages received.",
            counters.payload_bytes_received,
        ),
    ];
    for (what, help, value) in totals {
        let name = format!("concur_available_{what}_total");
        family(text, &name, "counter", help);
        sample(text, &name, &node, value);
    }
    family(
        text,
        "concur_available_keys_by_kind",
        "gauge",
        "Available keys per CRDT kind (a key with concurrent values of two kinds counts in both).",
    );
    for (kind, keys) in &available.keys_by_kind {
        let labels = format!("{node},kind=\"{}\"", escape_label(kind));
        sample(text, "concur_available_keys_by_kind", &labels, *keys as u64);
    }
    family(
        text,
        "concur_available_version_vector",
        "gauge",
        "Events seen contiguously from each replica, per CRDT kind's map.",
    );
    for (kind, vector) in &available.version_vectors {
        for (replica, events) in vector {
            let labels = format!(
                "{node},kind=\"{}\",replica=\"{replica}\"",
                escape_label(kind)
            );
            sample(text, "concur_available_version_vector", &labels, *events);
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of one metric family.
fn family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {kind}");
}

/// Writes one sample line; `labels` is the inside of the braces (empty for none).
fn sample(text: &mut String, name: &str, labels: &str, value: u64) {
    if labels.is_empty() {
        let _ = writeln!(text, "{name} {value}");
    } else {
        let _ = writeln!(text, "{name}{{{labels}}} {value}");
    }
}

/// Microseconds as a decimal number of seconds, exactly (`2500` → `0.0025`).
fn seconds(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A command name as a label value: lower case, bounded, `other` when odd.
fn command_label(command: &str) -> String {
    let plain = !command.is_empty()
        && command.len() <= COMMAND_NAME_BYTES_MAX
        && command.bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.' || byte == b'-'
        });
    if plain {
        command.to_ascii_lowercase()
    } else {
        "other".to_string()
    }
}

/// Escapes a label value as the exposition format requires (`\`, `"` and newline).
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample whose name-and-labels part is exactly `series`.
    fn value_of(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
    }

    #[test]
    fn commands_are_counted_by_name_mode_and_outcome() {
        let metrics = Metrics::new();
        metrics.record("SET", Some(Mode::Strong), true, Duration::from_micros(800));
        metrics.record("set", Some(Mode::Strong), false, Duration::from_millis(3));
        metrics.record(
            "get",
            Some(Mode::Available),
            true,
            Duration::from_micros(50),
        );
        metrics.record("ping", None, true, Duration::from_secs(20));
        let text = metrics.render(None);
        let ok = r#"concur_commands_total{command="set",mode="strong",outcome="ok"}"#;
        let error = r#"concur_commands_total{command="set",mode="strong",outcome="error"}"#;
        assert_eq!(value_of(&text, ok), Some(1.0));
        assert_eq!(value_of(&text, error), Some(1.0));
        let get = r#"concur_commands_total{command="get",mode="available",outcome="ok"}"#;
        assert_eq!(value_of(&text, get), Some(1.0));
        let ping = r#"concur_commands_total{command="ping",mode="none",outcome="ok"}"#;
        assert_eq!(value_of(&text, ping), Some(1.0));
        assert_eq!(metrics.commands_total(), 4);
    }

    #[test]
    fn latency_buckets_are_cumulative_and_end_with_the_count() {
        let metrics = Metrics::new();
        for latency_us in [50, 800, 3_000, 3_000, 20_000_000] {
            metrics.record(
                "set",
                Some(Mode::Strong),
                true,
                Duration::from_micros(latency_us),
            );
        }
        let text = metrics.render(None);
        let bucket = |le: &str| {
            let series = format!(
                "concur_command_duration_seconds_bucket{{command=\"set\",mode=\"strong\",le=\"{le}\"}}"
            );
            value_of(&text, &series)
        };
        assert_eq!(bucket("0.0001"), Some(1.0));
        assert_eq!(bucket("0.001"), Some(2.0));
        assert_eq!(bucket("0.0025"), Some(2.0));
        assert_eq!(bucket("0.005"), Some(4.0));
        assert_eq!(bucket("10"), Some(4.0));
        assert_eq!(bucket("+Inf"), Some(5.0));
        let labels = r#"{command="set",mode="strong"}"#;
        let count = format!("concur_command_duration_seconds_count{labels}");
        let sum = format!("concur_command_duration_seconds_sum{labels}");
        assert_eq!(value_of(&text, &count), Some(5.0));
        assert_eq!(value_of(&text, &sum), Some(20.00685));
    }

    #[test]
    fn odd_and_endless_command_names_stay_bounded() {
        let metrics = Metrics::new();
        metrics.record("we\"ird\nname", None, false, Duration::ZERO);
        for index in 0..COMMAND_NAMES_MAX * 2 {
            metrics.record(&format!("unknown{index}"), None, false, Duration::ZERO);
        }
        let text = metrics.render(None);
        let series = text
            .lines()
            .filter(|line| line.starts_with("concur_commands_total{"))
            .count();
        // Each name has an ok and an error line; `other` takes the odd name (first, so it holds
        // one of the slots) and every name past the last slot.
        assert_eq!(series, COMMAND_NAMES_MAX * 2);
        let other = r#"concur_commands_total{command="other",mode="none",outcome="error"}"#;
        let named = COMMAND_NAMES_MAX - 1;
        let others = 1 + COMMAND_NAMES_MAX * 2 - named;
        assert_eq!(value_of(&text, other), Some(others as f64));
        assert!(!text.contains("ird"));
    }

    #[test]
    fn connections_open_and_close() {
        let metrics = Metrics::new();
        metrics.connection_opened();
        metrics.connection_opened();
        metrics.connection_closed();
        metrics.connection_closed();
        metrics.connection_closed();
        metrics.connection_opened();
        let text = metrics.render(None);
        assert_eq!(value_of(&text, "concur_connections_open"), Some(1.0));
        assert_eq!(value_of(&text, "concur_connections_total"), Some(3.0));
        assert_eq!(value_of(&text, "concur_node_status_up"), Some(0.0));
    }

    fn status() -> NodeStatus {
        let mut keys_by_kind = BTreeMap::new();
        keys_by_kind.insert("counter", 2);
        keys_by_kind.insert("string", 5);
        let mut vector = BTreeMap::new();
        vector.insert(1, 9);
        vector.insert(3, 4);
        let mut version_vectors = BTreeMap::new();
        version_vectors.insert("string", vector);
        NodeStatus {
            node: 2,
            role: "follower".to_string(),
            term: 7,
            leader: Some(1),
            commit_index: 41,
            applied_index: 40,
            last_index: 42,
            voters: vec![1, 2, 3],
            strong_keys: 12,
            reachable: vec![1],
            stopped: None,
            available: crate::available::ApStatus {
                replica: 2,
                keys: 7,
                keys_by_kind,
                version_vectors,
                state_bytes: 300,
                log_records: 3,
                log_bytes: 120,
                snapshots_written: 1,
                last_heard_ns: BTreeMap::new(),
                counters: crate::available::ApCounters {
                    operations: 20,
                    writes: 11,
                    merges: 5,
                    ..Default::default()
                },
            },
        }
    }

    #[test]
    fn a_status_becomes_raft_and_keyspace_gauges() {
        let text = Metrics::new().render(Some(&status()));
        assert_eq!(value_of(&text, "concur_node_status_up"), Some(1.0));
        assert_eq!(value_of(&text, r#"concur_raft_term{node="2"}"#), Some(7.0));
        assert_eq!(
            value_of(&text, r#"concur_raft_commit_index{node="2"}"#),
            Some(41.0)
        );
        assert_eq!(
            value_of(&text, r#"concur_raft_applied_index{node="2"}"#),
            Some(40.0)
        );
        assert_eq!(
            value_of(&text, r#"concur_raft_leader{node="2"}"#),
            Some(1.0)
        );
        assert_eq!(
            value_of(&text, r#"concur_raft_role{node="2",role="follower"}"#),
            Some(1.0)
        );
        assert_eq!(
            value_of(&text, r#"concur_raft_role{node="2",role="leader"}"#),
            Some(0.0)
        );
        assert_eq!(
            value_of(&text, r#"concur_strong_keys{node="2"}"#),
            Some(12.0)
        );
        let reachable = r#"concur_raft_reachable_peers{node="2"}"#;
        assert_eq!(value_of(&text, reachable), Some(1.0));
        assert_eq!(
            value_of(&text, r#"concur_available_keys{node="2"}"#),
            Some(7.0)
        );
        let kind = r#"concur_available_keys_by_kind{node="2",kind="counter"}"#;
        assert_eq!(value_of(&text, kind), Some(2.0));
        let vector = r#"concur_available_version_vector{node="2",kind="string",replica="3"}"#;
        assert_eq!(value_of(&text, vector), Some(4.0));
        let merges = r#"concur_available_merges_total{node="2"}"#;
        assert_eq!(value_of(&text, merges), Some(5.0));
    }

    #[test]
    fn an_unknown_role_still_shows() {
        let mut status = status();
        status.role = "observer".to_string();
        let text = Metrics::new().render(Some(&status));
        let role = r#"concur_raft_role{node="2",role="observer"}"#;
        assert_eq!(value_of(&text, role), Some(1.0));
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500), "0.0025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn every_family_is_declared_once_before_its_samples() {
        let metrics = Metrics::new();
        metrics.record("incr", Some(Mode::Strong), true, Duration::from_micros(10));
        let text = metrics.render(Some(&status()));
        let mut declared = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(declared.insert(name.to_string()), "{name} declared twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|family| declared.contains(*family))
                    .unwrap_or(name);
                assert!(
                    declared.contains(family),
                    "{name} sampled before its TYPE line"
                );
            }
        }
    }
}

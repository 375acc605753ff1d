//! `concur events`: append to, read and tail the event store of a running node over its HTTP API
//! (`/v1/events…`; see `node::http_events`).
//!
//! ```text
//! concur events append cart-1 --type ItemAdded --data '{"sku":"tea"}' --expected-version no-stream
//! concur events read cart-1 --backwards --limit 10
//! concur events read-all
//! concur events tail --from-position 0
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Longest response body read (a page of events is at most a few MiB).
const RESPONSE_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Longest a read or append waits for the node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Wait before `tail` reconnects after the connection dropped.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Arguments of `concur events`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Base URL of a node's HTTP API (any node: followers route to the leader).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8001")]
    pub node: String,
    /// The node's password, sent as a bearer token, when it requires one.
    #[arg(long, global = true)]
    pub password: Option<String>,
    /// Print events as JSON Lines instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// One `concur events` action.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Append one event to a stream.
    Append {
        /// The stream.
        stream: String,
        /// The event type (past tense: `ItemAdded`).
        #[arg(long = "type")]
        event_type: String,
        /// The event's data, as JSON.
        #[arg(long)]
        data: String,
        /// The event's metadata, as JSON (`correlation_id`, `causation_id` UUIDs recognised).
        #[arg(long)]
        metadata: Option<String>,
        /// The event id (a UUID); give the same one to retry without writing twice.
        #[arg(long)]
        id: Option<String>,
        /// `any`, `no-stream`, `stream-exists` or the stream's current revision.
        #[arg(long, default_value = "any")]
        expected_version: String,
    },
    /// Read a stream.
    Read {
        /// The stream.
        stream: String,
        /// First revision to read (default: the start, or the end with --backwards).
        #[arg(long)]
        from: Option<u64>,
        /// Read from newer to older.
        #[arg(long)]
        backwards: bool,
        /// Most events to print (default: all).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Read every stream in global position order.
    ReadAll {
        /// First position to read.
        #[arg(long)]
        from_position: Option<u64>,
        /// Read from newer to older.
        #[arg(long)]
        backwards: bool,
        /// Most events to print (default: all).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Print every event from a position on, then follow new ones as they commit.
    Tail {
        /// First position to print (default: 0).
        #[arg(long)]
        from_position: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// A node's HTTP API, reached with a blocking client.
struct Client {
    base: String,
    password: Option<String>,
    agent: ureq::Agent,
}

/// An HTTP answer: status and parsed JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Client {
    fn new(base: &str, password: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            password,
            agent,
        }
    }

    fn authorization(&self) -> Option<String> {
        self.password
            .as_ref()
            .map(|password| format!("Bearer {password}"))
    }

    fn finish(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Answer> {
        let mut response = response.with_context(|| format!("{what} {}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_SIZE_MAX_BYTES)
            .read_to_string()
            .with_context(|| format!("reading the answer to {what}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Answer> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in query {
            request = request.query(*name, value);
        }
        if let Some(authorization) = self.authorization() {
            request = request.header("authorization", authorization);
        }
        self.finish(&format!("GET {path}"), request.call())
    }

    fn post(&self, path: &str, expected_version: &str, body: &Value) -> anyhow::Result<Answer> {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("expected-version", expected_version);
        if let Some(authorization) = self.authorization() {
            request = request.header("authorization", authorization);
        }
        self.finish(&format!("POST {path}"), request.send(body.to_string()))
    }
}

/// A stream name as one URL path segment.
fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The error text of a refused request.
fn refusal(answer: &Answer) -> String {
    answer
        .body
        .get("error")
        .and_then(Value::as_str)
        .map_or_else(|| answer.body.to_string(), str::to_owned)
}

/// One event as a table row: position, stream@revision, type, data.
pub fn event_line(event: &Value) -> String {
    let data = match (event.get("data"), event.get("data_hex")) {
        (_, Some(Value::String(hex))) => format!("hex:{hex}"),
        (Some(data), _) => data.to_string(),
        (None, _) => String::new(),
    };
    // `Value`'s Display ignores width, so the position is padded as text.
    format!(
        "{:>8}  {}@{}  {}  {}",
        event["position"].to_string(),
        event["stream"].as_str().unwrap_or("?"),
        event["revision"],
        event["type"].as_str().unwrap_or("?"),
        data
    )
}

fn print_event(out: &mut impl Write, event: &Value, json: bool) -> std::io::Result<()> {
    if json {
        writeln!(out, "{event}")
    } else {
        writeln!(out, "{}", event_line(event))
    }
}

/// Runs `concur events`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.node, args.password.clone());
    let json = args.json;
    match args.action {
        Action::Append {
            stream,
            event_type,
            data,
            metadata,
            id,
            expected_version,
        } => append(
            &client,
            &stream,
            NewEvent {
                event_type,
                data,
                metadata,
                id,
            },
            &expected_version,
        ),
        Action::Read {
            stream,
            from,
            backwards,
            limit,
        } => {
            let path = format!("/v1/events/{}", path_segment(&stream));
            read_pages(&client, &path, "from", from, backwards, limit, json)
        }
        Action::ReadAll {
            from_position,
            backwards,
            limit,
        } => read_pages(
            &client,
            "/v1/events",
            "from_position",
            from_position,
            backwards,
            limit,
            json,
        ),
        Action::Tail {
            from_position,
            count,
        } => tail(&client, from_position.unwrap_or(0), count, json),
    }
}

/// The event `append` sends, as given on the command line.
struct NewEvent {
    event_type: String,
    data: String,
    metadata: Option<String>,
    id: Option<String>,
}

fn append(
    client: &Client,
    stream: &str,
    event: NewEvent,
    expected_version: &str,
) -> anyhow::Result<ExitCode> {
    let data: Value = serde_json::from_str(&event.data).context("--data is not valid JSON")?;
    let mut body = json!({ "type": event.event_type, "data": data });
    if let Some(metadata) = &event.metadata {
        body["metadata"] =
            serde_json::from_str(metadata).context("--metadata is not valid JSON")?;
    }
    if let Some(id) = &event.id {
        body["id"] = Value::String(id.clone());
    }
    let path = format!("/v1/events/{}", path_segment(stream));
    let answer = client.post(&path, expected_version, &json!({ "events": [body] }))?;
    if answer.status != 200 {
        eprintln!("refused ({}): {}", answer.status, refusal(&answer));
        if let Some(actual) = answer.body.get("actual_revision") {
            let actual = if actual.is_null() {
                "no-stream".to_owned()
            } else {
                actual.to_string()
            };
            eprintln!("the stream's actual revision is {actual}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let body = &answer.body;
    let retry = if body["duplicate"] == Value::Bool(true) {
        " (already appended: nothing written twice)"
    } else {
        ""
    };
    println!(
        "appended to {stream}: revision {}, position {}{retry}",
        body["next_expected_revision"], body["last_position"]
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads page after page, following `next`, until `limit` events or the end.
fn read_pages(
    client: &Client,
    path: &str,
    from_name: &str,
    mut from: Option<u64>,
    backwards: bool,
    limit: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let mut query = vec![(
            "direction",
            if backwards { "backwards" } else { "forwards" }.to_owned(),
        )];
        if let Some(from) = from {
            query.push((from_name, from.to_string()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.saturating_sub(printed).to_string()));
        }
        let answer = client.get(path, &query)?;
        if answer.status != 200 {
            eprintln!("refused ({}): {}", answer.status, refusal(&answer));
            return Ok(ExitCode::FAILURE);
        }
        let events = answer.body["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for event in &events {
            print_event(&mut out, event, json)?;
            printed += 1;
        }
        let next = answer.body["next"].as_u64();
        let done = limit.is_some_and(|limit| printed >= limit);
        match next {
            Some(next) if !done && !events.is_empty() => from = Some(next),
            _ => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// `id:` (the event's position).
    pub id: Option<String>,
    /// `event:` (empty for plain events).
    pub event: String,
    /// The `data:` lines joined by newlines.
    pub data: String,
}

/// Parses server-sent events line by line; `push` returns a message at each blank line.
#[derive(Debug, Default)]
pub struct SseParser {
    current: SseMessage,
    has_data: bool,
}

impl SseParser {
    /// Feeds one line (without its line ending).
    pub fn push(&mut self, line: &str) -> Option<SseMessage> {
        if line.is_empty() {
            let message = std::mem::take(&mut self.current);
            let complete = std::mem::take(&mut self.has_data);
            return complete.then_some(message);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

/// Follows `/v1/events/subscribe`, reconnecting after the last position seen when the
/// connection drops.
fn tail(client: &Client, from: u64, count: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    let mut position = from;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let url = format!("{}/v1/events/subscribe", client.base);
        let mut request = client
            .agent
            .get(&url)
            .query("from_position", position.to_string())
            .config()
            .timeout_global(None)
            .build();
        if let Some(authorization) = client.authorization() {
            request = request.header("authorization", authorization);
        }
        let response = match request.call() {
            Ok(response) if response.status() == 200 => response,
            Ok(mut response) => {
                let text = response.body_mut().read_to_string().unwrap_or_default();
                bail!("subscribe refused ({}): {text}", response.status());
            }
            Err(error) => {
                eprintln!("-- cannot reach {}: {error}; retrying --", client.base);
                std::thread::sleep(RECONNECT_DELAY);
                continue;
            }
        };
        let reader = BufReader::new(response.into_body().into_reader());
        let mut parser = SseParser::default();
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let Some(message) = parser.push(line.trim_end_matches('\r')) else {
                continue;
            };
            match message.event.as_str() {
                "" | "message" => {
                    let event: Value = serde_json::from_str(&message.data)
                        .context("the node sent an event that is not JSON")?;
                    if let Some(seen) = event["position"].as_u64() {
                        position = seen + 1;
                    }
                    print_event(&mut out, &event, json)?;
                    out.flush()?;
                    printed += 1;
                    if count.is_some_and(|count| printed >= count) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                "caught-up" => eprintln!("-- caught up; following new events --"),
                other => eprintln!("-- {other}: {} --", message.data),
            }
        }
        eprintln!("-- connection closed; resuming from position {position} --");
        std::thread::sleep(RECONNECT_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_parse_with_ids_names_and_comments() {
        let mut parser = SseParser::default();
        let mut messages = Vec::new();
        for line in [
            ": keep-alive",
            "",
            "id: 7",
            "data: {\"position\":7}",
            "",
            "event: caught-up",
            "data: {\"head_position\":8}",
            "",
            "data:first",
            "data: second",
            "",
        ] {
            messages.extend(parser.push(line));
        }
        assert_eq!(
            messages,
            [
                SseMessage {
                    id: Some("7".into()),
                    event: String::new(),
                    data: "{\"position\":7}".into(),
                },
                SseMessage {
                    id: None,
                    event: "caught-up".into(),
                    data: "{\"head_position\":8}".into(),
                },
                SseMessage {
                    id: None,
                    event: String::new(),
                    data: "first\nsecond".into(),
                },
            ]
        );
    }

    #[test]
    fn stream_names_are_escaped_as_one_path_segment() {
        assert_eq!(path_segment("cart-1"), "cart-1");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(path_segment("$all"), "%24all");
    }

    #[test]
    fn event_lines_show_position_stream_revision_type_and_data() {
        let event = json!({
            "position": 12, "stream": "cart-1", "revision": 3, "type": "ItemAdded",
            "data": {"sku": "tea"},
        });
        assert_eq!(
            event_line(&event),
            "      12  cart-1@3  ItemAdded  {\"sku\":\"tea\"}"
        );
        let binary = json!({
            "position": 1, "stream": "s", "revision": 0, "type": "Blob",
            "data": null, "data_hex": "00ff",
        });
        assert!(event_line(&binary).ends_with("hex:00ff"));
    }
}

//! The event store over HTTP: append with an expected version, read a stream, read `$all`, and
//! subscribe to `$all` as server-sent events.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/events/{stream}` | append `{"events": [{"id"?, "type", "data", "metadata"?}]}`; `expected-version` (header or query): `any`, `no-stream`, `stream-exists` or a revision; 409 names the actual revision |
//! | `GET /v1/events/{stream}?from=&direction=&limit=` | read a stream (`as_of_revision`, `as_of_position`, `as_of_time_ns` travel in time) |
//! | `GET /v1/events?from_position=&direction=&limit=` | read every stream by global position |
//! | `DELETE /v1/events/{stream}?before_revision=N` | truncate: delete the stream's events below revision N |
//! | `DELETE /v1/events/{stream}` | tombstone (hard-delete) the stream, if `expected-version` holds; it can never be written again |
//! | `GET /v1/events/subscribe?from_position=` | `$all` as server-sent events: history, then live; each SSE `id:` is the event's position, so a client resumes with `Last-Event-ID` (which takes precedence over `from_position`) |
//!
//! Every read is linearizable (answered by the leader after a ReadIndex round), so a subscriber
//! that has seen position `p` and asks for what follows never misses an event committed later.
//! (`subscribe` is therefore not a stream name this API can read.)

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clock::HlcTimestamp;
use events::{
    AppendResult, AsOf, CONTENT_TYPE_JSON, CommandError, Direction, EventData, ExpectedVersion,
    Metadata, ReadError, RecordedEvent, StreamRevision, Uuid,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::handle::NodeError;
use crate::history::{EventsError, HistoryError, READ_COUNT_MAX, ReadRange, ReadSlice};
use crate::http::HttpState;

/// Largest append request body accepted, in bytes.
pub const APPEND_BODY_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How often a subscription polls for events after the last position it sent.
pub const SUBSCRIPTION_POLL_MS: u64 = 100;

/// Events a subscription fetches per read.
const SUBSCRIPTION_BATCH: usize = 512;

/// The event store's routes, to merge into the node's HTTP router.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/events", get(read_all))
        .route("/v1/events/subscribe", get(subscribe))
        .route(
            "/v1/events/{stream}",
            get(read_stream).post(append).delete(delete),
        )
        .layer(DefaultBodyLimit::max(APPEND_BODY_MAX_BYTES))
}

/// An HTTP error answer: a status and a JSON body `{"error": …, …}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": message.into() }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A revision as JSON: the number, or `null` for no stream.
fn revision_json(revision: StreamRevision) -> Value {
    match revision {
        StreamRevision::NoStream => Value::Null,
        StreamRevision::Revision(revision) => json!(revision),
    }
}

fn expected_text(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::Any => "any".into(),
        ExpectedVersion::NoStream => "no-stream".into(),
        ExpectedVersion::StreamExists => "stream-exists".into(),
        ExpectedVersion::Exact(revision) => revision.to_string(),
    }
}

impl From<HistoryError> for ApiError {
    fn from(error: HistoryError) -> Self {
        let message = error.to_string();
        let (status, body) = match error {
            HistoryError::Events(EventsError::Command(CommandError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            })) => (
                StatusCode::CONFLICT,
                json!({
                    "error": message,
                    "stream": stream,
                    "expected_version": expected_text(expected),
                    "actual_revision": revision_json(actual),
                }),
            ),
            HistoryError::Events(EventsError::Command(CommandError::IdempotencyConflict {
                event_id,
                stream,
            })) => (
                StatusCode::CONFLICT,
                json!({ "error": message, "stream": stream, "event_id": event_id }),
            ),
            HistoryError::Events(
                EventsError::Command(CommandError::StreamDeleted { stream })
                | EventsError::Read(ReadError::StreamDeleted { stream }),
            ) => (
                StatusCode::GONE,
                json!({ "error": message, "stream": stream }),
            ),
            // The rest of the command refusals are malformed requests (empty or oversized batch,
            // repeated id, bad stream name), like a revision bound on a read of `$all`.
            HistoryError::Events(
                EventsError::Command(_) | EventsError::Read(ReadError::RevisionBoundOnAll),
            ) => (StatusCode::BAD_REQUEST, json!({ "error": message })),
            HistoryError::Node(NodeError::Uncertain { .. }) => {
                (StatusCode::GATEWAY_TIMEOUT, json!({ "error": message }))
            }
            HistoryError::Node(
                NodeError::NoQuorum { .. } | NodeError::Unavailable(_) | NodeError::Refused(_),
            ) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": message })),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": message }),
            ),
        };
        Self { status, body }
    }
}

/// Refuses the request unless it carries the configured password as a bearer token.
fn authorize(state: &HttpState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(password) = state.config.password.as_deref() else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented == Some(password) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            body: json!({ "error": "a bearer token with the node's password is required" }),
        })
    }
}

/// Parses `any`, `no-stream`, `stream-exists` or a revision number.
pub fn parse_expected_version(text: &str) -> Result<ExpectedVersion, String> {
    match text.trim() {
        "any" => Ok(ExpectedVersion::Any),
        "no-stream" | "no_stream" => Ok(ExpectedVersion::NoStream),
        "stream-exists" | "stream_exists" => Ok(ExpectedVersion::StreamExists),
        number => number.parse().map(ExpectedVersion::Exact).map_err(|_| {
            format!(
                "expected-version {number:?} is not any, no-stream, stream-exists or a revision"
            )
        }),
    }
}

/// One event in an append request.
#[derive(Debug, Deserialize)]
struct NewEvent {
    /// Event id; a fresh one is chosen when absent (then a retry is not recognised).
    id: Option<Uuid>,
    /// Event type.
    #[serde(rename = "type")]
    event_type: String,
    /// Payload (any JSON).
    data: Value,
    /// Metadata (any JSON; `correlation_id` and `causation_id` UUIDs are recognised).
    metadata: Option<Value>,
}

/// An append request body.
#[derive(Debug, Deserialize)]
struct AppendBody {
    events: Vec<NewEvent>,
}

/// Query parameters of an append.
#[derive(Debug, Default, Deserialize)]
struct AppendParams {
    #[serde(rename = "expected-version", alias = "expected_version")]
    expected_version: Option<String>,
}

fn metadata_uuid(metadata: &Value, field: &str) -> Result<Option<Uuid>, ApiError> {
    match metadata.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Uuid::parse_str(text)
            .map(Some)
            .map_err(|error| ApiError::bad_request(format!("metadata.{field}: {error}"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "metadata.{field} must be a UUID string"
        ))),
    }
}

impl NewEvent {
    fn into_event_data(self) -> Result<EventData, ApiError> {
        let data = serde_json::to_vec(&self.data)
            .map_err(|error| ApiError::bad_request(error.to_string()))?;
        let metadata = match &self.metadata {
            None | Some(Value::Null) => Metadata::default(),
            Some(value) => Metadata {
                correlation_id: metadata_uuid(value, "correlation_id")?,
                causation_id: metadata_uuid(value, "causation_id")?,
                custom: serde_json::to_vec(value)
                    .map_err(|error| ApiError::bad_request(error.to_string()))?,
            },
        };
        Ok(EventData {
            event_id: self.id.unwrap_or_else(Uuid::new_v4),
            event_type: self.event_type,
            schema_version: 1,
            content_type: CONTENT_TYPE_JSON.to_owned(),
            data,
            metadata,
        })
    }
}

/// Reads `expected-version` from the header, else the query, else `any`.
fn expected_version(headers: &HeaderMap, query: Option<&str>) -> Result<ExpectedVersion, ApiError> {
    let header_version = headers
        .get("expected-version")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("expected-version is not text"))
        })
        .transpose()?;
    match header_version.or(query) {
        Some(text) => parse_expected_version(text).map_err(ApiError::bad_request),
        None => Ok(ExpectedVersion::Any),
    }
}

/// Query parameters of a delete.
#[derive(Debug, Default, Deserialize)]
struct DeleteParams {
    #[serde(rename = "expected-version", alias = "expected_version")]
    expected_version: Option<String>,
    /// Truncate below this revision instead of tombstoning.
    before_revision: Option<u64>,
}

async fn delete(
    State(state): State<HttpState>,
    Path(stream): Path<String>,
    Query(params): Query<DeleteParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    if let Some(before_revision) = params.before_revision {
        let removed = state
            .handle
            .events_truncate(&stream, before_revision)
            .await?;
        return Ok(Json(json!({
            "stream": stream,
            "truncated_before": before_revision,
            "removed": removed,
        })));
    }
    let expected = expected_version(&headers, params.expected_version.as_deref())?;
    state.handle.events_tombstone(&stream, expected).await?;
    Ok(Json(json!({ "stream": stream, "tombstoned": true })))
}

/// The JSON answer to a successful append.
#[derive(Debug, Serialize)]
struct AppendAnswer {
    stream: String,
    next_expected_revision: u64,
    first_position: u64,
    last_position: u64,
    duplicate: bool,
}

async fn append(
    State(state): State<HttpState>,
    Path(stream): Path<String>,
    Query(params): Query<AppendParams>,
    headers: HeaderMap,
    body: Result<Json<AppendBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AppendAnswer>, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let expected = expected_version(&headers, params.expected_version.as_deref())?;
    let events = body
        .events
        .into_iter()
        .map(NewEvent::into_event_data)
        .collect::<Result<Vec<_>, _>>()?;
    let AppendResult {
        next_expected_revision,
        first_position,
        last_position,
        duplicate,
    } = state
        .handle
        .events_append(&stream, expected, events)
        .await?;
    Ok(Json(AppendAnswer {
        stream,
        next_expected_revision,
        first_position,
        last_position,
        duplicate,
    }))
}

/// Query parameters of a read.
#[derive(Debug, Default, Deserialize)]
struct ReadParams {
    /// First revision (stream) to return.
    from: Option<u64>,
    /// First position (`$all`) to return.
    from_position: Option<u64>,
    /// `forwards` (default) or `backwards`.
    direction: Option<String>,
    /// Most events to return.
    limit: Option<u64>,
    /// See the stream as of this revision.
    as_of_revision: Option<u64>,
    /// See history as of this global position.
    as_of_position: Option<u64>,
    /// See history as of this time (ns since the Unix epoch).
    as_of_time_ns: Option<u64>,
}

impl ReadParams {
    fn range(&self, from: Option<u64>) -> Result<ReadRange, ApiError> {
        let direction = match self.direction.as_deref() {
            None | Some("forwards" | "forward" | "fwd") => Direction::Forwards,
            Some("backwards" | "backward" | "bwd") => Direction::Backwards,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "direction {other:?} is not forwards or backwards"
                )));
            }
        };
        let as_of = match (self.as_of_revision, self.as_of_position, self.as_of_time_ns) {
            (None, None, None) => None,
            (Some(revision), None, None) => Some(AsOf::Revision(revision)),
            (None, Some(position), None) => Some(AsOf::Position(position)),
            // Every event recorded within that nanosecond, whatever its logical counter.
            (None, None, Some(time_ns)) => Some(AsOf::Time(HlcTimestamp::new(time_ns, u32::MAX))),
            _ => {
                return Err(ApiError::bad_request(
                    "give at most one of as_of_revision, as_of_position, as_of_time_ns",
                ));
            }
        };
        Ok(ReadRange {
            direction,
            from,
            max_count: usize::try_from(self.limit.unwrap_or(READ_COUNT_MAX)).unwrap_or(usize::MAX),
            as_of,
        })
    }
}

/// An event as JSON: data and metadata as JSON values when they are JSON, hex otherwise.
pub fn event_json(event: &RecordedEvent) -> Value {
    let data = &event.event.data;
    let is_json = event.event.content_type == CONTENT_TYPE_JSON;
    let (data, data_hex) = match serde_json::from_slice::<Value>(data) {
        Ok(value) if is_json => (value, None),
        _ => (Value::Null, Some(hex(data))),
    };
    let custom = &event.event.metadata.custom;
    let metadata = if custom.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(custom).unwrap_or_else(|_| json!({ "hex": hex(custom) }))
    };
    let mut value = json!({
        "stream": event.stream,
        "revision": event.revision,
        "position": event.position,
        "recorded_at": {
            "wall_ns": event.recorded_at.wall_ns,
            "logical": event.recorded_at.logical,
        },
        "id": event.event.event_id,
        "type": event.event.event_type,
        "schema_version": event.event.schema_version,
        "content_type": event.event.content_type,
        "data": data,
        "metadata": metadata,
        "correlation_id": event.event.metadata.correlation_id,
        "causation_id": event.event.metadata.causation_id,
    });
    if let (Some(hex), Some(object)) = (data_hex, value.as_object_mut()) {
        object.insert("data_hex".into(), Value::String(hex));
    }
    value
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

fn slice_json(slice: &ReadSlice) -> Value {
    json!({
        "events": slice.events.iter().map(event_json).collect::<Vec<_>>(),
        "next": slice.next,
        "head_position": slice.head_position,
    })
}

async fn read_stream(
    State(state): State<HttpState>,
    Path(stream): Path<String>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let range = params.range(params.from)?;
    let slice = state.handle.events_read_stream(&stream, range).await?;
    Ok(Json(slice_json(&slice)))
}

async fn read_all(
    State(state): State<HttpState>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let range = params.range(params.from_position.or(params.from))?;
    let slice = state.handle.events_read_all(range).await?;
    Ok(Json(slice_json(&slice)))
}

/// Query parameters of a subscription.
#[derive(Debug, Default, Deserialize)]
struct SubscribeParams {
    /// First position to send (default: the beginning, or after `Last-Event-ID`).
    from_position: Option<u64>,
}

/// Where a subscription stands between two polls.
struct Cursor {
    state: HttpState,
    /// The next position to ask for.
    position: u64,
    /// Events read but not yet sent.
    pending: std::collections::VecDeque<SseEvent>,
    /// Whether the `caught-up` notice was sent.
    caught_up: bool,
    /// Whether the last poll found nothing new (the next one waits first).
    idle: bool,
    /// The last error reported, so a long outage is reported once, not every poll.
    last_error: Option<String>,
}

impl Cursor {
    /// Reads the next batch after `position` into `pending`; waits a poll interval first when
    /// the previous read found nothing.
    async fn poll(&mut self) {
        if self.idle {
            tokio::time::sleep(Duration::from_millis(SUBSCRIPTION_POLL_MS)).await;
        }
        let range = ReadRange::forwards()
            .from(self.position)
            .max_count(SUBSCRIPTION_BATCH);
        match self.state.handle.events_read_all(range).await {
            Ok(slice) => {
                self.last_error = None;
                self.idle = slice.events.is_empty();
                for event in &slice.events {
                    self.position = event.position + 1;
                    let data = event_json(event).to_string();
                    self.pending.push_back(
                        SseEvent::default()
                            .id(event.position.to_string())
                            .data(data),
                    );
                }
                if slice.next.is_none() && !self.caught_up {
                    self.caught_up = true;
                    let notice = json!({ "head_position": slice.head_position }).to_string();
                    self.pending
                        .push_back(SseEvent::default().event("caught-up").data(notice));
                }
            }
            Err(error) => {
                // A leader change or a partition: say so, and keep polling from the same place.
                self.idle = true;
                let message = match error {
                    // A read has no outcome to be unsure of: it is simply retried.
                    HistoryError::Node(NodeError::Uncertain { reason }) => {
                        format!("no answer from the leader yet ({reason}); retrying")
                    }
                    error => error.to_string(),
                };
                if self.last_error.as_ref() != Some(&message) {
                    let notice = json!({ "error": message }).to_string();
                    self.pending
                        .push_back(SseEvent::default().event("unavailable").data(notice));
                    self.last_error = Some(message);
                }
            }
        }
    }
}

/// The subscription as a stream of SSE events (ends only when the client goes away).
fn subscription(cursor: Cursor) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    futures_util::stream::unfold(cursor, |mut cursor| async move {
        // Each poll either yields events or a notice, or sets `idle` so the next one sleeps.
        loop {
            if let Some(event) = cursor.pending.pop_front() {
                return Some((Ok(event), cursor));
            }
            cursor.poll().await;
        }
    })
}

async fn subscribe(
    State(state): State<HttpState>,
    Query(params): Query<SubscribeParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>, ApiError> {
    authorize(&state, &headers)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|position| position.saturating_add(1));
    // `Last-Event-ID` wins: a browser's EventSource reconnects to the same URL (with its
    // original `from_position`) and adds the id of the last event it received.
    let position = resume.or(params.from_position).unwrap_or(0);
    let cursor = Cursor {
        state,
        position,
        pending: std::collections::VecDeque::new(),
        caught_up: false,
        idle: false,
        last_error: None,
    };
    Ok(Sse::new(subscription(cursor)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions_parse_in_every_mode() {
        assert_eq!(parse_expected_version("any"), Ok(ExpectedVersion::Any));
        assert_eq!(
            parse_expected_version("no-stream"),
            Ok(ExpectedVersion::NoStream)
        );
        assert_eq!(
            parse_expected_version("stream-exists"),
            Ok(ExpectedVersion::StreamExists)
        );
        assert_eq!(
            parse_expected_version(" 41 "),
            Ok(ExpectedVersion::Exact(41))
        );
        assert!(parse_expected_version("-1").is_err());
        assert!(parse_expected_version("latest").is_err());
    }

    #[test]
    fn events_render_json_data_as_json_and_binary_as_hex() {
        let json_event = RecordedEvent {
            stream: "s".into(),
            revision: 3,
            position: 9,
            recorded_at: HlcTimestamp::new(5, 1),
            event: EventData::json("Added", &json!({"sku": "tea"})).expect("json"),
        };
        let value = event_json(&json_event);
        assert_eq!(value["data"], json!({"sku": "tea"}));
        assert_eq!(value["position"], 9);
        assert_eq!(value["type"], "Added");
        assert!(value.get("data_hex").is_none());
        let binary = RecordedEvent {
            event: EventData::binary("Blob", vec![0, 255, 16]),
            ..json_event
        };
        let value = event_json(&binary);
        assert_eq!(value["data"], Value::Null);
        assert_eq!(value["data_hex"], "00ff10");
    }

    #[test]
    fn conflicts_answer_409_with_the_actual_revision() {
        let error =
            HistoryError::Events(EventsError::Command(CommandError::WrongExpectedVersion {
                stream: "s".into(),
                expected: ExpectedVersion::Exact(1),
                actual: StreamRevision::Revision(4),
            }));
        let api = ApiError::from(error);
        assert_eq!(api.status, StatusCode::CONFLICT);
        assert_eq!(api.body["actual_revision"], 4);
        assert_eq!(api.body["expected_version"], "1");
        let none = ApiError::from(HistoryError::Events(EventsError::Command(
            CommandError::WrongExpectedVersion {
                stream: "s".into(),
                expected: ExpectedVersion::StreamExists,
                actual: StreamRevision::NoStream,
            },
        )));
        assert_eq!(none.body["actual_revision"], Value::Null);
        let gone = ApiError::from(HistoryError::Events(EventsError::Read(
            ReadError::StreamDeleted { stream: "s".into() },
        )));
        assert_eq!(gone.status, StatusCode::GONE);
    }

    #[test]
    fn metadata_ids_are_recognised_and_kept() {
        let correlation = Uuid::from_u128(5);
        let event = NewEvent {
            id: None,
            event_type: "T".into(),
            data: json!(1),
            metadata: Some(json!({"correlation_id": correlation.to_string(), "user": "ada"})),
        }
        .into_event_data()
        .expect("valid");
        assert_eq!(event.metadata.correlation_id, Some(correlation));
        assert_eq!(event.metadata.causation_id, None);
        let custom: Value = serde_json::from_slice(&event.metadata.custom).expect("json");
        assert_eq!(custom["user"], "ada");
        let bad = NewEvent {
            id: None,
            event_type: "T".into(),
            data: json!(1),
            metadata: Some(json!({"causation_id": 7})),
        };
        assert!(bad.into_event_data().is_err());
    }
}

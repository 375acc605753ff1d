//! The node's HTTP API: health, status, the whole cluster's view, Prometheus metrics, a key-value
//! API over both keyspaces, and the admin routes that cut and heal links at the transport.
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | `{"status":"ok","node":1,"role":"leader"}`; 503 when the node does not answer |
//! | `GET /v1/status` | this node's status and the peers it cuts off (`cut_links`) |
//! | `GET /cluster` | every node's `/v1/status` (fetched over HTTP; unreachable ones say so) and a summary |
//! | `GET /metrics` | Prometheus text format |
//! | `GET/PUT/DELETE /v1/kv/{key}` | raw value bytes; strong or available by the key's prefix |
//! | `POST /admin/partition` | `{"groups": [[1,2],[3]]}`: cut links to every node outside this one's group |
//! | `POST /admin/heal` | restore every link |
//!
//! When the node has a password, `/v1/*` and `/admin/*` need `Authorization: Bearer <password>`.
//! Errors are JSON `{"error": text}` with the Redis-style text of the failure.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::available::{ApError, ApOperation, ApOutput, SetCondition as ApSetCondition};
use crate::config::NodeConfig;
use crate::handle::{NodeError, NodeHandle};
use crate::metrics::Metrics;
use crate::process::{Mode, NodeStatus};
use crate::strong::{SetCondition, StrongCommand, StrongError, StrongOutput, StrongQuery};

/// Longest `/health` and `/metrics` wait for the node's status before answering without it.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest `/cluster` waits for one peer's `/v1/status`.
const PEER_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Largest `/v1/status` body accepted from a peer.
const PEER_STATUS_BYTES_MAX: usize = 1 << 20;

/// Largest request body (a value for `PUT /v1/kv/{key}`).
pub const BODY_BYTES_MAX: usize = 8 << 20;

/// Header marking a strong read served from this replica's possibly stale state.
pub const STALE_HEADER: &str = "x-concur-stale";

/// Header naming the keyspace a `/v1/kv` request went to (`strong` or `available`).
pub const MODE_HEADER: &str = "x-concur-mode";

/// Content type of `/metrics` (the Prometheus text exposition format).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What every HTTP handler shares.
#[derive(Clone)]
pub struct HttpState {
    /// The running node.
    pub handle: NodeHandle,
    /// The node's configuration (addresses of every node, password).
    pub config: Arc<NodeConfig>,
    /// Counters recorded by the Redis server, rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// Serves the HTTP API on `listener` until the task is dropped or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, state: HttpState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Every route of the HTTP API, with `state` applied.
pub fn router(state: HttpState) -> Router {
    let protected = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/kv/{key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/admin/partition", post(partition))
        .route("/admin/heal", post(heal))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(health))
        .route("/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .merge(protected)
        .merge(crate::http_events::routes())
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// An error answer: a status code and `{"error": text}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> Self {
        let status = match &error {
            NodeError::NoQuorum { .. }
            | NodeError::Unavailable(_)
            | NodeError::Uncertain { .. }
            | NodeError::Refused(_) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Strong(StrongError::WrongType)
            | NodeError::Available(ApError::WrongType) => StatusCode::CONFLICT,
            NodeError::Strong(_) | NodeError::Available(_) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.to_string())
    }
}

/// Lets a request through when the node has no password or the request bears it.
async fn authorize(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let Some(password) = state.config.password.as_deref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented.is_some_and(|presented| same_secret(presented.as_bytes(), password.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "a bearer token with the node's password is required",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares secrets in time that depends only on their lengths, not on where they differ.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// The node's status, or `None` when it does not answer within [`STATUS_TIMEOUT`].
async fn quick_status(handle: &NodeHandle) -> Result<NodeStatus, String> {
    match tokio::time::timeout(STATUS_TIMEOUT, handle.status()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the node did not answer in time".to_string()),
    }
}

async fn health(State(state): State<HttpState>) -> Response {
    let node = state.handle.node();
    match quick_status(&state.handle).await {
        Ok(status) => Json(json!({
            "status": "ok",
            "node": node,
            "role": status.role,
            "leader": status.leader,
            "term": status.term,
        }))
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "node": node, "error": error })),
        )
            .into_response(),
    }
}

/// This node's status as JSON, with the peers it cuts off.
async fn status_json(state: &HttpState) -> Result<Value, ApiError> {
    let status = quick_status(&state.handle)
        .await
        .map_err(|error| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error))?;
    let mut value = serde_json::to_value(&status)
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    let cut: Vec<u64> = state.handle.links().cut_peers().into_iter().collect();
    if let Some(object) = value.as_object_mut() {
        object.insert("cut_links".to_string(), json!(cut));
    }
    Ok(value)
}

async fn status(State(state): State<HttpState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_json(&state).await?))
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let status = quick_status(&state.handle).await.ok();
    let text = state.metrics.render(status.as_ref());
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}

/// `GET /cluster`: every node's view, fetched in parallel, and what they add up to.
async fn cluster(State(state): State<HttpState>) -> Json<Value> {
    let this = state.config.id;
    let password = state.config.password.clone();
    let fetches = state.config.nodes.iter().map(|node| {
        let state = state.clone();
        let password = password.clone();
        let node = *node;
        async move {
            let answer = if node.id == this {
                status_json(&state).await.map_err(|error| error.message)
            } else {
                fetch_status(node.http, password.as_deref()).await
            };
            let mut entry = match answer {
                Ok(value) => value,
                Err(error) => json!({ "node": node.id, "error": error }),
            };
            if let Some(object) = entry.as_object_mut() {
                object.insert(
                    "reachable".to_string(),
                    json!(!object.contains_key("error")),
                );
                object.insert("http".to_string(), json!(node.http.to_string()));
                object.insert("redis".to_string(), json!(node.redis.to_string()));
            }
            entry
        }
    });
    let nodes: Vec<Value> = futures_util::future::join_all(fetches).await;
    Json(summarise(this, nodes))
}

/// The cluster summary around the per-node entries: highest term, its leader, links seen cut.
fn summarise(this: u64, nodes: Vec<Value>) -> Value {
    let reachable: Vec<&Value> = nodes
        .iter()
        .filter(|node| node["reachable"] == json!(true))
        .collect();
    let term = reachable
        .iter()
        .filter_map(|node| node["term"].as_u64())
        .max();
    // The leader is the one believed in at the highest term (older terms' leaders are stale).
    let leader = reachable
        .iter()
        .filter(|node| node["term"].as_u64() == term)
        .find_map(|node| node["leader"].as_u64());
    let mut cut_links = BTreeSet::new();
    for node in &reachable {
        let Some(id) = node["node"].as_u64() else {
            continue;
        };
        for peer in node["cut_links"].as_array().into_iter().flatten() {
            if let Some(peer) = peer.as_u64() {
                cut_links.insert((id.min(peer), id.max(peer)));
            }
        }
    }
    let unreachable: Vec<&Value> = nodes
        .iter()
        .filter(|node| node["reachable"] != json!(true))
        .map(|node| &node["node"])
        .collect();
    let strong_keys: Vec<Value> = nodes
        .iter()
        .map(|node| node["strong_keys"].clone())
        .collect();
    let available_keys: Vec<Value> = nodes
        .iter()
        .map(|node| node["available"]["keys"].clone())
        .collect();
    json!({
        "answered_by": this,
        "term": term,
        "leader": leader,
        "partitions_seen": cut_links.into_iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
        "unreachable": unreachable,
        "keyspaces": {
            "strong": { "keys_per_node": strong_keys },
            "available": { "keys_per_node": available_keys },
        },
        "nodes": nodes,
    })
}

/// A peer's `/v1/status`, over plain HTTP/1.1 with [`PEER_TIMEOUT`].
async fn fetch_status(address: SocketAddr, password: Option<&str>) -> Result<Value, String> {
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|error| format!("cannot connect: {error}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| error.to_string())?;
        let connection = tokio::spawn(connection);
        let mut request = hyper::Request::get("/v1/status")
            .header(header::HOST, address.to_string())
            .header(header::ACCEPT, "application/json");
        if let Some(password) = password {
            request = request.header(header::AUTHORIZATION, format!("Bearer {password}"));
        }
        let request = request
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), PEER_STATUS_BYTES_MAX)
            .collect()
            .await
            .map_err(|error| error.to_string())?
            .to_bytes();
        connection.abort();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("answered {status}: {}", text.trim()));
        }
        serde_json::from_slice(&body).map_err(|error| format!("unreadable status: {error}"))
    };
    match tokio::time::timeout(PEER_TIMEOUT, fetch).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {} ms", PEER_TIMEOUT.as_millis())),
    }
}

/// Query of `GET /v1/kv/{key}`.
#[derive(Debug, Default, Deserialize)]
struct ReadOptions {
    /// Allow a strong read from this replica without confirming leadership.
    #[serde(default)]
    stale: bool,
}

/// Finishes a `/v1/kv` answer: adds the `x-concur-mode` header and records the request in the
/// metrics as command `http.<verb>` (a 404 is a successful read).
fn finish(
    state: &HttpState,
    verb: &str,
    mode: Mode,
    started: Instant,
    answer: Response,
) -> Response {
    let mut answer = answer;
    answer
        .headers_mut()
        .insert(MODE_HEADER, HeaderValue::from_static(mode.name()));
    let ok = answer.status().is_success() || answer.status() == StatusCode::NOT_FOUND;
    state
        .metrics
        .record(verb, Some(mode), ok, started.elapsed());
    answer
}

fn value_response(value: Vec<u8>, stale: bool) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if stale {
        headers.insert(STALE_HEADER, HeaderValue::from_static("true"));
    }
    (headers, value).into_response()
}

fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no such key").into_response()
}

fn unexpected(output: impl std::fmt::Debug) -> Response {
    let message = format!("unexpected answer from the keyspace: {output:?}");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

async fn kv_get(
    State(state): State<HttpState>,
    Path(key): Path<String>,
    Query(options): Query<ReadOptions>,
) -> Response {
    let started = Instant::now();
    let key = key.into_bytes();
    let mode = Mode::of(&key);
    let answer = match mode {
        Mode::Strong => match state
            .handle
            .strong_read(StrongQuery::Get(key), options.stale)
            .await
        {
            Ok((StrongOutput::Bulk(value), stale)) => value_response(value, stale),
            Ok((StrongOutput::Nil, _)) => not_found(),
            Ok((other, _)) => unexpected(other),
            Err(error) => ApiError::from(error).into_response(),
        },
        Mode::Available => match state.handle.available(ApOperation::Get(key)).await {
            Ok(ApOutput::Bulk(value)) => value_response(value, false),
            Ok(ApOutput::Nil) => not_found(),
            Ok(other) => unexpected(other),
            Err(error) => ApiError::from(error).into_response(),
        },
    };
    finish(&state, "http.get", mode, started, answer)
}

async fn kv_put(State(state): State<HttpState>, Path(key): Path<String>, body: Bytes) -> Response {
    let started = Instant::now();
    let key = key.into_bytes();
    let mode = Mode::of(&key);
    let value = body.to_vec();
    let answer = match mode {
        Mode::Strong => state
            .handle
            .strong_write(StrongCommand::Set {
                key,
                value,
                condition: SetCondition::Always,
                get: false,
            })
            .await
            .map(|output| matches!(output, StrongOutput::Ok)),
        Mode::Available => state
            .handle
            .available(ApOperation::Set {
                key,
                value,
                condition: ApSetCondition::Always,
                get: false,
            })
            .await
            .map(|output| matches!(output, ApOutput::Ok)),
    };
    let answer = match answer {
        Ok(true) => Json(json!({ "ok": true, "mode": mode.name() })).into_response(),
        Ok(false) => unexpected("SET did not answer OK"),
        Err(error) => ApiError::from(error).into_response(),
    };
    finish(&state, "http.put", mode, started, answer)
}

async fn kv_delete(State(state): State<HttpState>, Path(key): Path<String>) -> Response {
    let started = Instant::now();
    let key = key.into_bytes();
    let mode = Mode::of(&key);
    let deleted = match mode {
        Mode::Strong => match state
            .handle
            .strong_write(StrongCommand::Del(vec![key]))
            .await
        {
            Ok(StrongOutput::Integer(deleted)) => Ok(deleted),
            Ok(other) => return finish(&state, "http.delete", mode, started, unexpected(other)),
            Err(error) => Err(error),
        },
        Mode::Available => match state.handle.available(ApOperation::Del(vec![key])).await {
            Ok(ApOutput::Integer(deleted)) => Ok(deleted),
            Ok(other) => return finish(&state, "http.delete", mode, started, unexpected(other)),
            Err(error) => Err(error),
        },
    };
    let answer = match deleted {
        Ok(deleted) => Json(json!({ "deleted": deleted, "mode": mode.name() })).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    };
    finish(&state, "http.delete", mode, started, answer)
}

/// Body of `POST /admin/partition`.
#[derive(Debug, Deserialize)]
struct PartitionRequest {
    /// Groups of node ids that can still talk among themselves.
    groups: Vec<Vec<u64>>,
}

/// The peers node `this` must cut for `groups`: every node outside its own group (all of them
/// when it is in none). Fails on unknown or repeated ids.
pub fn peers_to_cut(this: u64, nodes: &[u64], groups: &[Vec<u64>]) -> Result<Vec<u64>, String> {
    let mut seen = BTreeSet::new();
    for node in groups.iter().flatten() {
        if !nodes.contains(node) {
            return Err(format!("unknown node n{node}; the cluster has {nodes:?}"));
        }
        if !seen.insert(*node) {
            return Err(format!("n{node} is in two groups"));
        }
    }
    let own = groups.iter().find(|group| group.contains(&this));
    Ok(nodes
        .iter()
        .copied()
        .filter(|&peer| peer != this && !own.is_some_and(|group| group.contains(&peer)))
        .collect())
}

/// `{"node": this, "cut": [...]}`: the links this node cuts now.
fn cut_answer(state: &HttpState) -> Json<Value> {
    let cut: Vec<u64> = state.handle.links().cut_peers().into_iter().collect();
    Json(json!({ "node": state.config.id, "cut": cut }))
}

async fn partition(State(state): State<HttpState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    // Parsed by hand rather than by the `Json` extractor so every bad body is a JSON 400.
    let request: PartitionRequest = serde_json::from_slice(&body).map_err(|error| {
        let message = format!("expected {{\"groups\": [[1, 2], [3]]}}: {error}");
        ApiError::new(StatusCode::BAD_REQUEST, message)
    })?;
    let peers = peers_to_cut(state.config.id, &state.config.ids(), &request.groups)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, error))?;
    // A partition replaces the previous one rather than adding to it.
    let links = state.handle.links();
    links.heal();
    links.cut(peers.iter().copied());
    tracing::warn!(node = state.config.id, cut = ?peers, "links cut by an operator");
    Ok(cut_answer(&state))
}

async fn heal(State(state): State<HttpState>) -> Json<Value> {
    state.handle.links().heal();
    tracing::warn!(node = state.config.id, "links healed by an operator");
    cut_answer(&state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_cuts_everyone_outside_its_group() {
        let nodes = [1, 2, 3];
        let groups = vec![vec![1, 2], vec![3]];
        assert_eq!(peers_to_cut(1, &nodes, &groups).unwrap(), vec![3]);
        assert_eq!(peers_to_cut(2, &nodes, &groups).unwrap(), vec![3]);
        assert_eq!(peers_to_cut(3, &nodes, &groups).unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_node_in_no_group_is_isolated() {
        let nodes = [1, 2, 3, 4, 5];
        let groups = vec![vec![1, 2]];
        assert_eq!(peers_to_cut(4, &nodes, &groups).unwrap(), vec![1, 2, 3, 5]);
        assert_eq!(peers_to_cut(1, &nodes, &groups).unwrap(), vec![3, 4, 5]);
    }

    #[test]
    fn unknown_and_repeated_nodes_are_refused() {
        let nodes = [1, 2, 3];
        let unknown = peers_to_cut(1, &nodes, &[vec![1, 7]]).unwrap_err();
        assert!(unknown.contains("unknown node n7"), "{unknown}");
        let twice = peers_to_cut(1, &nodes, &[vec![1, 2], vec![2]]).unwrap_err();
        assert!(twice.contains("n2 is in two groups"), "{twice}");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"hunter2", b"hunter2"));
        assert!(!same_secret(b"hunter3", b"hunter2"));
        assert!(!same_secret(b"hunter", b"hunter2"));
        assert!(!same_secret(b"", b"x"));
    }

    #[test]
    fn node_errors_map_to_http_statuses() {
        let status = |error: NodeError| ApiError::from(error).status;
        assert_eq!(
            status(NodeError::NoQuorum { leader: Some(2) }),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(NodeError::Unavailable("stopping".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(NodeError::Uncertain {
                reason: "lost leader".into()
            }),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(NodeError::Strong(StrongError::WrongType)),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(NodeError::Available(ApError::WrongType)),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(NodeError::Strong(StrongError::NotAnInteger)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(NodeError::Available(ApError::Overflow)),
            StatusCode::BAD_REQUEST
        );
        let message = ApiError::from(NodeError::NoQuorum { leader: Some(2) }).message;
        assert!(
            message.starts_with("NOQUORUM") && message.contains("n2"),
            "{message}"
        );
    }

    #[test]
    fn the_summary_takes_the_leader_of_the_highest_term_and_pairs_cut_links() {
        let nodes = vec![
            json!({"node": 1, "reachable": true, "term": 3, "leader": 1, "cut_links": [3],
                   "strong_keys": 4, "available": {"keys": 2}}),
            json!({"node": 2, "reachable": true, "term": 4, "leader": 2, "cut_links": [],
                   "strong_keys": 4, "available": {"keys": 2}}),
            json!({"node": 3, "reachable": false, "error": "cannot connect"}),
        ];
        let summary = summarise(1, nodes);
        assert_eq!(summary["term"], json!(4));
        assert_eq!(summary["leader"], json!(2));
        assert_eq!(summary["partitions_seen"], json!([[1, 3]]));
        assert_eq!(summary["unreachable"], json!([3]));
        assert_eq!(
            summary["keyspaces"]["strong"]["keys_per_node"],
            json!([4, 4, null])
        );
        assert_eq!(summary["nodes"].as_array().map(Vec::len), Some(3));
    }
}

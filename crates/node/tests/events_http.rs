//! The event store's HTTP endpoints against a real node: a 1-node `daemon::run` on loopback (real
//! sockets, Raft on a real disk in a temporary directory), driven with a blocking HTTP client the
//! way `curl` or `concur events` would: append with every expected-version mode, conflicts (409
//! naming the actual revision), idempotent retries, stream and `$all` reads with paging and time
//! travel, and a server-sent-events subscription that catches up, goes live and resumes.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use node::config::NodeConfig;
use serde_json::{Value, json};

/// Longest the test waits for the node to serve or for an event to arrive.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A base port whose Redis, HTTP and peer ports are free now (tests of this binary run in
/// parallel, so each call tries a different candidate; the range differs from other test files).
fn free_base_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first = 31_000 + (std::process::id() % 40) as u16 * 200;
    for _ in 0..200 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 200;
        let base = first.wrapping_add(offset * 7) % 30_000 + 10_000;
        let free = [0, 1_000, 2_000]
            .iter()
            .all(|lane| TcpListener::bind(("127.0.0.1", base + lane + 1)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free base port found");
}

/// One running node; stops it when dropped.
struct Node {
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), node::daemon::DaemonError>>>,
    http: SocketAddr,
    password: Option<String>,
    agent: ureq::Agent,
    _data: tempfile::TempDir,
}

impl Node {
    fn start(password: Option<&str>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let data = tempfile::tempdir().expect("temporary directory");
        let mut config = NodeConfig::local(1, 1, free_base_port(), data.path(), "events key")
            .expect("local configuration");
        config.password = password.map(str::to_owned);
        let http = config.this().http;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(node::daemon::run(config, async move {
            let _ = stopped.await;
        }));
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .http_status_as_error(false)
            .build()
            .into();
        let node = Self {
            runtime,
            stop: Some(stop),
            task: Some(task),
            http,
            password: password.map(str::to_owned),
            agent,
            _data: data,
        };
        node.wait_until("the node to serve HTTP", || {
            TcpStream::connect(node.http).is_ok()
        });
        // The single node elects itself; until then appends answer 503.
        node.wait_until("the node to accept reads", || {
            node.get("/v1/events?limit=1").0 == 200
        });
        node
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < SETTLE_TIMEOUT,
                "gave up waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> (u16, Value) {
        let mut response = response.expect("the node answers");
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut request = self.agent.get(self.url(path));
        if let Some(password) = &self.password {
            request = request.header("authorization", format!("Bearer {password}"));
        }
        self.finish(request.call())
    }

    fn delete(&self, path: &str, expected: Option<&str>) -> (u16, Value) {
        let mut request = self.agent.delete(self.url(path));
        if let Some(expected) = expected {
            request = request.header("expected-version", expected);
        }
        self.finish(request.call())
    }

    /// Appends `events` to `stream` with an `expected-version` header when given.
    fn append(&self, stream: &str, expected: Option<&str>, events: Value) -> (u16, Value) {
        let mut request = self
            .agent
            .post(self.url(&format!("/v1/events/{stream}")))
            .header("content-type", "application/json");
        if let Some(expected) = expected {
            request = request.header("expected-version", expected);
        }
        if let Some(password) = &self.password {
            request = request.header("authorization", format!("Bearer {password}"));
        }
        self.finish(request.send(json!({ "events": events }).to_string()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(15), task).await });
        }
    }
}

fn types(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .expect("an events array")
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn append_with_expected_versions_conflicts_retries_and_reads() {
    let node = Node::start(None);
    let created = json!([
        {"type": "CartCreated", "data": {"customer": "ada"}, "metadata": {"user": "ada"}},
        {"type": "ItemAdded", "data": {"sku": "tea", "quantity": 2}},
    ]);
    let (status, body) = node.append("cart-1", Some("no-stream"), created);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["next_expected_revision"], 1);
    assert_eq!(
        (
            body["first_position"].clone(),
            body["last_position"].clone()
        ),
        (json!(0), json!(1))
    );

    // A stale writer is told the actual revision.
    let stale = json!([{"type": "ItemAdded", "data": {"sku": "cake"}}]);
    let (status, body) = node.append("cart-1", Some("0"), stale.clone());
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["actual_revision"], 1);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("actual revision 1")
    );
    let (status, body) = node.append("cart-1", Some("no-stream"), stale.clone());
    assert_eq!((status, body["actual_revision"].clone()), (409, json!(1)));
    let (status, body) = node.append("cart-2", Some("stream-exists"), stale.clone());
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["actual_revision"], Value::Null, "no stream yet");
    let (status, _) = node.append("cart-1", Some("latest"), stale);
    assert_eq!(status, 400, "an unknown expected-version is a bad request");

    // An append with an id, retried: written once, and the retry answers like the original.
    let id = "5b0e4c1e-8c4a-4a53-9d0e-3f1c2b7a9e01";
    let paid = json!([{"id": id, "type": "CartCheckedOut", "data": {"total": 7}}]);
    let (status, first) = node.append("cart-1", Some("1"), paid.clone());
    assert_eq!((status, first["duplicate"].clone()), (200, json!(false)));
    let (status, retry) = node.append("cart-1", Some("1"), paid);
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["last_position"], first["last_position"]);
    // The query parameter works as well as the header.
    let (status, body) = node.append(
        "audit?expected-version=no-stream",
        None,
        json!([{"type": "Audited", "data": null}]),
    );
    assert_eq!((status, body["first_position"].clone()), (200, json!(3)));

    // Reads: forwards, backwards, paged, as of a revision.
    let (status, body) = node.get("/v1/events/cart-1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(types(&body), ["CartCreated", "ItemAdded", "CartCheckedOut"]);
    assert_eq!(body["events"][0]["data"], json!({"customer": "ada"}));
    assert_eq!(body["events"][0]["metadata"], json!({"user": "ada"}));
    assert_eq!(body["events"][2]["id"], id);
    assert_eq!(body["next"], Value::Null);
    let (_, body) = node.get("/v1/events/cart-1?direction=backwards&limit=1");
    assert_eq!(types(&body), ["CartCheckedOut"]);
    assert_eq!(body["next"], 1);
    let (_, body) = node.get("/v1/events/cart-1?from=1&limit=1");
    assert_eq!(types(&body), ["ItemAdded"]);
    let (_, body) = node.get("/v1/events/cart-1?as_of_revision=0");
    assert_eq!(types(&body), ["CartCreated"]);
    let recorded_ns = body["events"][0]["recorded_at"]["wall_ns"]
        .as_u64()
        .unwrap();
    let (_, body) = node.get(&format!("/v1/events/cart-1?as_of_time_ns={recorded_ns}"));
    assert_eq!(types(&body)[..2], ["CartCreated", "ItemAdded"]);
    let (_, body) = node.get("/v1/events?from_position=1&limit=2");
    assert_eq!(types(&body), ["ItemAdded", "CartCheckedOut"]);
    assert_eq!(
        (body["next"].clone(), body["head_position"].clone()),
        (json!(3), json!(4))
    );
    let (_, body) = node.get("/v1/events?direction=backwards&limit=1");
    assert_eq!(types(&body), ["Audited"]);
    let (status, body) = node.get("/v1/events/never-written");
    assert_eq!((status, types(&body).len()), (200, 0));
    let (status, _) = node.get("/v1/events?direction=sideways");
    assert_eq!(status, 400);

    // Deletion: truncate below a revision, then tombstone with an expected version.
    let (status, body) = node.delete("/v1/events/cart-1?before_revision=2", None);
    assert_eq!((status, body["removed"].clone()), (200, json!(2)), "{body}");
    let (_, body) = node.get("/v1/events/cart-1");
    assert_eq!(types(&body), ["CartCheckedOut"]);
    let (status, body) = node.delete("/v1/events/cart-1", Some("0"));
    assert_eq!((status, body["actual_revision"].clone()), (409, json!(2)));
    let (status, _) = node.delete("/v1/events/cart-1", Some("2"));
    assert_eq!(status, 200);
    assert_eq!(
        node.get("/v1/events/cart-1").0,
        410,
        "a tombstoned stream is gone"
    );
    let again = json!([{"type": "ItemAdded", "data": {}}]);
    assert_eq!(node.append("cart-1", None, again).0, 410);
    // Positions stay gapless: $all keeps going from where it was.
    let (_, body) = node.get("/v1/events");
    assert_eq!(types(&body), ["Audited"]);
    assert_eq!(body["head_position"], 4);
}

/// Reads server-sent events from `/v1/events/subscribe` on a thread, sending each complete
/// message (`id`, `event`, `data`) down a channel.
fn subscribe(
    node: &Node,
    query: &str,
    last_event_id: Option<&str>,
) -> mpsc::Receiver<(Option<String>, String, String)> {
    let mut request = node
        .agent
        .get(node.url(&format!("/v1/events/subscribe{query}")))
        .config()
        .timeout_global(Some(SETTLE_TIMEOUT))
        .build();
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.call().expect("subscribe");
    assert_eq!(response.status().as_u16(), 200);
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(response.into_body().into_reader());
        let (mut id, mut event, mut data) = (None, String::new(), String::new());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line.is_empty() {
                if !data.is_empty() {
                    let message = (
                        id.take(),
                        std::mem::take(&mut event),
                        std::mem::take(&mut data),
                    );
                    if sender.send(message).is_err() {
                        return;
                    }
                }
                continue;
            }
            if let Some(value) = line.strip_prefix("id:") {
                id = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("event:") {
                event = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
        }
    });
    receiver
}

fn next_message(
    receiver: &mpsc::Receiver<(Option<String>, String, String)>,
) -> (Option<String>, String, Value) {
    let (id, event, data) = receiver
        .recv_timeout(SETTLE_TIMEOUT)
        .expect("a server-sent event in time");
    (id, event, serde_json::from_str(&data).expect("JSON data"))
}

#[test]
fn subscriptions_catch_up_then_go_live_and_resume_after_the_last_id() {
    let node = Node::start(None);
    for index in 0..3 {
        let event = json!([{"type": format!("Past{index}"), "data": {"index": index}}]);
        assert_eq!(node.append("s", None, event).0, 200);
    }
    let live = subscribe(&node, "?from_position=1", None);
    for position in 1..3 {
        let (id, event, data) = next_message(&live);
        assert_eq!(event, "", "a plain message");
        assert_eq!(id, Some(position.to_string()), "the SSE id is the position");
        assert_eq!(data["position"], position);
        assert_eq!(data["type"], format!("Past{position}"));
    }
    let (_, event, data) = next_message(&live);
    assert_eq!(event, "caught-up");
    assert_eq!(data["head_position"], 3);
    // Live: appended after the subscriber caught up.
    assert_eq!(
        node.append("t", None, json!([{"type": "Live", "data": 1}]))
            .0,
        200
    );
    let (id, _, data) = next_message(&live);
    assert_eq!(
        (id.as_deref(), data["type"].clone()),
        (Some("3"), json!("Live"))
    );

    // A client that saw id 1 resumes from position 2, even reconnecting to its original URL
    // (as a browser's EventSource does).
    let resumed = subscribe(&node, "?from_position=0", Some("1"));
    let (id, _, data) = next_message(&resumed);
    assert_eq!(
        (id.as_deref(), data["type"].clone()),
        (Some("2"), json!("Past2"))
    );
}

#[test]
fn a_node_with_a_password_refuses_events_requests_without_it() {
    let mut node = Node::start(Some("sesame"));
    let (status, _) = node.append("s", None, json!([{"type": "T", "data": 1}]));
    assert_eq!(status, 200, "with the bearer token");
    node.password = None;
    let (status, _) = node.append("s", None, json!([{"type": "T", "data": 2}]));
    assert_eq!(status, 401);
    assert_eq!(node.get("/v1/events/s").0, 401);
    assert_eq!(node.get("/v1/events").0, 401);
    assert_eq!(node.get("/v1/events/subscribe").0, 401);
}

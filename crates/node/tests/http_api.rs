//! The HTTP API against real nodes on loopback: each test starts one or three `daemon::run` nodes
//! on its own tokio runtime (real sockets, real disk in a temporary directory) and talks to them
//! with a blocking HTTP client, as `curl` or `concur partition` would.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use node::config::NodeConfig;
use serde_json::{Value, json};

/// Longest any test waits for the cluster to reach a state (a leader, a converged key).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running cluster; stops its nodes when dropped.
struct Cluster {
    runtime: tokio::runtime::Runtime,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), node::daemon::DaemonError>>>,
    configs: Vec<NodeConfig>,
    agent: ureq::Agent,
    _data: tempfile::TempDir,
}

/// A base port whose Redis, HTTP and peer ports for `nodes` nodes are all free now. Tests of one
/// binary run in parallel, so each call starts from a different candidate.
fn free_base_port(nodes: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Bases from 10 000 to 30 000 keep every port (up to base + 2 000 + nodes) below Linux's
    // ephemeral range (32 768 and up), where outgoing connections could take one meanwhile.
    let first = (std::process::id() % 1_000) as u16 * 20;
    for _ in 0..200 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 1_000;
        let base = 10_000 + (first + offset * 20) % 20_000;
        let free = (1..=nodes).all(|id| {
            [0, 1_000, 2_000]
                .iter()
                .all(|lane| TcpListener::bind(("127.0.0.1", base + lane + id)).is_ok())
        });
        if free {
            return base;
        }
    }
    panic!("no free base port found for {nodes} nodes");
}

impl Cluster {
    /// Starts nodes `running` of a cluster of `nodes` (the others stay down).
    fn start(nodes: u64, running: &[u64], password: Option<&str>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let base = free_base_port(nodes as u16);
        let configs: Vec<NodeConfig> = (1..=nodes)
            .map(|id| {
                let mut config =
                    NodeConfig::local(id, nodes, base, data.path(), "http test key").unwrap();
                config.password = password.map(str::to_string);
                config
            })
            .collect();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        for id in running {
            let config = configs[*id as usize - 1].clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let shutdown = async move {
                let _ = stopped.await;
            };
            tasks.push(runtime.spawn(node::daemon::run(config, shutdown)));
            stops.push(stop);
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .http_status_as_error(false)
            .build()
            .into();
        let cluster = Self {
            runtime,
            stops,
            tasks,
            configs,
            agent,
            _data: data,
        };
        for id in running {
            cluster.wait_until(&format!("n{id} to serve HTTP"), || {
                TcpStream::connect(cluster.http(*id)).is_ok()
            });
        }
        cluster
    }

    fn http(&self, id: u64) -> SocketAddr {
        self.configs[id as usize - 1].this().http
    }

    fn redis(&self, id: u64) -> SocketAddr {
        self.configs[id as usize - 1].this().redis
    }

    fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}{path}", self.http(id))
    }

    /// Polls `done` until it holds, panicking after [`SETTLE_TIMEOUT`].
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

    /// The leader reported by node `id`'s `/health`, once it reports itself or another as leader.
    fn wait_for_leader(&self, ids: &[u64]) -> u64 {
        let mut leader = 0;
        self.wait_until("a leader", || {
            ids.iter().any(|&id| {
                let (status, body) = self.get_json(id, "/health", None);
                if status == 200 && body["role"] == json!("leader") {
                    leader = id;
                    return true;
                }
                false
            })
        });
        leader
    }

    fn request(
        &self,
        method: &str,
        id: u64,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, BTreeMap<String, String>, Vec<u8>) {
        let url = self.url(id, path);
        let authorization = token.map(|token| format!("Bearer {token}"));
        let result = match method {
            "GET" | "DELETE" => {
                let mut request = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(authorization) = &authorization {
                    request = request.header("authorization", authorization);
                }
                request.call()
            }
            _ => {
                let mut request = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                if let Some(authorization) = &authorization {
                    request = request.header("authorization", authorization);
                }
                request
                    .header("content-type", "application/json")
                    .send(body.unwrap_or_default())
            }
        };
        let mut response = result.unwrap_or_else(|error| panic!("{method} {url}: {error}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = value.to_str().unwrap_or_default().to_string();
                (name.as_str().to_string(), value)
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .unwrap();
        (status, headers, body)
    }

    fn get_json(&self, id: u64, path: &str, token: Option<&str>) -> (u16, Value) {
        let (status, _, body) = self.request("GET", id, path, token, None);
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn post_json(&self, id: u64, path: &str, body: &Value) -> (u16, Value) {
        let text = body.to_string();
        let (status, _, body) = self.request("POST", id, path, None, Some(text.as_bytes()));
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn put(&self, id: u64, key: &str, value: &[u8]) -> (u16, Value) {
        let path = format!("/v1/kv/{key}");
        let (status, _, body) = self.request("PUT", id, &path, None, Some(value));
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// `GET /v1/kv/{key}`: status and raw body.
    fn get(&self, id: u64, key: &str) -> (u16, Vec<u8>) {
        let (status, _, body) = self.request("GET", id, &format!("/v1/kv/{key}"), None, None);
        (status, body)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        let tasks: Vec<_> = self.tasks.drain(..).collect();
        self.runtime.block_on(async {
            for task in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
            }
        });
    }
}

/// Sends one RESP command to a node's Redis port and returns the raw reply line.
fn redis_command(address: SocketAddr, words: &[&str]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut command = format!("*{}\r\n", words.len());
    for word in words {
        command.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    stream.write_all(command.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "connection closed mid-reply"
        );
        reply.push(byte[0]);
    }
    String::from_utf8_lossy(&reply).trim_end().to_string()
}

/// Checks `text` is in the Prometheus text format: every sample belongs to a family declared by
/// a `# TYPE` line, names and labels are well formed, values parse, histogram buckets rise.
/// Returns every sample as `name{labels}` → value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut last_bucket: Option<(String, f64)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .expect("TYPE line has a name and a type");
            assert!(valid_name(name), "bad metric name {name:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} twice"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            value => value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').expect("labels close")),
            None => (series, ""),
        };
        assert!(valid_name(name), "bad metric name in {line:?}");
        for label in labels.split("\",").filter(|label| !label.is_empty()) {
            let (label, value) = label.split_once("=\"").expect("label=\"value\"");
            assert!(valid_name(label), "bad label name in {line:?}");
            assert!(!value.trim_end_matches('"').contains('\n'));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|family| types.get(*family).is_some_and(|kind| kind == "histogram"))
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "{name} has no TYPE line before it"
        );
        if name.ends_with("_bucket") {
            let (without_le, _) = series.rsplit_once(",le=").expect("a bucket has le");
            if let Some((previous, count)) = &last_bucket
                && previous == without_le
            {
                assert!(value >= *count, "buckets fall in {line:?}");
            }
            last_bucket = Some((without_le.to_string(), value));
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn kv_round_trips_through_both_keyspaces() {
    let cluster = Cluster::start(1, &[1], None);
    cluster.wait_for_leader(&[1]);

    for (key, mode) in [("greeting", "strong"), ("ap:greeting", "available")] {
        let (status, body) = cluster.put(1, key, b"hello");
        assert_eq!((status, &body["mode"]), (200, &json!(mode)), "{body}");
        let (status, headers, value) =
            cluster.request("GET", 1, &format!("/v1/kv/{key}"), None, None);
        assert_eq!((status, value.as_slice()), (200, &b"hello"[..]));
        assert_eq!(headers.get("x-concur-mode").map(String::as_str), Some(mode));
        assert!(!headers.contains_key("x-concur-stale"));
        // Values are raw bytes, not text.
        let binary = [0u8, 159, 146, 150, 255];
        assert_eq!(cluster.put(1, key, &binary).0, 200);
        assert_eq!(cluster.get(1, key), (200, binary.to_vec()));
        let (status, _, body) = cluster.request("DELETE", 1, &format!("/v1/kv/{key}"), None, None);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, &body["deleted"]), (200, &json!(1)));
        let (status, body) = cluster.get(1, key);
        assert_eq!(status, 404);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"].is_string());
        let (status, _, body) = cluster.request("DELETE", 1, &format!("/v1/kv/{key}"), None, None);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, &body["deleted"]), (200, &json!(0)));
    }

    // A stale read is allowed on request and says so.
    assert_eq!(cluster.put(1, "colour", b"blue").0, 200);
    let (status, headers, value) =
        cluster.request("GET", 1, "/v1/kv/colour?stale=true", None, None);
    assert_eq!((status, value.as_slice()), (200, &b"blue"[..]));
    assert_eq!(
        headers.get("x-concur-stale").map(String::as_str),
        Some("true")
    );

    // A key of another type (made over RESP) is a conflict, with the Redis error text.
    for key in ["fruits", "ap:fruits"] {
        assert_eq!(
            redis_command(cluster.redis(1), &["SADD", key, "apple"]),
            ":1"
        );
        let (status, body) = cluster.get(1, key);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("WRONGTYPE"),
            "{body}"
        );
    }
    // Counters of the available keyspace read as decimal strings.
    assert_eq!(
        redis_command(cluster.redis(1), &["INCRBY", "ap:visits", "41"]),
        ":41"
    );
    assert_eq!(
        redis_command(cluster.redis(1), &["INCR", "ap:visits"]),
        ":42"
    );
    assert_eq!(cluster.get(1, "ap:visits"), (200, b"42".to_vec()));
}

#[test]
fn health_status_and_metrics_describe_the_node() {
    let cluster = Cluster::start(1, &[1], None);
    cluster.wait_for_leader(&[1]);
    let (status, health) = cluster.get_json(1, "/health", None);
    assert_eq!(status, 200);
    assert_eq!(health["status"], json!("ok"));
    assert_eq!(health["node"], json!(1));
    assert_eq!(health["role"], json!("leader"));

    assert_eq!(cluster.put(1, "a", b"1").0, 200);
    assert_eq!(cluster.put(1, "ap:b", b"2").0, 200);
    assert_eq!(cluster.get(1, "a").0, 200);
    assert_eq!(cluster.get(1, "missing").0, 404);
    assert_eq!(redis_command(cluster.redis(1), &["SET", "c", "3"]), "+OK");

    let (status, node) = cluster.get_json(1, "/v1/status", None);
    assert_eq!(status, 200);
    assert_eq!(node["node"], json!(1));
    assert_eq!(node["role"], json!("leader"));
    assert!(node["term"].as_u64().unwrap() >= 1);
    assert_eq!(node["strong_keys"], json!(2));
    assert_eq!(node["available"]["keys"], json!(1));
    assert_eq!(node["cut_links"], json!([]));
    assert!(node["commit_index"].as_u64().unwrap() >= 2);

    let (status, headers, body) = cluster.request("GET", 1, "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("text/plain; version=0.0.4"));
    let samples = parse_prometheus(&String::from_utf8(body).unwrap());
    let value = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    };
    assert_eq!(value(r#"concur_raft_role{node="1",role="leader"}"#), 1.0);
    assert_eq!(value(r#"concur_raft_leader{node="1"}"#), 1.0);
    assert!(value(r#"concur_raft_term{node="1"}"#) >= 1.0);
    assert!(value(r#"concur_raft_applied_index{node="1"}"#) >= 2.0);
    assert_eq!(value(r#"concur_strong_keys{node="1"}"#), 2.0);
    assert_eq!(value(r#"concur_available_keys{node="1"}"#), 1.0);
    let put = r#"concur_commands_total{command="http.put",mode="strong",outcome="ok"}"#;
    assert_eq!(value(put), 1.0);
    let get = r#"concur_commands_total{command="http.get",mode="strong",outcome="ok"}"#;
    assert_eq!(value(get), 2.0, "a 404 is a successful read");
    let set = r#"concur_commands_total{command="set",mode="strong",outcome="ok"}"#;
    assert_eq!(
        value(set),
        1.0,
        "the Redis server records into the same metrics"
    );
    let histogram = r#"concur_command_duration_seconds_count{command="http.put",mode="available"}"#;
    assert_eq!(value(histogram), 1.0);
    assert!(value("concur_connections_total") >= 1.0);
}

#[test]
fn a_password_guards_v1_and_admin_but_not_health() {
    let cluster = Cluster::start(1, &[1], Some("s3cret"));
    cluster.wait_for_leader(&[1]);
    for path in ["/v1/status", "/v1/kv/anything"] {
        let (status, headers, _) = cluster.request("GET", 1, path, None, None);
        assert_eq!(status, 401, "{path}");
        assert_eq!(
            headers.get("www-authenticate").map(String::as_str),
            Some("Bearer")
        );
        assert_eq!(cluster.request("GET", 1, path, Some("wrong"), None).0, 401);
    }
    let heal = cluster.request("POST", 1, "/admin/heal", None, Some(b"{}"));
    assert_eq!(heal.0, 401);
    assert_eq!(cluster.get_json(1, "/v1/status", Some("s3cret")).0, 200);
    assert_eq!(
        cluster.get_json(1, "/v1/kv/anything", Some("s3cret")).0,
        404
    );
    let heal = cluster.request("POST", 1, "/admin/heal", Some("s3cret"), Some(b"{}"));
    assert_eq!(heal.0, 200);
    assert_eq!(cluster.get_json(1, "/health", None).0, 200);
    assert_eq!(cluster.request("GET", 1, "/metrics", None, None).0, 200);
    // `/cluster` fetches the node's own status with the password it knows.
    let (status, view) = cluster.get_json(1, "/cluster", None);
    assert_eq!(status, 200);
    assert_eq!(view["nodes"][0]["reachable"], json!(true), "{view}");
}

#[test]
fn the_cluster_view_marks_nodes_that_do_not_answer() {
    // A two-node cluster with only n1 running: n1 cannot elect itself, but it can say so.
    let cluster = Cluster::start(2, &[1], None);
    let (status, view) = cluster.get_json(1, "/cluster", None);
    assert_eq!(status, 200);
    assert_eq!(view["answered_by"], json!(1));
    assert_eq!(view["unreachable"], json!([2]), "{view}");
    let nodes = view["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["reachable"], json!(true));
    assert_eq!(nodes[0]["node"], json!(1));
    assert_ne!(nodes[0]["role"], json!("leader"));
    assert_eq!(nodes[1]["reachable"], json!(false));
    assert_eq!(nodes[1]["node"], json!(2));
    assert!(
        nodes[1]["error"].as_str().unwrap().contains("connect"),
        "{view}"
    );
    assert_eq!(nodes[1]["http"], json!(cluster.http(2).to_string()));
    // Strong writes cannot succeed without a majority: an error, not a hang.
    let (status, body) = cluster.put(1, "k", b"v");
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string());
    // Available writes need no one else.
    assert_eq!(cluster.put(1, "ap:k", b"v").0, 200);
}

#[test]
fn a_minority_refuses_strong_writes_while_available_keys_accept_them_and_heal_converges() {
    // Goal: the demo of issue 6 over HTTP. Method: cut the leader and one follower off from the
    // third node, write on both sides, heal, and watch both keyspaces agree again.
    let cluster = Cluster::start(3, &[1, 2, 3], None);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let minority = if leader == 3 { 1 } else { 3 };
    let majority: Vec<u64> = (1..=3).filter(|id| *id != minority).collect();
    let other = majority[0] + majority[1] - leader;
    assert_eq!(cluster.put(leader, "before", b"0").0, 200);

    let groups = json!({ "groups": [majority.clone(), [minority]] });
    for id in 1..=3 {
        let (status, answer) = cluster.post_json(id, "/admin/partition", &groups);
        assert_eq!(status, 200, "{answer}");
        let expected = if id == minority {
            json!(majority)
        } else {
            json!([minority])
        };
        assert_eq!(answer, json!({ "node": id, "cut": expected }));
    }
    // Unknown nodes and malformed bodies are refused, and nothing changes.
    let (status, answer) = cluster.post_json(1, "/admin/partition", &json!({ "groups": [[1, 9]] }));
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("n9"), "{answer}");
    let (status, answer) = cluster.post_json(1, "/admin/partition", &json!({ "group": [1] }));
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("groups"),
        "{answer}"
    );
    let (status, answer) = cluster.get_json(1, "/v1/status", None);
    assert_eq!(status, 200);
    let expected = if minority == 1 {
        json!(majority)
    } else {
        json!([minority])
    };
    assert_eq!(answer["cut_links"], expected);

    // The minority refuses strong writes (once it notices it hears no one) with NOQUORUM.
    cluster.wait_until("the minority to refuse strong writes", || {
        let (status, body) = cluster.put(minority, "strong-in-minority", b"x");
        assert_ne!(status, 200, "a minority accepted a strong write: {body}");
        status == 503
            && body["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("NOQUORUM")
    });
    // The majority keeps serving them.
    cluster.wait_until("the majority to accept strong writes", || {
        cluster.put(other, "strong-in-majority", b"y").0 == 200
    });
    // Available keys accept writes on both sides.
    assert_eq!(cluster.put(minority, "ap:from-minority", b"m").0, 200);
    assert_eq!(cluster.put(leader, "ap:from-majority", b"M").0, 200);
    assert_eq!(cluster.get(minority, "ap:from-majority").0, 404);

    // Every reachable node reports the cut links.
    let (status, view) = cluster.get_json(leader, "/cluster", None);
    assert_eq!(status, 200);
    let mut seen = vec![[majority[0], minority], [majority[1], minority]];
    seen.iter_mut().for_each(|pair| pair.sort_unstable());
    seen.sort_unstable();
    assert_eq!(view["partitions_seen"], json!(seen), "{view}");
    assert_eq!(view["unreachable"], json!([]));

    for id in 1..=3 {
        let (status, answer) = cluster.post_json(id, "/admin/heal", &json!({}));
        assert_eq!((status, answer), (200, json!({ "node": id, "cut": [] })));
    }
    cluster.wait_until("available keys to converge", || {
        cluster.get(leader, "ap:from-minority") == (200, b"m".to_vec())
            && cluster.get(minority, "ap:from-majority") == (200, b"M".to_vec())
    });
    cluster.wait_until("the minority to catch up on strong keys", || {
        let path = "/v1/kv/strong-in-majority?stale=true";
        let (status, _, value) = cluster.request("GET", minority, path, None, None);
        status == 200 && value == b"y"
    });
    // The refused write was never applied.
    assert_eq!(cluster.get(leader, "strong-in-minority").0, 404);
    let (_, view) = cluster.get_json(minority, "/cluster", None);
    assert_eq!(view["partitions_seen"], json!([]), "{view}");
}

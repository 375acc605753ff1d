//! A real cluster: three `concur node` processes on loopback, driven by a Redis client library and
//! by `redis-cli`, partitioned and healed with `concur partition` / `concur heal`, one node killed
//! with SIGKILL and restarted — then no acknowledged write may be missing and the strong history
//! must be linearizable (judged by the independent checker).

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const NODES: u64 = 3;
const CONCUR: &str = env!("CARGO_BIN_EXE_concur");

/// A base port whose Redis, HTTP and peer ports (B+i, B+1000+i, B+2000+i) are all free now.
fn free_base_port() -> u16 {
    let seed = std::process::id() as u64 * 7919 + Instant::now().elapsed().as_nanos() as u64;
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed + attempt * 97) % 20_000) as u16;
        let ports: Vec<u16> = (1..=NODES as u16)
            .flat_map(|i| [base + i, base + 1_000 + i, base + 2_000 + i])
            .collect();
        let bound: Vec<_> = ports
            .iter()
            .filter_map(|port| TcpListener::bind(("127.0.0.1", *port)).ok())
            .collect();
        if bound.len() == ports.len() {
            return base;
        }
    }
    panic!("no free port range found");
}

struct Cluster {
    base: u16,
    data: PathBuf,
    nodes: Vec<Option<Child>>,
}

impl Cluster {
    fn start(data: &Path) -> Self {
        let base = free_base_port();
        let mut cluster = Cluster {
            base,
            data: data.to_path_buf(),
            nodes: (0..NODES).map(|_| None).collect(),
        };
        for id in 1..=NODES {
            cluster.start_node(id);
        }
        for id in 1..=NODES {
            cluster.wait_ready(id);
        }
        cluster
    }

    fn redis_port(&self, id: u64) -> u16 {
        self.base + id as u16
    }

    fn start_node(&mut self, id: u64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join(format!("n{id}.log")))
            .expect("log file");
        let child = Command::new(CONCUR)
            .args([
                "node",
                "--id",
                &id.to_string(),
                "--nodes",
                &NODES.to_string(),
            ])
            .args(["--base-port", &self.base.to_string()])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--cluster-key", "integration-test-key"])
            .env("CONCUR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start concur node");
        self.nodes[id as usize - 1] = Some(child);
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[id as usize - 1].take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    fn client(&self, id: u64) -> redis::Connection {
        let url = format!("redis://127.0.0.1:{}/", self.redis_port(id));
        let client = redis::Client::open(url).expect("url");
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect");
        connection
            .set_read_timeout(Some(Duration::from_secs(8)))
            .expect("timeout");
        connection
    }

    fn wait_ready(&self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(client) =
                redis::Client::open(format!("redis://127.0.0.1:{}/", self.redis_port(id)))
                && let Ok(mut connection) =
                    client.get_connection_with_timeout(Duration::from_millis(500))
                && let Ok(info) = redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut connection)
                && !info.contains("raft_leader:unknown")
            {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "node n{id} did not start; see {}/n{id}.log",
            self.data.display()
        );
    }

    /// Runs `concur partition|heal …` against this cluster.
    fn admin(&self, args: &[&str]) {
        let output = Command::new(CONCUR)
            .args(args)
            .args([
                "--nodes",
                &NODES.to_string(),
                "--base-port",
                &self.base.to_string(),
            ])
            .output()
            .expect("run concur");
        assert!(
            output.status.success(),
            "concur {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The history of the strong register workload, in the checker's JSON Lines format.
struct History {
    start: Instant,
    lines: Mutex<Vec<String>>,
}

impl History {
    fn record(&self, process: u64, kind: &str, f: &str, key: &str, value: serde_json::Value) {
        let time = self.start.elapsed().as_nanos() as u64;
        let line = serde_json::json!({
            "process": process, "type": kind, "f": f, "key": key, "value": value, "time": time
        });
        self.lines.lock().unwrap().push(line.to_string());
    }
}

/// Whether a failed Redis call certainly did not take effect.
fn definite(error: &redis::RedisError) -> bool {
    let text = error.to_string();
    text.contains("NOQUORUM") || text.contains("no leader could be reached")
}

fn worker(
    process: u64,
    cluster_base: u16,
    history: &History,
    stop: &AtomicBool,
    acked_members: &Mutex<Vec<String>>,
) {
    let keys = ["x", "y", "z"];
    let mut node = process % NODES + 1;
    let mut connection: Option<redis::Connection> = None;
    let mut counter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if connection.is_none() {
            let url = format!("redis://127.0.0.1:{}/", cluster_base + node as u16);
            connection = redis::Client::open(url).ok().and_then(|client| {
                client
                    .get_connection_with_timeout(Duration::from_millis(500))
                    .ok()
            });
            if let Some(connection) = &connection {
                let _ = connection.set_read_timeout(Some(Duration::from_secs(8)));
            } else {
                node = node % NODES + 1;
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        counter += 1;
        let key = keys[(counter % 3) as usize];
        match counter % 3 {
            0 => {
                history.record(process, "invoke", "read", key, serde_json::Value::Null);
                match redis::cmd("GET").arg(key).query::<Option<i64>>(conn) {
                    Ok(value) => history.record(process, "ok", "read", key, value.into()),
                    Err(error) => {
                        let kind = if definite(&error) { "fail" } else { "info" };
                        history.record(process, kind, "read", key, serde_json::Value::Null);
                        connection = None;
                        node = node % NODES + 1;
                    }
                }
            }
            1 => {
                let value = process * 1_000_000 + counter;
                history.record(process, "invoke", "write", key, value.into());
                match redis::cmd("SET").arg(key).arg(value).query::<String>(conn) {
                    Ok(_) => history.record(process, "ok", "write", key, value.into()),
                    Err(error) => {
                        let kind = if definite(&error) { "fail" } else { "info" };
                        history.record(process, kind, "write", key, value.into());
                        connection = None;
                        node = node % NODES + 1;
                    }
                }
            }
            _ => {
                let member = format!("p{process}-{counter}");
                match redis::cmd("SADD")
                    .arg("acked")
                    .arg(&member)
                    .query::<i64>(conn)
                {
                    Ok(_) => acked_members.lock().unwrap().push(member),
                    Err(_) => {
                        connection = None;
                        node = node % NODES + 1;
                    }
                }
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[test]
fn a_three_process_cluster_keeps_its_promises_through_partition_and_sigkill() {
    // Kept on failure (node logs, history) under the target directory; removed on success.
    let data =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("data directory");
    let mut cluster = Cluster::start(&data);
    let base = cluster.base;

    // A stock client library speaks to every node; strong writes go through any of them.
    let mut first = cluster.client(1);
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query(&mut first)
        .unwrap();
    let mut third = cluster.client(3);
    let read: String = redis::cmd("GET").arg("greeting").query(&mut third).unwrap();
    assert_eq!(read, "hello");
    let counted: i64 = redis::cmd("INCRBY")
        .arg("visits")
        .arg(5)
        .query(&mut third)
        .unwrap();
    assert_eq!(counted, 5);
    let mode: String = redis::cmd("CONCUR")
        .arg("MODE")
        .arg("ap:cart")
        .query(&mut third)
        .unwrap();
    assert_eq!(mode, "available");

    // And so does redis-cli (Debian's redis-tools; .ci/run installs it).
    match redis_cli(cluster.redis_port(2), &["PING"]) {
        Some(pong) => {
            assert_eq!(pong, "PONG");
            assert_eq!(
                redis_cli(cluster.redis_port(2), &["SET", "cli", "v1"]).unwrap(),
                "OK"
            );
            assert_eq!(
                redis_cli(cluster.redis_port(1), &["GET", "cli"]).unwrap(),
                "v1"
            );
            assert_eq!(
                redis_cli(cluster.redis_port(1), &["SADD", "ap:tags", "a", "b"]).unwrap(),
                "2"
            );
            assert_eq!(
                redis_cli(cluster.redis_port(1), &["CONCUR", "MODE", "cli"]).unwrap(),
                "strong"
            );
        }
        None if std::env::var_os("CI").is_some() => panic!("redis-cli is missing in CI"),
        None => eprintln!(
            "SKIPPED the redis-cli part: redis-cli is not installed (apt install redis-tools)"
        ),
    }

    // A concurrent strong workload runs through everything that follows.
    let history = Arc::new(History {
        start: Instant::now(),
        lines: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4u64)
        .map(|process| {
            let history = Arc::clone(&history);
            let stop = Arc::clone(&stop);
            let acked = Arc::clone(&acked);
            thread::spawn(move || worker(process, base, &history, &stop, &acked))
        })
        .collect();
    thread::sleep(Duration::from_secs(2));

    // Partition n1 away from n2 and n3.
    cluster.admin(&["partition", "n1|n2 n3"]);
    thread::sleep(Duration::from_secs(3));
    let mut minority = cluster.client(1);
    let refused = redis::cmd("SET")
        .arg("greeting")
        .arg("from-minority")
        .query::<String>(&mut minority);
    let error = refused
        .expect_err("the minority must refuse strong writes")
        .to_string();
    assert!(
        error.contains("NOQUORUM"),
        "clear minority error, got: {error}"
    );
    assert!(error.contains("minority"), "{error}");
    let added: i64 = redis::cmd("SADD")
        .arg("ap:seen")
        .arg("minority")
        .query(&mut minority)
        .unwrap();
    assert_eq!(added, 1, "the minority accepts available writes");
    let mut majority = cluster.client(2);
    let added: i64 = redis::cmd("SADD")
        .arg("ap:seen")
        .arg("majority")
        .query(&mut majority)
        .unwrap();
    assert_eq!(added, 1);
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("from-majority")
        .query(&mut majority)
        .unwrap();
    cluster.admin(&["heal"]);
    thread::sleep(Duration::from_secs(2));

    // SIGKILL a node mid-workload, then restart it from its data directory.
    cluster.kill(2);
    thread::sleep(Duration::from_secs(3));
    cluster.start_node(2);
    cluster.wait_ready(2);
    thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker");
    }
    thread::sleep(Duration::from_secs(2));

    // Available keys converged: every node has both sides' writes.
    for id in 1..=NODES {
        let mut connection = cluster.client(id);
        let mut seen: Vec<String> = redis::cmd("SMEMBERS")
            .arg("ap:seen")
            .query(&mut connection)
            .unwrap();
        seen.sort();
        assert_eq!(seen, vec!["majority", "minority"], "n{id}'s ap:seen");
    }
    // No acknowledged strong write is missing, read through the restarted node.
    let mut restarted = cluster.client(2);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("acked")
        .query(&mut restarted)
        .unwrap();
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty(), "the workload acknowledged writes");
    for member in acked.iter() {
        assert!(
            members.contains(member),
            "acknowledged SADD {member} was lost"
        );
    }
    let greeting: String = redis::cmd("GET")
        .arg("greeting")
        .query(&mut restarted)
        .unwrap();
    assert_eq!(greeting, "from-majority");

    // The strong register history is linearizable.
    let lines = history.lines.lock().unwrap();
    let text = lines.join("\n");
    let path = cluster.data.join("history.jsonl");
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .expect("write history");
    let parsed = check::history::History::from_jsonl(&text).expect("well-formed history");
    let oks = lines
        .iter()
        .filter(|line| line.contains("\"type\":\"ok\""))
        .count();
    assert!(oks > 50, "the workload did real work ({oks} ok operations)");
    match check::linearizability::check(&parsed) {
        check::linearizability::Verdict::Linearizable => {}
        verdict => panic!(
            "strong history not linearizable ({}): {verdict:?}",
            path.display()
        ),
    }
    eprintln!(
        "{} operations ({oks} ok), {} acknowledged set members, linearizable",
        lines.len() / 2,
        acked.len()
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data);
}

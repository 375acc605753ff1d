//! The Redis server byte for byte, against a real one-node cluster on loopback (it elects itself):
//! pipelining, RESP3 after HELLO 3, AUTH, errors in Redis's words, and malformed input that closes
//! only the offending connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use node::config::NodeConfig;

struct Node {
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), node::daemon::DaemonError>>>,
    redis: SocketAddr,
    _data: tempfile::TempDir,
}

/// A base port whose Redis, HTTP and peer ports are free now. Tests of one binary run in
/// parallel (same process id), so each call starts from a different candidate.
fn free_base_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first = 30_000 + (std::process::id() % 500) as u16 * 13;
    (0..400)
        .map(|_| {
            let step = NEXT.fetch_add(1, Ordering::Relaxed);
            first.wrapping_add(step.wrapping_mul(37)) % 25_000 + 10_000
        })
        .find(|base| {
            [1, 1_001, 2_001]
                .iter()
                .all(|lane| TcpListener::bind(("127.0.0.1", base + lane)).is_ok())
        })
        .expect("a free base port")
}

impl Node {
    fn start(password: Option<&str>) -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::local(1, 1, free_base_port(), data.path(), "key").unwrap();
        config.password = password.map(str::to_string);
        let redis = config.this().redis;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(node::daemon::run(config, async move {
            let _ = stopped.await;
        }));
        let node = Node {
            runtime,
            stop: Some(stop),
            task: Some(task),
            redis,
            _data: data,
        };
        // Ready once a strong write succeeds (the single node has elected itself).
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(mut connection) = TcpStream::connect(node.redis) {
                connection
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                if let Some(password) = password {
                    send(&mut connection, &format!("AUTH {password}\r\n"));
                    let _ = read_reply(&mut connection);
                }
                send(&mut connection, "SET ready 1\r\n");
                if read_reply(&mut connection) == "+OK\r\n" {
                    return node;
                }
            }
            assert!(Instant::now() < deadline, "the node did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn connect(&self) -> TcpStream {
        let connection = TcpStream::connect(self.redis).unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        connection
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

fn send(connection: &mut TcpStream, bytes: &str) {
    connection.write_all(bytes.as_bytes()).unwrap();
}

/// Reads until at least one complete reply line set has arrived (test replies are small).
fn read_reply(connection: &mut TcpStream) -> String {
    read_until(connection, |text| reply_complete(text.as_bytes()))
}

fn read_until(connection: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    while !done(&String::from_utf8_lossy(&bytes)) {
        match connection.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => bytes.extend_from_slice(&buffer[..read]),
            Err(error) => panic!(
                "read failed after {:?}: {error}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// True when `bytes` holds at least one whole reply (parsed by the crate's own reply parser).
fn reply_complete(bytes: &[u8]) -> bool {
    matches!(node::resp::parse_value(bytes), Ok(Some(_)))
}

/// Every reply in `bytes`, re-encoded one per line for easy comparison.
fn replies(bytes: &[u8]) -> Vec<node::resp::Value> {
    let mut values = Vec::new();
    let mut rest = bytes;
    while let Ok(Some((value, used))) = node::resp::parse_value(rest) {
        values.push(value);
        rest = &rest[used..];
    }
    values
}

#[test]
fn commands_answer_like_redis_and_pipelines_keep_their_order() {
    let node = Node::start(None);
    let mut connection = node.connect();
    // A pipeline of 200 requests in one write: replies come back complete and in order.
    let mut pipeline = String::new();
    for index in 0..100 {
        pipeline.push_str(&format!("SET key:{index} {index}\r\nINCR counter\r\n"));
    }
    send(&mut connection, &pipeline);
    let text = read_until(&mut connection, |text| {
        replies(text.as_bytes()).len() >= 200
    });
    let values = replies(text.as_bytes());
    assert_eq!(values.len(), 200);
    for (index, pair) in values.chunks(2).enumerate() {
        assert_eq!(pair[0], node::resp::Value::Simple("OK".into()));
        assert_eq!(pair[1], node::resp::Value::Integer(index as i64 + 1));
    }
    let checks = [
        ("*2\r\n$3\r\nGET\r\n$5\r\nkey:7\r\n", "$1\r\n7\r\n"),
        ("GET missing\r\n", "$-1\r\n"),
        ("EXISTS key:1 key:1 missing\r\n", ":2\r\n"),
        ("SADD s a b a\r\n", ":2\r\n"),
        ("SISMEMBER s b\r\n", ":1\r\n"),
        (
            "INCR s\r\n",
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (
            "GET\r\n",
            "-ERR wrong number of arguments for 'get' command\r\n",
        ),
        ("CONCUR MODE ap:x\r\n", "$9\r\navailable\r\n"),
        ("CONCUR MODE x\r\n", "$6\r\nstrong\r\n"),
        ("SELECT 1\r\n", "-ERR DB index is out of range\r\n"),
        ("SET ap:n 5\r\n", "+OK\r\n"),
        ("INCRBY ap:n 2\r\n", ":7\r\n"),
        ("TYPE s\r\n", "+set\r\n"),
        ("PING\r\n", "+PONG\r\n"),
    ];
    for (request, expected) in checks {
        send(&mut connection, request);
        assert_eq!(
            read_reply(&mut connection),
            expected,
            "reply to {request:?}"
        );
    }
    send(&mut connection, "FLUSHALL\r\n");
    assert!(read_reply(&mut connection).starts_with("-ERR unknown command 'FLUSHALL'"));

    // HELLO 3 switches the connection to RESP3: a map, then RESP3 nulls and sets.
    send(&mut connection, "HELLO 3\r\n");
    let hello = read_reply(&mut connection);
    assert!(hello.starts_with('%'), "HELLO 3 answers a map: {hello:?}");
    assert!(hello.contains("concur"));
    send(&mut connection, "GET missing\r\n");
    assert_eq!(read_reply(&mut connection), "_\r\n");
    send(&mut connection, "SMEMBERS s\r\n");
    assert!(read_reply(&mut connection).starts_with("~2\r\n"));

    // QUIT answers OK and closes.
    send(&mut connection, "QUIT\r\n");
    assert_eq!(read_reply(&mut connection), "+OK\r\n");
    let mut rest = Vec::new();
    assert_eq!(connection.read_to_end(&mut rest).unwrap_or(0), 0);
}

#[test]
fn malformed_input_closes_only_its_own_connection() {
    let node = Node::start(None);
    let mut healthy = node.connect();
    let mut broken = node.connect();
    send(&mut broken, "*2\r\n$3\r\nGET\r\nxyz\r\n");
    let answer = read_until(&mut broken, |_| false);
    assert!(answer.starts_with("-ERR Protocol error"), "{answer:?}");
    let mut huge = node.connect();
    // A bulk length beyond the request bound is refused before any allocation.
    send(&mut huge, "*1\r\n$999999999999\r\n");
    let answer = read_until(&mut huge, |_| false);
    assert!(answer.starts_with("-ERR Protocol error"), "{answer:?}");
    send(&mut healthy, "SET still alive\r\nGET still\r\n");
    let text = read_until(&mut healthy, |text| replies(text.as_bytes()).len() >= 2);
    assert_eq!(text, "+OK\r\n$5\r\nalive\r\n");
}

#[test]
fn a_password_is_required_when_configured() {
    let node = Node::start(Some("s3cret"));
    let mut connection = node.connect();
    send(&mut connection, "GET a\r\n");
    assert_eq!(
        read_reply(&mut connection),
        "-NOAUTH Authentication required.\r\n"
    );
    send(&mut connection, "AUTH wrong\r\n");
    assert!(read_reply(&mut connection).starts_with("-WRONGPASS"));
    send(&mut connection, "AUTH s3cret\r\n");
    assert_eq!(read_reply(&mut connection), "+OK\r\n");
    send(&mut connection, "GET ready\r\n");
    assert_eq!(read_reply(&mut connection), "$1\r\n1\r\n");
    let mut other = node.connect();
    send(&mut other, "HELLO 3 AUTH default s3cret\r\n");
    assert!(read_reply(&mut other).starts_with('%'));
}

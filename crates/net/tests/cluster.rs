//! End to end: three nodes on loopback run the simulator's single-copy register over real TCP
//! and a real disk, serve client requests, and a restarted server recovers its state from disk.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use net::runtime::{ClientHandle, NodeConfig, client_channel, run_node};
use net::transport::TransportConfig;
use sim::NodeId;
use sim::services::{RegisterResponse, SingleCopyRegister};
use sim::workload::RegisterOperation;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, LocalSet};

const KEY: &[u8] = b"cluster test key";
const SERVER: NodeId = 0;

type Handle = ClientHandle<RegisterOperation, RegisterResponse>;

fn start(
    node: NodeId,
    listener: TcpListener,
    peers: &BTreeMap<NodeId, SocketAddr>,
    dir: &Path,
) -> (Handle, JoinHandle<Result<(), net::runtime::RuntimeError>>) {
    let config = NodeConfig {
        transport: TransportConfig::new(node, peers.clone(), KEY.to_vec()),
        data_dir: dir.join(format!("node-{node}")),
    };
    let (handle, requests) = client_channel();
    let task = tokio::task::spawn_local(run_node(
        config,
        listener,
        |node, storage| SingleCopyRegister::new(node, SERVER, storage),
        requests,
    ));
    (handle, task)
}

/// Reads `key` through `handle`, retrying while links come up (reads are safe to repeat).
async fn read(handle: &Handle, client: u64, first_id: &mut u64, key: &str) -> Option<i64> {
    for _ in 0..100 {
        *first_id += 1;
        let call = handle.call(
            client,
            *first_id,
            RegisterOperation::Read { key: key.into() },
        );
        if let Ok(Ok(RegisterResponse::Value(value))) =
            tokio::time::timeout(Duration::from_millis(200), call).await
        {
            return value;
        }
    }
    panic!("read of {key} never answered");
}

async fn write(handle: &Handle, client: u64, request_id: u64, key: &str, value: i64) {
    let call = handle.call(
        client,
        request_id,
        RegisterOperation::Write {
            key: key.into(),
            value,
        },
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("write answered within 10 s")
        .expect("node running");
    assert_eq!(answer, RegisterResponse::Written);
}

#[tokio::test]
async fn three_nodes_serve_requests_and_the_server_recovers_after_restart() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    LocalSet::new()
        .run_until(async {
            let dir = tempfile::tempdir().unwrap();
            let mut listeners = BTreeMap::new();
            let mut peers = BTreeMap::new();
            for node in 0..3 {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                peers.insert(node, listener.local_addr().unwrap());
                listeners.insert(node, listener);
            }
            let mut nodes = BTreeMap::new();
            for (node, listener) in listeners {
                nodes.insert(node, start(node, listener, &peers, dir.path()));
            }
            let mut request_id = 0;
            // Warm up: reads through each follower succeed once both links are up.
            for node in [1, 2] {
                assert_eq!(
                    read(&nodes[&node].0, 10 + node, &mut request_id, "x").await,
                    None
                );
            }
            // A write through node 1 is forwarded to the server, made durable, answered.
            request_id += 1;
            write(&nodes[&1].0, 11, request_id, "x", 41).await;
            request_id += 1;
            write(&nodes[&2].0, 12, request_id, "y", 7).await;
            request_id += 1;
            write(&nodes[&0].0, 10, request_id, "x", 42).await;
            assert_eq!(read(&nodes[&2].0, 12, &mut request_id, "x").await, Some(42));
            assert_eq!(read(&nodes[&1].0, 11, &mut request_id, "y").await, Some(7));

            // Stop the server: dropping its only handle ends run_node after syncing.
            let (handle, task) = nodes.remove(&SERVER).unwrap();
            drop(handle);
            task.await.unwrap().unwrap();
            // Restart it on the same port from the same data directory.
            let listener = TcpListener::bind(peers[&SERVER]).await.unwrap();
            nodes.insert(SERVER, start(SERVER, listener, &peers, dir.path()));
            assert_eq!(
                read(&nodes[&SERVER].0, 10, &mut request_id, "x").await,
                Some(42)
            );
            assert_eq!(
                read(&nodes[&SERVER].0, 10, &mut request_id, "y").await,
                Some(7)
            );
            // Followers reach the restarted server once their links re-dial.
            assert_eq!(read(&nodes[&1].0, 11, &mut request_id, "x").await, Some(42));
            request_id += 1;
            write(&nodes[&2].0, 12, request_id, "y", 8).await;
            assert_eq!(
                read(&nodes[&SERVER].0, 10, &mut request_id, "y").await,
                Some(8)
            );
        })
        .await;
}

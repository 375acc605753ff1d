//! The driver's timers, self-sends and peer messages, with a small process made for the test:
//! every node ticks on a timer and tells its peer (and itself) about each tick.

use std::collections::BTreeMap;
use std::time::Duration;

use net::runtime::{NodeConfig, client_channel, run_node};
use net::transport::TransportConfig;
use serde::{Deserialize, Serialize};
use sim::{Context, Input, NodeId, Process};
use tokio::net::TcpListener;
use tokio::task::LocalSet;

const TICK_NS: u64 = 5_000_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tick {
    count: u64,
}

/// Counts its own timer ticks and the ticks its peers (and it) report.
#[derive(Debug)]
struct Ticker {
    peer: NodeId,
    ticks: u64,
    heard: BTreeMap<NodeId, u64>,
    last_now_ns: u64,
    time_went_back: bool,
}

impl Process for Ticker {
    type Message = Tick;
    type Request = ();
    type Response = (u64, BTreeMap<NodeId, u64>, bool);

    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<Tick, ()>,
        context: &mut Context<'_, Tick, Self::Response>,
    ) {
        self.time_went_back |= now_ns < self.last_now_ns;
        self.last_now_ns = now_ns;
        match input {
            Input::Start => context.set_timer(TICK_NS, 1),
            Input::Timer { token } => {
                assert_eq!(token, self.ticks + 1, "timer tokens come back unchanged");
                self.ticks += 1;
                context.send(self.peer, Tick { count: self.ticks });
                context.send(context.node(), Tick { count: self.ticks });
                context.set_timer(TICK_NS, self.ticks + 1);
            }
            Input::Message { from, message } => {
                let heard = self.heard.entry(from).or_default();
                *heard = (*heard).max(message.count);
            }
            Input::Request {
                client, request_id, ..
            } => context.reply(
                client,
                request_id,
                (self.ticks, self.heard.clone(), self.time_went_back),
            ),
            Input::Persisted { .. } => {}
        }
    }
}

#[tokio::test]
async fn timers_fire_and_ticks_reach_the_peer_and_the_node_itself() {
    LocalSet::new()
        .run_until(async {
            let dir = tempfile::tempdir().unwrap();
            let mut listeners = BTreeMap::new();
            let mut peers = BTreeMap::new();
            for node in 0..2 {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                peers.insert(node, listener.local_addr().unwrap());
                listeners.insert(node, listener);
            }
            let mut handles = BTreeMap::new();
            for (node, listener) in listeners {
                let config = NodeConfig {
                    transport: TransportConfig::new(node, peers.clone(), b"k".to_vec()),
                    data_dir: dir.path().join(format!("node-{node}")),
                };
                let (handle, requests) = client_channel();
                let build = move |_node, _storage: &sim::Storage| Ticker {
                    peer: 1 - node,
                    ticks: 0,
                    heard: BTreeMap::new(),
                    last_now_ns: 0,
                    time_went_back: false,
                };
                tokio::task::spawn_local(run_node(config, listener, build, requests));
                handles.insert(node, handle);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            for (node, handle) in &handles {
                let (ticks, heard, time_went_back) = handle.call(1, 1, ()).await.unwrap();
                // 300 ms at 5 ms a tick: well above 10 even on a loaded 2-core machine.
                assert!(ticks >= 10, "node {node} ticked only {ticks} times");
                assert!(!time_went_back, "node {node} saw now_ns go backwards");
                let own = heard.get(node).copied().unwrap_or(0);
                assert!(
                    own + 1 >= ticks,
                    "node {node} heard itself up to {own} of {ticks}"
                );
                let peer = heard.get(&(1 - node)).copied().unwrap_or(0);
                assert!(
                    peer >= 5,
                    "node {node} heard its peer only up to tick {peer}"
                );
            }
        })
        .await;
}

//! Tokio TCP links between nodes, built on the [`frame`](crate::frame) codec and the
//! [`handshake`](crate::handshake).
//!
//! Each node listens on one port. For every peer it keeps one outbound connection that it dials
//! (re-dialling with capped exponential backoff when it breaks) and uses only to send; frames
//! from a peer arrive on the connection that peer dialled. One direction per connection means two
//! nodes dialling each other at once never have to decide whose connection wins.
//!
//! Like the simulated network, the transport is lossy: a message queued while its link is down,
//! or when the link's queue is full, is dropped, and protocols retransmit. A peer without the
//! cluster key, or one sending malformed or oversized frames, loses only its own connection; the
//! reason is logged with `tracing`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sim::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::frame::{FrameCodec, FrameKind};
use crate::handshake::{self, HandshakeError, Hello, NONCE_BYTES};

/// Messages queued per peer before new ones are dropped.
const OUTBOUND_QUEUE: usize = 4_096;
/// Messages received from all peers queued before readers wait.
const INBOUND_QUEUE: usize = 4_096;
/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How a node joins the cluster's network.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's id (sent in the handshake).
    pub node: NodeId,
    /// Where each peer listens (this node may be listed; it is skipped).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The shared secret every node of the cluster holds.
    pub cluster_key: Vec<u8>,
    /// Largest message payload accepted; bigger frames close the connection.
    pub payload_bytes_max: usize,
    /// First wait before re-dialling a peer.
    pub backoff_initial_ms: u64,
    /// Longest wait between dials.
    pub backoff_max_ms: u64,
    /// How long a new connection may take to finish its handshake.
    pub handshake_timeout_ms: u64,
    /// Which peers' links are cut (by an operator, to stage a partition).
    pub links: LinkControl,
}

/// Cuts and heals this node's links to peers, like a firewall: while a peer is cut, messages to it
/// are dropped before sending and messages from it are dropped on arrival. Cloneable; all clones
/// act on the same links.
#[derive(Clone, Debug, Default)]
pub struct LinkControl {
    cut: Arc<RwLock<BTreeSet<NodeId>>>,
}

impl LinkControl {
    /// Cuts the links to `peers` (in both directions), leaving the others as they are.
    pub fn cut(&self, peers: impl IntoIterator<Item = NodeId>) {
        let mut cut = self
            .cut
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cut.extend(peers);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// The peers currently cut off.
    pub fn cut_peers(&self) -> BTreeSet<NodeId> {
        self.cut
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// True when the link to `peer` is cut.
    pub fn is_cut(&self, peer: NodeId) -> bool {
        self.cut
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&peer)
    }
}

impl TransportConfig {
    /// A configuration with default limits: 16 MiB payloads, backoff 20 ms doubling to 2 s.
    pub fn new(node: NodeId, peers: BTreeMap<NodeId, SocketAddr>, cluster_key: Vec<u8>) -> Self {
        Self {
            node,
            peers,
            cluster_key,
            payload_bytes_max: 16 << 20,
            backoff_initial_ms: 20,
            backoff_max_ms: 2_000,
            handshake_timeout_ms: 5_000,
            links: LinkControl::default(),
        }
    }
}

/// A running transport: send bytes to peers, receive bytes from them.
#[derive(Debug)]
pub struct Transport {
    local_addr: SocketAddr,
    outbound: BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>,
    inbound: mpsc::Receiver<(NodeId, Vec<u8>)>,
    tasks: Vec<JoinHandle<()>>,
    links: LinkControl,
}

impl Transport {
    /// Starts serving `listener` and dialling every peer in `config`. Must be called inside a
    /// tokio runtime.
    pub fn start(config: TransportConfig, listener: TcpListener) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(serve(
            listener,
            config.clone(),
            inbound_sender,
        )));
        let mut outbound = BTreeMap::new();
        for (&peer, &address) in &config.peers {
            if peer == config.node {
                continue;
            }
            let (sender, receiver) = mpsc::channel(OUTBOUND_QUEUE);
            outbound.insert(peer, sender);
            tasks.push(tokio::spawn(dial_loop(
                config.clone(),
                peer,
                address,
                receiver,
            )));
        }
        Ok(Self {
            local_addr,
            outbound,
            inbound,
            tasks,
            links: config.links,
        })
    }

    /// The address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues `bytes` for `peer`; returns false when dropped (unknown peer or queue full).
    pub fn send(&self, peer: NodeId, bytes: Vec<u8>) -> bool {
        if self.links.is_cut(peer) {
            return false;
        }
        match self.outbound.get(&peer) {
            Some(sender) => sender.try_send(bytes).is_ok(),
            None => false,
        }
    }

    /// The next message from any peer, with the authenticated sender; `None` once shut down.
    pub async fn receive(&mut self) -> Option<(NodeId, Vec<u8>)> {
        loop {
            let (from, bytes) = self.inbound.recv().await?;
            if !self.links.is_cut(from) {
                return Some((from, bytes));
            }
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Fresh handshake randomness from the operating system.
fn nonce() -> Result<[u8; NONCE_BYTES], LinkError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|error| LinkError::Randomness(error.to_string()))?;
    Ok(nonce)
}

async fn serve(
    listener: TcpListener,
    config: TransportConfig,
    inbound: mpsc::Sender<(NodeId, Vec<u8>)>,
) {
    // Connection tasks live in this set so that stopping the transport (aborting this task)
    // closes every inbound connection too, instead of leaving ghosts that swallow messages.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, remote)) => {
                let config = config.clone();
                let inbound = inbound.clone();
                connections.spawn(async move {
                    match receive_connection(stream, &config, inbound).await {
                        Ok(()) => {}
                        // A peer restarting or stopping is routine; bad frames and failed
                        // handshakes are worth a warning.
                        Err(LinkError::Closed) => {
                            tracing::debug!(node = config.node, %remote, "peer closed its connection");
                        }
                        Err(reason) => {
                            tracing::warn!(node = config.node, %remote, %reason, "closed inbound connection");
                        }
                    }
                });
            }
            Err(error) => {
                tracing::warn!(node = config.node, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The socket failed or closed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake was refused.
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    /// A frame after the handshake was refused.
    #[error("{0}")]
    Frame(#[from] crate::frame::FrameError),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    Closed,
    /// The operating system gave no randomness for the handshake nonce.
    #[error("no randomness from the operating system: {0}")]
    Randomness(String),
    /// The peer authenticated but claims a node id that is not in the cluster (or is ours).
    #[error("node {0} is not a peer of this cluster")]
    UnknownPeer(NodeId),
    /// A non-message frame arrived after the handshake.
    #[error("unexpected frame kind {0:?}")]
    UnexpectedKind(FrameKind),
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(), LinkError> {
    let start = buffer.len();
    buffer.resize(start + READ_CHUNK_BYTES, 0);
    let read = stream.read(&mut buffer[start..]).await?;
    buffer.truncate(start + read);
    if read == 0 {
        return Err(LinkError::Closed);
    }
    Ok(())
}

async fn accept_handshake(
    stream: &mut TcpStream,
    config: &TransportConfig,
    buffer: &mut Vec<u8>,
) -> Result<(NodeId, FrameCodec), LinkError> {
    let own = Hello {
        node: config.node,
        nonce: nonce()?,
    };
    loop {
        if let Some((answer, session, used)) =
            handshake::accept(&config.cluster_key, own, buffer, config.payload_bytes_max)?
        {
            buffer.drain(..used);
            stream.write_all(&answer).await?;
            return Ok((session.peer, session.codec));
        }
        read_more(stream, buffer).await?;
    }
}

async fn receive_connection(
    mut stream: TcpStream,
    config: &TransportConfig,
    inbound: mpsc::Sender<(NodeId, Vec<u8>)>,
) -> Result<(), LinkError> {
    let mut buffer = Vec::new();
    let timeout = Duration::from_millis(config.handshake_timeout_ms);
    let (peer, mut codec) =
        tokio::time::timeout(timeout, accept_handshake(&mut stream, config, &mut buffer))
            .await
            .map_err(|_| LinkError::HandshakeTimeout)??;
    if peer == config.node || !config.peers.contains_key(&peer) {
        return Err(LinkError::UnknownPeer(peer));
    }
    tracing::debug!(node = config.node, peer, "accepted peer");
    loop {
        while let Some((frame, used)) = codec.decode(&buffer)? {
            buffer.drain(..used);
            if frame.kind != FrameKind::Message {
                return Err(LinkError::UnexpectedKind(frame.kind));
            }
            if inbound.send((peer, frame.payload)).await.is_err() {
                return Ok(());
            }
        }
        read_more(&mut stream, &mut buffer).await?;
    }
}

async fn dial(
    config: &TransportConfig,
    peer: NodeId,
    address: SocketAddr,
) -> Result<(TcpStream, FrameCodec), LinkError> {
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let hello = Hello {
        node: config.node,
        nonce: nonce()?,
    };
    let (mut dialler, first) = handshake::dial(&config.cluster_key, hello);
    stream.write_all(&first).await?;
    let mut buffer = Vec::new();
    loop {
        if let Some((session, _)) =
            dialler.receive(&buffer, Some(peer), config.payload_bytes_max)?
        {
            return Ok((stream, session.codec));
        }
        read_more(&mut stream, &mut buffer).await?;
    }
}

async fn dial_loop(
    config: TransportConfig,
    peer: NodeId,
    address: SocketAddr,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
) {
    let mut backoff_ms = config.backoff_initial_ms;
    let timeout = Duration::from_millis(config.handshake_timeout_ms);
    loop {
        let attempt = tokio::time::timeout(timeout, dial(&config, peer, address)).await;
        let (mut stream, mut codec) = match attempt {
            Ok(Ok(link)) => link,
            Ok(Err(reason)) => {
                tracing::debug!(node = config.node, peer, %reason, backoff_ms, "dial failed");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(config.backoff_max_ms);
                continue;
            }
            Err(_) => {
                tracing::debug!(node = config.node, peer, backoff_ms, "handshake timed out");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(config.backoff_max_ms);
                continue;
            }
        };
        backoff_ms = config.backoff_initial_ms;
        tracing::debug!(node = config.node, peer, "connected");
        // Messages queued while the link was down go out now; the bounded queue limits how stale
        // they can be (a full queue drops new messages instead).
        // The acceptor never writes after the handshake, so a readable socket means the peer
        // closed (or broke) the connection: notice that before a message is lost on it.
        let mut probe = [0u8; 1];
        loop {
            let bytes = tokio::select! {
                bytes = outgoing.recv() => bytes,
                _ = stream.read(&mut probe) => {
                    tracing::debug!(node = config.node, peer, "peer closed the link; re-dialling");
                    break;
                }
            };
            let Some(bytes) = bytes else {
                return;
            };
            if bytes.len() > config.payload_bytes_max {
                tracing::warn!(
                    node = config.node,
                    peer,
                    length = bytes.len(),
                    "dropping oversized message"
                );
                continue;
            }
            let frame = codec.encode(FrameKind::Message, &bytes);
            if let Err(error) = stream.write_all(&frame).await {
                tracing::debug!(node = config.node, peer, %error, "link broke; re-dialling");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"transport test cluster key";

    async fn listeners(count: u64) -> (Vec<TcpListener>, BTreeMap<NodeId, SocketAddr>) {
        let mut listeners = Vec::new();
        let mut peers = BTreeMap::new();
        for node in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            peers.insert(node, listener.local_addr().unwrap());
            listeners.push(listener);
        }
        (listeners, peers)
    }

    async fn receive(transport: &mut Transport) -> (NodeId, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(10), transport.receive())
            .await
            .expect("a message within 10 s")
            .expect("transport running")
    }

    /// Sends `bytes` until the link is up and one copy arrives (the first may be dropped while
    /// the link is still being dialled).
    async fn deliver(from: &Transport, to: &mut Transport, to_id: NodeId, bytes: &[u8]) -> NodeId {
        for _ in 0..200 {
            from.send(to_id, bytes.to_vec());
            if let Ok(Some((sender, got))) =
                tokio::time::timeout(Duration::from_millis(50), to.receive()).await
            {
                assert_eq!(got, bytes);
                return sender;
            }
        }
        panic!("message never arrived");
    }

    #[tokio::test]
    async fn two_nodes_exchange_messages() {
        let (mut listeners, peers) = listeners(2).await;
        let b_listener = listeners.pop().unwrap();
        let a_listener = listeners.pop().unwrap();
        let mut a = Transport::start(
            TransportConfig::new(0, peers.clone(), KEY.to_vec()),
            a_listener,
        )
        .unwrap();
        let mut b =
            Transport::start(TransportConfig::new(1, peers, KEY.to_vec()), b_listener).unwrap();
        assert_eq!(deliver(&a, &mut b, 1, b"ping").await, 0);
        assert_eq!(deliver(&b, &mut a, 0, b"pong").await, 1);
        // Once up, the link carries many messages in order.
        for index in 0..100u32 {
            assert!(a.send(1, index.to_le_bytes().to_vec()));
        }
        let mut got = Vec::new();
        while got.len() < 100 {
            let (from, bytes) = receive(&mut b).await;
            assert_eq!(from, 0);
            if bytes != b"ping" {
                got.push(u32::from_le_bytes(bytes.try_into().unwrap()));
            }
        }
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_node_without_the_key_is_refused() {
        let (mut listeners, peers) = listeners(2).await;
        let b_listener = listeners.pop().unwrap();
        let a_listener = listeners.pop().unwrap();
        let a = Transport::start(
            TransportConfig::new(0, peers.clone(), b"wrong key".to_vec()),
            a_listener,
        )
        .unwrap();
        let mut b =
            Transport::start(TransportConfig::new(1, peers, KEY.to_vec()), b_listener).unwrap();
        for _ in 0..20 {
            a.send(1, b"let me in".to_vec());
            let got = tokio::time::timeout(Duration::from_millis(50), b.receive()).await;
            assert!(
                got.is_err(),
                "a message from a node without the key was delivered"
            );
        }
    }

    #[tokio::test]
    async fn a_node_outside_the_cluster_is_refused_even_with_the_key() {
        let (mut listeners, peers) = listeners(2).await;
        let b_listener = listeners.pop().unwrap();
        let stranger_listener = listeners.pop().unwrap();
        let mut b = Transport::start(
            TransportConfig::new(1, peers.clone(), KEY.to_vec()),
            b_listener,
        )
        .unwrap();
        // Node 5 is not in B's peer map: it passes the key check but is still turned away.
        let stranger_peers = BTreeMap::from([(1, peers[&1])]);
        let stranger = Transport::start(
            TransportConfig::new(5, stranger_peers, KEY.to_vec()),
            stranger_listener,
        )
        .unwrap();
        for _ in 0..20 {
            stranger.send(1, b"hello from outside".to_vec());
            let got = tokio::time::timeout(Duration::from_millis(50), b.receive()).await;
            assert!(got.is_err(), "a message from an unknown node was delivered");
        }
    }

    #[tokio::test]
    async fn garbage_closes_only_that_connection() {
        let (mut listeners, peers) = listeners(2).await;
        let b_listener = listeners.pop().unwrap();
        let a_listener = listeners.pop().unwrap();
        let b_address = peers[&1];
        let a = Transport::start(
            TransportConfig::new(0, peers.clone(), KEY.to_vec()),
            a_listener,
        )
        .unwrap();
        let mut b =
            Transport::start(TransportConfig::new(1, peers, KEY.to_vec()), b_listener).unwrap();
        deliver(&a, &mut b, 1, b"before").await;
        // A non-peer writes junk: B closes that connection (read returns 0 or an error).
        let mut junk = TcpStream::connect(b_address).await.unwrap();
        junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut sink = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(5), junk.read(&mut sink)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "junk connection not closed: {closed:?}"
        );
        // An oversized frame header is refused before its body is read.
        let mut huge = TcpStream::connect(b_address).await.unwrap();
        let mut header = b"cc".to_vec();
        header.extend_from_slice(&[crate::frame::VERSION, 1]);
        header.extend_from_slice(&[0xff; 12]);
        huge.write_all(&header).await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(5), huge.read(&mut sink)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "oversized connection not closed: {closed:?}"
        );
        // The real peer's link is untouched and new peers are still served.
        assert!(a.send(1, b"after".to_vec()));
        let (from, bytes) = receive(&mut b).await;
        assert_eq!((from, bytes.as_slice()), (0, &b"after"[..]));
    }
}

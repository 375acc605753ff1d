//! The tokio driver: runs ONE [`sim::Process`] on a real machine, exactly as the simulator runs it
//! in virtual time.
//!
//! [`run_node`] recovers the node's [`DiskLog`] into a [`sim::Storage`], builds the process from
//! it, and then feeds it inputs until every [`ClientHandle`] is dropped:
//! - `now_ns` is real time: the wall clock read once at start (nanoseconds since the Unix epoch)
//!   plus the monotonic time elapsed since, so it never goes backwards while the node runs and
//!   hybrid logical clocks inside the process see physical time;
//! - `SetTimer` becomes a tokio sleep whose token comes back as `Input::Timer`;
//! - `Persist` goes to the group-committing [`DiskWriter`]; `Input::Persisted` follows the fsync;
//! - `Send` is serialized with postcard and queued on the [`Transport`] (a send to itself is
//!   delivered locally); arriving bytes are decoded back into `Input::Message`;
//! - client requests come in through a [`ClientHandle`] and each `Reply` answers its caller.
//!
//! The process itself stays sans-IO: all the IO lives here.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use rand_xoshiro::rand_core::SeedableRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sim::{ClientId, Context, Effect, Input, NodeId, Process, RequestId, SimRng, Storage, Token};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::disk::{DiskError, DiskLog, DiskWriter, Write};
use crate::transport::{Transport, TransportConfig};

/// Client requests queued per node before callers wait.
const REQUEST_QUEUE: usize = 1_024;

/// Everything a node needs besides its process.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Network identity, peers and cluster key (the node id is `transport.node`).
    pub transport: TransportConfig,
    /// Directory holding the node's durable store.
    pub data_dir: PathBuf,
}

/// Why a node stopped or a call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The store could not be opened or written; the node stops rather than lie about durability.
    #[error("disk: {0}")]
    Disk(#[from] DiskError),
    /// The durable writer failed after start.
    #[error("disk write failed: {0}")]
    DiskWrite(String),
    /// The listener could not be used.
    #[error("network: {0}")]
    Network(#[from] std::io::Error),
    /// The node stopped before answering.
    #[error("node stopped before answering")]
    Stopped,
}

/// One client request on its way to the node, with where to send the answer.
#[derive(Debug)]
pub struct ClientRequest<Q, R> {
    client: ClientId,
    request_id: RequestId,
    request: Q,
    reply: oneshot::Sender<R>,
}

/// How clients (and later the `node` crate) talk to a running node. Cloneable; the node runs
/// until every clone is dropped.
#[derive(Debug)]
pub struct ClientHandle<Q, R> {
    requests: mpsc::Sender<ClientRequest<Q, R>>,
}

impl<Q, R> Clone for ClientHandle<Q, R> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
        }
    }
}

/// The node's end of the client channel, given to [`run_node`].
#[derive(Debug)]
pub struct ClientRequests<Q, R> {
    requests: mpsc::Receiver<ClientRequest<Q, R>>,
}

/// A connected pair: give the [`ClientRequests`] to [`run_node`], keep the handle.
pub fn client_channel<Q, R>() -> (ClientHandle<Q, R>, ClientRequests<Q, R>) {
    let (requests, receiver) = mpsc::channel(REQUEST_QUEUE);
    (
        ClientHandle { requests },
        ClientRequests { requests: receiver },
    )
}

impl<Q, R> ClientHandle<Q, R> {
    /// Sends `request` as `client`'s request `request_id` and waits for the process's reply.
    /// The process may never answer (e.g. it lost the request): bound the wait with a timeout.
    pub async fn call(
        &self,
        client: ClientId,
        request_id: RequestId,
        request: Q,
    ) -> Result<R, RuntimeError> {
        self.submit(client, request_id, request).await?.await
    }

    /// Queues `request` for the process and returns once it is queued (requests reach the
    /// process in the order their `submit`s completed); the returned [`Answer`] resolves to the
    /// reply. Lets one caller keep several requests in flight in a known order.
    pub async fn submit(
        &self,
        client: ClientId,
        request_id: RequestId,
        request: Q,
    ) -> Result<Answer<R>, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        let message = ClientRequest {
            client,
            request_id,
            request,
            reply,
        };
        self.requests
            .send(message)
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        Ok(Answer { answer })
    }
}

/// The reply to a submitted request, still to come.
#[derive(Debug)]
pub struct Answer<R> {
    answer: oneshot::Receiver<R>,
}

impl<R> std::future::Future for Answer<R> {
    type Output = Result<R, RuntimeError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.answer)
            .poll(context)
            .map(|result| result.map_err(|_| RuntimeError::Stopped))
    }
}

/// Nanoseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Fresh seed for the process's RNG from the operating system.
fn os_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        tracing::warn!("no operating system randomness; seeding the process RNG from the clock");
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

/// Runs the process built by `build` from this node's recovered storage until every
/// [`ClientHandle`] is dropped (then queued writes are synced and the node stops), or until the
/// disk fails.
///
/// `listener` is this node's bound peer port (bind it first, with port 0 in tests, so the peer
/// map can be built). The future is not `Send` when the process is not: run it on a
/// `tokio::task::LocalSet` or await it directly.
pub async fn run_node<P, B>(
    config: NodeConfig,
    listener: TcpListener,
    build: B,
    requests: ClientRequests<P::Request, P::Response>,
) -> Result<(), RuntimeError>
where
    P: Process,
    P::Message: Serialize + DeserializeOwned,
    B: FnOnce(NodeId, &Storage) -> P,
{
    let node = config.transport.node;
    let (log, storage, recovery) = DiskLog::open(&config.data_dir)?;
    tracing::info!(
        node,
        records = recovery.records,
        truncated_bytes = recovery.truncated_bytes,
        "recovered storage"
    );
    let process = build(node, &storage);
    drop(storage);
    let (writer, acks) = DiskWriter::spawn(log);
    let transport = Transport::start(config.transport, listener)?;
    let mut driver = Driver {
        node,
        process,
        start: Instant::now(),
        start_wall_ns: wall_clock_ns(),
        rng: SimRng::seed_from_u64(os_seed()),
        effects: Vec::new(),
        local: VecDeque::new(),
        timers: BTreeMap::new(),
        next_timer: 0,
        pending: BTreeMap::new(),
        writer,
        transport,
    };
    driver.run(requests, acks).await
}

struct Driver<P: Process> {
    node: NodeId,
    process: P,
    start: Instant,
    start_wall_ns: u64,
    rng: SimRng,
    effects: Vec<Effect<P::Message, P::Response>>,
    /// Inputs produced by the node for itself (messages to itself), handled before waiting.
    local: VecDeque<Input<P::Message, P::Request>>,
    /// Timers by deadline (and a counter to keep equal deadlines apart).
    timers: BTreeMap<(Instant, u64), Token>,
    next_timer: u64,
    /// Callers waiting for a reply.
    pending: BTreeMap<(ClientId, RequestId), oneshot::Sender<P::Response>>,
    writer: DiskWriter,
    transport: Transport,
}

impl<P> Driver<P>
where
    P: Process,
    P::Message: Serialize + DeserializeOwned,
{
    async fn run(
        &mut self,
        mut requests: ClientRequests<P::Request, P::Response>,
        mut acks: mpsc::UnboundedReceiver<Result<Token, String>>,
    ) -> Result<(), RuntimeError> {
        self.handle(Input::Start);
        loop {
            while let Some(input) = self.local.pop_front() {
                self.handle(input);
            }
            let next_deadline = self.timers.keys().next().map(|&(deadline, _)| deadline);
            let far = Instant::now() + Duration::from_secs(3_600);
            let sleep = tokio::time::sleep_until(next_deadline.unwrap_or(far));
            tokio::select! {
                request = requests.requests.recv() => {
                    let Some(request) = request else {
                        tracing::info!(node = self.node, "every client handle dropped; stopping");
                        return Ok(());
                    };
                    self.pending.insert((request.client, request.request_id), request.reply);
                    self.handle(Input::Request {
                        client: request.client,
                        request_id: request.request_id,
                        request: request.request,
                    });
                }
                received = self.transport.receive() => {
                    let Some((from, bytes)) = received else {
                        return Ok(());
                    };
                    match postcard::from_bytes::<P::Message>(&bytes) {
                        Ok(message) => self.handle(Input::Message { from, message }),
                        Err(error) => {
                            tracing::warn!(node = self.node, from, %error, "dropping undecodable message");
                        }
                    }
                }
                ack = acks.recv() => {
                    match ack {
                        Some(Ok(token)) => self.handle(Input::Persisted { token }),
                        Some(Err(error)) => return Err(RuntimeError::DiskWrite(error)),
                        None => return Err(RuntimeError::DiskWrite("writer stopped".into())),
                    }
                }
                () = sleep, if next_deadline.is_some() => {
                    let now = Instant::now();
                    while let Some(entry) = self.timers.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let token = entry.remove();
                        self.handle(Input::Timer { token });
                    }
                }
            }
        }
    }

    fn now_ns(&self) -> u64 {
        let elapsed_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.start_wall_ns.saturating_add(elapsed_ns)
    }

    fn handle(&mut self, input: Input<P::Message, P::Request>) {
        let now_ns = self.now_ns();
        let tracing_on = tracing::enabled!(tracing::Level::DEBUG);
        let mut context = Context::new(self.node, tracing_on, &mut self.rng, &mut self.effects);
        self.process.handle(now_ns, input, &mut context);
        let effects: Vec<_> = self.effects.drain(..).collect();
        for effect in effects {
            self.apply(effect);
        }
    }

    fn apply(&mut self, effect: Effect<P::Message, P::Response>) {
        match effect {
            Effect::Send { to, message } => {
                if to == self.node {
                    self.local.push_back(Input::Message { from: to, message });
                    return;
                }
                match postcard::to_allocvec(&message) {
                    Ok(bytes) => {
                        if !self.transport.send(to, bytes) {
                            tracing::debug!(
                                node = self.node,
                                to,
                                "message dropped: no link or queue full"
                            );
                        }
                    }
                    Err(error) => {
                        tracing::warn!(node = self.node, to, %error, "message not serializable");
                    }
                }
            }
            Effect::Reply {
                client,
                request_id,
                response,
            } => {
                if let Some(caller) = self.pending.remove(&(client, request_id)) {
                    // The caller may have given up waiting; that is fine.
                    let _ = caller.send(response);
                }
            }
            Effect::SetTimer { after_ns, token } => {
                let deadline = Instant::now() + Duration::from_nanos(after_ns);
                self.timers.insert((deadline, self.next_timer), token);
                self.next_timer += 1;
            }
            Effect::Persist { key, value, token } => {
                if !self.writer.submit(Write { key, value, token }) {
                    tracing::error!(node = self.node, "disk writer stopped; write lost");
                }
            }
            Effect::Log { text } => {
                tracing::debug!(node = self.node, "{text}");
            }
        }
    }
}

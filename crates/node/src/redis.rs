//! The Redis server: speaks RESP2 (and RESP3 after `HELLO 3`) to stock clients and runs their
//! commands on the strong keyspace (through Raft) or the available one (CRDTs), by key prefix.
//!
//! A connection may pipeline: every request parsed from the socket starts at once (up to
//! [`IN_FLIGHT_MAX`] per connection), and replies go back in request order. Strong reads are
//! linearizable unless the connection sent `READONLY` (as Redis Cluster clients do to read from
//! replicas): then they are served from this node's replica even in a minority, marked stale only
//! by that opt-in. Malformed input gets a protocol error and the connection is closed; the node
//! keeps running.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::available::{ApOperation, ApOutput};
use crate::command::{self, Command};
use crate::handle::{NodeError, NodeHandle, strong_output, strong_result};
use crate::machine::MachineCommand;
use crate::metrics::Metrics;
use crate::process::Mode;
use crate::process::{NodeRequest, NodeResponse};
use crate::resp::{Limits, Protocol, RequestParser, Value};
use crate::strong::{StrongCommand, StrongOutput, StrongQuery};
use raft::ClientOperation;

/// Most requests one connection may have in flight before the server stops reading from it.
pub const IN_FLIGHT_MAX: usize = 1_024;

/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How the Redis server behaves.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// Clients must `AUTH` with this password first, when set.
    pub password: Option<String>,
    /// Bounds on one request.
    pub limits: Limits,
}

/// Serves Redis clients on `listener` until the task is aborted (which closes every connection).
pub async fn serve(
    listener: TcpListener,
    handle: NodeHandle,
    metrics: Arc<Metrics>,
    options: RedisOptions,
) -> std::io::Result<()> {
    let options = Arc::new(options);
    let mut connections = JoinSet::new();
    let mut next_client_id: i64 = 1;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, address) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    handle: handle.clone(),
                    metrics: Arc::clone(&metrics),
                    options: Arc::clone(&options),
                    id: next_client_id,
                    protocol: Protocol::Resp2,
                    authenticated: options.password.is_none(),
                    name: None,
                    read_only: false,
                };
                next_client_id += 1;
                connections.spawn(async move {
                    if let Err(error) = connection.run(stream).await {
                        tracing::debug!(%address, %error, "client connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type Reply = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// What a request in flight does, for the connection's ordering rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Answered by the connection itself, or already answered.
    Local,
    /// A read of the strong keyspace.
    StrongRead,
    /// A write to the strong keyspace.
    StrongWrite,
    /// An available-keyspace operation (the node runs these in arrival order).
    Available,
}

/// A connection's requests in flight, answered in order.
#[derive(Default)]
struct InFlight {
    replies: FuturesOrdered<Reply>,
    kinds: std::collections::VecDeque<Kind>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.replies.len()
    }

    fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    fn push(&mut self, kind: Kind, reply: Reply) {
        self.kinds.push_back(kind);
        self.replies.push_back(reply);
    }

    /// The next reply in order.
    async fn next(&mut self) -> Option<Vec<u8>> {
        let reply = self.replies.next().await;
        if reply.is_some() {
            self.kinds.pop_front();
        }
        reply
    }

    /// The next reply in order if it is already done.
    fn next_ready(&mut self) -> Option<Vec<u8>> {
        let reply = futures_util::FutureExt::now_or_never(self.replies.next()).flatten();
        if reply.is_some() {
            self.kinds.pop_front();
        }
        reply
    }

    /// Answers requests in order until none of `kind` is in flight.
    async fn drain_while_pending(
        &mut self,
        kind: Kind,
        stream: &mut TcpStream,
        output: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        while self.kinds.contains(&kind) {
            match self.next().await {
                Some(reply) => output.extend_from_slice(&reply),
                None => break,
            }
        }
        if !output.is_empty() {
            stream.write_all(output).await?;
            output.clear();
        }
        Ok(())
    }

    /// Answers every request in flight.
    async fn drain_all(
        &mut self,
        stream: &mut TcpStream,
        output: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        while let Some(reply) = self.next().await {
            output.extend_from_slice(&reply);
        }
        if !output.is_empty() {
            stream.write_all(output).await?;
            output.clear();
        }
        Ok(())
    }
}

/// One client's connection state.
struct Connection {
    handle: NodeHandle,
    metrics: Arc<Metrics>,
    options: Arc<RedisOptions>,
    id: i64,
    protocol: Protocol,
    authenticated: bool,
    name: Option<Vec<u8>>,
    read_only: bool,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) -> std::io::Result<()> {
        self.metrics.connection_opened();
        let result = self.serve(stream).await;
        self.metrics.connection_closed();
        result
    }

    async fn serve(&mut self, mut stream: TcpStream) -> std::io::Result<()> {
        let mut parser = RequestParser::new(self.options.limits);
        let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
        let mut output: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
        let mut flight = InFlight::default();
        // Set once the client sent QUIT, hung up, or broke the protocol: answer what is in flight,
        // then close.
        let mut closing = false;
        // Bytes of `input` already parsed into requests.
        let mut consumed = 0;
        loop {
            // Start every complete request already read, in order.
            while !closing && flight.len() < IN_FLIGHT_MAX {
                let parsed = match parser.parse(&input[consumed..]) {
                    Ok(Some((args, used))) => {
                        consumed += used;
                        args
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::debug!(client = self.id, %error, "malformed request; closing");
                        let bytes = error.to_reply().to_bytes(self.protocol);
                        flight.push(Kind::Local, Box::pin(async move { bytes }));
                        closing = true;
                        break;
                    }
                };
                if parsed.is_empty() {
                    continue;
                }
                closing |= self
                    .start(parsed, &mut flight, &mut stream, &mut output)
                    .await?;
            }
            input.drain(..consumed);
            consumed = 0;
            if closing && flight.is_empty() {
                stream.flush().await?;
                return Ok(());
            }
            tokio::select! {
                Some(reply) = flight.next(), if !flight.is_empty() => {
                    output.extend_from_slice(&reply);
                    // Gather every other reply already done so one write carries them all.
                    while let Some(reply) = flight.next_ready() {
                        output.extend_from_slice(&reply);
                    }
                    stream.write_all(&output).await?;
                    output.clear();
                }
                read = read_more(&mut stream, &mut input), if !closing && flight.len() < IN_FLIGHT_MAX => {
                    if read? == 0 {
                        closing = true;
                    }
                }
            }
        }
    }

    /// Starts one request, keeping the connection's order: Redis runs one connection's commands
    /// one after another, so a strong read waits for this connection's strong writes in flight
    /// (and a write for its reads) before it is queued at the node, and requests are queued in
    /// the order they arrived — consecutive writes stay pipelined, as the Raft log keeps their
    /// order. Returns true when the connection should close after answering.
    async fn start(
        &mut self,
        args: Vec<Vec<u8>>,
        flight: &mut InFlight,
        stream: &mut TcpStream,
        output: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let started = Instant::now();
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        // READONLY / READWRITE: the Redis Cluster way to opt in to replica (stale) reads.
        if args.len() == 1 && (name == "readonly" || name == "readwrite") && self.authenticated {
            self.read_only = name == "readonly";
            flight.push(Kind::Local, self.ready(Value::ok()));
            return Ok(false);
        }
        let command = match command::parse(args) {
            Ok(command) => command,
            Err(error) => {
                flight.push(Kind::Local, self.ready(Value::error(error.to_string())));
                return Ok(false);
            }
        };
        if !self.authenticated
            && !matches!(
                command,
                Command::Auth { .. } | Command::Hello { .. } | Command::Quit
            )
        {
            flight.push(
                Kind::Local,
                self.ready(Value::error("NOAUTH Authentication required.")),
            );
            return Ok(false);
        }
        let quit = matches!(command, Command::Quit);
        if let Some(value) = self.local(&command) {
            flight.push(Kind::Local, self.ready(value));
            return Ok(quit);
        }
        let protocol = self.protocol;
        let metrics = Arc::clone(&self.metrics);
        let command_name = command.name();
        let mode = command.keys().first().map(|key| Mode::of(key));
        let finish = move |value: Value| {
            metrics.record(command_name, mode, !value.is_error(), started.elapsed());
            value.to_bytes(protocol)
        };
        match plan(command, self.read_only) {
            Ok((kind, request)) => {
                let conflicting = match kind {
                    Kind::StrongRead => Kind::StrongWrite,
                    Kind::StrongWrite => Kind::StrongRead,
                    _ => Kind::Local,
                };
                if conflicting != Kind::Local {
                    flight
                        .drain_while_pending(conflicting, stream, output)
                        .await?;
                }
                let reply: Reply = match self.handle.submit(request).await {
                    Ok(submitted) => Box::pin(async move {
                        let value = match submitted.wait().await {
                            Ok(response) => response_value(response),
                            Err(error) => node_error(error),
                        };
                        finish(value)
                    }),
                    Err(error) => {
                        let bytes = finish(node_error(error));
                        Box::pin(async move { bytes })
                    }
                };
                flight.push(kind, reply);
            }
            Err(command) => {
                // A command of several steps (or spanning both keyspaces) runs alone.
                flight.drain_all(stream, output).await?;
                let value = execute(&self.handle, command, self.read_only).await;
                let bytes = finish(value);
                flight.push(Kind::Local, Box::pin(async move { bytes }));
            }
        }
        Ok(false)
    }

    fn ready(&self, value: Value) -> Reply {
        let bytes = value.to_bytes(self.protocol);
        Box::pin(async move { bytes })
    }

    /// Answers commands about the connection itself (and `None` for the ones that need the node).
    fn local(&mut self, command: &Command) -> Option<Value> {
        Some(match command {
            Command::Ping(None) => Value::pong(),
            Command::Ping(Some(message)) => Value::bulk(message.clone()),
            Command::Echo(message) => Value::bulk(message.clone()),
            Command::Quit => Value::ok(),
            Command::Select(0) => Value::ok(),
            Command::Select(_) => Value::error("ERR DB index is out of range"),
            Command::Auth { password, .. } => self.authenticate(password),
            Command::Hello {
                protocol,
                auth,
                client_name,
            } => {
                match protocol {
                    None => {}
                    Some(2) => self.protocol = Protocol::Resp2,
                    Some(3) => self.protocol = Protocol::Resp3,
                    Some(_) => return Some(Value::error("NOPROTO unsupported protocol version")),
                }
                if let Some((_, password)) = auth {
                    let answer = self.authenticate(password);
                    if answer.is_error() {
                        return Some(answer);
                    }
                }
                if !self.authenticated {
                    return Some(Value::error(
                        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
                    ));
                }
                if let Some(name) = client_name {
                    self.name = Some(name.clone());
                }
                let proto = match self.protocol {
                    Protocol::Resp2 => 2,
                    Protocol::Resp3 => 3,
                };
                Value::Map(vec![
                    (Value::bulk("server"), Value::bulk("concur")),
                    (
                        Value::bulk("version"),
                        Value::bulk(env!("CARGO_PKG_VERSION")),
                    ),
                    (Value::bulk("proto"), Value::Integer(proto)),
                    (Value::bulk("id"), Value::Integer(self.id)),
                    (Value::bulk("mode"), Value::bulk("standalone")),
                    (Value::bulk("role"), Value::bulk("master")),
                    (Value::bulk("modules"), Value::Array(Vec::new())),
                ])
            }
            Command::ClientSetName(name) => {
                self.name = Some(name.clone());
                Value::ok()
            }
            Command::ClientGetName => self.name.clone().map_or(Value::Null, Value::bulk),
            Command::ClientId => Value::Integer(self.id),
            Command::ClientSetInfo => Value::ok(),
            Command::ConcurMode(key) => Value::bulk(Mode::of(key).name()),
            Command::Command(args) => command_reply(args),
            Command::ConfigGet(pattern) => config_get(pattern),
            _ => return None,
        })
    }

    fn authenticate(&mut self, password: &[u8]) -> Value {
        match &self.options.password {
            None => Value::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ),
            Some(expected) if expected.as_bytes() == password => {
                self.authenticated = true;
                Value::ok()
            }
            Some(_) => {
                Value::error("WRONGPASS invalid username-password pair or user is disabled.")
            }
        }
    }
}

async fn read_more(stream: &mut TcpStream, input: &mut Vec<u8>) -> std::io::Result<usize> {
    input.reserve(READ_CHUNK_BYTES);
    stream.read_buf(input).await
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS …`: enough for clients' handshakes.
fn command_reply(args: &[Vec<u8>]) -> Value {
    match args.first().map(|arg| arg.to_ascii_lowercase()) {
        Some(sub) if sub == b"count" => Value::Integer(command::NAMES.len() as i64),
        Some(sub) if sub == b"docs" => Value::Map(Vec::new()),
        _ => Value::Array(Vec::new()),
    }
}

/// `CONFIG GET`: the two settings `redis-benchmark` asks for, answered truthfully.
fn config_get(pattern: &[u8]) -> Value {
    let pattern = pattern.to_ascii_lowercase();
    let mut pairs = Vec::new();
    if pattern == b"save" || pattern == b"*" {
        pairs.push((Value::bulk("save"), Value::bulk("")));
    }
    if pattern == b"appendonly" || pattern == b"*" {
        // Every write is fsync'd before it is acknowledged: the closest Redis setting.
        pairs.push((Value::bulk("appendonly"), Value::bulk("yes")));
    }
    Value::Map(pairs)
}

/// The one node request serving `command`, when it touches one keyspace in one step; otherwise
/// the command back, to run as several steps.
fn plan(command: Command, stale: bool) -> Result<(Kind, NodeRequest), Command> {
    let strong_write = |command: StrongCommand| {
        let bytes = MachineCommand::Strong(command).encode();
        Ok((
            Kind::StrongWrite,
            NodeRequest::Strong(ClientOperation::Write(bytes)),
        ))
    };
    let strong_read = |query: StrongQuery| Ok((Kind::StrongRead, plan_read(query, stale)));
    let available =
        |operation: ApOperation| Ok((Kind::Available, NodeRequest::Available(operation)));
    let mode = |keys: &[Vec<u8>]| {
        let first = Mode::of(keys.first()?);
        keys.iter()
            .all(|key| Mode::of(key) == first)
            .then_some(first)
    };
    match command {
        Command::Get(key) => match Mode::of(&key) {
            Mode::Strong => strong_read(StrongQuery::Get(key)),
            Mode::Available => available(ApOperation::Get(key)),
        },
        Command::Set {
            key,
            value,
            condition,
            get,
        } => match Mode::of(&key) {
            Mode::Strong => strong_write(StrongCommand::Set {
                key,
                value,
                condition,
                get,
            }),
            Mode::Available => available(ApOperation::Set {
                key,
                value,
                condition,
                get,
            }),
        },
        Command::IncrBy { key, delta } => match Mode::of(&key) {
            Mode::Strong => strong_write(StrongCommand::IncrBy { key, delta }),
            Mode::Available => available(ApOperation::IncrBy { key, delta }),
        },
        Command::Del(keys) => match mode(&keys) {
            Some(Mode::Strong) => strong_write(StrongCommand::Del(keys)),
            Some(Mode::Available) => available(ApOperation::Del(keys)),
            None => Err(Command::Del(keys)),
        },
        Command::Exists(keys) => match mode(&keys) {
            Some(Mode::Strong) => strong_read(StrongQuery::Exists(keys)),
            Some(Mode::Available) => available(ApOperation::Exists(keys)),
            None => Err(Command::Exists(keys)),
        },
        Command::MGet(keys) => match mode(&keys) {
            Some(Mode::Strong) => strong_read(StrongQuery::MGet(keys)),
            Some(Mode::Available) => available(ApOperation::MGet(keys)),
            None => Err(Command::MGet(keys)),
        },
        Command::MSet(pairs) => {
            let keys: Vec<Vec<u8>> = pairs.iter().map(|(key, _)| key.clone()).collect();
            match mode(&keys) {
                Some(Mode::Strong) => strong_write(StrongCommand::MSet(pairs)),
                Some(Mode::Available) => available(ApOperation::MSet(pairs)),
                None => Err(Command::MSet(pairs)),
            }
        }
        Command::SAdd { key, members } => match Mode::of(&key) {
            Mode::Strong => strong_write(StrongCommand::SAdd { key, members }),
            Mode::Available => available(ApOperation::SAdd { key, members }),
        },
        Command::SRem { key, members } => match Mode::of(&key) {
            Mode::Strong => strong_write(StrongCommand::SRem { key, members }),
            Mode::Available => available(ApOperation::SRem { key, members }),
        },
        Command::SMembers(key) => match Mode::of(&key) {
            Mode::Strong => strong_read(StrongQuery::SMembers(key)),
            Mode::Available => available(ApOperation::SMembers(key)),
        },
        Command::SIsMember { key, member } => match Mode::of(&key) {
            Mode::Strong => strong_read(StrongQuery::SIsMember { key, member }),
            Mode::Available => available(ApOperation::SIsMember { key, member }),
        },
        Command::SCard(key) => match Mode::of(&key) {
            Mode::Strong => strong_read(StrongQuery::SCard(key)),
            Mode::Available => available(ApOperation::SCard(key)),
        },
        Command::HSet { key, pairs } => match Mode::of(&key) {
            Mode::Strong => strong_write(StrongCommand::HSet { key, pairs }),
            Mode::Available => available(ApOperation::HSet { key, pairs }),
        },
        Command::HGet { key, field } => match Mode::of(&key) {
            Mode::Strong => strong_read(StrongQuery::HGet { key, field }),
            Mode::Available => available(ApOperation::HGet { key, field }),
        },
        Command::HDel { key, fields } => match Mode::of(&key) {
            Mode::Strong => strong_write(StrongCommand::HDel { key, fields }),
            Mode::Available => available(ApOperation::HDel { key, fields }),
        },
        Command::HGetAll(key) => match Mode::of(&key) {
            Mode::Strong => strong_read(StrongQuery::HGetAll(key)),
            Mode::Available => available(ApOperation::HGetAll(key)),
        },
        Command::Type(key) => match Mode::of(&key) {
            Mode::Strong => strong_read(StrongQuery::Type(key)),
            Mode::Available => available(ApOperation::Type(key)),
        },
        other => Err(other),
    }
}

/// The Redis reply for a node's answer.
fn response_value(response: NodeResponse) -> Value {
    match response {
        NodeResponse::Available(Ok(output)) => available_value(output),
        NodeResponse::Available(Err(error)) => Value::error(error.to_string()),
        response => match strong_result(response).and_then(|bytes| strong_output(&bytes)) {
            Ok(output) => strong_value(output),
            Err(error) => node_error(error),
        },
    }
}

fn node_error(error: NodeError) -> Value {
    Value::error(error.to_string())
}

/// Runs one keyspace command and shapes its reply.
pub async fn execute(handle: &NodeHandle, command: Command, read_only: bool) -> Value {
    match run(handle, command, read_only).await {
        Ok(value) => value,
        Err(error) => node_error(error),
    }
}

/// Runs a command that [`plan`] serves in one request.
async fn single(handle: &NodeHandle, command: Command, stale: bool) -> Result<Value, NodeError> {
    match plan(command, stale) {
        Ok((_, request)) => single_request(handle, request).await,
        Err(command) => Ok(Value::error(format!(
            "ERR '{}' is not served here",
            command.name()
        ))),
    }
}

async fn single_request(handle: &NodeHandle, request: NodeRequest) -> Result<Value, NodeError> {
    Ok(response_value(handle.submit(request).await?.wait().await?))
}

/// The request reading `query` from the strong keyspace (this replica's state when `stale`).
fn plan_read(query: StrongQuery, stale: bool) -> NodeRequest {
    let operation = crate::handle::strong_read_operation(query, stale);
    if stale {
        NodeRequest::StrongLocal(operation)
    } else {
        NodeRequest::Strong(operation)
    }
}

/// The keys in each mode (strong, available), each with its position in the request.
fn split_keys(keys: Vec<Vec<u8>>) -> [(Vec<usize>, Vec<Vec<u8>>); 2] {
    let mut parts: [(Vec<usize>, Vec<Vec<u8>>); 2] = Default::default();
    for (position, key) in keys.into_iter().enumerate() {
        let part = &mut parts[usize::from(Mode::of(&key) == Mode::Available)];
        part.0.push(position);
        part.1.push(key);
    }
    parts
}

/// Runs a command of several steps: multi-key commands spanning both keyspaces (one request per
/// keyspace: atomic within each, not across the two), `DBSIZE` and `INFO`. Everything else is
/// one request.
async fn run(handle: &NodeHandle, command: Command, stale: bool) -> Result<Value, NodeError> {
    match command {
        Command::Del(keys) => {
            let mut total = 0;
            for (_, keys) in split_keys(keys) {
                if !keys.is_empty() {
                    let answer = single(handle, Command::Del(keys), stale).await?;
                    if answer.is_error() {
                        return Ok(answer);
                    }
                    total += integer(answer);
                }
            }
            Ok(Value::Integer(total))
        }
        Command::Exists(keys) => {
            let mut total = 0;
            for (_, keys) in split_keys(keys) {
                if !keys.is_empty() {
                    let answer = single(handle, Command::Exists(keys), stale).await?;
                    if answer.is_error() {
                        return Ok(answer);
                    }
                    total += integer(answer);
                }
            }
            Ok(Value::Integer(total))
        }
        Command::MGet(keys) => {
            let mut values = vec![Value::Null; keys.len()];
            for (positions, keys) in split_keys(keys) {
                if keys.is_empty() {
                    continue;
                }
                match single(handle, Command::MGet(keys), stale).await? {
                    Value::Array(items) => {
                        for (position, item) in positions.into_iter().zip(items) {
                            values[position] = item;
                        }
                    }
                    error => return Ok(error),
                }
            }
            Ok(Value::Array(values))
        }
        Command::MSet(pairs) => {
            let (strong_pairs, available_pairs): (Vec<_>, Vec<_>) = pairs
                .into_iter()
                .partition(|(key, _)| Mode::of(key) == Mode::Strong);
            for pairs in [strong_pairs, available_pairs] {
                if !pairs.is_empty() {
                    let answer = single(handle, Command::MSet(pairs), stale).await?;
                    if answer.is_error() {
                        return Ok(answer);
                    }
                }
            }
            Ok(Value::ok())
        }
        Command::DbSize => {
            let strong = single_request(handle, plan_read(StrongQuery::DbSize, stale)).await?;
            let available = NodeRequest::Available(ApOperation::DbSize);
            let available = single_request(handle, available).await?;
            if strong.is_error() {
                return Ok(strong);
            }
            Ok(Value::Integer(integer(strong) + integer(available)))
        }
        Command::Info(section) => info(handle, section.as_deref()).await,
        command => single(handle, command, stale).await,
    }
}

fn integer(value: Value) -> i64 {
    match value {
        Value::Integer(number) => number,
        _ => 0,
    }
}

/// `INFO`: Redis-style sections clients and dashboards look for, from this node's status.
async fn info(handle: &NodeHandle, section: Option<&str>) -> Result<Value, NodeError> {
    let status = handle.status().await?;
    let mut text = String::new();
    let wanted = |name: &str| {
        section.is_none_or(|section| {
            let section = section.to_ascii_lowercase();
            section == "all" || section == "default" || section == "everything" || section == name
        })
    };
    if wanted("server") {
        text.push_str(&format!(
            "# Server\r\nredis_version:7.0.0\r\nconcur_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\nnode_id:n{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            status.node
        ));
    }
    if wanted("replication") {
        text.push_str(&format!(
            "# Replication\r\nrole:{}\r\nraft_role:{}\r\nraft_term:{}\r\nraft_leader:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\n\r\n",
            if status.role == "leader" { "master" } else { "slave" },
            status.role,
            status.term,
            crate::handle::leader_name(status.leader),
            status.commit_index,
            status.applied_index
        ));
    }
    if wanted("keyspace") {
        text.push_str(&format!(
            "# Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\nstrong_keys:{}\r\n\r\n",
            status.strong_keys, status.strong_keys
        ));
    }
    Ok(Value::Verbatim {
        format: *b"txt",
        text: text.into_bytes(),
    })
}

fn strong_value(output: StrongOutput) -> Value {
    match output {
        StrongOutput::Ok => Value::ok(),
        StrongOutput::Nil => Value::Null,
        StrongOutput::Integer(number) => Value::Integer(number),
        StrongOutput::Bulk(bytes) => Value::Bulk(bytes),
        StrongOutput::Values(values) => {
            Value::Array(values.into_iter().map(Value::optional_bulk).collect())
        }
        StrongOutput::Members(members) => {
            Value::Set(members.into_iter().map(Value::Bulk).collect())
        }
        StrongOutput::Pairs(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(field, value)| (Value::Bulk(field), Value::Bulk(value)))
                .collect(),
        ),
        StrongOutput::Type(name) => Value::Simple(name),
        StrongOutput::Error(error) => Value::error(error.to_string()),
    }
}

fn available_value(output: ApOutput) -> Value {
    match output {
        ApOutput::Ok => Value::ok(),
        ApOutput::Nil => Value::Null,
        ApOutput::Integer(number) => Value::Integer(number),
        ApOutput::Bulk(bytes) => Value::Bulk(bytes),
        ApOutput::Array(values) => {
            Value::Array(values.into_iter().map(Value::optional_bulk).collect())
        }
        ApOutput::Members(members) => Value::Set(members.into_iter().map(Value::Bulk).collect()),
        ApOutput::Pairs(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(field, value)| (Value::Bulk(field), Value::Bulk(value)))
                .collect(),
        ),
        ApOutput::Type(name) => Value::Simple(name.to_string()),
    }
}

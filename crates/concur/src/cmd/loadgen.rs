//! `concur bench kv`: a closed-loop key-value load generator that speaks RESP (concur, Redis) and
//! etcd's v3 JSON gateway, so one tool measures all of them the same way.
//!
//! Every client holds one connection, sends `--pipeline` requests, waits for all their replies
//! and repeats until `--requests` have been sent in total. A request's latency runs from the write
//! of its batch to the arrival of its reply (what redis-benchmark reports). Clients are spread
//! over the targets round-robin and all connect before the clock starts. Keys are
//! `<prefix><n>` with `n` uniform in `0..keyspace`, drawn from a generator seeded by `--seed` and
//! the client's number, so a run's keys can be repeated.
//!
//! etcd has no increment, so `--op incr` works against RESP targets only. Its HTTP/1.1 gateway
//! answers pipelined requests in order, so `--pipeline` works for both.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use node::resp::{Value, encode_request, parse_value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Arguments of `concur bench kv`.
#[derive(clap::Args, Debug, Clone)]
pub struct KvArgs {
    /// Servers: `redis://host:port` (concur, Redis) or `etcd://host:port` (etcd's client URL);
    /// several, comma-separated, share the clients round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub target: Vec<String>,
    /// Concurrent connections, each with one batch in flight.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    /// Requests to send in total.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: u64,
    /// The operation: `set` (write), `get` (read) or `incr` (read-modify-write; RESP only).
    #[arg(long, value_enum, default_value_t = Operation::Set)]
    pub op: Operation,
    /// Requests each client sends before waiting for their replies.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pipeline: u32,
    /// Prefix of every key (`ap:` makes concur keys available instead of strong).
    #[arg(long, default_value = "k")]
    pub key_prefix: String,
    /// Number of distinct keys: key numbers are drawn uniformly from `0..keyspace`.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keyspace: u64,
    /// Bytes in each value written by `set`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=(64 << 20)))]
    pub value_size: u32,
    /// Threads of the load generator's runtime (1 leaves the other core to a local server).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Longest wait for a connection or a reply before the client gives up.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The operation every request performs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Write a value (`SET`, etcd put).
    Set,
    /// Read a value (`GET`, etcd range).
    Get,
    /// Add one to a counter (`INCR`).
    Incr,
}

/// A server to load, parsed from a `--target` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A RESP server at `host:port`.
    Redis(String),
    /// An etcd member's client URL, `host:port`.
    Etcd(String),
}

impl Target {
    /// Parses `redis://host:port` or `etcd://host:port` (a trailing `/` is allowed).
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let (scheme, rest) = url.split_once("://").with_context(|| {
            format!("target {url:?} has no scheme: use redis://host:port or etcd://host:port")
        })?;
        let address = rest.trim_end_matches('/');
        let has_port = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port || address.contains('/') {
            bail!("target {url:?} must be scheme://host:port");
        }
        match scheme {
            "redis" => Ok(Target::Redis(address.to_owned())),
            "etcd" | "http" => Ok(Target::Etcd(address.to_owned())),
            other => bail!("target {url:?}: unknown scheme {other:?} (redis or etcd)"),
        }
    }

    /// The target as a URL again.
    fn url(&self) -> String {
        match self {
            Target::Redis(address) => format!("redis://{address}"),
            Target::Etcd(address) => format!("etcd://{address}"),
        }
    }
}

/// What every client shares: the workload and the count of requests handed out.
struct Plan {
    /// The operation.
    operation: Operation,
    /// Key prefix.
    key_prefix: Vec<u8>,
    /// Number of distinct keys.
    keyspace: u64,
    /// The value written by `set`.
    value: Vec<u8>,
    /// Requests per batch.
    pipeline: u64,
    /// Requests to send in total.
    requests: u64,
    /// Requests handed out so far (may overshoot `requests` by up to a batch per client).
    issued: AtomicU64,
    /// Longest wait for one reply.
    timeout: Duration,
    /// Seed of the key choice.
    seed: u64,
}

/// What one client measured.
#[derive(Debug, Default)]
struct ClientOutcome {
    /// Latency of every answered request, in microseconds.
    latencies_us: Vec<u64>,
    /// Requests answered with an error.
    errors: u64,
    /// The first error reply, or why the client stopped early.
    first_error: Option<String>,
    /// Whether the client stopped before its share was done (connection lost, timeout).
    stopped: bool,
}

/// What a run measured, as printed.
#[derive(Debug, serde::Serialize)]
struct KvReport {
    /// The targets, as URLs.
    targets: Vec<String>,
    /// The operation.
    op: Operation,
    /// Concurrent clients.
    clients: u32,
    /// Requests per batch.
    pipeline: u32,
    /// Requests asked for.
    requests: u64,
    /// Requests answered (successfully or with an error reply).
    completed: u64,
    /// Requests answered with an error reply.
    errors: u64,
    /// Clients that stopped early (connection lost or reply timeout).
    stopped_clients: u32,
    /// The first error seen, if any.
    first_error: Option<String>,
    /// Key prefix.
    key_prefix: String,
    /// Distinct keys.
    keyspace: u64,
    /// Value size in bytes.
    value_size: u32,
    /// Wall time from the first request to the last reply.
    elapsed_s: f64,
    /// Answered requests per second.
    requests_per_s: f64,
    /// Latency percentiles.
    latency_ms: LatencyReport,
}

/// Latency summary in milliseconds.
#[derive(Debug, Default, serde::Serialize)]
struct LatencyReport {
    /// Median.
    p50: f64,
    /// 99th percentile.
    p99: f64,
    /// Slowest request.
    max: f64,
    /// Mean.
    mean: f64,
}

/// Runs `concur bench kv`.
pub fn run(args: &KvArgs) -> anyhow::Result<ExitCode> {
    let targets = args
        .target
        .iter()
        .map(|url| Target::parse(url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.op == Operation::Incr && targets.iter().any(|t| matches!(t, Target::Etcd(_))) {
        bail!("etcd has no increment: use --op set or --op get against etcd targets");
    }
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads as usize)
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    let report = runtime.block_on(run_load(args, targets))?;
    print_report(&report, args.json)?;
    let passed = report.errors == 0 && report.completed == report.requests;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Connects every client, runs the load, gathers the measurements.
async fn run_load(args: &KvArgs, targets: Vec<Target>) -> anyhow::Result<KvReport> {
    let plan = Arc::new(Plan {
        operation: args.op,
        key_prefix: args.key_prefix.clone().into_bytes(),
        keyspace: args.keyspace,
        value: vec![b'x'; args.value_size as usize],
        pipeline: u64::from(args.pipeline),
        requests: args.requests,
        issued: AtomicU64::new(0),
        timeout: Duration::from_millis(args.timeout_ms),
        seed: args.seed,
    });
    let mut connections = Vec::with_capacity(args.clients as usize);
    for client in 0..args.clients as usize {
        let target = &targets[client % targets.len()];
        connections.push(Connection::open(target, plan.timeout).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(client, connection)| {
            tokio::spawn(run_client(client as u64, connection, Arc::clone(&plan)))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.context("a client task failed")?);
    }
    let elapsed = started.elapsed();
    Ok(summarise(args, &targets, outcomes, elapsed))
}

/// Folds the clients' outcomes into the report.
fn summarise(
    args: &KvArgs,
    targets: &[Target],
    outcomes: Vec<ClientOutcome>,
    elapsed: Duration,
) -> KvReport {
    let mut latencies_us = Vec::new();
    let (mut errors, mut stopped_clients, mut first_error) = (0, 0, None);
    for outcome in outcomes {
        latencies_us.extend(outcome.latencies_us);
        errors += outcome.errors;
        stopped_clients += u32::from(outcome.stopped);
        first_error = first_error.or(outcome.first_error);
    }
    latencies_us.sort_unstable();
    let completed = latencies_us.len() as u64;
    KvReport {
        targets: targets.iter().map(Target::url).collect(),
        op: args.op,
        clients: args.clients,
        pipeline: args.pipeline,
        requests: args.requests,
        completed,
        errors,
        stopped_clients,
        first_error,
        key_prefix: args.key_prefix.clone(),
        keyspace: args.keyspace,
        value_size: args.value_size,
        elapsed_s: elapsed.as_secs_f64(),
        requests_per_s: completed as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms: latency_report(&latencies_us),
    }
}

/// Percentiles (nearest rank) of sorted latencies in microseconds, in milliseconds.
fn latency_report(sorted_us: &[u64]) -> LatencyReport {
    let Some(&max) = sorted_us.last() else {
        return LatencyReport::default();
    };
    let rank = |q: f64| {
        let index = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len()) - 1;
        sorted_us[index] as f64 / 1e3
    };
    let total: u128 = sorted_us.iter().map(|&us| u128::from(us)).sum();
    LatencyReport {
        p50: rank(0.50),
        p99: rank(0.99),
        max: max as f64 / 1e3,
        mean: total as f64 / sorted_us.len() as f64 / 1e3,
    }
}

/// One client: claim a batch, send it, time every reply, until the requests run out.
async fn run_client(client: u64, mut connection: Connection, plan: Arc<Plan>) -> ClientOutcome {
    let mut outcome = ClientOutcome::default();
    let mut keys = SplitMix64::for_client(plan.seed, client);
    let mut batch = Vec::new();
    loop {
        let first = plan.issued.fetch_add(plan.pipeline, Ordering::Relaxed);
        if first >= plan.requests {
            return outcome;
        }
        let count = plan.pipeline.min(plan.requests - first);
        batch.clear();
        for _ in 0..count {
            let key = keys.below(plan.keyspace);
            connection.encode(&plan, key, &mut batch);
        }
        let sent = Instant::now();
        if let Err(error) = connection.send(&batch).await {
            outcome.stop(format!("write failed: {error:#}"));
            return outcome;
        }
        for _ in 0..count {
            match tokio::time::timeout(plan.timeout, connection.receive(plan.operation)).await {
                Ok(Ok(answer)) => {
                    outcome.latencies_us.push(sent.elapsed().as_micros() as u64);
                    if let Err(text) = answer {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert(text);
                    }
                }
                Ok(Err(error)) => {
                    outcome.stop(format!("{error:#}"));
                    return outcome;
                }
                Err(_) => {
                    outcome.stop(format!("no reply within {} ms", plan.timeout.as_millis()));
                    return outcome;
                }
            }
        }
    }
}

impl ClientOutcome {
    /// Records that the client stopped early, and why.
    fn stop(&mut self, reason: String) {
        self.stopped = true;
        self.first_error.get_or_insert(reason);
    }
}

/// A small seeded generator for key numbers (SplitMix64): fast, and the same seed gives the same keys.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator of client number `client` in a run seeded with `seed`.
    ///
    /// The states are scrambled, not `seed + client`: SplitMix64 walks its state in fixed steps,
    /// so neighbouring plain seeds would give every client the same keys shifted by a few draws.
    fn for_client(seed: u64, client: u64) -> SplitMix64 {
        SplitMix64(mix(seed.wrapping_add(mix(client.wrapping_add(1)))))
    }

    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number in `0..bound` (bound ≥ 1), by multiply-shift (bias below 2^-64 · bound).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
}

/// SplitMix64's output function: a bijection of 64-bit words that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Largest reply header block or body the generator accepts from a server.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// One client connection: a socket, the bytes read but not yet parsed, and the protocol.
struct Connection {
    /// The socket.
    stream: TcpStream,
    /// Bytes read; replies before `start` are already parsed.
    input: Vec<u8>,
    /// Offset of the first unparsed byte in `input`.
    start: usize,
    /// Which protocol, and for HTTP the `Host` header.
    protocol: Wire,
}

/// The protocol a connection speaks.
enum Wire {
    /// RESP requests and replies.
    Resp,
    /// HTTP/1.1 to etcd's JSON gateway; the `Host` header value.
    EtcdHttp(String),
}

impl Connection {
    /// Connects to `target` within `timeout`.
    async fn open(target: &Target, timeout: Duration) -> anyhow::Result<Connection> {
        let (address, protocol) = match target {
            Target::Redis(address) => (address, Wire::Resp),
            Target::Etcd(address) => (address, Wire::EtcdHttp(address.clone())),
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address.as_str()))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {} timed out", target.url()))?
            .with_context(|| format!("cannot connect to {}", target.url()))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            input: Vec::with_capacity(16 << 10),
            start: 0,
            protocol,
        })
    }

    /// Appends the request for key number `key` to `out`.
    fn encode(&self, plan: &Plan, key: u64, out: &mut Vec<u8>) {
        let mut name = plan.key_prefix.clone();
        name.extend_from_slice(key.to_string().as_bytes());
        match &self.protocol {
            Wire::Resp => match plan.operation {
                Operation::Set => encode_request(&[&b"SET"[..], &name, &plan.value], out),
                Operation::Get => encode_request(&[&b"GET"[..], &name], out),
                Operation::Incr => encode_request(&[&b"INCR"[..], &name], out),
            },
            Wire::EtcdHttp(host) => {
                let (path, body) = match plan.operation {
                    Operation::Get => ("range", format!(r#"{{"key":"{}"}}"#, base64(&name))),
                    // `run` refuses incr for etcd before any connection opens.
                    Operation::Set | Operation::Incr => (
                        "put",
                        format!(
                            r#"{{"key":"{}","value":"{}"}}"#,
                            base64(&name),
                            base64(&plan.value)
                        ),
                    ),
                };
                let head = format!(
                    "POST /v3/kv/{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(body.as_bytes());
            }
        }
    }

    /// Writes a batch.
    async fn send(&mut self, batch: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(batch).await?;
        Ok(())
    }

    /// Reads the next reply: `Ok(Ok(()))` for the expected answer, `Ok(Err(text))` for an error
    /// answer (counted, the client goes on), `Err` when the connection is unusable.
    async fn receive(&mut self, operation: Operation) -> anyhow::Result<Result<(), String>> {
        loop {
            let unparsed = &self.input[self.start..];
            let parsed = match &self.protocol {
                Wire::Resp => parse_value(unparsed)
                    .context("malformed RESP reply")?
                    .map(|(value, used)| (check_resp_reply(operation, value), used)),
                Wire::EtcdHttp(_) => parse_http_response(unparsed)?
                    .map(|(response, used)| (check_etcd_response(&response), used)),
            };
            if let Some((answer, used)) = parsed {
                self.start += used;
                if self.start == self.input.len() {
                    self.input.clear();
                    self.start = 0;
                }
                return Ok(answer);
            }
            if self.input.len() - self.start > MAX_RESPONSE_BYTES {
                bail!("reply larger than {MAX_RESPONSE_BYTES} bytes");
            }
            // Move the unparsed tail to the front before it grows the buffer.
            if self.start > 0 {
                self.input.drain(..self.start);
                self.start = 0;
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }
}

/// Whether a RESP reply is the success answer to `operation`; the error text otherwise.
fn check_resp_reply(operation: Operation, reply: Value) -> Result<(), String> {
    match (operation, reply) {
        (_, Value::Error(text)) => Err(text),
        (Operation::Set, Value::Simple(status)) if status == "OK" => Ok(()),
        (Operation::Get, Value::Bulk(_) | Value::Null) | (Operation::Incr, Value::Integer(_)) => {
            Ok(())
        }
        (_, other) => Err(format!("unexpected reply {other:?}")),
    }
}

/// An HTTP response: the status code and the body.
#[derive(Debug, PartialEq, Eq)]
struct HttpResponse {
    /// Status code.
    status: u16,
    /// Body, de-chunked.
    body: Vec<u8>,
}

/// Whether etcd answered 200; the status and the start of the body otherwise.
fn check_etcd_response(response: &HttpResponse) -> Result<(), String> {
    if response.status == 200 {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&response.body[..response.body.len().min(200)]).into_owned();
    Err(format!("HTTP {}: {}", response.status, body.trim()))
}

/// Parses one HTTP/1.1 response from the front of `buf` (body by `Content-Length` or chunked).
/// `Ok(None)` until it has fully arrived; also returns the bytes it took.
fn parse_http_response(buf: &[u8]) -> anyhow::Result<Option<(HttpResponse, usize)>> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_RESPONSE_BYTES {
            bail!("HTTP response head too large");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("HTTP response head is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .with_context(|| format!("bad HTTP status line {status_line:?}"))?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad HTTP header line {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed: usize = value
                .parse()
                .with_context(|| format!("bad Content-Length {value:?}"))?;
            if parsed > MAX_RESPONSE_BYTES {
                bail!("HTTP body of {parsed} bytes is too large");
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body_start = head_end + 4;
    if chunked {
        return Ok(parse_chunked(buf, body_start)?
            .map(|(body, used)| (HttpResponse { status, body }, used)));
    }
    let length = length.unwrap_or(0);
    let end = body_start + length;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        HttpResponse {
            status,
            body: buf[body_start..end].to_vec(),
        },
        end,
    )))
}

/// Decodes a chunked body starting at `start`; returns it and the offset after it.
fn parse_chunked(buf: &[u8], start: usize) -> anyhow::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut position = start;
    loop {
        let Some(line_end) = find(&buf[position..], b"\r\n") else {
            return Ok(None);
        };
        let line =
            std::str::from_utf8(&buf[position..position + line_end]).context("bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {line:?}"))?;
        if size > MAX_RESPONSE_BYTES || body.len() + size > MAX_RESPONSE_BYTES {
            bail!("chunked HTTP body too large");
        }
        position += line_end + 2;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            let Some(trailer_end) = find(&buf[position..], b"\r\n") else {
                return Ok(None);
            };
            if trailer_end == 0 {
                return Ok(Some((body, position + 2)));
            }
            let Some(end) = find(&buf[position..], b"\r\n\r\n") else {
                return Ok(None);
            };
            return Ok(Some((body, position + end + 4)));
        }
        if buf.len() < position + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[position..position + size]);
        position += size + 2;
    }
}

/// Offset of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Standard base64 with padding (what etcd's gateway expects for keys and values).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Prints the report as JSON or as text.
fn print_report(report: &KvReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!("targets     {}", report.targets.join(", "));
    println!(
        "workload    {:?} on {} keys '{}N' ({} byte values), {} clients, pipeline {}",
        report.op,
        report.keyspace,
        report.key_prefix,
        report.value_size,
        report.clients,
        report.pipeline
    );
    println!(
        "throughput  {:.0} requests/s ({} of {} answered in {:.3} s)",
        report.requests_per_s, report.completed, report.requests, report.elapsed_s
    );
    let latency = &report.latency_ms;
    println!(
        "latency     p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  mean {:.3} ms",
        latency.p50, latency.p99, latency.max, latency.mean
    );
    println!(
        "errors      {} error replies, {} clients stopped early",
        report.errors, report.stopped_clients
    );
    if let Some(error) = &report.first_error {
        println!("first error {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::resp::{Limits, Protocol, parse_request};
    use tokio::net::TcpListener;

    #[test]
    fn targets_parse_and_reject_what_they_cannot_reach() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:7001").unwrap(),
            Target::Redis("127.0.0.1:7001".into())
        );
        assert_eq!(
            Target::parse("etcd://localhost:2379/").unwrap(),
            Target::Etcd("localhost:2379".into())
        );
        for bad in [
            "127.0.0.1:7001",
            "redis://127.0.0.1",
            "ftp://h:1",
            "redis://:1",
            "etcd://h:1/v3",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"k42"), "azQy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn http_responses_parse_by_length_and_by_chunks_and_wait_when_partial() {
        let sized =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}next";
        let (response, used) = parse_http_response(sized).unwrap().unwrap();
        assert_eq!(
            response,
            HttpResponse {
                status: 200,
                body: b"{}".to_vec()
            }
        );
        assert_eq!(&sized[used..], b"next");
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let (response, used) = parse_http_response(chunked).unwrap().unwrap();
        assert_eq!(
            response,
            HttpResponse {
                status: 503,
                body: b"abcde".to_vec()
            }
        );
        assert_eq!(used, chunked.len());
        assert_eq!(
            check_etcd_response(&response),
            Err("HTTP 503: abcde".to_owned())
        );
        for bytes in [&sized[..sized.len() - 4], &chunked[..]] {
            for end in 0..bytes.len() - 4 {
                assert_eq!(
                    parse_http_response(&bytes[..end]).unwrap(),
                    None,
                    "prefix of {end}"
                );
            }
        }
        assert!(parse_http_response(b"SMTP 200\r\n\r\n").is_err());
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let latencies: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        let report = latency_report(&latencies);
        assert_eq!((report.p50, report.p99, report.max), (50.0, 99.0, 100.0));
        assert!((report.mean - 50.5).abs() < 1e-9);
        assert_eq!(latency_report(&[]).max, 0.0);
    }

    #[test]
    fn keys_are_seeded_and_cover_the_keyspace() {
        let draw = |seed| {
            let mut keys = SplitMix64(seed);
            (0..1000).map(|_| keys.below(10)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let keys = draw(7);
        assert!((0..10).all(|k| keys.contains(&k)) && keys.iter().all(|&k| k < 10));
    }

    #[test]
    fn clients_draw_independent_keys() {
        // 50 clients × 2000 draws over 10 000 keys miss about 10 000 · e^-10 < 1 key when the
        // clients are independent; clients replaying one sequence would cover only ~2 000.
        let mut seen = vec![false; 10_000];
        for client in 0..50 {
            let mut keys = SplitMix64::for_client(1, client);
            for _ in 0..2000 {
                seen[keys.below(10_000) as usize] = true;
            }
        }
        let covered = seen.iter().filter(|&&hit| hit).count();
        assert!(covered > 9_990, "{covered} keys covered");
    }

    /// Serves RESP on a loopback port: every request is recorded, SET answers OK, GET a value,
    /// INCR a count; a key named `k7` gets an error reply.
    async fn fake_resp_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut input = Vec::new();
                    let mut counter = 0;
                    while stream.read_buf(&mut input).await.unwrap_or(0) > 0 {
                        let mut output = Vec::new();
                        while let Some((args, used)) =
                            parse_request(&input, &Limits::default()).unwrap()
                        {
                            input.drain(..used);
                            counter += 1;
                            let reply = match (args[0].as_slice(), args[1].as_slice()) {
                                (_, b"k7") => Value::error("NOQUORUM no leader"),
                                (b"SET", _) => Value::ok(),
                                (b"GET", _) => Value::bulk("xyz"),
                                _ => Value::Integer(counter),
                            };
                            reply.encode(Protocol::Resp2, &mut output);
                            let _ = seen.send(args);
                        }
                        stream.write_all(&output).await.unwrap();
                    }
                });
            }
        });
        (address, requests)
    }

    /// Arguments for a run against `target`.
    fn kv_args(target: String, op: Operation, pipeline: u32) -> KvArgs {
        KvArgs {
            target: vec![target],
            clients: 4,
            requests: 103,
            op,
            pipeline,
            key_prefix: "k".into(),
            keyspace: 5,
            value_size: 3,
            threads: 1,
            seed: 1,
            timeout_ms: 5_000,
            json: false,
        }
    }

    #[tokio::test]
    async fn resp_load_sends_exactly_the_requests_asked_for_and_counts_error_replies() {
        let (address, mut requests) = fake_resp_server().await;
        for (op, pipeline) in [
            (Operation::Set, 1),
            (Operation::Get, 16),
            (Operation::Incr, 7),
        ] {
            let args = kv_args(format!("redis://{address}"), op, pipeline);
            let targets = vec![Target::parse(&args.target[0]).unwrap()];
            let report = run_load(&args, targets).await.unwrap();
            assert_eq!((report.completed, report.stopped_clients), (103, 0));
            let mut seen = Vec::new();
            while let Ok(request) = requests.try_recv() {
                seen.push(request);
            }
            assert_eq!(seen.len(), 103);
            let name = match op {
                Operation::Set => "SET",
                Operation::Get => "GET",
                Operation::Incr => "INCR",
            };
            assert!(seen.iter().all(|args| args[0] == name.as_bytes()
                && args[1].len() == 2
                && args[1][0] == b'k'));
            if op == Operation::Set {
                assert!(seen.iter().all(|args| args[2] == b"xxx"));
            }
            // Keyspace 5 gives keys k0..k4: none is k7, so no errors.
            assert_eq!(report.errors, 0);
        }
        let mut args = kv_args(format!("redis://{address}"), Operation::Set, 4);
        args.keyspace = 10;
        let report = run_load(&args, vec![Target::parse(&args.target[0]).unwrap()])
            .await
            .unwrap();
        assert!(report.errors > 0 && report.errors < 103);
        assert_eq!(report.first_error.as_deref(), Some("NOQUORUM no leader"));
    }

    #[tokio::test]
    async fn etcd_load_speaks_the_json_gateway() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (seen, mut bodies) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut input = Vec::new();
                    while stream.read_buf(&mut input).await.unwrap_or(0) > 0 {
                        // Requests are whole HTTP messages with a Content-Length: reuse the parser
                        // by dressing each request line as a status line.
                        while let Some(head_end) = find(&input, b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&input[..head_end]).into_owned();
                            let length: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("Content-Length: "))
                                .unwrap()
                                .parse()
                                .unwrap();
                            if input.len() < head_end + 4 + length {
                                break;
                            }
                            let body = String::from_utf8_lossy(
                                &input[head_end + 4..head_end + 4 + length],
                            )
                            .into_owned();
                            let path = head.split(' ').nth(1).unwrap().to_owned();
                            input.drain(..head_end + 4 + length);
                            let _ = seen.send(format!("{path} {body}"));
                            let reply = "{\"header\":{}}";
                            let response = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                                reply.len()
                            );
                            stream.write_all(response.as_bytes()).await.unwrap();
                        }
                    }
                });
            }
        });
        let args = kv_args(format!("etcd://{address}"), Operation::Set, 3);
        let report = run_load(&args, vec![Target::parse(&args.target[0]).unwrap()])
            .await
            .unwrap();
        assert_eq!(
            (report.completed, report.errors, report.stopped_clients),
            (103, 0, 0)
        );
        let first = bodies.recv().await.unwrap();
        assert!(first.starts_with("/v3/kv/put {\"key\":\"a"), "{first}");
        assert!(first.ends_with("\"value\":\"eHh4\"}"), "{first}");
    }

    #[test]
    fn incr_against_etcd_is_refused_up_front() {
        let args = kv_args("etcd://127.0.0.1:1".into(), Operation::Incr, 1);
        let error = run(&args).unwrap_err().to_string();
        assert!(error.contains("etcd has no increment"), "{error}");
    }
}

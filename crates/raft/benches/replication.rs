//! Benchmarks: end-to-end commit throughput of an in-memory 3-replica cluster (instant network and
//! storage, so this measures the protocol code), message codec, and quorum arithmetic.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft::{
    ClientOperation, ClientRequest, Effect, Entries, Entry, EntryPayload, Input, Kv, KvCommand,
    Membership, Message, MessageBody, RaftConfig, RecoveredState, Replica, Role, codec, quorum,
};

/// Delivers every effect at once, in rounds: messages and persist acknowledgements go to the
/// addressee's inbox for the next round.
struct Cluster {
    replicas: Vec<Replica<Kv>>,
    /// Per-replica inputs for the next round, in the order they were produced.
    inboxes: Vec<Vec<Input>>,
    /// The inboxes being delivered in the current round (kept to reuse their allocations).
    delivering: Vec<Vec<Input>>,
    replies: usize,
    /// Clients whose request was answered since the last look (closed-loop benchmark).
    answered: Vec<u64>,
}

impl Cluster {
    /// A cluster whose replicas snapshot (and compact their logs) every `snapshot_every` applied
    /// entries; 0 never.
    fn new(size: u64, snapshot_every: u64) -> Self {
        let voters: Vec<u64> = (1..=size).collect();
        let replicas = voters
            .iter()
            .map(|&id| {
                let mut config = RaftConfig::new(id, voters.iter().copied());
                config.snapshot_threshold_entries = snapshot_every;
                // As a production node runs it: no per-entry report for tracing or checkers.
                config.report_applied = false;
                Replica::new(config, RecoveredState::default(), Kv::new(), 0).expect("replica")
            })
            .collect();
        let mut cluster = Self {
            inboxes: (0..size).map(|_| Vec::new()).collect(),
            delivering: (0..size).map(|_| Vec::new()).collect(),
            replicas,
            replies: 0,
            answered: Vec::new(),
        };
        cluster.inboxes[0].push(Input::Timeout);
        cluster.run();
        assert_eq!(cluster.replicas[0].role(), Role::Leader);
        cluster
    }

    /// Delivers rounds until nothing is left in flight.
    fn run(&mut self) {
        while self.in_flight() > 0 {
            self.deliver_round();
        }
    }

    /// Inputs waiting for the next round.
    fn in_flight(&self) -> usize {
        self.inboxes.iter().map(Vec::len).sum()
    }

    fn commit_batch(&mut self, sequence: &mut u64, batch: usize) {
        for _ in 0..batch {
            *sequence += 1;
            let command = KvCommand::Put {
                key: format!("k{}", *sequence % 1024),
                value: vec![7; 64],
            };
            let request = ClientRequest {
                client_id: 1,
                sequence: *sequence,
                operation: ClientOperation::Write(command.encode()),
            };
            self.inboxes[0].push(Input::Client(request));
        }
        let before = self.replies;
        self.run();
        assert_eq!(
            self.replies - before,
            batch,
            "every write committed and answered"
        );
    }
}

/// The encoded `Put` commands the clients send: 1,024 keys, 64-byte values. Encoded once, so the
/// harness's own cost per write is one copy of a command (the client's request buffer).
fn encoded_puts() -> Vec<Vec<u8>> {
    (0..1024)
        .map(|key| {
            KvCommand::Put {
                key: format!("k{key}"),
                value: vec![7; 64],
            }
            .encode()
        })
        .collect()
}

/// One write of `client` with session number `sequence`.
fn write_request(puts: &[Vec<u8>], client: u64, sequence: u64) -> Input {
    let command = puts[((client * 7 + sequence) % 1024) as usize].clone();
    Input::Client(ClientRequest {
        client_id: client,
        sequence,
        operation: ClientOperation::Write(command),
    })
}

impl Cluster {
    /// Closed loop: `clients` sessions each keep one write outstanding, submitting the next as soon
    /// as the previous is answered, until `writes` have been answered. Inputs are delivered in
    /// rounds: everything queued for a replica when a round starts is handed to it in one
    /// `step_many` (as a driver hands over its backlog), so writes arriving together share one
    /// append, one persist and one AppendEntries per follower.
    fn closed_loop(
        &mut self,
        clients: u64,
        writes: usize,
        sequences: &mut Vec<u64>,
        puts: &[Vec<u8>],
    ) {
        sequences.resize(clients as usize + 1, 0);
        for client in 1..=clients {
            sequences[client as usize] += 1;
            let input = write_request(puts, client, sequences[client as usize]);
            self.inboxes[0].push(input);
        }
        let target = self.replies + writes;
        let mut answered = Vec::new();
        while self.replies < target {
            self.deliver_round();
            std::mem::swap(&mut answered, &mut self.answered);
            for client in answered.drain(..) {
                if self.replies + self.in_flight() < target + clients as usize {
                    sequences[client as usize] += 1;
                    let input = write_request(puts, client, sequences[client as usize]);
                    self.inboxes[0].push(input);
                }
            }
        }
        // Drain what is still in flight (also in rounds) so the next iteration starts clean.
        self.run();
        self.answered.clear();
    }

    /// Hands each replica everything queued for it in one `step_many`.
    fn deliver_round(&mut self) {
        std::mem::swap(&mut self.inboxes, &mut self.delivering);
        let mut delivering = std::mem::take(&mut self.delivering);
        for (node, inbox) in delivering.iter_mut().enumerate() {
            if !inbox.is_empty() {
                self.replicas[node].step_many(1_000, inbox.drain(..));
                self.collect_effects(node);
            }
        }
        self.delivering = delivering;
    }

    fn collect_effects(&mut self, node: usize) {
        while let Some(effect) = self.replicas[node].poll_effect() {
            match effect {
                Effect::Send(message) => {
                    let to = (message.to - 1) as usize;
                    self.inboxes[to].push(Input::Message(message));
                }
                Effect::Persist(request) => {
                    self.inboxes[node].push(Input::PersistDone(request.token))
                }
                Effect::Reply(reply) => {
                    self.replies += 1;
                    self.answered.push(reply.client_id);
                }
                _ => {}
            }
        }
    }
}

/// The shape of openraft's benchmark: N concurrent clients against a 3-node cluster in one process
/// with network and storage stubbed; throughput in committed writes per second. Each replica
/// snapshots its state and compacts its log every 5,000 applied entries (openraft's default
/// policy), so memory stays bounded and the cost of compaction is measured; the `uncompacted`
/// group never snapshots (the log only grows), as the earlier rows of docs/benchmarks.md did.
fn bench_clients(c: &mut Criterion) {
    const WRITES: usize = 20_000;
    for (name, snapshot_every) in [("clients", 5_000), ("clients_uncompacted", 0)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        for clients in [1u64, 64, 256, 1024] {
            group.throughput(Throughput::Elements(WRITES as u64));
            group.bench_function(format!("3_replicas_{clients}_clients"), |b| {
                let mut cluster = Cluster::new(3, snapshot_every);
                let mut sequences = Vec::new();
                let puts = encoded_puts();
                b.iter(|| cluster.closed_loop(clients, WRITES, &mut sequences, &puts));
            });
        }
        group.finish();
    }
}

fn bench_cluster(c: &mut Criterion) {
    let mut group = c.benchmark_group("cluster");
    group.sample_size(20);
    for batch in [1usize, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("commit_3_replicas_batch_{batch}"), |b| {
            let mut cluster = Cluster::new(3, 0);
            let mut sequence = 0;
            b.iter(|| cluster.commit_batch(&mut sequence, batch));
        });
    }
    group.finish();
}

fn bench_codec(c: &mut Criterion) {
    let entries: Entries = (1..=64)
        .map(|index| Entry {
            term: 3,
            index,
            payload: EntryPayload::Command {
                client_id: 1,
                sequence: index,
                command: vec![7; 64].into(),
            },
        })
        .collect();
    let message = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::AppendEntries {
            prev_index: 0,
            prev_term: 0,
            entries,
            leader_commit: 0,
            heartbeat_seq: 1,
        },
    };
    let bytes = codec::encode_message(&message).expect("encode");
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_append_64_entries", |b| {
        b.iter(|| codec::encode_message(std::hint::black_box(&message)))
    });
    group.bench_function("decode_append_64_entries", |b| {
        b.iter(|| codec::decode_message(std::hint::black_box(&bytes)))
    });
    group.finish();
}

fn bench_quorum(c: &mut Criterion) {
    let mut joint = Membership::with_voters([1, 2, 3, 4, 5]);
    joint.outgoing_voters = [3, 4, 5, 6, 7].into_iter().collect();
    let matched = |id: u64| id * 10;
    c.bench_function("quorum/committed_index_joint_5_5", |b| {
        b.iter(|| quorum::committed_index(std::hint::black_box(&joint), &matched))
    });
}

criterion_group!(
    benches,
    bench_cluster,
    bench_clients,
    bench_codec,
    bench_quorum
);
criterion_main!(benches);

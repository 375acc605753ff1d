//! Benchmarks: end-to-end commit throughput of an in-memory 3-replica cluster (instant network and
//! storage, so this measures the protocol code), message codec, and quorum arithmetic.

use std::collections::VecDeque;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft::{
    ClientOperation, ClientRequest, Effect, Entry, EntryPayload, Input, Kv, KvCommand, Membership,
    Message, MessageBody, RaftConfig, RecoveredState, Replica, Role, codec, quorum,
};

/// Delivers every effect at once: messages and persist acknowledgements go to a FIFO queue.
struct Cluster {
    replicas: Vec<Replica<Kv>>,
    queue: VecDeque<(usize, Input)>,
    replies: usize,
}

impl Cluster {
    fn new(size: u64) -> Self {
        let voters: Vec<u64> = (1..=size).collect();
        let replicas = voters
            .iter()
            .map(|&id| {
                let mut config = RaftConfig::new(id, voters.iter().copied());
                config.snapshot_threshold_entries = 0;
                Replica::new(config, RecoveredState::default(), Kv::new(), 0).expect("replica")
            })
            .collect();
        let mut cluster = Self {
            replicas,
            queue: VecDeque::new(),
            replies: 0,
        };
        cluster.queue.push_back((0, Input::Timeout));
        cluster.run(1_000);
        assert_eq!(cluster.replicas[0].role(), Role::Leader);
        cluster
    }

    fn run(&mut self, now_ms: u64) {
        while let Some((node, input)) = self.queue.pop_front() {
            self.replicas[node].step(now_ms, input);
            while let Some(effect) = self.replicas[node].poll_effect() {
                match effect {
                    Effect::Send(message) => {
                        let to = (message.to - 1) as usize;
                        self.queue.push_back((to, Input::Message(message)));
                    }
                    Effect::Persist(request) => self
                        .queue
                        .push_back((node, Input::PersistDone(request.token))),
                    Effect::Reply(_) => self.replies += 1,
                    _ => {}
                }
            }
        }
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
            self.queue.push_back((0, Input::Client(request)));
        }
        let before = self.replies;
        self.run(1_000);
        assert_eq!(
            self.replies - before,
            batch,
            "every write committed and answered"
        );
    }
}

fn bench_cluster(c: &mut Criterion) {
    let mut group = c.benchmark_group("cluster");
    group.sample_size(20);
    for batch in [1usize, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("commit_3_replicas_batch_{batch}"), |b| {
            let mut cluster = Cluster::new(3);
            let mut sequence = 0;
            b.iter(|| cluster.commit_batch(&mut sequence, batch));
        });
    }
    group.finish();
}

fn bench_codec(c: &mut Criterion) {
    let entries: Vec<Entry> = (1..=64)
        .map(|index| Entry {
            term: 3,
            index,
            payload: EntryPayload::Command {
                client_id: 1,
                sequence: index,
                command: vec![7; 64],
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

criterion_group!(benches, bench_cluster, bench_codec, bench_quorum);
criterion_main!(benches);

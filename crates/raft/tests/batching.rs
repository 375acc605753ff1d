//! `Replica::step_many`: inputs handed over together share one append, one persist and one
//! AppendEntries per follower, and end in the same state and answers as stepping them one by one.

use std::collections::{BTreeMap, VecDeque};

use raft::{
    ClientOperation, ClientRequest, Effect, Input, Kv, KvCommand, KvOutput, MessageBody,
    RaftConfig, RecoveredState, Replica, Role,
};

/// Three replicas with instant delivery: every message and persist acknowledgement is queued.
struct Cluster {
    replicas: Vec<Replica<Kv>>,
    queue: VecDeque<(usize, Input)>,
    /// (client, sequence) -> KV output of every successful reply.
    answers: BTreeMap<(u64, u64), Vec<u8>>,
    effects_seen: Vec<(usize, Effect)>,
}

impl Cluster {
    fn new() -> Self {
        let replicas = (1..=3)
            .map(|id| {
                Replica::new(
                    RaftConfig::new(id, [1, 2, 3]),
                    RecoveredState::default(),
                    Kv::new(),
                    0,
                )
                .expect("replica")
            })
            .collect();
        let mut cluster = Self {
            replicas,
            queue: VecDeque::new(),
            answers: BTreeMap::new(),
            effects_seen: Vec::new(),
        };
        cluster.queue.push_back((0, Input::Timeout));
        cluster.run_one_by_one();
        assert_eq!(cluster.replicas[0].role(), Role::Leader);
        cluster.effects_seen.clear();
        cluster
    }

    fn collect(&mut self, node: usize) {
        while let Some(effect) = self.replicas[node].poll_effect() {
            match &effect {
                Effect::Send(message) => {
                    let to = (message.to - 1) as usize;
                    self.queue.push_back((to, Input::Message(message.clone())));
                }
                Effect::Persist(request) => self
                    .queue
                    .push_back((node, Input::PersistDone(request.token))),
                Effect::Reply(reply) => {
                    let output = reply
                        .result
                        .as_ref()
                        .expect("write succeeds")
                        .output
                        .clone();
                    let previous = self
                        .answers
                        .insert((reply.client_id, reply.sequence), output);
                    if let Some(previous) = previous {
                        // A retry answered twice must get the same result both times.
                        assert_eq!(previous, self.answers[&(reply.client_id, reply.sequence)]);
                    }
                }
                _ => {}
            }
            self.effects_seen.push((node, effect));
        }
    }

    fn run_one_by_one(&mut self) {
        while let Some((node, input)) = self.queue.pop_front() {
            self.replicas[node].step(1_000, input);
            self.collect(node);
        }
    }

    /// Rounds: everything queued for a replica is handed over in one `step_many`.
    fn run_in_rounds(&mut self) {
        while !self.queue.is_empty() {
            let mut inboxes: Vec<Vec<Input>> = vec![Vec::new(); 3];
            for (node, input) in self.queue.drain(..) {
                inboxes[node].push(input);
            }
            for (node, inbox) in inboxes.into_iter().enumerate() {
                if !inbox.is_empty() {
                    self.replicas[node].step_many(1_000, inbox);
                    self.collect(node);
                }
            }
        }
    }
}

/// Writes from `clients` sessions, one each, plus a retry of the first (same sequence number).
fn writes(clients: u64) -> Vec<Input> {
    let mut inputs: Vec<Input> = (1..=clients)
        .map(|client| {
            let put = KvCommand::Put {
                key: format!("k{}", client % 7),
                value: client.to_le_bytes().to_vec(),
            };
            Input::Client(ClientRequest {
                client_id: client,
                sequence: 1,
                operation: ClientOperation::Write(put.encode()),
            })
        })
        .collect();
    inputs.push(inputs[0].clone());
    inputs
}

#[test]
fn writes_stepped_together_share_one_persist_and_one_append_per_follower() {
    let mut cluster = Cluster::new();
    cluster.replicas[0].step_many(1_000, writes(50));
    cluster.collect(0);
    let persists: Vec<usize> = cluster
        .effects_seen
        .iter()
        .filter_map(|(_, effect)| match effect {
            Effect::Persist(request) => Some(request.entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(persists, vec![50], "one persist holding the 50 new entries");
    let appends: Vec<(u64, usize)> = cluster
        .effects_seen
        .iter()
        .filter_map(|(_, effect)| match effect {
            Effect::Send(message) => match &message.body {
                MessageBody::AppendEntries { entries, .. } => Some((message.to, entries.len())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        appends,
        vec![(2, 50), (3, 50)],
        "one AppendEntries per follower"
    );
    cluster.run_in_rounds();
    assert_eq!(
        cluster.answers.len(),
        50,
        "every session answered (the retry once more)"
    );
    // The retry was applied once: the first client's write is answered with the value before it.
    assert_eq!(
        KvOutput::decode(&cluster.answers[&(1, 1)]),
        KvOutput::Value(None)
    );
    let leader_state = cluster.replicas[0].state_machine().clone();
    assert_eq!(leader_state.len(), 7);
    // Replicated everywhere (followers learn the commit index with the next traffic).
    assert_eq!(cluster.replicas[0].commit_index(), 51);
    for replica in &cluster.replicas {
        assert_eq!(replica.last_index(), 51);
    }
}

#[test]
fn stepping_in_rounds_ends_where_stepping_one_by_one_does() {
    let mut batched = Cluster::new();
    let mut single = Cluster::new();
    for round in 0..5u64 {
        let inputs = writes(20 + round * 13);
        // Later rounds reuse the session numbers of earlier ones: duplicates, answered again.
        for input in inputs {
            batched.queue.push_back((0, input.clone()));
            single.queue.push_back((0, input));
        }
        batched.run_in_rounds();
        single.run_one_by_one();
    }
    // Both clusters delivered every message, so followers learn the final commit index only
    // with later traffic: drive one more write through both to settle them.
    for cluster in [&mut batched, &mut single] {
        let put = KvCommand::Put {
            key: "last".into(),
            value: b"!".to_vec(),
        };
        cluster.queue.push_back((
            0,
            Input::Client(ClientRequest {
                client_id: 999,
                sequence: 1,
                operation: ClientOperation::Write(put.encode()),
            }),
        ));
        cluster.run_one_by_one();
    }
    assert_eq!(batched.answers, single.answers);
    assert_eq!(
        batched.replicas[0].state_machine(),
        single.replicas[0].state_machine()
    );
    assert_eq!(
        batched.replicas[0].applied_index(),
        single.replicas[0].applied_index()
    );
}

//! Goal: three nodes that write `ap:` keys with no coordination converge, whatever the network
//! does to their anti-entropy messages. Method: property tests run random operations of every
//! kind on three replicas, interleaved with anti-entropy rounds whose messages are delivered,
//! dropped, duplicated and reordered at random; after a final full exchange between every pair
//! the replicas' visible values (judged by `check::convergence::check`) and full encoded states
//! must be equal, each replica must recover the same state from the records it asked to persist,
//! and keys written only by additions (counters, sets) must hold every acknowledged addition.

use std::collections::{BTreeMap, BTreeSet};

use node::available::{ApMessage, ApOperation, ApOutput, Available, SetCondition};
use proptest::prelude::*;
use rand::SeedableRng;
use sim::SimRng;

const REPLICAS: usize = 3;
const KEYS: [&str; 4] = ["ap:a", "ap:b", "ap:c", "ap:d"];
const WORDS: [&str; 4] = ["x", "y", "z", "7"];

fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn operation() -> impl Strategy<Value = ApOperation> {
    let key = (0..KEYS.len()).prop_map(|index| bytes(KEYS[index]));
    let word = (0..WORDS.len()).prop_map(|index| bytes(WORDS[index]));
    let words = proptest::collection::vec(word.clone(), 1..3);
    prop_oneof![
        (key.clone(), word.clone(), any::<bool>()).prop_map(|(key, value, only_new)| {
            ApOperation::Set {
                key,
                value,
                condition: if only_new {
                    SetCondition::IfAbsent
                } else {
                    SetCondition::Always
                },
                get: false,
            }
        }),
        (key.clone(), -5i64..6).prop_map(|(key, delta)| ApOperation::IncrBy { key, delta }),
        (key.clone(), words.clone()).prop_map(|(key, members)| ApOperation::SAdd { key, members }),
        (key.clone(), words.clone()).prop_map(|(key, members)| ApOperation::SRem { key, members }),
        (key.clone(), word.clone(), word.clone()).prop_map(|(key, field, value)| {
            ApOperation::HSet {
                key,
                pairs: vec![(field, value)],
            }
        }),
        (key.clone(), words).prop_map(|(key, fields)| ApOperation::HDel { key, fields }),
        (key.clone(), key.clone())
            .prop_map(|(first, second)| ApOperation::Del(vec![first, second])),
        (key.clone(), word).prop_map(|(key, value)| ApOperation::MSet(vec![(key, value)])),
    ]
}

/// One thing that happens in a run.
#[derive(Clone, Debug)]
enum Step {
    /// A client operation on one replica.
    Operate(usize, ApOperation),
    /// A replica opens an anti-entropy round with a peer.
    Tick(usize, usize),
    /// The in-flight message at this index (modulo their number) is delivered...
    Deliver(usize),
    /// ...delivered and kept in flight for a second delivery later...
    Duplicate(usize),
    /// ...or lost.
    Drop(usize),
}

fn step(operations: BoxedStrategy<ApOperation>) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..REPLICAS, operations).prop_map(|(replica, operation)| Step::Operate(replica, operation)),
        2 => (0..REPLICAS, 0..REPLICAS).prop_map(|(replica, peer)| Step::Tick(replica, peer)),
        3 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::Duplicate),
        1 => any::<usize>().prop_map(Step::Drop),
    ]
}

struct Cluster {
    replicas: Vec<Available>,
    storage: Vec<BTreeMap<String, Vec<u8>>>,
    in_flight: Vec<(u64, u64, ApMessage)>,
    rng: SimRng,
    now_ns: u64,
    steps: u64,
}

impl Cluster {
    fn new() -> Self {
        Self {
            replicas: (0..REPLICAS as u64).map(Available::new).collect(),
            storage: vec![BTreeMap::new(); REPLICAS],
            in_flight: Vec::new(),
            rng: SimRng::seed_from_u64(1),
            now_ns: 1_000,
            steps: 0,
        }
    }

    fn persist(&mut self, replica: usize) {
        for (key, value) in self.replicas[replica].take_writes() {
            match value {
                Some(value) => self.storage[replica].insert(key, value),
                None => self.storage[replica].remove(&key),
            };
        }
    }

    fn deliver(&mut self, from: u64, to: u64, message: ApMessage) {
        let replica = to as usize;
        let replies = self.replicas[replica]
            .receive(self.now_ns, from, message)
            .expect("honest messages decode");
        self.persist(replica);
        self.in_flight
            .extend(replies.into_iter().map(|(next, reply)| (to, next, reply)));
    }

    fn run(&mut self, step: Step) {
        // Clocks move on, sometimes not at all, so equal timestamps happen too.
        self.steps += 1;
        self.now_ns += (self.steps % 3) * 700;
        match step {
            Step::Operate(replica, operation) => {
                let _ = self.replicas[replica].execute(self.now_ns, operation);
                self.persist(replica);
            }
            Step::Tick(replica, peer) => {
                let messages =
                    self.replicas[replica].tick(self.now_ns, &[peer as u64], &mut self.rng);
                self.in_flight.extend(
                    messages
                        .into_iter()
                        .map(|(to, message)| (replica as u64, to, message)),
                );
            }
            Step::Deliver(index) | Step::Duplicate(index) | Step::Drop(index) => {
                if self.in_flight.is_empty() {
                    return;
                }
                let index = index % self.in_flight.len();
                let (from, to, message) = match step {
                    Step::Duplicate(_) => self.in_flight[index].clone(),
                    _ => self.in_flight.remove(index),
                };
                if !matches!(step, Step::Drop(_)) {
                    self.deliver(from, to, message);
                }
            }
        }
    }

    /// Every pair runs a full round in both directions, twice, with every message delivered.
    fn final_exchange(&mut self) {
        self.in_flight.clear();
        for _ in 0..2 {
            for opener in 0..REPLICAS {
                for peer in 0..REPLICAS {
                    if opener == peer {
                        continue;
                    }
                    self.now_ns += 1_000;
                    let messages =
                        self.replicas[opener].tick(self.now_ns, &[peer as u64], &mut self.rng);
                    self.in_flight.extend(
                        messages
                            .into_iter()
                            .map(|(to, message)| (opener as u64, to, message)),
                    );
                    while let Some((from, to, message)) = self.in_flight.pop() {
                        self.deliver(from, to, message);
                    }
                }
            }
        }
    }

    fn assert_converged(&self) -> Result<(), TestCaseError> {
        let states: Vec<(u64, serde_json::Value)> = self
            .replicas
            .iter()
            .map(|replica| (replica.replica(), replica.snapshot_json()))
            .collect();
        let verdict = check::convergence::check(&states);
        prop_assert!(verdict.is_converged(), "{verdict:?}");
        for replica in &self.replicas[1..] {
            prop_assert_eq!(replica.encoded_state(), self.replicas[0].encoded_state());
        }
        for (index, replica) in self.replicas.iter().enumerate() {
            let recovered = Available::recover(
                replica.replica(),
                self.storage[index]
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_slice())),
            )
            .expect("own records recover");
            prop_assert_eq!(recovered.encoded_state(), replica.encoded_state());
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_operations_under_lossy_delivery_converge_after_a_full_exchange(
        steps in proptest::collection::vec(step(operation().boxed()), 1..120)
    ) {
        let mut cluster = Cluster::new();
        for step in steps {
            cluster.run(step);
        }
        cluster.final_exchange();
        cluster.assert_converged()?;
    }

    #[test]
    fn counters_and_sets_written_only_by_additions_keep_every_addition(
        steps in proptest::collection::vec(
            step(prop_oneof![
                (-9i64..10).prop_map(|delta| ApOperation::IncrBy { key: bytes("ap:n"), delta }),
                (0u8..50).prop_map(|member| ApOperation::SAdd {
                    key: bytes("ap:s"),
                    members: vec![vec![member]],
                }),
            ].boxed()),
            1..150,
        )
    ) {
        let mut expected_total = 0i64;
        let mut expected_members = BTreeSet::new();
        let mut cluster = Cluster::new();
        for step in steps {
            match &step {
                Step::Operate(_, ApOperation::IncrBy { delta, .. }) => expected_total += delta,
                Step::Operate(_, ApOperation::SAdd { members, .. }) => {
                    expected_members.extend(members.iter().cloned());
                }
                _ => {}
            }
            cluster.run(step);
        }
        cluster.final_exchange();
        cluster.assert_converged()?;
        for replica in &mut cluster.replicas {
            let total = replica.execute(0, ApOperation::Get(bytes("ap:n"))).unwrap();
            let shown = match total {
                ApOutput::Nil => 0,
                ApOutput::Bulk(text) => String::from_utf8(text).unwrap().parse().unwrap(),
                other => panic!("GET answered {other:?}"),
            };
            prop_assert_eq!(shown, expected_total);
            let members = replica.execute(0, ApOperation::SMembers(bytes("ap:s"))).unwrap();
            prop_assert_eq!(
                members,
                ApOutput::Members(expected_members.iter().cloned().collect())
            );
        }
    }
}

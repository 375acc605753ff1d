//! The Raft paper / MIT 6.824 scenarios and the seed's partition behaviours, run in the in-crate
//! deterministic harness with the five safety properties asserted after every event.

mod harness;

use harness::{Network, output, test_config};
use raft::{
    ClientError, ClientOperation, KvCommand, KvOutput, MembershipChange, RaftConfig,
    ReadConsistency, Role,
};

#[test]
fn initial_election_elects_one_leader_and_keeps_it() {
    let mut network = Network::new(&[1, 2, 3], 1);
    let leader = network.elect(2_000);
    let term = network.replica(leader).term();
    network.run_for(3_000);
    assert_eq!(
        network.leader(),
        Some(leader),
        "leader changed without faults"
    );
    assert_eq!(
        network.replica(leader).term(),
        term,
        "spurious election without faults"
    );
    for id in network.ids() {
        assert_eq!(network.replica(id).term(), term);
        assert_eq!(network.replica(id).leader(), Some(leader));
    }
}

#[test]
fn re_election_after_leader_disconnect_and_old_leader_rejoins_as_follower() {
    let mut network = Network::new(&[1, 2, 3], 2);
    let first = network.elect(2_000);
    network.isolate(first);
    let rest: Vec<_> = network
        .ids()
        .into_iter()
        .filter(|&id| id != first)
        .collect();
    assert!(
        network.run_until(3_000, |n| n.leader_in(&rest).is_some()),
        "no re-election"
    );
    // Check-quorum: the isolated leader steps down on its own.
    assert!(
        network.run_until(1_000, |n| n.replica(first).role() != Role::Leader),
        "isolated leader kept leading"
    );
    network.heal();
    network.run_for(1_000);
    assert_eq!(network.leaders().len(), 1);
    assert_ne!(network.leader(), Some(first));
}

#[test]
fn basic_agreement_and_kv_operations() {
    let mut network = Network::new(&[1, 2, 3, 4, 5], 3);
    network.elect(2_000);
    network.put(10, 1, "a", "1");
    let increment = network.client_write(
        10,
        2,
        KvCommand::Increment {
            key: "a".into(),
            delta: 5,
        },
        2_000,
    );
    assert_eq!(
        output(&increment.expect("reply").expect("ok")),
        KvOutput::Counter(6)
    );
    let cas = KvCommand::CompareAndSwap {
        key: "a".into(),
        expected: Some(b"6".to_vec()),
        new: Some(b"x".to_vec()),
    };
    let swapped = network
        .client_write(10, 3, cas, 2_000)
        .expect("reply")
        .expect("ok");
    assert_eq!(
        output(&swapped),
        KvOutput::Swapped {
            swapped: true,
            current: Some(b"x".to_vec())
        }
    );
    let deleted = network
        .client_write(10, 4, KvCommand::Delete { key: "a".into() }, 2_000)
        .expect("reply")
        .expect("ok");
    assert_eq!(output(&deleted), KvOutput::Value(Some(b"x".to_vec())));
    network.put(10, 5, "b", "2");
    assert!(network.settle(2_000));
    for id in network.ids() {
        assert_eq!(network.value(id, "a"), None);
        assert_eq!(network.value(id, "b").as_deref(), Some("2"));
    }
    let leader = network.leader().expect("leader");
    let read = network
        .read(leader, 11, 1, "b", ReadConsistency::Linearizable)
        .expect("reply")
        .expect("ok");
    assert_eq!(output(&read), KvOutput::Value(Some(b"2".to_vec())));
    assert!(!read.stale);
}

// ---- the seed's partition behaviours -------------------------------------------------------------

#[test]
fn majority_side_keeps_serving_and_minority_refuses_writes_naming_last_leader() {
    let mut network = Network::new(&[1, 2, 3, 4, 5], 4);
    let leader = network.elect(2_000);
    network.put(20, 1, "k", "before");
    assert!(network.settle(2_000));
    // The old leader and one follower form the minority.
    let follower = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    let minority = [leader, follower];
    let majority: Vec<_> = network
        .ids()
        .into_iter()
        .filter(|id| !minority.contains(id))
        .collect();
    network.partition(&[&minority, &majority]);
    // A write sent to the minority leader before it notices cannot commit: indefinite, not lost.
    network.submit(
        leader,
        21,
        1,
        ClientOperation::Write(
            KvCommand::Put {
                key: "m".into(),
                value: b"x".to_vec(),
            }
            .encode(),
        ),
    );
    assert!(network.run_until(3_000, |n| n.leader_in(&majority).is_some()));
    assert!(
        network.run_until(1_000, |n| n.replica(leader).role() != Role::Leader),
        "minority leader must step down (check-quorum)"
    );
    let pending = network
        .take_reply(21, 1)
        .expect("pending write answered on step-down");
    assert!(
        matches!(pending, Err(ClientError::Indefinite { .. })),
        "{pending:?}"
    );
    // Majority keeps serving.
    network.put(22, 1, "k", "after");
    // Minority refuses writes, naming the last leader it knew.
    let refused = network.request(
        follower,
        23,
        1,
        ClientOperation::Write(
            KvCommand::Put {
                key: "k".into(),
                value: b"no".to_vec(),
            }
            .encode(),
        ),
        500,
    );
    match refused.expect("answered") {
        Err(ClientError::NotLeader { leader_hint, .. }) => assert_eq!(leader_hint, Some(leader)),
        other => panic!("minority accepted a write: {other:?}"),
    }
    // Minority refuses linearizable reads; a stale read is served and marked stale.
    let read = network
        .read(follower, 24, 1, "k", ReadConsistency::Linearizable)
        .expect("answered");
    assert!(
        matches!(read, Err(ClientError::NotLeader { .. })),
        "{read:?}"
    );
    let stale = network
        .read(follower, 24, 2, "k", ReadConsistency::Stale)
        .expect("answered")
        .expect("served");
    assert!(stale.stale);
    assert_eq!(output(&stale), KvOutput::Value(Some(b"before".to_vec())));
    // After healing the minority catches up by log.
    network.heal();
    assert!(network.settle(3_000));
    for id in network.ids() {
        assert_eq!(network.value(id, "k").as_deref(), Some("after"));
    }
}

#[test]
fn even_split_elects_no_one_and_refuses_writes() {
    let mut network = Network::new(&[1, 2, 3, 4], 5);
    let leader = network.elect(2_000);
    network.put(30, 1, "k", "v");
    let partner = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("partner");
    let left = [leader, partner];
    let right: Vec<_> = network
        .ids()
        .into_iter()
        .filter(|id| !left.contains(id))
        .collect();
    network.partition(&[&left, &right]);
    network.run_for(1_000);
    network.run_for(5_000);
    assert!(
        network.leaders().is_empty(),
        "a 2/2 split elected {:?}",
        network.leaders()
    );
    for id in network.ids() {
        let reply = network.request(
            id,
            31,
            id,
            ClientOperation::Write(
                KvCommand::Put {
                    key: "k".into(),
                    value: b"w".to_vec(),
                }
                .encode(),
            ),
            300,
        );
        assert!(
            matches!(reply, Some(Err(ClientError::NotLeader { .. }))),
            "node {id}: {reply:?}"
        );
    }
    network.heal();
    network.elect(3_000);
    network.put(30, 2, "k", "healed");
}

#[test]
fn higher_term_always_wins() {
    // Node 3 runs without pre-vote, so while cut off it keeps raising its term.
    let mut configs: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&id| test_config(id, &[1, 2, 3], 6))
        .collect();
    configs[2].pre_vote = false;
    let mut network = Network::with_configs(configs, 6);
    network.elect(2_000);
    network.isolate(3);
    network.run_for(3_000);
    let high = network.replica(3).term();
    assert!(
        high > network.replica(1).term(),
        "isolated node should have campaigned"
    );
    network.heal();
    assert!(network.run_until(3_000, |n| {
        n.leader().is_some_and(|l| n.replica(l).term() >= high)
    }));
    for id in network.ids() {
        assert!(network.replica(id).term() >= high);
    }
    network.put(32, 1, "k", "v");
}

#[test]
fn rejoining_node_catches_up_by_log() {
    let mut network = Network::new(&[1, 2, 3], 7);
    let leader = network.elect(2_000);
    let lagging = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    network.isolate(lagging);
    for sequence in 1..=30 {
        network.put(40, sequence, &format!("k{sequence}"), "v");
    }
    network.heal();
    assert!(network.settle(3_000));
    assert_eq!(network.value(lagging, "k30").as_deref(), Some("v"));
    assert_eq!(network.delivered.get("snapshot"), None);
}

#[test]
fn trailing_entries_let_a_slightly_behind_follower_catch_up_from_the_log() {
    // Goal: with `snapshot_trailing_entries`, a follower that missed fewer entries than are kept
    // behind the snapshot catches up by AppendEntries (no snapshot transfer), while the leader
    // still snapshots; one that missed more gets the snapshot. Method: snapshot every 10 entries,
    // keep 30; 60 writes reach everyone (so the leader has compacted), then a follower is cut off
    // for 25 writes, or (second run) for 60.
    for (missed, expect_snapshot) in [(25u64, false), (60, true)] {
        let (mut network, leader, lagging) = snapshotting_cluster(|config| {
            config.snapshot_trailing_entries = 30;
        });
        for sequence in 1..=60 {
            network.put(41, sequence, &format!("key-{sequence}"), "v");
        }
        assert!(network.settle(2_000));
        network.isolate(lagging);
        for sequence in 61..=60 + missed {
            network.put(41, sequence, &format!("key-{sequence}"), "v");
        }
        let kept_from = network.replica(leader).snapshot_meta().index;
        let applied = network.replica(leader).applied_index();
        assert!(
            kept_from > 0 && applied >= kept_from + 30,
            "the leader compacted, keeping the entries behind its snapshot ({kept_from}, {applied})"
        );
        network.heal();
        assert!(network.settle(5_000));
        let snapshots = network.delivered.get("snapshot").copied().unwrap_or(0);
        assert_eq!(
            snapshots > 0,
            expect_snapshot,
            "missed {missed}: {snapshots} chunks"
        );
        assert_eq!(
            network
                .value(lagging, &format!("key-{}", 60 + missed))
                .as_deref(),
            Some("v")
        );
        assert_eq!(network.value(lagging, "key-1").as_deref(), Some("v"));
    }
}

/// Three replicas snapshotting every 10 entries (plus `adjust`), a leader elected; returns the
/// network, the leader and one follower.
fn snapshotting_cluster(adjust: impl Fn(&mut RaftConfig)) -> (Network, u64, u64) {
    let configs = [1, 2, 3]
        .iter()
        .map(|&id| {
            let mut config = test_config(id, &[1, 2, 3], 8);
            config.snapshot_threshold_entries = 10;
            adjust(&mut config);
            config
        })
        .collect();
    let mut network = Network::with_configs(configs, 8);
    let leader = network.elect(2_000);
    let follower = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    (network, leader, follower)
}

#[test]
fn rejoining_node_catches_up_by_snapshot_after_compaction() {
    let (mut network, leader, lagging) = snapshotting_cluster(|config| {
        config.snapshot_chunk_bytes = 64; // force several chunks
    });
    network.isolate(lagging);
    for sequence in 1..=40 {
        network.put(41, sequence, &format!("key-{sequence}"), "some value bytes");
    }
    assert!(
        network.replica(leader).snapshot_meta().index > 10,
        "leader should have compacted"
    );
    network.heal();
    assert!(network.settle(5_000));
    assert!(
        network.delivered.get("snapshot").copied().unwrap_or(0) > 1,
        "expected a chunked snapshot transfer"
    );
    assert_eq!(
        network.value(lagging, "key-40").as_deref(),
        Some("some value bytes")
    );
    assert_eq!(
        network.value(lagging, "key-1").as_deref(),
        Some("some value bytes")
    );
    // The session table travelled inside the snapshot: a retried old request is not re-applied.
    let retried = network.client_write(
        41,
        40,
        KvCommand::Put {
            key: "key-40".into(),
            value: b"again".to_vec(),
        },
        2_000,
    );
    assert!(retried.expect("reply").is_ok());
    assert!(network.settle(2_000));
    assert_eq!(
        network.value(lagging, "key-40").as_deref(),
        Some("some value bytes")
    );
}

// ---- randomized paper / 6.824 scenarios ------------------------------------------------------------

/// Goal: the Figure 8 (unreliable) churn never violates safety and every acknowledged write
/// survives. Method: per seed, 5 nodes with drops, duplicates and reordering; random crashes,
/// restarts and partitions between client writes; then heal and check every acknowledged
/// increment is reflected exactly once.
#[test]
fn figure_8_unreliable_and_churn_keep_acknowledged_writes() {
    for seed in 0..seed_count(12) {
        churn(100 + seed, 0);
    }
}

/// Same churn with aggressive snapshotting, so compaction and InstallSnapshot race the faults.
#[test]
fn churn_with_snapshots_keeps_acknowledged_writes() {
    for seed in 0..seed_count(8) {
        churn(500 + seed, 4);
    }
}

/// Seeds per randomized test; `RAFT_SEEDS=500 cargo test` for a longer sweep.
fn seed_count(default: u64) -> u64 {
    std::env::var("RAFT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn churn(seed: u64, snapshot_threshold_entries: u64) {
    {
        let configs = [1, 2, 3, 4, 5]
            .iter()
            .map(|&id| raft::RaftConfig {
                snapshot_threshold_entries,
                snapshot_chunk_bytes: 48,
                ..test_config(id, &[1, 2, 3, 4, 5], seed)
            })
            .collect();
        let mut network = Network::with_configs(configs, seed);
        network.drop_per_mille = 50;
        network.duplicate_per_mille = 50;
        network.latency_max_ms = 30; // reordering
        network.persist_delay_max_ms = 8;
        let mut acknowledged = 0i64;
        let mut sequence = 0;
        for round in 0..60 {
            match network.rng.below(6) {
                0 | 1 => {
                    // Half of the crashes hit the leader, mid-replication.
                    let victim = match network.leader() {
                        Some(leader) if network.rng.below(2) == 0 => leader,
                        _ => 1 + network.rng.below(5),
                    };
                    network.crash(victim);
                    let pause_ms = network.rng.below(200);
                    network.run_for(pause_ms);
                    network.restart(victim);
                }
                2 | 3 => {
                    let cut = 1 + network.rng.below(5);
                    let (left, right): (Vec<_>, Vec<_>) =
                        network.ids().into_iter().partition(|&id| id <= cut);
                    network.partition(&[&left, &right]);
                }
                _ => network.heal(),
            }
            sequence += 1;
            let command = KvCommand::Increment {
                key: "counter".into(),
                delta: 1,
            };
            if let Some(Ok(_)) = network.client_write(50, sequence, command, 400) {
                acknowledged += 1;
            }
            network.run_for(5 * round);
        }
        network.heal();
        for id in network.ids() {
            if !network.is_up(id) {
                network.restart(id);
            }
        }
        // Retry the last request so its outcome is definite, then compare.
        let last = network.client_write(
            50,
            sequence,
            KvCommand::Increment {
                key: "counter".into(),
                delta: 1,
            },
            10_000,
        );
        let counter = match output(&last.expect("reply").expect("healed cluster serves")) {
            KvOutput::Counter(n) => n,
            other => panic!("seed {seed}: {other:?}"),
        };
        assert!(
            counter >= acknowledged,
            "seed {seed}: acknowledged {acknowledged} increments but counter is {counter}"
        );
        assert!(
            counter <= sequence as i64,
            "seed {seed}: {counter} increments applied from {sequence} requests"
        );
        assert!(network.settle(5_000), "seed {seed}: cluster did not settle");
        assert!(network.checker.checks > 1_000);
        if std::env::var("RAFT_VERBOSE").is_ok() {
            eprintln!(
                "seed {seed}: counter {counter} acknowledged {acknowledged} delivered {:?}",
                network.delivered
            );
        }
    }
}

#[test]
fn unreliable_agreement_every_write_applied_once_everywhere() {
    let mut network = Network::new(&[1, 2, 3, 4, 5], 9);
    network.drop_per_mille = 100;
    network.duplicate_per_mille = 100;
    network.latency_max_ms = 40;
    network.elect(3_000);
    for sequence in 1..=40 {
        let reply = network.client_write(
            60,
            sequence,
            KvCommand::Increment {
                key: "n".into(),
                delta: 1,
            },
            10_000,
        );
        assert!(matches!(reply, Some(Ok(_))), "write {sequence}: {reply:?}");
    }
    network.drop_per_mille = 0;
    assert!(network.settle(5_000));
    for id in network.ids() {
        assert_eq!(network.value(id, "n").as_deref(), Some("40"), "node {id}");
    }
}

#[test]
fn determinism_same_seed_same_trace() {
    let run = |seed: u64| {
        let mut network = Network::new(&[1, 2, 3], seed);
        network.drop_per_mille = 80;
        network.latency_max_ms = 25;
        network.elect(3_000);
        for sequence in 1..=10 {
            let _ = network.client_write(
                70,
                sequence,
                KvCommand::Put {
                    key: "k".into(),
                    value: vec![sequence as u8],
                },
                2_000,
            );
        }
        network.trace_hash
    };
    assert_eq!(run(42), run(42), "same seed must give the same run");
    assert_ne!(run(42), run(43));
}

/// Goal: a crash at any moment loses no acknowledged write. Method: crash a random node (unsynced
/// writes dropped) right after every acknowledged write, restart it, and at the end check every
/// acknowledged key on every node.
#[test]
fn crash_at_any_moment_loses_no_acknowledged_write() {
    for seed in 0..6 {
        let mut network = Network::new(&[1, 2, 3], 200 + seed);
        network.persist_delay_max_ms = 20;
        network.elect(2_000);
        let mut acknowledged = Vec::new();
        for sequence in 1..=20u64 {
            let key = format!("k{sequence}");
            let command = KvCommand::Put {
                key: key.clone(),
                value: b"v".to_vec(),
            };
            if let Some(Ok(_)) = network.client_write(80, sequence, command, 3_000) {
                acknowledged.push(key);
            }
            let victim = 1 + network.rng.below(3);
            let pause_ms = network.rng.below(15);
            network.run_for(pause_ms);
            network.crash(victim);
            let pause_ms = network.rng.below(100);
            network.run_for(pause_ms);
            network.restart(victim);
        }
        assert!(network.settle(5_000), "seed {seed}");
        for key in &acknowledged {
            for id in network.ids() {
                assert_eq!(
                    network.value(id, key).as_deref(),
                    Some("v"),
                    "seed {seed}: node {id} lost acknowledged {key}"
                );
            }
        }
    }
}

#[test]
fn corrupted_log_record_is_detected_and_repaired_from_peers() {
    let mut network = Network::new(&[1, 2, 3], 10);
    let leader = network.elect(2_000);
    for sequence in 1..=10 {
        network.put(90, sequence, &format!("k{sequence}"), "v");
    }
    assert!(network.settle(2_000));
    let victim = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    network.crash(victim);
    let node = network.nodes.get_mut(&victim).expect("node");
    let middle = node.storage.durable_bytes() / 2;
    assert!(node.storage.corrupt_byte(middle));
    network.restart(victim);
    assert!(
        network.replica(victim).is_repairing(),
        "checksum failure must be detected"
    );
    assert!(
        network.replica(victim).last_index() < network.replica(leader).last_index(),
        "the bad record and its successors are dropped"
    );
    // A restart in the middle of repair (still cut off) stays in repair: the status is durable.
    network.isolate(victim);
    network.run_for(100);
    network.crash(victim);
    network.restart(victim);
    assert!(
        network.replica(victim).is_repairing(),
        "repair status lost by a restart"
    );
    network.heal();
    network.put(90, 11, "k11", "v");
    assert!(network.settle(3_000));
    assert!(
        !network.replica(victim).is_repairing(),
        "repair completes once caught up"
    );
    // After repair, a restart finds every record, including those written after the bad one.
    network.run_for(100);
    network.crash(victim);
    network.restart(victim);
    assert!(
        !network.replica(victim).is_repairing(),
        "finished repair not durable"
    );
    assert_eq!(
        network.replica(victim).last_index(),
        network.replica(leader).last_index()
    );
    assert!(network.settle(3_000));
    for sequence in 1..=11 {
        assert_eq!(
            network.value(victim, &format!("k{sequence}")).as_deref(),
            Some("v")
        );
    }
}

#[test]
fn membership_change_under_faults() {
    let mut network = Network::new(&[1, 2, 3], 11);
    let mut config = test_config(4, &[], 11);
    config.initial_voters.clear();
    network.add_node(config, None);
    let mut config = test_config(5, &[], 11);
    config.initial_voters.clear();
    network.add_node(config, None);
    network.drop_per_mille = 30;
    network.elect(2_000);
    network.put(100, 1, "k", "v");
    let mut sequence = 0;
    let mut change = |network: &mut Network, change: MembershipChange| {
        for _ in 0..50 {
            sequence += 1;
            let leader = network.elect(5_000);
            match network.request(
                leader,
                101,
                sequence,
                ClientOperation::ChangeMembership(change.clone()),
                2_000,
            ) {
                Some(Ok(_)) => return,
                _ => network.run_for(100),
            }
        }
        panic!("membership change {change:?} never succeeded");
    };
    change(&mut network, MembershipChange::AddLearner(4));
    assert!(
        network.run_until(3_000, |n| n.replica(4).applied_index() >= 2),
        "learner catches up"
    );
    assert_eq!(network.replica(4).role(), Role::Follower);
    change(&mut network, MembershipChange::AddVoter(4));
    // Crash the leader right after a change, mid-flight.
    let leader = network.elect(2_000);
    network.crash(leader);
    network.run_for(500);
    network.restart(leader);
    change(&mut network, MembershipChange::AddVoter(5));
    let leader = network.elect(2_000);
    change(&mut network, MembershipChange::Remove(leader));
    assert!(
        network.run_until(3_000, |n| n.leader().is_some_and(|l| l != leader)),
        "removed leader hands over"
    );
    // A two-voter swap goes through joint consensus.
    let voters = network
        .replica(network.leader().expect("leader"))
        .membership()
        .voters
        .clone();
    let mut target = raft::Membership::with_voters(voters.iter().copied().filter(|&v| v != 4));
    target.voters.insert(leader);
    change(&mut network, MembershipChange::Replace(target.clone()));
    assert!(network.run_until(5_000, |n| {
        n.leader()
            .is_some_and(|l| !n.replica(l).membership().is_joint())
    }));
    network.drop_per_mille = 0;
    network.put(100, 2, "k", "w");
    assert!(network.settle(5_000));
    for id in network.ids() {
        assert_eq!(
            network.replica(id).membership().voters,
            target.voters,
            "node {id}"
        );
        assert_eq!(network.value(id, "k").as_deref(), Some("w"), "node {id}");
    }
}

#[test]
fn backup_leader_backs_up_over_many_conflicting_entries() {
    // 6.824 "Backup": a partitioned leader accumulates 50 uncommitted entries; the majority commits
    // 50 others; after healing the old entries are replaced quickly (fast backtracking).
    let mut network = Network::new(&[1, 2, 3, 4, 5], 12);
    let old = network.elect(2_000);
    let ids = network.ids();
    let partner = ids.iter().copied().find(|&id| id != old).expect("partner");
    let minority = [old, partner];
    let majority: Vec<_> = ids
        .iter()
        .copied()
        .filter(|id| !minority.contains(id))
        .collect();
    network.partition(&[&minority, &majority]);
    for sequence in 1..=50 {
        network.submit(
            old,
            110,
            sequence,
            ClientOperation::Write(
                KvCommand::Put {
                    key: format!("lost{sequence}"),
                    value: b"x".to_vec(),
                }
                .encode(),
            ),
        );
    }
    network.run_for(100);
    assert!(
        network.replica(partner).last_index() >= 50,
        "minority follower holds the doomed entries"
    );
    assert!(network.run_until(3_000, |n| n.leader_in(&majority).is_some()));
    for sequence in 1..=50 {
        network.put(111, sequence, &format!("kept{sequence}"), "v");
    }
    network.heal();
    let appends_before = network.delivered.get("append").copied().unwrap_or(0);
    assert!(network.settle(3_000));
    let appends = network.delivered.get("append").copied().unwrap_or(0) - appends_before;
    assert!(appends < 400, "backtracking took {appends} AppendEntries");
    for id in ids {
        assert_eq!(network.value(id, "lost1"), None);
        assert_eq!(network.value(id, "kept50").as_deref(), Some("v"));
    }
}

#[test]
fn leadership_transfer_hands_over_to_the_target() {
    let mut network = Network::new(&[1, 2, 3], 13);
    let leader = network.elect(2_000);
    network.put(120, 1, "k", "v");
    let target = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("target");
    let started = network.request(
        leader,
        121,
        1,
        ClientOperation::TransferLeadership(target),
        1_000,
    );
    assert!(started.expect("reply").is_ok());
    assert!(
        network.run_until(1_000, |n| n.leader() == Some(target)),
        "transfer did not complete"
    );
    network.put(120, 2, "k", "w");
    assert!(network.settle(2_000));
    assert_eq!(network.value(leader, "k").as_deref(), Some("w"));
}

#[test]
fn lease_reads_skip_the_confirmation_round_while_the_lease_holds() {
    let configs = [1, 2, 3]
        .iter()
        .map(|&id| raft::RaftConfig {
            lease_reads: true,
            ..test_config(id, &[1, 2, 3], 14)
        })
        .collect();
    let mut network = Network::with_configs(configs, 14);
    let leader = network.elect(2_000);
    network.put(130, 1, "k", "v");
    network.run_for(200); // heartbeats establish the lease
    // Answered within the same step: no round trip needed.
    network.submit(
        leader,
        131,
        1,
        ClientOperation::Read {
            query: raft::KvQuery::Get { key: "k".into() }.encode(),
            consistency: ReadConsistency::Linearizable,
        },
    );
    let reply = network
        .take_reply(131, 1)
        .expect("served from the lease without a round trip")
        .expect("ok");
    assert_eq!(output(&reply), KvOutput::Value(Some(b"v".to_vec())));
    // Without the lease (ReadIndex), the same read needs a heartbeat round.
    let mut network = Network::new(&[1, 2, 3], 14);
    let leader = network.elect(2_000);
    network.put(130, 1, "k", "v");
    network.submit(
        leader,
        131,
        1,
        ClientOperation::Read {
            query: raft::KvQuery::Get { key: "k".into() }.encode(),
            consistency: ReadConsistency::Linearizable,
        },
    );
    assert!(network.take_reply(131, 1).is_none());
    assert!(network.run_until(100, |n| n.replies.iter().any(|(_, r)| r.client_id == 131)));
}

/// Goal: membership churn (single-server and joint changes) under crashes and partitions keeps
/// safety and loses no acknowledged write. Method: 5 servers, 3 initial voters; each round one
/// random fault or a random configuration change, then a client increment; finally heal and
/// compare the counter with the acknowledgements.
#[test]
fn membership_churn_under_faults_keeps_acknowledged_writes() {
    let first_seed = std::env::var("RAFT_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first_seed..first_seed + seed_count(10) {
        let mut configs: Vec<_> = [1, 2, 3]
            .iter()
            .map(|&id| test_config(id, &[1, 2, 3], seed))
            .collect();
        for id in [4, 5] {
            configs.push(test_config(id, &[], seed));
        }
        let mut network = Network::with_configs(configs, 900 + seed);
        network.drop_per_mille = 20;
        network.latency_max_ms = 20;
        let mut acknowledged = 0;
        let mut sequence = 0;
        let mut admin_sequence = 0;
        for _round in 0..50 {
            match network.rng.below(7) {
                0 => {
                    let victim = 1 + network.rng.below(5);
                    network.crash(victim);
                    let pause_ms = network.rng.below(300);
                    network.run_for(pause_ms);
                    network.restart(victim);
                }
                1 => {
                    let cut = 1 + network.rng.below(5);
                    let (left, right): (Vec<_>, Vec<_>) =
                        network.ids().into_iter().partition(|&id| id <= cut);
                    network.partition(&[&left, &right]);
                }
                2 => network.heal(),
                _ => {
                    if let Some(leader) = network.leader() {
                        let id = 1 + network.rng.below(5);
                        let change = match network.rng.below(4) {
                            0 => MembershipChange::AddLearner(id),
                            1 => MembershipChange::AddVoter(id),
                            2 => MembershipChange::Remove(id),
                            _ => {
                                let mask = 1 + network.rng.below(31);
                                let voters = (1..=5).filter(|bit| mask & (1 << (bit - 1)) != 0);
                                MembershipChange::Replace(raft::Membership::with_voters(voters))
                            }
                        };
                        admin_sequence += 1;
                        let _ = network.request(
                            leader,
                            901,
                            admin_sequence,
                            ClientOperation::ChangeMembership(change),
                            300,
                        );
                    }
                }
            }
            sequence += 1;
            let command = KvCommand::Increment {
                key: "n".into(),
                delta: 1,
            };
            if let Some(Ok(_)) = network.client_write(900, sequence, command, 400) {
                acknowledged += 1;
            }
        }
        network.heal();
        network.drop_per_mille = 0;
        for id in network.ids() {
            if !network.is_up(id) {
                network.restart(id);
            }
        }
        let last = network.client_write(
            900,
            sequence,
            KvCommand::Increment {
                key: "n".into(),
                delta: 1,
            },
            20_000,
        );
        let counter = match output(
            &last
                .unwrap_or_else(|| panic!("seed {seed}: no reply\n{}", network.describe()))
                .expect("healed cluster serves"),
        ) {
            KvOutput::Counter(n) => n,
            other => panic!("seed {seed}: {other:?}"),
        };
        assert!(
            counter >= acknowledged,
            "seed {seed}: acknowledged {acknowledged}, counter {counter}"
        );
        assert!(
            counter <= sequence as i64,
            "seed {seed}: exactly-once violated"
        );
        assert!(network.settle(10_000), "seed {seed}: did not settle");
        let leader = network.leader().expect("leader");
        if std::env::var("RAFT_VERBOSE").is_ok() {
            eprintln!(
                "seed {seed}: counter {counter} acknowledged {acknowledged} membership {:?}",
                network.replica(leader).membership()
            );
        }
    }
}

/// Goal: linearizable reads never return stale values under churn, with ReadIndex and with lease
/// reads, including leader pauses longer than the election timeout (B7). Method: one counter; each
/// round a fault (crash, partition, heal, pause/resume a leader), one increment, then reads at
/// random live nodes. A read invoked after an increment was acknowledged with value v must return
/// at least v, and never more than the number of increments issued.
#[test]
fn linearizable_reads_under_churn_with_and_without_leases() {
    for lease_reads in [false, true] {
        for seed in 0..seed_count(8) {
            read_churn(1_300 + seed, lease_reads);
        }
    }
}

fn read_churn(seed: u64, lease_reads: bool) {
    let configs = [1, 2, 3, 4, 5]
        .iter()
        .map(|&id| raft::RaftConfig {
            lease_reads,
            ..test_config(id, &[1, 2, 3, 4, 5], seed)
        })
        .collect();
    let mut network = Network::with_configs(configs, seed);
    network.drop_per_mille = 20;
    network.latency_max_ms = 20;
    let mut floor = 0i64;
    let mut issued = 0i64;
    let mut paused: Option<u64> = None;
    let mut served = 0;
    for _round in 0..50 {
        match network.rng.below(6) {
            0 => {
                let victim = 1 + network.rng.below(5);
                if paused != Some(victim) {
                    network.crash(victim);
                    network.run_for(50);
                    network.restart(victim);
                }
            }
            1 => {
                let cut = 1 + network.rng.below(5);
                let (left, right): (Vec<_>, Vec<_>) =
                    network.ids().into_iter().partition(|&id| id <= cut);
                network.partition(&[&left, &right]);
            }
            2 => {
                if paused.is_none()
                    && let Some(leader) = network.leader()
                {
                    network.pause(leader);
                    paused = Some(leader);
                }
            }
            3 => {
                if let Some(node) = paused.take() {
                    network.resume(node);
                }
            }
            _ => network.heal(),
        }
        issued += 1;
        let command = KvCommand::Increment {
            key: "c".into(),
            delta: 1,
        };
        if let Some(Ok(response)) = network.client_write(1, issued as u64, command, 400)
            && let KvOutput::Counter(value) = output(&response)
        {
            floor = floor.max(value);
        }
        for reader in 0..3 {
            // The first reader asks whoever looks like the leader, the others random nodes.
            let node = match network.leader() {
                Some(leader) if reader == 0 => leader,
                _ => 1 + network.rng.below(5),
            };
            if paused == Some(node) || !network.is_up(node) {
                continue;
            }
            let invoked_floor = floor;
            let sequence = (issued * 10 + reader) as u64;
            if let Some(Ok(response)) =
                network.read(node, 2, sequence, "c", ReadConsistency::Linearizable)
            {
                let value = match output(&response) {
                    KvOutput::Value(None) => 0,
                    KvOutput::Value(Some(bytes)) => String::from_utf8_lossy(&bytes)
                        .parse::<i64>()
                        .expect("integer"),
                    other => panic!("{other:?}"),
                };
                assert!(
                    value >= invoked_floor,
                    "seed {seed} lease {lease_reads}: stale read {value} at node {node} after {invoked_floor} was acknowledged\n{}",
                    network.describe()
                );
                assert!(
                    value <= issued,
                    "seed {seed}: read {value} but only {issued} increments issued"
                );
                served += 1;
            }
        }
    }
    assert!(served >= 15, "seed {seed}: only {served} reads served");
}

#[test]
fn read_index_rounds_are_batched_under_load() {
    let mut network = Network::new(&[1, 2, 3], 15);
    let leader = network.elect(2_000);
    network.put(140, 1, "k", "v");
    assert!(network.settle(2_000));
    let appends_before = network.delivered.get("append").copied().unwrap_or(0);
    for sequence in 1..=50 {
        network.submit(
            leader,
            141,
            sequence,
            ClientOperation::Read {
                query: raft::KvQuery::Get { key: "k".into() }.encode(),
                consistency: ReadConsistency::Linearizable,
            },
        );
    }
    assert!(network.run_until(
        200,
        |n| n.replies.iter().filter(|(_, r)| r.client_id == 141).count() == 50
    ));
    let rounds = (network.delivered.get("append").copied().unwrap_or(0) - appends_before) / 2;
    assert!(rounds <= 4, "50 reads took {rounds} confirmation rounds");
    for sequence in 1..=50 {
        let reply = network
            .take_reply(141, sequence)
            .expect("reply")
            .expect("read");
        assert_eq!(output(&reply), KvOutput::Value(Some(b"v".to_vec())));
    }
}

/// Goal: MIT 6.824's Figure 8 test — leaders crash right after accepting commands, so entries of
/// old terms sit on minorities and must never be committed by counting (B1). Method: per seed,
/// 1000 iterations of "submit to the leader, wait 0–13 ms (sometimes 0–500 ms), crash the leader,
/// keep at least 3 of 5 up"; the five safety properties are checked after every event; finally
/// all servers come back and must agree.
#[test]
fn figure_8_leader_crashes_never_commit_prior_term_entries_by_count() {
    for seed in 0..seed_count(10) {
        let configs = [1, 2, 3, 4, 5]
            .iter()
            // One entry per message, so an old-term entry can reach a majority before the new
            // leader's no-op does (otherwise batching hides the Figure 8 window).
            .map(|&id| raft::RaftConfig {
                pre_vote: false,
                max_entries_per_message: 1,
                ..test_config(id, &[1, 2, 3, 4, 5], 2_000 + seed)
            })
            .collect();
        let mut network = Network::with_configs(configs, 2_000 + seed);
        network.persist_delay_max_ms = 3;
        let mut up: Vec<u64> = vec![1, 2, 3, 4, 5];
        for iteration in 0..1_000u64 {
            if let Some(leader) = network.leader() {
                let command = KvCommand::Put {
                    key: format!("k{}", iteration % 7),
                    value: iteration.to_le_bytes().to_vec(),
                };
                network.submit(
                    leader,
                    3,
                    iteration + 1,
                    ClientOperation::Write(command.encode()),
                );
            }
            let wait_ms = if network.rng.below(10) == 0 {
                network.rng.below(500)
            } else {
                network.rng.below(13)
            };
            network.run_for(wait_ms);
            if let Some(leader) = network.leader()
                && network.rng.below(2) == 0
            {
                network.crash(leader);
                up.retain(|&id| id != leader);
            }
            if up.len() < 3 {
                let down: Vec<u64> = network
                    .ids()
                    .into_iter()
                    .filter(|id| !up.contains(id))
                    .collect();
                let revived = down[network.rng.below(down.len() as u64) as usize];
                network.restart(revived);
                up.push(revived);
            }
        }
        for id in network.ids() {
            if !network.is_up(id) {
                network.restart(id);
            }
        }
        network.put(4, 1, "final", "x");
        assert!(network.settle(5_000), "seed {seed}: did not settle");
        if std::env::var("RAFT_VERBOSE").is_ok() {
            let leader = network.leader().expect("leader");
            eprintln!(
                "seed {seed}: term {} last {} commit {}",
                network.replica(leader).term(),
                network.replica(leader).last_index(),
                network.replica(leader).commit_index()
            );
        }
    }
}

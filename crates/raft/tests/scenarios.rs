//! The Raft paper / MIT 6.824 scenarios and the seed's partition behaviours, run in the in-crate
//! deterministic harness with the five safety properties asserted after every event.

mod harness;

use harness::{Network, output, test_config};
use raft::{ClientError, ClientOperation, KvCommand, KvOutput, MembershipChange, ReadConsistency, Role};

#[test]
fn initial_election_elects_one_leader_and_keeps_it() {
    let mut network = Network::new(&[1, 2, 3], 1);
    let leader = network.elect(2_000);
    let term = network.replica(leader).term();
    network.run_for(3_000);
    assert_eq!(network.leader(), Some(leader), "leader changed without faults");
    assert_eq!(network.replica(leader).term(), term, "spurious election without faults");
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
    let rest: Vec<_> = network.ids().into_iter().filter(|&id| id != first).collect();
    assert!(network.run_until(3_000, |n| n.leader_in(&rest).is_some()), "no re-election");
    // Check-quorum: the isolated leader steps down on its own.
    assert!(network.run_until(1_000, |n| n.replica(first).role() != Role::Leader), "isolated leader kept leading");
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
    let increment = network.client_write(10, 2, KvCommand::Increment { key: "a".into(), delta: 5 }, 2_000);
    assert_eq!(output(&increment.expect("reply").expect("ok")), KvOutput::Counter(6));
    let cas = KvCommand::CompareAndSwap { key: "a".into(), expected: Some(b"6".to_vec()), new: Some(b"x".to_vec()) };
    let swapped = network.client_write(10, 3, cas, 2_000).expect("reply").expect("ok");
    assert_eq!(output(&swapped), KvOutput::Swapped { swapped: true, current: Some(b"x".to_vec()) });
    let deleted = network.client_write(10, 4, KvCommand::Delete { key: "a".into() }, 2_000).expect("reply").expect("ok");
    assert_eq!(output(&deleted), KvOutput::Value(Some(b"x".to_vec())));
    network.put(10, 5, "b", "2");
    assert!(network.settle(2_000));
    for id in network.ids() {
        assert_eq!(network.value(id, "a"), None);
        assert_eq!(network.value(id, "b").as_deref(), Some("2"));
    }
    let leader = network.leader().expect("leader");
    let read = network.read(leader, 11, 1, "b", ReadConsistency::Linearizable).expect("reply").expect("ok");
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
    let follower = network.ids().into_iter().find(|&id| id != leader).expect("follower");
    let minority = [leader, follower];
    let majority: Vec<_> = network.ids().into_iter().filter(|id| !minority.contains(id)).collect();
    network.partition(&[&minority, &majority]);
    // A write sent to the minority leader before it notices cannot commit: indefinite, not lost.
    network.submit(leader, 21, 1, ClientOperation::Write(KvCommand::Put { key: "m".into(), value: b"x".to_vec() }.encode()));
    assert!(network.run_until(3_000, |n| n.leader_in(&majority).is_some()));
    assert!(network.run_until(1_000, |n| n.replica(leader).role() != Role::Leader), "minority leader must step down (check-quorum)");
    let pending = network.take_reply(21, 1).expect("pending write answered on step-down");
    assert!(matches!(pending, Err(ClientError::Indefinite { .. })), "{pending:?}");
    // Majority keeps serving.
    network.put(22, 1, "k", "after");
    // Minority refuses writes, naming the last leader it knew.
    let refused = network.request(follower, 23, 1, ClientOperation::Write(KvCommand::Put { key: "k".into(), value: b"no".to_vec() }.encode()), 500);
    match refused.expect("answered") {
        Err(ClientError::NotLeader { leader_hint, .. }) => assert_eq!(leader_hint, Some(leader)),
        other => panic!("minority accepted a write: {other:?}"),
    }
    // Minority refuses linearizable reads; a stale read is served and marked stale.
    let read = network.read(follower, 24, 1, "k", ReadConsistency::Linearizable).expect("answered");
    assert!(matches!(read, Err(ClientError::NotLeader { .. })), "{read:?}");
    let stale = network.read(follower, 24, 2, "k", ReadConsistency::Stale).expect("answered").expect("served");
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
    let partner = network.ids().into_iter().find(|&id| id != leader).expect("partner");
    let left = [leader, partner];
    let right: Vec<_> = network.ids().into_iter().filter(|id| !left.contains(id)).collect();
    network.partition(&[&left, &right]);
    network.run_for(1_000);
    network.run_for(5_000);
    assert!(network.leaders().is_empty(), "a 2/2 split elected {:?}", network.leaders());
    for id in network.ids() {
        let reply = network.request(id, 31, id, ClientOperation::Write(KvCommand::Put { key: "k".into(), value: b"w".to_vec() }.encode()), 300);
        assert!(matches!(reply, Some(Err(ClientError::NotLeader { .. }))), "node {id}: {reply:?}");
    }
    network.heal();
    network.elect(3_000);
    network.put(30, 2, "k", "healed");
}

#[test]
fn higher_term_always_wins() {
    // Node 3 runs without pre-vote, so while cut off it keeps raising its term.
    let mut configs: Vec<_> = [1, 2, 3].iter().map(|&id| test_config(id, &[1, 2, 3], 6)).collect();
    configs[2].pre_vote = false;
    let mut network = Network::with_configs(configs, 6);
    network.elect(2_000);
    network.isolate(3);
    network.run_for(3_000);
    let high = network.replica(3).term();
    assert!(high > network.replica(1).term(), "isolated node should have campaigned");
    network.heal();
    assert!(network.run_until(3_000, |n| n.leader().is_some_and(|l| n.replica(l).term() >= high)));
    for id in network.ids() {
        assert!(network.replica(id).term() >= high);
    }
    network.put(32, 1, "k", "v");
}

#[test]
fn rejoining_node_catches_up_by_log() {
    let mut network = Network::new(&[1, 2, 3], 7);
    let leader = network.elect(2_000);
    let lagging = network.ids().into_iter().find(|&id| id != leader).expect("follower");
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
fn rejoining_node_catches_up_by_snapshot_after_compaction() {
    let configs = [1, 2, 3]
        .iter()
        .map(|&id| {
            let mut config = test_config(id, &[1, 2, 3], 8);
            config.snapshot_threshold_entries = 10;
            config.snapshot_chunk_bytes = 64; // force several chunks
            config
        })
        .collect();
    let mut network = Network::with_configs(configs, 8);
    let leader = network.elect(2_000);
    let lagging = network.ids().into_iter().find(|&id| id != leader).expect("follower");
    network.isolate(lagging);
    for sequence in 1..=40 {
        network.put(41, sequence, &format!("key-{sequence}"), "some value bytes");
    }
    assert!(network.replica(leader).snapshot_meta().index > 10, "leader should have compacted");
    network.heal();
    assert!(network.settle(5_000));
    assert!(network.delivered.get("snapshot").copied().unwrap_or(0) > 1, "expected a chunked snapshot transfer");
    assert_eq!(network.value(lagging, "key-40").as_deref(), Some("some value bytes"));
    assert_eq!(network.value(lagging, "key-1").as_deref(), Some("some value bytes"));
    // The session table travelled inside the snapshot: a retried old request is not re-applied.
    let retried = network.client_write(41, 40, KvCommand::Put { key: "key-40".into(), value: b"again".to_vec() }, 2_000);
    assert!(retried.expect("reply").is_ok());
    assert!(network.settle(2_000));
    assert_eq!(network.value(lagging, "key-40").as_deref(), Some("some value bytes"));
}

//! The Raft paper / MIT 6.824 scenarios and the seed's partition behaviours, run on the
//! deterministic simulator through `sim::adapters::raft`. Every scenario runs with the safety
//! observer checking the five Raft properties after every event (`RaftCluster::run_until`
//! fails on the first violation), and those with clients also pass the linearizability checker.

use std::collections::BTreeMap;

use raft::{ClientError, ClientOperation, KvCommand, MembershipChange, Role};
use sim::adapters::raft::{RaftCluster, RaftRequest, RaftResponse, RaftSettings};
use sim::history::write_jsonl;
use sim::network::Partition;
use sim::{Config, Fault, NodeId, RequestId};

const SECOND_NS: u64 = 1_000_000_000;

fn cluster(seed: u64, nodes: usize, settings: RaftSettings) -> RaftCluster {
    let mut config = Config::new(seed, nodes);
    config.clients.timeout_ns = 2 * SECOND_NS;
    RaftCluster::new(config, settings)
}

/// Runs `duration_ns` more, failing the test (with the seed) on a safety violation.
fn run(cluster: &mut RaftCluster, duration_ns: u64) {
    if let Err((at_ns, violation)) = cluster.run_for(duration_ns) {
        let seed = cluster.simulation.config().seed;
        panic!("seed {seed}: {violation} at {at_ns} ns");
    }
}

fn put(key: &str, value: u64) -> RaftRequest {
    let command = KvCommand::Put {
        key: key.into(),
        value: value.to_string().into_bytes(),
    };
    RaftRequest::Direct(ClientOperation::Write(command.encode()))
}

fn replies(cluster: &mut RaftCluster) -> BTreeMap<RequestId, RaftResponse> {
    cluster.simulation.take_replies().into_iter().collect()
}

fn is_ok(response: Option<&RaftResponse>) -> bool {
    matches!(response, Some(RaftResponse::Reply(Ok(_))))
}

fn leaders(cluster: &RaftCluster) -> Vec<NodeId> {
    (0..cluster.simulation.config().nodes as NodeId)
        .filter(|&node| {
            cluster
                .replica(node)
                .is_some_and(|r| r.role() == Role::Leader)
        })
        .collect()
}

fn partition(cluster: &mut RaftCluster, side: &[NodeId]) {
    let nodes = cluster.simulation.config().nodes;
    let fault = Fault::Partition(Partition::symmetric(nodes, side));
    cluster.simulation.apply_fault(&fault);
}

fn linearizable(cluster: &RaftCluster) -> bool {
    let mut jsonl = Vec::new();
    write_jsonl(cluster.simulation.history(), &mut jsonl).expect("in-memory write");
    let text = String::from_utf8(jsonl).expect("JSON is UTF-8");
    let history = check::history::History::from_jsonl(&text).expect("valid history");
    check::linearizability::check(&history).is_linearizable()
}

/// Commits one write through the current leader; returns whether it was acknowledged.
fn commit_one(cluster: &mut RaftCluster, key: &str, value: u64) -> bool {
    let Some(leader) = cluster.leader() else {
        run(cluster, SECOND_NS);
        return false;
    };
    let request_id = cluster.simulation.submit(leader, put(key, value));
    run(cluster, SECOND_NS);
    is_ok(replies(cluster).get(&request_id))
}

#[test]
fn initial_election() {
    // Goal: three nodes elect exactly one leader and keep it while nothing fails (6.824 2A).
    // Method: run 2 s, check one leader and equal terms; run 3 s more, check the term is stable.
    let mut cluster = cluster(1, 3, RaftSettings::new(3));
    run(&mut cluster, 2 * SECOND_NS);
    assert_eq!(leaders(&cluster).len(), 1, "one leader after 2 s");
    let terms: Vec<u64> = (0..3).map(|n| cluster.replica(n).unwrap().term()).collect();
    assert!(
        terms.iter().all(|&t| t == terms[0]),
        "terms agree: {terms:?}"
    );
    run(&mut cluster, 3 * SECOND_NS);
    assert_eq!(
        cluster.replica(0).unwrap().term(),
        terms[0],
        "no election without failures"
    );
    assert_eq!(cluster.observer.elections(), 1);
}

#[test]
fn re_election() {
    // Goal: a new leader is elected when the leader is cut off, the old one rejoins as follower,
    // and no leader exists without a quorum (6.824 2A). Method: partitions on 3 nodes.
    let mut cluster = cluster(2, 3, RaftSettings::new(3));
    run(&mut cluster, 2 * SECOND_NS);
    let first = cluster.leader().expect("initial leader");
    partition(&mut cluster, &[first]);
    run(&mut cluster, 3 * SECOND_NS);
    let second = cluster.leader().expect("a new leader on the majority side");
    assert_ne!(first, second);
    cluster.simulation.apply_fault(&Fault::Heal);
    run(&mut cluster, 2 * SECOND_NS);
    assert_eq!(leaders(&cluster).len(), 1, "the old leader stepped down");
    // Cut the leader and one follower apart from each other: nobody has a quorum.
    let leader = cluster.leader().expect("leader");
    let follower = (0..3).find(|&n| n != leader).unwrap();
    let third = (0..3).find(|&n| n != leader && n != follower).unwrap();
    let nodes = 3;
    let three_way = Partition::from_groups(
        nodes,
        &[vec![leader], vec![follower], vec![third]],
        vec![(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)],
        "three-way",
    );
    cluster.simulation.apply_fault(&Fault::Partition(three_way));
    run(&mut cluster, 3 * SECOND_NS);
    assert!(
        leaders(&cluster).is_empty(),
        "no quorum, no leader (check-quorum)"
    );
    cluster.simulation.apply_fault(&Fault::Heal);
    run(&mut cluster, 3 * SECOND_NS);
    assert_eq!(
        leaders(&cluster).len(),
        1,
        "a leader once the quorum is back"
    );
}

#[test]
fn no_quorum_no_agreement() {
    // Goal: with 3 of 5 followers cut off, the leader's writes do not commit, and agreement
    // resumes when they return (6.824 2B FailNoAgree). Method: partition, submit, heal.
    let mut cluster = cluster(3, 5, RaftSettings::new(5));
    run(&mut cluster, 2 * SECOND_NS);
    assert!(commit_one(&mut cluster, "x", 1), "baseline write commits");
    let leader = cluster.leader().expect("leader");
    let commit_before = cluster.replica(leader).unwrap().commit_index();
    let partner = (0..5).find(|&n| n != leader).unwrap();
    partition(&mut cluster, &[leader, partner]);
    let request_id = cluster.simulation.submit(leader, put("x", 2));
    run(&mut cluster, 2 * SECOND_NS);
    let answers = replies(&mut cluster);
    assert!(!is_ok(answers.get(&request_id)), "no quorum, no commit");
    assert_eq!(
        cluster.replica(leader).unwrap().commit_index(),
        commit_before,
        "the minority leader commits nothing"
    );
    cluster.simulation.apply_fault(&Fault::Heal);
    run(&mut cluster, 3 * SECOND_NS);
    assert!(commit_one(&mut cluster, "x", 3), "agreement resumes");
}

/// Crashes the leader (or a random node) again and again while writes go in, keeping at least
/// a quorum up, then restarts everyone and checks a final write commits.
fn crash_leaders_repeatedly(seed: u64, unreliable: bool) {
    let mut cluster = cluster(seed, 5, RaftSettings::new(5));
    if unreliable {
        cluster
            .simulation
            .apply_fault(&Fault::Loss { probability: 0.1 });
        cluster
            .simulation
            .apply_fault(&Fault::Duplicate { probability: 0.1 });
        cluster
            .simulation
            .apply_fault(&Fault::Reorder { probability: 0.3 });
        cluster.start_clients();
    }
    let mut up = [true; 5];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for round in 0..30 {
        if let Some(leader) = cluster.leader() {
            let _ = cluster.simulation.submit(leader, put("f8", round));
        }
        run(&mut cluster, 100_000_000 + next(900) * 1_000_000);
        if let Some(leader) = cluster.leader() {
            cluster
                .simulation
                .apply_fault(&Fault::Crash { node: leader });
            up[leader as usize] = false;
        }
        if up.iter().filter(|&&u| u).count() < 3 {
            let node = next(5) as NodeId;
            if !up[node as usize] {
                cluster.simulation.apply_fault(&Fault::Restart { node });
                up[node as usize] = true;
            }
        }
    }
    for node in 0..5 {
        cluster.simulation.apply_fault(&Fault::Restart { node });
    }
    cluster.simulation.apply_fault(&Fault::Heal);
    run(&mut cluster, 5 * SECOND_NS);
    assert!(
        commit_one(&mut cluster, "f8", 1_000),
        "seed {seed}: final write commits"
    );
    if unreliable {
        if let Err((at_ns, violation)) = cluster.drain_clients() {
            panic!("seed {seed}: {violation} at {at_ns} ns");
        }
        assert!(linearizable(&cluster), "seed {seed}: history linearizable");
    }
    assert!(
        cluster.observer.elections() >= 10,
        "seed {seed}: leaders kept changing"
    );
}

#[test]
fn figure_8() {
    // Goal: entries from earlier terms are never committed by counting replicas (Figure 8, 6.824
    // 2C Figure8). Method: crash leaders repeatedly; the observer checks leader completeness
    // and state-machine safety after every event.
    for seed in 0..4 {
        crash_leaders_repeatedly(seed, false);
    }
}

#[test]
fn figure_8_unreliable() {
    // Goal: Figure 8 with a lossy, duplicating, reordering network and live clients (6.824 2C
    // Figure8Unreliable). Method: as `figure_8` plus faults; the history must be linearizable.
    for seed in 10..13 {
        crash_leaders_repeatedly(seed, true);
    }
}

#[test]
fn unreliable_agreement() {
    // Goal: clients make progress and stay linearizable over a lossy, duplicating, reordering
    // network (6.824 2C UnreliableAgree). Method: 5 nodes, 20 s of clients, faults throughout.
    let mut cluster = cluster(4, 5, RaftSettings::new(5));
    cluster
        .simulation
        .apply_fault(&Fault::Loss { probability: 0.1 });
    cluster
        .simulation
        .apply_fault(&Fault::Duplicate { probability: 0.2 });
    cluster
        .simulation
        .apply_fault(&Fault::Reorder { probability: 0.3 });
    cluster.start_clients();
    run(&mut cluster, 20 * SECOND_NS);
    if let Err((at_ns, violation)) = cluster.drain_clients() {
        panic!("{violation} at {at_ns} ns");
    }
    let stats = cluster.simulation.stats().clone();
    assert!(stats.ok > 300, "progress despite faults: {stats:?}");
    assert!(stats.messages_duplicated > 0 && stats.messages_dropped > 0);
    assert!(linearizable(&cluster), "history linearizable");
}

#[test]
fn churn() {
    // Goal: random crashes, restarts and partitions never break safety or linearizability and
    // the cluster recovers (6.824 2C Churn). Method: every 0.5-1.5 s pick a node and crash,
    // restart or cut it off, with clients running; then heal and require a write to commit.
    for seed in 20..23 {
        let mut cluster = cluster(seed, 5, RaftSettings::new(5));
        cluster.start_clients();
        let mut state = seed | 1;
        let mut next = move |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) % bound
        };
        for _ in 0..20 {
            let node = next(5) as NodeId;
            let fault = match next(4) {
                0 => Fault::Crash { node },
                1 => Fault::Restart { node },
                2 => Fault::Partition(Partition::symmetric(5, &[node])),
                _ => Fault::Heal,
            };
            cluster.simulation.apply_fault(&fault);
            run(&mut cluster, 500_000_000 + next(1_000) * 1_000_000);
        }
        for node in 0..5 {
            cluster.simulation.apply_fault(&Fault::Restart { node });
        }
        cluster.simulation.apply_fault(&Fault::Heal);
        run(&mut cluster, 3 * SECOND_NS);
        assert!(
            commit_one(&mut cluster, "churn", 1),
            "seed {seed}: recovers"
        );
        if let Err((at_ns, violation)) = cluster.drain_clients() {
            panic!("seed {seed}: {violation} at {at_ns} ns");
        }
        assert!(linearizable(&cluster), "seed {seed}: history linearizable");
        assert!(cluster.simulation.stats().ok > 100, "seed {seed}: progress");
    }
}

#[test]
fn backup() {
    // Goal: a leader cut off with many uncommitted entries has them overwritten when it rejoins,
    // and the majority's committed entries survive (6.824 2B Backup). Method: isolate the leader
    // with one follower, give it 50 writes, commit 50 on the majority, heal, compare logs.
    let mut cluster = cluster(5, 5, RaftSettings::new(5));
    run(&mut cluster, 2 * SECOND_NS);
    let old = cluster.leader().expect("leader");
    let partner = (0..5).find(|&n| n != old).unwrap();
    partition(&mut cluster, &[old, partner]);
    let lost: Vec<RequestId> = (0..50)
        .map(|i| cluster.simulation.submit(old, put("b", i)))
        .collect();
    run(&mut cluster, 3 * SECOND_NS);
    let new = cluster.leader().filter(|&n| n != old && n != partner);
    let new = new.expect("the majority elected a leader");
    let kept: Vec<RequestId> = (100..150)
        .map(|i| cluster.simulation.submit(new, put("b", i)))
        .collect();
    run(&mut cluster, 3 * SECOND_NS);
    let answers = replies(&mut cluster);
    assert!(
        lost.iter().all(|id| !is_ok(answers.get(id))),
        "minority writes never ok"
    );
    assert!(
        kept.iter().all(|id| is_ok(answers.get(id))),
        "majority writes all ok"
    );
    cluster.simulation.apply_fault(&Fault::Heal);
    run(&mut cluster, 3 * SECOND_NS);
    let leader = cluster.leader().expect("leader after heal");
    let commit = cluster.replica(leader).unwrap().commit_index();
    for node in 0..5 {
        let replica = cluster.replica(node).unwrap();
        assert_eq!(replica.commit_index(), commit, "n{node} caught up");
        assert_eq!(replica.state_machine().get("b"), Some(&b"149".to_vec()));
    }
}

#[test]
fn snapshot_install() {
    // Goal: a follower that missed entries compacted away catches up by InstallSnapshot (6.824
    // 2D). Method: snapshot every 20 entries, cut one follower off for 200 writes, heal.
    let mut settings = RaftSettings::new(3);
    settings.snapshot_threshold_entries = 20;
    settings.snapshot_chunk_bytes = 256;
    let mut cluster = cluster(6, 3, settings);
    run(&mut cluster, 2 * SECOND_NS);
    let leader = cluster.leader().expect("leader");
    let lagging = (0..3).find(|&n| n != leader).unwrap();
    partition(&mut cluster, &[lagging]);
    for round in 0..200 {
        let leader = cluster.leader().filter(|&n| n != lagging).expect("leader");
        let _ = cluster
            .simulation
            .submit(leader, put(&format!("k{}", round % 7), round));
        run(&mut cluster, 10_000_000);
    }
    run(&mut cluster, SECOND_NS);
    let leader = cluster.leader().expect("leader");
    assert!(
        cluster.replica(leader).unwrap().snapshot_meta().index >= 100,
        "leader compacted"
    );
    assert_eq!(cluster.replica(lagging).unwrap().snapshot_meta().index, 0);
    cluster.simulation.apply_fault(&Fault::Heal);
    run(&mut cluster, 3 * SECOND_NS);
    let caught_up = cluster.replica(lagging).unwrap();
    let leader_replica = cluster.replica(leader).unwrap();
    assert!(caught_up.snapshot_meta().index > 0, "installed a snapshot");
    assert_eq!(caught_up.applied_index(), leader_replica.applied_index());
    assert_eq!(caught_up.state_machine(), leader_replica.state_machine());
}

#[test]
fn membership_change_under_faults() {
    // Goal: adding and removing voters under a lossy, duplicating network with live clients
    // keeps safety and linearizability (6.824-style reconfiguration). Method: 5 nodes with voters
    // {0,1,2}; add 3 and 4, then remove 0, retrying each change until it commits.
    let mut settings = RaftSettings::new(5);
    settings.voters = vec![0, 1, 2];
    let mut cluster = cluster(7, 5, settings);
    cluster
        .simulation
        .apply_fault(&Fault::Loss { probability: 0.05 });
    cluster
        .simulation
        .apply_fault(&Fault::Duplicate { probability: 0.1 });
    cluster.start_clients();
    run(&mut cluster, 2 * SECOND_NS);
    let changes = [
        MembershipChange::AddVoter(3),
        MembershipChange::AddVoter(4),
        MembershipChange::Remove(0),
    ];
    for change in changes {
        let mut done = false;
        for _attempt in 0..20 {
            let Some(leader) = cluster.leader() else {
                run(&mut cluster, SECOND_NS);
                continue;
            };
            let request = RaftRequest::Direct(ClientOperation::ChangeMembership(change.clone()));
            let request_id = cluster.simulation.submit(leader, request);
            run(&mut cluster, SECOND_NS);
            if is_ok(replies(&mut cluster).get(&request_id)) {
                done = true;
                break;
            }
        }
        assert!(done, "{change:?} committed");
    }
    run(&mut cluster, 2 * SECOND_NS);
    let leader = cluster.leader().expect("leader");
    let voters = &cluster.replica(leader).unwrap().membership().voters;
    assert_eq!(voters.iter().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    if let Err((at_ns, violation)) = cluster.drain_clients() {
        panic!("{violation} at {at_ns} ns");
    }
    assert!(linearizable(&cluster), "history linearizable");
    assert!(cluster.simulation.stats().ok > 100, "clients progressed");
}

#[test]
fn majority_serves_minority_refuses_writes_naming_last_leader() {
    // Goal: the seed's partition behaviour — the majority side keeps serving, the minority
    // refuses writes and names the last leader it knew. Method: 5 nodes, cut the leader and one
    // follower off, write on both sides.
    let mut cluster = cluster(8, 5, RaftSettings::new(5));
    run(&mut cluster, 2 * SECOND_NS);
    let old = cluster.leader().expect("leader");
    let partner = (0..5).find(|&n| n != old).unwrap();
    partition(&mut cluster, &[old, partner]);
    run(&mut cluster, 3 * SECOND_NS);
    let new = cluster.leader().expect("majority leader");
    assert!(
        new != old && new != partner,
        "the leader is on the majority side"
    );
    let majority_write = cluster.simulation.submit(new, put("m", 1));
    let minority_write = cluster.simulation.submit(partner, put("m", 2));
    run(&mut cluster, SECOND_NS);
    let answers = replies(&mut cluster);
    assert!(is_ok(answers.get(&majority_write)), "majority serves");
    match answers.get(&minority_write) {
        Some(RaftResponse::Reply(Err(ClientError::NotLeader { leader_hint, .. }))) => {
            assert_eq!(
                *leader_hint,
                Some(old),
                "names the last leader it heard from"
            );
        }
        other => panic!("minority must refuse with NotLeader, got {other:?}"),
    }
    assert_ne!(
        cluster.replica(old).unwrap().role(),
        Role::Leader,
        "the cut-off leader stepped down (check-quorum)"
    );
}

#[test]
fn even_split_elects_no_one() {
    // Goal: a 2 | 2 split of four nodes elects no leader and refuses writes on both sides.
    // Method: partition before any election, run 5 s, write to every node.
    let mut cluster = cluster(9, 4, RaftSettings::new(4));
    partition(&mut cluster, &[0, 1]);
    run(&mut cluster, 5 * SECOND_NS);
    assert!(leaders(&cluster).is_empty(), "no side has a quorum");
    let writes: Vec<RequestId> = (0..4)
        .map(|node| cluster.simulation.submit(node, put("e", node)))
        .collect();
    run(&mut cluster, SECOND_NS);
    let answers = replies(&mut cluster);
    for id in writes {
        assert!(
            matches!(
                answers.get(&id),
                Some(RaftResponse::Reply(Err(ClientError::NotLeader { .. })))
            ),
            "refused: {:?}",
            answers.get(&id)
        );
    }
}

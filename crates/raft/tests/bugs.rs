//! One named regression test (or more) per bug class B1–B16 of /work/shared/raft-bug-catalogue.md.

mod harness;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use harness::{Network, output, test_config};
use raft::{
    ClientError, ClientOperation, ClientRequest, Effect, Entry, EntryPayload, HardState, Input, Kv,
    KvCommand, KvOutput, MembershipChange, Message, MessageBody, RaftConfig, ReadConsistency,
    RecoveredState, Replica, Role,
};

fn noop(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Noop,
    }
}

fn command(index: u64, term: u64, tag: u8) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command {
            client_id: 1,
            sequence: index,
            command: vec![tag].into(),
        },
    }
}

/// A lone replica driven by hand.
fn replica(id: u64, voters: &[u64], hard_state: HardState, entries: Vec<Entry>) -> Replica<Kv> {
    let recovered = RecoveredState {
        hard_state,
        entries,
        ..RecoveredState::default()
    };
    let mut replica =
        Replica::new(test_config(id, voters, 1), recovered, Kv::new(), 0).expect("replica");
    let _ = replica.drain_effects();
    replica
}

fn message(from: u64, to: u64, term: u64, body: MessageBody) -> Input {
    Input::Message(Message {
        from,
        to,
        term,
        body,
    })
}

fn append(prev_index: u64, prev_term: u64, entries: Vec<Entry>, leader_commit: u64) -> MessageBody {
    MessageBody::AppendEntries {
        prev_index,
        prev_term,
        entries: entries.into(),
        leader_commit,
        heartbeat_seq: 0,
    }
}

fn vote_request(last_index: u64, last_term: u64) -> MessageBody {
    MessageBody::RequestVote {
        last_index,
        last_term,
        pre_vote: false,
        leadership_transfer: false,
    }
}

fn sends(effects: &[Effect]) -> Vec<&Message> {
    effects
        .iter()
        .filter_map(|e| {
            if let Effect::Send(m) = e {
                Some(m)
            } else {
                None
            }
        })
        .collect()
}

fn persist_tokens(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| {
            if let Effect::Persist(p) = e {
                Some(p.token)
            } else {
                None
            }
        })
        .collect()
}

fn granted(effects: &[Effect]) -> Option<bool> {
    sends(effects).iter().find_map(|m| match m.body {
        MessageBody::RequestVoteResponse { granted, .. } => Some(granted),
        _ => None,
    })
}

/// B1 (logcabin#44, Figure 8): S1 leads term 4 and gets its term-2 entry 2 onto a majority, but
/// its term-4 no-op cannot spread. Entry 2 must stay uncommitted; S5 (term 3) then overwrites it.
#[test]
fn b01_figure_8_prior_term_entry_not_committed_by_counting() {
    let mut network = Network::with_configs(Vec::new(), 1);
    let voters = [1, 2, 3, 4, 5];
    let logs: [(u64, Vec<Entry>); 5] = [
        (1, vec![noop(1, 1), command(2, 2, 12)]),
        (2, vec![noop(1, 1), command(2, 2, 12)]),
        (3, vec![noop(1, 1)]),
        (4, vec![noop(1, 1)]),
        (5, vec![noop(1, 1), command(2, 3, 13)]),
    ];
    for (id, entries) in logs {
        let mut config = test_config(id, &voters, 1);
        config.max_entries_per_message = 1;
        network.add_node(
            config,
            Some((
                HardState {
                    term: 3,
                    voted_for: None,
                },
                entries,
            )),
        );
    }
    // S1 can reach S3 and S4 only; S2 and S5 are cut off.
    network.isolate(2);
    network.isolate(5);
    // The term-4 no-op (index 3) never leaves S1: it is cut out of every AppendEntries.
    network.filter = Some(Box::new(|m: &mut Message| {
        if let MessageBody::AppendEntries { entries, .. } = &mut m.body {
            *entries = entries.iter().filter(|e| e.index < 3).cloned().collect();
        }
        true
    }));
    assert!(
        network.run_until(3_000, |n| n.leader() == Some(1)),
        "S1 should win term 4 with S3 and S4"
    );
    assert!(network.run_until(2_000, |n| n.replica(3).last_index() >= 2
        && n.replica(4).last_index() >= 2));
    network.run_for(1_000);
    assert_eq!(
        network.replica(3).term_at(2),
        Some(2),
        "majority (S1, S3, S4) holds the term-2 entry"
    );
    assert!(
        network.replica(1).commit_index() < 2,
        "term-2 entry committed by counting replicas"
    );
    // S1 crashes; S5 wins with S2, S3, S4, which cannot elect among themselves.
    network.crash(1);
    network.filter = None;
    network.heal();
    network.partition(&[&[2], &[3], &[4]]);
    assert!(network.run_until(5_000, |n| n.leader() == Some(5)));
    assert!(network.run_until(3_000, |n| {
        [2, 3, 4]
            .iter()
            .all(|&id| n.replica(id).term_at(2) == Some(3))
    }));
    network.heal();
    network.restart(1);
    assert!(network.settle(3_000));
    assert_eq!(
        network.replica(1).term_at(2),
        Some(3),
        "S1's uncommitted entry replaced"
    );
}

/// B2: a vote (and the candidate's own term) reaches nobody before it is durable. Unit: the vote
/// answer is held until `PersistDone`; harness: crashes before sync never produce double votes.
#[test]
fn b02_vote_released_only_after_hard_state_durable() {
    let mut voter = replica(2, &[1, 2, 3], HardState::default(), Vec::new());
    voter.step(10, message(1, 2, 1, vote_request(0, 0)));
    let effects = voter.drain_effects();
    let tokens = persist_tokens(&effects);
    assert_eq!(tokens.len(), 1, "the vote must be persisted");
    assert_eq!(
        granted(&effects),
        None,
        "vote answer sent before the vote was durable"
    );
    voter.step(11, Input::PersistDone(tokens[0]));
    assert_eq!(granted(&voter.drain_effects()), Some(true));

    // The candidate's own RequestVote also waits for its term and self-vote.
    let mut candidate = replica(1, &[1, 2, 3], HardState::default(), Vec::new());
    candidate.step(10_000, Input::Timeout); // pre-vote round: no state change, sent at once
    let effects = candidate.drain_effects();
    assert!(persist_tokens(&effects).is_empty());
    assert_eq!(sends(&effects).len(), 2);
    candidate.step(
        10_001,
        message(
            2,
            1,
            1,
            MessageBody::RequestVoteResponse {
                granted: true,
                pre_vote: true,
            },
        ),
    );
    let effects = candidate.drain_effects();
    assert_eq!(candidate.role(), Role::Candidate);
    assert!(
        sends(&effects).is_empty(),
        "RequestVote sent before term/vote durable"
    );
    let token = persist_tokens(&effects)[0];
    candidate.step(10_002, Input::PersistDone(token));
    assert_eq!(sends(&candidate.drain_effects()).len(), 2);
}

#[test]
fn b02_crashes_before_sync_never_cause_double_votes() {
    // Goal: at most one granted vote per (voter, term) across crashes. Method: no pre-vote (more
    // competing candidates per term), slow storage, and every voter that just granted a vote is
    // crashed at once (often before its vote is synced), restarted, and the leader isolated often.
    for seed in 0..16 {
        let configs = [1, 2, 3, 4, 5]
            .iter()
            .map(|&id| RaftConfig {
                pre_vote: false,
                ..test_config(id, &[1, 2, 3, 4, 5], 300 + seed)
            })
            .collect();
        let mut network = Network::with_configs(configs, 300 + seed);
        network.persist_delay_min_ms = 5;
        network.persist_delay_max_ms = 40;
        let votes: Rc<RefCell<BTreeMap<(u64, u64), u64>>> = Rc::default();
        let just_granted: Rc<RefCell<Vec<u64>>> = Rc::default();
        let (seen, granted) = (votes.clone(), just_granted.clone());
        network.filter = Some(Box::new(move |m: &mut Message| {
            if let MessageBody::RequestVoteResponse {
                granted: true,
                pre_vote: false,
            } = m.body
            {
                let previous = *seen.borrow_mut().entry((m.from, m.term)).or_insert(m.to);
                assert_eq!(
                    previous, m.to,
                    "node {} granted two votes in term {}",
                    m.from, m.term
                );
                granted.borrow_mut().push(m.from);
            }
            true
        }));
        for _ in 0..60 {
            let signalled = network.run_until(400, |_| !just_granted.borrow().is_empty());
            let voters: Vec<u64> = just_granted.borrow_mut().drain(..).collect();
            for voter in voters {
                network.crash(voter);
                network.restart(voter);
            }
            if !signalled && let Some(leader) = network.leader() {
                network.isolate(leader);
                network.run_for(300);
                network.heal();
            }
        }
        assert!(
            votes.borrow().len() > 10,
            "seed {seed}: too few votes to mean anything"
        );
    }
}

/// B3 (etcd#2461, CCF#8094): the vote is not cleared when the term does not change.
#[test]
fn b03_vote_kept_when_term_unchanged() {
    let mut follower = replica(
        2,
        &[1, 2, 3],
        HardState {
            term: 4,
            voted_for: None,
        },
        Vec::new(),
    );
    follower.step(1, message(1, 2, 5, vote_request(0, 0)));
    let effects = follower.drain_effects();
    follower.step(2, Input::PersistDone(persist_tokens(&effects)[0]));
    assert_eq!(granted(&follower.drain_effects()), Some(true));
    // Same-term AppendEntries from the winner: become follower, keep the vote.
    follower.step(3, message(1, 2, 5, append(0, 0, Vec::new(), 0)));
    let _ = follower.drain_effects();
    assert_eq!(follower.voted_for(), Some(1));
    // A second candidate in the same term must be refused (even after the leader is forgotten).
    follower.step(1_000, Input::Timeout);
    let _ = follower.drain_effects();
    follower.step(1_001, message(3, 2, 5, vote_request(10, 5)));
    assert_eq!(granted(&follower.drain_effects()), Some(false));
    assert_eq!(follower.voted_for(), Some(1));
}

/// B4 (copycat#265, scylladb#9965): follower commit = min(leaderCommit, last index this message
/// proved to match), even when an empty AppendEntries carries a large commit index.
#[test]
fn b04_follower_commit_limited_to_matched_prefix() {
    // Follower has a divergent, stale tail at 3..4 (term 1); the leader's log differs there.
    let entries = vec![
        noop(1, 1),
        command(2, 1, 2),
        command(3, 1, 3),
        command(4, 1, 4),
    ];
    let mut follower = replica(
        2,
        &[1, 2, 3],
        HardState {
            term: 2,
            voted_for: None,
        },
        entries,
    );
    follower.step(1, message(1, 2, 2, append(2, 1, Vec::new(), 10)));
    assert_eq!(
        follower.commit_index(),
        2,
        "commit must stop at the matched prefix, not the stale tail"
    );
    follower.step(2, message(1, 2, 2, append(2, 1, vec![noop(3, 2)], 10)));
    assert_eq!(follower.commit_index(), 3);
    assert_eq!(follower.last_index(), 3, "conflicting tail truncated");
}

/// B5 (raft-rs reordered AE, async-raft 9540c904, openraft#511): a stale or reordered
/// AppendEntries never truncates, and nothing at or below commit is ever truncated.
#[test]
fn b05_reordered_append_does_not_truncate() {
    let mut follower = replica(
        2,
        &[1, 2, 3],
        HardState {
            term: 1,
            voted_for: None,
        },
        Vec::new(),
    );
    let all: Vec<Entry> = (1..=5).map(|i| command(i, 1, i as u8)).collect();
    follower.step(1, message(1, 2, 1, append(0, 0, all.clone(), 2)));
    assert_eq!(follower.last_index(), 5);
    // An older message with a prefix arrives late, then a duplicate.
    follower.step(2, message(1, 2, 1, append(0, 0, all[..3].to_vec(), 1)));
    follower.step(3, message(1, 2, 1, append(0, 0, all.clone(), 2)));
    assert_eq!(follower.last_index(), 5, "stale prefix truncated the log");
    // A stale message above the commit index, matching what is already there.
    follower.step(3, message(1, 2, 1, append(2, 1, all[2..3].to_vec(), 2)));
    assert_eq!(
        follower.last_index(),
        5,
        "matching entries above commit treated as a conflict"
    );
    assert_eq!(follower.commit_index(), 2);
    // A message whose prev is below commit (as after the leader purged it) is not a conflict.
    follower.step(4, message(1, 2, 1, append(1, 9, all[1..].to_vec(), 5)));
    assert_eq!(follower.last_index(), 5);
    assert_eq!(follower.commit_index(), 5);
    // Answers are held until the writes are durable; once acknowledged, none is a rejection.
    let effects = follower.drain_effects();
    for token in persist_tokens(&effects) {
        follower.step(4, Input::PersistDone(token));
    }
    let answers = follower.drain_effects();
    assert_eq!(sends(&answers).len(), 5);
    assert!(sends(&answers).iter().all(|m| matches!(
        m.body,
        MessageBody::AppendEntriesResponse { success: true, .. }
    )));
    // Even a (buggy) leader message conflicting at or below commit cannot truncate.
    follower.step(
        5,
        message(1, 2, 2, append(3, 1, vec![command(4, 2, 99)], 5)),
    );
    assert_eq!(follower.term_at(4), Some(1), "committed entry truncated");
}

/// A filter that cuts the new leader's own-term entries out of every AppendEntries (the rest of
/// the message, a heartbeat, still arrives and is answered).
fn hold_new_term_entries(network: &mut Network, term: u64) {
    network.filter = Some(Box::new(move |m: &mut Message| {
        if let MessageBody::AppendEntries { entries, .. } = &mut m.body {
            *entries = entries.iter().filter(|e| e.term < term).cloned().collect();
        }
        true
    }));
}

/// B6 (etcd#7331, tikv#9208, RedisRaft #18): a new leader serves no read before its no-op commits.
#[test]
fn b06_new_leader_defers_reads_until_noop_commits() {
    let mut network = Network::new(&[1, 2, 3], 6);
    let first = network.elect(2_000);
    network.put(1, 1, "x", "1");
    assert!(network.settle(2_000));
    // Next leader cannot spread its no-op, but heartbeats (and their acks) flow.
    let next_term = network.replica(first).term() + 1;
    hold_new_term_entries(&mut network, next_term);
    network.isolate(first);
    let rest: Vec<u64> = network
        .ids()
        .into_iter()
        .filter(|&id| id != first)
        .collect();
    assert!(network.run_until(3_000, |n| n.leader_in(&rest).is_some()));
    let leader = network.leader_in(&rest).expect("leader");
    network.submit(
        leader,
        2,
        1,
        ClientOperation::Read {
            query: raft::KvQuery::Get { key: "x".into() }.encode(),
            consistency: ReadConsistency::Linearizable,
        },
    );
    network.run_for(1_000);
    assert!(
        network.take_reply(2, 1).is_none(),
        "read served before the leader's no-op committed"
    );
    network.filter = None;
    assert!(network.run_until(2_000, |n| n.replies.iter().any(|(_, r)| r.client_id == 2)));
    let reply = network.take_reply(2, 1).expect("reply").expect("read");
    assert_eq!(output(&reply), KvOutput::Value(Some(b"1".to_vec())));
    assert_eq!(
        network.replica(leader).term_at(reply.index),
        Some(network.replica(leader).term())
    );
}

/// B7 (Consul#54, RedisRaft #19): with lease reads, a leader paused past its lease must not serve
/// a stale read when it resumes.
#[test]
fn b07_lease_read_after_leader_pause_is_not_stale() {
    let configs = [1, 2, 3]
        .iter()
        .map(|&id| RaftConfig {
            lease_reads: true,
            ..test_config(id, &[1, 2, 3], 7)
        })
        .collect();
    let mut network = Network::with_configs(configs, 7);
    let old = network.elect(2_000);
    network.put(1, 1, "x", "old");
    assert!(network.settle(2_000));
    let lease = network
        .read(old, 2, 1, "x", ReadConsistency::Linearizable)
        .expect("reply")
        .expect("lease read");
    assert_eq!(output(&lease), KvOutput::Value(Some(b"old".to_vec())));
    network.pause(old);
    let rest: Vec<u64> = network.ids().into_iter().filter(|&id| id != old).collect();
    assert!(network.run_until(3_000, |n| n.leader_in(&rest).is_some()));
    let new = network.leader_in(&rest).expect("new leader");
    assert!(
        network
            .request(
                new,
                1,
                2,
                ClientOperation::Write(
                    KvCommand::Put {
                        key: "x".into(),
                        value: b"new".to_vec()
                    }
                    .encode()
                ),
                1_000
            )
            .expect("reply")
            .is_ok()
    );
    network.resume(old);
    // The read reaches the old leader before it processes anything that arrived during the pause.
    network.submit(
        old,
        2,
        2,
        ClientOperation::Read {
            query: raft::KvQuery::Get { key: "x".into() }.encode(),
            consistency: ReadConsistency::Linearizable,
        },
    );
    network.run_for(1_000);
    match network.take_reply(2, 2) {
        Some(Ok(response)) => assert_eq!(
            output(&response),
            KvOutput::Value(Some(b"new".to_vec())),
            "stale lease read"
        ),
        Some(Err(error)) => assert!(error.is_definite()),
        None => panic!("read never answered"),
    }
}

/// B8 (openraft#1802): learners never count toward a quorum (unit property tests cover the
/// arithmetic against brute force, incl. joint configurations).
#[test]
fn b08_learner_does_not_make_a_quorum() {
    let mut network = Network::new(&[1, 2, 3], 8);
    let leader = network.elect(2_000);
    assert!(network.settle(2_000));
    network.add_node(
        RaftConfig {
            initial_voters: Default::default(),
            ..test_config(4, &[], 8)
        },
        None,
    );
    let learner = network.request(
        leader,
        9,
        1,
        ClientOperation::ChangeMembership(MembershipChange::AddLearner(4)),
        2_000,
    );
    assert!(learner.expect("reply").is_ok());
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    network.partition(&[&[leader, 4], &others]);
    network.submit(
        leader,
        9,
        2,
        ClientOperation::Write(
            KvCommand::Put {
                key: "k".into(),
                value: b"v".to_vec(),
            }
            .encode(),
        ),
    );
    let commit = network.replica(leader).commit_index();
    network.run_for(120);
    assert_eq!(
        network.replica(leader).commit_index(),
        commit,
        "leader + learner committed an entry"
    );
    assert!(
        network.replica(4).last_index() > commit,
        "the learner did receive the entry"
    );
}

/// B9 (copycat#23, openraft#2051): a leader changes membership only after committing an entry of
/// its term, and only one change is in flight at a time.
#[test]
fn b09_membership_change_needs_own_term_commit_and_one_at_a_time() {
    let mut network = Network::new(&[1, 2, 3], 9);
    let first = network.elect(2_000);
    let next_term = network.replica(first).term() + 1;
    hold_new_term_entries(&mut network, next_term);
    network.isolate(first);
    let rest: Vec<u64> = network
        .ids()
        .into_iter()
        .filter(|&id| id != first)
        .collect();
    assert!(network.run_until(3_000, |n| n.leader_in(&rest).is_some()));
    let leader = network.leader_in(&rest).expect("leader");
    let early = network.request(
        leader,
        9,
        1,
        ClientOperation::ChangeMembership(MembershipChange::AddLearner(7)),
        500,
    );
    assert!(
        matches!(
            early,
            Some(Err(ClientError::MembershipChangeRefused { .. }))
        ),
        "{early:?}"
    );
    network.filter = None;
    network.heal();
    assert!(network.settle(2_000));
    let leader = network.leader().expect("leader");
    // Block all replication so the first change stays uncommitted, then try a second.
    network.isolate(leader);
    network.submit(
        leader,
        9,
        2,
        ClientOperation::ChangeMembership(MembershipChange::AddLearner(7)),
    );
    let second = network.request(
        leader,
        9,
        3,
        ClientOperation::ChangeMembership(MembershipChange::AddLearner(8)),
        50,
    );
    assert!(
        matches!(
            second,
            Some(Err(ClientError::MembershipChangeRefused { .. }))
        ),
        "{second:?}"
    );
}

/// B10 (etcd confchange_v1_remove_leader, campaign_learner_must_vote): a leader being removed
/// does not count itself; it steps down once the change commits; a node that does not yet know it
/// is a voter still votes.
#[test]
fn b10_removed_leader_does_not_count_itself_and_steps_down() {
    let mut network = Network::new(&[1, 2, 3], 10);
    let leader = network.elect(2_000);
    assert!(network.settle(2_000));
    let others: Vec<u64> = network
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    // With one remaining voter cut off, old config would commit (leader + 1 of 3) but the new
    // config {others} needs both of them.
    network.isolate(others[1]);
    network.submit(
        leader,
        10,
        1,
        ClientOperation::ChangeMembership(MembershipChange::Remove(leader)),
    );
    let change_index = network.replica(leader).last_index();
    network.run_for(300);
    assert!(
        network.replica(leader).commit_index() < change_index,
        "removal committed with the leader counting itself"
    );
    // Without a quorum of the new configuration the leader steps down (check-quorum), and the
    // pending change is reported as indefinite, never as success.
    let early = network.take_reply(10, 1);
    assert!(
        matches!(early, None | Some(Err(ClientError::Indefinite { .. }))),
        "{early:?}"
    );
    network.heal();
    assert!(
        network.run_until(3_000, |n| n.leader().is_some_and(
            |l| l != leader && n.replica(l).commit_index() >= change_index
        )),
        "no new leader committed the removal"
    );
    let new_leader = network.leader().expect("leader");
    assert!(!network.replica(new_leader).membership().is_voter(leader));
    assert_ne!(network.replica(leader).role(), Role::Leader);
    network.run_for(3_000);
    assert_ne!(
        network.replica(leader).role(),
        Role::Candidate,
        "a removed server must not campaign"
    );
    // campaign_learner_must_vote: a joining server with an empty configuration grants votes.
    let mut joining = replica(9, &[], HardState::default(), Vec::new());
    joining.step(1, message(1, 9, 3, vote_request(5, 2)));
    let effects = joining.drain_effects();
    joining.step(2, Input::PersistDone(persist_tokens(&effects)[0]));
    assert_eq!(granted(&joining.drain_effects()), Some(true));
}

/// B11 (openraft#543, etcd snapshot_succeed_via_app_resp_behind): an old snapshot delivered after
/// a newer state never reverts the state machine; a crash mid-transfer recovers.
#[test]
fn b11_stale_snapshot_does_not_revert_state_and_crash_mid_install_recovers() {
    let configs = [1, 2, 3]
        .iter()
        .map(|&id| RaftConfig {
            snapshot_threshold_entries: 5,
            snapshot_chunk_bytes: 32,
            ..test_config(id, &[1, 2, 3], 11)
        })
        .collect();
    let mut network = Network::with_configs(configs, 11);
    let leader = network.elect(2_000);
    let lagging = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    let recorded: Rc<RefCell<Vec<Message>>> = Rc::default();
    let sink = recorded.clone();
    network.filter = Some(Box::new(move |m: &mut Message| {
        if matches!(m.body, MessageBody::InstallSnapshot { .. }) {
            sink.borrow_mut().push(m.clone());
        }
        true
    }));
    network.isolate(lagging);
    for sequence in 1..=12 {
        network.put(11, sequence, &format!("k{sequence}"), "v");
    }
    network.heal();
    // Crash the follower after the first chunk arrives, then let it recover.
    assert!(
        network.run_until(2_000, |n| n.delivered.get("snapshot").copied().unwrap_or(0)
            >= 1)
    );
    network.crash(lagging);
    network.run_for(200);
    network.restart(lagging);
    assert!(network.settle(5_000));
    for sequence in 13..=30 {
        network.put(11, sequence, &format!("k{sequence}"), "w");
    }
    assert!(network.settle(3_000));
    let applied = network.replica(lagging).applied_index();
    let old: Vec<Message> = recorded.borrow().clone();
    assert!(!old.is_empty());
    for message in old {
        network.input(
            lagging,
            Input::Message(Message {
                term: network.replica(lagging).term(),
                ..message
            }),
        );
    }
    assert_eq!(
        network.replica(lagging).applied_index(),
        applied,
        "old snapshot rolled the state machine back"
    );
    assert_eq!(network.value(lagging, "k30").as_deref(), Some("w"));
}

/// B12 (etcd#14370): a single-voter cluster acknowledges only durable writes; crash right after
/// the acknowledgement keeps it.
#[test]
fn b12_single_node_crash_after_ack_keeps_write() {
    // Unit: a single voter does not count its own entry as matched until it is durable.
    let mut solo = replica(1, &[1], HardState::default(), Vec::new());
    solo.step(1_000, Input::Timeout);
    let mut tokens = persist_tokens(&solo.drain_effects());
    for token in tokens.drain(..) {
        solo.step(1_001, Input::PersistDone(token));
    }
    let _ = solo.drain_effects();
    assert_eq!(solo.role(), Role::Leader);
    let put = KvCommand::Put {
        key: "k".into(),
        value: b"v".to_vec(),
    };
    solo.step(
        1_002,
        Input::Client(ClientRequest {
            client_id: 1,
            sequence: 1,
            operation: ClientOperation::Write(put.encode()),
        }),
    );
    let effects = solo.drain_effects();
    assert!(
        solo.commit_index() < solo.last_index(),
        "committed before the entry was durable"
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::Reply(_))));
    for token in persist_tokens(&effects) {
        solo.step(1_003, Input::PersistDone(token));
    }
    assert_eq!(solo.commit_index(), solo.last_index());
    assert!(
        solo.drain_effects()
            .iter()
            .any(|e| matches!(e, Effect::Reply(_)))
    );

    let mut network = Network::new(&[1], 12);
    network.persist_delay_max_ms = 30;
    network.elect(2_000);
    for sequence in 1..=10 {
        network.put(12, sequence, &format!("k{sequence}"), "v");
        network.crash(1);
        network.restart(1);
        network.elect(2_000);
    }
    assert!(network.settle(2_000));
    for sequence in 1..=10 {
        assert_eq!(
            network.value(1, &format!("k{sequence}")).as_deref(),
            Some("v")
        );
    }
}

/// B13 (etcd async_storage_writes_append_aba_race, openraft#1964): storage completions arriving
/// out of order release nothing early and stall nothing.
#[test]
fn b13_out_of_order_persist_completions() {
    let mut follower = replica(
        2,
        &[1, 2, 3],
        HardState {
            term: 1,
            voted_for: None,
        },
        Vec::new(),
    );
    follower.step(1, message(1, 2, 1, append(0, 0, vec![command(1, 1, 1)], 0)));
    let first = persist_tokens(&follower.drain_effects())[0];
    follower.step(2, message(1, 2, 1, append(1, 1, vec![command(2, 1, 2)], 0)));
    let second = persist_tokens(&follower.drain_effects())[0];
    follower.step(3, Input::PersistDone(second));
    assert!(
        sends(&follower.drain_effects()).is_empty(),
        "answer released before an earlier write was durable"
    );
    follower.step(4, Input::PersistDone(first));
    assert_eq!(sends(&follower.drain_effects()).len(), 2);

    for voters in [&[1][..], &[1, 2, 3][..]] {
        let mut network = Network::new(voters, 13);
        network.persist_delay_min_ms = 1;
        network.persist_delay_max_ms = 60; // completions overtake each other
        network.elect(3_000);
        for sequence in 1..=20 {
            network.put(13, sequence, &format!("k{sequence}"), "v");
        }
        assert!(network.settle(3_000));
    }
}

/// B14 (etcd#8243, #9333, RedisLabs/raft#24): with pre-vote and check-quorum, an asymmetric
/// partition or a rejoining node does not depose a working leader; after healing there is a
/// leader within a few election timeouts.
#[test]
fn b14_asymmetric_partition_and_rejoin_do_not_disrupt() {
    let mut network = Network::new(&[1, 2, 3], 14);
    let leader = network.elect(2_000);
    let term = network.replica(leader).term();
    let others: Vec<u64> = network
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    // A <-> C cut, both still talk to B.
    network.blocked.insert((leader, others[1]));
    network.blocked.insert((others[1], leader));
    network.run_for(5_000);
    assert_eq!(network.leader(), Some(leader));
    assert_eq!(
        network.replica(leader).term(),
        term,
        "asymmetric partition forced an election"
    );
    network.put(14, 1, "k", "v");
    network.heal();
    // A fully isolated node rejoins without forcing a new term.
    network.isolate(others[0]);
    network.run_for(3_000);
    network.heal();
    assert!(network.run_until(1_500, |n| n.leader().is_some()));
    network.run_for(1_000);
    assert_eq!(
        network.replica(leader).term(),
        term,
        "rejoining node forced a step-down"
    );
    assert!(network.settle(2_000));
}

/// B15 (etcd#14633, heartbeat_resp_recovers_from_probing): a follower whose pipeline was lost
/// recovers through heartbeats instead of stalling forever.
#[test]
fn b15_lost_pipeline_recovers_via_heartbeat() {
    let mut network = Network::new(&[1, 2, 3], 15);
    let leader = network.elect(2_000);
    let follower = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    // Everything the leader sends to this follower is lost while 100 entries stream out.
    network.blocked.insert((leader, follower));
    for sequence in 1..=100 {
        network.submit(
            leader,
            15,
            sequence,
            ClientOperation::Write(
                KvCommand::Increment {
                    key: "n".into(),
                    delta: 1,
                }
                .encode(),
            ),
        );
        network.run_for(2);
    }
    network.blocked.clear();
    assert!(
        network.run_until(1_000, |n| n.replica(follower).applied_index()
            == n.replica(leader).last_index()),
        "follower stalled"
    );
    assert_eq!(network.value(follower, "n").as_deref(), Some("100"));
}

/// B16 (RedisRaft #13, #23): retries are applied once; an in-flight duplicate is not re-proposed;
/// errors say whether the outcome is definite.
#[test]
fn b16_retried_write_applied_exactly_once() {
    let mut network = Network::new(&[1, 2, 3], 16);
    let leader = network.elect(2_000);
    let increment = ClientOperation::Write(
        KvCommand::Increment {
            key: "n".into(),
            delta: 1,
        }
        .encode(),
    );
    // Duplicate while in flight: one log entry, both answered.
    let last = network.replica(leader).last_index();
    network.submit(leader, 16, 1, increment.clone());
    network.submit(leader, 16, 1, increment.clone());
    assert_eq!(
        network.replica(leader).last_index(),
        last + 1,
        "in-flight retry re-proposed"
    );
    network.run_for(200);
    let answers: Vec<_> = network
        .replies
        .iter()
        .filter(|(_, r)| r.client_id == 16)
        .cloned()
        .collect();
    assert_eq!(answers.len(), 2);
    // Leader loses quorum with a pending write: indefinite; the retry elsewhere applies it once.
    network.isolate(leader);
    network.submit(leader, 16, 2, increment.clone());
    assert!(network.run_until(2_000, |n| {
        n.replies
            .iter()
            .any(|(_, r)| r.client_id == 16 && r.sequence == 2)
    }));
    let pending = network.take_reply(16, 2).expect("reply");
    let error = pending.expect_err("no quorum");
    assert!(!error.is_definite(), "{error:?}");
    network.heal();
    let retried = network
        .client_write(
            16,
            2,
            KvCommand::Increment {
                key: "n".into(),
                delta: 1,
            },
            5_000,
        )
        .expect("reply")
        .expect("ok");
    assert_eq!(output(&retried), KvOutput::Counter(2));
    let again = network
        .client_write(
            16,
            2,
            KvCommand::Increment {
                key: "n".into(),
                delta: 1,
            },
            5_000,
        )
        .expect("reply")
        .expect("ok");
    assert_eq!(output(&again), KvOutput::Counter(2), "retry applied twice");
    assert!(network.settle(2_000));
    for id in network.ids() {
        assert_eq!(network.value(id, "n").as_deref(), Some("2"));
    }
    assert!(
        ClientError::NotLeader {
            leader_hint: None,
            term: 1
        }
        .is_definite()
    );
    drop(increment);
    // The log itself may hold a request twice (re-proposed by a later leader); applying dedups.
    let bump = KvCommand::Increment {
        key: "n".into(),
        delta: 1,
    }
    .encode();
    let twice = |index| Entry {
        term: 1,
        index,
        payload: EntryPayload::Command {
            client_id: 5,
            sequence: 1,
            command: bump.clone().into(),
        },
    };
    let mut follower = replica(
        2,
        &[1, 2, 3],
        HardState {
            term: 1,
            voted_for: None,
        },
        Vec::new(),
    );
    follower.step(
        1,
        message(1, 2, 1, append(0, 0, vec![twice(1), twice(2)], 2)),
    );
    for token in persist_tokens(&follower.drain_effects()) {
        follower.step(2, Input::PersistDone(token));
    }
    assert_eq!(follower.applied_index(), 2);
    assert_eq!(
        follower.state_machine().get("n"),
        Some(&b"1".to_vec()),
        "duplicate entry applied twice"
    );
}

/// B10 (cowsql/raft#150, dissertation §4.2.2), found by the membership churn sweep: a leader that
/// appended a configuration excluding itself and then lost its quorum must still campaign until
/// that configuration commits, or the cluster deadlocks (the others need its vote).
#[test]
fn b10_removed_server_campaigns_until_new_config_commits() {
    let mut network = Network::new(&[1, 2], 17);
    network.add_node(
        RaftConfig {
            initial_voters: Default::default(),
            ..test_config(3, &[], 17)
        },
        None,
    );
    let leader = network.elect(2_000);
    assert!(network.settle(2_000));
    let learner = network.request(
        leader,
        17,
        1,
        ClientOperation::ChangeMembership(MembershipChange::AddLearner(3)),
        2_000,
    );
    assert!(learner.expect("reply").is_ok());
    assert!(network.run_until(2_000, |n| n.replica(3).applied_index()
        == n.replica(leader).commit_index()));
    // Keep the final (non-joint) configuration from leaving the leader.
    network.filter = Some(Box::new(|m: &mut Message| {
        if let MessageBody::AppendEntries { entries, .. } = &mut m.body
            && let Some(position) = entries
                .iter()
                .position(|e| matches!(&e.payload, EntryPayload::Membership(c) if !c.is_joint()))
        {
            *entries = entries.slice(0..position);
        }
        true
    }));
    network.submit(
        leader,
        17,
        2,
        ClientOperation::ChangeMembership(MembershipChange::Replace(
            raft::Membership::with_voters([3]),
        )),
    );
    assert!(network.run_until(2_000, |n| {
        let replica = n.replica(leader);
        !replica.membership().is_joint() && !replica.membership().is_voter(leader)
    }));
    // The leader loses node 3 and steps down (check-quorum of {3}) with the change uncommitted.
    network.isolate(3);
    assert!(network.run_until(2_000, |n| n.replica(leader).role() != Role::Leader));
    network.filter = None;
    network.heal();
    assert!(
        network.run_until(5_000, |n| n.leader() == Some(3)
            && n.replica(3).commit_index() == n.replica(3).last_index()),
        "deadlock: nobody can win the election\n{}",
        network.describe()
    );
    assert_eq!(
        network.replica(3).membership().voters,
        [3].into_iter().collect()
    );
}

/// B7 (tikv#9208 family): TimeoutNow overrides the followers' lease stickiness, so a leader that
/// starts a transfer must stop serving reads from its lease at once.
#[test]
fn b07_lease_ends_when_leadership_transfer_starts() {
    let configs = [1, 2, 3]
        .iter()
        .map(|&id| RaftConfig {
            lease_reads: true,
            ..test_config(id, &[1, 2, 3], 18)
        })
        .collect();
    let mut network = Network::with_configs(configs, 18);
    let leader = network.elect(2_000);
    network.put(1, 1, "x", "1");
    network.run_for(200);
    let query = raft::KvQuery::Get { key: "x".into() }.encode();
    let read = ClientOperation::Read {
        query,
        consistency: ReadConsistency::Linearizable,
    };
    network.submit(leader, 2, 1, read.clone());
    assert!(
        network.take_reply(2, 1).is_some(),
        "lease read should be immediate"
    );
    let target = network
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("target");
    network.submit(leader, 3, 1, ClientOperation::TransferLeadership(target));
    assert!(network.take_reply(3, 1).expect("transfer started").is_ok());
    network.submit(leader, 2, 2, read);
    assert!(
        network.take_reply(2, 2).is_none(),
        "lease read served after TimeoutNow was sent"
    );
    assert!(network.run_until(1_000, |n| n.leader() == Some(target)));
}

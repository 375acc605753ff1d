//! Goal: no input sequence panics a replica or breaks its local invariants. Method: proptest
//! drives one replica with arbitrary (often nonsensical) messages, client requests, timeouts and
//! persist acknowledgements, checking applied <= commit <= last index and term monotonicity.

use proptest::prelude::*;
use raft::{
    ClientOperation, ClientRequest, Entry, EntryPayload, Input, Kv, KvCommand, Membership, Message,
    MessageBody, RaftConfig, ReadConsistency, RecoveredState, Replica, SnapshotMeta,
};

fn entry_strategy() -> impl Strategy<Value = Entry> {
    (1u64..12, 0u64..6, any::<bool>()).prop_map(|(index, term, noop)| Entry {
        term,
        index,
        payload: if noop {
            EntryPayload::Noop
        } else {
            EntryPayload::Command {
                client_id: 1,
                sequence: index,
                command: KvCommand::Increment {
                    key: "n".into(),
                    delta: 1,
                }
                .encode()
                .into(),
            }
        },
    })
}

fn body_strategy() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (
            0u64..12,
            0u64..6,
            proptest::collection::vec(entry_strategy(), 0..4),
            0u64..14,
            0u64..5
        )
            .prop_map(
                |(prev_index, prev_term, entries, leader_commit, heartbeat_seq)| {
                    MessageBody::AppendEntries {
                        prev_index,
                        prev_term,
                        entries: entries.into(),
                        leader_commit,
                        heartbeat_seq,
                    }
                }
            ),
        (
            any::<bool>(),
            0u64..14,
            0u64..14,
            0u64..14,
            proptest::option::of(0u64..6),
            any::<bool>()
        )
            .prop_map(
                |(success, match_index, rejected_index, hint_index, hint_term, log_lost)| {
                    MessageBody::AppendEntriesResponse {
                        success,
                        match_index,
                        rejected_index,
                        hint_index,
                        hint_term,
                        log_lost,
                        heartbeat_seq: 1,
                    }
                }
            ),
        (0u64..12, 0u64..6, any::<bool>(), any::<bool>()).prop_map(
            |(last_index, last_term, pre_vote, leadership_transfer)| {
                MessageBody::RequestVote {
                    last_index,
                    last_term,
                    pre_vote,
                    leadership_transfer,
                }
            }
        ),
        (any::<bool>(), any::<bool>())
            .prop_map(|(granted, pre_vote)| MessageBody::RequestVoteResponse { granted, pre_vote }),
        (
            0u64..12,
            0u64..6,
            0u64..40,
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<bool>()
        )
            .prop_map(
                |(index, term, offset, chunk, done)| MessageBody::InstallSnapshot {
                    meta: Box::new(SnapshotMeta {
                        index,
                        term,
                        membership: Membership::with_voters([1, 2, 3])
                    }),
                    offset,
                    chunk,
                    done,
                    heartbeat_seq: 0
                }
            ),
        (0u64..12, 0u64..40, any::<bool>(), 0u64..14).prop_map(
            |(snapshot_index, next_offset, installed, match_index)| {
                MessageBody::InstallSnapshotResponse {
                    snapshot_index,
                    next_offset,
                    installed,
                    match_index,
                    heartbeat_seq: 0,
                }
            }
        ),
        Just(MessageBody::TimeoutNow),
    ]
}

fn input_strategy() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (2u64..4, 0u64..6, body_strategy()).prop_map(|(from, term, body)| Input::Message(Message { from, to: 1, term, body })),
        1 => Just(Input::Timeout),
        2 => (1u64..6).prop_map(Input::PersistDone),
        1 => (0u64..3, any::<bool>()).prop_map(|(sequence, read)| Input::Client(ClientRequest {
            client_id: 9,
            sequence,
            operation: if read {
                ClientOperation::Read { query: vec![0, 1], consistency: ReadConsistency::Linearizable }
            } else {
                ClientOperation::Write(KvCommand::Put { key: "k".into(), value: vec![1] }.encode())
            },
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_inputs_never_panic_or_break_local_invariants(inputs in proptest::collection::vec((0u64..400, input_strategy()), 1..60)) {
        let mut replica = Replica::new(RaftConfig::new(1, [1, 2, 3]), RecoveredState::default(), Kv::new(), 0).expect("replica");
        let mut now_ms = 0;
        let mut term = 0;
        let mut next_token: u64 = 1;
        for (advance_ms, input) in inputs {
            now_ms += advance_ms;
            // Acknowledge only tokens that exist, in any order.
            let input = match input {
                Input::PersistDone(offset) => Input::PersistDone(next_token.saturating_sub(offset)),
                other => other,
            };
            replica.step(now_ms, input);
            for effect in replica.drain_effects() {
                if let raft::Effect::Persist(request) = effect {
                    next_token = request.token + 1;
                }
            }
            prop_assert!(replica.applied_index() <= replica.commit_index());
            prop_assert!(replica.commit_index() <= replica.last_index());
            prop_assert!(replica.term() >= term, "term went backwards");
            term = replica.term();
        }
    }
}

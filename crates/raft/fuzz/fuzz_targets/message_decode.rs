//! Feeds arbitrary bytes to the peer-message decoder, and whatever decodes to a replica: decoding
//! returns a message or an error, never panics; a decoded message re-encodes to a frame that
//! decodes to the same message; and a follower and a leader stepping it never panic, whatever
//! the message claims (terms, indexes, entries, snapshot chunks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use raft::{Input, Kv, RaftConfig, RecoveredState, Replica, Role, codec};

/// A replica of a 3-voter cluster; `lead` makes it the leader first (a single vote round).
fn replica(lead: bool) -> Replica<Kv> {
    let mut config = RaftConfig::new(1, [1, 2, 3]);
    config.pre_vote = false;
    let mut replica = Replica::new(config, RecoveredState::default(), Kv::new(), 0).expect("config");
    if lead {
        replica.step(1_000, Input::Timeout);
        let mut effects = Vec::new();
        while let Some(effect) = replica.poll_effect() {
            effects.push(effect);
        }
        for effect in effects {
            if let raft::Effect::Persist(request) = effect {
                replica.step(1_000, Input::PersistDone(request.token));
            }
        }
        let term = replica.term();
        let vote = raft::Message {
            from: 2,
            to: 1,
            term,
            body: raft::MessageBody::RequestVoteResponse {
                granted: true,
                pre_vote: false,
            },
        };
        replica.step(1_000, Input::Message(vote));
        while replica.poll_effect().is_some() {}
        assert_eq!(replica.role(), Role::Leader, "the harness elects replica 1");
    }
    replica
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(message) = codec::decode_message(bytes) else {
        return;
    };
    let frame = codec::encode_message(&message).expect("a decoded message encodes");
    assert_eq!(codec::decode_message(&frame).ok().as_ref(), Some(&message));
    for lead in [false, true] {
        let mut replica = replica(lead);
        replica.step(2_000, Input::Message(message.clone()));
        while replica.poll_effect().is_some() {}
        replica.step(2_500, Input::Timeout);
        while replica.poll_effect().is_some() {}
    }
});
